//! The databases (RDS) pages against a real master (no mariadbd: what
//! needs instances is covered by tests/tests/mysql*.rs): the create form's
//! errors by field with nothing created, the list per product line as
//! `GET /v1/databases` shows it, the detail page's topology, backups and
//! schedule from stored records, the actions refused without their box or
//! by the API (its status and reason on the page), scale and delete, and
//! the CSRF token.

mod support;

use axum::http::StatusCode;
use ocean_mysql::backup::BackupRecord;
use ocean_mysql::jobs::job_id;
use ocean_mysql::{DatabaseSpec, DatabaseStatus, NodeStatus};
use serde_json::json;
use support::{attrs, form, text, texts, Cluster, CSRF};

const DB: &str = "browser-key";

fn create(name: &str, pdl: &str, full_name: &str, template: &str, instances: &str) -> String {
    form(&[
        ("name", name),
        ("cluster", "staging"),
        ("product_line", pdl),
        ("department", "miui"),
        ("full_name", full_name),
        ("template", template),
        ("instances", instances),
    ])
}

fn good(name: &str, pdl: &str) -> String {
    create(
        name,
        pdl,
        &format!("/miui/{pdl}/{name}"),
        "mysql-general",
        "3",
    )
}

/// The databases `GET /v1/databases` lists, by name.
async fn listed(c: &Cluster) -> Vec<String> {
    let v = c.api("/v1/databases").await;
    v["databases"]
        .as_array()
        .expect("databases")
        .iter()
        .map(|d| d["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn put(c: &Cluster, key: &str, value: serde_json::Value) {
    c.master
        .service()
        .kv_put("mysql", key, value.to_string().into_bytes(), None)
        .await
        .expect("put");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databases_are_refused_by_field_created_and_listed_per_product_line() {
    let c = Cluster::start().await;
    let (status, html) = c.get("/ui/databases").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("id=\"no-databases\""), "{html}");
    // The template choices are the stored ones (the built-in ones until
    // something stores them).
    assert_eq!(
        attrs(&html, "#template option", "value"),
        vec!["mysql-general", "mysql-large"]
    );
    assert_eq!(
        attrs(&html, "a[aria-current=page]", "href"),
        vec!["/ui/databases"]
    );

    // Errors beside their fields, as the API names them; what was typed kept.
    let cases = [
        (
            create(DB, "browser", "/miui/browser/key", "mysql-tiny", "3"),
            "#template-error",
            "no template 'mysql-tiny'; known: mysql-general, mysql-large",
        ),
        (
            create(DB, "browser", "/miui/browser/key", "mysql-general", "0"),
            "#instances-error",
            "must be 1..=9; got 0",
        ),
        (
            create(DB, "browser", "/miui/browser/key", "mysql-general", "three"),
            "#instances-error",
            "'three' is not a whole number",
        ),
        (
            create(DB, "browser", "miui/Browser", "mysql-general", "3"),
            "#full_name-error",
            "like '/miui/browser/key'; got 'miui/Browser'",
        ),
        (
            create(
                "Browser_Key",
                "browser",
                "/miui/browser/key",
                "mysql-general",
                "3",
            ),
            "#name-error",
            "got 'Browser_Key'",
        ),
    ];
    for (body, sel, want) in &cases {
        let (status, _, html) = c.post_form("/ui/databases", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{sel}: {html}");
        assert!(text(&html, sel).contains(want), "{sel}: {html}");
        assert_eq!(texts(&html, ".field-error").len(), 1, "{sel}: {html}");
        assert!(html.contains("id=\"form-errors\""), "{html}");
        assert_eq!(attrs(&html, "#department", "value"), vec!["miui"]);
    }
    assert!(listed(&c).await.is_empty(), "nothing created");
    let (_, html) = c.get("/ui/databases").await;
    assert!(html.contains("id=\"no-databases\""), "{html}");

    // Created: redirected to its page, listed under its product line.
    let (status, location, html) = c.post_form("/ui/databases", &good(DB, "browser")).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{html}");
    assert_eq!(
        location.as_deref(),
        Some("/ui/databases/browser-key?done=created")
    );
    let (status, _, _) = c.post_form("/ui/databases", &good("orders", "shop")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _, html) = c.post_form("/ui/databases", &good(DB, "shop")).await;
    assert_eq!(status, StatusCode::CONFLICT, "a name taken: {html}");
    assert!(
        text(&html, "#name-error").contains("a database named 'browser-key' already exists"),
        "{html}"
    );

    let (status, html) = c.get("/ui/databases").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert_eq!(
        attrs(&html, "table.databases", "data-product-line"),
        vec!["browser", "shop"]
    );
    assert_eq!(
        attrs(
            &html,
            "table[data-product-line=browser] tr[data-database]",
            "data-database"
        ),
        vec![DB]
    );
    assert_eq!(
        attrs(
            &html,
            "table[data-product-line=shop] tr[data-database]",
            "data-database"
        ),
        vec!["orders"]
    );
    // The row is the API's.
    let api = c.api("/v1/databases/browser-key").await;
    let cell = |col: &str| text(&html, &format!("tr[data-database={DB}] td.{col}"));
    assert_eq!(cell("name"), api["name"]);
    assert_eq!(cell("cluster"), api["cluster"]);
    assert_eq!(cell("department"), api["department"]);
    assert_eq!(cell("full-name"), api["full_name"]);
    assert_eq!(cell("template"), api["template"]);
    assert_eq!(cell("instances"), "3");
    assert_eq!(cell("running"), "0/3");
    assert_eq!(cell("state"), api["state"]);
    assert_eq!(cell("state"), "creating");
    assert_eq!(cell("primary"), "none yet");
    assert!(cell("created").ends_with(" UTC"), "{html}");
    assert_eq!(listed(&c).await, vec![DB, "orders"]);
}

fn node(task: &str, host: &str, port: u16, role: &str, gtid: &str, lag: Option<u64>) -> NodeStatus {
    NodeStatus {
        task: task.into(),
        host: host.into(),
        addr: format!("10.0.0.{}:{port}", &host[1..]),
        role: role.into(),
        gtid: gtid.into(),
        lag_seconds: lag,
        last_error: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_page_shows_its_topology_and_backups_and_its_actions_are_guarded() {
    let c = Cluster::start().await;
    let (status, _, _) = c.post_form("/ui/databases", &good(DB, "browser")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    // Before the operator has looked.
    let (status, html) = c.get("/ui/databases/browser-key?done=created").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        text(&html, "#notice").contains("Database created"),
        "{html}"
    );
    assert!(html.contains("id=\"not-observed\""), "{html}");
    assert!(html.contains("id=\"no-backup\""), "{html}");
    assert_eq!(
        text(&html, "#primary-dns"),
        "primary.browser-key.browser.staging"
    );
    // Backing up needs an observed database: the API's 409, on the page.
    let (status, _, html) = c.post_form("/ui/databases/browser-key/backup", "").await;
    assert_eq!(status, StatusCode::CONFLICT, "{html}");
    assert!(
        text(&html, "#action-error").starts_with(
            "backup refused (409 Conflict): id: database 'browser-key' has not been observed"
        ),
        "{html}"
    );

    // The operator's status, as it stores it.
    let spec = DatabaseSpec {
        name: DB.into(),
        cluster: "staging".into(),
        product_line: "browser".into(),
        department: "miui".into(),
        full_name: "/miui/browser/browser-key".into(),
        template: "mysql-general".into(),
        instances: 3,
        allowed_jobs: Vec::new(),
    };
    let job = job_id(&spec);
    let (t1, t2, t3) = (format!("{job}.1"), format!("{job}.2"), format!("{job}.3"));
    let st = DatabaseStatus {
        state: "ok".into(),
        primary: t1.clone(),
        epoch: 2,
        running: 3,
        instances: 3,
        semi_sync_clients: 2,
        nodes: vec![
            node(&t1, "h1", 31001, "primary", "0-1-120", None),
            node(&t2, "h2", 31002, "replica", "0-1-120", Some(0)),
            node(&t3, "h3", 31003, "replica", "0-1-117", Some(3)),
        ],
        observed_ms: 1_796_589_000_000,
        ..Default::default()
    };
    put(&c, "status/browser-key", json!(st)).await;
    let done = BackupRecord {
        id: "b-1796580000000".into(),
        database: DB.into(),
        source: t2.clone(),
        source_host: "h2".into(),
        source_port: 31002,
        dir: "/var/tmp/ocean-mysql-backups".into(),
        offsite_dir: "/var/tmp/ocean-mysql-backups-offsite".into(),
        requested_ms: 1_796_580_000_000,
        finished_ms: 1_796_580_060_000,
        state: "done".into(),
        gtid: "0-1-100".into(),
        bytes: 3 * 1024 * 1024,
        by: "schedule".into(),
        ..Default::default()
    };
    let failed = BackupRecord {
        id: "b-1796585000000".into(),
        requested_ms: 1_796_585_000_000,
        finished_ms: 0,
        state: "failed".into(),
        message: "mariadb-backup exited 1".into(),
        gtid: String::new(),
        bytes: 0,
        by: "request".into(),
        ..done.clone()
    };
    put(&c, &format!("backups/{DB}/{}", done.id), json!(done)).await;
    put(&c, &format!("backups/{DB}/{}", failed.id), json!(failed)).await;
    put(
        &c,
        &format!("schedule/{DB}"),
        json!({"every_hours": 24.0, "retention_days": 7.0}),
    )
    .await;

    let (status, html) = c.get("/ui/databases/browser-key").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert_eq!(
        attrs(&html, "table.topology tr[data-task]", "data-role"),
        vec!["primary", "replica", "replica"]
    );
    let cell = |task: &str, col: &str| text(&html, &format!("tr[data-task=\"{task}\"] td.{col}"));
    assert_eq!(cell(&t1, "lag"), "— (primary)");
    assert_eq!(cell(&t3, "lag"), "3 s");
    assert_eq!(cell(&t3, "gtid"), "0-1-117");
    assert_eq!(cell(&t2, "host"), "h2");
    assert_eq!(cell(&t2, "addr"), "10.0.0.2:31002");
    assert_eq!(
        attrs(&html, "table.topology td.task a", "href"),
        vec![
            format!("/ui/tasks/{t1}"),
            format!("/ui/tasks/{t2}"),
            format!("/ui/tasks/{t3}")
        ]
    );
    // The primary is not offered a rebuild; the switchover offers the replicas.
    assert_eq!(
        attrs(&html, "form[data-action=rebuild] input[name=task]", "value"),
        vec![t2.clone(), t3.clone()]
    );
    assert_eq!(
        attrs(&html, "#to option", "value"),
        vec![String::new(), t2.clone(), t3.clone()]
    );
    assert!(text(&html, "#primary").contains("10.0.0.1:31001"), "{html}");
    assert_eq!(text(&html, "#epoch"), "2");
    assert_eq!(
        attrs(&html, "#last-backup", "data-backup"),
        vec![failed.id.clone()]
    );
    assert!(
        text(&html, "#last-backup").contains("mariadb-backup exited 1"),
        "{html}"
    );
    assert!(text(&html, "#last-done").contains(&done.id), "{html}");
    assert!(text(&html, "#last-done").contains("3.0 MiB"), "{html}");
    assert_eq!(
        text(&html, "#schedule"),
        "Schedule: a backup every 24 h, each kept 7 days."
    );
    assert!(
        text(&html, "#archive").starts_with("Binlog archive: off"),
        "{html}"
    );
    let (_, list) = c.get("/ui/databases").await;
    assert_eq!(
        text(&list, &format!("tr[data-database={DB}] td.state")),
        "ok"
    );
    assert_eq!(
        text(&list, &format!("tr[data-database={DB}] td.running")),
        "3/3"
    );

    // Without the box: refused naming `confirm`, beside the form's box,
    // nothing asked of the API.
    for (action, body) in [
        ("switchover", form(&[("to", &t2)])),
        ("rebuild", form(&[("task", &t3)])),
        ("delete", String::new()),
    ] {
        let (status, _, html) = c
            .post_form(&format!("/ui/databases/browser-key/{action}"), &body)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{action}: {html}");
        assert_eq!(
            text(&html, "#action-error"),
            format!("{action} refused (400 Bad Request): confirm: tick the box to confirm")
        );
        assert_eq!(
            texts(&html, "#confirm-error"),
            vec!["tick the box to confirm"],
            "{action}: {html}"
        );
        assert_eq!(
            attrs(&html, "[aria-describedby=confirm-error]", "name"),
            vec!["confirm"],
            "{action}: the box marked"
        );
    }
    assert_eq!(listed(&c).await, vec![DB], "not deleted");

    // The API's refusals: status, reason, field.
    let (status, _, html) = c
        .post_form(
            "/ui/databases/browser-key/switchover",
            &form(&[("to", &t1), ("confirm", "yes")]),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{html}");
    assert!(
        text(&html, "#action-error").starts_with("switchover refused (409 Conflict): to: "),
        "{html}"
    );
    assert!(
        text(&html, "#to-error").contains("is the primary already"),
        "{html}"
    );
    let (status, _, html) = c
        .post_form(
            "/ui/databases/browser-key/rebuild",
            &form(&[("task", &t1), ("confirm", "yes")]),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{html}");
    assert!(
        text(&html, "#task-error").contains("is the primary: it holds the authoritative copy"),
        "{html}"
    );

    // Scale: the form's and the API's errors, then a scale-in.
    for (n, want) in [
        ("many", "'many' is not a whole number"),
        ("0", "must be 1..=9; got 0"),
        (
            "5",
            "5 instances need 5 hosts (one each), and 0 agents are online",
        ),
    ] {
        let (status, _, html) = c
            .post_form(
                "/ui/databases/browser-key/scale",
                &form(&[("instances", n)]),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{n}: {html}");
        assert_eq!(text(&html, "#instances-error"), want, "{n}");
    }
    let (status, location, html) = c
        .post_form(
            "/ui/databases/browser-key/scale",
            &form(&[("instances", "2")]),
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{html}");
    assert_eq!(
        location.as_deref(),
        Some("/ui/databases/browser-key?done=scaled")
    );
    assert_eq!(c.api("/v1/databases/browser-key").await["instances"], 2);

    // Unknown things are 404s.
    let (status, _) = c.get("/ui/databases/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = c
        .post_form(
            "/ui/databases/browser-key/explode",
            &form(&[("confirm", "yes")]),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A forged token writes nothing; the real one deletes.
    let (status, _, _) = c
        .post_form_as(
            "/ui/databases/browser-key/delete",
            &form(&[("confirm", "yes"), ("csrf", "forged")]),
            Some(CSRF),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = c
        .post_form_as(
            "/ui/databases",
            &format!("{}&csrf=forged", good("forged", "browser")),
            Some(CSRF),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(listed(&c).await, vec![DB]);
    let (status, location, _) = c
        .post_form(
            "/ui/databases/browser-key/delete",
            &form(&[("confirm", "yes")]),
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/ui/databases?done=deleted"));
    let (_, html) = c.get("/ui/databases?done=deleted").await;
    assert!(text(&html, "#notice").contains("deleted"), "{html}");
    assert!(html.contains("id=\"no-databases\""), "{html}");
    assert!(listed(&c).await.is_empty());
}
