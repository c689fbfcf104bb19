//! The dashboard in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`, driven over WebDriver) against a real `ocean dev`:
//! the job page, left open, shows the job's tasks turn RUNNING without a
//! reload, through `live.js` and the SSE stream it follows.
//!
//! Without Chromium the test is skipped on a developer's machine and fails
//! in CI (`CI=true`), where `scripts/test.sh` installs both packages.

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use futures::FutureExt;
use nix::sys::signal::Signal;
use ocean_tests::cluster::{agent_ports, free_addr, ocean_bin};
use ocean_tests::http::Api;
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const JOB: &str = "cop.acme_owt.inf_pdl.ui_service.browser_job.sleeper_cluster.dev";

/// A child process, started in a process group of its own, killed with
/// the whole group when dropped (chromedriver's Chromium processes too,
/// even when the test panics); for `ocean dev`, its agent's tasks (which
/// outlive it by design) are reaped too.
struct Guard {
    child: Child,
    dev_dir: Option<PathBuf>,
}

impl Guard {
    fn spawn(cmd: &mut Command, dev_dir: Option<PathBuf>) -> Guard {
        let child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()));
        Guard { child, dev_dir }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.dev_dir {
            if let Ok(id) = std::fs::read_to_string(dir.join("agent/agent-id")) {
                ocean_tests::tasks::reap_cgroups(&format!("ocean-{}", id.trim()));
            }
        }
    }
}

/// Chromium and its driver, or `None` (skipped) outside CI.
fn browser() -> Option<()> {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).is_file())
        .collect();
    if missing.is_empty() {
        return Some(());
    }
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "{missing:?} missing: scripts/test.sh installs chromium and chromium-driver"
    );
    eprintln!("skipped: {missing:?} missing (apt-get install chromium chromium-driver)");
    None
}

fn wait_port(addr: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `f` every 100 ms until it is true, for at most `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !f().await {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, Vec::new()).await.expect("script")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_page_shows_its_tasks_turn_running_without_a_reload() {
    if browser().is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let http = free_addr().to_string();
    let grpc = free_addr().to_string();
    let ports = agent_ports();
    let log = dir.path().join("dev.log");
    let log_file = std::fs::File::create(&log).expect("log file");
    let _dev = Guard::spawn(
        Command::new(ocean_bin())
            .args(["dev", "--http", &http, "--grpc", &grpc, "--no-dns"])
            .args(["--ports", &ports, "--frameworks", "none"])
            .env("OCEAN_EXIT_WITH_PARENT", "1")
            .env("OCEAN_DATA_DIR", dir.path())
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file),
        Some(dir.path().to_path_buf()),
    );
    let api = Api::new(&http);
    eventually(
        Duration::from_secs(30),
        "ocean dev's agent registers",
        || async {
            match api.get("/v1/agents").await {
                Ok(r) => r.body["agents"].as_array().is_some_and(|a| a.len() == 1),
                Err(_) => false,
            }
        },
    )
    .await;
    let spec = json!({"id": JOB, "cmd": "sleep 120", "instances": 0,
        "resources": {"cpus": 0.01, "mem": 16}});
    let r = api.post("/v1/jobs", &spec).await.expect("put job");
    assert!(r.is_success(), "{r:?}");

    let driver_addr = free_addr();
    let _driver = Guard::spawn(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={}", driver_addr.port()))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        None,
    );
    wait_port(&driver_addr.to_string(), Duration::from_secs(10));
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": CHROMIUM, "args": ["--headless=new", "--no-sandbox",
            "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"]}),
    );
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://{driver_addr}"))
        .await
        .expect("a Chromium session");

    let run = async {
        c.goto(&format!("http://{http}/ui/jobs/{JOB}"))
            .await
            .expect("open the job page");
        eventually(Duration::from_secs(10), "live.js connects", || async {
            js(
                &c,
                "return document.getElementById('live-status').textContent",
            )
            .await
            .as_str()
            .is_some_and(|s| s.starts_with("Live"))
        })
        .await;
        // Gone if the page reloads.
        js(&c, "window.notReloaded = true; return true").await;

        let r = api
            .post(&format!("/v1/jobs/{JOB}/scale"), &json!({"instances": 2}))
            .await
            .expect("scale");
        assert!(r.is_success(), "{r:?}");
        let running = "return Array.from(document.querySelectorAll('#tasks-body tr'))\
             .filter(r => r.cells[1].textContent.startsWith('RUNNING')).length";
        let deadline = Instant::now() + Duration::from_secs(30);
        while js(&c, running).await.as_u64() != Some(2) {
            if Instant::now() > deadline {
                let page = js(&c, "return document.getElementById('live-status').textContent \
                     + ' | hidden=' + document.hidden + ' | ' + document.getElementById('tasks-body').innerHTML")
                    .await;
                let tasks = api
                    .get(&format!("/v1/tasks?job={JOB}"))
                    .await
                    .map(|r| r.body);
                panic!("two RUNNING rows did not appear within 30 s; page: {page}; API: {tasks:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            js(&c, "return window.notReloaded === true").await,
            json!(true)
        );
        // The job's facts follow its tasks.
        let facts = "return [document.getElementById('job-running').textContent, \
             document.querySelector('#job-state .state').textContent]";
        eventually(
            Duration::from_secs(5),
            "the job shows 2 of 2 running",
            || async { js(&c, facts).await == json!(["2 of 2", "running"]) },
        )
        .await;
        // The rows are the tasks the API lists.
        let listed = api
            .get(&format!("/v1/tasks?job={JOB}&state=RUNNING"))
            .await
            .expect("tasks");
        let mut want: Vec<String> = listed.body["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["id"].as_str().map(str::to_string))
            .collect();
        want.sort();
        let rows = js(
            &c,
            "return Array.from(document.querySelectorAll('#tasks-body tr')).map(r => r.dataset.task).sort()",
        )
        .await;
        assert_eq!(rows, json!(want));
        // Kept as an artifact for a person to look at.
        if let Ok(png) = c.screenshot().await {
            let out = std::env::temp_dir().join("ocean-ui-job-page.png");
            let _ = std::fs::write(&out, png);
            eprintln!("screenshot: {}", out.display());
        }
    };
    // Clean up (the job's tasks, the browser session) whether or not the
    // checks passed, then report.
    let outcome = tokio::time::timeout(
        Duration::from_secs(90),
        AssertUnwindSafe(run).catch_unwind(),
    )
    .await;
    let _ = api.delete(&format!("/v1/jobs/{JOB}")).await;
    let _ = c.close().await;
    let failed = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(panic)) => Some(panic),
        Err(_) => Some(Box::new("the browser test did not finish within 90 s") as Box<_>),
    };
    if let Some(panic) = failed {
        let tail = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = tail.lines().rev().take(40).collect();
        eprintln!("ocean dev's log, last lines first:\n{}", tail.join("\n"));
        std::panic::resume_unwind(panic);
    }
}
