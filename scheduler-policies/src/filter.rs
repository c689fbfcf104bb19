//! Constraint evaluation, split by what it depends on.
//!
//! * Static constraints (`IS`, `LIKE`, `UNLIKE`, `CLUSTER` with a value)
//!   depend only on an agent's attributes. They are evaluated once per
//!   distinct attribute VALUE (not per agent, not per task) into a table,
//!   and combined with the online status into an eligibility bitset per
//!   distinct set of static constraints, shared by all jobs that use it.
//! * Dynamic constraints (`UNIQUE`, `MAX_PER`, `GROUP_BY`, `CLUSTER` without
//!   a value) depend on where the job's tasks are; each keeps a count per
//!   attribute value, updated on every placement, so a check is O(1).

use std::rc::Rc;

use crate::cluster::{Cluster, NONE};
use crate::constraint::{Constraint, ConstraintError, Operator};
use crate::hash::FxHashMap;

/// Verdict of one static constraint per value id of its column.
#[derive(Debug)]
pub(crate) struct StaticTable {
    pub(crate) column: usize,
    pass: Vec<bool>,
    pass_missing: bool,
}

impl StaticTable {
    #[inline]
    pub(crate) fn allows(&self, value: u32) -> bool {
        if value == NONE {
            self.pass_missing
        } else {
            self.pass.get(value as usize).copied().unwrap_or(false)
        }
    }
}

/// Round-wide cache of static tables and eligibility bitsets.
#[derive(Debug, Default)]
pub(crate) struct Filters {
    tables: Vec<StaticTable>,
    table_by_key: FxHashMap<(String, Operator, Option<String>), Result<usize, ConstraintError>>,
    sets: Vec<Rc<[u64]>>,
    set_by_key: FxHashMap<(Vec<usize>, Vec<String>), usize>,
    groups: FxHashMap<(usize, usize), Rc<Group>>,
}

/// The values of a column present on the agents of an eligibility set:
/// what `GROUP_BY` balances over.
#[derive(Debug)]
pub(crate) struct Group {
    in_group: Vec<bool>,
    values: Vec<u32>,
}

/// An eligibility bitset and its id (for caches keyed by it).
#[derive(Debug, Clone)]
pub(crate) struct Eligible {
    pub(crate) id: usize,
    pub(crate) bits: Rc<[u64]>,
}

/// True when bit `i` is set.
#[inline]
pub(crate) fn bit(set: &[u64], i: usize) -> bool {
    set.get(i >> 6).is_some_and(|w| (w >> (i & 63)) & 1 == 1)
}

impl Filters {
    pub(crate) fn table(&self, t: usize) -> &StaticTable {
        &self.tables[t]
    }

    /// The table of a static constraint, built on first use.
    pub(crate) fn static_table(
        &mut self,
        cluster: &mut Cluster<'_>,
        c: &Constraint,
    ) -> Result<usize, ConstraintError> {
        let key = (c.attribute.clone(), c.operator, c.value.clone());
        if let Some(t) = self.table_by_key.get(&key) {
            return t.clone();
        }
        let column = cluster.column_id(&c.attribute);
        let values = &cluster.column(column).values;
        let (pass, pass_missing) = match c.operator {
            Operator::Like | Operator::Unlike => {
                let re = match c.regex() {
                    Ok(re) => re,
                    Err(e) => {
                        self.table_by_key.insert(key, Err(e.clone()));
                        return Err(e);
                    }
                };
                let like = c.operator == Operator::Like;
                let pass = values.iter().map(|v| re.is_match(v) == like).collect();
                (pass, !like)
            }
            _ => {
                let want = c.value.as_deref().unwrap_or("");
                (values.iter().map(|v| *v == want).collect(), false)
            }
        };
        let t = self.tables.len();
        self.tables.push(StaticTable {
            column,
            pass,
            pass_missing,
        });
        self.table_by_key.insert(key, Ok(t));
        Ok(t)
    }

    /// The eligibility bitset (online and passing every table), shared by
    /// all jobs with the same static constraints.
    /// Online agents passing the static `tables` and offering every
    /// executor in `needs`, as a bitset shared by jobs asking the same.
    pub(crate) fn eligible(
        &mut self,
        cluster: &Cluster<'_>,
        tables: &[usize],
        needs: &[String],
    ) -> Eligible {
        let mut key = tables.to_vec();
        key.sort_unstable();
        key.dedup();
        let mut needs = needs.to_vec();
        needs.sort_unstable();
        needs.dedup();
        let key = (key, needs);
        if let Some(&id) = self.set_by_key.get(&key) {
            return Eligible {
                id,
                bits: Rc::clone(&self.sets[id]),
            };
        }
        let n = cluster.agents.len();
        let mut words = vec![0u64; n.div_ceil(64)];
        for (i, &on) in cluster.online.iter().enumerate() {
            let ok = on
                && key
                    .1
                    .iter()
                    .all(|n| cluster.agents[i].executors.contains(n))
                && key.0.iter().all(|&t| {
                    let table = &self.tables[t];
                    table.allows(cluster.value(table.column, i))
                });
            if ok {
                words[i >> 6] |= 1 << (i & 63);
            }
        }
        let bits: Rc<[u64]> = words.into();
        let id = self.sets.len();
        self.sets.push(Rc::clone(&bits));
        self.set_by_key.insert(key, id);
        Eligible { id, bits }
    }

    /// Values of `column` present on the agents of `eligible`, cached.
    fn group(&mut self, cluster: &Cluster<'_>, eligible: &Eligible, column: usize) -> Rc<Group> {
        let col = cluster.column(column);
        let group = self.groups.entry((eligible.id, column)).or_insert_with(|| {
            let mut in_group = vec![false; col.values.len()];
            for (i, &v) in col.per_agent.iter().enumerate() {
                if v != NONE && bit(&eligible.bits, i) {
                    in_group[v as usize] = true;
                }
            }
            let values = (0..col.values.len() as u32)
                .filter(|&v| in_group[v as usize])
                .collect();
            Rc::new(Group { in_group, values })
        });
        Rc::clone(group)
    }
}

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
        let mut counts = Counts::new(col.values.len());
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
        };
        d.refresh();
        Ok(d)
    }

    /// Recomputes derived state (GROUP_BY minimum, CLUSTER pin) from counts.
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
    }

    /// May a task go to an agent whose value is `v`?
    #[inline]
    pub(crate) fn allows(&self, v: u32) -> bool {
        if v == NONE {
            return false;
        }
        match &self.kind {
            DynKind::Unique => self.counts.get(v) == 0,
            DynKind::MaxPer(max) => self.counts.get(v) < *max,
            DynKind::GroupBy { group, min, .. } => {
                group.in_group.get(v as usize).copied().unwrap_or(false)
                    && self.counts.get(v) == *min
            }
            DynKind::Cluster { pinned } => pinned.is_none_or(|p| p == v),
        }
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
                }
                false
            }
            DynKind::Unique | DynKind::MaxPer(_) => false,
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
