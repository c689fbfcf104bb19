//! Health checks in the runtime: a command check on a real task is
//! reported healthy, then unhealthy and failed (reports only on changes),
//! and a restarted agent checks its re-adopted task again.

use anyhow::ensure;
use ocean_proto::agent::{master_message::Kind, HealthCheck, Launch, LaunchTask};

use super::fake_master::FakeMaster;
use super::harness::{bounded, process_exists, Harness};
use super::{shell, RunningAgent, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_report_changes_and_resume_after_an_agent_restart() -> anyhow::Result<()> {
    let Some(h) = Harness::new("health")? else {
        return Ok(());
    };
    bounded(async {
        let flags = tempfile::tempdir()?;
        let sick = flags.path().join("sick");
        let mut master = FakeMaster::start().await?;
        let master_addr = master.addr.to_string();
        let agent = RunningAgent::start(&h, &master_addr).await?;
        let conn = master.accept(WAIT).await?;
        conn.send(Kind::Launch(Launch {
            tasks: vec![LaunchTask {
                health_checks: vec![HealthCheck {
                    protocol: "command".into(),
                    // Runs in the task's environment: $OCEAN_TASK_ID is set.
                    command: format!(
                        "test \"$OCEAN_TASK_ID\" = h1 && test ! -e {}",
                        sick.display()
                    ),
                    interval_ms: 200,
                    timeout_ms: 1000,
                    max_consecutive_failures: 2,
                    ..Default::default()
                }],
                ..shell("h1", "sleep 60")
            }],
        }))
        .await?;
        let healthy = |want: Option<bool>| {
            move |r: &ocean_proto::agent::TaskReport| {
                r.tasks
                    .iter()
                    .any(|s| s.task_id == "h1" && s.healthy == want)
            }
        };
        master.report(conn.id, WAIT, healthy(Some(true))).await?;
        std::fs::write(&sick, b"")?;
        let (r, _) = master.report(conn.id, WAIT, healthy(Some(false))).await?;
        let first = r
            .tasks
            .iter()
            .find(|s| s.task_id == "h1")
            .cloned()
            .unwrap_or_default();
        ensure!(
            !first.health_failed && first.health_message.contains("command"),
            "{first:?}"
        );
        let (r, _) = master
            .report(conn.id, WAIT, |r| r.tasks.iter().any(|s| s.health_failed))
            .await?;
        let failed = r
            .tasks
            .iter()
            .find(|s| s.task_id == "h1")
            .cloned()
            .unwrap_or_default();
        ensure!(failed.health_message == first.health_message, "{failed:?}");
        let pid = failed.pid;
        // Failing the same way on: nothing more is reported.
        let since = master.history.len();
        let quiet = master.report(conn.id, std::time::Duration::from_millis(1_000), |r| {
            r.tasks.iter().any(|s| s.task_id == "h1")
        });
        ensure!(
            quiet.await.is_err(),
            "unexpected report: {:?}",
            &master.history[since..]
        );

        // Restart the agent with the task healthy again: the re-adopted task
        // is checked again (from its checkpoint).
        agent.stop().await?;
        ensure!(process_exists(pid), "the task died with the agent");
        std::fs::remove_file(&sick)?;
        let agent = RunningAgent::start(&h, &master_addr).await?;
        let conn = master.accept(WAIT).await?;
        ensure!(
            conn.register
                .tasks
                .iter()
                .any(|s| s.task_id == "h1" && s.state == "RUNNING"),
            "{:?}",
            conn.register.tasks
        );
        // The first check may run before the registration is built, which
        // then carries the verdict; otherwise a report follows it.
        let registered_healthy = conn
            .register
            .tasks
            .iter()
            .any(|s| s.task_id == "h1" && s.healthy == Some(true));
        if !registered_healthy {
            master.report(conn.id, WAIT, healthy(Some(true))).await?;
        }
        let _ = agent.stop().await;
        Ok(())
    })
    .await
}
