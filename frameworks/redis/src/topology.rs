//! What the operator observes of one Redis node, parsed from its own
//! answers (`CLUSTER NODES`, `INFO`): pure parsers, tested on real
//! output.

use serde::{Deserialize, Serialize};

/// Slots in a Redis Cluster.
pub const SLOTS: u32 = 16_384;

/// One line of `CLUSTER NODES`: a node as the answering node knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeLine {
    /// The node's id (40 hex characters).
    pub id: String,
    /// Its announced IP (empty when unknown: `noaddr`).
    pub ip: String,
    /// Its client port.
    pub port: u16,
    /// Its cluster bus port.
    pub bus: u16,
    /// The answering node itself.
    pub myself: bool,
    /// A primary (`master` flag).
    pub primary: bool,
    /// Flagged `fail` (the cluster agreed it is down) or `fail?`.
    pub failing: bool,
    /// Flagged `fail`: a majority of primaries agreed it is down (not
    /// just `fail?`, this node's own suspicion).
    #[serde(default)]
    pub failed: bool,
    /// Still in the handshake after a MEET (its id is provisional).
    pub handshake: bool,
    /// The primary it replicates, for a replica.
    pub primary_id: Option<String>,
    /// Slot ranges it serves, inclusive.
    pub slots: Vec<(u16, u16)>,
    /// Slots it is moving out, each with the id of the node importing it
    /// (`[slot->-id]`, shown on the node's own line only).
    #[serde(default)]
    pub migrating: Vec<(u16, String)>,
    /// Slots it is taking in, each with the id of the node it imports
    /// from (`[slot-<-id]`).
    #[serde(default)]
    pub importing: Vec<(u16, String)>,
}

impl NodeLine {
    /// `ip:port`, the address clients use.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    /// Slots it serves.
    pub fn slot_count(&self) -> u32 {
        self.slots
            .iter()
            .map(|(a, b)| u32::from(*b) - u32::from(*a) + 1)
            .sum()
    }
}

/// Parses `CLUSTER NODES`; lines that do not parse are skipped.
pub fn parse_nodes(text: &str) -> Vec<NodeLine> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<NodeLine> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 8 {
        return None;
    }
    // ip:port@cport[,hostname]
    let addr = f[1].split(',').next()?;
    let (ip_port, bus) = addr.split_once('@')?;
    let (ip, port) = ip_port.rsplit_once(':')?;
    let flags: Vec<&str> = f[2].split(',').collect();
    let has = |x: &str| flags.contains(&x);
    let slots = f[8..]
        .iter()
        // `[slot->-id]` / `[slot-<-id]`: a migration in progress, not owned.
        .filter(|s| !s.starts_with('['))
        .filter_map(|s| match s.split_once('-') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => s.parse().ok().map(|x| (x, x)),
        })
        .collect();
    let mut migrating = Vec::new();
    let mut importing = Vec::new();
    for m in f[8..]
        .iter()
        .filter_map(|s| s.strip_prefix('[')?.strip_suffix(']'))
    {
        if let Some((slot, id)) = m.split_once("->-") {
            if let Ok(slot) = slot.parse() {
                migrating.push((slot, id.to_string()));
            }
        } else if let Some((slot, id)) = m.split_once("-<-") {
            if let Ok(slot) = slot.parse() {
                importing.push((slot, id.to_string()));
            }
        }
    }
    Some(NodeLine {
        id: f[0].to_string(),
        ip: ip.to_string(),
        port: port.parse().ok()?,
        bus: bus.parse().unwrap_or(0),
        myself: has("myself"),
        primary: has("master"),
        failing: has("fail") || has("fail?"),
        failed: has("fail"),
        handshake: has("handshake"),
        primary_id: (f[3] != "-").then(|| f[3].to_string()),
        slots,
        migrating,
        importing,
    })
}

/// One node as observed: its own line, what it knows, its replication
/// offset, memory and keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// Every node it knows, itself included.
    pub nodes: Vec<NodeLine>,
    /// Its replication offset (`master_repl_offset` on a primary; the
    /// offset it has processed on a replica).
    pub offset: u64,
    /// `used_memory`, bytes.
    pub used_memory: u64,
    /// Keys in db 0.
    pub keys: u64,
    /// A replica's link to its primary is up.
    pub link_up: bool,
}

impl Observed {
    /// Its own line.
    pub fn me(&self) -> Option<&NodeLine> {
        self.nodes.iter().find(|n| n.myself)
    }

