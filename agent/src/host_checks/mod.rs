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
    /// Most kernel OOM kills of processes other than the agent's tasks
    /// within `oom_window` (a host short of memory outside Ocean's limits).
    pub max_oom_kills_outside_tasks: u64,
    pub oom_window: Duration,
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
            max_oom_kills_outside_tasks: 0,
            oom_window: Duration::from_secs(600),
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
        failed_launch_jobs: Vec::new(),
        oom_kills_outside_tasks: None,
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
    oom_kills_in_window: Option<u64>,
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
    let known = tasks();
    // A task id is `<job>.<suffix>` (the masters name them so).
    r.failed_launch_jobs = known
        .iter()
        .filter(|t| t.reason == "launch_failed")
        .map(|t| {
            t.task_id
                .rsplit_once('.')
                .map_or(t.task_id.as_str(), |(job, _)| job)
                .to_string()
        })
        .collect();
    r.launch_failures = r.failed_launch_jobs.len() as u64;
    // Ended tasks stay in the table about as long as the window, so the
    // tasks' own OOM kills are subtracted over the same span.
    let task_ooms = known.iter().filter(|t| t.reason == "oom_killed").count() as u64;
    r.oom_kills_outside_tasks = oom_kills_in_window.map(|n| n.saturating_sub(task_ooms));
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
        let mut oom = OomWindow::default();
        loop {
            every.tick().await;
            let now = now_ms();
            let in_window = match reads.oom_kills() {
                Ok(Some(total)) => Some(oom.record(now, total, cfg.oom_window)),
                _ => None,
            };
            let checks = round(&cfg, reads.clone(), &starts, &tasks, in_window, now).await;
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

/// The kernel's OOM kill counter over a sliding window.
#[derive(Debug, Default)]
pub struct OomWindow {
    samples: std::collections::VecDeque<(u64, u64)>,
}

impl OomWindow {
    /// Records the counter `total` at `now_ms`; returns the kills within
    /// `window` (since the oldest sample still inside it).
    pub fn record(&mut self, now_ms: u64, total: u64, window: Duration) -> u64 {
        let span = window.as_millis() as u64;
        while self.samples.len() > 1
            && self
                .samples
                .get(1)
                .is_some_and(|(t, _)| now_ms.saturating_sub(*t) >= span)
        {
            self.samples.pop_front();
        }
        self.samples.push_back((now_ms, total));
        let base = self.samples.front().map_or(total, |(_, n)| *n);
        total.saturating_sub(base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_kills_count_within_the_window() {
        let mut w = OomWindow::default();
        let win = Duration::from_secs(10);
        assert_eq!(w.record(0, 5, win), 0);
        assert_eq!(w.record(5_000, 6, win), 1);
        assert_eq!(w.record(9_000, 8, win), 3);
        // The first sample leaves the window: counted from the one at 5 s.
        assert_eq!(w.record(15_500, 8, win), 2);
        assert_eq!(w.record(40_000, 8, win), 0);
    }
}
