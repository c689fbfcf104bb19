//! Mutable per-round view of the agents: free resources, ports, interned
//! attributes and the ordered index the policies scan.
//!
//! The index (see `index.rs`) holds online agents by the request sizes
//! they can hold, then by a "free score" (the sum of free cpus, mem and
//! disk, each normalised to the largest agent).

use std::collections::hash_map::Entry;

use crate::hash::FxHashMap;
use crate::index::{AgentIndex, Cursor, Levels};
use crate::ports::PortState;
use crate::resources::Resources;
use crate::snapshot::{Agent, RunningTask};

/// Marks an agent without the attribute in a [`Column`].
pub(crate) const NONE: u32 = u32::MAX;

/// Fixed-point scale of one resource dimension in the free score.
const SCALE: u128 = 1 << 20;

/// One attribute interned over all agents.
#[derive(Debug, Default)]
pub(crate) struct Column<'s> {
    /// Distinct values, by id (first-seen order in the agent list).
    pub(crate) values: Vec<&'s str>,
    /// Value id per agent, or [`NONE`].
    pub(crate) per_agent: Vec<u32>,
}

/// The round's agent state.
#[derive(Debug)]
pub(crate) struct Cluster<'s> {
    pub(crate) agents: &'s [Agent],
    /// Online and not a duplicate id: may receive tasks.
    pub(crate) online: Vec<bool>,
    /// Reserved + running + placed in this plan (may exceed capacity when
    /// the snapshot is overcommitted).
    pub(crate) used: Vec<Resources>,
    /// `capacity - used`, saturating at zero.
    pub(crate) free: Vec<Resources>,
    pub(crate) ports: Vec<PortState>,
    /// Levels and free score under which each online agent is indexed.
    indexed: Vec<(Levels, u64)>,
    pub(crate) index: AgentIndex,
    /// Per dimension, `2^52 / largest capacity` (fixed point): the score's
    /// normaliser, so scoring is a multiply, not a division.
    multipliers: [u128; 3],
    /// Largest capacity per dimension.
    reference: Resources,
    pub(crate) by_id: FxHashMap<&'s str, u32>,
    columns: Vec<Column<'s>>,
    column_by_key: FxHashMap<String, usize>,
    /// Sum of online agents' capacity (the fair-share denominator).
    pub(crate) total_online: Resources,
}

impl<'s> Cluster<'s> {
    /// Builds the state from the agents and charges the running tasks;
    /// `requests` are the pending request sizes (the index's levels).
    pub(crate) fn new(
        agents: &'s [Agent],
        running: &'s [RunningTask],
        requests: impl Iterator<Item = Resources>,
    ) -> Self {
        let n = agents.len();
        let mut by_id: FxHashMap<&'s str, u32> = FxHashMap::default();
        by_id.reserve(n);
        let mut online = vec![false; n];
        for (i, a) in agents.iter().enumerate() {
            let Ok(idx) = u32::try_from(i) else { break };
            // One hash per agent: `entry` both detects and records the id.
            match by_id.entry(a.id.as_str()) {
                Entry::Occupied(_) => continue, // a duplicate id never receives tasks
                Entry::Vacant(v) => {
                    v.insert(idx);
                }
            }
            online[i] = a.is_online();
        }
        let mut used: Vec<Resources> = agents.iter().map(|a| a.reserved).collect();
        let mut ports: Vec<PortState> = agents
            .iter()
            .map(|a| PortState::new(&a.port_ranges, a.reserved_ports.iter().copied()))
            .collect();
        for t in running {
            if let Some(&i) = by_id.get(t.agent.as_str()) {
                let i = i as usize;
                used[i] = used[i].saturating_add(t.resources);
                for p in &t.ports {
                    ports[i].take(*p);
                }
            }
        }
        let free: Vec<Resources> = agents
            .iter()
            .zip(&used)
            .map(|(a, u)| a.capacity.saturating_sub(*u))
            .collect();
        let mut reference = Resources::default();
        let mut total_online = Resources::default();
        for (a, _) in agents.iter().zip(&online).filter(|(_, on)| **on) {
            reference.cpus_milli = reference.cpus_milli.max(a.capacity.cpus_milli);
            reference.mem_mib = reference.mem_mib.max(a.capacity.mem_mib);
            reference.disk_mib = reference.disk_mib.max(a.capacity.disk_mib);
            total_online = total_online.saturating_add(a.capacity);
        }
        let mut c = Self {
            agents,
            online,
            used,
            free,
            ports,
            indexed: vec![(Levels::default(), 0); n],
            index: AgentIndex::new(requests),
            multipliers: [reference.cpus_milli, reference.mem_mib, reference.disk_mib]
                .map(|max| (SCALE << 32) / u128::from(max.max(1))),
            reference,
            by_id,
            columns: Vec::new(),
            column_by_key: FxHashMap::default(),
            total_online,
        };
        for i in 0..n {
            if c.online[i] {
                let key = c.key_of(&c.free[i]);
                c.indexed[i] = key;
                c.index.insert(key.0, key.1, i as u32);
            }
        }
        c
    }

    /// The free score of some resources (monotone in each dimension).
    #[inline]
    pub(crate) fn score_of(&self, r: &Resources) -> u64 {
        let dim = |v: u64, max: u64, mult: u128| -> u128 { (u128::from(v.min(max)) * mult) >> 32 };
        let [mc, mm, md] = self.multipliers;
        let s = dim(r.cpus_milli, self.reference.cpus_milli, mc)
            + dim(r.mem_mib, self.reference.mem_mib, mm)
            + dim(r.disk_mib, self.reference.disk_mib, md);
        u64::try_from(s).unwrap_or(u64::MAX)
    }

