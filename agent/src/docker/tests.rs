//! The Docker executor against the in-memory engine: launch, ends (exit,
//! OOM), kills with a grace period, failed launches, re-adoption. The real
//! engine is exercised by `tests/tests/docker.rs`.

use std::sync::Arc;
use std::time::Duration;

use ocean_proto::agent as pb;
use tokio::sync::mpsc;

use super::*;
use crate::task::{Reason, TaskState, TaskStatus};

const IMAGE: &str = "ocean/busybox:test";

fn launch(id: &str) -> pb::LaunchTask {
    pb::LaunchTask {
        task_id: id.into(),
        job_id: "web".into(),
        args: vec!["sleep".into(), "100".into()],
        mem_mib: 32,
        kill_grace_ms: 200,
        docker: Some(pb::DockerTask {
            image: IMAGE.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

struct Fixture {
    engine: MemoryEngine,
    executor: DockerExecutor,
    statuses: mpsc::UnboundedReceiver<TaskStatus>,
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
}

fn fixture_on(engine: MemoryEngine, dir: tempfile::TempDir) -> Fixture {
    let (tx, statuses) = mpsc::unbounded_channel();
    let path = dir.path().to_path_buf();
    let executor = DockerExecutor::new(
        Arc::new(engine.clone()),
        "agent-a",
        path.clone(),
        Duration::from_secs(60),
        tx,
    );
    Fixture {
        engine,
        executor,
        statuses,
        _dir: dir,
        dir: path,
    }
}

fn fixture() -> Fixture {
    let engine = MemoryEngine::new();
    engine.load_image(IMAGE);
    fixture_on(
        engine,
        tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")),
    )
}

impl Fixture {
    async fn start(&self, id: &str) -> String {
        let task = container_task(&launch(id), "agent-a", &DockerConfig::new("h"))
            .unwrap_or_else(|e| panic!("{e}"));
        self.executor
            .launch(task)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        self.engine
            .container_ids()
            .into_iter()
            .last()
            .unwrap_or_default()
    }

    /// The next status, waiting at most 5 s.
    async fn next(&mut self) -> TaskStatus {
        tokio::time::timeout(Duration::from_secs(5), self.statuses.recv())
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no status within 5 s"))
    }
}

#[tokio::test]
async fn a_container_runs_and_its_exit_is_reported_from_the_die_event() {
    let mut f = fixture();
    let id = f.start("t1").await;
    let running = f.next().await;
    assert_eq!(running.state, TaskState::Running);
    assert!(running
        .message
        .unwrap_or_default()
        .starts_with("container "));
    let spec = f.engine.spec_of("ocean-agent-a-t1").unwrap_or_default();
    assert_eq!(spec.memory_bytes, 32 << 20);
    assert_eq!(
        spec.labels.get("io.ocean.task").map(String::as_str),
        Some("t1")
    );

    f.engine.write_stdout(&id, b"hello\nworld\n");
    let live = f
        .executor
        .live_logs("t1", LogStream::Stdout, Some(1), false)
        .unwrap_or_else(|| panic!("running containers have live logs"));
    let bytes: Vec<_> = futures::StreamExt::collect::<Vec<_>>(live).await;
    assert_eq!(
        bytes.into_iter().flatten().flatten().collect::<Vec<u8>>(),
        b"world\n"
    );

    f.engine.exit(&id, 3, false);
    let end = f.next().await;
    assert_eq!(
        (end.state, end.reason, end.exit_code),
        (TaskState::Failed, Some(Reason::Exited), Some(3))
    );
    assert!(
        f.engine.container_ids().is_empty(),
        "the ended container is removed"
    );
    let kept = std::fs::read_to_string(f.dir.join("sandboxes/t1/stdout")).unwrap_or_default();
    assert_eq!(kept, "hello\nworld\n", "its output stays in the sandbox");
    assert!(!f.executor.has("t1"));
}

#[tokio::test]
async fn oom_kills_are_reported_as_such() {
    let mut f = fixture();
    let id = f.start("t1").await;
    assert_eq!(f.next().await.state, TaskState::Running);
    f.engine.exit(&id, 137, true);
    let end = f.next().await;
    assert_eq!(
        (end.state, end.reason),
        (TaskState::Failed, Some(Reason::OomKilled))
    );
}

#[tokio::test]
async fn kill_sends_sigterm_then_sigkill_after_the_grace() {
    let mut f = fixture();
    f.engine.ignore_sigterm(true);
    let id = f.start("t1").await;
    assert_eq!(f.next().await.state, TaskState::Running);
    f.executor
        .kill("t1", Some(Duration::from_millis(100)))
        .unwrap_or_else(|e| panic!("{e}"));
    let end = f.next().await;
    assert_eq!(
        (end.state, end.reason),
        (TaskState::Killed, Some(Reason::Killed))
    );
    assert_eq!(f.engine.signals(&id), vec!["SIGTERM", "SIGKILL"]);
    assert!(f.engine.container_ids().is_empty());
    assert!(
        f.executor.kill("t1", None).is_err(),
        "an ended task is unknown"
    );
}

#[tokio::test]
async fn a_missing_image_fails_the_launch_and_says_how_to_load_it() {
    let mut f = fixture();
    let mut t = launch("t1");
    if let Some(d) = t.docker.as_mut() {
        d.image = "ocean/absent:1".into();
    }
    let task =
        container_task(&t, "agent-a", &DockerConfig::new("h")).unwrap_or_else(|e| panic!("{e}"));
    assert!(f.executor.launch(task).await.is_err());
    let end = f.next().await;
    assert_eq!(
        (end.state, end.reason),
        (TaskState::Failed, Some(Reason::LaunchFailed))
    );
    let message = end.message.unwrap_or_default();
    assert!(
        message.starts_with("container.docker.image:") && message.contains("docker load"),
        "{message}"
    );
    assert!(f.engine.container_ids().is_empty());
}

#[tokio::test]
async fn a_new_executor_readopts_running_containers_and_reports_ended_ones() {
    let f = fixture();
    let running = f.start("run").await;
    let ended = f.start("done").await;
    let Fixture {
        engine,
        executor,
        _dir,
        ..
    } = f;
    drop(executor); // the agent dies; its containers do not
    engine.exit(&ended, 0, false);

    let mut f = fixture_on(engine, _dir);
    let recovery = f.executor.recover().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(recovery.adopted, vec!["run".to_string()]);
    assert_eq!(recovery.ended.len(), 1);
    assert_eq!(recovery.ended[0].state, TaskState::Finished);
    let mut two = [f.next().await, f.next().await];
    two.sort_by(|a, b| a.task_id.cmp(&b.task_id));
    assert_eq!(
        (two[0].task_id.as_str(), two[0].state),
        ("done", TaskState::Finished)
    );
    assert_eq!(
        (two[1].task_id.as_str(), two[1].state, two[1].reason),
        ("run", TaskState::Running, Some(Reason::Recovered))
    );
    assert_eq!(
        f.engine.container_ids(),
        vec![running.clone()],
        "the ended one is removed"
    );

    // The adopted container is followed: its end is reported.
    f.engine.exit(&running, 0, false);
    assert_eq!(f.next().await.state, TaskState::Finished);
}

#[tokio::test]
async fn an_unreachable_engine_is_reported_unavailable() {
    let engine = MemoryEngine::new();
    engine.set_unavailable(Some("connection refused"));
    let (found, info) = probe(Arc::new(engine), &DockerConfig::new("h")).await;
    assert!(found.is_none());
    assert_eq!(info.name, EXECUTOR_NAME);
    assert!(
        !info.available && info.reason.contains("connection refused"),
        "{info:?}"
    );

    let mut config = DockerConfig::new("h");
    config.allow_privileged = true;
    let (found, info) = probe(Arc::new(MemoryEngine::new()), &config).await;
    assert!(found.is_some() && info.available);
    assert_eq!(info.features, vec![FEATURE_PRIVILEGED.to_string()]);
}
