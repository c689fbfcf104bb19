//! Why a task waits: aggregated, human-readable explanations.
//!
//! An explanation is computed only when a job's task fails to place, once
//! per job (its remaining tasks share it). Each agent is charged to the
//! FIRST check it fails, in a fixed order (status, constraints in the job's
//! order, cpus, mem, disk, ports), so the counts add up to the number of
//! agents:
//!
//! ```text
//! 0 of 10000 agents fit: 9000 insufficient mem, 800 hostname:UNIQUE, 200 not online
//! ```

use std::fmt;

use crate::resources::fmt_milli;

/// One reason an agent was rejected for a task.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Reason {
    /// The agent's `status` is not `online`.
    NotOnline,
    /// The agent lacks an executor or feature the job needs (`docker`).
    Unavailable(String),
    /// A constraint rejected the agent; the label is `attribute:OP[:value]`.
    Constraint(String),
    /// Not enough free cpus.
    InsufficientCpus,
    /// Not enough free memory.
    InsufficientMem,
    /// Not enough free disk.
    InsufficientDisk,
    /// A fixed host port is outside the agent's ranges or already taken.
    PortUnavailable,
    /// Not enough free ports in the agent's ranges for the dynamic ports.
    InsufficientPorts,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NotOnline => f.write_str("not online"),
            Reason::Unavailable(name) => write!(f, "{name} unavailable"),
            Reason::Constraint(label) => f.write_str(label),
            Reason::InsufficientCpus => f.write_str("insufficient cpus"),
            Reason::InsufficientMem => f.write_str("insufficient mem"),
            Reason::InsufficientDisk => f.write_str("insufficient disk"),
            Reason::PortUnavailable => f.write_str("fixed port unavailable"),
            Reason::InsufficientPorts => f.write_str("insufficient ports"),
        }
    }
}

/// How many agents could take the task, and why the others could not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FitExplanation {
    /// Agents in the snapshot.
    pub agents_total: u32,
    /// Agents that could take the task (0 whenever a task is unplaced for
    /// lack of a fit).
    pub agents_fit: u32,
    /// Rejections per reason, most frequent first (ties by reason).
    pub rejected: Vec<(Reason, u32)>,
    /// True when the job may preempt and no set of lower-priority tasks
    /// could make room either.
    pub preemption_failed: bool,
}

impl FitExplanation {
    /// Count of agents rejected for `reason`.
    pub fn count(&self, reason: &Reason) -> u32 {
        self.rejected
            .iter()
            .find(|(r, _)| r == reason)
            .map_or(0, |(_, n)| *n)
    }

    /// Builds an explanation from unordered counts.
    pub(crate) fn from_counts(
        agents_total: u32,
        agents_fit: u32,
        counts: Vec<(Reason, u32)>,
    ) -> Self {
        let mut rejected: Vec<(Reason, u32)> = counts.into_iter().filter(|(_, n)| *n > 0).collect();
        rejected.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Self {
            agents_total,
            agents_fit,
            rejected,
            preemption_failed: false,
        }
    }
}

impl fmt::Display for FitExplanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} of {} agents fit", self.agents_fit, self.agents_total)?;
        for (i, (reason, n)) in self.rejected.iter().enumerate() {
            let sep = if i == 0 { ": " } else { ", " };
            write!(f, "{sep}{n} {reason}")?;
        }
        if self.preemption_failed {
            f.write_str("; no lower-priority tasks to preempt")?;
        }
        Ok(())
    }
}

/// A resource a quota limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum QuotaResource {
    /// Cpus (values in milli-cpus).
    Cpus,
    /// Memory (values in MiB).
    Mem,
}

impl fmt::Display for QuotaResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QuotaResource::Cpus => "cpus",
            QuotaResource::Mem => "mem",
        })
    }
}

/// The quota a task would exceed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct QuotaExceeded {
    /// The service-tree node holding the quota.
    pub node: String,
    /// The resource that would go over.
    pub resource: QuotaResource,
    /// Usage under the node before this task (milli-cpus or MiB).
    pub used: u64,
    /// What one task asks for (milli-cpus or MiB).
    pub requested: u64,
    /// The quota (milli-cpus or MiB).
    pub limit: u64,
}

impl fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: u64| {
            if self.resource == QuotaResource::Cpus {
                fmt_milli(v)
            } else {
                format!("{v} MiB")
            }
        };
        write!(
            f,
            "over quota {}: {} used {} + requested {} > limit {}",
            self.node,
            self.resource,
            show(self.used),
            show(self.requested),
            show(self.limit)
        )
    }
}

/// Why a task was not placed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum WaitReason {
    /// No agent could take it.
    NoFit(FitExplanation),
    /// Placing it would exceed a quota.
    OverQuota(QuotaExceeded),
    /// The request itself is invalid (bad constraint, unknown policy,
    /// duplicate fixed ports); it can never be placed as is.
    Invalid(String),
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitReason::NoFit(e) => e.fmt(f),
            WaitReason::OverQuota(q) => q.fmt(f),
            WaitReason::Invalid(msg) => write!(f, "invalid request: {msg}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_the_issue_example() {
        let e = FitExplanation::from_counts(
            10_000,
            0,
            vec![
                (Reason::NotOnline, 200),
                (Reason::InsufficientMem, 9000),
                (Reason::Constraint("hostname:UNIQUE".into()), 800),
                (Reason::InsufficientCpus, 0),
            ],
        );
        assert_eq!(
            e.to_string(),
            "0 of 10000 agents fit: 9000 insufficient mem, 800 hostname:UNIQUE, 200 not online"
        );
        assert_eq!(e.count(&Reason::NotOnline), 200);
        assert_eq!(e.count(&Reason::InsufficientCpus), 0);
    }

    #[test]
    fn quota_display() {
        let q = QuotaExceeded {
            node: "cop.x_owt.y_pdl.z".into(),
            resource: QuotaResource::Cpus,
            used: 119_500,
            requested: 1000,
            limit: 120_000,
        };
        assert_eq!(
            WaitReason::OverQuota(q).to_string(),
            "over quota cop.x_owt.y_pdl.z: cpus used 119.5 + requested 1 > limit 120"
        );
    }
}
