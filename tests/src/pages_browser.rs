//! What the dashboard's browser tests share: a real `ocean dev` (its own
//! data dir, free ports, its agent's tasks reaped when it goes), Debian's
//! `chromium` driven by `chromedriver` over WebDriver (fantoccini), and
//! polling helpers. Every process is started in a process group of its
//! own and killed with the whole group when its guard drops, so a failed
//! test leaves no Chromium, driver, master, agent or task behind.
//!
//! Without Chromium a test is skipped on a developer's machine and fails
//! in CI (`CI=true`), where `scripts/test.sh` installs both packages.

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use nix::sys::signal::Signal;
use serde_json::{json, Value};

use crate::cluster::{agent_ports, free_addr, ocean_bin};
use crate::http::Api;

/// Debian's Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's chromium-driver.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A child in its own process group, killed with the group on drop; for
/// `ocean dev`, its agent's task cgroups (which outlive it by design) are
/// reaped too.
#[derive(Debug)]
pub struct Guard {
    child: Child,
    dev_dir: Option<PathBuf>,
}

impl Guard {
    /// Spawns `cmd` in a process group of its own.
    pub fn spawn(cmd: &mut Command, dev_dir: Option<PathBuf>) -> Guard {
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
                crate::tasks::reap_cgroups(&format!("ocean-{}", id.trim()));
            }
        }
    }
}

/// Whether Chromium and its driver are installed; outside CI a missing
/// one skips the test (`false`), in CI it fails it.
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

/// Waits until something listens on `addr`.
pub fn wait_port(addr: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
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

/// Runs `script` in the page and returns what it returns.
pub async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, Vec::new()).await.expect("script")
}

/// A running `ocean dev` with its one agent registered.
#[derive(Debug)]
pub struct Dev {
    /// Its REST (and dashboard) address, `127.0.0.1:PORT`.
    pub http: String,
    pub api: Api,
    /// Its log (stdout and stderr).
    pub log: PathBuf,
    _guard: Guard,
    _dir: tempfile::TempDir,
}

impl Dev {
    /// Starts `ocean dev` on free ports and waits (30 s at most) for its agent.
    pub async fn start() -> Dev {
        let dir = tempfile::tempdir().expect("temp dir");
        let http = free_addr().to_string();
        let grpc = free_addr().to_string();
        let ports = agent_ports();
        let log = dir.path().join("dev.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let guard = Guard::spawn(
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
        Dev {
            http,
            api,
            log,
            _guard: guard,
            _dir: dir,
        }
    }

    /// The last `n` lines of its log, last first (for a failure's report).
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().rev().take(n).collect::<Vec<_>>().join("\n")
    }
}

/// A headless Chromium session, and the guard of its driver.
pub async fn chromium() -> (Client, Guard) {
    let driver_addr = free_addr();
    let driver = Guard::spawn(
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
    (c, driver)
}
