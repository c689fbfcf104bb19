//! The operator's rounds against the in-memory cluster: formation, a
//! primary's task ending, its replacement rejoining.

use super::*;
use crate::admin_mem::MemAdmin;
use crate::framework::{CacheRecord, Resharding};
use crate::mover::Mover;
use crate::spec::{CacheSpec, Persistence};
use ocean_client::api::{KvEntry, Task, TaskPort};

fn spec() -> CacheSpec {
    CacheSpec {
        name: "c".into(),
        product_line: "p".into(),
        shards: 2,
        replicas: 1,
        memory_mb: 32,
        persistence: Persistence::Off,
    }
}

fn task(shard: u32, n: u32, port: u32, state: &str) -> Task {
    let job = shard_job_id(&spec(), shard);
    Task {
        id: format!("{job}.{n}"),
        job_id: job,
        host: format!("host-{n}"),
        address: "127.0.0.1".into(),
        state: state.into(),
        ports: vec![
            TaskPort {
                name: "redis".into(),
                port,
            },
            TaskPort {
                name: "bus".into(),
                port: port + 1,
            },
        ],
        ..Default::default()
    }
}

fn view(tasks: &[Task]) -> View {
    view_of(
        CacheRecord {
            spec: spec(),
            created_ms: 1,
            resharding: None,
            restore: None,
        },
        tasks,
    )
}

/// One round with no failover history and no resharding budget to speak of.
async fn round(
    mem: &MemAdmin,
    v: &View,
    forced: &BTreeMap<String, u64>,
    now: u64,
    spread: bool,
) -> (Vec<AdminCmd>, Vec<(String, CacheStatus)>) {
    let past = Past {
        forced: forced.clone(),
        ..Default::default()
    };
    let out = super::round(
        mem,
        v,
        &past,
        now,
        spread,
        &mut Mover::default(),
        Duration::from_secs(1),
    )
    .await;
    (out.sent, out.statuses)
}

fn view_of(rec: CacheRecord, tasks: &[Task]) -> View {
    let mut v = View::new(NAME);
    v.keys.insert(
        "caches/c".into(),
        KvEntry {
            namespace: NAME.into(),
            key: "caches/c".into(),
            value: serde_json::to_vec(&rec).unwrap(),
            revision: 1,
            created_revision: 1,
        },
    );
    for t in tasks {
        v.tasks.insert(t.id.clone(), t.clone());
    }
    v
}

/// Rounds until the status is `state` (at most 10); the commands sent.
async fn until(mem: &MemAdmin, v: &View, state: &str) -> (Vec<AdminCmd>, CacheStatus) {
    let mut all = Vec::new();
    for _ in 0..10 {
        let (sent, st) = round(mem, v, &BTreeMap::new(), 1, false).await;
        all.extend(sent);
        if st[0].1.state == state {
            return (all, st[0].1.clone());
        }
    }
    panic!("not {state} after 10 rounds; sent {all:?}");
}

/// The cache of [`spec`] (2 shards x 1 replica) on four fresh nodes,
/// formed: its tasks and status.
async fn formed(mem: &MemAdmin) -> (Vec<Task>, CacheStatus) {
    let tasks = vec![
        task(0, 1, 100, "RUNNING"),
        task(0, 2, 200, "RUNNING"),
        task(1, 3, 300, "RUNNING"),
        task(1, 4, 400, "RUNNING"),
    ];
    for (i, p) in [100, 200, 300, 400].iter().enumerate() {
        mem.start(&format!("n{i}"), "127.0.0.1", *p, p + 1);
    }
    let (_, st) = until(mem, &view(&tasks), "ok").await;
    (tasks, st)
}

#[tokio::test]
async fn a_cache_forms_fails_over_at_once_and_the_replacement_rejoins_as_a_replica() {
    let mem = MemAdmin::new();
    let (mut tasks, st) = formed(&mem).await;
    let roles: Vec<(&str, &str, u32)> = st
        .nodes
        .iter()
        .map(|n| (n.addr.as_str(), n.role.as_str(), n.slots))
        .collect();
    assert_eq!(
        roles,
        vec![
            ("127.0.0.1:100", "primary", 8192),
            ("127.0.0.1:200", "replica", 0),
            ("127.0.0.1:300", "primary", 8192),
            ("127.0.0.1:400", "replica", 0),
        ]
    );

    // Shard 0's primary process dies; its task is reported ended.
    mem.kill("127.0.0.1:100");
    mem.set_offset("127.0.0.1:200", 77);
    tasks[0].state = "FAILED".into();
    let (sent, st) = round(&mem, &view(&tasks), &BTreeMap::new(), 2, false).await;
    assert_eq!(
        sent,
        vec![AdminCmd::FailoverForce {
            on: "127.0.0.1:200".into(),
            replaces: "n0".into()
        }]
    );
    assert_eq!(st[0].1.state, "failing", "observed before the failover");

    // Its replacement: a new task, a new empty node.
    tasks.push(task(0, 5, 500, "RUNNING"));
    mem.start("n9", "127.0.0.1", 500, 501);
    let (sent, st) = until(&mem, &view(&tasks), "ok").await;
    assert!(
        sent.contains(&AdminCmd::Replicate {
            on: "127.0.0.1:500".into(),
            primary: "n1".into()
        }),
        "{sent:?}"
    );
    assert!(
        sent.contains(&AdminCmd::Forget {
            on: "127.0.0.1:200".into(),
            id: "n0".into()
        }),
        "{sent:?}"
    );
    let shard0: Vec<(&str, &str)> = st
        .nodes
        .iter()
        .filter(|n| n.shard == 0)
        .map(|n| (n.node_id.as_str(), n.role.as_str()))
        .collect();
    assert_eq!(shard0, vec![("n1", "primary"), ("n9", "replica")]);
}

