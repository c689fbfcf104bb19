//! The Docker executor: runs container tasks through a [`ContainerEngine`],
//! learns of their ends from the engine's event stream, kills them with a
//! grace period, and keeps their output after they end. Re-adoption after
//! an agent restart is in `recover.rs`.
//!
//! ```text
//! launch ─► [pull] ─► create (labels: agent, task, job) ─► start ─► RUNNING
//! kill   ─► SIGTERM ── grace ──► SIGKILL
//! events: oom ─► remember ; die ─► finish(): inspect (exit code, OOMKilled)
//!         ─► copy logs to the sandbox ─► remove container ─► final status
//! stream lost ─► resubscribe ─► inspect every tracked container once
//! recover ─► list by label: running ─► adopt (RUNNING, recovered)
//!                          ended   ─► finish (its real exit code)
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::engine::{ContainerEngine, EngineError, EngineEvent, LogStream};
use super::launch::{ContainerTask, LABEL_AGENT};
use crate::error::{Error, Result};
use crate::sandbox;
use crate::task::{classify_exit, ExitFacts, ExitInfo, Reason, TaskState, TaskStatus};

/// Wait before subscribing again after the event stream broke.
const RESUBSCRIBE_DELAY: Duration = Duration::from_secs(1);
/// After (re)subscribing, the tracked containers are inspected once this
/// much later, to catch ends that happened while no stream was up.
const RESYNC_DELAY: Duration = Duration::from_millis(200);

#[derive(Debug, Default)]
pub(super) struct Tracked {
    /// Container id; empty while it is being created.
    pub(super) container: String,
    pub(super) kill_grace: Duration,
    pub(super) kill_requested: bool,
    /// An oom event was seen.
    pub(super) oom: bool,
    /// RUNNING was reported.
    pub(super) started: bool,
    /// A die event arrived before RUNNING was reported.
    pub(super) died_early: bool,
    /// `finish` is under way.
    pub(super) ending: bool,
}

pub(super) struct Inner {
    pub(super) engine: Arc<dyn ContainerEngine>,
    pub(super) agent_id: String,
    data_dir: PathBuf,
    sandbox_retention: Duration,
    tasks: Mutex<HashMap<String, Tracked>>,
    status_tx: mpsc::UnboundedSender<TaskStatus>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("agent_id", &self.agent_id)
            .finish_non_exhaustive()
    }
}

/// The Docker executor. Dropping it stops following the containers but
/// leaves them running; a new executor's [`DockerExecutor::recover`]
/// picks them up again.
#[derive(Debug)]
pub struct DockerExecutor {
    pub(super) inner: Arc<Inner>,
    watcher: JoinHandle<()>,
}

impl Drop for DockerExecutor {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

impl Inner {
    pub(super) fn tasks(&self) -> MutexGuard<'_, HashMap<String, Tracked>> {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn emit(&self, status: TaskStatus) {
        let _ = self.status_tx.send(status);
    }

    fn task_of(&self, container: &str) -> Option<String> {
        self.tasks()
            .iter()
            .find(|(_, t)| t.container == container)
            .map(|(task, _)| task.clone())
    }

    /// A die event (or a resync that found the container stopped).
    fn on_die(self: &Arc<Self>, container: &str) {
        let Some(task) = self.task_of(container) else {
            return;
        };
        {
            let mut tasks = self.tasks();
            let Some(t) = tasks.get_mut(&task) else {
                return;
            };
            if t.ending {
                return;
            }
            if !t.started {
                t.died_early = true;
                return;
            }
            t.ending = true;
        }
        let inner = Arc::clone(self);
        tokio::spawn(async move {
            inner.finish(&task, None).await;
        });
    }

    fn on_oom(&self, container: &str) {
        let mut tasks = self.tasks();
        if let Some(t) = tasks.values_mut().find(|t| t.container == container) {
            t.oom = true;
        }
    }

