//! The database page's actions that wait for the operator (switchover,
//! rebuild, backup), carried through: the test plays the mysql operator
//! (no mariadbd here; the real one is exercised by tests/tests/mysql*.rs)
//! by finishing every request the API stores, so what is checked is the
//! page's side: the chosen replica or instance reaches the API's request,
//! and the form redirects with its notice once the API answers.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use ocean_master::service::ReadOptions;
use ocean_master::Master;
use ocean_mysql::backup::BackupRecord;
use ocean_mysql::seed::RebuildRequest;
use ocean_mysql::switchover::SwitchoverRequest;
use ocean_mysql::{DatabaseStatus, NodeStatus, Topology};
use serde_json::json;
use support::{attrs, form, text, Cluster};

const DB: &str = "carts";

async fn put(m: &Master, key: &str, value: serde_json::Value) {
    m.service()
        .kv_put("mysql", key, value.to_string().into_bytes(), None)
        .await
        .expect("put");
}

/// The `mysql` keys under `prefix` that parse as `T`.
async fn stored<T: serde::de::DeserializeOwned>(m: &Master, prefix: &str) -> Vec<(String, T)> {
    m.service()
        .kv_list("mysql", prefix, ReadOptions::default())
        .await
        .expect("list")
        .keys
        .into_iter()
        .filter_map(|k| Some((k.key, serde_json::from_value(k.value?).ok()?)))
        .collect()
}

/// Finishes what the API asks of the operator until `stop`: switchovers
/// done, rebuilds started, backups done.
async fn play_operator(m: Master, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        for (key, mut r) in stored::<SwitchoverRequest>(&m, "switchover/").await {
            if r.state == "requested" {
                r.state = "done".into();
                r.took_ms = 42;
                put(&m, &key, json!(r)).await;
            }
        }
        for (key, mut r) in stored::<RebuildRequest>(&m, "rebuild/").await {
            if r.state == "requested" {
                r.state = "started".into();
                put(&m, &key, json!(r)).await;
            }
        }
        for (key, mut b) in stored::<BackupRecord>(&m, "backups/").await {
            if b.state == "running" {
                b.state = "done".into();
                b.gtid = "0-1-9".into();
                b.bytes = 2 * 1024 * 1024;
                b.finished_ms = b.requested_ms + 1_000;
                put(&m, &key, json!(b)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn node(task: &str, n: u8, role: &str) -> NodeStatus {
    NodeStatus {
        task: task.into(),
        host: format!("h{n}"),
        addr: format!("10.0.0.{n}:3306"),
        role: role.into(),
        gtid: "0-1-9".into(),
        lag_seconds: (role == "replica").then_some(0),
        last_error: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_rebuild_and_backup_go_through_the_api_and_come_back_done() {
    let c = Cluster::start().await;
    let created = form(&[
        ("name", DB),
        ("cluster", "production"),
        ("product_line", "shop"),
        ("department", "retail"),
        ("full_name", "/retail/shop/carts"),
        ("template", "mysql-large"),
        ("instances", "3"),
    ]);
    let (status, _, html) = c.post_form("/ui/databases", &created).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{html}");
    let (t1, t2, t3) = ("carts.1", "carts.2", "carts.3");
    put(
        &c.master,
        &format!("topology/{DB}"),
        json!(Topology {
            primary: t1.into(),
            addr: "10.0.0.1:3306".into(),
            epoch: 0,
            since_ms: 1,
        }),
    )
    .await;
    put(
        &c.master,
        &format!("status/{DB}"),
        json!(DatabaseStatus {
            state: "ok".into(),
            primary: t1.into(),
            running: 3,
            instances: 3,
            semi_sync_clients: 2,
            nodes: vec![
                node(t1, 1, "primary"),
                node(t2, 2, "replica"),
                node(t3, 3, "replica")
            ],
            observed_ms: 1,
            ..Default::default()
        }),
    )
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let operator = tokio::spawn(play_operator(c.master.clone(), stop.clone()));

    let checks = async {
        // The replica chosen in the form is the one the request names.
        let (status, location, html) = c
            .post_form(
                "/ui/databases/carts/switchover",
                &form(&[("to", t3), ("confirm", "yes")]),
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{html}");
        assert_eq!(
            location.as_deref(),
            Some("/ui/databases/carts?done=switchover")
        );
        let asked = stored::<SwitchoverRequest>(&c.master, "switchover/").await;
        assert_eq!(asked.len(), 1);
        assert_eq!((asked[0].1.from.as_str(), asked[0].1.to.as_str()), (t1, t3));

        let (status, location, html) = c
            .post_form(
                "/ui/databases/carts/rebuild",
                &form(&[("task", t2), ("confirm", "yes")]),
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{html}");
        assert_eq!(
            location.as_deref(),
            Some("/ui/databases/carts?done=rebuild")
        );
        let asked = stored::<RebuildRequest>(&c.master, "rebuild/").await;
        assert_eq!(asked.len(), 1);
        assert_eq!(asked[0].1.task, t2);

        // Backing up waits for the backup, then the page shows it.
        let (status, location, html) = c.post_form("/ui/databases/carts/backup", "").await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{html}");
        assert_eq!(
            location.as_deref(),
            Some("/ui/databases/carts?done=backed-up")
        );
        let backups = stored::<BackupRecord>(&c.master, "backups/").await;
        assert_eq!(backups.len(), 1);
        let (status, html) = c.get("/ui/databases/carts?done=backed-up").await;
        assert_eq!(status, StatusCode::OK, "{html}");
        assert!(text(&html, "#notice").starts_with("Backup done"), "{html}");
        assert_eq!(
            attrs(&html, "#last-backup", "data-backup"),
            vec![backups[0].1.id.clone()]
        );
        assert_eq!(text(&html, "#last-backup .backup-state"), "done");
        // Taken on the replica furthest ahead (the API's choice): not the primary.
        assert_ne!(backups[0].1.source, t1);
    };
    let outcome = tokio::time::timeout(Duration::from_secs(60), checks).await;
    stop.store(true, Ordering::Relaxed);
    operator.await.expect("the stand-in operator");
    outcome.expect("the actions finish within 60 s");
}
