//! Every page of the dashboard against a real master: rendered for an
//! empty and a populated cluster, parsed, and checked against what the
//! REST API says; forms with bad input show the field's error and change
//! nothing; the job page's live stream resumes where the page left off.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use axum::http::StatusCode;
use futures::StreamExt;
use serde_json::json;
use support::{attrs, task, text, texts, Cluster};

const WEB: &str = "cop.acme_owt.inf_pdl.web_service.front_job.nginx_cluster.c3";
const BIG: &str = "cop.acme_owt.inf_pdl.webhook_service.hooks_job.big_cluster.c3";
const WAITS_FOR: &str = "no agent has 64 free cpus (2 agents checked)";

/// Two agents (one marked problem), a job with two running tasks and one
/// that cannot be placed.
async fn populated() -> Cluster {
    let c = Cluster::start().await;
    c.add_agent("agent-1", "host-a", 4.0, 8192).await;
    c.add_agent("agent-2", "host-b", 4.0, 8192).await;
    c.master
        .service()
        .set_agent_status("agent-2", "problem", "disk errors")
        .await
        .expect("status");
    c.add_job(json!({"id": WEB, "cmd": "nginx", "instances": 2,
        "resources": {"cpus": 0.25, "mem": 64}, "ports": [{"name": "http"}]}))
        .await;
    c.add_job(json!({"id": BIG, "cmd": "hooks", "instances": 3,
        "resources": {"cpus": 64, "mem": 64}}))
        .await;
    let t1 = format!("{WEB}.t1");
    let t2 = format!("{WEB}.t2");
    c.place(
        vec![
            task(&t1, WEB, "agent-1", "host-a", 31001),
            task(&t2, WEB, "agent-1", "host-a", 31002),
        ],
        HashMap::from([(BIG.to_string(), WAITS_FOR.to_string())]),
    )
    .await;
    for t in [&t1, &t2] {
        c.report(t, "agent-1", "RUNNING").await;
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_renders_for_an_empty_cluster() {
    let c = Cluster::start().await;
    let (status, html) = c.get("/ui/").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert_eq!(texts(&html, "#masters tbody tr td:first-child"), ["1"]);
    assert!(text(&html, "#masters tbody tr").contains("leader"));
    assert_eq!(text(&html, "#agents-by-status dd[data-status=online]"), "0");
    assert_eq!(text(&html, "#jobs-by-state dd[data-state=running]"), "0");
    assert!(html.contains("No task waits to be placed."));
    assert_eq!(
        attrs(&html, "link[rel=stylesheet]", "href"),
        ["/ui/assets/style.css"]
    );

    let (status, html) = c.get("/ui/jobs").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text(&html, "#jobs-count"), "0 jobs");
    assert!(texts(&html, "#jobs tbody tr").is_empty());

    let (status, html) = c.get("/ui/hosts").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text(&html, "#hosts-count"), "0 hosts");

    let (status, html) = c.get(&format!("/ui/jobs/{WEB}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(text(&html, ".error").contains(WEB), "{html}");
    let (status, _) = c.get("/ui/tasks/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, css) = c.get("/ui/assets/style.css").await;
    assert_eq!(status, StatusCode::OK);
    assert!(css.contains("--fg"));
    let (status, js) = c.get("/ui/assets/live.js").await;
    assert_eq!(status, StatusCode::OK);
    assert!(js.contains("EventSource"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_counts_what_the_api_says() {
    let c = populated().await;
    let (status, html) = c.get("/ui/").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let agents = c.api("/v1/agents").await;
    assert_eq!(agents["agents"].as_array().map(Vec::len), Some(2));
    assert_eq!(text(&html, "#agents-by-status dd[data-status=online]"), "1");
    assert_eq!(
        text(&html, "#agents-by-status dd[data-status=problem]"),
        "1"
    );
    // 8 cores registered, 2 tasks of 0.25 allocated.
    let cpu = "#capacity tr[data-resource=CPU]";
    assert_eq!(text(&html, &format!("{cpu} .total")), "8.0 cores");
    assert_eq!(text(&html, &format!("{cpu} .allocated")), "0.5 cores");
    assert_eq!(text(&html, &format!("{cpu} .free")), "7.5 cores");
    let mem = "#capacity tr[data-resource=Memory]";
    assert_eq!(text(&html, &format!("{mem} .total")), "16384 MiB");
    assert_eq!(text(&html, &format!("{mem} .allocated")), "128 MiB");
    assert_eq!(text(&html, "#jobs-by-state dd[data-state=running]"), "1");
    assert_eq!(text(&html, "#jobs-by-state dd[data-state=waiting]"), "1");
    let big = c.api(&format!("/v1/jobs/{BIG}")).await;
    assert_eq!(big["waiting"], WAITS_FOR);
    assert_eq!(texts(&html, "#waiting .reason"), [WAITS_FOR]);
    assert_eq!(
        texts(&html, "#waiting tbody tr td:nth-child(3)"),
        ["3"],
        "three instances of the big job wait"
    );
    let recent = texts(&html, "#recent tbody tr td:nth-child(3)");
    assert!(recent.contains(&format!("{WEB}.t2")), "{recent:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jobs_list_filters_on_tree_nodes_sorts_and_pages_on_the_server() {
    let c = populated().await;
    let (_, html) = c.get("/ui/jobs").await;
    assert_eq!(attrs(&html, "#jobs tbody tr", "data-job"), [WEB, BIG]);
    assert_eq!(
        text(&html, &format!("#jobs tr[data-job='{WEB}'] .running")),
        "100% 2/2"
    );
    // `pdl.web` is the web product line, not `pdl.webhook`: as the API.
    let api = c.api("/v1/jobs?prefix=pdl.web").await;
    assert_eq!(api["jobs"].as_array().map(Vec::len), Some(1));
    let (_, html) = c.get("/ui/jobs?prefix=pdl.web").await;
    assert_eq!(attrs(&html, "#jobs tbody tr", "data-job"), [WEB]);
    let (_, html) = c.get("/ui/jobs?prefix=pdl.we").await;
    assert_eq!(text(&html, "#jobs-count"), "0 jobs");
    // Newest change first.
    let (_, html) = c.get("/ui/jobs?sort=updated").await;
    assert_eq!(attrs(&html, "#jobs tbody tr", "data-job"), [BIG, WEB]);
    // Bad query fields are named next to their inputs.
    let (status, html) = c.get("/ui/jobs?prefix=zz.1&sort=size&page=x").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        text(&html, "#prefix-error").contains("unknown tag"),
        "{html}"
    );
    assert!(text(&html, "#sort-error").contains("'size' is not one of id, updated, state"));
    assert!(text(&html, "#page-error").contains("'x'"));
    assert_eq!(attrs(&html, "#prefix", "aria-invalid"), ["true"]);

    // 52 jobs: two pages of 50.
    for i in 0..50 {
        c.add_job(
            json!({"id": format!("cop.acme_owt.inf_pdl.batch_service.s_job.j{i:02}_cluster.c3"),
            "cmd": "true", "instances": 0}),
        )
        .await;
    }
    let (_, html) = c.get("/ui/jobs?page=2").await;
    assert_eq!(text(&html, "#jobs-count"), "52 jobs, showing 51–52");
    assert_eq!(attrs(&html, "#jobs tbody tr", "data-job").len(), 2);
    assert_eq!(
        attrs(&html, "a[rel=prev]", "href"),
        ["/ui/jobs?sort=id&page=1"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_page_shows_its_spec_versions_and_tasks_as_the_api_does() {
    let c = populated().await;
    c.add_job(json!({"id": WEB, "cmd": "nginx -g daemon", "instances": 2,
        "resources": {"cpus": 0.25, "mem": 64}, "ports": [{"name": "http"}]}))
        .await;
    let (status, html) = c.get(&format!("/ui/jobs/{WEB}")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert_eq!(text(&html, "h1"), WEB);
    let api = c.api(&format!("/v1/tasks?job={WEB}")).await;
    let tasks = api["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 2);
    for t in tasks {
        let row = format!("#tasks tr[data-task='{}']", t["id"].as_str().unwrap_or(""));
        assert_eq!(text(&html, &format!("{row} td:nth-child(2)")), t["state"]);
        assert_eq!(text(&html, &format!("{row} td:nth-child(3)")), t["host"]);
        let port = t["ports"][0]["port"].as_u64().unwrap_or(0);
        assert_eq!(
            text(&html, &format!("{row} td:nth-child(4)")),
            format!("http:{port}")
        );
    }
    let versions = c.api(&format!("/v1/jobs/{WEB}/versions")).await;
    let want: Vec<String> = versions["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| v["spec_version"].to_string())
        .collect();
    assert_eq!(want.len(), 2);
    assert_eq!(
        attrs(&html, "#versions tbody tr", "data-spec-version"),
        want
    );
    assert!(text(&html, "#spec").contains("nginx -g daemon"));
    assert_eq!(text(&html, "#job-instances"), "2");
    // What live.js needs: the view and the version the page reflects.
    assert_eq!(attrs(&html, "main", "data-live-node"), [WEB]);
    assert_eq!(attrs(&html, "main", "data-live-kinds"), ["job,task"]);
    assert_eq!(attrs(&html, "script", "src"), ["/ui/assets/live.js"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_and_task_pages_show_agents_and_tasks_as_the_api_does() {
    let c = populated().await;
    let (status, html) = c.get("/ui/hosts").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert_eq!(
        attrs(&html, "#hosts tbody tr", "data-agent"),
        ["agent-1", "agent-2"]
    );
    let a2 = c.api("/v1/agents/agent-2").await;
    assert_eq!(a2["status"], "problem");
    assert!(text(&html, "tr[data-agent=agent-2] .status").starts_with("problem disk errors"));
    assert_eq!(text(&html, "tr[data-agent=agent-1] .tasks"), "2");
    assert_eq!(text(&html, "tr[data-agent=agent-1] .tags"), "idc.c3");
    assert_eq!(text(&html, "tr[data-agent=agent-1] .cpu"), "13% 0.5/4.0");

    let id = format!("{WEB}.t1");
    let (status, html) = c.get(&format!("/ui/tasks/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let api = c.api(&format!("/v1/tasks/{id}")).await;
    assert_eq!(text(&html, "#task-state"), api["state"]);
    assert!(text(&html, "#task-host").starts_with("host-a"));
    assert_eq!(text(&html, "#task-ports"), "http:31001");
    // The agent record has no log server: the page says so and still renders.
    assert!(text(&html, "#log-stdout").starts_with("Log unavailable"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_with_bad_input_show_the_field_error_and_change_nothing() {
    let c = populated().await;
    let job = format!("/ui/jobs/{WEB}");
    let before = c.version();
    for (form, field) in [
        ("instances=two", "#instances-error"),
        ("instances=-1", "#instances-error"),
        ("instances=100000000", "#instances-error"),
    ] {
        let (status, _, html) = c.post_form(&format!("{job}/scale"), form).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{form}");
        assert!(!text(&html, field).is_empty(), "{form}: {html}");
        assert_eq!(attrs(&html, "#instances", "aria-invalid"), ["true"]);
        // The user's input stays in the field.
        assert_eq!(
            attrs(&html, "#instances", "value"),
            [form.trim_start_matches("instances=")]
        );
    }
    let (status, _, html) = c.post_form(&format!("{job}/stop"), "").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text(&html, "#confirm-error").contains("confirm"));
    let (status, _, html) = c
        .post_form(
            "/ui/hosts/agent-1/status",
            "status=gone&message=&confirm=yes",
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text(&html, "#status-error-agent-1").contains("'gone' is not one of"));
    let (status, _, html) = c
        .post_form("/ui/hosts/agent-1/status", "status=draining&message=")
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!text(&html, "#confirm-error-agent-1").is_empty());
    assert_eq!(c.version(), before, "a refused form committed nothing");
    assert_eq!(
        c.api(&format!("/v1/jobs/{WEB}")).await["spec"]["instances"],
        2
    );
    assert_eq!(c.api("/v1/agents/agent-1").await["status"], "online");

    // Good input is committed and the page shows it at its version.
    let (status, location, _) = c.post_form(&format!("{job}/scale"), "instances=3").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let location = location.expect("location");
    assert!(location.starts_with(&format!("{job}?v=")), "{location}");
    let (_, html) = c.get(&location).await;
    assert_eq!(text(&html, "#job-instances"), "3");
    assert!(text(&html, "footer").contains("your change is committed"));
    let (status, location, _) = c
        .post_form(
            "/ui/hosts/agent-1/status",
            "status=draining&message=kernel+update&confirm=yes",
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(c.api("/v1/agents/agent-1").await["status"], "draining");
    let (_, html) = c.get(&location.expect("location")).await;
    assert!(text(&html, "tr[data-agent=agent-1] .status").starts_with("draining kernel update"));
    let (status, _, _) = c.post_form(&format!("{job}/stop"), "confirm=yes").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _) = c.get(&format!("/v1/jobs/{WEB}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// What live.js does, without a browser: open the stream its page names
/// and see a task turn RUNNING after the page was rendered, with nothing
/// from before it and no snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_pages_stream_resumes_after_the_rendered_version() {
    let c = populated().await;
    let t3 = format!("{WEB}.t3");
    c.place(
        vec![task(&t3, WEB, "agent-1", "host-a", 31003)],
        HashMap::new(),
    )
    .await;
    let (_, html) = c.get(&format!("/ui/jobs/{WEB}")).await;
    assert_eq!(
        text(&html, &format!("tr[data-task='{t3}'] td:nth-child(2)")),
        "STAGING"
    );
    let from: u64 = attrs(&html, "main", "data-live-from")[0]
        .parse()
        .expect("version");
    assert_eq!(from, c.version());
    c.report(&t3, "agent-1", "RUNNING").await;

    let url = format!("/v1/events?from={from}&node={WEB}&kinds=job,task");
    let req = axum::http::Request::get(&url)
        .body(axum::body::Body::empty())
        .expect("request");
    let resp = tower::ServiceExt::oneshot(c.app.clone(), req)
        .await
        .expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body().into_data_stream();
    let mut seen = String::new();
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = body.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
            if seen.contains("\"state\":\"RUNNING\"") && seen.contains(&t3) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(got, Ok(true), "stream so far: {seen}");
    assert!(!seen.contains("event: snapshot"), "{seen}");
    assert!(seen.starts_with("event: task_put"), "{seen}");
    assert!(seen.contains(&format!("id: {}", from + 1)), "{seen}");
}
