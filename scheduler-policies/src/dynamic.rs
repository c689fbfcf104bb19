//! Dynamic constraints (`UNIQUE`, `MAX_PER`, `GROUP_BY`, `CLUSTER` without
//! a value): their verdict depends on where the job's tasks are. Each keeps
//! a count of the job's tasks per attribute value, updated on every
//! placement, and from the counts the set of values a task may go to now,
//! as a bitset: the check that runs for every agent a scan looks at is one
//! bit test, and the bookkeeping happens once per placement instead.

use std::rc::Rc;

use crate::cluster::{Cluster, NONE};
use crate::constraint::{Constraint, ConstraintError, Operator};
use crate::filter::{bit, Eligible, Filters, Group};
use crate::hash::FxHashMap;

/// Tasks of a job per value of a column: dense for small columns, sparse
/// for large ones (a `hostname` column has one value per agent, and most
/// jobs touch few of them).
#[derive(Debug)]
pub(crate) enum Counts {
    Dense(Vec<u32>),
    Sparse(FxHashMap<u32, u32>),
}

/// Columns with more values than this use [`Counts::Sparse`].
const DENSE_MAX: usize = 1024;

impl Counts {
    fn new(values: usize) -> Self {
        if values <= DENSE_MAX {
            Counts::Dense(vec![0; values])
        } else {
            Counts::Sparse(FxHashMap::default())
        }
    }

    #[inline]
    pub(crate) fn get(&self, v: u32) -> u32 {
        match self {
            Counts::Dense(c) => c.get(v as usize).copied().unwrap_or(0),
            Counts::Sparse(m) => m.get(&v).copied().unwrap_or(0),
        }
    }

    /// Adds one; returns the count before.
    #[inline]
    fn inc(&mut self, v: u32) -> u32 {
        match self {
            Counts::Dense(c) => match c.get_mut(v as usize) {
                Some(n) => {
                    *n += 1;
                    *n - 1
                }
                None => 0,
            },
            Counts::Sparse(m) => {
                let n = m.entry(v).or_insert(0);
                *n += 1;
                *n - 1
            }
        }
    }

    fn dec(&mut self, v: u32) {
        match self {
            Counts::Dense(c) => {
                if let Some(n) = c.get_mut(v as usize) {
                    *n = n.saturating_sub(1);
                }
            }
            Counts::Sparse(m) => {
                if let Some(n) = m.get_mut(&v) {
                    *n = n.saturating_sub(1);
                }
            }
        }
    }

    /// Calls `f(value, count)` for every value with a count above zero.
    fn for_each_used(&self, mut f: impl FnMut(u32, u32)) {
        match self {
            Counts::Dense(c) => c
                .iter()
                .enumerate()
                .filter(|(_, &n)| n > 0)
                .for_each(|(v, &n)| f(v as u32, n)),
            Counts::Sparse(m) => m
                .iter()
                .filter(|(_, &n)| n > 0)
                .for_each(|(&v, &n)| f(v, n)),
        }
    }

    /// The most used value (lowest id on ties), if any is used.
    fn most_used(&self) -> Option<u32> {
        let mut best: Option<(u32, u32)> = None;
        let mut consider = |v: u32, n: u32| {
            let better = match best {
                None => n > 0,
                Some((bv, bn)) => n > bn || (n == bn && v < bv),
            };
            if better {
                best = Some((v, n));
            }
        };
        match self {
            Counts::Dense(c) => c
                .iter()
                .enumerate()
                .for_each(|(v, &n)| consider(v as u32, n)),
            Counts::Sparse(m) => m.iter().for_each(|(&v, &n)| consider(v, n)),
        }
        best.map(|(v, _)| v)
    }
}

/// What a dynamic constraint allows, given the per-value counts.
#[derive(Debug)]
pub(crate) enum DynKind {
    /// No value used twice.
    Unique,
    /// At most n per value.
    MaxPer(u32),
    /// Only values at the minimum count among `values` (all values present
    /// on the job's eligible agents).
    GroupBy {
        group: Rc<Group>,
        min: u32,
        at_min: u32,
    },
    /// All tasks on the value already used (any value while none is).
    Cluster { pinned: Option<u32> },
}

