//! A real headless Chromium for the dashboard's tests and benchmarks:
//! Debian's `chromium` and `chromium-driver`, driven over WebDriver
//! (fantoccini), against a real `ocean dev` or master.
//!
//! ```text
//!  test ──WebDriver──► chromedriver ──► chromium ──HTTP/SSE──► ocean dev (/ui/)
//!    └──────────── REST (Api) ────────────────────────────────────┘
//! ```
//!
//! Every process started here lives in a process group of its own and is
//! killed with the whole group when its handle drops, even when a test
//! panics. Without Chromium, [`available`] skips on a developer's machine
//! and fails in CI (`CI=true`), where `scripts/test.sh` installs it.

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use fantoccini::{Client, ClientBuilder};
use nix::sys::signal::Signal;
use serde_json::{json, Value};

use crate::cluster::{agent_ports, free_addr, ocean_bin};
use crate::http::Api;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A child process in a process group of its own, killed with the whole
/// group when dropped (chromedriver's Chromium processes too); for
/// `ocean dev`, its agent's tasks (which outlive it by design) are reaped.
#[derive(Debug)]
pub struct Guard {
    child: Child,
    dev_dir: Option<PathBuf>,
}

impl Guard {
    pub fn spawn(cmd: &mut Command, dev_dir: Option<PathBuf>) -> anyhow::Result<Guard> {
        let child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("spawn {:?}", cmd.get_program()))?;
        Ok(Guard { child, dev_dir })
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
                crate::tasks::reap_cgroups(&format!("ocean-{}", id.trim()));
            }
        }
    }
}

/// True when Chromium and its driver are installed; false (skip) on a
/// developer's machine without them; panics in CI.
pub fn available() -> bool {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).is_file())
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "{missing:?} missing: scripts/test.sh installs chromium and chromium-driver"
    );
    eprintln!("skipped: {missing:?} missing (apt-get install chromium chromium-driver)");
    false
}

pub fn wait_port(addr: &str, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    while TcpStream::connect(addr).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "nothing listens on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Polls `f` every 100 ms until it is true, for at most `within`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut f: F)
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

/// Runs `script` in the page of `c` and returns what it returns; a
/// failing script fails the test.
pub async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, Vec::new()).await.expect("script")
}

/// A real `ocean dev` (one master, one agent, no DNS, no frameworks) on
/// free ports, its data in a temp dir; killed with its tasks on drop.
#[derive(Debug)]
pub struct Dev {
    pub http: String,
    pub api: Api,
    pub log: PathBuf,
    _guard: Guard,
    _dir: tempfile::TempDir,
}

impl Dev {
    /// Starts `ocean dev` and waits (at most 30 s) until its agent is
    /// registered.
    pub async fn start() -> anyhow::Result<Dev> {
        let dir = tempfile::tempdir().context("temp dir")?;
        let http = free_addr().to_string();
        let grpc = free_addr().to_string();
        let ports = agent_ports();
        let log = dir.path().join("dev.log");
        let log_file = std::fs::File::create(&log).context("log file")?;
        let guard = Guard::spawn(
            Command::new(ocean_bin())
                .args(["dev", "--http", &http, "--grpc", &grpc, "--no-dns"])
                .args(["--ports", &ports, "--frameworks", "none"])
                .env("OCEAN_EXIT_WITH_PARENT", "1")
                .env("OCEAN_DATA_DIR", dir.path())
                .stdout(log_file.try_clone().context("log file")?)
                .stderr(log_file),
            Some(dir.path().to_path_buf()),
        )?;
        let api = Api::new(&http);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = api.get("/v1/agents").await {
                if r.body["agents"].as_array().is_some_and(|a| a.len() == 1) {
                    break;
                }
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "ocean dev's agent did not register within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Dev {
            http,
            api,
            log,
            _guard: guard,
            _dir: dir,
        })
    }

    /// The last `n` lines of `ocean dev`'s log, last first.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(n).collect();
        tail.join("\n")
    }
}

