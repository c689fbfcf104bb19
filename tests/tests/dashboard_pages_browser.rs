//! The dashboard's added pages in a real headless Chromium against a real
//! `ocean dev` (set-up in `ocean_tests::browser`, shared with `dashboard_browser.rs`): a job submitted through
//! the new-job form (a field error first, then a valid submit), its task
//! turning RUNNING on the job page without a reload, the task's log tail
//! showing lines the task prints after the page loaded, the service tree
//! walked down to the job by its links, the hosts map drawn on its
//! canvas, and a database created through its form (a field error first),
//! its allowed jobs edited on its page (a bad job id refused naming the
//! field, then saved and shown with the user made for it, as
//! `GET .../grants` has it), a backup refused with the API's reason, and
//! the database deleted through its confirmed form. Each test is bounded
//! (60 s) and leaves nothing running.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use fantoccini::{Client, Locator};
use futures::FutureExt;
use ocean_tests::browser::{available, eventually, js, Browser, Dev};
use serde_json::json;

const JOB: &str = "cop.acme_owt.inf_pdl.ui_service.pages_job.ticker_cluster.dev";
/// Prints a numbered line every 200 ms.
const CMD: &str = "i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.2; done";
const BOUND: Duration = Duration::from_secs(60);

/// Runs `body` within [`BOUND`], then closes the browser and deletes the
/// job whatever happened, then reports (with ocean dev's log on failure).
async fn bounded(dev: &Dev, c: Client, body: impl std::future::Future<Output = ()>) {
    let outcome = tokio::time::timeout(BOUND, AssertUnwindSafe(body).catch_unwind()).await;
    let _ = dev.api.delete(&format!("/v1/jobs/{JOB}")).await;
    let _ = c.close().await;
    let failed = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(panic)) => Some(panic),
        Err(_) => Some(Box::new(format!("not done within {BOUND:?}")) as Box<_>),
    };
    if let Some(panic) = failed {
        eprintln!("ocean dev's log, last lines first:\n{}", dev.log_tail(40));
        std::panic::resume_unwind(panic);
    }
}

async fn set(c: &Client, id: &str, value: &str) {
    let script =
        "const e = document.getElementById(arguments[0]); e.value = arguments[1]; return e.value";
    let got = c
        .execute(script, vec![json!(id), json!(value)])
        .await
        .expect("set a field");
    assert_eq!(got, json!(value));
}

async fn attr(c: &Client, css: &str, name: &str) -> Option<String> {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .attr(name)
        .await
        .expect("attribute")
}

async fn text_of(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .expect("text")
}

