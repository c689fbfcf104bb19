//! The native executor: launches tasks as processes in their own session and
//! cgroup, supervises them, kills them, checkpoints them, and re-adopts them
//! after an agent restart.
//!
//! ```text
//! launch(spec) ─► ports ─► sandbox ─► cgroup ─► spawn wrapper ─► checkpoint ─► supervise
//!                                                  │                              │
//!                                                  └─ joins cgroup, execs task    └─► statuses
//! recover() ─► checkpoints ─► alive & same start time? ─► adopt  : else report ended
//! ```

mod env;
mod recover;
mod supervise;

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{info, warn};

pub use env::{port_env_name, task_env};

use crate::cgroup::{CgroupDriver, CgroupLimits, TaskCgroup, DEFAULT_PIDS_LIMIT};
use crate::checkpoint::{self, TaskCheckpoint};
use crate::error::{Error, Result};
use crate::ports::{PortAllocator, PortRange};
use crate::procfs;
use crate::release::{self, ReleaseError, ReleaseSpec, TaskFacts};
use crate::sandbox;
use crate::task::{now_ms, Reason, TaskCommand, TaskSpec, TaskState, TaskStatus};
use crate::wrapper::wrapper_args;
use supervise::{watch, Waiter};

/// How the executor starts the exec wrapper (see [`crate::wrapper_main`]):
/// `program args... --cgroup DIR... -- task argv...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrapperCommand {
    /// The binary, e.g. the `ocean` executable.
    pub program: PathBuf,
    /// Arguments before the wrapper's own, e.g. `["agent", "exec-wrapper"]`.
    pub args: Vec<OsString>,
}

/// Settings of the executor.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// The agent's data dir: `sandboxes/` and `checkpoints/` live under it.
    pub data_dir: PathBuf,
    /// How to start the exec wrapper.
    pub wrapper: WrapperCommand,
    /// The host name tasks see in `HOST`.
    pub hostname: String,
    /// `pids.max` for tasks whose spec does not set one.
    pub default_pids_limit: u64,
    /// Size cap of each of a task's `stdout` and `stderr` files, in bytes.
    pub log_cap_bytes: u64,
    /// How long an ended task's sandbox is kept for its logs.
    pub sandbox_retention: Duration,
    /// How often re-adopted tasks are polled and log sizes are checked.
    pub poll_interval: Duration,
}

impl ExecutorConfig {
    /// Defaults: this host's name, pids limit 4096, 10 MiB per log file,
    /// sandboxes kept 24 hours, 200 ms polling.
    pub fn new(data_dir: &Path, wrapper: WrapperCommand) -> Self {
        let hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".to_string());
        Self {
            data_dir: data_dir.to_path_buf(),
            wrapper,
            hostname,
            default_pids_limit: DEFAULT_PIDS_LIMIT,
            log_cap_bytes: 10 << 20,
            sandbox_retention: Duration::from_secs(24 * 3600),
            poll_interval: Duration::from_millis(200),
        }
    }
}

/// A task the executor is running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunningTask {
    /// Task id.
    pub task_id: String,
    /// Pid of the main process (also its process group and session id).
    pub pid: i32,
    /// Host ports, in `PORT0..N` order.
    pub ports: Vec<u16>,
    /// Sandbox (working dir, `stdout`, `stderr`).
    pub sandbox: PathBuf,
    /// Cgroup directories.
    pub cgroup: TaskCgroup,
}

/// What [`Executor::recover`] found.
#[derive(Debug, Clone, Default)]
pub struct Recovery {
    /// Tasks still alive, now supervised again.
    pub adopted: Vec<RunningTask>,
    /// Final statuses of tasks that ended while the agent was down.
    pub ended: Vec<TaskStatus>,
    /// Task cgroups without a checkpoint that were killed and removed.
    pub orphan_cgroups: Vec<String>,
}

struct TaskEntry {
    info: RunningTask,
    /// The task's job and release version: releases in use are kept.
    job_id: String,
    release_version: Option<u64>,
    kill_tx: mpsc::UnboundedSender<Duration>,
    kill_grace: Duration,
    supervisor: Option<JoinHandle<()>>,
}

