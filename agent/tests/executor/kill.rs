//! Kill: SIGTERM to the process group, SIGKILL after the grace period, and
//! nothing left behind either way.

use std::time::{Duration, Instant};

use ocean_agent::{Reason, TaskSpec, TaskState};

use crate::harness::{bounded, process_exists, wait_for, Harness};

#[tokio::test]
async fn a_task_trapping_sigterm_exits_within_the_grace_period() -> anyhow::Result<()> {
    let Some(h) = Harness::new("killtrap")? else {
        return Ok(());
    };
    bounded(async {
        let (executor, mut rx) = h.executor();
        let cmd = "trap 'echo got-term; exit 0' TERM; echo ready; while true; do sleep 0.1; done";
        let task = executor
            .launch(TaskSpec::shell("polite", "job1", cmd))
            .await?;
        wait_for(
            &mut rx,
            "polite",
            TaskState::Running,
            Duration::from_secs(10),
        )
        .await?;
        crate::harness::eventually(Duration::from_secs(5), "the trap to be set", || {
            std::fs::read_to_string(task.sandbox.join("stdout")).is_ok_and(|s| s.contains("ready"))
        })
        .await?;

        let started = Instant::now();
        executor.kill("polite", Some(Duration::from_secs(10)))?;
        let killed = wait_for(
            &mut rx,
            "polite",
            TaskState::Killed,
            Duration::from_secs(10),
        )
        .await?;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(killed.reason, Some(Reason::Killed));
        assert_eq!(killed.exit_code, Some(0), "the trap's own exit: {killed:?}");
        assert!(std::fs::read_to_string(task.sandbox.join("stdout"))?.contains("got-term"));
        assert!(!process_exists(task.pid));
        for dir in task.cgroup.dirs() {
            assert!(!dir.exists(), "{} left behind", dir.display());
        }
        assert!(task.sandbox.exists(), "the sandbox is kept for its logs");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_task_ignoring_sigterm_is_sigkilled_after_the_grace_period() -> anyhow::Result<()> {
    let Some(h) = Harness::new("killignore")? else {
        return Ok(());
    };
    bounded(async {
        let (executor, mut rx) = h.executor();
        // The ignored disposition is inherited by the sleeps as well.
        let cmd = "trap '' TERM; echo ready; while true; do sleep 0.1; done";
        let mut spec = TaskSpec::shell("stubborn", "job1", cmd);
        spec.kill_grace = Duration::from_millis(1500);
        let task = executor.launch(spec).await?;
        wait_for(
            &mut rx,
            "stubborn",
            TaskState::Running,
            Duration::from_secs(10),
        )
        .await?;
        crate::harness::eventually(Duration::from_secs(5), "the trap to be set", || {
            std::fs::read_to_string(task.sandbox.join("stdout")).is_ok_and(|s| s.contains("ready"))
        })
        .await?;

        let started = Instant::now();
        executor.kill("stubborn", None)?;
        let killed = wait_for(
            &mut rx,
            "stubborn",
            TaskState::Killed,
            Duration::from_secs(15),
        )
        .await?;
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(1500),
            "SIGKILL before the grace period: {took:?}"
        );
        assert!(took < Duration::from_secs(8), "took {took:?}");
        assert_eq!(killed.signal, Some(9), "{killed:?}");
        assert!(!process_exists(task.pid));
        for dir in task.cgroup.dirs() {
            assert!(!dir.exists(), "{} left behind", dir.display());
        }
        assert!(executor.tasks().is_empty());
        assert!(
            executor.kill("stubborn", None).is_err(),
            "an ended task is unknown"
        );
        Ok(())
    })
    .await
}
