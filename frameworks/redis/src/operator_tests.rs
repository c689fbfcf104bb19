//! The operator's rounds against the in-memory cluster: formation, a
//! primary's task ending, its replacement rejoining.

use super::*;
use crate::admin_mem::MemAdmin;
use crate::framework::CacheRecord;
use crate::spec::Persistence;
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
    let mut v = View::new(NAME);
    let rec = CacheRecord {
        spec: spec(),
        created_ms: 1,
    };
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

#[tokio::test]
async fn a_cache_forms_fails_over_at_once_and_the_replacement_rejoins_as_a_replica() {
    let mem = MemAdmin::new();
    let mut tasks = vec![
        task(0, 1, 100, "RUNNING"),
        task(0, 2, 200, "RUNNING"),
        task(1, 3, 300, "RUNNING"),
        task(1, 4, 400, "RUNNING"),
    ];
    for (i, p) in [100, 200, 300, 400].iter().enumerate() {
        mem.start(&format!("n{i}"), "127.0.0.1", *p, p + 1);
    }
    let (_, st) = until(&mem, &view(&tasks), "ok").await;
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
