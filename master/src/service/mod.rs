//! The service layer: the one place where client writes are validated,
//! (later) authorised, compared against the version the writer expects,
//! and proposed. REST, gRPC and in-process callers (frameworks, the CLI's
//! in-process client, tests) are thin adapters over [`Service`].
//!
//! ```text
//!  REST (api::http) ─┐
//!  gRPC (api::grpc) ─┼─► Service<K> ── validate ─► CAS ─► K::propose(Command) ─► raft
//!  in-process ───────┘        │                               (Master: local or forwarded)
//!                             └─ reads: K::read(&ClusterState) after K::wait_read
//! ```
//!
//! [`Kernel`] is the boundary below the service: [`crate::Master`] is the
//! real one (raft, RocksDB, forwarding to the leader); [`LocalKernel`]
//! applies commands straight to an in-memory state, so the service's rules
//! are unit-tested without sockets, threads or disks.
//!
//! - [`jobs`]: put (with compare-and-set), get, list, delete, scale,
//!   reset back-off, spec versions;
//! - [`deployments`]: deployments, their actions, and rollback;
//! - [`kv`]: frameworks' stores and leader leases;
//! - [`agents`]: operators' agent status;
//! - [`tasks`]: task and agent reads;
//! - [`members`]: adding and removing masters;
//! - [`snapshot`]: master backup and restore (snapshot files);
//! - [`summary`]: the cluster in numbers and jobs a page at a time, from
//!   counts the state keeps;
//! - [`types`]: the typed responses every adapter serialises;
//! - [`views`]: tasks, agents, members and events as the API shows them.

pub mod agents;
pub mod deployments;
pub mod jobs;
pub mod kv;
mod local;
pub mod members;
pub mod snapshot;
pub mod summary;
pub mod tasks;
pub mod types;
pub mod views;

use std::future::Future;

use ocean_proto::internal::Command;

pub use local::LocalKernel;

use crate::error::{Error, Result};
use crate::kernel::state::{Applied, ClusterState, Outcome};

/// How a read waits before it is served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Wait (bounded) until the answering master has applied this version.
    pub min_version: Option<u64>,
    /// Make the read linearizable (a read index through the leader).
    pub consistent: bool,
}

/// What the service needs from the master beneath it.
pub trait Kernel: Clone + Send + Sync + std::fmt::Debug + 'static {
    /// Runs `f` on the state under its read lock.
    fn read<R>(&self, f: impl FnOnce(&ClusterState) -> R) -> R;

    /// Commits a command through the leader and returns what it did.
    fn propose(&self, cmd: Command) -> impl Future<Output = Result<Applied>> + Send;

    /// Waits as `opts` asks before a read.
    fn wait_read(&self, opts: ReadOptions) -> impl Future<Output = Result<()>> + Send;

    /// The DNS zone jobs' names are derived in.
    fn dns_domain(&self) -> &str;

    /// What this master, as leader, knows of an agent's stream.
    fn liveness(&self, _agent: &str) -> Option<tasks::AgentLiveness> {
        None
    }

    /// The change feed and the state it follows, for watches.
    fn watch_source(
        &self,
    ) -> (
        std::sync::Arc<crate::kernel::feed::Feed>,
        std::sync::Arc<std::sync::RwLock<ClusterState>>,
    );
}

impl Kernel for crate::Master {
    fn read<R>(&self, f: impl FnOnce(&ClusterState) -> R) -> R {
        crate::Master::read(self, f)
    }

    fn propose(&self, cmd: Command) -> impl Future<Output = Result<Applied>> + Send {
        crate::Master::propose(self, cmd)
    }

    async fn wait_read(&self, opts: ReadOptions) -> Result<()> {
        if opts.consistent {
            self.linearizable().await?;
        }
        if let Some(v) = opts.min_version {
            let ahead = |m: &crate::Master| m.read(|st| st.version) < v;
            if self.status().leader == self.id() && ahead(self) {
                // The leader applies a write before acknowledging it, so
                // once it has applied all that was committed when the read
                // came (a read index), a version it has not reached was
                // never acknowledged to anyone: a client error, not a wait
                // that ends in 503.
                self.linearizable().await?;
                if ahead(self) {
                    let newest = self.read(|st| st.version);
                    return Err(invalid(
                        "min_version",
                        format!("{v} is ahead of the cluster's newest version {newest}"),
                    ));
                }
            }
            if !self.wait_for_version(v, crate::master::WRITE_TIMEOUT).await {
                return Err(Error::NotCommitted(format!(
                    "master {} has not applied version {v} within {}s",
                    self.id(),
                    crate::master::WRITE_TIMEOUT.as_secs()
                )));
            }
        }
        Ok(())
    }

    fn dns_domain(&self) -> &str {
        &self.inner.dns_domain
    }

    fn liveness(&self, agent: &str) -> Option<tasks::AgentLiveness> {
        if self.status().leader != self.id() {
            // Followers do not see agents' streams.
            return None;
        }
        let l = self.sessions().liveness(agent);
        Some(tasks::AgentLiveness {
            connected: l.is_some_and(|l| l.connected),
            last_heartbeat_ms: l.map(|l| l.last_heartbeat_ms),
            unreachable: l.is_some_and(|l| l.unreachable),
        })
    }

    fn watch_source(
        &self,
    ) -> (
        std::sync::Arc<crate::kernel::feed::Feed>,
        std::sync::Arc<std::sync::RwLock<ClusterState>>,
    ) {
        (self.feed().clone(), self.state().clone())
    }
}

/// The typed operations over a [`Kernel`].
#[derive(Debug, Clone)]
pub struct Service<K> {
    kernel: K,
}

impl crate::master::Master {
    /// The service layer over this master: where REST, gRPC and
    /// in-process callers validate and propose. Defined here, not in
    /// `master.rs`, so the handle does not import the layer above it.
    pub fn service(&self) -> Service<crate::master::Master> {
        Service::new(self.clone())
    }
}

impl<K: Kernel> Service<K> {
    /// A service over `kernel`.
    pub fn new(kernel: K) -> Self {
        Service { kernel }
    }

    /// The kernel beneath.
    pub fn kernel(&self) -> &K {
        &self.kernel
    }

    /// Commits `cmd` and turns the outcomes that refused the write into
    /// errors naming `kind` and `id`.
    async fn commit(&self, kind: &'static str, id: &str, cmd: Command) -> Result<Applied> {
        let applied = self.kernel.propose(cmd).await?;
        match &applied.outcome {
            Outcome::Conflict { expected, actual } => Err(Error::VersionConflict {
                kind,
                id: id.to_string(),
                expected: *expected,
                actual: *actual,
            }),
            Outcome::Held { holder, expires_ms } => Err(Error::LeaseHeld {
                name: id.to_string(),
                holder: holder.clone(),
                expires_ms: *expires_ms,
            }),
            Outcome::NotFound => Err(Error::NotFound {
                kind,
                id: id.to_string(),
            }),
            _ => Ok(applied),
        }
    }
}

/// An `Error::Invalid` naming `field`.
pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}
