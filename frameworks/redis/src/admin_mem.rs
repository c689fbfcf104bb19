//! [`MemAdmin`]: an in-memory Redis Cluster behind [`RedisAdmin`], for
//! the operator's unit tests beside the real one. It models only what the
//! operator relies on: who knows whom, who serves which slots, who
//! replicates whom, offsets; MEET is mutual at once and a forced failover
//! takes the old primary's slots at once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use crate::admin::{AdminError, RedisAdmin, Result, SlotMigration};
use crate::decide::AdminCmd;
use crate::reshard::{ranges_of, slots_of, SlotLoad};
use crate::topology::{NodeLine, Observed};

#[derive(Debug, Clone)]
struct Node {
    id: String,
    ip: String,
    port: u16,
    bus: u16,
    up: bool,
    knows: BTreeSet<String>,
    slots: Vec<(u16, u16)>,
    primary_id: Option<String>,
    offset: u64,
    /// Keys and bytes per slot it holds.
    data: BTreeMap<u16, (u64, u64)>,
}

/// The in-memory cluster, nodes by `ip:port`.
#[derive(Debug, Default)]
pub struct MemAdmin {
    nodes: Mutex<BTreeMap<String, Node>>,
    /// `move_slots` calls and the slots they carried.
    migrations: Mutex<(u64, u64)>,
}

impl MemAdmin {
    /// An empty cluster.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a fresh node `id` at `ip:port` (bus `bus`), knowing only
    /// itself.
    pub fn start(&self, id: &str, ip: &str, port: u16, bus: u16) {
        let node = Node {
            id: id.into(),
            ip: ip.into(),
            port,
            bus,
            up: true,
            knows: BTreeSet::from([id.to_string()]),
            slots: Vec::new(),
            primary_id: None,
            offset: 0,
            data: BTreeMap::new(),
        };
        self.nodes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(format!("{ip}:{port}"), node);
    }

    /// The process at `addr` dies: it answers nothing any more.
    pub fn kill(&self, addr: &str) {
        if let Some(n) = self
            .nodes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(addr)
        {
            n.up = false;
        }
    }

    /// Sets the replication offset of the node at `addr`.
    pub fn set_offset(&self, addr: &str, offset: u64) {
        if let Some(n) = self
            .nodes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(addr)
        {
            n.offset = offset;
        }
    }

    /// Puts `keys` keys of `bytes` bytes in all into `slot` on the node at
    /// `addr` (and its replicas, as replication would).
    pub fn put(&self, addr: &str, slot: u16, keys: u64, bytes: u64) {
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        let Some(id) = nodes.get(addr).map(|n| n.id.clone()) else {
            return;
        };
        for n in nodes.values_mut() {
            if n.id == id || n.primary_id.as_deref() == Some(id.as_str()) {
                n.data.insert(slot, (keys, bytes));
            }
        }
    }

    /// Slot migrations asked so far, and the slots they carried.
    pub fn migrations(&self) -> (u64, u64) {
        *self.migrations.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keys and bytes the node at `addr` serves (as primary).
    pub fn served(&self, addr: &str) -> (u64, u64) {
        let nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        let Some(n) = nodes.get(addr) else {
            return (0, 0);
        };
        slots_of(&n.slots)
            .filter_map(|s| n.data.get(&s))
            .fold((0, 0), |(k, b), (dk, db)| (k + dk, b + db))
    }

    fn err(addr: &str, reason: &str) -> AdminError {
        AdminError {
            addr: addr.into(),
            reason: reason.into(),
        }
    }
}

#[async_trait::async_trait]
impl RedisAdmin for MemAdmin {
    async fn observe(&self, addr: &str) -> Result<Observed> {
        let nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        let me = nodes
            .get(addr)
            .filter(|n| n.up)
            .ok_or_else(|| Self::err(addr, "connection refused"))?;
        let lines = nodes
            .values()
            .filter(|n| me.knows.contains(&n.id))
            .map(|n| NodeLine {
                id: n.id.clone(),
                ip: n.ip.clone(),
                port: n.port,
                bus: n.bus,
                myself: n.id == me.id,
                primary: n.primary_id.is_none(),
                failing: !n.up,
                // The double has no failure detection of its own.
                failed: false,
                handshake: false,
                primary_id: n.primary_id.clone(),
                slots: n.slots.clone(),
                migrating: Vec::new(),
                importing: Vec::new(),
            })
            .collect();
        Ok(Observed {
            nodes: lines,
            offset: me.offset,
            used_memory: 0,
            keys: 0,
            link_up: me.primary_id.is_some(),
        })
    }

