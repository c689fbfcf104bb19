//! A task past its memory limit is OOM-killed by the kernel and reported so
//! from the cgroup's counter; its neighbour is untouched.

use std::time::Duration;

use ocean_agent::{Reason, TaskSpec, TaskState};

use crate::harness::{bounded, process_exists, wait_for, Harness};

#[tokio::test]
async fn memory_hog_is_oom_killed_and_its_neighbour_keeps_running() -> anyhow::Result<()> {
    let Some(h) = Harness::new("oom")? else {
        return Ok(());
    };
    bounded(async {
        let (executor, mut rx) = h.executor();
        let mut neighbour = TaskSpec::shell("neighbour", "job1", "exec sleep 30");
        neighbour.mem_mib = 50;
        let neighbour = executor.launch(neighbour).await?;
        wait_for(
            &mut rx,
            "neighbour",
            TaskState::Running,
            Duration::from_secs(10),
        )
        .await?;

        // tail keeps the whole newline-free input in memory.
        let mut hog = TaskSpec::shell("hog", "job1", "head -c 200M /dev/zero | tail");
        hog.mem_mib = 50;
        executor.launch(hog).await?;
        let failed = wait_for(&mut rx, "hog", TaskState::Failed, Duration::from_secs(30)).await?;
        assert_eq!(failed.reason, Some(Reason::OomKilled), "{failed:?}");
        assert!(
            failed
                .message
                .as_deref()
                .unwrap_or("")
                .contains("oom_kills=Some("),
            "{failed:?}"
        );

        assert!(process_exists(neighbour.pid), "neighbour died with the hog");
        assert_eq!(executor.tasks().len(), 1);
        executor.kill("neighbour", Some(Duration::from_secs(1)))?;
        let killed = wait_for(
            &mut rx,
            "neighbour",
            TaskState::Killed,
            Duration::from_secs(10),
        )
        .await?;
        assert_eq!(killed.reason, Some(Reason::Killed));
        Ok(())
    })
    .await
}
