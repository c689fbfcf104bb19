//! The operator's rounds against in-memory instances and a client double
//! that keeps the framework's keys: bootstrap, a primary's task ending,
//! the failover, the replacement rejoining.

use std::any::Any;
use std::sync::Mutex;

use futures::stream::BoxStream;
use ocean_client::api::*;
use ocean_client::{Error, Result};

use super::*;
use crate::admin::{Observed, ReplicaObs};
use crate::admin_mem::MemAdmin;

fn rec() -> DatabaseRecord {
    DatabaseRecord {
        spec: crate::spec::tests::ok(),
        template: crate::templates::builtin()[0].clone(),
        secrets: Secrets::default(),
        created_ms: 0,
        restore: None,
    }
}

fn task(n: u32, port: u32, state: &str) -> Task {
    let job = job_id(&rec().spec);
    Task {
        id: format!("{job}.{n}"),
        job_id: job,
        host: format!("host-{n}"),
        address: "10.0.0.1".into(),
        state: state.into(),
        ports: vec![TaskPort {
            name: "mysql".into(),
            port,
        }],
        ..Default::default()
    }
}

/// Keeps the keys written (`kv_put`, compare-and-set honoured), reads
/// them back (`kv_get`) and deletes them (`kv_delete`); every other call
/// fails.
#[derive(Debug, Default)]
struct Keys {
    keys: Mutex<BTreeMap<String, KvEntry>>,
    version: Mutex<u64>,
}

impl Keys {
    fn put(&self, r: KvPutRequest) -> Result<WriteResponse> {
        let mut keys = self.keys.lock().unwrap();
        let actual = keys.get(&r.key).map_or(0, |e| e.revision);
        if r.expected_revision.is_some_and(|e| e != actual) {
            return Err(Error::VersionConflict {
                message: "stale".into(),
                expected: r.expected_revision.unwrap_or(0),
                actual,
            });
        }
        let mut v = self.version.lock().unwrap();
        *v += 1;
        keys.insert(
            r.key.clone(),
            KvEntry {
                namespace: r.namespace,
                key: r.key,
                value: r.value,
                revision: *v,
                created_revision: *v,
            },
        );
        Ok(WriteResponse {
            version: *v,
            ..Default::default()
        })
    }

    fn call<Q: Any, R: Any>(&self, name: &str, req: Q) -> Result<R> {
        let absent = || Error::Unavailable(format!("{name}: not in this double"));
        let req: Box<dyn Any> = Box::new(req);
        let resp: Box<dyn Any> = match name {
            "kv_put" => Box::new(self.put(*req.downcast::<KvPutRequest>().map_err(|_| absent())?)?),
            "kv_get" => {
                let get = req.downcast::<KvKeyRequest>().map_err(|_| absent())?;
                let got = self.keys.lock().unwrap().get(&get.key).cloned();
                Box::new(got.ok_or_else(|| Error::NotFound(get.key.clone()))?)
            }
            "kv_delete" => {
                let del = req.downcast::<KvKeyRequest>().map_err(|_| absent())?;
                let mut keys = self.keys.lock().unwrap();
                let actual = keys.get(&del.key).map_or(0, |e| e.revision);
                if del.expected_revision.is_some_and(|e| e != actual) {
                    return Err(Error::VersionConflict {
                        message: "stale".into(),
                        expected: del.expected_revision.unwrap_or(0),
                        actual,
                    });
                }
                keys.remove(&del.key);
                Box::new(WriteResponse::default())
            }
            _ => return Err(absent()),
        };
        resp.downcast::<R>().map(|r| *r).map_err(|_| absent())
    }
}

macro_rules! keys_impl {
    ($($name:ident($req:ty) -> $resp:ty;)* ;) => {
        #[async_trait::async_trait]
        impl Client for Keys {
            $(async fn $name(&self, r: $req) -> Result<$resp> { self.call(stringify!($name), r) })*

            async fn watch(&self, _: WatchRequest) -> Result<BoxStream<'static, Result<Event>>> {
                Err(Error::Unavailable("watch".into()))
            }

            async fn task_logs(&self, _: TaskLogsRequest) -> Result<BoxStream<'static, Result<LogChunk>>> {
                Err(Error::Unavailable("task_logs".into()))
            }
        }
    };
}

ocean_client::with_unary_calls! { keys_impl {} }

/// The view: the database, its tasks and the keys the double holds.
fn view(tasks: &[Task], keys: &Keys) -> View {
    let mut v = View::new(NAME);
    let r = rec();
    let k = format!("databases/{}", r.spec.name);
    v.keys.insert(
        k.clone(),
        KvEntry {
            namespace: NAME.into(),
            key: k,
            value: serde_json::to_vec(&r).unwrap(),
            revision: 1,
            created_revision: 1,
        },
    );
    for (k, e) in keys.keys.lock().unwrap().iter() {
        v.keys.insert(k.clone(), e.clone());
    }
    for t in tasks {
        v.tasks.insert(t.id.clone(), t.clone());
    }
    v
}

fn fresh() -> Option<Observed> {
    Some(Observed {
        read_only: true,
        ..Default::default()
    })
}

fn status_of(keys: &Keys) -> DatabaseStatus {
    let k = keys.keys.lock().unwrap();
    serde_json::from_slice(&k["status/browser-key"].value).unwrap()
}

