//! The crate's error type. Every variant carries the context (path, task,
//! value) that an operator needs to act on it.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in the agent's executor.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What we were doing (`"create cgroup"`, `"write"`, ...).
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// No usable cgroup hierarchy was found or a controller is missing.
    #[error("cgroups: {0}")]
    Cgroup(String),
    /// A cgroup could not be emptied and removed before the deadline.
    #[error("cgroup {} still busy after killing its processes", path.display())]
    CgroupBusy {
        /// The directory that could not be removed.
        path: PathBuf,
    },
    /// The task could not be started.
    #[error("launch of task {task}: {message}")]
    Launch {
        /// Task id.
        task: String,
        /// What failed.
        message: String,
    },
    /// The task spec is not acceptable.
    #[error("invalid task spec for {task}: {message}")]
    InvalidSpec {
        /// Task id.
        task: String,
        /// What is wrong.
        message: String,
    },
    /// No task with this id is known to the executor.
    #[error("unknown task {0}")]
    UnknownTask(String),
    /// A task with this id is already running.
    #[error("task {0} already exists")]
    DuplicateTask(String),
    /// The agent's port range has no free port left, or a fixed port is taken.
    #[error("ports: {0}")]
    Ports(String),
    /// A `LOW-HIGH` range or `key=value` list could not be parsed.
    #[error("cannot parse {what} {input:?}: {message}")]
    Parse {
        /// What was being parsed (`"port range"`, `"resources"`).
        what: &'static str,
        /// The offending input.
        input: String,
        /// Why it was rejected, with the expected form.
        message: String,
    },
    /// A checkpoint file could not be encoded or decoded.
    #[error("checkpoint {}: {source}", path.display())]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// The session with the masters could not run.
    #[error("session: {0}")]
    Session(String),
    /// A system call failed.
    #[error("{op}: {source}")]
    Sys {
        /// What we were doing.
        op: &'static str,
        /// The errno.
        #[source]
        source: nix::Error,
    },
}

impl Error {
    /// Wraps an I/O error with what we were doing and where.
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}
