//! What a reconciler round reads and acts through: the seam between the
//! reconciler's logic and the master it runs on.
//!
//! ```text
//!  round ─► Host::read (state) ─► decide ─► Host::propose (PlanTasks)
//!        ─► dispatch ─► Host::send (Launch / Kill to an agent's stream)
//! ```
//! The real host is the [`Master`]: its replicated state, its raft log and
//! its agent sessions. A test double (a simulated cluster over the same
//! [`ClusterState`] and commands) lets a seeded simulation run rounds
//! deterministically with a paused clock (`master/tests/sim`).

use std::collections::HashSet;
use std::future::Future;

use ocean_proto::agent::MasterMessage;
use ocean_proto::internal::Command;

use super::Leading;
use super::Scheduler;
use crate::error::Result;
use crate::kernel::state::{Applied, ClusterState};

/// Everything a reconciler round needs from the master it runs on.
pub trait Host: Clone + Send + Sync + 'static {
    /// Runs `f` over the current state (briefly: the real state is shared
    /// with the raft thread).
    fn read<R>(&self, f: impl FnOnce(&ClusterState) -> R) -> R;

    /// Commits `cmd` (this host leads) and returns what applying it did.
    fn propose(&self, cmd: Command) -> impl Future<Output = Result<Applied>> + Send;

    /// Agents with an open stream to this host.
    fn connected(&self) -> HashSet<String>;

    /// Sends `msg` to agent `agent`; whether it had a stream to take it.
    fn send(&self, agent: &str, msg: MasterMessage) -> bool;

    /// The reconciler's memory and settings on this host.
    fn scheduler(&self) -> &Scheduler;

    /// Milliseconds since the epoch on the leader's clock (task and
    /// back-off timestamps).
    fn now_ms(&self) -> u64 {
        crate::kernel::now_ms()
    }

    /// Records how long a round took.
    fn observe_round(&self, _seconds: f64) {}

    /// The DNS zone, sent with launches for templates' peer names (empty:
    /// the agent's default zone).
    fn dns_domain(&self) -> String {
        String::new()
    }
}

impl Host for Leading {
    fn read<R>(&self, f: impl FnOnce(&ClusterState) -> R) -> R {
        self.master.read(f)
    }

    fn propose(&self, cmd: Command) -> impl Future<Output = Result<Applied>> + Send {
        self.propose_local(cmd)
    }

    fn connected(&self) -> HashSet<String> {
        self.sessions().connected()
    }

    fn send(&self, agent: &str, msg: MasterMessage) -> bool {
        self.sessions().send(agent, msg)
    }

    fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    fn observe_round(&self, seconds: f64) {
        self.metrics().reconcile_seconds.observe(seconds);
    }

    fn dns_domain(&self) -> String {
        crate::service::Kernel::dns_domain(&self.master).to_string()
    }
}
