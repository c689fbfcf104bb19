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

use std::collections::HashMap;
use std::rc::Rc;

use crate::cluster::{Cluster, NONE};
use crate::constraint::{Constraint, ConstraintError, Operator};

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
    table_by_key: HashMap<(String, Operator, Option<String>), usize>,
    sets: Vec<Rc<[u64]>>,
    set_by_key: HashMap<Vec<usize>, usize>,
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
        if let Some(&t) = self.table_by_key.get(&key) {
            return Ok(t);
        }
        let column = cluster.column_id(&c.attribute);
        let values = &cluster.column(column).values;
        let (pass, pass_missing) = match c.operator {
            Operator::Like | Operator::Unlike => {
                let re = c.regex()?;
                let like = c.operator == Operator::Like;
                let pass = values.iter().map(|v| re.is_match(v) == like).collect();
                (pass, !like)
            }
            _ => {
                let want = c.value.as_deref().unwrap_or("");
                (values.iter().map(|v| v == want).collect(), false)
            }
        };
        let t = self.tables.len();
        self.tables.push(StaticTable {
            column,
            pass,
            pass_missing,
        });
        self.table_by_key.insert(key, t);
        Ok(t)
    }

    /// The eligibility bitset (online and passing every table), shared by
    /// all jobs with the same static constraints.
    pub(crate) fn eligible(&mut self, cluster: &Cluster<'_>, tables: &[usize]) -> Rc<[u64]> {
        let mut key = tables.to_vec();
        key.sort_unstable();
        key.dedup();
        if let Some(&s) = self.set_by_key.get(&key) {
            return Rc::clone(&self.sets[s]);
        }
        let n = cluster.agents.len();
        let mut words = vec![0u64; n.div_ceil(64)];
        for (i, &on) in cluster.online.iter().enumerate() {
            let ok = on
                && key.iter().all(|&t| {
                    let table = &self.tables[t];
                    table.allows(cluster.value(table.column, i))
                });
            if ok {
                words[i >> 6] |= 1 << (i & 63);
            }
        }
        let set: Rc<[u64]> = words.into();
        self.sets.push(Rc::clone(&set));
        self.set_by_key.insert(key, self.sets.len() - 1);
        set
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
        in_group: Vec<bool>,
        values: Vec<u32>,
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
    pub(crate) counts: Vec<u32>,
    pub(crate) kind: DynKind,
}

impl DynConstraint {
    /// Compiles a dynamic constraint. `eligible` is the job's static
    /// eligibility; `running` the agents of the job's running tasks.
    pub(crate) fn new(
        cluster: &mut Cluster<'_>,
        c: &Constraint,
        eligible: &[u64],
        running: impl Iterator<Item = usize>,
    ) -> Result<Self, ConstraintError> {
        let column = cluster.column_id(&c.attribute);
        let col = cluster.column(column);
        let mut counts = vec![0u32; col.values.len()];
        for i in running {
            if let Some(&v) = col.per_agent.get(i) {
                if let Some(n) = counts.get_mut(v as usize) {
                    *n += 1;
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
                let mut in_group = vec![false; col.values.len()];
                for (i, &v) in col.per_agent.iter().enumerate() {
                    if v != NONE && bit(eligible, i) {
                        in_group[v as usize] = true;
                    }
                }
                let values = (0..col.values.len() as u32)
                    .filter(|&v| in_group[v as usize])
                    .collect();
                DynKind::GroupBy {
                    in_group,
                    values,
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
            DynKind::GroupBy {
                values, min, at_min, ..
            } => {
                let m = values
                    .iter()
                    .map(|&v| self.counts[v as usize])
                    .min()
                    .unwrap_or(0);
                *min = m;
                *at_min = values
                    .iter()
                    .filter(|&&v| self.counts[v as usize] == m)
                    .count() as u32;
            }
            DynKind::Cluster { pinned } => {
                // The most used value (lowest id on ties); None when unused.
                let mut best: Option<(u32, u32)> = None;
                for (v, &n) in self.counts.iter().enumerate() {
                    if n > 0 && best.is_none_or(|(_, bn)| n > bn) {
                        best = Some((v as u32, n));
                    }
                }
                *pinned = best.map(|(v, _)| v);
            }
            DynKind::Unique | DynKind::MaxPer(_) => {}
        }
    }

    /// May a task go to an agent whose value is `v`?
    #[inline]
    pub(crate) fn allows(&self, v: u32) -> bool {
        if v == NONE {
            return false;
        }
        let n = self.counts.get(v as usize).copied().unwrap_or(u32::MAX);
        match &self.kind {
            DynKind::Unique => n == 0,
            DynKind::MaxPer(max) => n < *max,
            DynKind::GroupBy { in_group, min, .. } => in_group[v as usize] && n == *min,
            DynKind::Cluster { pinned } => pinned.is_none_or(|p| p == v),
        }
    }

    /// Records a task placed on value `v`.
    #[inline]
    pub(crate) fn add(&mut self, v: u32) {
        let Some(n) = self.counts.get_mut(v as usize) else {
            return;
        };
        let before = *n;
        *n += 1;
        match &mut self.kind {
            DynKind::GroupBy {
                in_group,
                min,
                at_min,
                ..
            } => {
                if in_group[v as usize] && before == *min {
                    *at_min -= 1;
                    if *at_min == 0 {
                        self.refresh();
                    }
                }
            }
            DynKind::Cluster { pinned } => {
                if pinned.is_none() {
                    *pinned = Some(v);
                }
            }
            DynKind::Unique | DynKind::MaxPer(_) => {}
        }
    }

    /// Records a task removed from value `v` (preemption).
    pub(crate) fn remove(&mut self, v: u32) {
        if let Some(n) = self.counts.get_mut(v as usize) {
            *n = n.saturating_sub(1);
            self.refresh();
        }
    }
}