/// One dynamic constraint of one job.
#[derive(Debug)]
pub(crate) struct DynConstraint {
    pub(crate) column: usize,
    pub(crate) counts: Counts,
    pub(crate) kind: DynKind,
    /// Bit `v` set: a task may go to value `v` now (what `kind` and
    /// `counts` allow, kept in step with them).
    allowed: Vec<u64>,
    /// Number of values of the column.
    values: usize,
}

impl DynConstraint {
    /// Compiles a dynamic constraint. `eligible` is the job's static
    /// eligibility; `running` the agents of the job's running tasks.
    pub(crate) fn new(
        cluster: &mut Cluster<'_>,
        filters: &mut Filters,
        c: &Constraint,
        eligible: &Eligible,
        running: impl Iterator<Item = usize>,
    ) -> Result<Self, ConstraintError> {
        let column = cluster.column_id(&c.attribute);
        let col = cluster.column(column);
        let values = col.values.len();
        let mut counts = Counts::new(values);
        for i in running {
            if let Some(&v) = col.per_agent.get(i) {
                if v != NONE {
                    counts.inc(v);
                }
            }
        }
        let kind = match c.operator {
            Operator::Unique => DynKind::Unique,
            Operator::MaxPer => DynKind::MaxPer(c.count()?),
            Operator::GroupBy => {
                if c.value.is_some() {
                    c.count()?; // validated; balancing uses all values anyway
                }
                DynKind::GroupBy {
                    group: filters.group(cluster, eligible, column),
                    min: 0,
                    at_min: 0,
                }
            }
            _ => DynKind::Cluster { pinned: None },
        };
        let mut d = Self {
            column,
            counts,
            kind,
            allowed: Vec::new(),
            values,
        };
        d.refresh();
        Ok(d)
    }

    /// Recomputes derived state (GROUP_BY minimum, CLUSTER pin, the
    /// allowed values) from the counts.
    pub(crate) fn refresh(&mut self) {
        match &mut self.kind {
            DynKind::GroupBy { group, min, at_min } => {
                let counts = &self.counts;
                let m = group
                    .values
                    .iter()
                    .map(|&v| counts.get(v))
                    .min()
                    .unwrap_or(0);
                *min = m;
                *at_min = group.values.iter().filter(|&&v| counts.get(v) == m).count() as u32;
            }
            DynKind::Cluster { pinned } => *pinned = self.counts.most_used(),
            DynKind::Unique | DynKind::MaxPer(_) => {}
        }
        self.rebuild_allowed();
    }

    /// Fills `allowed` from `kind` and `counts`: O(values) for a full
    /// column, so only at compile time, when a `GROUP_BY` level fills and
    /// on preemption.
    fn rebuild_allowed(&mut self) {
        let words = self.values.div_ceil(64);
        let allowed = &mut self.allowed;
        allowed.clear();
        let all = |allowed: &mut Vec<u64>| {
            allowed.resize(words, u64::MAX);
            if !self.values.is_multiple_of(64) {
                if let Some(w) = allowed.last_mut() {
                    *w = (1 << (self.values % 64)) - 1;
                }
            }
        };
        match &self.kind {
            DynKind::Unique | DynKind::MaxPer(_) => {
                let max = match self.kind {
                    DynKind::MaxPer(max) => max,
                    _ => 1,
                };
                if max == 0 {
                    allowed.resize(words, 0);
                } else {
                    all(allowed);
                    self.counts.for_each_used(|v, n| {
                        if n >= max {
                            clear(allowed, v);
                        }
                    });
                }
            }
            DynKind::GroupBy { group, min, .. } => {
                allowed.resize(words, 0);
                for &v in &group.values {
                    if self.counts.get(v) == *min {
                        set(allowed, v);
                    }
                }
            }
            DynKind::Cluster { pinned: None } => all(allowed),
            DynKind::Cluster { pinned: Some(p) } => {
                allowed.resize(words, 0);
                set(allowed, *p);
            }
        }
    }

    /// May a task go to an agent whose value is `v`? (Never for [`NONE`]:
    /// the bitset is far shorter than that id.)
    #[inline]
    pub(crate) fn allows(&self, v: u32) -> bool {
        bit(&self.allowed, v as usize)
    }

