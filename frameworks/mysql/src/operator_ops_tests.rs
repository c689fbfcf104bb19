//! The operator's manual and repair work against in-memory instances:
//! switchovers carried out or abandoned, seeds started and ended, rebuilds
//! asked for.

use super::*;
use crate::seed::{RebuildRequest, SeedRecord};
use crate::switchover::SwitchoverRequest;

/// A formed 3-instance database: task 1 primary at `0-1-9`, task 2 a
/// replica that applied everything, task 3 one at `lagging`.
async fn formed(op: &mut Operator, admin: &MemAdmin, keys: &Keys, lagging: &str) -> Vec<Task> {
    let tasks = vec![
        task(1, 101, "RUNNING"),
        task(2, 102, "RUNNING"),
        task(3, 103, "RUNNING"),
    ];
    for p in [101, 102, 103] {
        admin.set(&format!("10.0.0.1:{p}"), fresh());
    }
    op.round(&view(&tasks, keys)).await;
    let set = |port: u16, pos: &str| {
        let mut o = admin.get(&format!("10.0.0.1:{port}")).unwrap();
        o.gtid_current_pos = pos.into();
        o.gtid_binlog_pos = pos.into();
        if let Some(r) = o.replica.as_mut() {
            r.gtid_io_pos = pos.into();
        }
        if port == 101 {
            o.semi_sync_clients = 2;
            o.app_ready = true;
        }
        admin.set(&format!("10.0.0.1:{port}"), Some(o));
    };
    set(101, "0-1-9");
    set(102, "0-1-9");
    set(103, lagging);
    tasks
}

fn ask_switchover(keys: &Keys, from: &Task, to: &Task) {
    let req = SwitchoverRequest {
        id: "s-1".into(),
        to: to.id.clone(),
        from: from.id.clone(),
        epoch: 0,
        requested_ms: now_ms(),
        state: "requested".into(),
        ..Default::default()
    };
    keys.put(KvPutRequest {
        namespace: NAME.into(),
        key: "switchover/browser-key".into(),
        value: serde_json::to_vec(&req).unwrap(),
        expected_revision: Some(0),
    })
    .unwrap();
}

fn stored<T: serde::de::DeserializeOwned>(keys: &Keys, key: &str) -> T {
    serde_json::from_slice(&keys.keys.lock().unwrap()[key].value).unwrap()
}

#[tokio::test]
async fn a_switchover_stops_writes_waits_for_the_target_then_promotes_it_and_repoints_the_rest() {
    let admin = Arc::new(MemAdmin::default());
    let keys = Arc::new(Keys::default());
    let mut op = Operator::new(keys.clone(), admin.clone(), OperatorOptions::new("me"));
    let tasks = formed(&mut op, &admin, &keys, "0-1-9").await;
    admin.sent.lock().unwrap().clear();
    ask_switchover(&keys, &tasks[0], &tasks[1]);
    op.round(&view(&tasks, &keys)).await;
    let sent = admin.sent.lock().unwrap().clone();
    assert_eq!(
        sent,
        vec![
            AdminCmd::Demote {
                on: "10.0.0.1:101".into()
            },
            AdminCmd::Promote {
                on: "10.0.0.1:102".into(),
                alone: false
            },
            AdminCmd::Follow {
                on: "10.0.0.1:101".into(),
                host: "10.0.0.1".into(),
                port: 102
            },
            AdminCmd::Follow {
                on: "10.0.0.1:103".into(),
                host: "10.0.0.1".into(),
                port: 102
            },
        ]
    );
    let topo: Topology = stored(&keys, "topology/browser-key");
    assert_eq!(
        (topo.primary.as_str(), topo.epoch),
        (tasks[1].id.as_str(), 1)
    );
    let req: SwitchoverRequest = stored(&keys, "switchover/browser-key");
    assert_eq!(req.state, "done", "{req:?}");
    let fo: FailoverRecord = stored(&keys, "failovers/browser-key");
    assert_eq!(
        (fo.reason.as_str(), fo.to.as_str()),
        ("switchover", tasks[1].id.as_str())
    );
    // The view still shows the request as asked for: it is not done twice.
    admin.sent.lock().unwrap().clear();
    let mut stale = view(&tasks, &keys);
    let mut old: SwitchoverRequest = req.clone();
    old.state = "requested".into();
    stale.keys.get_mut("switchover/browser-key").unwrap().value = serde_json::to_vec(&old).unwrap();
    op.round(&stale).await;
    assert!(
        !admin
            .sent
            .lock()
            .unwrap()
            .iter()
            .any(|c| matches!(c, AdminCmd::Demote { .. })),
        "{:?}",
        admin.sent.lock().unwrap()
    );
}

