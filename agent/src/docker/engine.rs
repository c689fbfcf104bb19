//! The container engine boundary: the few Docker operations the executor
//! needs, as one small trait. [`super::BollardEngine`] talks to the real
//! engine; [`super::MemoryEngine`] is the in-memory double for unit tests.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

/// Result alias for engine calls.
pub type EngineResult<T> = std::result::Result<T, EngineError>;

/// What an engine call can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The engine cannot be reached (socket missing, refused, timed out).
    #[error("docker engine unavailable: {0}")]
    Unavailable(String),
    /// No such container or image.
    #[error("not found: {0}")]
    NotFound(String),
    /// A container with this name exists already.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The engine refused the request.
    #[error("docker engine: {0}")]
    Engine(String),
}

/// Everything needed to create one container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerSpec {
    /// Container name (unique per engine).
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Replaces the image's ENTRYPOINT when set (`Some(vec![])` clears it).
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's CMD when set.
    pub cmd: Option<Vec<String>>,
    /// `KEY=value` pairs.
    pub env: Vec<String>,
    /// Container labels (Ocean's own and the job's).
    pub labels: BTreeMap<String, String>,
    /// CPU limit in 1e-9 cpus; 0 = none.
    pub nano_cpus: i64,
    /// Memory limit in bytes (swap included); 0 = none.
    pub memory_bytes: i64,
    /// Most processes and threads.
    pub pids_limit: i64,
    /// `bridge` or `host`.
    pub network: String,
    /// Published ports: container port, protocol, host port.
    pub ports: Vec<(u16, String, u16)>,
    /// Bind mounts, `host:container[:ro]`.
    pub binds: Vec<String>,
    /// Extended privileges.
    pub privileged: bool,
    /// Size cap of one json-file log file, bytes (two are kept).
    pub log_max_bytes: u64,
}

/// A container as the engine describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Full id.
    pub id: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// `created`, `running`, `exited`, ...
    pub status: String,
    /// True while the main process runs.
    pub running: bool,
    /// Exit code once it exited.
    pub exit_code: i64,
    /// The engine saw the OOM killer act in the container.
    pub oom_killed: bool,
    /// Host pid of the main process while it runs.
    pub pid: i64,
    /// When the container last started, ms since the Unix epoch (0 = never).
    pub started_at_ms: u64,
}

/// What a container uses now, from the engine's stats (the same cgroup
/// counters the native executor reads, as the engine reports them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContainerStats {
    /// CPU time used since it started, ns (`None`: not reported).
    pub cpu_usage_ns: Option<u64>,
    /// Time its cpu quota held it back, ns.
    pub cpu_throttled_ns: u64,
    /// Periods in which its cpu quota held it back.
    pub cpu_throttled_periods: u64,
    /// Anonymous memory (`rss` on cgroup v1, `anon` on v2), bytes.
    pub memory_rss_bytes: u64,
    /// Page cache (`cache` on v1, `file` on v2), bytes.
    pub memory_cache_bytes: u64,
    /// The highest charge (v1 only; else the current charge).
    pub memory_peak_bytes: u64,
    /// Its memory limit (`None`: unlimited or unknown).
    pub memory_limit_bytes: Option<u64>,
    /// Processes and threads.
    pub pids: u64,
}

/// A container event the executor cares about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineEvent {
    /// The container's main process ended.
    Die {
        /// Container id.
        id: String,
    },
    /// The OOM killer acted in the container.
    Oom {
        /// Container id.
        id: String,
    },
}

/// Which output of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// How a command run inside a container ([`ContainerEngine::exec`]) ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutcome {
    /// The command's exit code.
    pub exit_code: i64,
    /// The end of its combined output (at most [`EXEC_OUTPUT_KEPT`] bytes),
    /// for the health message.
    pub output: String,
}

/// How much of an exec's output is kept.
pub const EXEC_OUTPUT_KEPT: usize = 512;

/// The Docker operations the executor uses.
#[async_trait]
pub trait ContainerEngine: Send + Sync + fmt::Debug {
    /// The engine's version, e.g. `20.10.24 (API 1.41)`; fails when the
    /// engine cannot be reached.
    async fn version(&self) -> EngineResult<String>;
    /// Pulls an image.
    async fn pull(&self, image: &str) -> EngineResult<()>;
    /// Creates a container; returns its id.
    async fn create(&self, spec: &ContainerSpec) -> EngineResult<String>;
    /// Starts a created container.
    async fn start(&self, id: &str) -> EngineResult<()>;
    /// Describes a container.
    async fn inspect(&self, id: &str) -> EngineResult<ContainerInfo>;
    /// Sends a signal (`SIGTERM`, `SIGKILL`) to a running container.
    async fn signal(&self, id: &str, signal: &str) -> EngineResult<()>;
    /// Removes a container, killing it if it runs.
    async fn remove(&self, id: &str) -> EngineResult<()>;
    /// Every container (running or not) carrying the label `key=value`.
    async fn list(&self, key: &str, value: &str) -> EngineResult<Vec<ContainerInfo>>;
    /// Runs `cmd` inside the running container `id` (as `docker exec`
    /// does) and waits for it, at most `timeout`.
    async fn exec(&self, id: &str, cmd: &[String], timeout: Duration) -> EngineResult<ExecOutcome>;
    /// One reading of a running container's usage.
    async fn stats(&self, id: &str) -> EngineResult<ContainerStats>;
    /// Die and OOM events of containers labelled `key=value`, as they happen.
    fn events(&self, key: &str, value: &str) -> BoxStream<'static, EngineResult<EngineEvent>>;
    /// A container's output; `tail` = last lines only, `follow` = keep
    /// streaming until the container stops.
    fn logs(
        &self,
        id: &str,
        stream: LogStream,
        tail: Option<u64>,
        follow: bool,
    ) -> BoxStream<'static, EngineResult<Bytes>>;
}