#[tokio::test]
async fn bootstrap_then_a_lost_primary_is_fenced_and_the_most_advanced_standby_promoted() {
    let admin = Arc::new(MemAdmin::default());
    let keys = Arc::new(Keys::default());
    let mut op = Operator::new(keys.clone(), admin.clone(), OperatorOptions::new("me"));
    let mut tasks = vec![
        task(1, 101, "RUNNING"),
        task(2, 102, "RUNNING"),
        task(3, 103, "RUNNING"),
    ];
    for p in [101, 102, 103] {
        admin.set(&format!("10.0.0.1:{p}"), fresh());
    }
    op.round(&view(&tasks, &keys)).await;
    // Bootstrap: task 1 recorded and promoted, the others follow it.
    let topo: Topology =
        serde_json::from_slice(&keys.keys.lock().unwrap()["topology/browser-key"].value).unwrap();
    assert_eq!(topo.primary, tasks[0].id);
    assert!(!admin.get("10.0.0.1:101").unwrap().read_only);
    for p in [102, 103] {
        let r = admin
            .get(&format!("10.0.0.1:{p}"))
            .unwrap()
            .replica
            .unwrap();
        assert_eq!((r.master_port, r.io_running), (101, true));
    }

    // Replication happens: 103 received and applied more than 102.
    let advance = |port: u16, pos: &str| {
        let mut o = admin.get(&format!("10.0.0.1:{port}")).unwrap();
        o.gtid_current_pos = pos.into();
        if let Some(r) = o.replica.as_mut() {
            r.gtid_io_pos = pos.into();
        }
        admin.set(&format!("10.0.0.1:{port}"), Some(o));
    };
    advance(102, "0-1-5");
    advance(103, "0-1-7");
    admin.sent.lock().unwrap().clear();

    // The primary's process is killed: its task ends.
    admin.set("10.0.0.1:101", None);
    tasks[0].state = "FAILED".into();
    op.round(&view(&tasks, &keys)).await;
    let sent = admin.sent.lock().unwrap().clone();
    assert_eq!(
        &sent[..3],
        &[
            AdminCmd::StopIo {
                on: "10.0.0.1:102".into()
            },
            AdminCmd::StopIo {
                on: "10.0.0.1:103".into()
            },
            AdminCmd::Promote {
                on: "10.0.0.1:103".into(),
                alone: false
            },
        ]
    );
    assert_eq!(
        &sent[3..],
        &[AdminCmd::Follow {
            on: "10.0.0.1:102".into(),
            host: "10.0.0.1".into(),
            port: 103
        }]
    );
    let topo: Topology =
        serde_json::from_slice(&keys.keys.lock().unwrap()["topology/browser-key"].value).unwrap();
    assert_eq!(
        (topo.primary.as_str(), topo.epoch),
        (tasks[2].id.as_str(), 1)
    );
    // The failover is recorded where the masters' alert rules read it.
    let fo: FailoverRecord =
        serde_json::from_slice(&keys.keys.lock().unwrap()["failovers/browser-key"].value).unwrap();
    assert_eq!(
        (fo.from.as_str(), fo.to.as_str(), fo.count, fo.job.as_str()),
        (
            tasks[0].id.as_str(),
            tasks[2].id.as_str(),
            1,
            crate::jobs::job_id(&rec().spec).as_str()
        )
    );

    // The old primary's replacement starts read-only and is made a standby.
    tasks.push(task(4, 104, "RUNNING"));
    admin.set("10.0.0.1:104", fresh());
    op.round(&view(&tasks, &keys)).await;
    let r: ReplicaObs = admin.get("10.0.0.1:104").unwrap().replica.unwrap();
    assert_eq!(r.master_port, 103);
    let mut p = admin.get("10.0.0.1:103").unwrap();
    p.semi_sync_clients = 2;
    admin.set("10.0.0.1:103", Some(p));
    op.round(&view(&tasks, &keys)).await;
    let st = status_of(&keys);
    assert_eq!(st.state, "ok", "{st:?}");
    assert_eq!(st.epoch, 1);
}

#[tokio::test]
async fn a_silent_primary_is_replaced_only_after_the_probe_deadline() {
    let admin = Arc::new(MemAdmin::default());
    let keys = Arc::new(Keys::default());
    let mut opts = OperatorOptions::new("me");
    opts.hung_after = Duration::from_millis(300);
    let mut op = Operator::new(keys.clone(), admin.clone(), opts);
    let tasks = vec![task(1, 101, "RUNNING"), task(2, 102, "RUNNING")];
    for p in [101, 102] {
        admin.set(&format!("10.0.0.1:{p}"), fresh());
    }
    op.round(&view(&tasks, &keys)).await;
    admin.set("10.0.0.1:101", None);
    op.round(&view(&tasks, &keys)).await;
    assert!(admin.get("10.0.0.1:102").unwrap().read_only, "not yet");
    tokio::time::sleep(Duration::from_millis(350)).await;
    op.round(&view(&tasks, &keys)).await;
    assert!(!admin.get("10.0.0.1:102").unwrap().read_only, "promoted");
    assert_eq!(status_of(&keys).primary, tasks[1].id);
}

#[path = "operator_ops_tests.rs"]
mod ops;

#[path = "operator_grants_tests.rs"]
mod grants;
