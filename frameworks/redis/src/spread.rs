//! Keeping a cache's primaries on distinct hosts (pure). Formation puts
//! each shard's first primary on its own host, but every failover moves a
//! primary to wherever its replica ran, so primaries drift together; a
//! host holding two of three primaries takes the majority with it when it
//! is lost, and then Redis cannot elect anyone. Once the cluster is
//! settled, one shard at a time is handed back gracefully (`CLUSTER
//! FAILOVER`: the primary pauses writers until the replica has its
//! offset, so nothing acknowledged is lost) to a synced replica on a host
//! that holds no primary.

use std::collections::BTreeMap;

use crate::decide::{AdminCmd, Member};

/// The graceful failover that spreads `members`' primaries, if one is
/// due: only when every member answered, none is flagged failing, and a
/// host holds two primaries or more while another holds none.
pub fn spread(shards: u32, members: &[Member]) -> Option<AdminCmd> {
    let mut live = Vec::with_capacity(members.len());
    for m in members {
        let o = m.obs.as_ref()?;
        if o.nodes.iter().any(|n| n.failing || n.handshake) {
            return None;
        }
        live.push((m, o));
    }
    let mut primaries: BTreeMap<&str, usize> = BTreeMap::new();
    for (m, o) in &live {
        let n = primaries.entry(m.host.as_str()).or_default();
        if o.serves_slots() {
            *n += 1;
        }
    }
    (0..shards).find_map(|shard| {
        let (pm, po) = live
            .iter()
            .find(|(m, o)| m.shard == shard && o.serves_slots())?;
        if primaries[pm.host.as_str()] < 2 {
            return None;
        }
        let pid = po.id();
        live.iter()
            .filter(|(m, o)| {
                m.shard == shard
                    && o.replicates() == Some(pid)
                    && o.link_up
                    && primaries[m.host.as_str()] == 0
            })
            .max_by(|a, b| a.1.offset.cmp(&b.1.offset).then(b.0.task.cmp(&a.0.task)))
            .map(|(m, _)| AdminCmd::Failover { on: m.addr() })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{NodeLine, Observed};

    /// Shard `shard`'s node `id` on `host`: a primary ("m") or a replica of
    /// `role`.
    fn m(shard: u32, id: &str, host: &str, role: &str, port: u16) -> Member {
        let me = NodeLine {
            id: id.into(),
            myself: true,
            primary: role == "m",
            primary_id: (role != "m").then(|| role.to_string()),
            slots: if role == "m" { vec![(0, 1)] } else { vec![] },
            ..Default::default()
        };
        Member {
            shard,
            task: format!("t-{id}"),
            host: host.into(),
            ip: "10.0.0.1".into(),
            port,
            bus: port + 1000,
            obs: Some(Observed {
                nodes: vec![me],
                offset: 10,
                link_up: role != "m",
                ..Default::default()
            }),
            silent_ms: 0,
        }
    }

    #[test]
    fn two_primaries_on_one_host_hand_one_to_a_host_without() {
        // Host x holds the primaries of shards 0 and 1; z holds none.
        let ms = vec![
            m(0, "a", "x", "m", 1),
            m(0, "b", "y", "a", 2),
            m(1, "c", "x", "m", 3),
            m(1, "d", "z", "c", 4),
            m(2, "e", "y", "m", 5),
            m(2, "f", "z", "e", 6),
        ];
        assert_eq!(
            spread(3, &ms),
            Some(AdminCmd::Failover {
                on: "10.0.0.1:4".into()
            })
        );
    }

    #[test]
    fn nothing_moves_when_spread_or_unsettled() {
        let spread_out = vec![
            m(0, "a", "x", "m", 1),
            m(0, "b", "y", "a", 2),
            m(1, "c", "y", "m", 3),
            m(1, "d", "x", "c", 4),
        ];
        assert_eq!(spread(2, &spread_out), None);
        // As above: only d (on z) may take over, and only once synced.
        let mut ms = vec![
            m(0, "a", "x", "m", 1),
            m(0, "b", "y", "a", 2),
            m(1, "c", "x", "m", 3),
            m(1, "d", "z", "c", 4),
            m(2, "e", "y", "m", 5),
            m(2, "f", "z", "e", 6),
        ];
        // A replica still syncing is not promoted.
        ms[3].obs.as_mut().unwrap().link_up = false;
        assert_eq!(spread(3, &ms), None);
        ms[3].obs.as_mut().unwrap().link_up = true;
        // A member that did not answer, or a node flagged failing: wait.
        let mut silent = ms.clone();
        silent[1].obs = None;
        assert_eq!(spread(3, &silent), None);
        let mut failing = ms.clone();
        failing[0].obs.as_mut().unwrap().nodes[0].failing = true;
        assert_eq!(spread(3, &failing), None);
        assert!(spread(3, &ms).is_some());
    }
}