    /// Inspects every tracked, started container once: any that stopped
    /// while no event stream was up is finished now.
    async fn resync(self: &Arc<Self>) {
        let containers: Vec<String> = self
            .tasks()
            .values()
            .filter(|t| t.started && !t.ending && !t.container.is_empty())
            .map(|t| t.container.clone())
            .collect();
        for c in containers {
            match self.engine.inspect(&c).await {
                Ok(info) if info.running => {}
                Ok(_) | Err(EngineError::NotFound(_)) => self.on_die(&c),
                Err(error) => debug!(%error, container = %c, "resync: cannot inspect"),
            }
        }
    }

    /// Follows the engine's events for this agent's containers, for ever.
    async fn watch(self: Arc<Self>) {
        loop {
            let mut events = self.engine.events(LABEL_AGENT, &self.agent_id);
            let resync = {
                let inner = Arc::clone(&self);
                tokio::spawn(async move {
                    tokio::time::sleep(RESYNC_DELAY).await;
                    inner.resync().await;
                })
            };
            while let Some(event) = events.next().await {
                match event {
                    Ok(EngineEvent::Die { id }) => self.on_die(&id),
                    Ok(EngineEvent::Oom { id }) => self.on_oom(&id),
                    Err(error) => {
                        warn!(%error, "docker event stream failed; resubscribing");
                        break;
                    }
                }
            }
            resync.abort();
            tokio::time::sleep(RESUBSCRIBE_DELAY).await;
        }
    }

    /// Copies a container's output into the task's sandbox, where the log
    /// server finds it once the container is gone.
    async fn keep_logs(&self, task: &str, container: &str) {
        let dir = sandbox::sandbox_dir(&self.data_dir, task);
        if let Err(error) = sandbox::create(&dir) {
            warn!(%error, %task, "cannot create sandbox for container logs");
            return;
        }
        for (name, stream) in [("stdout", LogStream::Stdout), ("stderr", LogStream::Stderr)] {
            let path = dir.join(name);
            let mut file = match tokio::fs::File::create(&path).await {
                Ok(f) => f,
                Err(error) => {
                    warn!(%error, path = %path.display(), "cannot write container log");
                    continue;
                }
            };
            let mut logs = self.engine.logs(container, stream, None, false);
            while let Some(chunk) = logs.next().await {
                match chunk {
                    Ok(bytes) => {
                        if let Err(error) = file.write_all(&bytes).await {
                            warn!(%error, %task, "cannot write container log");
                            break;
                        }
                    }
                    Err(error) => {
                        debug!(%error, %task, "container logs ended");
                        break;
                    }
                }
            }
        }
    }

    /// Everything after a container's end: exit code and OOM from the
    /// engine, logs into the sandbox, the container removed, the final
    /// status reported. `outcome` overrides the classification (recovery
    /// of a container that never started).
    pub(super) async fn finish(
        self: &Arc<Self>,
        task: &str,
        outcome: Option<(TaskState, Reason, String)>,
    ) -> TaskStatus {
        let (container, kill_requested, oom_event) = {
            let tasks = self.tasks();
            match tasks.get(task) {
                Some(t) => (t.container.clone(), t.kill_requested, t.oom),
                None => (String::new(), false, false),
            }
        };
        let inspected = self.engine.inspect(&container).await;
        let (exit, oom_killed) = match &inspected {
            Ok(i) => (
                ExitInfo::Code(i32::try_from(i.exit_code).unwrap_or(-1)),
                i.oom_killed || oom_event,
            ),
            Err(error) => {
                warn!(%error, %task, "cannot inspect ended container");
                (ExitInfo::Unknown, oom_event)
            }
        };
        self.keep_logs(task, &container).await;
        match self.engine.remove(&container).await {
            Ok(()) | Err(EngineError::NotFound(_)) => {}
            Err(error) => warn!(%error, %task, %container, "cannot remove container"),
        }
        self.tasks().remove(task);
        let (state, reason, message) = match outcome {
            Some(o) => o,
            None => {
                let (state, reason) = classify_exit(&ExitFacts {
                    exit,
                    oom_killed,
                    kill_requested,
                });
                (state, reason, format!("container {}", short(&container)))
            }
        };
        let mut status = TaskStatus::new(task, state);
        status.reason = Some(reason);
        status.message = Some(message);
        if let ExitInfo::Code(code) = exit {
            status.exit_code = Some(code);
        }
        info!(%task, state = ?state, reason = reason.as_str(), exit_code = ?status.exit_code, "container task ended");
        self.emit(status.clone());
        let dir = sandbox::sandbox_dir(&self.data_dir, task);
        let retention = self.sandbox_retention;
        tokio::spawn(async move {
            tokio::time::sleep(retention).await;
            if let Err(error) = sandbox::remove(&dir) {
                warn!(%error, "cannot remove expired sandbox");
            }
        });
        status
    }