pub(crate) struct Inner {
    config: ExecutorConfig,
    cgroups: Arc<dyn CgroupDriver>,
    ports: Mutex<PortAllocator>,
    tasks: Mutex<HashMap<String, TaskEntry>>,
    status_tx: mpsc::UnboundedSender<TaskStatus>,
    /// One lock per job: its release cache is changed by one launch at a
    /// time.
    release_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Inner {
    fn emit(&self, status: TaskStatus) {
        // A dropped receiver means nobody listens any more; nothing to do.
        let _ = self.status_tx.send(status);
    }

    fn tasks(&self) -> MutexGuard<'_, HashMap<String, TaskEntry>> {
        self.tasks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn ports(&self) -> MutexGuard<'_, PortAllocator> {
        self.ports
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn release_ports(&self, ports: &[u16]) {
        self.ports().release(ports);
    }

    fn release_lock(&self, job_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .release_locks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(locks.entry(job_id.to_string()).or_default())
    }

    /// Release versions of `job_id` that supervised tasks run.
    fn releases_in_use(&self, job_id: &str) -> BTreeSet<u64> {
        self.tasks()
            .values()
            .filter(|e| e.job_id == job_id)
            .filter_map(|e| e.release_version)
            .collect()
    }

    fn forget(&self, task_id: &str) {
        self.tasks().remove(task_id);
    }

    fn schedule_sandbox_removal(&self, dir: PathBuf) {
        let retention = self.config.sandbox_retention;
        tokio::spawn(async move {
            tokio::time::sleep(retention).await;
            if let Err(error) = sandbox::remove(&dir) {
                warn!(%error, "cannot remove expired sandbox");
            }
        });
    }
}

/// True if `pid` is listed in `dir/cgroup.procs`.
fn in_cgroup(dir: &Path, pid: i32) -> bool {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|procs| procs.lines().any(|l| l.trim().parse() == Ok(pid)))
        .unwrap_or(false)
}

/// Checks a task id is safe as a file and cgroup name.
pub(crate) fn check_task_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 200
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidSpec {
            task: id.to_string(),
            message: "task_id must be 1-200 characters of [A-Za-z0-9._-], not starting with '.'"
                .into(),
        })
    }
}

/// The native executor. Dropping it stops supervision but leaves the tasks
/// running, exactly like an agent that dies; [`Executor::recover`] in a new
/// executor on the same data dir picks them up again.
#[derive(Debug)]
pub struct Executor {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("data_dir", &self.config.data_dir)
            .finish_non_exhaustive()
    }
}

impl Executor {
    /// An executor with no tasks, and the receiver of its status changes.
    pub fn new(
        config: ExecutorConfig,
        cgroups: Arc<dyn CgroupDriver>,
        ports: PortRange,
    ) -> (Self, mpsc::UnboundedReceiver<TaskStatus>) {
        let (status_tx, status_rx) = mpsc::unbounded_channel();
        let inner = Inner {
            config,
            cgroups,
            ports: Mutex::new(PortAllocator::new(ports)),
            tasks: Mutex::new(HashMap::new()),
            status_tx,
            release_locks: Mutex::new(HashMap::new()),
        };
        (
            Self {
                inner: Arc::new(inner),
            },
            status_rx,
        )
    }

    /// A sender on the executor's status channel, for other executors
    /// whose statuses the same receiver should get.
    pub fn status_sender(&self) -> mpsc::UnboundedSender<TaskStatus> {
        self.inner.status_tx.clone()
    }

    /// The cgroup driver in use.
    pub fn cgroups(&self) -> &Arc<dyn CgroupDriver> {
        &self.inner.cgroups
    }

    /// The sandbox directory of a task (it may not exist).
    pub fn sandbox_dir(&self, task_id: &str) -> PathBuf {
        sandbox::sandbox_dir(&self.inner.config.data_dir, task_id)
    }

    /// The tasks being supervised.
    pub fn tasks(&self) -> Vec<RunningTask> {
        let mut tasks: Vec<RunningTask> = self
            .inner
            .tasks()
            .values()
            .map(|e| e.info.clone())
            .collect();
        tasks.sort_by(|a, b| a.task_id.cmp(&b.task_id));
        tasks
    }

    /// Number of free ports in the agent's range.
    pub fn free_ports(&self) -> usize {
        self.inner.ports().free()
    }

