//! The output of a planning round. It borrows ids from the [`Snapshot`]
//! (no string copies in the hot loop); the master turns it into one raft
//! entry (or a few) while the snapshot is still alive.
//!
//! [`Snapshot`]: crate::Snapshot

use crate::explain::WaitReason;

/// A host port chosen for a task's named port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct AssignedPort<'s> {
    /// The port's name in the job request.
    pub name: &'s str,
    /// The concrete host port.
    pub port: u16,
}

/// One pending task bound to an agent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Placement<'s> {
    /// The job of the task.
    pub job: &'s str,
    /// The task id.
    pub task: &'s str,
    /// The agent id.
    pub agent: &'s str,
    /// One host port per port request, in the job request's order.
    pub ports: Vec<AssignedPort<'s>>,
}

/// Pending tasks of one job that were not placed, sharing one reason.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Unplaced<'s> {
    /// The job.
    pub job: &'s str,
    /// Its tasks left pending, in request order.
    pub tasks: Vec<&'s str>,
    /// Why they wait.
    pub reason: WaitReason,
}

/// A running task stopped to make room for a higher-priority one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Preemption<'s> {
    /// The running task to stop.
    pub victim: &'s str,
    /// Its job.
    pub victim_job: &'s str,
    /// The agent it runs on.
    pub agent: &'s str,
    /// The pending task it makes room for (placed on `agent` in this plan).
    pub for_task: &'s str,
    /// That task's job.
    pub for_job: &'s str,
}

/// Counters for logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct PlanStats {
    /// Tasks placed.
    pub placed: usize,
    /// Tasks left pending.
    pub unplaced: usize,
    /// Running tasks preempted.
    pub preempted: usize,
    /// Agents examined by the policies over the whole round (a measure of
    /// search effort: ideally close to `placed`).
    pub agents_examined: u64,
}

/// Everything a round decided. Every pending task of the snapshot appears
/// exactly once, either in a [`Placement`] or in an [`Unplaced`] entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Plan<'s> {
    /// Placements in the order they were decided.
    pub placements: Vec<Placement<'s>>,
    /// Unplaced tasks, one entry per job that has some, in job order.
    pub unplaced: Vec<Unplaced<'s>>,
    /// Preemptions; each victim's `for_task` is in `placements`.
    pub preemptions: Vec<Preemption<'s>>,
    /// Counters.
    pub stats: PlanStats,
}

impl<'s> Plan<'s> {
    /// The unplaced entry of a job, if any.
    pub fn unplaced_of(&self, job: &str) -> Option<&Unplaced<'s>> {
        self.unplaced.iter().find(|u| u.job == job)
    }

    /// Placements of one job.
    pub fn placements_of<'p>(
        &'p self,
        job: &'p str,
    ) -> impl Iterator<Item = &'p Placement<'s>> + 'p {
        self.placements.iter().filter(move |p| p.job == job)
    }
}
