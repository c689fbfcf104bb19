//! The dashboard in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`, driven over WebDriver; see `ocean_tests::browser`)
//! against a real `ocean dev`:
//!
//! - the job page, left open, shows the job's tasks turn RUNNING without
//!   a reload, through `live.js` and the SSE stream it follows;
//! - every page passes axe-core with no violation of impact serious or
//!   critical, and is kept as a screenshot (`ui-screenshots/` under the
//!   target dir);
//! - the flows an operator follows: scale from the job page, see a job
//!   turn waiting (and why) when no agent can hold it, drain a host from
//!   the hosts page with its confirmation box.
//!
//! Without Chromium (or axe-core, which `scripts/axe.sh` fetches) the
//! checks are skipped on a developer's machine and fail in CI (`CI=true`).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use fantoccini::Locator;
use futures::FutureExt;
use ocean_tests::browser::{self, eventually, Browser, Dev};
use serde_json::{json, Value};

const JOB: &str = "cop.acme_owt.inf_pdl.ui_service.browser_job.sleeper_cluster.dev";
const BIG: &str = "cop.acme_owt.inf_pdl.ui_service.browser_job.huge_cluster.dev";

type Panic = Box<dyn std::any::Any + Send>;

/// Runs `checks` for at most `within`; their panic, if any.
async fn bounded<F: Future<Output = ()>>(within: Duration, checks: F) -> Option<Panic> {
    match tokio::time::timeout(within, AssertUnwindSafe(checks).catch_unwind()).await {
        Ok(Ok(())) => None,
        Ok(Err(panic)) => Some(panic),
        Err(_) => Some(Box::new(format!(
            "the browser checks did not finish within {within:?}"
        ))),
    }
}

/// Deletes the jobs and closes the browser whether or not the checks
/// passed; on failure prints the tail of `ocean dev`'s log and fails with
/// the checks' panic.
async fn finish(dev: &Dev, b: Browser, failed: Option<Panic>) {
    for job in [JOB, BIG] {
        let _ = dev.api.delete(&format!("/v1/jobs/{job}")).await;
    }
    b.close().await;
    if let Some(panic) = failed {
        eprintln!("ocean dev's log, last lines first:\n{}", dev.log_tail(40));
        std::panic::resume_unwind(panic);
    }
}

async fn js(b: &Browser, script: &str) -> Value {
    b.js(script).await.expect("script")
}

async fn put_job(dev: &Dev, id: &str, instances: u32, mem: u64) {
    let spec = json!({"id": id, "cmd": "sleep 120", "instances": instances,
        "resources": {"cpus": 0.01, "mem": mem}});
    let r = dev.api.post("/v1/jobs", &spec).await.expect("put job");
    assert!(r.is_success(), "{r:?}");
}

async fn wait_live(b: &Browser) {
    eventually(Duration::from_secs(10), "live.js connects", || async {
        js(
            b,
            "return document.getElementById('live-status').textContent",
        )
        .await
        .as_str()
        .is_some_and(|s| s.starts_with("Live"))
    })
    .await;
}

const RUNNING_ROWS: &str = "return Array.from(document.querySelectorAll('#tasks-body tr'))\
     .filter(r => r.cells[1].textContent.startsWith('RUNNING')).length";

