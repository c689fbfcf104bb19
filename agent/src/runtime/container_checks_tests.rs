//! Health checks of container tasks against the in-memory engine: port
//! checks on the host port, command checks run by exec in the container,
//! checks found again on the container's label after a restart.

use std::sync::Arc;
use std::time::Duration;

use ocean_proto::agent as pb;
use tokio::sync::mpsc;

use super::checks::Checks;
use crate::docker::launch::LABEL_HEALTH;
use crate::docker::{container_task, ContainerEngine, DockerConfig, DockerExecutor, MemoryEngine};
use crate::health::{HealthChange, TaskHealth};

const IMAGE: &str = "ocean/busybox:test";

fn launch(port: u16) -> pb::LaunchTask {
    let check = |protocol: &str, command: &str| pb::HealthCheck {
        protocol: protocol.into(),
        port_name: "http".into(),
        command: command.into(),
        interval_ms: 50,
        timeout_ms: 1000,
        ..Default::default()
    };
    pb::LaunchTask {
        task_id: "web.1".into(),
        job_id: "web".into(),
        args: vec!["httpd".into(), "-f".into()],
        ports: vec![pb::Port {
            name: "http".into(),
            port: u32::from(port),
        }],
        health_checks: vec![check("tcp", ""), check("command", "test -e /tmp/ok")],
        docker: Some(pb::DockerTask {
            image: IMAGE.into(),
            network: "host".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn executor(engine: &MemoryEngine, dir: &std::path::Path) -> DockerExecutor {
    DockerExecutor::new(
        Arc::new(engine.clone()),
        "agent-a",
        dir.to_path_buf(),
        Duration::from_secs(60),
        mpsc::unbounded_channel().0,
    )
}

/// The next health change of the task, within 5 s.
async fn next(rx: &mut mpsc::UnboundedReceiver<HealthChange>) -> TaskHealth {
    let change = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap_or_else(|_| panic!("no health change within 5 s"))
        .unwrap_or_else(|| panic!("the checker stopped"));
    assert_eq!(change.task_id, "web.1");
    change.health
}

#[tokio::test]
async fn container_checks_probe_the_host_port_and_exec_in_the_container() -> anyhow::Result<()> {
    // The "container" listens on the host port (host networking).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let dir = tempfile::tempdir()?;
    let engine = MemoryEngine::new();
    engine.load_image(IMAGE);
    let docker = executor(&engine, dir.path());
    let task = container_task(&launch(port), "agent-a", &DockerConfig::new("h"))
        .map_err(anyhow::Error::msg)?;
    assert_eq!(task.health.ports, vec![port]);
    assert_eq!(task.health.checks.len(), 2);
    assert!(task.spec.labels.contains_key(LABEL_HEALTH));
    let health = task.health.clone();
    docker.launch(task).await?;
    let container = docker
        .running_container("web.1")
        .ok_or_else(|| anyhow::anyhow!("no running container"))?;

    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut checks = Checks::new("0.0.0.0", "h", tx);
    checks.expect_container("web.1", &health);
    checks.launched_container("web.1", Some((&container, &health, docker.engine())));
    assert_eq!(next(&mut rx).await.healthy, Some(true));
    // The command check runs in the container, and fails there.
    engine.set_exec_exit(&container, 1);
    let sick = next(&mut rx).await;
    assert_eq!(sick.healthy, Some(false));
    assert!(
        sick.message
            .contains("command \"test -e /tmp/ok\" in the container exited with 1"),
        "{sick:?}"
    );
    assert!(engine
        .execs(&container)
        .iter()
        .all(|c| c[..2] == ["/bin/sh".to_string(), "-c".into()]));
    checks.stop("web.1");

    // A restarted agent finds the checks on the label and checks again.
    let restarted = executor(&engine, dir.path());
    let recovery = restarted.recover().await?;
    assert_eq!(recovery.checked.len(), 1);
    assert_eq!(recovery.checked[0].health, health);
    assert_eq!(recovery.checked[0].container, container);
    assert!(recovery.checked[0].started_at_ms > 0);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut checks = Checks::new("127.0.0.1", "h", tx);
    checks.recovered_containers(&recovery.checked, &restarted.engine());
    let again = next(&mut rx).await;
    assert_eq!(again.healthy, Some(false), "{again:?}");
    engine.set_exec_exit(&container, 0);
    assert_eq!(next(&mut rx).await.healthy, Some(true));
    // The port closes: the tcp check fails.
    drop(listener);
    let closed = next(&mut rx).await;
    assert!(closed.message.contains("tcp connect"), "{closed:?}");
    engine.remove(&container).await?;
    Ok(())
}

#[tokio::test]
async fn a_container_that_ended_during_its_launch_is_not_checked() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let engine = MemoryEngine::new();
    engine.load_image(IMAGE);
    let docker = executor(&engine, dir.path());
    let task = container_task(&launch(1), "agent-a", &DockerConfig::new("h"))
        .map_err(anyhow::Error::msg)?;
    let health = task.health.clone();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut checks = Checks::new("127.0.0.1", "h", tx);
    checks.expect_container("web.1", &health);
    // Its terminal status was handled before the end of the launch.
    checks.stop("web.1");
    checks.launched_container("web.1", Some(("c", &health, docker.engine())));
    let heard = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await;
    assert!(heard.is_err(), "a checker ran: {heard:?}");
    Ok(())
}
