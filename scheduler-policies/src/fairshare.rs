//! Weighted dominant-resource fairness (DRF) between product lines.
//!
//! A product line's dominant share is the largest fraction of the online
//! cluster's cpus, mem or disk its tasks hold, divided by its weight. Within
//! a priority level, the product line with the lowest dominant share places
//! its next task first; ties go to the product line whose name sorts first.
//! When capacity is short this decides who waits; when it is not, every
//! task is placed anyway and the order only shapes which agents they get.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use crate::hash::FxHashMap;
use crate::resources::Resources;
use crate::snapshot::Snapshot;

/// Usage and weights of every product line seen in the round.
#[derive(Debug)]
pub(crate) struct FairShare<'s> {
    /// `1 / total online capacity` per dimension (0 for an empty one).
    inverse_total: [f64; 3],
    ids: BTreeMap<&'s str, usize>,
    usage: Vec<Resources>,
    inverse_weights: Vec<f64>,
}

impl<'s> FairShare<'s> {
    /// Interns product lines (sorted by name) and charges running tasks.
    pub(crate) fn new(snapshot: &'s Snapshot, total_online: Resources) -> Self {
        // Distinct names by hash first: product lines are few and running
        // tasks many (collecting 100,000 names into a sorted set cost more
        // than the rest of a small round).
        let mut distinct: FxHashMap<&'s str, usize> = FxHashMap::default();
        for name in snapshot
            .pending
            .iter()
            .map(|j| j.pdl.as_str())
            .chain(snapshot.running.iter().map(|t| t.pdl.as_str()))
        {
            distinct.entry(name).or_default();
        }
        // Ids in name order, as before: plans stay the same.
        let names: BTreeSet<&'s str> = distinct.keys().copied().collect();
        let ids: BTreeMap<&'s str, usize> =
            names.into_iter().enumerate().map(|(i, n)| (n, i)).collect();
        for (n, i) in &ids {
            distinct.insert(n, *i);
        }
        let mut usage = vec![Resources::default(); ids.len()];
        for t in &snapshot.running {
            if let Some(&p) = distinct.get(t.pdl.as_str()) {
                usage[p] = usage[p].saturating_add(t.resources);
            }
        }
        let inverse_weights = ids
            .keys()
            .map(|n| match snapshot.pdl_weights.get(*n) {
                Some(&w) if w.is_finite() && w > 0.0 && (1.0 / w).is_finite() => 1.0 / w,
                _ => 1.0,
            })
            .collect();
        let inverse = |total: u64| if total == 0 { 0.0 } else { 1.0 / total as f64 };
        Self {
            inverse_total: [
                inverse(total_online.cpus_milli),
                inverse(total_online.mem_mib),
                inverse(total_online.disk_mib),
            ],
            ids,
            usage,
            inverse_weights,
        }
    }

    /// Number of product lines.
    pub(crate) fn len(&self) -> usize {
        self.usage.len()
    }

    /// Id of a product line (every pending job's pdl is interned).
    pub(crate) fn id(&self, pdl: &str) -> usize {
        self.ids.get(pdl).copied().unwrap_or(0)
    }

    /// Weighted dominant share of product line `p`.
    pub(crate) fn share(&self, p: usize) -> f64 {
        let u = self.usage[p];
        let [c, m, d] = self.inverse_total;
        let dominant = (u.cpus_milli as f64 * c)
            .max(u.mem_mib as f64 * m)
            .max(u.disk_mib as f64 * d);
        dominant * self.inverse_weights[p]
    }

    pub(crate) fn charge(&mut self, p: usize, r: &Resources) {
        self.usage[p] = self.usage[p].saturating_add(*r);
    }

    pub(crate) fn release(&mut self, pdl: &str, r: &Resources) {
        if let Some(&p) = self.ids.get(pdl) {
            self.usage[p] = self.usage[p].saturating_sub(*r);
        }
    }
}

/// The product lines of one priority level, lowest share first.
#[derive(Debug, Default)]
pub(crate) struct DrfQueue {
    heap: BinaryHeap<Reverse<(u64, usize)>>,
}

impl DrfQueue {
    /// The queue key of product line `p` at its current share.
    pub(crate) fn key(fair: &FairShare<'_>, p: usize) -> u64 {
        // Shares are finite and non-negative, so their bit patterns sort
        // like the numbers: an exact, deterministic integer key.
        let share = fair.share(p);
        if share.is_finite() && share > 0.0 {
            share.to_bits()
        } else {
            0
        }
    }

    /// Queues product line `p` at its current share.
    pub(crate) fn push(&mut self, fair: &FairShare<'_>, p: usize) {
        self.heap.push(Reverse((Self::key(fair, p), p)));
    }

    /// The product line with the lowest share (it stays queued).
    pub(crate) fn first(&self) -> Option<usize> {
        self.heap.peek().map(|Reverse((_, p))| *p)
    }

    /// Re-queues the first product line at its new share: one sift down,
    /// where a pop and a push would cost two walks of the heap (and a
    /// placement changes the first product line's share every time).
    pub(crate) fn requeue_first(&mut self, fair: &FairShare<'_>) {
        if let Some(mut top) = self.heap.peek_mut() {
            let p = top.0 .1;
            top.0 .0 = Self::key(fair, p);
        }
    }

    /// Drops the first product line (it has nothing left to place).
    pub(crate) fn pop(&mut self) {
        self.heap.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{JobRequest, RunningTask};

    #[test]
    fn lowest_weighted_dominant_share_goes_first() {
        let mut snap = Snapshot::default();
        for pdl in ["a", "b", "c"] {
            snap.pending.push(JobRequest {
                pdl: pdl.into(),
                ..JobRequest::default()
            });
        }
        snap.running.push(RunningTask {
            pdl: "a".into(),
            resources: Resources::new(10.0, 0, 0),
            ..RunningTask::default()
        });
        snap.running.push(RunningTask {
            pdl: "b".into(),
            resources: Resources::new(0.0, 500, 0),
            ..RunningTask::default()
        });
        snap.pdl_weights.insert("b".into(), 10.0);
        let fair = FairShare::new(&snap, Resources::new(100.0, 1000, 0));
        // a: 0.10, b: 0.5 / 10 = 0.05, c: 0.
        let mut q = DrfQueue::default();
        for p in 0..3 {
            q.push(&fair, p);
        }
        let order: Vec<usize> = std::iter::from_fn(|| {
            let p = q.first();
            q.pop();
            p
        })
        .collect();
        assert_eq!(order, vec![fair.id("c"), fair.id("b"), fair.id("a")]);
    }

    #[test]
    fn requeued_first_goes_behind_a_lower_share() {
        let mut snap = Snapshot::default();
        for pdl in ["a", "b"] {
            snap.pending.push(JobRequest {
                pdl: pdl.into(),
                ..JobRequest::default()
            });
        }
        let mut fair = FairShare::new(&snap, Resources::new(100.0, 1000, 0));
        let (a, b) = (fair.id("a"), fair.id("b"));
        let mut q = DrfQueue::default();
        q.push(&fair, b);
        q.push(&fair, a);
        // Equal shares: the name that sorts first goes first.
        assert_eq!(q.first(), Some(a));
        fair.charge(a, &Resources::new(1.0, 0, 0));
        q.requeue_first(&fair);
        assert_eq!(q.first(), Some(b));
        fair.charge(b, &Resources::new(0.5, 0, 0));
        q.requeue_first(&fair);
        assert_eq!(q.first(), Some(b));
        q.pop();
        assert_eq!(q.first(), Some(a));
    }
}