async fn wait_running_rows(dev: &Dev, b: &Browser, job: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while js(b, RUNNING_ROWS).await.as_u64() != Some(n) {
        if Instant::now() > deadline {
            let page = js(b, "return document.getElementById('live-status').textContent \
                 + ' | hidden=' + document.hidden + ' | ' + document.getElementById('tasks-body').innerHTML")
                .await;
            let tasks = dev
                .api
                .get(&format!("/v1/tasks?job={job}"))
                .await
                .map(|r| r.body);
            panic!("{n} RUNNING rows did not appear within 30 s; page: {page}; API: {tasks:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn running_ids(dev: &Dev, job: &str) -> Vec<String> {
    let listed = dev
        .api
        .get(&format!("/v1/tasks?job={job}&state=RUNNING"))
        .await
        .expect("tasks");
    let mut ids: Vec<String> = listed.body["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["id"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

async fn job_facts(b: &Browser) -> Value {
    js(
        b,
        "return [document.getElementById('job-running').textContent, \
         document.querySelector('#job-state .state').textContent]",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_page_shows_its_tasks_turn_running_without_a_reload() {
    if !browser::available() {
        return;
    }
    let dev = Dev::start().await.expect("ocean dev");
    put_job(&dev, JOB, 0, 16).await;
    let b = Browser::start().await.expect("chromium");
    let checks = async {
        b.client
            .goto(&format!("http://{}/ui/jobs/{JOB}", dev.http))
            .await
            .expect("open the job page");
        wait_live(&b).await;
        // Gone if the page reloads.
        js(&b, "window.notReloaded = true; return true").await;

        let r = dev
            .api
            .post(&format!("/v1/jobs/{JOB}/scale"), &json!({"instances": 2}))
            .await
            .expect("scale");
        assert!(r.is_success(), "{r:?}");
        wait_running_rows(&dev, &b, JOB, 2).await;
        assert_eq!(
            js(&b, "return window.notReloaded === true").await,
            json!(true)
        );
        // The job's facts follow its tasks.
        eventually(
            Duration::from_secs(5),
            "the job shows 2 of 2 running",
            || async { job_facts(&b).await == json!(["2 of 2", "running"]) },
        )
        .await;
        // The rows are the tasks the API lists.
        let rows = js(
            &b,
            "return Array.from(document.querySelectorAll('#tasks-body tr')).map(r => r.dataset.task).sort()",
        )
        .await;
        assert_eq!(rows, json!(running_ids(&dev, JOB).await));
        let png = b.screenshot("job-live").await.expect("screenshot");
        eprintln!("screenshot: {}", png.display());
    };
    let failed = bounded(Duration::from_secs(90), checks).await;
    finish(&dev, b, failed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_passes_axe_and_is_kept_as_a_screenshot() {
    if !browser::available() {
        return;
    }
    let axe = browser::axe_source();
    let dev = Dev::start().await.expect("ocean dev");
    // A populated cluster: a running task, and a job no agent can hold.
    put_job(&dev, JOB, 1, 16).await;
    put_job(&dev, BIG, 1, 4_194_304).await;
    let b = Browser::start().await.expect("chromium");
    let checks = async {
        let deadline = Instant::now() + Duration::from_secs(30);
        let task = loop {
            let ids = running_ids(&dev, JOB).await;
            if let Some(id) = ids.into_iter().next() {
                break id;
            }
            assert!(Instant::now() < deadline, "no task RUNNING within 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let agents = dev.api.get("/v1/agents").await.expect("agents");
        assert!(agents.body["agents"][0]["id"].is_string(), "{agents:?}");
        let cache = serde_json::json!({"name": "axe", "product_line": "qa", "shards": 1, "replicas": 0, "memory_mb": 16});
        let made = dev
            .api
            .post("/v1/caches", &cache)
            .await
            .expect("create a cache");
        assert_eq!(made.status, 201, "{made:?}");
        let elb = serde_json::json!({"name": "pdl.qa_service.axe", "idc": "c1", "network": "internal",
            "vips": ["10.99.7.1"], "domain": "axe.qa.ocean",
            "views": [{"name": "lo", "subnets": ["127.0.0.0/8"], "vips": ["10.99.7.1"]}],
            "listeners": [{"port": 80, "protocol": "tcp", "backend_job": JOB, "backend_port_name": "http"}]});
        let made = dev.api.post("/v1/elbs", &elb).await.expect("create an ELB");
        assert_eq!(made.status, 201, "{made:?}");
        let db = serde_json::json!({"name": "axe", "cluster": "dev", "product_line": "qa",
            "department": "inf", "full_name": "/inf/qa/axe", "template": "mysql-general", "instances": 1});
        let made = dev
            .api
            .post("/v1/databases", &db)
            .await
            .expect("create a database");
        assert_eq!(made.status, 201, "{made:?}");
        let pages = [
            ("overview", "/ui/".to_string()),
            ("jobs", "/ui/jobs".to_string()),
            ("job", format!("/ui/jobs/{JOB}")),
            ("job-waiting", format!("/ui/jobs/{BIG}")),
            ("task", format!("/ui/tasks/{task}")),
            ("hosts", "/ui/hosts".to_string()),
            ("caches", "/ui/caches".to_string()),
            ("cache", "/ui/caches/axe".to_string()),
            ("databases", "/ui/databases".to_string()),
            ("database", "/ui/databases/axe".to_string()),
            ("tickets", "/ui/tickets".to_string()),
            ("elbs", "/ui/elbs".to_string()),
        ];
        let mut found = Vec::new();
        for (name, path) in &pages {
            b.client
                .goto(&format!("http://{}{path}", dev.http))
                .await
                .unwrap_or_else(|e| panic!("open {path}: {e}"));
            let title = b.client.title().await.expect("title");
            assert!(!title.is_empty(), "{path} has no title");
            b.screenshot(name).await.expect("screenshot");
            if let Some(src) = &axe {
                let v = b.axe_serious(src).await.expect("axe");
                found.extend(v.into_iter().map(|v| format!("{path}: {v}")));
            }
        }
        // A refused form: the page again, with the error next to the field.
        b.client
            .goto(&format!("http://{}/ui/jobs/{JOB}", dev.http))
            .await
            .expect("job page");
        let input = b
            .client
            .find(Locator::Id("instances"))
            .await
            .expect("field");
        input.clear().await.expect("clear");
        input.send_keys("many").await.expect("type");
        b.client
            .find(Locator::Css("form[action$='/scale'] button[type=submit]"))
            .await
            .expect("scale button")
            .click()
            .await
            .expect("submit");
        eventually(Duration::from_secs(10), "the field error", || async {
            js(&b, "return !!document.getElementById('instances-error')")
                .await
                .as_bool()
                == Some(true)
        })
        .await;
        b.screenshot("job-refused-scale").await.expect("screenshot");
        if let Some(src) = &axe {
            let v = b.axe_serious(src).await.expect("axe");
            found.extend(v.into_iter().map(|v| format!("refused scale: {v}")));
        }
        assert!(
            found.is_empty(),
            "axe-core: violations of impact serious or critical:\n{}",
            found.join("\n")
        );
        eprintln!("screenshots: {}", browser::screenshot_dir().display());
    };
    let failed = bounded(Duration::from_secs(150), checks).await;
    finish(&dev, b, failed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_from_the_page_see_a_job_wait_and_drain_a_host() {
    if !browser::available() {
        return;
    }
    let dev = Dev::start().await.expect("ocean dev");
    put_job(&dev, JOB, 1, 16).await;
    put_job(&dev, BIG, 0, 4_194_304).await;
    let b = Browser::start().await.expect("chromium");
    let checks = async {
        // Scale through the page's form: the post redirects to the page,
        // which then follows the new tasks without another reload.
        b.client
            .goto(&format!("http://{}/ui/jobs/{JOB}", dev.http))
            .await
            .expect("job page");
        let input = b
            .client
            .find(Locator::Id("instances"))
            .await
            .expect("field");
        input.clear().await.expect("clear");
        input.send_keys("3").await.expect("type");
        b.client
            .find(Locator::Css("form[action$='/scale'] button[type=submit]"))
            .await
            .expect("scale button")
            .click()
            .await
            .expect("submit");
        eventually(Duration::from_secs(10), "the redirect to ?v=", || async {
            b.client
                .current_url()
                .await
                .is_ok_and(|u| u.query().is_some_and(|q| q.starts_with("v=")))
        })
        .await;
        wait_live(&b).await;
        js(&b, "window.notReloaded = true; return true").await;
        wait_running_rows(&dev, &b, JOB, 3).await;
        assert_eq!(
            js(&b, "return window.notReloaded === true").await,
            json!(true)
        );
        eventually(Duration::from_secs(5), "3 of 3 running", || async {
            job_facts(&b).await == json!(["3 of 3", "running"])
        })
        .await;
        let spec = dev.api.get(&format!("/v1/jobs/{JOB}")).await.expect("job");
        assert_eq!(spec.body["spec"]["instances"], json!(3), "{spec:?}");
        b.screenshot("flow-scaled").await.expect("screenshot");

        // A job asking for more memory than any agent has: its open page
        // turns "waiting" live; the reason is on the page and the list.
        b.client
            .goto(&format!("http://{}/ui/jobs/{BIG}", dev.http))
            .await
            .expect("job page");
        wait_live(&b).await;
        js(&b, "window.notReloaded = true; return true").await;
        let r = dev
            .api
            .post(&format!("/v1/jobs/{BIG}/scale"), &json!({"instances": 1}))
            .await
            .expect("scale");
        assert!(r.is_success(), "{r:?}");
        eventually(Duration::from_secs(20), "the job shows waiting", || async {
            job_facts(&b).await == json!(["0 of 1", "waiting"])
        })
        .await;
        // The reason appears live too, beside the state, without a reload.
        eventually(Duration::from_secs(5), "the reason shows live", || async {
            js(
                &b,
                "var r = document.getElementById('job-waiting-row'); \
                 return !r.hidden && r.textContent.indexOf('insufficient mem') >= 0",
            )
            .await
                == json!(true)
        })
        .await;
        // And the table of what blocked how many hosts, fetched from the
        // server's part, still without a reload.
        eventually(
            Duration::from_secs(5),
            "the blocked table shows live",
            || async {
                js(
                    &b,
                    "var d = document.getElementById('waiting-detail'); \
                 return !!d && !d.hidden && \
                 !!d.querySelector('#blocked tr[data-kind=resource]')",
                )
                .await
                    == json!(true)
            },
        )
        .await;
        assert_eq!(
            js(&b, "return window.notReloaded === true").await,
            json!(true)
        );
        b.client.refresh().await.expect("reload");
        let why = js(
            &b,
            "return document.getElementById('job-waiting').textContent",
        )
        .await;
        assert!(
            why.as_str().is_some_and(|w| w.contains("insufficient mem")),
            "waiting reason on the job page: {why}"
        );
        let api_why = dev.api.get(&format!("/v1/jobs/{BIG}")).await.expect("job");
        assert_eq!(why, api_why.body["waiting"], "{api_why:?}");
        b.client
            .goto(&format!("http://{}/ui/jobs", dev.http))
            .await
            .expect("jobs page");
        let listed = js(&b, "return document.body.textContent").await;
        assert!(
            listed
                .as_str()
                .is_some_and(|t| t.contains("insufficient mem")),
            "the jobs list does not say why {BIG} waits"
        );
        b.screenshot("flow-waiting").await.expect("screenshot");

        // A spec change on JOB's open page: its deployment appears live,
        // is paused and resumed from the page, then the job rolled back.
        deployment_flow(&dev, &b).await;

        // Drain the host: refused without the confirmation box, then done.
        let agents = dev.api.get("/v1/agents").await.expect("agents");
        let agent = agents.body["agents"][0]["id"]
            .as_str()
            .expect("agent id")
            .to_string();
        b.client
            .goto(&format!("http://{}/ui/hosts", dev.http))
            .await
            .expect("hosts page");
        let set_status = |confirm: bool| {
            let b = &b;
            let agent = agent.clone();
            async move {
                let pick = format!(
                    "document.getElementById('status-{agent}').value = 'draining'; \
                     document.getElementById('message-{agent}').value = 'disk swap'; \
                     document.getElementById('confirm-{agent}').checked = {confirm}; return true"
                );
                js(b, &pick).await;
                b.client
                    .find(Locator::Css(&format!("#host-{agent} button[type=submit]")))
                    .await
                    .expect("set button")
                    .click()
                    .await
                    .expect("submit");
            }
        };
        set_status(false).await;
        eventually(Duration::from_secs(10), "the confirm error", || async {
            js(
                &b,
                &format!("return !!document.getElementById('confirm-error-{agent}')"),
            )
            .await
                == json!(true)
        })
        .await;
        let status = |dev: &Dev| {
            let api = dev.api.clone();
            async move {
                let a = api.get("/v1/agents").await.expect("agents");
                a.body["agents"][0]["status"].clone()
            }
        };
        assert_eq!(status(&dev).await, json!("online"), "refused, unchanged");
        set_status(true).await;
        eventually(
            Duration::from_secs(10),
            "the host shows draining",
            || async {
                js(
                    &b,
                    &format!(
                        "return document.querySelector('#host-{agent} td.status').textContent"
                    ),
                )
                .await
                .as_str()
                .is_some_and(|s| s.contains("draining") && s.contains("disk swap"))
            },
        )
        .await;
        assert_eq!(status(&dev).await, json!("draining"));
        b.screenshot("flow-drained").await.expect("screenshot");
    };
    let failed = bounded(Duration::from_secs(240), checks).await;
    finish(&dev, b, failed).await;
}

/// The text of `#id` on the open page (empty when it is not there).
async fn text_of(b: &Browser, id: &str) -> String {
    js(
        b,
        &format!("var e = document.getElementById('{id}'); return e ? e.textContent : ''"),
    )
    .await
    .as_str()
    .unwrap_or_default()
    .to_string()
}

/// Ticks a confirmation box and presses a button of the deployments part.
async fn confirm_and_press(b: &Browser, confirm: &str, button: &str) {
    js(
        b,
        &format!("document.getElementById('{confirm}').checked = true; return true"),
    )
    .await;
    b.client
        .find(Locator::Id(button))
        .await
        .expect("button")
        .click()
        .await
        .expect("press");
}

async fn deployment_state(dev: &Dev) -> Value {
    let list = dev
        .api
        .get(&format!("/v1/deployments?job={JOB}"))
        .await
        .expect("deployments");
    list.body["deployments"][0].clone()
}

async fn deployment_flow(dev: &Dev, b: &Browser) {
    b.client
        .goto(&format!("http://{}/ui/jobs/{JOB}", dev.http))
        .await
        .expect("job page");
    wait_live(b).await;
    js(b, "window.notReloaded = true; return true").await;
    // A slow rollout: one task at a time, 20 s between them, so there is
    // time to pause it.
    let spec = json!({"id": JOB, "cmd": "sleep 121", "instances": 3,
        "resources": {"cpus": 0.01, "mem": 16},
        "upgrade_strategy": {"max_surge": 1, "max_unavailable": 0, "sleep_seconds": 20}});
    let r = dev.api.post("/v1/jobs", &spec).await.expect("new spec");
    assert!(r.is_success(), "{r:?}");
    eventually(
        Duration::from_secs(20),
        "the deployment shows live",
        || async { text_of(b, "deployment-state").await == "running" },
    )
    .await;
    assert!(text_of(b, "deployment-current").await.contains("1 → 2"));
    assert_eq!(
        js(b, "return window.notReloaded === true").await,
        json!(true)
    );
    b.screenshot("flow-deployment").await.expect("screenshot");
    // The deployments part and its forms pass the same audit as every page.
    if let Some(src) = browser::axe_source() {
        let v = b.axe_serious(&src).await.expect("axe");
        assert!(v.is_empty(), "the job page with a deployment: {v:?}");
    }

    confirm_and_press(b, "deployment_confirm", "deployment-pause").await;
    eventually(Duration::from_secs(10), "paused", || async {
        text_of(b, "deployment-state").await == "paused"
    })
    .await;
    assert_eq!(deployment_state(dev).await["state"], json!("paused"));
    assert!(text_of(b, "deployment-holding").await.starts_with("paused"));

    confirm_and_press(b, "deployment_confirm", "deployment-resume").await;
    eventually(Duration::from_secs(10), "resumed", || async {
        let s = text_of(b, "deployment-state").await;
        s == "running" || s == "succeeded"
    })
    .await;
    assert_ne!(deployment_state(dev).await["state"], json!("paused"));

    // Roll back to the previous version (the form's default).
    confirm_and_press(b, "rollback_confirm", "rollback-submit").await;
    eventually(Duration::from_secs(10), "the rollback shows", || async {
        text_of(b, "deployment-current")
            .await
            .contains("(rollback)")
    })
    .await;
    let job = dev.api.get(&format!("/v1/jobs/{JOB}")).await.expect("job");
    assert_eq!(job.body["spec"]["cmd"], json!("sleep 120"), "{job:?}");
    assert_eq!(deployment_state(dev).await["rollback_to"], json!(1));
    b.screenshot("flow-rolled-back").await.expect("screenshot");
    // Its tasks settle RUNNING again (the rollback's own rollout).
    wait_running_rows(dev, b, JOB, 3).await;
}
