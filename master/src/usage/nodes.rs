//! Rings per service-tree node and job: every [`SNAPSHOT_S`] seconds
//! (leader clock) each node's total of its tasks' newest samples is
//! pushed on the node's own ring. A node's ring then says what the node
//! used *together* at each instant (its true peak, which the sum of its
//! tasks' own peaks only bounds from above), and keeps the share of tasks
//! that ended within the window, which the live-task sums of
//! `GET /v1/usage` no longer list.
//!
//! ```text
//!  record() crosses a SNAPSHOT_S boundary (before it records its report:
//!  the point closes the bucket that ended)
//!    ─► every task whose newest sample is fresh (2 agent intervals + 1 s)
//!    ─► summed per job (one pass over the tasks)
//!    ─► each job's sum added to the job, its tree nodes and the root ("")
//!    ─► one point pushed on every node's ring (zero for a node without
//!       fresh tasks; a node zero for FORGET_AFTER_MS is dropped)
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use super::ring::{Point, Ring};
use super::{AgentEntry, TaskEntry};
use crate::kernel::state::job_of;
use crate::usage::report::ancestors;

/// Seconds between two points of a node's ring: the agents' default
/// interval, so a ring of [`super::RING`] points covers about five minutes.
pub const SNAPSHOT_S: u64 = 5;

/// The root's key: the whole tree.
pub const ROOT: &str = "";

/// One node's (or job's) ring.
#[derive(Debug, Clone, Default)]
pub struct NodeEntry {
    /// Its totals, one per snapshot, oldest first.
    pub ring: Ring,
    /// The last snapshot with a fresh task under it, ms.
    pub live_ms: u64,
}

/// A sample of an agent with this interval is fresh for twice that and a
/// second (one late report is not a drop to zero).
pub fn fresh_for_ms(interval_ms: u64) -> u64 {
    interval_ms.max(100) * 2 + 1000
}