    async fn try_launch(self: &Arc<Self>, task: &ContainerTask) -> std::result::Result<(), String> {
        let spec = &task.spec;
        let image = &spec.image;
        if task.force_pull {
            self.engine
                .pull(image)
                .await
                .map_err(|e| format!("container.docker.image: cannot pull {image}: {e}"))?;
        }
        let id = match self.engine.create(spec).await {
            Ok(id) => id,
            Err(EngineError::NotFound(_)) => {
                // The image is missing: a registry may have it.
                if let Err(e) = self.engine.pull(image).await {
                    return Err(format!("container.docker.image: {image} is not on this agent and cannot be pulled ({e}); load it with `docker load`"));
                }
                self.engine
                    .create(spec)
                    .await
                    .map_err(|e| format!("create container: {e}"))?
            }
            Err(EngineError::Conflict(_)) => {
                // A leftover of an earlier attempt at this very task.
                warn!(task = %task.task_id, name = %spec.name, "removing a leftover container");
                let _ = self.engine.remove(&spec.name).await;
                self.engine
                    .create(spec)
                    .await
                    .map_err(|e| format!("create container: {e}"))?
            }
            Err(e) => return Err(format!("create container: {e}")),
        };
        if let Some(t) = self.tasks().get_mut(&task.task_id) {
            t.container = id.clone();
        }
        if let Err(e) = self.engine.start(&id).await {
            let _ = self.engine.remove(&id).await;
            return Err(format!("start container: {e}"));
        }
        let pid = self.engine.inspect(&id).await.map(|i| i.pid).unwrap_or(0);
        let died = {
            let mut tasks = self.tasks();
            let Some(t) = tasks.get_mut(&task.task_id) else {
                return Ok(());
            };
            t.started = true;
            let mut status = TaskStatus::new(&task.task_id, TaskState::Running);
            status.pid = i32::try_from(pid).ok().filter(|p| *p > 0);
            status.message = Some(format!("container {}", short(&id)));
            self.emit(status);
            t.ending = t.died_early;
            t.died_early
        };
        if died {
            let inner = Arc::clone(self);
            let task_id = task.task_id.clone();
            tokio::spawn(async move {
                inner.finish(&task_id, None).await;
            });
        }
        Ok(())
    }
}

/// The first 12 characters of a container id, as `docker ps` shows it.
pub(super) fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

impl DockerExecutor {
    /// An executor for `agent_id`'s containers. Statuses go to `status_tx`;
    /// ended tasks' output is kept in sandboxes under `data_dir` for
    /// `sandbox_retention`. Starts following the engine's events at once.
    pub fn new(
        engine: Arc<dyn ContainerEngine>,
        agent_id: &str,
        data_dir: PathBuf,
        sandbox_retention: Duration,
        status_tx: mpsc::UnboundedSender<TaskStatus>,
    ) -> Self {
        let inner = Arc::new(Inner {
            engine,
            agent_id: agent_id.to_string(),
            data_dir,
            sandbox_retention,
            tasks: Mutex::new(HashMap::new()),
            status_tx,
        });
        let watcher = tokio::spawn(Arc::clone(&inner).watch());
        Self { inner, watcher }
    }

