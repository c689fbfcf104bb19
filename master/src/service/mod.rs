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
//! - [`alerts`]: alert rules and the alerts they raised (`ocean.alerts`);
//! - [`agents`]: operators' agent status;
//! - [`tasks`]: task and agent reads;
//! - [`members`]: adding and removing masters;
//! - [`snapshot`]: master backup and restore (snapshot files);
//! - [`summary`]: the cluster in numbers and jobs a page at a time, from
//!   counts the state keeps;
//! - [`tree`]: the service tree's sums, replicated quotas and weights, and
//!   tag queries over agents and tasks;
//! - [`types`]: the typed responses every adapter serialises;
//! - [`views`]: tasks, agents, members and events as the API shows them.

pub mod acl;
pub mod agents;
pub mod alerts;
pub mod deployments;
pub mod jobs;
pub mod kv;
mod local;
pub mod members;
pub mod snapshot;
pub mod summary;
pub mod tags;
pub mod tasks;
pub mod tree;
pub mod types;
pub mod views;

use std::future::Future;

use ocean_proto::internal::Command;

pub use local::LocalKernel;

use crate::error::{Error, Result};
use crate::kernel::state::{Applied, ClusterState, Outcome};

/// No quotas or weights configured.
static NO_DEFAULTS: crate::config::SchedulerSettings = crate::config::SchedulerSettings {
    pdl_weights: std::collections::BTreeMap::new(),
    quotas: Vec::new(),
};

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

    /// Whether requests need a token and their rights are checked.
    fn acl_enabled(&self) -> bool {
        false
    }

    /// The config's quotas and weights, under the replicated ones
    /// ([`tree`]).
    fn scheduler_defaults(&self) -> &crate::config::SchedulerSettings {
        &NO_DEFAULTS
    }

    /// What this master, as leader, knows of an agent's stream.
    fn liveness(&self, _agent: &str) -> Option<tasks::AgentLiveness> {
        None
    }

    /// The agents this master, as leader, declared unreachable (None on a
    /// follower, which does not see agents' streams).
    fn unreachable_agents(&self) -> Option<Vec<String>> {
        None
    }

    /// Records a write a caller made (the audit log); kernels without
    /// one drop it.
    fn audit(&self, _entry: crate::kernel::audit::AuditEntry) {}

    /// The latest `limit` audit entries this kernel recorded.
    fn audit_recent(&self, _limit: usize) -> Vec<crate::kernel::audit::AuditEntry> {
        Vec::new()
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

    fn acl_enabled(&self) -> bool {
        self.inner.acl_enabled
    }

    fn audit(&self, mut entry: crate::kernel::audit::AuditEntry) {
        entry.master = self.id();
        self.inner.audit.record(entry);
    }

    fn audit_recent(&self, limit: usize) -> Vec<crate::kernel::audit::AuditEntry> {
        self.inner.audit.recent(limit)
    }

    fn scheduler_defaults(&self) -> &crate::config::SchedulerSettings {
        &self.inner.scheduler_defaults
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

    fn unreachable_agents(&self) -> Option<Vec<String>> {
        (self.status().leader == self.id()).then(|| self.sessions().unreachable_ids())
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
    /// Whom the service acts for (see [`acl`]).
    caller: acl::Caller,
}

impl crate::master::Master {
    /// The service layer over this master: where REST, gRPC and
    /// in-process callers validate and propose, acting for the caller of
    /// the request being served ([`acl::scope`]). Defined here, not in
    /// `master.rs`, so the handle does not import the layer above it.
    pub fn service(&self) -> Service<crate::master::Master> {
        Service::new(self.clone()).with_caller(acl::current())
    }
}

impl<K: Kernel> Service<K> {
    /// A service over `kernel`, acting for the cluster itself.
    pub fn new(kernel: K) -> Self {
        Service {
            kernel,
            caller: acl::Caller::System,
        }
    }

    /// The kernel beneath.
    pub fn kernel(&self) -> &K {
        &self.kernel
    }

    /// Commits `cmd` and turns the outcomes that refused the write into
    /// errors naming `kind` and `id`.
    async fn commit(&self, kind: &'static str, id: &str, cmd: Command) -> Result<Applied> {
        let what = self.audit_what(kind, id, &cmd);
        let applied = self.kernel.propose(cmd).await?;
        if let Some(what) = what {
            self.kernel.audit(crate::kernel::audit::AuditEntry {
                who: self.caller.who(),
                what,
                at_ms: crate::kernel::now_ms(),
                version: applied.version,
                master: 0,
            });
        }
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

impl<K: Kernel> Service<K> {
    /// What the audit log says of `cmd`, when ACLs are on and a request
    /// (not the cluster itself) makes it.
    fn audit_what(&self, kind: &str, id: &str, cmd: &Command) -> Option<String> {
        use ocean_proto::internal::command::Kind;
        if !self.kernel.acl_enabled() || self.caller == acl::Caller::System {
            return None;
        }
        let op = match &cmd.kind {
            Some(Kind::PutJob(_)) => "put",
            Some(Kind::DeleteJob(_)) => "delete",
            Some(Kind::ScaleJob(_)) => "scale",
            Some(Kind::ResetBackoff(_)) => "reset-backoff",
            Some(Kind::SetAgentStatus(_)) => "set-status",
            Some(Kind::PutKv(p)) => return Some(format!("put {kind} {}/{}", p.namespace, id)),
            Some(Kind::DeleteKv(d)) => {
                return Some(format!("delete {kind} {}/{}", d.namespace, id))
            }
            Some(Kind::Lease(_)) => "lease",
            Some(Kind::DeploymentAction(a)) => return Some(format!("{} {kind} {id}", a.action)),
            _ => "write",
        };
        Some(format!("{op} {kind} {id}"))
    }
}

/// An `Error::Invalid` naming `field`.
pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}
