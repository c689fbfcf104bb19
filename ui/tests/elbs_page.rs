//! The load balancers page against a real master (no LB host: the data
//! plane is covered by tests/tests/elb*.rs): the create form's errors by
//! field, the list with each virtual server's real servers and why one is
//! out of rotation, the delete confirmation, and the CSRF token.

mod support;

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::StatusCode;
use ocean_elb::store::Store;
use ocean_master::api::in_process::InProcess;
use serde_json::json;
use support::{form, task, text, texts, Cluster, CSRF};

const JOB: &str = "cop.x_owt.y_pdl.web_servicegroup.g_service.front_job.api_cluster.c3";

fn create(name: &str, vip: &str, port: &str) -> String {
    form(&[
        ("name", name),
        ("idc", "c3"),
        ("network", "internal"),
        ("vip", vip),
        ("port", port),
        ("protocol", "tcp"),
        ("algorithm", "rr"),
        ("backend_job", JOB),
        ("backend_port_name", "http"),
        ("domain", "front.web.ocean"),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_balancers_are_created_listed_and_deleted_from_the_dashboard() {
    let c = Cluster::start().await;
    let (status, html) = c.get("/ui/elbs").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("id=\"no-elbs\""), "{html}");

    // A job with two running tasks, one of them found unhealthy later.
    c.add_agent("a1", "h1", 4.0, 4096).await;
    c.add_job(json!({"id": JOB, "cmd": "sleep 600", "instances": 2,
        "ports": [{"name": "http"}]}))
        .await;
    let (t1, t2) = (format!("{JOB}.1"), format!("{JOB}.2"));
    c.place(
        vec![
            task(&t1, JOB, "a1", "h1", 31001),
            task(&t2, JOB, "a1", "h1", 31002),
        ],
        HashMap::new(),
    )
    .await;
    c.report(&t1, "a1", "RUNNING").await;
    c.report(&t2, "a1", "STARTING").await;

    // Errors are shown beside their fields and keep what was typed.
    let (status, _, html) = c
        .post_form("/ui/elbs", &create("pdl.web_service.front", "10.0.0", "x"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    assert!(text(&html, "#port-error").contains("not a port"), "{html}");
    let (status, _, html) = c
        .post_form("/ui/elbs", &create("pdl.web_service.front", "10.0.0", "80"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    assert!(!text(&html, "#vip-error").is_empty(), "{html}");
    assert!(
        html.contains("value=\"10.0.0\""),
        "kept what was typed: {html}"
    );

    let (status, location, html) = c
        .post_form(
            "/ui/elbs",
            &create("pdl.web_service.front", "10.99.0.10", "80"),
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{html}");
    assert_eq!(
        location.as_deref(),
        Some("/ui/elbs?done=created#elb-pdl.web_service.front")
    );
    // The same VIP:port under another name is refused, by field.
    let (status, _, html) = c
        .post_form(
            "/ui/elbs",
            &create("pdl.web_service.other", "10.99.0.10", "80"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    assert!(!text(&html, "#vip-error").is_empty(), "{html}");
    let (status, _, html) = c
        .post_form(
            "/ui/elbs",
            &create("pdl.web_service.front", "10.99.0.11", "80"),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{html}");
    assert!(
        text(&html, "#name-error").contains("already exists"),
        "{html}"
    );

    let (status, html) = c.get("/ui/elbs?done=created").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(text(&html, "#notice").contains("created"), "{html}");
    let elb = "section[data-elb='pdl.web_service.front']";
    assert_eq!(text(&html, &format!("{elb} .domain")), "front.web.ocean");
    assert_eq!(text(&html, &format!("{elb} .in-rotation")), "1");
    assert_eq!(
        texts(&html, &format!("{elb} table.vs caption")),
        vec!["10.99.0.10:80/tcp, rr: 1 in rotation"]
    );
    assert_eq!(
        text(&html, &format!("{elb} tr[data-task='{t1}'] td.rotation")),
        "in"
    );
    assert_eq!(
        text(&html, &format!("{elb} tr[data-task='{t2}'] td.rotation")),
        "out: not running"
    );
    assert_eq!(
        text(&html, &format!("{elb} tr[data-task='{t1}'] td.rs")),
        "127.0.0.1:31001"
    );
    // The page and the API agree.
    let api = c.api("/v1/elbs/pdl.web_service.front").await;
    assert_eq!(api["virtual_servers"][0]["in_rotation"], 1, "{api}");
    assert!(
        html.matches("class=\"elb-views\"").count() == 0,
        "no views, no list: {html}"
    );

    // DNS views (set through the API) are listed with their networks.
    let store = Store::new(Arc::new(InProcess::new(c.master.clone())));
    let yaml = format!(
        "name: pdl.web_service.lines\nidc: c3\nnetwork: external\nvips: [10.99.1.1, 10.99.1.2]\n\
         domain: lines.web.ocean\nlisteners: [{{port: 80, protocol: tcp, backend_job: {JOB}, backend_port_name: http}}]\n\
         views: [{{name: telecom, subnets: [58.32.0.0/11, 58.64.0.0/10], vips: [10.99.1.2]}}]\n"
    );
    let spec = ocean_elb::spec::parse(yaml.as_bytes()).expect("valid ELB");
    store.create(&spec).await.expect("created");
    let (_, html) = c.get("/ui/elbs").await;
    let lines = "section[data-elb='pdl.web_service.lines'] li[data-view='telecom']";
    assert_eq!(
        text(&html, &format!("{lines} .subnets")),
        "58.32.0.0/11, 58.64.0.0/10"
    );
    assert_eq!(text(&html, &format!("{lines} .view-vips")), "10.99.1.2");
    store
        .delete("pdl.web_service.lines")
        .await
        .expect("deleted");

    // Delete needs its confirm box, and the page's CSRF token.
    let path = "/ui/elbs/pdl.web_service.front/delete";
    let (status, _, html) = c.post_form(path, "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    assert!(text(&html, "#delete-error").contains("confirm"), "{html}");
    let (status, _, _) = c
        .post_form_as(
            path,
            "confirm=yes&csrf=00000000000000000000000000000000",
            Some(CSRF),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, location, _) = c.post_form(path, "confirm=yes").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/ui/elbs?done=deleted"));
    let (_, html) = c.get("/ui/elbs").await;
    assert!(html.contains("id=\"no-elbs\""), "{html}");
}
