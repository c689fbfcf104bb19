//! Host checks: every `interval` the agent judges its own host (disk and
//! inode space of the data and sandbox dirs, memory pressure, load, its
//! own restarts, failing task launches, an operator's check command) and
//! reports the verdicts on its session stream. The leader keeps the latest
//! per agent, adds the clock skew check, and shows them on the agent's
//! view; the healing framework acts on them.
//!
//! ```text
//!  HostReads (real | test) ─► Readings ─► evaluate() (pure) ─► HostChecks
//!  starts file, task table ──┘                                    │ watch
//!                                  session: sent on each new stream and on change
//! ```

pub mod evaluate;
pub mod reads;
pub mod restarts;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ocean_proto::agent::{HostChecks, TaskStatus};
use tokio::sync::watch;
use tracing::{debug, warn};

pub use evaluate::{evaluate, Readings};
pub use reads::{FsSpace, HostReads, MemInfo, RealReads, TestReads};

/// The limits and the cadence of host checks.
#[derive(Debug, Clone, PartialEq)]
pub struct HostChecksConfig {
    /// How often to check.
    pub interval: Duration,
    /// The agent's data dir; its file system and that of `sandboxes/` are
    /// checked.
    pub data_dir: PathBuf,
    /// Least free space (percent) of each checked file system.
    pub min_free_disk_percent: f64,
    /// Least free inodes (percent).
    pub min_free_inodes_percent: f64,
    /// Most memory pressure (PSI `some avg10`, percent) where PSI exists.
    pub max_memory_pressure_percent: f64,
    /// Least available memory (percent of total) where it does not.
    pub min_available_memory_percent: f64,
    /// Most 1-minute load per CPU.
    pub max_load_per_cpu: f64,
    /// Most restarts of the agent within `restart_window`.
    pub max_restarts: u64,
    pub restart_window: Duration,
    /// Most failed task launches among the tasks the agent still reports.
    pub max_launch_failures: u64,
    /// The operator's check (`/bin/sh -c`), failing unless it exits 0
    /// within `command_timeout`.
    pub command: Option<String>,
    pub command_timeout: Duration,
    /// Largest clock skew against the leader, judged by the leader.
    pub max_clock_skew_ms: u64,
}

impl HostChecksConfig {
    /// Defaults for an agent whose data dir is `data_dir`.
    pub fn new(data_dir: PathBuf) -> Self {
        HostChecksConfig {
            interval: Duration::from_secs(5),
            data_dir,
            min_free_disk_percent: 10.0,
            min_free_inodes_percent: 5.0,
            max_memory_pressure_percent: 40.0,
            min_available_memory_percent: 5.0,
            max_load_per_cpu: 8.0,
            max_restarts: 5,
            restart_window: Duration::from_secs(3600),
            max_launch_failures: 5,
            command: None,
            command_timeout: Duration::from_secs(10),
            max_clock_skew_ms: 2000,
        }
    }

    /// The directories whose file systems are checked.
    pub fn dirs(&self) -> Vec<PathBuf> {
        vec![self.data_dir.clone(), self.data_dir.join("sandboxes")]
    }
}

/// The tasks the agent knows, for counting failed launches.
pub type TaskSnapshot = Arc<dyn Fn() -> Vec<TaskStatus> + Send + Sync>;

/// Reads the host once (blocking reads: run it off the async threads).
pub fn read(cfg: &HostChecksConfig, reads: &dyn HostReads) -> Readings {
    let fs = cfg
        .dirs()
        .into_iter()
        .map(|d| {
            // A sandbox dir not made yet lives on its parent's file system.
            let probe = if d.exists() {
                d.clone()
            } else {
                cfg.data_dir.clone()
            };
            let space = reads.fs_space(&probe).map_err(|e| e.to_string());
            (d, space)
        })
        .collect();
    Readings {
        fs,
        pressure: reads.memory_pressure().map_err(|e| e.to_string()),
        meminfo: reads.meminfo().map_err(|e| e.to_string()),
        load1: reads.load1().map_err(|e| e.to_string()),
        cpus: reads.cpus(),
        restarts: 0,
        launch_failures: 0,
        command: None,
    }
}

/// Runs the operator's check command; `Ok` when it exits 0 in time.
pub async fn run_command(cmd: &str, timeout: Duration) -> Result<(), String> {
    let child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(timeout, child).await {
        Err(_) => Err(format!(
            "the check command did not finish within {} s",
            timeout.as_secs_f64()
        )),
        Ok(Err(e)) => Err(format!("the check command could not start: {e}")),
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => {
            let mut said = String::from_utf8_lossy(&out.stderr).trim().to_string();
            if said.is_empty() {
                said = String::from_utf8_lossy(&out.stdout).trim().to_string();
            }
            said.truncate(512);
            Err(format!("the check command failed ({}): {said}", out.status))
        }
    }
}

/// One round: read, count, run the command, judge.
pub async fn round(
    cfg: &HostChecksConfig,
    reads: Arc<dyn HostReads>,
    starts: &[u64],
    tasks: &TaskSnapshot,
    now_ms: u64,
) -> HostChecks {
    let c = cfg.clone();
    let mut r = match tokio::task::spawn_blocking(move || read(&c, reads.as_ref())).await {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "host checks: the read panicked");
            read(cfg, &TestReads::default())
        }
    };
    r.restarts = restarts::restarts_within(starts, now_ms, cfg.restart_window);
    r.launch_failures = tasks()
        .iter()
        .filter(|t| t.reason == "launch_failed")
        .count() as u64;
    if let Some(cmd) = &cfg.command {
        r.command = Some(run_command(cmd, cfg.command_timeout).await);
    }
    HostChecks {
        timestamp_ms: now_ms,
        checks: evaluate(cfg, &r),
        interval_ms: cfg.interval.as_millis() as u64,
        data_dir: cfg.data_dir.display().to_string(),
        max_clock_skew_ms: cfg.max_clock_skew_ms,
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Records this start of the agent and checks the host every interval,
/// publishing each round on `out`, until `out` has no receiver left.
pub fn spawn(
    cfg: HostChecksConfig,
    reads: Arc<dyn HostReads>,
    tasks: TaskSnapshot,
    out: watch::Sender<Option<HostChecks>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let starts = restarts::record_start(&cfg.data_dir, now_ms(), cfg.restart_window)
            .unwrap_or_else(|e| {
                warn!(error = %e, "host checks: cannot record the agent's start");
                Vec::new()
            });
        let mut every = tokio::time::interval(cfg.interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let checks = round(&cfg, reads.clone(), &starts, &tasks, now_ms()).await;
            let failing: Vec<&str> = checks
                .checks
                .iter()
                .filter(|c| !c.ok)
                .map(|c| c.name.as_str())
                .collect();
            if !failing.is_empty() {
                warn!(?failing, "host checks failing");
            } else {
                debug!("host checks pass");
            }
            if out.send(Some(checks)).is_err() {
                return;
            }
        }
    })
}

/// Where the start times are kept.
pub fn starts_path(data_dir: &Path) -> PathBuf {
    data_dir.join("agent-starts")
}

/// The next host checks to send on a stream: resolves on a change of the
/// latest round, never when there is no source (or it is gone).
pub async fn next(rx: &mut Option<watch::Receiver<Option<HostChecks>>>) -> Option<HostChecks> {
    let Some(r) = rx.as_mut() else {
        return std::future::pending().await;
    };
    loop {
        if r.changed().await.is_err() {
            *rx = None;
            return std::future::pending().await;
        }
        if let Some(c) = r.borrow_and_update().clone() {
            return Some(c);
        }
    }
}
