//! The new-job form, the CSRF token on every form, and the job page's
//! additions (version diff, back-off reset, structured waiting reason),
//! the hosts map's data and the task page's log tail, against a real
//! master.

mod support;

use std::collections::HashMap;

use axum::http::StatusCode;
use serde_json::json;
use support::{attrs, form, task, text, texts, Cluster, CSRF};

const WEB: &str = "cop.acme_owt.inf_pdl.web_service.front_job.nginx_cluster.c3";
const NEW: &str = "cop.acme_owt.inf_pdl.web_service.form_job.made_cluster.c3";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_created_from_a_template_after_its_errors_are_shown_by_their_fields() {
    let c = Cluster::start().await;
    // A stored template beside the built-in ones, and one that is broken.
    for (key, value) in [
        (
            "cron-like",
            json!({"title": "Stored one", "spec": {"id": NEW, "cmd": "sleep 5", "instances": 1,
            "resources": {"cpus": 0.1, "mem": 32}}}),
        ),
        ("broken", json!({"spec": {}})),
    ] {
        c.master
            .service()
            .kv_put(
                ocean_ui::job_templates::NAMESPACE,
                key,
                value.to_string().into_bytes(),
                None,
            )
            .await
            .expect("kv put");
    }
    let (status, html) = c.get("/ui/new").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert_eq!(
        attrs(&html, "#templates li", "data-template"),
        ["web-service", "batch", "container", "cron-like"]
    );
    assert_eq!(
        attrs(&html, "[data-bad-template]", "data-bad-template"),
        ["broken"]
    );
    // Pre-filled from the first template; the form carries the token.
    assert_eq!(
        attrs(&html, "#cmd", "value"),
        ["python3 -m http.server $PORT0"]
    );
    assert_eq!(attrs(&html, "#ports", "value"), ["http"]);
    assert_eq!(attrs(&html, "#new-job input[name=csrf]", "value"), [CSRF]);
    let (_, html) = c.get("/ui/new?template=cron-like").await;
    assert_eq!(attrs(&html, "#id", "value"), [NEW]);
    assert_eq!(attrs(&html, "#cmd", "value"), ["sleep 5"]);

    let before = c.version();
    // Not a number: refused by the form itself, input kept.
    let bad = form(&[
        ("template", "cron-like"),
        ("id", NEW),
        ("cmd", "sleep 5"),
        ("instances", "1"),
        ("cpus", "0.1"),
        ("mem", "lots"),
        ("extra", ""),
    ]);
    let (status, _, html) = c.post_form("/ui/new", &bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text(&html, "#mem-error").contains("'lots'"), "{html}");
    assert_eq!(attrs(&html, "#mem", "aria-invalid"), ["true"]);
    assert_eq!(attrs(&html, "#mem", "aria-describedby"), ["mem-error"]);
    assert_eq!(attrs(&html, "#mem", "value"), ["lots"]);
    assert_eq!(attrs(&html, "#cmd", "value"), ["sleep 5"]);
    // Refused by ocean-spec's validation: each error by its input.
    let bad = form(&[
        ("id", "cop.acme_pdl.web"),
        ("cmd", "sleep 5"),
        ("instances", "1"),
        ("cpus", "0.1"),
        ("mem", "32"),
        ("ports", "http, http"),
        (
            "extra",
            r#"{"health_checks": [{"protocol": "http", "port_name": "nope"}]}"#,
        ),
    ]);
    let (status, _, html) = c.post_form("/ui/new", &bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!text(&html, "#id-error").is_empty(), "{html}");
    assert!(text(&html, "#ports-error").contains("ports[1]"), "{html}");
    assert!(
        text(&html, "#extra-error").contains("health_checks[0]"),
        "{html}"
    );
    assert_eq!(attrs(&html, "#id", "value"), ["cop.acme_pdl.web"]);
    assert_eq!(c.version(), before, "nothing was proposed");
    let (status, _) = c.get(&format!("/v1/jobs/{NEW}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A valid submission creates the job and goes to its page.
    let good = form(&[
        ("id", NEW),
        ("cmd", "sleep 5"),
        ("instances", "2"),
        ("cpus", "0.1"),
        ("mem", "32"),
        ("env", "A=1\nB=two"),
        ("extra", ""),
    ]);
    let (status, location, _) = c.post_form("/ui/new", &good).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let location = location.expect("location");
    assert!(
        location.starts_with(&format!("/ui/jobs/{NEW}?v=")),
        "{location}"
    );
    let job = c.api(&format!("/v1/jobs/{NEW}")).await;
    assert_eq!(job["spec"]["instances"], 2);
    assert_eq!(job["spec"]["env"]["B"], "two");
    assert_eq!(job["spec"]["resources"]["mem"], 32);
    let (_, html) = c.get(&location).await;
    assert_eq!(text(&html, "h1"), NEW);
    // The same id again: the form does not overwrite a job.
    let (status, _, html) = c.post_form("/ui/new", &good).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        text(&html, "#id-error").contains("exists already"),
        "{html}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_without_the_browsers_token_are_refused_and_change_nothing() {
    let c = Cluster::start().await;
    c.add_job(json!({"id": WEB, "cmd": "x", "instances": 1}))
        .await;
    // A first visit sets the cookie.
    let req = axum::http::Request::get("/ui/new")
        .body(axum::body::Body::empty())
        .expect("req");
    let resp = tower::ServiceExt::oneshot(c.app.clone(), req)
        .await
        .expect("infallible");
    let cookie = resp.headers()[axum::http::header::SET_COOKIE]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(
        cookie.starts_with("ocean_csrf=") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let before = c.version();
    for (path, body) in [
        (format!("/ui/jobs/{WEB}/scale"), "instances=3".to_string()),
        (format!("/ui/jobs/{WEB}/stop"), "confirm=yes".to_string()),
        (format!("/ui/jobs/{WEB}/reset"), String::new()),
        (
            "/ui/hosts/agent-1/status".to_string(),
            "status=draining&confirm=yes".to_string(),
        ),
        (
            "/ui/new".to_string(),
            format!("id={NEW}&cmd=x&instances=1&cpus=1&mem=1"),
        ),
    ] {
        // No cookie, a token in the form.
        let (status, _, html) = c
            .post_form_as(&path, &format!("{body}&csrf={CSRF}"), None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {html}");
        // A cookie, another token in the form.
        let (status, _, _) = c
            .post_form_as(&path, &format!("{body}&csrf=00"), Some(CSRF))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        // A cookie, no token.
        let (status, _, _) = c.post_form_as(&path, &body, Some(CSRF)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(c.version(), before, "no refused form committed anything");
    assert_eq!(
        c.api(&format!("/v1/jobs/{WEB}")).await["spec"]["instances"],
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_page_diffs_versions_resets_back_off_and_explains_waiting() {
    let c = Cluster::start().await;
    c.add_agent("agent-1", "host-a", 4.0, 8192).await;
    c.add_job(
        json!({"id": WEB, "cmd": "nginx", "instances": 1, "resources": {"cpus": 0.25, "mem": 64}}),
    )
    .await;
    c.add_job(json!({"id": WEB, "cmd": "nginx -g daemon", "instances": 1, "resources": {"cpus": 0.25, "mem": 64}})).await;
    // As the reconciler writes it: its count, then the scheduler's reason.
    let waits = "1 task(s) waiting: 0 of 3 agents fit: 2 insufficient cpus, 1 hostname:UNIQUE";
    let t = format!("{WEB}.t1");
    c.place(
        vec![task(&t, WEB, "agent-1", "host-a", 31001)],
        HashMap::from([(WEB.to_string(), waits.to_string())]),
    )
    .await;
    c.report(&t, "agent-1", "FAILED").await;

    let versions = c.api(&format!("/v1/jobs/{WEB}/versions")).await;
    let kept: Vec<u64> = versions["versions"]
        .as_array()
        .expect("v")
        .iter()
        .filter_map(|v| v["spec_version"].as_u64())
        .collect();
    assert_eq!(kept.len(), 2);
    let (new, old) = (kept[0], kept[1]);
    let (status, html) = c
        .get(&format!("/ui/jobs/{WEB}?diff_from={old}&diff_to={new}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert_eq!(
        texts(&html, "#diff [data-kind=removed]"),
        ["- \"cmd\": \"nginx\","]
    );
    assert_eq!(
        texts(&html, "#diff [data-kind=added]"),
        ["+ \"cmd\": \"nginx -g daemon\","]
    );
    let (_, html) = c
        .get(&format!("/ui/jobs/{WEB}?diff_from=99&diff_to={new}"))
        .await;
    assert!(text(&html, "#diff_from-error").contains("99"), "{html}");

    // The waiting text the API has, in parts.
    let job = c.api(&format!("/v1/jobs/{WEB}")).await;
    assert_eq!(job["waiting"], waits);
    let (_, html) = c.get(&format!("/ui/jobs/{WEB}")).await;
    assert_eq!(
        (text(&html, "#hosts-fit"), text(&html, "#hosts-total")),
        ("0".into(), "3".into())
    );
    assert_eq!(
        texts(&html, "#blocked tbody .kind"),
        ["resource", "constraint"]
    );
    assert_eq!(texts(&html, "#blocked tbody .hosts"), ["2", "1"]);
    // live.js fetches that part alone when the waiting text changes: the
    // same table, at the address the part names.
    let part = attrs(&html, "#waiting-detail", "data-fragment");
    assert_eq!(part, [format!("/ui/jobs/{WEB}/waiting")]);
    let (status, fragment) = c.get(&part[0]).await;
    assert_eq!(status, StatusCode::OK, "{fragment}");
    assert_eq!(texts(&fragment, "#blocked tbody .hosts"), ["2", "1"]);
    assert_eq!(text(&fragment, "#hosts-total"), "3");

    // The failure set a back-off; the reset button clears it.
    assert_eq!(job["backoff"]["failures"], 1);
    assert_eq!(
        attrs(&html, "#reset-form", "action"),
        [format!("/ui/jobs/{WEB}/reset")]
    );
    let (status, location, _) = c.post_form(&format!("/ui/jobs/{WEB}/reset"), "").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(c.api(&format!("/v1/jobs/{WEB}")).await["backoff"].is_null());
    let (_, html) = c.get(&location.expect("location")).await;
    assert!(attrs(&html, "#reset-form", "action").is_empty());

    // Placed in full: nothing waits, and the part is an empty placeholder
    // live.js can fill in when the job waits again.
    c.place(
        vec![task(&format!("{WEB}.t2"), WEB, "agent-1", "host-a", 31002)],
        HashMap::from([(WEB.to_string(), String::new())]),
    )
    .await;
    let (_, fragment) = c.get(&part[0]).await;
    assert_eq!(
        attrs(&fragment, "#waiting-detail", "hidden").len(),
        1,
        "{fragment}"
    );
    assert!(texts(&fragment, "#blocked tbody .hosts").is_empty());
    let (status, _) = c.get("/ui/jobs/no.such.job/waiting").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hosts_map_and_the_log_tail_have_what_their_scripts_need() {
    let c = Cluster::start().await;
    let (status, body) = c.get("/ui/hosts/map.json").await;
    assert_eq!(status, StatusCode::OK);
    let map: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(map["s"], "");
    c.add_agent("agent-1", "host-a", 4.0, 8192).await;
    c.add_agent("agent-2", "host-b", 4.0, 8192).await;
    c.master
        .service()
        .set_agent_status("agent-2", "problem", "disk")
        .await
        .expect("status");
    let map: serde_json::Value =
        serde_json::from_str(&c.get("/ui/hosts/map.json").await.1).expect("json");
    let api = c.api("/v1/agents").await;
    let statuses: Vec<&str> = map["statuses"]
        .as_array()
        .expect("s")
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    let digits: Vec<&str> = map["s"]
        .as_str()
        .expect("s")
        .bytes()
        .map(|d| statuses[(d - b'0') as usize])
        .collect();
    let want: Vec<&str> = api["agents"]
        .as_array()
        .expect("a")
        .iter()
        .filter_map(|a| a["status"].as_str())
        .collect();
    assert_eq!(digits, want);
    assert_eq!(
        ocean_ui::pages::hosts_map::decode_names(map["names"].as_str().expect("names")),
        ["host-a", "host-b"]
    );
    let (_, html) = c.get("/ui/hosts").await;
    assert_eq!(
        attrs(&html, "canvas#hosts-map", "data-src"),
        ["/ui/hosts/map.json"]
    );
    assert_eq!(text(&html, "[data-status-count=online]"), "1");
    assert_eq!(text(&html, "[data-status-count=problem]"), "1");
    assert_eq!(attrs(&html, "script", "src"), ["/ui/assets/hosts-map.js"]);

    c.add_job(json!({"id": WEB, "cmd": "x", "instances": 1}))
        .await;
    let t = format!("{WEB}.t1");
    c.place(
        vec![task(&t, WEB, "agent-1", "host-a", 31001)],
        HashMap::new(),
    )
    .await;
    let (_, html) = c.get(&format!("/ui/tasks/{t}")).await;
    assert_eq!(
        attrs(&html, "[data-log-task]", "data-log-task"),
        [t.as_str()]
    );
    assert_eq!(attrs(&html, "script", "src"), ["/ui/assets/log-tail.js"]);
    let (status, js) = c.get("/ui/assets/log-tail.js").await;
    assert_eq!(status, StatusCode::OK);
    assert!(js.contains("follow=true"));
}
