//! What an operator's manual action on a cache acts on, chosen from the
//! cache's observed status (pure):
//!
//! - **failover** of a shard: its synced replica with the highest
//!   replication offset (or the one named) is sent a graceful `CLUSTER
//!   FAILOVER`: the primary stops taking writes, the replica catches up to
//!   its offset and takes over, so no acknowledged write is lost (unlike
//!   the forced failover the operator uses when a primary's task ended);
//! - **rebuild** of a replica: `CLUSTER RESET HARD` drops its data and its
//!   node id, then the operator's own steps meet it again, make it a
//!   replica of its shard (a full resync) and forget its old id. A primary
//!   is refused: it holds the shard's only authoritative copy.

use crate::status::{CacheStatus, NodeStatus};

pub use ocean_framework::Refused;

/// The node serving `shard`'s slots now.
pub fn primary_of(st: &CacheStatus, shard: u32) -> Option<&NodeStatus> {
    st.nodes
        .iter()
        .find(|n| n.shard == shard && n.role == "primary")
}

/// The replica to promote in `shard` of a cache with `shards` shards
/// (`task`: the one the operator named), with the primary it replaces.
pub fn failover_target<'a>(
    st: &'a CacheStatus,
    shards: u32,
    shard: u32,
    task: Option<&str>,
) -> Result<(&'a NodeStatus, &'a NodeStatus), Refused> {
    if shard >= shards {
        return Err(Refused::bad(
            "shard",
            format!("{shard} is not a shard of this cache (it has shards 0..{shards})"),
        ));
    }
    let primary = primary_of(st, shard).ok_or_else(|| {
        Refused::conflict(
            "shard",
            format!(
                "shard {shard} has no reachable primary to hand over from; \
                 when a primary's task ends the operator fails over by itself"
            ),
        )
    })?;
    let synced = |n: &&NodeStatus| {
        n.shard == shard && n.role == "replica" && n.link_up && n.primary_id == primary.node_id
    };
    let replica = match task {
        Some(task) => {
            let n = st.nodes.iter().find(|n| n.task == task).ok_or_else(|| {
                Refused::missing("task", format!("'{task}' is not an instance of this cache"))
            })?;
            if n.shard != shard {
                return Err(Refused::bad(
                    "task",
                    format!("'{task}' is in shard {}, not shard {shard}", n.shard),
                ));
            }
            if !synced(&n) {
                return Err(Refused::conflict(
                    "task",
                    format!(
                        "'{task}' is {}{}, not a synced replica of shard {shard}'s primary",
                        n.role,
                        if n.role == "replica" && !n.link_up {
                            " still syncing"
                        } else {
                            ""
                        }
                    ),
                ));
            }
            n
        }
        None => st
            .nodes
            .iter()
            .filter(synced)
            .max_by_key(|n| (n.offset, std::cmp::Reverse(n.task.clone())))
            .ok_or_else(|| {
                Refused::conflict(
                    "shard",
                    format!("shard {shard} has no synced replica to promote"),
                )
            })?,
    };
    Ok((replica, primary))
}

/// The replica `task` to rebuild.
pub fn rebuild_target<'a>(st: &'a CacheStatus, task: &str) -> Result<&'a NodeStatus, Refused> {
    let n = st.nodes.iter().find(|n| n.task == task).ok_or_else(|| {
        Refused::missing("task", format!("'{task}' is not an instance of this cache"))
    })?;
    match n.role.as_str() {
        "replica" => Ok(n),
        "primary" => Err(Refused::conflict(
            "task",
            format!(
                "'{task}' is the primary of shard {}: fail it over first (POST /v1/caches/{{id}}/failover), then rebuild it",
                n.shard
            ),
        )),
        other => Err(Refused::conflict(
            "task",
            format!("'{task}' is {other}: only a replica can be rebuilt"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(
        shard: u32,
        task: &str,
        role: &str,
        id: &str,
        primary: &str,
        offset: u64,
    ) -> NodeStatus {
        NodeStatus {
            shard,
            task: task.into(),
            host: format!("h-{task}"),
            addr: format!("127.0.0.1:{}", 7000 + offset),
            role: role.into(),
            node_id: id.into(),
            primary_id: primary.into(),
            offset,
            link_up: role == "replica",
            ..Default::default()
        }
    }

    fn cache() -> CacheStatus {
        CacheStatus {
            state: "ok".into(),
            nodes: vec![
                node(0, "p0", "primary", "a", "", 100),
                node(0, "r0", "replica", "b", "a", 90),
                node(0, "r1", "replica", "c", "a", 99),
                node(1, "p1", "primary", "d", "", 50),
                node(1, "r2", "replica", "e", "d", 50),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn failover_picks_the_most_caught_up_synced_replica() {
        let st = cache();
        let (r, p) = failover_target(&st, 2, 0, None).unwrap();
        assert_eq!((r.task.as_str(), p.task.as_str()), ("r1", "p0"));
        let (r, _) = failover_target(&st, 2, 0, Some("r0")).unwrap();
        assert_eq!(r.task, "r0");
        // A replica still syncing is never chosen, nor accepted by name.
        let mut st = cache();
        st.nodes[2].link_up = false;
        assert_eq!(failover_target(&st, 2, 0, None).unwrap().0.task, "r0");
        let e = failover_target(&st, 2, 0, Some("r1")).unwrap_err();
        assert!(e.conflict && e.reason.contains("still syncing"), "{e}");
    }

    #[test]
    fn failover_refusals_name_the_field() {
        let st = cache();
        let e = failover_target(&st, 2, 2, None).unwrap_err();
        assert_eq!((e.field, e.conflict), ("shard", false));
        let e = failover_target(&st, 2, 0, Some("r2")).unwrap_err();
        assert_eq!(e.field, "task");
        assert!(e.reason.contains("shard 1"), "{e}");
        let e = failover_target(&st, 2, 0, Some("nope")).unwrap_err();
        assert!(e.missing);
        let e = failover_target(&st, 2, 0, Some("p0")).unwrap_err();
        assert!(e.conflict && e.reason.contains("primary"), "{e}");
        let mut st = cache();
        st.nodes.retain(|n| n.shard != 1 || n.role != "replica");
        let e = failover_target(&st, 2, 1, None).unwrap_err();
        assert!(e.conflict && e.reason.contains("no synced replica"), "{e}");
        st.nodes.retain(|n| n.shard != 1);
        let e = failover_target(&st, 2, 1, None).unwrap_err();
        assert!(e.reason.contains("no reachable primary"), "{e}");
    }

    #[test]
    fn only_a_replica_is_rebuilt() {
        let st = cache();
        assert_eq!(rebuild_target(&st, "r2").unwrap().task, "r2");
        let e = rebuild_target(&st, "p1").unwrap_err();
        assert!(e.conflict && e.reason.contains("fail it over first"), "{e}");
        assert!(rebuild_target(&st, "zz").unwrap_err().missing);
    }
}
