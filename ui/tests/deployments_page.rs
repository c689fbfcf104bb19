//! The job page's deployments against a real master: a spec change shows
//! its deployment as `GET /v1/deployments/{id}` says it; pause, resume and
//! rollback through the page's forms (refused without the confirmation
//! box, nothing written), each landing in the state the API then reports.

mod support;

use std::collections::HashMap;

use axum::http::StatusCode;
use serde_json::json;
use support::{attrs, task, text, texts, Cluster};

const JOB: &str = "cop.acme_owt.inf_pdl.web_service.front_job.api_cluster.c3";

fn spec(cmd: &str) -> serde_json::Value {
    json!({"id": JOB, "cmd": cmd, "instances": 2, "resources": {"cpus": 0.1, "mem": 16},
        "upgrade_strategy": {"max_surge": 1, "max_unavailable": 0}})
}

fn page_path() -> String {
    format!("/ui/jobs/{JOB}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_show_progress_and_take_pause_resume_and_rollback() {
    let c = Cluster::start().await;
    c.add_agent("agent-1", "host-a", 4.0, 8192).await;
    c.add_job(spec("sleep 100")).await;
    let t1 = format!("{JOB}.t1");
    let t2 = format!("{JOB}.t2");
    c.place(
        vec![
            task(&t1, JOB, "agent-1", "host-a", 31001),
            task(&t2, JOB, "agent-1", "host-a", 31002),
        ],
        HashMap::new(),
    )
    .await;
    for t in [&t1, &t2] {
        c.report(t, "agent-1", "RUNNING").await;
    }
    let (status, html) = c.get(&page_path()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"no-deployments\""), "{html}");
    // Only one spec version: nothing to roll back to.
    assert!(texts(&html, "#rollback-form").is_empty());

    // A new command replaces tasks: a deployment from 1 to 2.
    c.add_job(spec("sleep 200")).await;
    let list = c.api(&format!("/v1/deployments?job={JOB}")).await;
    let dep = list["deployments"][0]["id"]
        .as_str()
        .expect("a deployment")
        .to_string();
    let (_, html) = c.get(&page_path()).await;
    assert_eq!(
        attrs(&html, "#deployment-current", "data-deployment"),
        std::slice::from_ref(&dep)
    );
    let api = c.api(&format!("/v1/deployments/{dep}")).await;
    assert_eq!(
        text(&html, "#deployment-state"),
        api["state"].as_str().unwrap()
    );
    assert!(text(&html, "#deployment-current h3").contains("1 → 2"));
    // Each task the API lists is a row with its version.
    let api_tasks: Vec<String> = api["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    let mut rows = attrs(&html, "#deployment-tasks-table tbody tr", "data-task");
    rows.sort();
    let mut want = api_tasks.clone();
    want.sort();
    assert_eq!(rows, want);
    // The page's buttons are the actions the API says apply.
    let buttons = attrs(&html, "#deployment-actions button", "value");
    let actions: Vec<String> = api["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert_eq!(buttons, actions);

    // Pause: refused without the box, then done.
    let action = format!("{}/deployments/action", page_path());
    let form = |a: &str, confirm: bool| {
        format!(
            "deployment={}&action={a}{}",
            dep.replace('@', "%40"),
            if confirm { "&confirm=yes" } else { "" }
        )
    };
    let before = c.version();
    let (status, _, html) = c.post_form(&action, &form("pause", false)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text(&html, "#deployment_confirm-error").contains("tick the box"));
    assert_eq!(c.version(), before, "a refused form writes nothing");
    let (status, location, _) = c.post_form(&action, &form("pause", true)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.unwrap().starts_with(&page_path()));
    let api = c.api(&format!("/v1/deployments/{dep}")).await;
    assert_eq!(api["state"], json!("paused"));
    let (_, html) = c.get(&page_path()).await;
    assert!(text(&html, "#deployment-holding").starts_with("paused"));
    assert!(attrs(&html, "#deployment-actions button", "value").contains(&"resume".to_string()));
    // The fragment live.js fetches is the same part.
    let (status, part) = c.get(&format!("{}/deployments", page_path())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text(&part, "#deployment-state"), "paused");

    // Pausing again no longer applies: the reason is shown by the buttons.
    let (status, _, html) = c.post_form(&action, &form("pause", true)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text(&html, "#action-error").contains("paused"), "{html}");

    let (status, _, _) = c.post_form(&action, &form("resume", true)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let api = c.api(&format!("/v1/deployments/{dep}")).await;
    assert_ne!(api["state"], json!("paused"));

    // Roll back: the form offers version 1 (the previous) by default.
    let (_, html) = c.get(&page_path()).await;
    assert_eq!(attrs(&html, "#to_version option[selected]", "value"), ["1"]);
    let rollback = format!("{}/rollback", page_path());
    let before = c.version();
    let (status, _, html) = c.post_form(&rollback, "to_version=1").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text(&html, "#rollback_confirm-error").contains("tick the box"));
    assert_eq!(c.version(), before);
    let (status, _, html) = c.post_form(&rollback, "to_version=9&confirm=yes").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        text(&html, "#to_version-error").contains("not kept"),
        "{html}"
    );
    let (status, _, _) = c.post_form(&rollback, "to_version=1&confirm=yes").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let job = c.api(&format!("/v1/jobs/{JOB}")).await;
    assert_eq!(job["spec"]["cmd"], json!("sleep 100"));
    let list = c.api(&format!("/v1/deployments?job={JOB}")).await;
    assert_eq!(list["deployments"][0]["rollback_to"], json!(1));
    let (_, html) = c.get(&page_path()).await;
    assert!(text(&html, "#deployment-current h3").contains("(rollback)"));
    assert_eq!(
        attrs(&html, "#deployments-earlier tbody tr", "data-deployment"),
        [dep]
    );
}