    /// Where free resources `r` belong in the index.
    #[inline]
    fn key_of(&self, r: &Resources) -> (Levels, u64) {
        (self.index.levels(r), self.score_of(r))
    }

    /// Charges `r` to agent `i`.
    pub(crate) fn allocate(&mut self, i: usize, r: &Resources) {
        self.used[i] = self.used[i].saturating_add(*r);
        self.free[i] = self.agents[i].capacity.saturating_sub(self.used[i]);
        self.rescore(i);
    }

    /// Gives `r` back to agent `i` (a preempted task).
    pub(crate) fn release(&mut self, i: usize, r: &Resources) {
        self.used[i] = self.used[i].saturating_sub(*r);
        self.free[i] = self.agents[i].capacity.saturating_sub(self.used[i]);
        self.rescore(i);
    }

    /// Re-keys agent `i` in the index after its free resources changed.
    fn rescore(&mut self, i: usize) {
        if !self.online[i] {
            return;
        }
        let old = self.indexed[i];
        let free = &self.free[i];
        let new = (self.index.levels_from(old.0, free), self.score_of(free));
        if new != old {
            self.index.rekey(old, new, i as u32);
            self.indexed[i] = new;
        }
    }

    /// Where agent `i` sits in the index now.
    #[inline]
    pub(crate) fn cursor(&self, i: usize) -> Cursor {
        let (levels, score) = self.indexed[i];
        Cursor::new(levels, score, i as u32)
    }

    /// Id of the interned column for `key`, interning it on first use.
    pub(crate) fn column_id(&mut self, key: &str) -> usize {
        if let Some(&c) = self.column_by_key.get(key) {
            return c;
        }
        // Sized for the worst case (every value distinct, e.g. hostname):
        // growing a 10k-entry map step by step rehashes it repeatedly.
        let mut ids: FxHashMap<&'s str, u32> = FxHashMap::default();
        ids.reserve(self.agents.len());
        let mut col = Column {
            values: Vec::new(),
            per_agent: Vec::with_capacity(self.agents.len()),
        };
        let agents: &'s [Agent] = self.agents;
        let by_id = key == crate::filter::AGENT_ID_COLUMN;
        for a in agents {
            let value = if by_id {
                Some(a.id.as_str())
            } else {
                a.attribute(key)
            };
            let v = match value {
                Some(v) => match ids.entry(v) {
                    Entry::Occupied(e) => *e.get(),
                    Entry::Vacant(e) => {
                        let id = u32::try_from(col.values.len()).unwrap_or(NONE - 1);
                        e.insert(id);
                        col.values.push(v);
                        id
                    }
                },
                None => NONE,
            };
            col.per_agent.push(v);
        }
        let c = self.columns.len();
        self.columns.push(col);
        self.column_by_key.insert(key.to_string(), c);
        c
    }

    #[inline]
    pub(crate) fn column(&self, c: usize) -> &Column<'s> {
        &self.columns[c]
    }

    /// Value id of column `c` on agent `i`.
    #[inline]
    pub(crate) fn value(&self, c: usize, i: usize) -> u32 {
        self.columns[c].per_agent[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(id: &str, cpus: f64, mem: u64) -> Agent {
        Agent::new(id, Resources::new(cpus, mem, 0))
    }

    #[test]
    fn running_tasks_are_charged_and_duplicates_ignored() {
        let agents = vec![
            agent("a", 4.0, 100),
            agent("b", 4.0, 100),
            agent("a", 8.0, 800),
        ];
        let running = vec![RunningTask {
            id: "t".into(),
            agent: "a".into(),
            resources: Resources::new(1.0, 10, 0),
            ..RunningTask::default()
        }];
        let c = Cluster::new(&agents, &running, std::iter::empty());
        assert_eq!(c.free[0], Resources::new(3.0, 90, 0));
        assert_eq!(c.free[1], Resources::new(4.0, 100, 0));
        assert!(!c.online[2]);
        assert_eq!(c.index.len(), 2);
        assert_eq!(c.total_online, Resources::new(8.0, 200, 0));
    }

    #[test]
    fn score_is_monotone() {
        let agents = vec![agent("a", 4.0, 100)];
        let c = Cluster::new(&agents, &[], std::iter::empty());
        let small = c.score_of(&Resources::new(1.0, 10, 0));
        let big = c.score_of(&Resources::new(1.0, 20, 0));
        assert!(small < big);
        assert!(c.score_of(&Resources::new(4.0, 100, 0)) <= 2 * (1 << 20));
    }

    #[test]
    fn columns_intern_values_and_hostname_falls_back() {
        let mut agents = vec![
            agent("a", 1.0, 1),
            agent("b", 1.0, 1).with_attr("idc", "c3"),
        ];
        agents[0].attributes.remove("hostname");
        let mut c = Cluster::new(&agents, &[], std::iter::empty());
        let h = c.column_id("hostname");
        assert_eq!(c.column(h).values, vec!["a", "b"]);
        let idc = c.column_id("idc");
        assert_eq!(c.value(idc, 0), NONE);
        assert_eq!(c.value(idc, 1), 0);
        assert_eq!(c.column_id("idc"), idc);
    }
}