/// Pushes one point on every node's ring at `now_ms`: the sums of the
/// fresh newest samples of `tasks` per job, tree node and the root.
pub fn snapshot(
    nodes: &mut HashMap<Arc<str>, NodeEntry, foldhash::fast::RandomState>,
    tasks: &HashMap<Arc<str>, TaskEntry, foldhash::fast::RandomState>,
    agents: &HashMap<String, AgentEntry>,
    now_ms: u64,
    forget_after_ms: u64,
) {
    let mut per_job: HashMap<&str, Point, foldhash::fast::RandomState> = HashMap::default();
    for (id, e) in tasks {
        let interval = agents.get(&*e.agent).map_or(0, |a| a.interval_ms);
        if now_ms.saturating_sub(e.received_ms) > fresh_for_ms(interval) {
            continue;
        }
        let Some(p) = e.ring.last() else {
            continue;
        };
        let Some(job) = job_of(id) else {
            continue;
        };
        per_job
            .entry(job)
            .or_insert_with(|| Point::at(now_ms))
            .add(p);
    }
    let mut sums: HashMap<&str, Point, foldhash::fast::RandomState> = HashMap::default();
    for (job, p) in &per_job {
        for key in std::iter::once(*job)
            .chain(ancestors(job))
            .chain(std::iter::once(ROOT))
        {
            sums.entry(key).or_insert_with(|| Point::at(now_ms)).add(p);
        }
    }
    for (key, p) in &sums {
        match nodes.get_mut(*key) {
            Some(n) => {
                n.ring.push(*p);
                n.live_ms = now_ms;
            }
            None => {
                let mut ring = Ring::default();
                ring.push(*p);
                nodes.insert(
                    Arc::from(*key),
                    NodeEntry {
                        ring,
                        live_ms: now_ms,
                    },
                );
            }
        }
    }
    let horizon = now_ms.saturating_sub(forget_after_ms);
    nodes.retain(|key, n| {
        if !sums.contains_key(&**key) {
            n.ring.push(Point::at(now_ms));
        }
        n.live_ms >= horizon
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::{UsageStore, FORGET_AFTER_MS};
    use ocean_proto::agent::{TaskUsage, UsageReport};

    const JOB_A: &str = "cop.c_owt.o_pdl.p_service.s_job.a_cluster.dev";
    const JOB_B: &str = "cop.c_owt.o_pdl.q_service.s_job.b_cluster.dev";

    fn report(tasks: &[(&str, f64, u64)]) -> UsageReport {
        UsageReport {
            timestamp_ms: 0,
            interval_ms: 5000,
            tasks: tasks
                .iter()
                .map(|(id, cores, mib)| TaskUsage {
                    task_id: (*id).into(),
                    cpu_cores: Some(*cores),
                    memory_rss_bytes: mib << 20,
                    ..Default::default()
                })
                .collect(),
        }
    }

    #[test]
    fn nodes_keep_their_totals_at_each_snapshot_and_their_true_peak() {
        let store = UsageStore::default();
        let (a1, a2, b1) = (
            format!("{JOB_A}.1"),
            format!("{JOB_A}.2"),
            format!("{JOB_B}.1"),
        );
        let t0 = 1_000_000_000u64;
        // Two tasks of job a peak at different instants: 1.0 + 0.0, then
        // 0.0 + 1.0. Their own peaks sum to 2.0; together they never
        // used more than 1.0.
        let mut at = t0;
        for (x, y) in [(1.0, 0.0), (0.0, 1.0), (0.5, 0.5)] {
            store.record("ag1", &report(&[(&a1, x, 10), (&b1, 0.25, 5)]), at);
            store.record("ag2", &report(&[(&a2, y, 20)]), at + 10);
            at += SNAPSHOT_S * 1000;
        }
        // One more report crosses the last boundary and snapshots.
        store.record("ag1", &report(&[(&a1, 0.5, 10), (&b1, 0.25, 5)]), at);
        at += SNAPSHOT_S * 1000;
        store.record("ag1", &report(&[(&a1, 0.5, 10)]), at);
        let since = (t0 / 1000) as u32;
        let job = store.node_window(JOB_A, since).expect("job a ring");
        assert!(job.window.points >= 3, "{job:?}");
        assert!((job.window.cpu_cores_max - 1.0).abs() < 1e-9, "{job:?}");
        assert_eq!(job.window.rss_bytes_max, 30 << 20);
        let pdl = store
            .node_window("cop.c_owt.o_pdl.p", since)
            .expect("pdl ring");
        assert_eq!(pdl.window, job.window, "pdl.p holds job a only");
        let root = store.node_window(ROOT, since).expect("root ring");
        assert!((root.window.cpu_cores_max - 1.25).abs() < 1e-9, "{root:?}");
        assert_eq!(root.window.rss_bytes_max, 35 << 20);
        assert!(store.node_window("cop.c_owt.o_pdl.zzz", since).is_none());
        // The history lists the snapshots, oldest first.
        let at_s: Vec<u32> = root.points.iter().map(|p| p.at_s).collect();
        assert!(at_s.windows(2).all(|w| w[0] < w[1]), "{at_s:?}");

        // Job b's task stops reporting: its nodes read zero once its sample
        // is stale (11 s at a 5 s interval), and are forgotten
        // FORGET_AFTER_MS later; job a's go on.
        let stale = at + 15_000;
        while at < stale {
            at += SNAPSHOT_S * 1000;
            store.record("ag1", &report(&[(&a1, 0.5, 10)]), at);
        }
        let b = store
            .node_window(JOB_B, (at / 1000) as u32)
            .expect("job b still kept");
        assert_eq!((b.window.points, b.window.cpu_cores), (1, 0.0), "{b:?}");
        let end = at + FORGET_AFTER_MS + 10_000;
        while at < end {
            at += SNAPSHOT_S * 1000;
            store.record("ag1", &report(&[(&a1, 0.5, 10)]), at);
        }
        assert!(store.node_window(JOB_B, 0).is_none());
        let a = store.node_window(JOB_A, 0).expect("job a kept");
        assert_eq!(a.window.points, crate::usage::RING);
    }
}