    /// Records a task placed on value `v`. Returns true when this may
    /// have made agents allowed that were not (a `GROUP_BY` level filled).
    #[inline]
    pub(crate) fn add(&mut self, v: u32) -> bool {
        if v == NONE {
            return false;
        }
        let before = self.counts.inc(v);
        match &mut self.kind {
            DynKind::GroupBy { group, min, at_min } => {
                if group.in_group.get(v as usize).copied().unwrap_or(false) && before == *min {
                    clear(&mut self.allowed, v); // above the minimum now
                    *at_min -= 1;
                    if *at_min == 0 {
                        self.refresh();
                        return true;
                    }
                }
                false
            }
            DynKind::Cluster { pinned } => {
                if pinned.is_none() {
                    *pinned = Some(v);
                    self.rebuild_allowed();
                }
                false
            }
            DynKind::Unique => {
                clear(&mut self.allowed, v);
                false
            }
            DynKind::MaxPer(max) => {
                if before.saturating_add(1) >= *max {
                    clear(&mut self.allowed, v);
                }
                false
            }
        }
    }

    /// Records a task removed from value `v` (preemption).
    pub(crate) fn remove(&mut self, v: u32) {
        if v != NONE {
            self.counts.dec(v);
            self.refresh();
        }
    }
}

fn set(bits: &mut [u64], v: u32) {
    if let Some(w) = bits.get_mut(v as usize >> 6) {
        *w |= 1 << (v & 63);
    }
}

fn clear(bits: &mut [u64], v: u32) {
    if let Some(w) = bits.get_mut(v as usize >> 6) {
        *w &= !(1 << (v & 63));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Resources;
    use crate::snapshot::Agent;
    use crate::synthetic::Rng;

    /// What the constraint allows, recomputed from the counts alone.
    fn expected(d: &DynConstraint, values: u32) -> Vec<bool> {
        let counts: Vec<u32> = (0..values).map(|v| d.counts.get(v)).collect();
        match &d.kind {
            DynKind::Unique => counts.iter().map(|&n| n == 0).collect(),
            DynKind::MaxPer(max) => counts.iter().map(|&n| n < *max).collect(),
            DynKind::GroupBy { group, .. } => {
                let min = group.values.iter().map(|&g| counts[g as usize]).min();
                (0..values as usize)
                    .map(|v| group.in_group[v] && Some(counts[v]) == min)
                    .collect()
            }
            DynKind::Cluster { .. } => {
                let pinned = d.counts.most_used();
                (0..values).map(|v| pinned.is_none_or(|p| p == v)).collect()
            }
        }
    }

    /// Random placements (on allowed values only, as the planner binds)
    /// and preemptions keep the bitset equal to the rule on the counts.
    #[test]
    fn allowed_values_follow_the_counts() {
        // Dense and sparse counts: 7 values, and more than `DENSE_MAX`.
        for (values, agents) in [(7usize, 20usize), (1500, 3000)] {
            let mut snap_agents: Vec<Agent> = (0..agents)
                .map(|i| {
                    Agent::new(format!("a{i}"), Resources::new(1.0, 1, 0))
                        .with_attr("k", format!("v{}", i % values))
                })
                .collect();
            snap_agents[0].attributes.remove("k"); // a value-less agent
            for (op, value) in [
                (Operator::Unique, None),
                (Operator::MaxPer, Some("2")),
                (Operator::GroupBy, None),
                (Operator::Cluster, None),
            ] {
                let mut cluster = Cluster::new(&snap_agents, &[], std::iter::empty());
                let mut filters = Filters::default();
                let eligible = filters.eligible(&cluster, &[], &[], false);
                let c = Constraint::new("k", op, value);
                let running = [3usize, 3, 5];
                let mut d = DynConstraint::new(
                    &mut cluster,
                    &mut filters,
                    &c,
                    &eligible,
                    running.into_iter(),
                )
                .unwrap();
                let mut rng = Rng::new(values as u64);
                let n = cluster.column(d.column).values.len() as u32;
                assert!(!d.allows(NONE));
                for _ in 0..400 {
                    let allowed: Vec<bool> = (0..n).map(|v| d.allows(v)).collect();
                    assert_eq!(allowed, expected(&d, n), "{c}");
                    let v = rng.below(u64::from(n)) as u32;
                    if rng.below(4) == 0 {
                        if d.counts.get(v) > 0 {
                            d.remove(v);
                        }
                    } else if d.allows(v) {
                        d.add(v);
                    }
                }
            }
        }
    }
}
