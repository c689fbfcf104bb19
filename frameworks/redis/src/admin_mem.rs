//! [`MemAdmin`]: an in-memory Redis Cluster behind [`RedisAdmin`], for
//! the operator's unit tests beside the real one. It models only what the
//! operator relies on: who knows whom, who serves which slots, who
//! replicates whom, offsets; MEET is mutual at once and a forced failover
//! takes the old primary's slots at once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use crate::admin::{AdminError, RedisAdmin, Result};
use crate::decide::AdminCmd;
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
}

/// The in-memory cluster, nodes by `ip:port`.
#[derive(Debug, Default)]
pub struct MemAdmin {
    nodes: Mutex<BTreeMap<String, Node>>,
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
                if let Some(n) = nodes.get_mut(&on) {
                    if !n.knows.contains(primary) {
                        return Err(Self::err(&on, "ERR Unknown node"));
                    }
                    n.primary_id = Some(primary.clone());
                    n.slots.clear();
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
}