    /// Launches a task. Emits STAGING, then STARTING once the process exists,
    /// then (from its supervisor) RUNNING once it is inside its cgroup. On
    /// error nothing is left behind and FAILED (`launch_failed`) is emitted.
    pub async fn launch(&self, spec: TaskSpec) -> Result<RunningTask> {
        check_task_id(&spec.task_id)?;
        if self.inner.tasks().contains_key(&spec.task_id) {
            return Err(Error::DuplicateTask(spec.task_id.clone()));
        }
        self.inner
            .emit(TaskStatus::new(&spec.task_id, TaskState::Staging));
        match self.try_launch(&spec).await {
            Ok(task) => Ok(task),
            Err(error) => {
                warn!(%error, task = %spec.task_id, "launch failed");
                let mut status = TaskStatus::new(&spec.task_id, TaskState::Failed);
                status.reason = Some(Reason::LaunchFailed);
                status.message = Some(error.to_string());
                self.inner.emit(status);
                Err(error)
            }
        }
    }

    async fn try_launch(&self, spec: &TaskSpec) -> Result<RunningTask> {
        let task = spec.task_id.clone();
        let argv = match &spec.command {
            TaskCommand::Shell(cmd) => vec!["/bin/sh".to_string(), "-c".to_string(), cmd.clone()],
            TaskCommand::Args(args) if !args.is_empty() => args.clone(),
            TaskCommand::Args(_) => {
                return Err(Error::InvalidSpec {
                    task,
                    message: "command: args must not be empty".into(),
                })
            }
        };
        let config = &self.inner.config;
        let ports = self.inner.ports().allocate(&spec.ports)?;
        let mut cleanup = LaunchCleanup {
            inner: &self.inner,
            ports: ports.clone(),
            cgroup: None,
        };

        let sandbox_dir = sandbox::sandbox_dir(&config.data_dir, &task);
        let (stdout, stderr) = sandbox::create(&sandbox_dir)?;
        if spec.persistent_volume {
            let volume = sandbox::volume_dir(&config.data_dir, &spec.job_id);
            std::fs::create_dir_all(&volume).map_err(|e| Error::Launch {
                task: task.clone(),
                message: format!("persistent volume {}: {e}", volume.display()),
            })?;
        }
        if let Some(release) = &spec.release {
            self.install_release(spec, release, &ports, &sandbox_dir)
                .await
                .map_err(|e| Error::Launch {
                    task: task.clone(),
                    message: e.to_string(),
                })?;
        }
        let limits = CgroupLimits {
            cpus: (spec.cpus > 0.0).then_some(spec.cpus),
            memory_bytes: (spec.mem_mib > 0).then_some(spec.mem_mib << 20),
            pids: Some(spec.pids_limit.unwrap_or(config.default_pids_limit)),
        };
        let cgroups = Arc::clone(&self.inner.cgroups);
        let name = task.clone();
        let cgroup = tokio::task::spawn_blocking(move || cgroups.create(&name, &limits))
            .await
            .map_err(|e| Error::Launch {
                task: task.clone(),
                message: format!("cgroup creation panicked: {e}"),
            })??;
        cleanup.cgroup = Some(cgroup.clone());

        let agent_path = std::env::var("PATH").ok();
        let env = task_env(
            spec,
            &ports,
            &config.hostname,
            &sandbox_dir,
            agent_path.as_deref(),
        );
        let mut command = tokio::process::Command::new(&config.wrapper.program);
        command
            .args(&config.wrapper.args)
            .args(wrapper_args(&cgroup.dirs(), &argv))
            .env_clear()
            .envs(&env)
            .current_dir(&sandbox_dir)
            .stdin(std::process::Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(false);
        let child = command.spawn().map_err(|e| Error::Launch {
            task: task.clone(),
            message: format!("spawn {}: {e}", config.wrapper.program.display()),
        })?;
        let pid = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .ok_or_else(|| Error::Launch {
                task: task.clone(),
                message: "spawned process has no pid".into(),
            })?;
        // Our unreaped child cannot disappear from /proc before we wait for it.
        let start_time = procfs::read_stat(pid)
            .map(|s| s.start_time)
            .ok_or_else(|| Error::Launch {
                task: task.clone(),
                message: format!("no /proc/{pid}/stat"),
            })?;

        let checkpoint = TaskCheckpoint {
            task_id: task.clone(),
            pid,
            start_time,
            cgroup: cgroup.clone(),
            sandbox: sandbox_dir.clone(),
            ports: ports.clone(),
            spec: spec.clone(),
            launched_at_ms: now_ms(),
            kill_requested: false,
        };
        // Without a checkpoint a restart could not find the task: refuse to run it.
        let mut child = child;
        if let Err(error) = checkpoint::write(&config.data_dir, &checkpoint) {
            let _ = child.start_kill();
            return Err(error);
        }
        cleanup.disarm();

        let mut status = TaskStatus::new(&task, TaskState::Starting);
        status.pid = Some(pid);
        self.inner.emit(status);
        info!(%task, pid, ports = ?ports, "task started");
        let info = RunningTask {
            task_id: task,
            pid,
            ports,
            sandbox: sandbox_dir,
            cgroup,
        };
        self.supervise(
            checkpoint,
            Waiter::Child(child),
            false,
            info.clone(),
            spec.kill_grace,
        );
        Ok(info)
    }

    /// Lays out (or reuses) the task's release and renders its templates
    /// into the sandbox.
    async fn install_release(
        &self,
        spec: &TaskSpec,
        release: &ReleaseSpec,
        ports: &[u16],
        sandbox: &Path,
    ) -> std::result::Result<(), ReleaseError> {
        check_task_id(&spec.job_id).map_err(|e| ReleaseError::Io {
            op: "use the job id as a directory name",
            path: PathBuf::from(&spec.job_id),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()),
        })?;
        let config = &self.inner.config;
        let lock = self.inner.release_lock(&spec.job_id);
        let dir = {
            let _guard = lock.lock().await;
            let in_use = self.inner.releases_in_use(&spec.job_id);
            release::prepare(&config.data_dir, &spec.job_id, release, &in_use).await?
        };
        let facts = TaskFacts {
            task_id: &spec.task_id,
            job_id: &spec.job_id,
            host: &config.hostname,
            ports: spec
                .ports
                .iter()
                .zip(ports)
                .filter(|(request, _)| !request.name.is_empty())
                .map(|(request, port)| (request.name.clone(), *port))
                .collect(),
            sandbox,
        };
        release::install(&dir, release, &facts)
    }

