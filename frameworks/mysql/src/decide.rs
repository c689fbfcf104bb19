//! The operator's decisions, pure: a database's running tasks, what each
//! answered, and which one the masters record as primary -> what to do.
//!
//! ```text
//!  no primary recorded ──► bootstrap(): the most advanced instance, once
//!                          enough answer (2, or 1 for a one-instance database)
//!  primary answers     ──► steady(): Promote it if still read-only, Follow for
//!                          standbys not replicating from it, Demote strays,
//!                          semi-sync on with standbys (off at one instance),
//!                          EnsureApp once a standby acknowledges
//!  primary lost        ──► failover_step(), repeated until it says Promote:
//!   (task ended, or        1. StopIo: fence, no standby acknowledges the old
//!    hung past the          primary any more (so it commits nothing more)
//!    probe deadline)       2. Wait: until every standby applied what it received
//!                          3. Promote the standby whose GTID position contains
//!                             every other's (it holds every acknowledged commit)
//! ```
//!
//! Lossless by construction: a commit is acknowledged to the client only
//! after a standby received it (semi-sync `AFTER_SYNC`, no timeout
//! fallback); standbys receive in the primary's order, so the standby that
//! received most holds every acknowledged commit, and it is promoted only
//! after applying all it received.

use crate::admin::{AdminCmd, Observed};
use crate::gtid::GtidPos;

/// One task of a database as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The task's id.
    pub task: String,
    /// The agent's host name.
    pub host: String,
    /// The agent's address.
    pub ip: String,
    /// The mysql port.
    pub port: u16,
    /// The seed port (0: none), where it listens while it waits for a
    /// seed (see [`crate::seed`]).
    pub seed_port: u16,
    /// What it answered (`None`: unreachable this round).
    pub obs: Option<Observed>,
}

impl Member {
    /// `ip:port`.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    fn current(&self) -> GtidPos {
        self.obs
            .as_ref()
            .map(|o| GtidPos::parse(&o.gtid_current_pos))
            .unwrap_or_default()
    }
}

/// Whether `m` replicates from `p` with both threads running.
pub fn follows(m: &Member, p: &Member) -> bool {
    m.obs
        .as_ref()
        .and_then(|o| o.replica.as_ref())
        .is_some_and(|r| {
            r.master_host == p.ip && r.master_port == p.port && r.io_running && r.sql_running
        })
}

/// Whether `m` is configured to replicate from `p` but stopped on an
/// error: its history has diverged from the primary's (or it lacks what
/// the primary no longer has) and it needs a rebuild, not another try.
pub fn diverged(m: &Member, p: &Member) -> bool {
    m.obs
        .as_ref()
        .and_then(|o| o.replica.as_ref())
        .is_some_and(|r| {
            r.master_host == p.ip
                && r.master_port == p.port
                && (!r.io_running || !r.sql_running)
                && !r.last_error.is_empty()
        })
}

/// The instance to make the first primary: once at least `min(2,
/// instances)` answer (a primary needs a standby to acknowledge), the most
/// advanced, the first task id on a tie.
pub fn bootstrap(instances: u32, members: &[Member]) -> Option<&Member> {
    let answering: Vec<&Member> = members.iter().filter(|m| m.obs.is_some()).collect();
    if (answering.len() as u32) < instances.min(2) {
        return None;
    }
    answering
        .into_iter()
        .min_by(|a, b| (b.current().total(), &a.task).cmp(&(a.current().total(), &b.task)))
}

/// The commands that keep a database whose primary `p` answers in shape.
pub fn steady(instances: u32, p: &Member, members: &[Member]) -> Vec<AdminCmd> {
    let mut out = Vec::new();
    let Some(po) = &p.obs else { return out };
    if po.read_only {
        out.push(AdminCmd::Promote {
            on: p.addr(),
            alone: instances == 1,
        });
    }
    for m in members {
        if m.task == p.task {
            continue;
        }
        let Some(o) = &m.obs else { continue };
        if follows(m, p) {
            if !o.read_only {
                out.push(AdminCmd::Demote { on: m.addr() });
            }
        } else if !diverged(m, p) {
            out.push(AdminCmd::Follow {
                on: m.addr(),
                host: p.ip.clone(),
                port: p.port,
            });
        }
    }
    // Semi-sync on while there are standbys; off for a one-instance
    // database (scaled in to one: nobody could acknowledge). Turned on
    // after a scale-out only once a standby replicates, so the primary's
    // commits do not wait while the new instances start.
    let want = instances > 1;
    if !po.read_only
        && po.semi_sync_enabled != want
        && (!want || members.iter().any(|m| m.task != p.task && follows(m, p)))
    {
        out.push(AdminCmd::SemiSync {
            on: p.addr(),
            enabled: want,
        });
    }
    if !po.read_only && !po.app_ready && (po.semi_sync_clients > 0 || instances == 1) {
        out.push(AdminCmd::EnsureApp { on: p.addr() });
    }
    out
}

/// One step of a failover away from a lost primary, over the standbys
/// that answer (`candidates`, the old primary left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailoverStep {
    /// Fence first: these standbys still receive from the old primary.
    StopIo(Vec<AdminCmd>),
    /// Standbys are still applying what they received.
    Wait(String),
    /// Promote this task.
    Promote(String),
    /// No standby answers: nothing to promote.
    NoCandidate,
}

/// The next step of a failover (see the module docs).
pub fn failover_step(candidates: &[Member]) -> FailoverStep {
    let live: Vec<(&Member, &Observed)> = candidates
        .iter()
        .filter_map(|m| m.obs.as_ref().map(|o| (m, o)))
        .collect();
    if live.is_empty() {
        return FailoverStep::NoCandidate;
    }
    let fence: Vec<AdminCmd> = live
        .iter()
        .filter(|(_, o)| o.replica.as_ref().is_some_and(|r| r.io_running))
        .map(|(m, _)| AdminCmd::StopIo { on: m.addr() })
        .collect();
    if !fence.is_empty() {
        return FailoverStep::StopIo(fence);
    }
    // What each has received (its relay log) and applied.
    let mut best: Option<(&Member, GtidPos)> = None;
    for (m, o) in &live {
        let applied = GtidPos::parse(&o.gtid_current_pos);
        let received = o
            .replica
            .as_ref()
            .map(|r| GtidPos::parse(&r.gtid_io_pos))
            .unwrap_or_default();
        let sql_stopped_on_error = o
            .replica
            .as_ref()
            .is_some_and(|r| !r.sql_running && !r.last_error.is_empty());
        if !applied.contains(&received) && !sql_stopped_on_error {
            return FailoverStep::Wait(format!(
                "{} applied {applied}, received {received}",
                m.task
            ));
        }
        let better = match &best {
            None => true,
            Some((b, bp)) => {
                applied.total() > bp.total() || (applied.total() == bp.total() && m.task < b.task)
            }
        };
        if better {
            best = Some((m, applied));
        }
    }
    let holds_all = |pos: &GtidPos| {
        live.iter().all(|(_, o)| {
            pos.contains(&GtidPos::parse(&o.gtid_current_pos))
                && o.replica
                    .as_ref()
                    .is_none_or(|r| pos.contains(&GtidPos::parse(&r.gtid_io_pos)))
        })
    };
    match best {
        Some((m, pos)) if holds_all(&pos) => FailoverStep::Promote(m.task.clone()),
        // Two histories neither of which contains the other: promoting
        // either would lose the other's commits. A human decides.
        _ => FailoverStep::NoCandidate,
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