    /// True if the task is a container this executor follows.
    pub fn has(&self, task_id: &str) -> bool {
        self.inner.tasks().contains_key(task_id)
    }

    /// The container of a started task that has not ended.
    pub fn running_container(&self, task_id: &str) -> Option<String> {
        self.inner
            .tasks()
            .get(task_id)
            .filter(|t| t.started && !t.ending && !t.container.is_empty())
            .map(|t| t.container.clone())
    }

    /// The engine the executor talks to (health checks exec through it).
    pub fn engine(&self) -> Arc<dyn ContainerEngine> {
        Arc::clone(&self.inner.engine)
    }

    /// Ids of the tasks followed, sorted.
    pub fn tasks(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.inner.tasks().keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Creates and starts a container; RUNNING is reported once it runs.
    /// On failure nothing is left behind and FAILED (`launch_failed`, with
    /// the reason) is reported.
    pub async fn launch(&self, task: ContainerTask) -> Result<()> {
        {
            let mut tasks = self.inner.tasks();
            if tasks.contains_key(&task.task_id) {
                return Err(Error::DuplicateTask(task.task_id.clone()));
            }
            tasks.insert(
                task.task_id.clone(),
                Tracked {
                    kill_grace: task.kill_grace,
                    ..Tracked::default()
                },
            );
        }
        match self.inner.try_launch(&task).await {
            Ok(()) => Ok(()),
            Err(message) => {
                warn!(task = %task.task_id, %message, "container launch failed");
                self.inner.tasks().remove(&task.task_id);
                let mut status = TaskStatus::new(&task.task_id, TaskState::Failed);
                status.reason = Some(Reason::LaunchFailed);
                status.message = Some(message.clone());
                self.inner.emit(status);
                Err(Error::Launch {
                    task: task.task_id,
                    message,
                })
            }
        }
    }

    /// Stops a container: SIGTERM now, SIGKILL after `grace` (default: the
    /// task's). Returns at once; KILLED is reported when it has died.
    pub fn kill(&self, task_id: &str, grace: Option<Duration>) -> Result<()> {
        let (container, grace) = {
            let mut tasks = self.inner.tasks();
            let t = tasks
                .get_mut(task_id)
                .filter(|t| !t.container.is_empty())
                .ok_or_else(|| Error::UnknownTask(task_id.to_string()))?;
            t.kill_requested = true;
            (t.container.clone(), grace.unwrap_or(t.kill_grace))
        };
        let inner = Arc::clone(&self.inner);
        let task = task_id.to_string();
        tokio::spawn(async move {
            info!(%task, grace_ms = grace.as_millis() as u64, "stopping container: SIGTERM");
            if let Err(error) = inner.engine.signal(&container, "SIGTERM").await {
                debug!(%error, %task, "SIGTERM not delivered");
            }
            tokio::time::sleep(grace).await;
            let alive = inner
                .tasks()
                .get(&task)
                .is_some_and(|t| t.container == container && !t.ending);
            if alive {
                info!(%task, "grace period over: SIGKILL");
                if let Err(error) = inner.engine.signal(&container, "SIGKILL").await {
                    debug!(%error, %task, "SIGKILL not delivered");
                }
            }
        });
        Ok(())
    }

    /// The output of a running container, for the log server; `None` when
    /// the task is not a running container here (its sandbox may hold the
    /// output of one that ended).
    pub fn live_logs(
        &self,
        task_id: &str,
        stream: LogStream,
        tail: Option<u64>,
        follow: bool,
    ) -> Option<BoxStream<'static, std::io::Result<Bytes>>> {
        let container = self
            .inner
            .tasks()
            .get(task_id)
            .filter(|t| !t.container.is_empty() && !t.ending)
            .map(|t| t.container.clone())?;
        Some(
            self.inner
                .engine
                .logs(&container, stream, tail, follow)
                .map_err(std::io::Error::other)
                .boxed(),
        )
    }
}
