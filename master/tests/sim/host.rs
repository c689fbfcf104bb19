//! The reconciler's host in the simulation: the replicated state (the
//! log commits what is proposed at once), the agents' streams, and a
//! clock on tokio's (paused) time. One per term; all share one [`Shared`].

use std::collections::{BTreeSet, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};

use ocean_master::kernel::state::{Applied, ClusterState};
use ocean_master::reconcile::{Host, Scheduler};
use ocean_proto::agent::MasterMessage;
use ocean_proto::internal::Command;

use super::EPOCH_MS;

/// What the simulated raft log and network hold: shared by every leader.
pub(super) struct Shared {
    pub(super) state: RwLock<ClusterState>,
    pub(super) connected: Mutex<BTreeSet<String>>,
    /// Messages on their way to agents: (agent, term that sent it, message).
    pub(super) inbox: Mutex<Vec<(String, u64, MasterMessage)>>,
    pub(super) start: tokio::time::Instant,
}

/// The reconciler's host in the simulation: one per term.
#[derive(Clone)]
pub struct SimHost {
    shared: Arc<Shared>,
    scheduler: Arc<Scheduler>,
    pub(super) term: u64,
}

impl Host for SimHost {
    fn read<R>(&self, f: impl FnOnce(&ClusterState) -> R) -> R {
        f(&self.shared.state.read().unwrap())
    }

    fn propose(&self, cmd: Command) -> impl Future<Output = ocean_master::Result<Applied>> + Send {
        let shared = self.shared.clone();
        async move { Ok(shared.state.write().unwrap().apply_owned(cmd)) }
    }

    fn connected(&self) -> HashSet<String> {
        self.shared
            .connected
            .lock()
            .unwrap()
            .iter()
            .cloned()
            .collect()
    }

    fn send(&self, agent: &str, msg: MasterMessage) -> bool {
        if !self.shared.connected.lock().unwrap().contains(agent) {
            return false;
        }
        let mut inbox = self.shared.inbox.lock().unwrap();
        inbox.push((agent.to_string(), self.term, msg));
        true
    }

    fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    fn now_ms(&self) -> u64 {
        EPOCH_MS + self.shared.start.elapsed().as_millis() as u64
    }
}

pub(super) fn new_leader(shared: &Arc<Shared>, term: u64) -> SimHost {
    let scheduler = Arc::new(Scheduler::default());
    scheduler.begin_term(term);
    SimHost {
        shared: shared.clone(),
        scheduler,
        term,
    }
}
