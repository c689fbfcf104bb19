//! The service tree and product-line pages against a real master: every
//! node's numbers are what the REST API's tasks add up to, each parent is
//! the sum of its children all the way down to a job, and the quotas and
//! weights are the scheduler settings'; the product-line page draws the
//! sampled history and counts failures from the tasks the API keeps.

mod support;

use std::collections::HashMap;

use axum::http::StatusCode;
use ocean_master::{QuotaSetting, SchedulerSettings};
use serde_json::json;
use support::{attrs, task, text, texts, Cluster};

const PDL: &str = "cop.acme_owt.inf_pdl.web";
const WEB: &str = "cop.acme_owt.inf_pdl.web_service.front_job.nginx_cluster.c3";
const API: &str = "cop.acme_owt.inf_pdl.web_service.api_job.app_cluster.c3";
const DB: &str = "cop.acme_owt.data_pdl.db_service.pg_job.main_cluster.c3";

fn settings() -> SchedulerSettings {
    SchedulerSettings {
        pdl_weights: [(PDL.to_string(), 3.0)].into(),
        quotas: vec![QuotaSetting {
            node: PDL.into(),
            cpus: Some(2.0),
            mem: Some(1024),
        }],
    }
}

/// Three jobs in two departments: 2 + 1 + 3 live tasks.
async fn populated() -> Cluster {
    let c = Cluster::start_with(settings()).await;
    c.add_agent("agent-1", "host-a", 8.0, 16384).await;
    let mut tasks = Vec::new();
    for (job, n) in [(WEB, 2), (API, 1), (DB, 3)] {
        c.add_job(json!({"id": job, "cmd": "x", "instances": n,
            "resources": {"cpus": 0.25, "mem": 64}}))
            .await;
        for i in 0..n {
            tasks.push(task(
                &format!("{job}.t{i}"),
                job,
                "agent-1",
                "host-a",
                31000 + tasks.len() as u32,
            ));
        }
    }
    let ids: Vec<String> = tasks.iter().map(|t| t.id.clone()).collect();
    c.place(tasks, HashMap::new()).await;
    for id in &ids {
        c.report(id, "agent-1", "RUNNING").await;
    }
    c
}

/// A node's tasks, cpus and MiB as shown.
type Numbers = (usize, f64, u64);