    /// Its id ("" if its own line is missing).
    pub fn id(&self) -> &str {
        self.me().map_or("", |n| n.id.as_str())
    }

    /// Whether it knows node `id` (past the handshake).
    pub fn knows(&self, id: &str) -> bool {
        self.nodes.iter().any(|n| n.id == id && !n.handshake)
    }

    /// A primary that serves slots.
    pub fn serves_slots(&self) -> bool {
        self.me().is_some_and(|n| n.primary && !n.slots.is_empty())
    }

    /// The primary it replicates.
    pub fn replicates(&self) -> Option<&str> {
        self.me()
            .filter(|n| !n.primary)
            .and_then(|n| n.primary_id.as_deref())
    }
}

/// Fills the offsets, memory and keys from `INFO replication memory
/// keyspace` into `obs`.
pub fn apply_info(obs: &mut Observed, info: &str) {
    let mut master_offset = 0;
    let mut slave_offset = None;
    for line in info.lines() {
        let Some((k, v)) = line.trim().split_once(':') else {
            continue;
        };
        match k {
            "master_repl_offset" => master_offset = v.parse().unwrap_or(0),
            "slave_repl_offset" => slave_offset = v.parse().ok(),
            "used_memory" => obs.used_memory = v.parse().unwrap_or(0),
            "master_link_status" => obs.link_up = v == "up",
            "db0" => {
                obs.keys = v
                    .split(',')
                    .find_map(|kv| kv.strip_prefix("keys="))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0)
            }
            _ => {}
        }
    }
    obs.offset = slave_offset.unwrap_or(master_offset);
}

/// The slots of shard `shard` of `shards` before any rebalancing: an even
/// split, in order.
pub fn initial_range(shard: u32, shards: u32) -> (u16, u16) {
    let lo = shard * SLOTS / shards;
    let hi = (shard + 1) * SLOTS / shards - 1;
    (lo as u16, hi as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Output of redis-server 7.0.15, trimmed to three nodes.
    const NODES: &str = "\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004 slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002,host-b master - 0 1426238316232 2 connected 5461-10922
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460 [5461->-67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1]
6ec23923021cf3ffec47632106199cb7f496ce01 127.0.0.1:30005@31005 master,fail - 1426238316232 0 5 disconnected 10923 16383
";

    #[test]
    fn cluster_nodes_lines_are_parsed() {
        let n = parse_nodes(NODES);
        assert_eq!(n.len(), 4);
        assert_eq!(
            n[0].primary_id.as_deref(),
            Some("e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca")
        );
        assert!(!n[0].primary);
        assert_eq!(
            (n[1].ip.as_str(), n[1].port, n[1].bus),
            ("127.0.0.1", 30002, 31002)
        );
        assert!(n[2].myself && n[2].primary);
        assert_eq!(n[2].slots, vec![(0, 5460)]);
        assert_eq!(
            n[2].migrating,
            vec![(5461, "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1".to_string())]
        );
        assert_eq!(n[2].slot_count(), 5461);
        assert!(n[3].failing);
        assert_eq!(n[3].slots, vec![(10923, 10923), (16383, 16383)]);
        let importing = parse_line(
            "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 myself,master - 0 0 2 connected 5462-10922 [5461-<-e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca]",
        )
        .unwrap();
        assert_eq!(
            importing.importing,
            vec![(5461, "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca".to_string())]
        );
        assert_eq!(importing.slots, vec![(5462, 10922)]);
        let obs = Observed {
            nodes: n,
            ..Default::default()
        };
        assert_eq!(obs.id(), "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca");
        assert!(obs.serves_slots());
        assert!(obs.knows("67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1"));
    }

    #[test]
    fn info_gives_offsets_memory_and_keys() {
        let mut o = Observed::default();
        apply_info(
            &mut o,
            "# Replication\r\nrole:slave\r\nmaster_link_status:up\r\nslave_repl_offset:1234\r\nmaster_repl_offset:1234\r\n# Memory\r\nused_memory:1048576\r\n# Keyspace\r\ndb0:keys=42,expires=0,avg_ttl=0\r\n",
        );
        assert_eq!(
            (o.offset, o.used_memory, o.keys, o.link_up),
            (1234, 1_048_576, 42, true)
        );
    }

    #[test]
    fn initial_ranges_cover_every_slot_once() {
        assert_eq!(initial_range(0, 3), (0, 5460));
        assert_eq!(initial_range(1, 3), (5461, 10921));
        assert_eq!(initial_range(2, 3), (10922, 16383));
        assert_eq!(initial_range(0, 1), (0, 16383));
    }
}
