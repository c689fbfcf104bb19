//! Agent death and restart: surviving tasks are re-adopted with the same
//! pid; tasks that died meanwhile are reported ended.

use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use ocean_agent::{PortRequest, Reason, TaskSpec, TaskState};

use crate::harness::{bounded, eventually, process_exists, wait_each, wait_for, Harness};

#[tokio::test]
async fn a_restarted_executor_readopts_survivors_and_reports_the_dead() -> anyhow::Result<()> {
    let Some(h) = Harness::new("recovery")? else {
        return Ok(());
    };
    bounded(async {
        let (executor, mut rx) = h.executor();
        let mut survivor = TaskSpec::shell("survivor", "job1", "exec sleep 60");
        survivor.ports = vec![PortRequest {
            name: "http".into(),
            port: 0,
        }];
        survivor.mem_mib = 32;
        let survivor = executor.launch(survivor).await?;
        let victim = executor
            .launch(TaskSpec::shell("victim", "job1", "exec sleep 60"))
            .await?;
        // Both must run; their statuses may arrive in either order.
        wait_each(
            &mut rx,
            &[
                ("survivor", TaskState::Running),
                ("victim", TaskState::Running),
            ],
            Duration::from_secs(10),
        )
        .await?;
        let free_before = executor.free_ports();

        // The agent dies: supervision stops, the tasks do not.
        drop(executor);
        drop(rx);
        assert!(process_exists(survivor.pid) && process_exists(victim.pid));
        killpg(Pid::from_raw(victim.pid), Signal::SIGKILL)?;
        eventually(Duration::from_secs(5), "the victim to die", || {
            !process_exists(victim.pid)
        })
        .await?;

        let (executor, mut rx) = h.executor();
        let recovery = executor.recover().await?;
        assert_eq!(recovery.adopted.len(), 1, "{recovery:?}");
        assert_eq!(recovery.adopted[0].task_id, "survivor");
        assert_eq!(recovery.adopted[0].pid, survivor.pid, "same pid re-adopted");
        assert_eq!(recovery.adopted[0].ports, survivor.ports);
        assert_eq!(
            executor.free_ports(),
            free_before,
            "the survivor's port stays taken"
        );

        assert_eq!(recovery.ended.len(), 1, "{recovery:?}");
        let ended = &recovery.ended[0];
        assert_eq!(ended.task_id, "victim");
        // This "agent" is the tasks' parent process throughout (as an agent
        // restarted in place is): when recovery reaps the victim itself, its
        // real end is known; when the dropped executor's runtime reaped it
        // first, only that it ended while the agent was down.
        let known = ended.state == TaskState::Failed
            && ended.reason == Some(Reason::Signal)
            && ended.signal == Some(9);
        let unknown =
            ended.state == TaskState::Lost && ended.reason == Some(Reason::ExitedWhileAgentDown);
        assert!(known || unknown, "{ended:?}");
        for dir in victim.cgroup.dirs() {
            assert!(!dir.exists(), "victim's {} left behind", dir.display());
        }

        let seen = wait_each(
            &mut rx,
            &[("survivor", TaskState::Running), ("victim", ended.state)],
            Duration::from_secs(5),
        )
        .await?;
        assert_eq!(seen[0].reason, Some(Reason::Recovered));
        assert_eq!(seen[1].pid, Some(victim.pid));

        // The re-adopted task is fully managed: kill works and cleans up.
        executor.kill("survivor", Some(Duration::from_secs(2)))?;
        let killed = wait_for(
            &mut rx,
            "survivor",
            TaskState::Killed,
            Duration::from_secs(10),
        )
        .await?;
        assert_eq!(killed.exit_code, None, "not our child: no exit status");
        assert!(!process_exists(survivor.pid));
        for dir in survivor.cgroup.dirs() {
            assert!(!dir.exists(), "survivor's {} left behind", dir.display());
        }
        let checkpoints = std::fs::read_dir(h.data.path().join("checkpoints"))?.count();
        assert_eq!(checkpoints, 0);
        assert_eq!(executor.free_ports(), 100);
        Ok(())
    })
    .await
}