/// chromedriver and one headless Chromium session on it.
#[derive(Debug)]
pub struct Browser {
    pub client: Client,
    driver: String,
    session: String,
    http: reqwest::Client,
    _guard: Guard,
    // Chromium's profile; killed Chromiums leave theirs behind otherwise.
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a session with a
    /// 1280x900 window.
    pub async fn start() -> anyhow::Result<Browser> {
        let addr = free_addr();
        let guard = Guard::spawn(
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={}", addr.port()))
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            None,
        )?;
        wait_port(&addr.to_string(), Duration::from_secs(10))?;
        let profile = tempfile::tempdir().context("profile dir")?;
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": CHROMIUM, "args": ["--headless=new", "--no-sandbox",
                "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900",
                // performance.memory reports the real heap, not bucketed figures.
                "--enable-precise-memory-info",
                format!("--user-data-dir={}", profile.path().display())]}),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://{addr}"))
            .await
            .context("a Chromium session")?;
        let session = client
            .session_id()
            .await
            .context("session id")?
            .context("chromedriver gave no session id")?;
        Ok(Browser {
            client,
            driver: format!("http://{addr}"),
            session,
            http: reqwest::Client::new(),
            _guard: guard,
            _profile: profile,
        })
    }

    /// Resident memory (MB) of the renderer processes of this session's
    /// Chromium (the tabs), read from `/proc`: Chromium runs in the
    /// driver's process group, and renderers carry `--type=renderer`.
    pub fn renderer_rss_mb(&self) -> f64 {
        let group = self._guard.child.id();
        let mut kb = 0u64;
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let path = entry.path();
            let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
                continue;
            };
            // pgrp is the 3rd field after the command's closing parenthesis.
            let pgrp = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(2))
                .and_then(|p| p.parse::<u32>().ok());
            if pgrp != Some(group) {
                continue;
            }
            let cmdline = std::fs::read(path.join("cmdline")).unwrap_or_default();
            if !String::from_utf8_lossy(&cmdline).contains("--type=renderer") {
                continue;
            }
            let status = std::fs::read_to_string(path.join("status")).unwrap_or_default();
            kb += status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
        kb as f64 / 1024.0
    }

    /// Runs `script` (a function body; `return` gives the value) in the page.
    pub async fn js(&self, script: &str) -> anyhow::Result<Value> {
        self.client
            .execute(script, Vec::new())
            .await
            .with_context(|| format!("script: {script}"))
    }

    /// A Chrome DevTools Protocol command through chromedriver's
    /// `goog/cdp/execute` endpoint (fantoccini has no call for it).
    pub async fn cdp(&self, cmd: &str, params: Value) -> anyhow::Result<Value> {
        let url = format!("{}/session/{}/goog/cdp/execute", self.driver, self.session);
        let r = self
            .http
            .post(&url)
            .json(&json!({"cmd": cmd, "params": params}))
            .send()
            .await
            .with_context(|| format!("CDP {cmd}"))?;
        let status = r.status();
        let body: Value = r.json().await.with_context(|| format!("CDP {cmd}: body"))?;
        anyhow::ensure!(status.is_success(), "CDP {cmd}: {status}: {body}");
        Ok(body["value"].clone())
    }

    /// Saves a PNG of the viewport as `<dir>/<name>.png` (see
    /// [`screenshot_dir`]) and returns its path.
    pub async fn screenshot(&self, name: &str) -> anyhow::Result<PathBuf> {
        let png = self.client.screenshot().await.context("screenshot")?;
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let out = dir.join(format!("{name}.png"));
        std::fs::write(&out, png).with_context(|| format!("write {}", out.display()))?;
        Ok(out)
    }

    /// Runs axe-core (`source`, see [`axe_source`]) on the open page and
    /// returns its violations of impact serious or critical, each as
    /// `rule (impact): help: targets`.
    pub async fn axe_serious(&self, source: &str) -> anyhow::Result<Vec<String>> {
        self.client
            .execute(&format!("{source}\n;return typeof axe"), Vec::new())
            .await
            .context("inject axe-core")?;
        let found = self
            .client
            .execute_async(
                "var done = arguments[arguments.length - 1];\
                 axe.run(document, {resultTypes: ['violations']})\
                   .then(function (r) { done({ok: r.violations.map(function (v) {\
                     return {id: v.id, impact: v.impact, help: v.help,\
                       targets: v.nodes.map(function (n) { return n.target.join(' '); })};\
                   })}); })\
                   .catch(function (e) { done({error: String(e)}); });",
                Vec::new(),
            )
            .await
            .context("axe.run")?;
        if let Some(e) = found.get("error") {
            anyhow::bail!("axe.run failed: {e}");
        }
        Ok(found["ok"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .map(|v| {
                format!(
                    "{} ({}): {}: {}",
                    v["id"], v["impact"], v["help"], v["targets"]
                )
            })
            .collect())
    }

    /// Ends the session (chromedriver and Chromium die with the handle).
    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}

/// Where screenshots are kept as test artifacts:
/// `$CARGO_TARGET_DIR/ui-screenshots`, else `target/ui-screenshots` of
/// the workspace.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("ui-screenshots")
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// axe-core's `axe.min.js`, put at `$CARGO_TARGET_DIR/axe/axe.min.js`
/// (else `target/axe/`) by `scripts/axe.sh`; `None` (skip the audit) on a
/// developer's machine without it, a panic in CI.
pub fn axe_source() -> Option<String> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let path = target.join("axe/axe.min.js");
    match std::fs::read_to_string(&path) {
        Ok(s) => Some(s),
        Err(e) => {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "{}: {e}: scripts/test.sh puts axe-core there (scripts/axe.sh)",
                path.display()
            );
            eprintln!(
                "accessibility audit skipped: {}: {e} (run scripts/axe.sh)",
                path.display()
            );
            None
        }
    }
}
