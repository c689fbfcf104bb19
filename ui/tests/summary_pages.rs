//! The overview and the jobs list read the service's summary: what they
//! show is what `GET /v1/summary` and `GET /v1/summary/jobs` answer, and
//! those equal a count over every task the REST API lists.

mod support;

use std::collections::HashMap;

use axum::http::StatusCode;
use serde_json::json;
use support::{task, text, texts, Cluster};

fn job_id(n: usize) -> String {
    format!(
        "cop.acme_owt.inf_pdl.p{}_service.s_job.j{n:02}_cluster.c3",
        n % 2
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overview_and_jobs_list_match_a_recount_of_the_api() {
    let c = Cluster::start().await;
    c.add_agent("agent-1", "host-a", 8.0, 16384).await;
    for n in 0..60 {
        c.add_job(
            json!({"id": job_id(n), "cmd": "sleep 9", "instances": n % 3,
            "resources": {"cpus": 0.1, "mem": 16}}),
        )
        .await;
    }
    // Job 0..9 get a running task each; 10 and 11 wait.
    let mut placed = Vec::new();
    for n in 0..10 {
        let id = format!("{}.t1", job_id(n));
        placed.push(task(&id, &job_id(n), "agent-1", "host-a", 31000 + n as u32));
    }
    c.place(
        placed,
        HashMap::from([
            (job_id(10), "insufficient mem".to_string()),
            (job_id(11), "insufficient mem".to_string()),
        ]),
    )
    .await;
    for n in 0..10 {
        c.report(&format!("{}.t1", job_id(n)), "agent-1", "RUNNING")
            .await;
    }

    let s = c.api("/v1/summary").await;
    let tasks = c.api("/v1/tasks").await;
    let live: Vec<&serde_json::Value> = tasks["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .filter(|t| ["STAGING", "STARTING", "RUNNING"].contains(&t["state"].as_str().unwrap()))
        .collect();
    assert_eq!(s["tasks"]["live"], json!(live.len()));
    assert_eq!(s["jobs"], json!(60));
    let mem: u64 = live
        .iter()
        .map(|t| t["resources"]["mem"].as_u64().unwrap())
        .sum();
    assert_eq!(s["capacity"][1]["allocated"], json!(mem as f64));
    assert_eq!(s["capacity"][1]["used"], json!(null));
    assert_eq!(s["waiting"][0]["reason"], json!("insufficient mem"));
    assert_eq!(s["waiting"][0]["jobs"], json!(2));

    let (status, html) = c.get("/ui/").await;
    assert_eq!(status, StatusCode::OK);
    for pair in s["jobs_by_state"].as_array().unwrap() {
        let (state, n) = (pair[0].as_str().unwrap(), pair[1].as_u64().unwrap());
        assert_eq!(
            text(&html, &format!("#jobs-by-state dd[data-state={state}]")),
            n.to_string(),
            "{state}"
        );
    }
    assert_eq!(
        texts(&html, "#capacity td.used"),
        vec!["not yet reported"; 3]
    );
    assert_eq!(texts(&html, "#waiting td.reason"), ["insufficient mem"]);

    // Page 2 of the list by id is jobs 50..59, as the REST page says.
    let page = c.api("/v1/summary/jobs?page=2&per_page=50").await;
    assert_eq!(page["total"], json!(60));
    let ids: Vec<String> = page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect();
    let mut want: Vec<String> = (0..60).map(job_id).collect();
    want.sort();
    assert_eq!(ids, want[50..]);
    let (status, html) = c.get("/ui/jobs?page=2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(texts(&html, "#jobs tbody tr td:first-child a"), ids);
    // Newest change first: the round recorded why 10 and 11 wait (one
    // version; ties newest id first); task reports do not change jobs.
    let page = c.api("/v1/summary/jobs?sort=updated&per_page=3").await;
    let ids: Vec<&str> = page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [job_id(11), job_id(10), job_id(59)]);
    let page = c.api("/v1/summary/jobs?sort=state&per_page=60").await;
    let running: Vec<&serde_json::Value> = page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["state"] == "running")
        .collect();
    assert!(running.iter().all(|j| j["tasks"]["running"] == json!(1)));
    let (status, body) = c.get("/v1/summary/jobs?sort=size").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("sort"), "{body}");
}
