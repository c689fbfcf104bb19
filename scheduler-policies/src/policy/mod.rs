//! Placement policies behind one small trait.
//!
//! The planner has already done the expensive, policy-independent work: it
//! keeps the online agents in one index ordered by free capacity, and it
//! knows which agents a job's constraints allow. A [`Policy`] only decides
//! which of the FEASIBLE agents to take, walking the index from either end:
//!
//! ```text
//!   free:   tight ──────────────────────────────────────────── empty
//!   index:  [exhausted: never visited] [a7][a2][a9] ... [a5][a8][a3][a6]
//!                                       ▲ can hold the task's size     ▲
//!                                       │ most_allocated_first()       │
//!                                       │ (binpack)   least_allocated_first()
//!                                                               (spread)
//! ```
//!
//! Both iterators yield only agents where the task fits right now (resources,
//! ports, every constraint), so a policy that takes the first one is
//! correct by construction. To add a policy, implement [`Policy`] (see
//! `binpack.rs`, a few lines) and [`Policies::register`] it; jobs then select
//! it by name.

mod binpack;
mod spread;

use std::cell::Cell;
use std::fmt;

pub use binpack::BinPack;
pub use spread::Spread;

use crate::cluster::Cluster;
use crate::job::JobState;
use crate::resources::Resources;
use crate::snapshot::Agent;

/// A placement policy: picks one agent among the feasible candidates.
pub trait Policy: fmt::Debug + Send + Sync {
    /// The name jobs and the cluster config select the policy by.
    fn name(&self) -> &str;

    /// Declares that [`Policy::choose`] always takes the FIRST feasible
    /// agent of one of the index orders. The planner then skips `choose`
    /// and scans incrementally: a cursor per job remembers where the last
    /// scan stopped (agents before it did not fit and, resources only
    /// shrinking during a round, still do not), so a job's tasks cost O(1)
    /// amortised instead of re-walking the agents they already rejected.
    /// The result is the same agent `choose` would return, except that
    /// agents other jobs filled past the cursor meanwhile are not revisited
    /// until the job's scan runs dry (then it restarts from the top once).
    fn scan_order(&self) -> Option<ScanOrder> {
        None
    }

    /// Chooses an agent for one task, or `None` to leave it unplaced.
    /// Must be deterministic: same candidates, same choice.
    fn choose(&self, candidates: &Candidates<'_>) -> Option<AgentSlot>;
}

/// The two orders of the agent index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScanOrder {
    /// Fullest agents first (bin-pack).
    MostAllocatedFirst,
    /// Emptiest agents first (spread).
    LeastAllocatedFirst,
}

/// Opaque handle of an agent in the current round, obtained from an
/// [`AgentView`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentSlot(pub(crate) u32);

/// A feasible agent as a policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct AgentView<'a> {
    slot: AgentSlot,
    /// The agent as given in the snapshot.
    pub agent: &'a Agent,
    /// Its free resources at this point of the plan.
    pub free: Resources,
}

impl AgentView<'_> {
    /// The handle to return from [`Policy::choose`].
    pub fn slot(&self) -> AgentSlot {
        self.slot
    }
}

/// The feasible agents for one task of one job.
pub struct Candidates<'a> {
    cluster: &'a Cluster<'a>,
    job: &'a JobState<'a>,
    examined: Cell<u64>,
}

impl fmt::Debug for Candidates<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Candidates")
            .field("job", &self.job.req.job)
            .field("examined", &self.examined.get())
            .finish()
    }
}

impl<'a> Candidates<'a> {
    pub(crate) fn new(cluster: &'a Cluster<'a>, job: &'a JobState<'a>) -> Self {
        Self {
            cluster,
            job,
            examined: Cell::new(0),
        }
    }

    /// Agents examined so far (feasible or not).
    pub(crate) fn examined(&self) -> u64 {
        self.examined.get()
    }

    /// The job being placed.
    pub fn job(&self) -> &str {
        &self.job.req.job
    }

    /// Resources of one task.
    pub fn request(&self) -> &Resources {
        &self.job.req.resources
    }

    pub(crate) fn view(&self, i: u32) -> Option<AgentView<'a>> {
        self.examined.set(self.examined.get() + 1);
        let idx = i as usize;
        if self.job.fits(self.cluster, idx) {
            Some(AgentView {
                slot: AgentSlot(i),
                agent: &self.cluster.agents[idx],
                free: self.cluster.free[idx],
            })
        } else {
            None
        }
    }

    /// Feasible agents, fullest first: cells of the index tightest first,
    /// then least free score, then agent order in the snapshot. Agents that
    /// cannot hold the request's cpu or mem size are never visited.
    pub fn most_allocated_first(&self) -> impl Iterator<Item = AgentView<'a>> + '_ {
        self.cluster
            .index
            .scan(self.job.levels, ScanOrder::MostAllocatedFirst, None)
            .filter_map(move |i| self.view(i))
    }

    /// Feasible agents, emptiest first (the exact reverse order).
    pub fn least_allocated_first(&self) -> impl Iterator<Item = AgentView<'a>> + '_ {
        self.cluster
            .index
            .scan(self.job.levels, ScanOrder::LeastAllocatedFirst, None)
            .filter_map(move |i| self.view(i))
    }
}

/// The policies a cluster knows, by name.
#[derive(Debug)]
pub struct Policies {
    list: Vec<Box<dyn Policy>>,
}

impl Default for Policies {
    fn default() -> Self {
        Self::builtin()
    }
}

impl Policies {
    /// `binpack` (the default) and `spread`.
    pub fn builtin() -> Self {
        Self {
            list: vec![Box::new(BinPack), Box::new(Spread)],
        }
    }

    /// Adds a policy, replacing any with the same name.
    pub fn register(&mut self, policy: Box<dyn Policy>) {
        match self.list.iter().position(|p| p.name() == policy.name()) {
            Some(i) => self.list[i] = policy,
            None => self.list.push(policy),
        }
    }

    /// A policy by name.
    pub fn get(&self, name: &str) -> Option<&dyn Policy> {
        self.index_of(name).map(|i| self.list[i].as_ref())
    }

    /// Names of all policies, in registration order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.list.iter().map(|p| p.name())
    }

    pub(crate) fn index_of(&self, name: &str) -> Option<usize> {
        self.list.iter().position(|p| p.name() == name)
    }

    pub(crate) fn by_index(&self, i: usize) -> Option<&dyn Policy> {
        self.list.get(i).map(|p| p.as_ref())
    }
}
