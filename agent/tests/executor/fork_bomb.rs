//! A (bounded) fork bomb hits the pids limit; killing the task then removes
//! every process it made.

use std::time::Duration;

use ocean_agent::{CgroupVersion, TaskSpec, TaskState};

use crate::harness::{bounded, eventually, process_exists, procs, wait_for, Harness};

/// Tries 1000 forks of a sleeping child, counting the refusals, then waits.
/// (dash exits on its first failed fork, which would end the test early.)
const BOMB: &str = r#"/usr/bin/python3 -c '
import os, sys, time
failed = 0
for i in range(1000):
    try:
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
    except OSError:
        failed += 1
print("failed_forks=%d" % failed, flush=True)
time.sleep(30)
'"#;

#[tokio::test]
async fn fork_bomb_is_stopped_by_the_pids_limit() -> anyhow::Result<()> {
    let Some(h) = Harness::new("forkbomb")? else {
        return Ok(());
    };
    bounded(async {
        let (executor, mut rx) = h.executor();
        let mut spec = TaskSpec::shell("bomb", "job1", BOMB);
        spec.pids_limit = Some(50);
        let task = executor.launch(spec).await?;
        wait_for(&mut rx, "bomb", TaskState::Running, Duration::from_secs(10)).await?;

        let stdout = task.sandbox.join("stdout");
        eventually(
            Duration::from_secs(30),
            "the bomb to report its failed forks",
            || std::fs::read_to_string(&stdout).is_ok_and(|s| s.contains("failed_forks=")),
        )
        .await?;
        let out = std::fs::read_to_string(&stdout)?;
        let failed: u32 = out.trim().trim_start_matches("failed_forks=").parse()?;
        assert!(failed >= 900, "only {failed} forks refused: {out}");

        let current: u64 = std::fs::read_to_string(task.cgroup.pids.join("pids.current"))?
            .trim()
            .parse()?;
        assert!(current <= 50, "pids.current = {current}");
        let events = std::fs::read_to_string(task.cgroup.pids.join("pids.events"))?;
        let refusals: u64 = events.split_whitespace().nth(1).unwrap_or("0").parse()?;
        assert!(refusals > 0, "pids.events: {events}");
        if task.cgroup.version == CgroupVersion::V1 {
            assert!(events.starts_with("max "), "{events}");
        }

        let members = procs(&task.cgroup.pids);
        assert!(
            members.len() > 10,
            "expected many processes, got {}",
            members.len()
        );
        executor.kill("bomb", Some(Duration::from_millis(500)))?;
        wait_for(&mut rx, "bomb", TaskState::Killed, Duration::from_secs(15)).await?;
        for pid in members {
            assert!(!process_exists(pid), "pid {pid} survived");
        }
        for dir in task.cgroup.dirs() {
            assert!(!dir.exists(), "{} left behind", dir.display());
        }
        Ok(())
    })
    .await
}
