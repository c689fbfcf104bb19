//! [`CacheStatus`]: what the operator last saw of a cache (stored at
//! `status/<name>`, shown by `GET /v1/caches/{id}`, the CLI and the
//! dashboard). Pure: built from the members the operator observed.

use serde::{Deserialize, Serialize};

use crate::decide::Member;
use crate::mover::ReshardStatus;
use crate::spec::CacheSpec;
use crate::topology::SLOTS;

/// One instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Its shard.
    pub shard: u32,
    /// Its task.
    pub task: String,
    /// Its agent's host name.
    pub host: String,
    /// `ip:port`.
    pub addr: String,
    /// `primary`, `replica`, `empty` (no slots, no primary yet) or
    /// `unreachable`.
    pub role: String,
    /// Its Redis node id.
    #[serde(default)]
    pub node_id: String,
    /// The primary it replicates (replicas).
    #[serde(default)]
    pub primary_id: String,
    /// Slots it serves.
    #[serde(default)]
    pub slots: u32,
    /// Replication offset.
    #[serde(default)]
    pub offset: u64,
    /// `used_memory`, bytes.
    #[serde(default)]
    pub used_memory: u64,
    /// Keys.
    #[serde(default)]
    pub keys: u64,
    /// A replica's link to its primary is up (its initial sync is done).
    #[serde(default)]
    pub link_up: bool,
}

/// A cache as observed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheStatus {
    /// `creating` (no slots served, no replica yet), `ok` (every slot served, every
    /// instance running and in place, every replica synced), `degraded` (every slot served,
    /// instances missing) or `failing` (slots without a primary).
    pub state: String,
    /// Instances running and answering.
    pub running: u32,
    /// Instances wanted.
    pub instances: u32,
    /// Slots served by a reachable primary.
    pub slots_served: u32,
    /// Every instance, by shard then task.
    pub nodes: Vec<NodeStatus>,
    /// When it was observed (ms since the epoch).
    pub observed_ms: u64,
    /// A change of shard count in progress, and how far it got.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resharding: Option<ReshardStatus>,
}

impl CacheStatus {
    /// The same status but for what moves all the time (offsets, memory,
    /// keys, the time): whether it is worth a write.
    pub fn shape(&self) -> CacheStatus {
        CacheStatus {
            observed_ms: 0,
            nodes: self
                .nodes
                .iter()
                .map(|n| NodeStatus {
                    offset: 0,
                    used_memory: 0,
                    keys: 0,
                    ..n.clone()
                })
                .collect(),
            // Progress counters move all the time too; what it waits for
            // does not.
            resharding: self.resharding.as_ref().map(|r| ReshardStatus {
                slots_moved: 0,
                keys_moved: 0,
                bytes_moved: 0,
                ..r.clone()
            }),
            ..self.clone()
        }
    }
}

/// The status of a cache of `spec` from its observed `members`.
pub fn status(spec: &CacheSpec, members: &[Member], now_ms: u64) -> CacheStatus {
    let mut nodes: Vec<NodeStatus> = members
        .iter()
        .map(|m| {
            let mut n = NodeStatus {
                shard: m.shard,
                task: m.task.clone(),
                host: m.host.clone(),
                addr: m.addr(),
                role: "unreachable".into(),
                ..Default::default()
            };
            if let Some(o) = &m.obs {
                let me = o.me().cloned().unwrap_or_default();
                n.node_id = me.id.clone();
                n.slots = me.slot_count();
                n.offset = o.offset;
                n.used_memory = o.used_memory;
                n.keys = o.keys;
                n.role = if me.primary && n.slots > 0 {
                    "primary".into()
                } else if let Some(p) = o.replicates() {
                    n.primary_id = p.to_string();
                    n.link_up = o.link_up;
                    "replica".into()
                } else {
                    "empty".into()
                };
            }
            n
        })
        .collect();
    nodes.sort_by(|a, b| (a.shard, &a.task).cmp(&(b.shard, &b.task)));
    let running = nodes.iter().filter(|n| n.role != "unreachable").count() as u32;
    let slots_served: u32 = nodes.iter().map(|n| n.slots).sum();
    let instances = spec.instances() as u32;
    let in_place = nodes
        .iter()
        .filter(|n| n.role == "primary" || (n.role == "replica" && n.link_up))
        .count() as u32;
    let state = if slots_served == 0 && !nodes.iter().any(|n| n.role == "replica") {
        "creating"
    } else if slots_served < SLOTS {
        "failing"
    } else if in_place >= instances {
        "ok"
    } else {
        "degraded"
    };
    CacheStatus {
        state: state.into(),
        running,
        instances,
        slots_served,
        nodes,
        observed_ms: now_ms,
        resharding: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Persistence;
    use crate::topology::{NodeLine, Observed};

    fn m(shard: u32, task: &str, me: NodeLine, others: Vec<NodeLine>) -> Member {
        let mut nodes = vec![NodeLine { myself: true, ..me }];
        nodes.extend(others);
        Member {
            shard,
            task: task.into(),
            host: "h".into(),
            ip: "127.0.0.1".into(),
            port: 1,
            bus: 2,
            obs: Some(Observed {
                nodes,
                offset: 7,
                used_memory: 100,
                keys: 3,
                link_up: true,
            }),
            silent_ms: 0,
        }
    }

    #[test]
    fn roles_and_state_follow_what_was_observed() {
        let spec = CacheSpec {
            name: "c".into(),
            product_line: "p".into(),
            shards: 1,
            replicas: 1,
            memory_mb: 32,
            persistence: Persistence::Off,
        };
        let p = NodeLine {
            id: "a".into(),
            primary: true,
            slots: vec![(0, 16383)],
            ..Default::default()
        };
        let r = NodeLine {
            id: "b".into(),
            primary_id: Some("a".into()),
            ..Default::default()
        };
        let members = vec![m(0, "t1", r.clone(), vec![]), m(0, "t0", p, vec![])];
        let s = status(&spec, &members, 9);
        assert_eq!(s.state, "ok");
        assert_eq!((s.running, s.instances, s.slots_served), (2, 2, 16384));
        assert_eq!(s.nodes[0].task, "t0");
        assert_eq!(s.nodes[0].role, "primary");
        assert_eq!(s.nodes[1].role, "replica");
        assert_eq!(s.nodes[1].primary_id, "a");
        let one = status(&spec, &members[1..], 9);
        assert_eq!(one.state, "degraded");
        let mut lost = members[1].clone();
        lost.obs = None;
        assert_eq!(
            status(&spec, &[members[0].clone(), lost], 9).state,
            "failing"
        );
        assert_eq!(s.shape().nodes[0].offset, 0);
    }
}
