//! Limits are written to the cgroup filesystem and the task runs inside them.

use std::time::Duration;

use ocean_agent::{CgroupVersion, TaskSpec, TaskState};

use crate::harness::{bounded, procs, wait_for, Harness};

#[tokio::test]
async fn running_task_has_its_limits_in_the_cgroup_filesystem() -> anyhow::Result<()> {
    let Some(h) = Harness::new("limits")? else {
        return Ok(());
    };
    bounded(async {
        let (executor, mut rx) = h.executor();
        let mut spec = TaskSpec::shell("limited", "job1", "exec sleep 30");
        spec.cpus = 0.5;
        spec.mem_mib = 64;
        spec.pids_limit = Some(100);
        let task = executor.launch(spec).await?;
        let running = wait_for(
            &mut rx,
            "limited",
            TaskState::Running,
            Duration::from_secs(10),
        )
        .await?;
        assert_eq!(running.pid, Some(task.pid));

        let cg = &task.cgroup;
        let read = |dir: &std::path::Path, file: &str| {
            std::fs::read_to_string(dir.join(file)).map(|s| s.trim().to_string())
        };
        match cg.version {
            CgroupVersion::V1 => {
                assert_eq!(read(&cg.cpu, "cpu.cfs_quota_us")?, "50000");
                assert_eq!(read(&cg.cpu, "cpu.cfs_period_us")?, "100000");
                assert_eq!(
                    read(&cg.memory, "memory.limit_in_bytes")?,
                    (64u64 << 20).to_string()
                );
                assert_eq!(read(&cg.memory, "memory.swappiness")?, "0");
            }
            CgroupVersion::V2 => {
                assert_eq!(read(&cg.cpu, "cpu.max")?, "50000 100000");
                assert_eq!(read(&cg.memory, "memory.max")?, (64u64 << 20).to_string());
            }
        }
        assert_eq!(read(&cg.pids, "pids.max")?, "100");
        let limits = executor.cgroups().limits(cg)?;
        assert_eq!(
            (limits.cpus, limits.memory_bytes, limits.pids),
            (Some(0.5), Some(64 << 20), Some(100))
        );

        // The task (not only the wrapper) is in every controller's cgroup,
        // and leads its own session.
        for dir in cg.dirs() {
            assert!(
                procs(&dir).contains(&task.pid),
                "{} lacks pid {}",
                dir.display(),
                task.pid
            );
        }
        // RUNNING means the wrapper joined the cgroups; the exec of the
        // task itself follows a moment later.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let comm = std::fs::read_to_string(format!("/proc/{}/comm", task.pid))?;
            if comm.trim() == "sleep" {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "pid {} is still {comm:?}",
                task.pid
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let sid = nix::unistd::getsid(Some(nix::unistd::Pid::from_raw(task.pid)))?;
        assert_eq!(sid.as_raw(), task.pid);

        executor.kill("limited", Some(Duration::from_secs(2)))?;
        wait_for(
            &mut rx,
            "limited",
            TaskState::Killed,
            Duration::from_secs(10),
        )
        .await?;
        for dir in cg.dirs() {
            assert!(!dir.exists(), "{} left behind", dir.display());
        }
        Ok(())
    })
    .await
}