#[tokio::test]
async fn a_switchover_to_a_replica_that_does_not_catch_up_is_abandoned_and_the_old_primary_writes_again(
) {
    let admin = Arc::new(MemAdmin::default());
    let keys = Arc::new(Keys::default());
    let mut opts = OperatorOptions::new("me");
    opts.switchover_budget = Duration::from_millis(100);
    let mut op = Operator::new(keys.clone(), admin.clone(), opts);
    let tasks = formed(&mut op, &admin, &keys, "0-1-8").await;
    // Task 3 has applied 8 of the primary's 9 and stays there.
    if let Some(mut o) = admin.get("10.0.0.1:103") {
        if let Some(r) = o.replica.as_mut() {
            r.sql_running = true;
        }
        admin.set("10.0.0.1:103", Some(o));
    }
    ask_switchover(&keys, &tasks[0], &tasks[2]);
    op.round(&view(&tasks, &keys)).await;
    let req: SwitchoverRequest = stored(&keys, "switchover/browser-key");
    assert_eq!(req.state, "failed");
    assert!(req.message.contains("did not catch up"), "{}", req.message);
    let topo: Topology = stored(&keys, "topology/browser-key");
    assert_eq!(
        (topo.primary.as_str(), topo.epoch),
        (tasks[0].id.as_str(), 0)
    );
    assert!(
        admin.get("10.0.0.1:101").unwrap().read_only,
        "demoted for the try"
    );
    op.round(&view(&tasks, &keys)).await;
    assert!(
        !admin.get("10.0.0.1:101").unwrap().read_only,
        "writable again"
    );
}

#[tokio::test]
async fn an_instance_waiting_for_a_seed_gets_one_from_a_replica_and_the_seed_ends_when_it_answers()
{
    let admin = Arc::new(MemAdmin::default());
    let keys = Arc::new(Keys::default());
    let mut op = Operator::new(keys.clone(), admin.clone(), OperatorOptions::new("me"));
    let mut tasks = formed(&mut op, &admin, &keys, "0-1-9").await;
    // Task 3's datadir is gone: its replacement, task 4, listens on its
    // seed port instead of serving.
    tasks[2].state = "FAILED".into();
    let mut t4 = task(4, 104, "RUNNING");
    t4.ports.push(TaskPort {
        name: "seed".into(),
        port: 1104,
    });
    tasks.push(t4.clone());
    admin.set("10.0.0.1:104", None);
    admin.seeding.lock().unwrap().insert("10.0.0.1:1104".into());
    op.round(&view(&tasks, &keys)).await;
    let key = format!("seeds/browser-key/{}", t4.id);
    let seed: SeedRecord = stored(&keys, &key);
    assert_eq!(
        (
            seed.source.as_str(),
            seed.source_host.as_str(),
            seed.source_port,
            seed.to.as_str()
        ),
        (tasks[1].id.as_str(), "host-2", 102, "10.0.0.1:1104")
    );
    let st = status_of(&keys);
    let n = st.nodes.iter().find(|n| n.task == t4.id).unwrap();
    assert_eq!(n.role, "rebuilding");
    // Seeded: it answers, the seed ends, and it is made a replica.
    admin.seeding.lock().unwrap().clear();
    admin.set("10.0.0.1:104", fresh());
    op.round(&view(&tasks, &keys)).await;
    assert!(!keys.keys.lock().unwrap().contains_key(&key));
    let r = admin.get("10.0.0.1:104").unwrap().replica.unwrap();
    assert_eq!(r.master_port, 101);
}

#[tokio::test]
async fn a_rebuild_asked_for_condemns_the_replica_and_never_the_primary() {
    let admin = Arc::new(MemAdmin::default());
    let keys = Arc::new(Keys::default());
    let mut op = Operator::new(keys.clone(), admin.clone(), OperatorOptions::new("me"));
    let tasks = formed(&mut op, &admin, &keys, "0-1-9").await;
    let ask = |id: &str, task: &Task| {
        let rev = keys
            .keys
            .lock()
            .unwrap()
            .get("rebuild/browser-key")
            .map_or(0, |e| e.revision);
        let req = RebuildRequest {
            id: id.into(),
            task: task.id.clone(),
            requested_ms: now_ms(),
            state: "requested".into(),
            message: String::new(),
        };
        keys.put(KvPutRequest {
            namespace: NAME.into(),
            key: "rebuild/browser-key".into(),
            value: serde_json::to_vec(&req).unwrap(),
            expected_revision: Some(rev),
        })
        .unwrap();
    };
    ask("r-1", &tasks[0]);
    admin.sent.lock().unwrap().clear();
    op.round(&view(&tasks, &keys)).await;
    let req: RebuildRequest = stored(&keys, "rebuild/browser-key");
    assert_eq!(req.state, "failed", "{req:?}");
    assert!(!admin
        .sent
        .lock()
        .unwrap()
        .iter()
        .any(|c| matches!(c, AdminCmd::Condemn { .. })));
    ask("r-2", &tasks[2]);
    op.round(&view(&tasks, &keys)).await;
    let req: RebuildRequest = stored(&keys, "rebuild/browser-key");
    assert_eq!(req.state, "started", "{req:?}");
    assert!(admin.sent.lock().unwrap().contains(&AdminCmd::Condemn {
        on: "10.0.0.1:103".into()
    }));
    assert_eq!(admin.get("10.0.0.1:103"), None, "shut down");
}