    async fn execute(&self, cmd: &AdminCmd) -> Result<()> {
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        let on = cmd.on().to_string();
        let me = nodes
            .get(&on)
            .filter(|n| n.up)
            .map(|n| n.id.clone())
            .ok_or_else(|| Self::err(&on, "connection refused"))?;
        let id_at = |nodes: &BTreeMap<String, Node>, id: &str| {
            nodes
                .iter()
                .find(|(_, n)| n.id == id)
                .map(|(a, _)| a.clone())
        };
        match cmd {
            AdminCmd::Meet { ip, port, .. } => {
                let there = nodes
                    .get(&format!("{ip}:{port}"))
                    .ok_or_else(|| Self::err(&on, "meet: nobody there"))?;
                // Gossip: both end up knowing everyone either knew.
                let all: BTreeSet<String> = nodes[&on].knows.union(&there.knows).cloned().collect();
                for n in nodes.values_mut() {
                    if all.contains(&n.id) {
                        n.knows.extend(all.iter().cloned());
                    }
                }
            }
            AdminCmd::AddSlots { ranges, .. } => {
                if let Some(n) = nodes.get_mut(&on) {
                    n.slots.extend(ranges.iter().copied());
                }
            }
            AdminCmd::Replicate { primary, .. } => {
                // A full sync: the replica ends with its primary's data.
                let data = id_at(&nodes, primary)
                    .map(|a| nodes[&a].data.clone())
                    .unwrap_or_default();
                if let Some(n) = nodes.get_mut(&on) {
                    if !n.knows.contains(primary) {
                        return Err(Self::err(&on, "ERR Unknown node"));
                    }
                    n.primary_id = Some(primary.clone());
                    n.slots.clear();
                    n.data = data;
                }
            }
            AdminCmd::FailoverForce { .. }
            | AdminCmd::FailoverTakeover { .. }
            | AdminCmd::Failover { .. } => {
                let old = nodes[&on].primary_id.clone().ok_or_else(|| {
                    Self::err(&on, "ERR You should send CLUSTER FAILOVER to a replica")
                })?;
                let slots = id_at(&nodes, &old)
                    .and_then(|a| nodes.get_mut(&a))
                    .map(|n| std::mem::take(&mut n.slots))
                    .unwrap_or_default();
                for n in nodes.values_mut() {
                    if n.primary_id.as_deref() == Some(old.as_str()) {
                        n.primary_id = Some(me.clone());
                    }
                    if n.id == old {
                        n.primary_id = Some(me.clone());
                    }
                }
                if let Some(n) = nodes.get_mut(&on) {
                    n.primary_id = None;
                    n.slots = slots;
                }
            }
            AdminCmd::Forget { id, .. } => {
                if let Some(n) = nodes.get_mut(&on) {
                    n.knows.remove(id);
                }
            }
            // The double does not model slots mid-move.
            AdminCmd::SetSlotStable { .. } => {}
            AdminCmd::ResetHard { .. } => {
                let n = nodes.get_mut(&on).expect("looked up above");
                if n.primary_id.is_none() && !n.slots.is_empty() {
                    return Err(Self::err(
                        &on,
                        "ERR CLUSTER RESET can't be called with master nodes containing keys",
                    ));
                }
                // A new id, knowing only itself, empty.
                n.id = format!("{}-reset", n.id);
                n.knows = BTreeSet::from([n.id.clone()]);
                n.primary_id = None;
                n.offset = 0;
            }
        }
        Ok(())
    }

    async fn slot_loads(&self, addr: &str, ranges: &[(u16, u16)]) -> Result<Vec<SlotLoad>> {
        let nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        let n = nodes
            .get(addr)
            .filter(|n| n.up)
            .ok_or_else(|| Self::err(addr, "connection refused"))?;
        Ok(slots_of(ranges)
            .map(|slot| {
                let (keys, bytes) = n.data.get(&slot).copied().unwrap_or_default();
                SlotLoad { slot, keys, bytes }
            })
            .collect())
    }

    async fn move_slots(&self, m: &SlotMigration) -> Result<u64> {
        {
            let mut n = self.migrations.lock().unwrap_or_else(|p| p.into_inner());
            n.0 += 1;
            n.1 += m.slots.len() as u64;
        }
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        for a in [&m.from, &m.to] {
            if !nodes.get(a).is_some_and(|n| n.up) {
                return Err(Self::err(a, "connection refused"));
            }
        }
        let mut keys = 0;
        for &slot in &m.slots {
            let owned: BTreeSet<u16> = slots_of(&nodes[&m.from].slots).collect();
            if !owned.contains(&slot) {
                return Err(Self::err(&m.from, "ERR I'm not the owner of hash slot"));
            }
            let from = nodes.get_mut(&m.from).expect("checked above");
            let mut rest = owned;
            rest.remove(&slot);
            from.slots = ranges_of(&rest);
            let data = from.data.remove(&slot);
            let from_id = from.id.clone();
            let to = nodes.get_mut(&m.to).expect("checked above");
            let mut mine: BTreeSet<u16> = slots_of(&to.slots).collect();
            mine.insert(slot);
            to.slots = ranges_of(&mine);
            let to_id = to.id.clone();
            for n in nodes.values_mut() {
                if n.primary_id.as_deref() == Some(from_id.as_str()) {
                    n.data.remove(&slot);
                }
                if let Some(d) = data {
                    if n.id == to_id || n.primary_id.as_deref() == Some(to_id.as_str()) {
                        n.data.insert(slot, d);
                    }
                }
            }
            keys += data.map_or(0, |(k, _)| k);
        }
        Ok(keys)
    }
}