    fn supervise(
        &self,
        checkpoint: TaskCheckpoint,
        waiter: Waiter,
        joined: bool,
        info: RunningTask,
        kill_grace: Duration,
    ) {
        let (kill_tx, kill_rx) = mpsc::unbounded_channel();
        let task_id = info.task_id.clone();
        let job_id = checkpoint.spec.job_id.clone();
        let release_version = checkpoint.spec.release.as_ref().map(|r| r.version);
        // Register before the supervisor can run (and `forget` the entry).
        let mut tasks = self.inner.tasks();
        let supervisor = tokio::spawn(watch(
            Arc::clone(&self.inner),
            checkpoint,
            waiter,
            kill_rx,
            joined,
        ));
        tasks.insert(
            task_id,
            TaskEntry {
                info,
                job_id,
                release_version,
                kill_tx,
                kill_grace,
                supervisor: Some(supervisor),
            },
        );
    }

    /// Kills a task: SIGTERM to its process group now, SIGKILL to the group
    /// and its whole cgroup after `grace` (default: the spec's kill grace).
    /// Returns at once; the final KILLED status arrives on the channel after
    /// the cgroup is gone.
    pub fn kill(&self, task_id: &str, grace: Option<Duration>) -> Result<()> {
        let tasks = self.inner.tasks();
        let entry = tasks
            .get(task_id)
            .ok_or_else(|| Error::UnknownTask(task_id.to_string()))?;
        entry
            .kill_tx
            .send(grace.unwrap_or(entry.kill_grace))
            .map_err(|_| Error::UnknownTask(task_id.to_string()))
    }
}

impl Drop for Executor {
    /// Stops supervising; the tasks keep running (see the type's doc).
    fn drop(&mut self) {
        for entry in self.inner.tasks().values_mut() {
            if let Some(supervisor) = entry.supervisor.take() {
                supervisor.abort();
            }
        }
    }
}

/// Undoes a half-done launch unless disarmed.
struct LaunchCleanup<'a> {
    inner: &'a Inner,
    ports: Vec<u16>,
    cgroup: Option<TaskCgroup>,
}

impl LaunchCleanup<'_> {
    fn disarm(&mut self) {
        self.ports.clear();
        self.cgroup = None;
    }
}

impl Drop for LaunchCleanup<'_> {
    fn drop(&mut self) {
        self.inner.release_ports(&self.ports);
        if let Some(cgroup) = self.cgroup.take() {
            // Kills a wrapper that may already be in it.
            if let Err(error) = self.inner.cgroups.destroy(&cgroup) {
                warn!(%error, "cannot remove cgroup of failed launch");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_are_safe_names() {
        assert!(check_task_id("cop.x_owt.y_job.web-1.3f2a").is_ok());
        for bad in ["", ".hidden", "a/b", "a b", "../x"] {
            assert!(check_task_id(bad).is_err(), "{bad:?}");
        }
    }
}
