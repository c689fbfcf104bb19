//! Constraint evaluation, split by what it depends on.
//!
//! * Static constraints (`IS`, `LIKE`, `UNLIKE`, `CLUSTER` with a value,
//!   `MATCH`) depend only on an agent's attributes. `MATCH` reads several
//!   attributes at once, so its table is over the agents' ids (a column
//!   whose values are the agents themselves). They are evaluated once per
//!   distinct attribute VALUE (not per agent, not per task) into a table,
//!   and combined with the online status into an eligibility bitset per
//!   distinct set of static constraints, shared by all jobs that use it.
//! * Dynamic constraints (`UNIQUE`, `MAX_PER`, `GROUP_BY`, `CLUSTER` without
//!   a value) depend on where the job's tasks are: see `dynamic.rs`. This
//!   file only builds what they share between jobs (the [`Group`] of values
//!   `GROUP_BY` balances over).

use std::rc::Rc;

use crate::cluster::{Cluster, NONE};
use crate::constraint::{Constraint, ConstraintError, Operator};
use crate::hash::FxHashMap;

/// The column key whose values are the agents' ids (no attribute is named
/// so: attribute names never hold a NUL).
pub(crate) const AGENT_ID_COLUMN: &str = "\0id";

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
    set_by_key: FxHashMap<(Vec<usize>, Vec<String>, bool), usize>,
    groups: FxHashMap<(usize, usize), Rc<Group>>,
}

/// The values of a column present on the agents of an eligibility set:
/// what `GROUP_BY` balances over.
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) in_group: Vec<bool>,
    pub(crate) values: Vec<u32>,
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
        let column = if c.operator == Operator::Match {
            cluster.column_id(AGENT_ID_COLUMN)
        } else {
            cluster.column_id(&c.attribute)
        };
        let values = &cluster.column(column).values;
        let (pass, pass_missing) = match c.operator {
            Operator::Match => {
                let q = match c.query() {
                    Ok(q) => q,
                    Err(e) => {
                        self.table_by_key.insert(key, Err(e.clone()));
                        return Err(e);
                    }
                };
                let mut pass = vec![false; values.len()];
                let col = cluster.column(column);
                for (i, &v) in col.per_agent.iter().enumerate() {
                    if v != NONE {
                        let agent = &cluster.agents[i];
                        pass[v as usize] = q.matches(|t, x| agent.attribute(t) == Some(x));
                    }
                }
                (pass, false)
            }
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

    /// Online agents (also out-of-service ones for `maintenance` jobs)
    /// passing the static `tables` and offering every executor in
    /// `needs`, as a bitset shared by jobs asking the same.
    pub(crate) fn eligible(
        &mut self,
        cluster: &Cluster<'_>,
        tables: &[usize],
        needs: &[String],
        maintenance: bool,
    ) -> Eligible {
        let mut key = tables.to_vec();
        key.sort_unstable();
        key.dedup();
        let mut needs = needs.to_vec();
        needs.sort_unstable();
        needs.dedup();
        let key = (key, needs, maintenance);
        if let Some(&id) = self.set_by_key.get(&key) {
            return Eligible {
                id,
                bits: Rc::clone(&self.sets[id]),
            };
        }
        let n = cluster.agents.len();
        let mut words = vec![0u64; n.div_ceil(64)];
        for (i, &on) in cluster.online.iter().enumerate() {
            let ok = (on || maintenance && cluster.agents[i].is_maintainable())
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
    pub(crate) fn group(
        &mut self,
        cluster: &Cluster<'_>,
        eligible: &Eligible,
        column: usize,
    ) -> Rc<Group> {
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