/// The node's own numbers and its children's.
fn numbers(html: &str) -> (Numbers, Vec<Numbers>) {
    let own = (
        text(html, "#node-totals .tasks").parse().expect("tasks"),
        text(html, "#node-totals .cpus")
            .trim_end_matches(" cores")
            .parse()
            .expect("cpus"),
        text(html, "#node-totals .mem")
            .trim_end_matches(" MiB")
            .parse()
            .expect("mem"),
    );
    let col = |c: &str| texts(html, &format!("#children tbody td.{c}"));
    let (t, cp, m) = (col("tasks"), col("cpus"), col("mem"));
    let children = (0..t.len())
        .map(|i| {
            (
                t[i].parse().expect("n"),
                cp[i].parse().expect("f"),
                m[i].parse().expect("m"),
            )
        })
        .collect();
    (own, children)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_node_of_the_tree_sums_its_children_down_to_the_job() {
    let c = populated().await;
    let all = c.api("/v1/tasks").await;
    let live = all["tasks"].as_array().expect("tasks").len();
    assert_eq!(live, 6);

    // Walk root -> cop -> owt -> pdl -> service -> job, always into the
    // child that leads to WEB, checking the sums at every level.
    let mut path = "/ui/tree".to_string();
    let mut depth = 0;
    loop {
        let (status, html) = c.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {html}");
        let (own, children) = numbers(&html);
        if depth == 0 {
            assert_eq!(own.0, live, "the root holds every live task");
        }
        let sum = children
            .iter()
            .fold((0, 0.0, 0), |a, c| (a.0 + c.0, a.1 + c.1, a.2 + c.2));
        assert_eq!(own.0, sum.0, "{path}: tasks");
        assert!(
            (own.1 - sum.1).abs() < 0.011,
            "{path}: cpus {own:?} vs {sum:?}"
        );
        assert_eq!(own.2, sum.2, "{path}: mem");
        let nodes = attrs(&html, "#children tbody tr", "data-node");
        let next = nodes
            .iter()
            .find(|n| {
                WEB.starts_with(n.as_str())
                    && (WEB.len() == n.len() || WEB.as_bytes()[n.len()] == b'_')
            })
            .unwrap_or_else(|| panic!("{path}: no child towards {WEB} in {nodes:?}"))
            .clone();
        if next == WEB {
            // The job's row links to the job page, with its own tasks.
            let row = format!("#children tr[data-node='{WEB}']");
            assert_eq!(
                attrs(&html, &format!("{row} a"), "href"),
                [format!("/ui/jobs/{WEB}")]
            );
            let api = c.api(&format!("/v1/tasks?job={WEB}")).await;
            assert_eq!(
                text(&html, &format!("{row} .tasks")),
                api["tasks"].as_array().map_or(0, Vec::len).to_string()
            );
            assert_eq!(text(&html, &format!("{row} .mem")), "128");
            break;
        }
        if next == PDL {
            let row = format!("#children tr[data-node='{PDL}']");
            assert_eq!(text(&html, &format!("{row} .quota")), "2.0 cores, 1024 MiB");
            assert_eq!(text(&html, &format!("{row} .weight")), "3");
            assert_eq!(text(&html, &format!("{row} .tasks")), "3");
        }
        path = format!("/ui/tree?node={next}");
        depth += 1;
        assert!(depth < 10, "the walk ends at the job");
    }
    // The breadcrumbs name every piece from the root down.
    let (_, html) = c.get(&format!("/ui/tree?node={PDL}_service.front")).await;
    assert_eq!(
        texts(&html, "#crumbs li"),
        ["root", "cop.acme", "owt.inf", "pdl.web", "service.front"]
    );
    // Another product line has weight 1 and no quota.
    let (_, html) = c.get("/ui/tree?node=cop.acme_owt.data").await;
    assert_eq!(
        text(
            &html,
            "#children tr[data-node='cop.acme_owt.data_pdl.db'] .weight"
        ),
        "1"
    );
    assert_eq!(
        text(
            &html,
            "#children tr[data-node='cop.acme_owt.data_pdl.db'] .quota"
        ),
        "none"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_and_product_line_pages_render_for_an_empty_cluster_and_refuse_bad_nodes() {
    let c = Cluster::start().await;
    let (status, html) = c.get("/ui/tree").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert_eq!(text(&html, "#node-totals .jobs"), "0");
    assert_eq!(text(&html, "#no-children"), "No job under this node.");
    let (status, html) = c.get(&format!("/ui/pdl/{PDL}")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert_eq!(text(&html, "#no-jobs"), "No job in this product line.");
    assert_eq!(attrs(&html, "svg.usage", "data-samples"), ["0", "0"]);

    let (status, html) = c.get("/ui/tree?node=pdl.web").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text(&html, ".error").starts_with("node:"), "{html}");
    let (status, html) = c.get("/ui/tree?node=cop.a_zz.b").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text(&html, ".error").contains("node"), "{html}");
    let (status, html) = c.get("/ui/pdl/cop.acme_owt.inf").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text(&html, ".error").starts_with("pdl:"), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_product_line_page_draws_usage_against_quota_and_counts_failures() {
    let c = populated().await;
    // Two samples: now, and after a task of the web job failed.
    c.history
        .record(ocean_ui::history::sample(&c.master).await.expect("sample"));
    c.report(&format!("{WEB}.t0"), "agent-1", "FAILED").await;
    c.history
        .record(ocean_ui::history::sample(&c.master).await.expect("sample"));

    let (status, html) = c.get(&format!("/ui/pdl/{PDL}")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert_eq!(attrs(&html, "#pdl-jobs tbody tr", "data-job"), [API, WEB]);
    // What the API says is live under the product line now: 2 tasks.
    let mut api_live = 0;
    for j in [WEB, API] {
        let t = c.api(&format!("/v1/tasks?job={j}&ended=false")).await;
        api_live += t["tasks"].as_array().map_or(0, Vec::len);
    }
    assert_eq!(text(&html, "#pdl-totals .tasks"), api_live.to_string());
    assert_eq!(text(&html, "#pdl-totals .cpus"), "0.50 cores of 2.0");
    assert_eq!(text(&html, "#pdl-totals .weight"), "3");
    // Failures: the ended task the API keeps, and the back-off's count.
    let job = c.api(&format!("/v1/jobs/{WEB}")).await;
    assert_eq!(job["backoff"]["failures"], 1);
    assert_eq!(
        text(&html, &format!("#pdl-jobs tr[data-job='{WEB}'] .failed")),
        "1"
    );
    assert_eq!(
        text(&html, &format!("#pdl-jobs tr[data-job='{WEB}'] .restarts")),
        "1"
    );
    assert!(text(
        &html,
        &format!("#pdl-jobs tr[data-job='{WEB}'] .last-failure")
    )
    .starts_with("FAILED"));
    assert_eq!(text(&html, "#pdl-totals .failed"), "1");
    // The charts: two samples, 0.75 then 0.5 cores under a 2-core quota
    // (the scale's top): y = 120 - v / 2 * 120.
    assert_eq!(attrs(&html, "svg.usage", "data-samples"), ["2", "2"]);
    let points = attrs(&html, "svg.usage polyline.used", "points");
    assert_eq!(points[0], "0.0,75.0 480.0,90.0");
    assert_eq!(attrs(&html, "svg.usage line.limit", "y1")[0], "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_the_binary_mounts_samples_product_lines_on_its_own() {
    let c = populated().await;
    // What `ocean master` mounts: its own history, sampled from the start.
    let app = ocean_ui::router_with(c.master.clone(), settings());
    let samples = || async {
        let req = axum::http::Request::get(format!("/ui/pdl/{PDL}"))
            .body(axum::body::Body::empty())
            .expect("request");
        let resp = tower::ServiceExt::oneshot(app.clone(), req)
            .await
            .expect("infallible");
        let body = axum::body::to_bytes(resp.into_body(), 1 << 24)
            .await
            .expect("body");
        attrs(&String::from_utf8_lossy(&body), "svg.usage", "data-samples")
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let got = samples().await;
        if got == ["1", "1"] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no sample within 10 s: {got:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