/// Rounds (one mover throughout) until the resharding is done; the last
/// statuses.
async fn reshard(mem: &MemAdmin, v: &View, mover: &mut Mover) -> CacheStatus {
    let mut moving = None;
    for _ in 0..40 {
        let out = super::round(
            mem,
            v,
            &Past::default(),
            3,
            false,
            mover,
            Duration::from_secs(10),
        )
        .await;
        let st = out.statuses[0].1.clone();
        if st.resharding.as_ref().is_some_and(|r| r.slots_moved > 0) {
            moving = st.resharding.clone();
        }
        if !out.resharded.is_empty() {
            assert!(moving.is_some(), "done without moving a slot");
            // The status is observed before the round's moves: look again.
            return until(mem, v, "ok").await.1;
        }
    }
    panic!("resharding not done after 40 rounds");
}

fn bytes_of(mem: &MemAdmin, addrs: &[&str]) -> Vec<u64> {
    addrs.iter().map(|a| mem.served(a).1).collect()
}

#[tokio::test]
async fn shards_added_then_removed_take_and_give_back_slots_by_bytes() {
    let mem = MemAdmin::new();
    let (mut tasks, _) = formed(&mem).await;
    // Skewed data: the first quarter of the slots is 40 times heavier.
    for slot in 0..16384u16 {
        let at = if slot < 8192 {
            "127.0.0.1:100"
        } else {
            "127.0.0.1:300"
        };
        mem.put(at, slot, 1, if slot < 4096 { 4_000 } else { 100 });
    }

    // Scale out to 3 shards.
    tasks.push(task(2, 5, 500, "RUNNING"));
    tasks.push(task(2, 6, 600, "RUNNING"));
    mem.start("n5", "127.0.0.1", 500, 501);
    mem.start("n6", "127.0.0.1", 600, 601);
    let three = CacheRecord {
        spec: CacheSpec {
            shards: 3,
            ..spec()
        },
        created_ms: 1,
        resharding: Some(Resharding {
            from_shards: 2,
            started_ms: 5,
        }),
        restore: None,
    };
    let mut mover = Mover::default();
    let st = reshard(&mem, &view_of(three.clone(), &tasks), &mut mover).await;
    let roles: Vec<(u32, &str)> = st
        .nodes
        .iter()
        .filter(|n| n.shard == 2)
        .map(|n| (n.shard, n.role.as_str()))
        .collect();
    assert_eq!(roles, vec![(2, "primary"), (2, "replica")], "{st:?}");
    let primaries = ["127.0.0.1:100", "127.0.0.1:300", "127.0.0.1:500"];
    let b = bytes_of(&mem, &primaries);
    let fair = b.iter().sum::<u64>() / 3;
    assert!(b.iter().all(|x| x.abs_diff(fair) <= fair / 20), "{b:?}");
    // Not an even slot split: the new shard took heavy slots, few of them.
    let slots: Vec<u32> = st
        .nodes
        .iter()
        .filter(|n| n.role == "primary")
        .map(|n| n.slots)
        .collect();
    assert!(slots[2] < 16384 / 3 - 1000, "{slots:?}");
    let keys: u64 = primaries.iter().map(|a| mem.served(a).0).sum();
    assert_eq!(keys, 16384, "a key was lost on the way");
    // Full batches per pair of shards, though the plan (in slot order)
    // alternates between pairs: each batch costs every node a config save.
    let (calls, carried) = mem.migrations();
    assert!(
        calls <= carried.div_ceil(crate::mover::BATCH_SLOTS as u64) + 6,
        "{calls} migrations for {carried} slots"
    );

    // Scale back in to 2: shard 2 is drained.
    let two = CacheRecord {
        spec: spec(),
        created_ms: 1,
        resharding: Some(Resharding {
            from_shards: 3,
            started_ms: 9,
        }),
        restore: None,
    };
    reshard(&mem, &view_of(two, &tasks), &mut mover).await;
    assert_eq!(mem.served("127.0.0.1:500"), (0, 0), "shard 2 still serves");
    let b = bytes_of(&mem, &primaries[..2]);
    let fair = b.iter().sum::<u64>() / 2;
    assert!(b.iter().all(|x| x.abs_diff(fair) <= fair / 20), "{b:?}");
    let keys: u64 = primaries.iter().map(|a| mem.served(a).0).sum();
    assert_eq!(keys, 16384);
}

#[tokio::test]
async fn a_silent_node_is_remembered_from_the_first_round_it_missed() {
    let mem = MemAdmin::new();
    let (tasks, _) = formed(&mem).await;
    let v = view(&tasks);
    let addr = "127.0.0.1:100";
    mem.kill(addr);
    let mut past = Past::default();
    for now in [1_000, 1_100, 1_250] {
        let out = super::round(
            &mem,
            &v,
            &past,
            now,
            false,
            &mut Mover::default(),
            Duration::from_secs(1),
        )
        .await;
        assert_eq!(out.silent.get(addr), Some(&1_000), "at {now}");
        past.silent = out.silent;
    }
}
