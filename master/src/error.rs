//! The master's error type. Mapped to HTTP and gRPC status codes once, in
//! `api::error`.

use std::net::SocketAddr;

/// Everything that can go wrong inside a master.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// RocksDB failed; the master cannot continue safely on this data dir.
    #[error("storage error in {context}: {source}")]
    Storage {
        context: &'static str,
        #[source]
        source: rocksdb::Error,
    },
    /// Stored bytes could not be decoded (corruption or a version mismatch).
    #[error("corrupt {what} in the data dir: {reason}")]
    Corrupt { what: &'static str, reason: String },
    /// raft-rs refused an operation.
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    /// No leader is known: a majority of masters is unreachable or an
    /// election is in progress.
    #[error("no leader: {0}")]
    NoLeader(String),
    /// The write was proposed but its outcome is unknown (leadership changed
    /// or the cluster lost its quorum while it was in flight).
    #[error("write not committed: {0}")]
    NotCommitted(String),
    /// The requested thing does not exist.
    #[error("{kind} '{id}' not found")]
    NotFound { kind: &'static str, id: String },
    /// The request is well-formed but not allowed now (for example a second
    /// membership change while one is pending).
    #[error("{0}")]
    Conflict(String),
    /// The request itself is invalid.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// A job spec was rejected: every problem, each naming its field.
    #[error("invalid job spec: {0}")]
    Spec(#[from] ocean_spec::SpecError),
    /// A compare-and-set write found another version than it expected
    /// (`actual` 0: the object does not exist).
    #[error("{kind} '{id}' is at version {actual}, not the expected {expected}")]
    VersionConflict {
        kind: &'static str,
        id: String,
        expected: u64,
        actual: u64,
    },
    /// A lease is held by another holder.
    #[error("lease '{name}' is held by '{holder}' until {expires_ms} ms")]
    LeaseHeld {
        name: String,
        holder: String,
        expires_ms: u64,
    },
    /// ACLs are on and the request carried no token, or one the cluster
    /// does not know.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The caller's token lacks `right` on `node` (the service-tree node
    /// or object the request touches).
    #[error("token '{who}' lacks the {right} right on '{node}'")]
    Forbidden {
        who: String,
        node: String,
        right: &'static str,
    },
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// Configuration is invalid.
    #[error("config {field}: {reason}")]
    Config { field: String, reason: String },
    /// The master is shutting down.
    #[error("master is shutting down")]
    ShuttingDown,
    /// The data dir's filesystem has no room for the write: it was not
    /// proposed (or waits for space), and writes resume once there is room.
    #[error("disk full: {0}")]
    DiskFull(String),
    /// Talking to another master failed.
    #[error("peer {peer}: {reason}")]
    Peer { peer: u64, reason: String },
    /// An agent could not be reached or failed.
    #[error("{0}")]
    Agent(String),
    /// Any other I/O error.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// Result with the master's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shorthand to attach a context to a RocksDB error.
pub(crate) fn storage(context: &'static str) -> impl FnOnce(rocksdb::Error) -> Error {
    move |source| Error::Storage { context, source }
}

/// Shorthand for a decoding failure.
pub(crate) fn corrupt(what: &'static str, reason: impl ToString) -> Error {
    Error::Corrupt {
        what,
        reason: reason.to_string(),
    }
}