/// The highest `tick-N` in the text.
fn last_tick(text: &str) -> Option<u64> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("tick-")?.parse().ok())
        .max()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_submitted_through_the_form_runs_logs_and_sits_in_the_tree() {
    if !available() {
        return;
    }
    let dev = Dev::start().await.expect("ocean dev");
    // The session's driver lives as long as `_browser` (killed on drop).
    let _browser = Browser::start().await.expect("chromium");
    let c = _browser.client.clone();
    let base = format!("http://{}", dev.http);
    bounded(&dev, c.clone(), async {
        // 1. The form, from the web-service template: a bad memory first.
        c.goto(&format!("{base}/ui/new?template=web-service"))
            .await
            .expect("open /ui/new");
        set(&c, "id", JOB).await;
        set(&c, "cmd", CMD).await;
        set(&c, "new-instances", "1").await;
        set(&c, "cpus", "0.01").await;
        set(&c, "mem", "lots").await;
        set(&c, "ports", "").await;
        set(&c, "extra", "").await;
        c.find(Locator::Css("#new-job button[type=submit]"))
            .await
            .expect("submit")
            .click()
            .await
            .expect("click");
        eventually(
            Duration::from_secs(10),
            "the memory error shows",
            || async {
                js(
                    &c,
                    "const e = document.getElementById('mem-error'); return e ? e.textContent : ''",
                )
                .await
                .as_str()
                .is_some_and(|t| t.contains("'lots'"))
            },
        )
        .await;
        assert_eq!(
            attr(&c, "#mem", "aria-invalid").await.as_deref(),
            Some("true")
        );
        // What was typed is kept.
        assert_eq!(attr(&c, "#id", "value").await.as_deref(), Some(JOB));
        assert_eq!(
            js(&c, "return document.getElementById('cmd').value").await,
            json!(CMD)
        );
        let r = dev
            .api
            .get(&format!("/v1/jobs/{JOB}"))
            .await
            .expect("get job");
        assert_eq!(r.status, 404, "nothing was created: {r:?}");

        // 2. A valid submit goes to the job page.
        set(&c, "mem", "16").await;
        c.find(Locator::Css("#new-job button[type=submit]"))
            .await
            .expect("submit")
            .click()
            .await
            .expect("click");
        eventually(Duration::from_secs(10), "the job page opens", || async {
            c.current_url()
                .await
                .is_ok_and(|u| u.path() == format!("/ui/jobs/{JOB}"))
        })
        .await;
        let job = dev
            .api
            .get(&format!("/v1/jobs/{JOB}"))
            .await
            .expect("get job");
        assert_eq!(job.body["spec"]["cmd"], json!(CMD));
        js(&c, "window.notReloaded = true; return true").await;

        // 3. Its task turns RUNNING on the open page, through live.js.
        eventually(Duration::from_secs(30), "a RUNNING row", || async {
            js(
                &c,
                "return Array.from(document.querySelectorAll('#tasks-body tr'))\
                .filter(r => r.cells[1].textContent.startsWith('RUNNING')).length",
            )
            .await
            .as_u64()
                == Some(1)
        })
        .await;
        assert_eq!(
            js(&c, "return window.notReloaded === true").await,
            json!(true)
        );
        let tasks = dev
            .api
            .get(&format!("/v1/tasks?job={JOB}&state=RUNNING"))
            .await
            .expect("tasks");
        let task = tasks.body["tasks"][0]["id"]
            .as_str()
            .expect("a running task")
            .to_string();
        assert_eq!(
            js(
                &c,
                "return document.querySelector('#tasks-body tr').dataset.task"
            )
            .await,
            json!(task)
        );

        // 4. The task's page follows its log: a later tick shows up
        //    without a reload.
        c.find(Locator::Css("#tasks-body tr a"))
            .await
            .expect("task link")
            .click()
            .await
            .expect("click");
        eventually(Duration::from_secs(10), "the task page opens", || async {
            c.current_url()
                .await
                .is_ok_and(|u| u.path().starts_with("/ui/tasks/"))
        })
        .await;
        js(&c, "window.notReloaded = true; return true").await;
        eventually(Duration::from_secs(15), "the log shows a tick", || async {
            last_tick(&text_of(&c, "#log-stdout").await).is_some()
        })
        .await;
        let first = last_tick(&text_of(&c, "#log-stdout").await).unwrap_or_default();
        eventually(
            Duration::from_secs(15),
            "a later tick arrives by the log tail",
            || async {
                last_tick(&text_of(&c, "#log-stdout").await).is_some_and(|n| n >= first + 3)
            },
        )
        .await;
        assert_eq!(
            js(&c, "return window.notReloaded === true").await,
            json!(true)
        );
        assert_eq!(text_of(&c, "#log-status").await, "Following the log");
        // Pause holds new lines.
        c.find(Locator::Css("#log-pause"))
            .await
            .expect("pause")
            .click()
            .await
            .expect("click");
        let held = last_tick(&text_of(&c, "#log-stdout").await);
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(
            last_tick(&text_of(&c, "#log-stdout").await),
            held,
            "paused lines stay"
        );

        // 5. The service tree, walked by its links down to the job.
        c.goto(&format!("{base}/ui/tree"))
            .await
            .expect("open the tree");
        for piece in [
            "cop.acme",
            "owt.inf",
            "pdl.ui",
            "service.pages",
            "job.ticker",
        ] {
            c.find(Locator::LinkText(piece))
                .await
                .unwrap_or_else(|e| panic!("a link {piece}: {e}"))
                .click()
                .await
                .expect("click");
            eventually(Duration::from_secs(5), "the node's page", || async {
                js(
                    &c,
                    "return Array.from(document.querySelectorAll('#crumbs li')).pop().textContent",
                )
                .await
                .as_str()
                .is_some_and(|t| t == piece)
            })
            .await;
        }
        let row = format!("#children tr[data-node='{JOB}']");
        assert_eq!(text_of(&c, &format!("{row} .tasks")).await, "1");
        assert_eq!(text_of(&c, &format!("{row} .mem")).await, "16");
        assert_eq!(text_of(&c, "#node-totals .tasks").await, "1");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hosts_map_draws_every_agent_on_its_canvas() {
    if !available() {
        return;
    }
    let dev = Dev::start().await.expect("ocean dev");
    // The session's driver lives as long as `_browser` (killed on drop).
    let _browser = Browser::start().await.expect("chromium");
    let c = _browser.client.clone();
    let base = format!("http://{}", dev.http);
    bounded(&dev, c.clone(), async {
        c.goto(&format!("{base}/ui/hosts")).await.expect("open /ui/hosts");
        let agents = dev.api.get("/v1/agents").await.expect("agents");
        let n = agents.body["agents"].as_array().map_or(0, Vec::len);
        assert_eq!(n, 1);
        eventually(Duration::from_secs(10), "the canvas is drawn", || async {
            attr(&c, "#hosts-map", "data-drawn").await.as_deref() == Some("1")
        })
        .await;
        // The first square's pixel is the online colour (#1a6b2f).
        let px = js(&c, "return Array.from(document.getElementById('hosts-map')\
            .getContext('2d').getImageData(2, 2, 1, 1).data)").await;
        assert_eq!(px, json!([26, 107, 47, 255]));
        // Hovering it names the host.
        let hostname = agents.body["agents"][0]["hostname"].as_str().expect("hostname").to_string();
        js(&c, "const c = document.getElementById('hosts-map'); const r = c.getBoundingClientRect();\
            c.dispatchEvent(new MouseEvent('mousemove', {clientX: r.left + 2, clientY: r.top + 2})); return true").await;
        assert_eq!(text_of(&c, "#map-hover").await, format!("{hostname} · online"));
        assert_eq!(text_of(&c, "[data-status-count=online]").await, "1");
    })
    .await;
}

async fn submit(c: &Client, form: &str) {
    c.find(Locator::Css(&format!("#{form} button[type=submit]")))
        .await
        .unwrap_or_else(|e| panic!("{form}'s submit: {e}"))
        .click()
        .await
        .expect("click");
}

async fn shows(c: &Client, what: &str, script: &str, wanted: impl Fn(&str) -> bool) {
    eventually(Duration::from_secs(10), what, || async {
        js(c, script).await.as_str().is_some_and(&wanted)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_is_created_its_allowed_jobs_edited_and_deleted_through_its_pages() {
    if !available() {
        return;
    }
    let dev = Dev::start().await.expect("ocean dev");
    let _browser = Browser::start().await.expect("chromium");
    let c = _browser.client.clone();
    let base = format!("http://{}", dev.http);
    let allowed = "cop.acme_owt.inf_pdl.ui_servicegroup.web_service.web_job.api_cluster.dev";
    bounded(&dev, c.clone(), async {
        // 1. The create form: 0 instances first, refused naming the field.
        c.goto(&format!("{base}/ui/databases"))
            .await
            .expect("open /ui/databases");
        for (id, v) in [
            ("name", "uikey"),
            ("full_name", "/miui/browser/uikey"),
            ("cluster", "staging"),
            ("product_line", "browser"),
            ("department", "miui"),
            ("instances", "0"),
        ] {
            set(&c, id, v).await;
        }
        submit(&c, "new-database").await;
        shows(
            &c,
            "the instances error",
            "const e = document.getElementById('instances-error'); return e ? e.textContent : ''",
            |t| !t.is_empty(),
        )
        .await;
        assert_eq!(
            attr(&c, "#instances", "aria-invalid").await.as_deref(),
            Some("true")
        );
        let r = dev.api.get("/v1/databases/uikey").await.expect("get");
        assert_eq!(r.status, 404, "nothing was created: {r:?}");
        assert_eq!(attr(&c, "#name", "value").await.as_deref(), Some("uikey"));
        set(&c, "instances", "3").await;
        submit(&c, "new-database").await;
        eventually(Duration::from_secs(10), "the database is listed", || async {
            dev.api
                .get("/v1/databases/uikey")
                .await
                .is_ok_and(|r| r.status == 200)
        })
        .await;
        let d = dev.api.get("/v1/databases/uikey").await.expect("get").body;
        assert_eq!(d["full_name"], "/miui/browser/uikey", "{d}");
        assert_eq!(d["instances"], 3, "{d}");

        // 2. Its page: no job allowed; a bad job id is refused, kept in
        //    the box, and nothing changes.
        c.goto(&format!("{base}/ui/databases/uikey"))
            .await
            .expect("open the database");
        assert!(text_of(&c, "#no-grants").await.contains("No job"));
        set(&c, "allowed_jobs", "not a job").await;
        submit(&c, "grants-database").await;
        shows(
            &c,
            "the allowed jobs error",
            "const e = document.getElementById('allowed_jobs-error'); return e ? e.textContent : ''",
            |t| t.contains("not a job id"),
        )
        .await;
        assert_eq!(
            attr(&c, "#allowed_jobs", "aria-invalid").await.as_deref(),
            Some("true")
        );
        assert!(text_of(&c, "#action-error").await.contains("400"));
        assert_eq!(
            js(&c, "return document.getElementById('allowed_jobs').value").await,
            json!("not a job")
        );
        let g = dev.api.get("/v1/databases/uikey/grants").await.expect("grants");
        assert_eq!(g.body["allowed_jobs"], json!([]), "{}", g.body);

        // 3. A valid job is saved and shown with its user.
        set(&c, "allowed_jobs", &format!("{allowed}\n")).await;
        submit(&c, "grants-database").await;
        shows(
            &c,
            "the grants notice",
            "const e = document.getElementById('notice'); return e ? e.textContent : ''",
            |t| t.contains("Allowed jobs changed"),
        )
        .await;
        let g = dev.api.get("/v1/databases/uikey/grants").await.expect("grants").body;
        assert_eq!(g["allowed_jobs"], json!([allowed]), "{g}");
        let user = g["grants"][0]["user"].as_str().expect("a user").to_string();
        assert!(user.starts_with("oj_"), "{g}");
        let row = format!("#grants tr[data-job='{allowed}']");
        assert_eq!(text_of(&c, &format!("{row} .user")).await, user);
        assert_eq!(
            js(&c, "return document.getElementById('allowed_jobs').value").await,
            json!(allowed)
        );

        // 4. Back up now: no operator runs here, so the API refuses and
        //    the page says why.
        submit(&c, "backup-database").await;
        shows(
            &c,
            "the backup refusal",
            "const e = document.getElementById('action-error'); return e ? e.textContent : ''",
            |t| t.contains("backup refused (409") && t.contains("not been observed"),
        )
        .await;

        // 5. Delete: refused without the box, then done with it.
        submit(&c, "delete-database").await;
        shows(
            &c,
            "the confirm error",
            "const e = document.getElementById('confirm-error'); return e ? e.textContent : ''",
            |t| t.contains("tick the box"),
        )
        .await;
        c.find(Locator::Css("#delete-confirm"))
            .await
            .expect("the box")
            .click()
            .await
            .expect("tick");
        submit(&c, "delete-database").await;
        eventually(Duration::from_secs(10), "back on the list", || async {
            c.current_url()
                .await
                .is_ok_and(|u| u.path() == "/ui/databases")
        })
        .await;
        let r = dev.api.get("/v1/databases/uikey").await.expect("get");
        assert_eq!(r.status, 404, "deleted: {r:?}");
    })
    .await;
}
