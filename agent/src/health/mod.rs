//! Health checks, run by the agent against its own tasks (the masters never
//! poll tasks). One checker per task with checks; each check probes on its
//! own interval, and the checker reports only when the task's health
//! changes (healthy, unhealthy, or "replace me" after
//! `max_consecutive_failures` failures in a row).
//!
//! ```text
//!  runtime ── spawn(task, checks) ──► checker ─┬─ check loop: probe, timeout, sleep(interval)
//!     ▲                                        └─ check loop ...
//!     └──────── HealthChange (only changes) ◄── state.rs: CheckState, TaskHealth (pure)
//! ```
//! Probes ([`probe::Probe`]) are http (an HTTP/1.1 GET on the task's host
//! port), tcp (a connect) and command (`/bin/sh -c` in the task's
//! environment and sandbox). Time is tokio's, so tests run it paused.

pub mod probe;
pub mod state;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tracing::debug;

pub use probe::Probe;
pub use state::{CheckState, TaskHealth};

/// Until a check first passes (and within the grace period), it probes at
/// least this often, so a new task is found healthy soon after it serves
/// rather than up to an interval later.
pub const FIRST_PASS_EVERY: Duration = Duration::from_millis(250);

/// The kind of check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP GET on a port.
    Http,
    /// TCP connect to a port.
    Tcp,
    /// A shell command.
    Command,
}

impl Protocol {
    /// `http`, `tcp` or `command`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Tcp => "tcp",
            Protocol::Command => "command",
        }
    }

    /// Parses [`Protocol::as_str`].
    pub fn parse(s: &str) -> Option<Protocol> {
        match s {
            "http" => Some(Protocol::Http),
            "tcp" => Some(Protocol::Tcp),
            "command" => Some(Protocol::Command),
            _ => None,
        }
    }
}

/// One check of a task, as the agent runs it (kept in the task's
/// checkpoint, so a restarted agent checks its re-adopted tasks again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheckSpec {
    /// What kind.
    pub protocol: Protocol,
    /// For http and tcp: which of the task's ports (`PORT<i>`).
    pub port_index: usize,
    /// For http: the path.
    pub path: String,
    /// For http: lowest healthy status.
    pub status_min: u16,
    /// For http: highest healthy status.
    pub status_max: u16,
    /// For command: the shell command.
    pub command: String,
    /// Failures ignored this long after the start, until the first pass.
    pub grace_period: Duration,
    /// Between the end of one probe and the start of the next.
    pub interval: Duration,
    /// A probe taking longer fails.
    pub timeout: Duration,
    /// Replace the task after this many failures in a row; 0 = never.
    pub max_consecutive_failures: u32,
}

/// A change of a task's health, for the runtime to record and report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthChange {
    /// The task.
    pub task_id: String,
    /// Its health now.
    pub health: TaskHealth,
}

/// Starts checking `task_id`, which started at `started`. Abort the handle
/// (or drop the receiver) to stop every probe of the task.
pub fn spawn(
    task_id: String,
    checks: Vec<(HealthCheckSpec, Arc<dyn Probe>)>,
    started: Instant,
    changes: mpsc::UnboundedSender<HealthChange>,
) -> JoinHandle<()> {
    tokio::spawn(run(task_id, checks, started, changes))
}

async fn run(
    task_id: String,
    checks: Vec<(HealthCheckSpec, Arc<dyn Probe>)>,
    started: Instant,
    changes: mpsc::UnboundedSender<HealthChange>,
) {
    let (results_tx, mut results) = mpsc::unbounded_channel();
    // Dropped with this future: aborting the checker stops every loop.
    let mut loops = JoinSet::new();
    for (i, (spec, probe)) in checks.iter().enumerate() {
        loops.spawn(check_loop(
            i,
            spec.clone(),
            Arc::clone(probe),
            started,
            results_tx.clone(),
        ));
    }
    drop(results_tx);
    let specs: Vec<HealthCheckSpec> = checks.into_iter().map(|(s, _)| s).collect();
    let mut states = vec![CheckState::default(); specs.len()];
    let mut health = TaskHealth::default();
    while let Some((i, result)) = results.recv().await {
        let Some(state) = states.get_mut(i) else {
            continue;
        };
        state.record(&specs[i], result, started.elapsed());
        let next = health.combine(&specs, &states);
        if next != health {
            debug!(task = %task_id, healthy = ?next.healthy, failed = next.failed, message = %next.message, "task health changed");
            health = next;
            let change = HealthChange {
                task_id: task_id.clone(),
                health: health.clone(),
            };
            if changes.send(change).is_err() {
                return;
            }
        }
    }
}

async fn check_loop(
    index: usize,
    spec: HealthCheckSpec,
    probe: Arc<dyn Probe>,
    started: Instant,
    results: mpsc::UnboundedSender<(usize, Result<(), String>)>,
) {
    let mut passed = false;
    loop {
        let result = match tokio::time::timeout(spec.timeout, probe.check()).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "{} check timed out after {} ms",
                spec.protocol.as_str(),
                spec.timeout.as_millis()
            )),
        };
        passed |= result.is_ok();
        if results.send((index, result)).is_err() {
            return;
        }
        let wait = if !passed && started.elapsed() < spec.grace_period {
            spec.interval.min(FIRST_PASS_EVERY)
        } else {
            spec.interval
        };
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Healthy while the switch is on.
    struct Switch(Arc<AtomicBool>);

    impl Probe for Switch {
        fn check(&self) -> probe::ProbeFuture<'_> {
            let ok = self.0.load(Ordering::SeqCst);
            Box::pin(async move {
                if ok {
                    Ok(())
                } else {
                    Err("off".into())
                }
            })
        }
    }

    /// Never answers.
    struct Hang;

    impl Probe for Hang {
        fn check(&self) -> probe::ProbeFuture<'_> {
            Box::pin(std::future::pending())
        }
    }

    fn spec(max: u32, grace: u64) -> HealthCheckSpec {
        HealthCheckSpec {
            protocol: Protocol::Http,
            port_index: 0,
            path: "/".into(),
            status_min: 200,
            status_max: 399,
            command: String::new(),
            grace_period: Duration::from_secs(grace),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            max_consecutive_failures: max,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn reports_only_changes_and_asks_for_replacement_after_max_failures() {
        let on = Arc::new(AtomicBool::new(true));
        let (tx, mut rx) = mpsc::unbounded_channel();
        let t0 = Instant::now();
        let checker = spawn(
            "t".into(),
            vec![(spec(3, 0), Arc::new(Switch(on.clone())) as Arc<dyn Probe>)],
            t0,
            tx,
        );
        let first = rx.recv().await.map(|c| c.health);
        assert_eq!(first.map(|h| h.healthy), Some(Some(true)));
        // Healthy for a while: nothing more is said.
        tokio::time::sleep(Duration::from_millis(5_500)).await;
        assert!(rx.try_recv().is_err());
        on.store(false, Ordering::SeqCst);
        let switched = Instant::now();
        let sick = rx.recv().await.map(|c| c.health).unwrap_or_default();
        assert_eq!((sick.healthy, sick.failed), (Some(false), false));
        // The second failure says nothing new; the third asks for the
        // replacement, one interval apart each.
        let last = rx.recv().await.map(|c| c.health).unwrap_or_default();
        let took = switched.elapsed();
        assert!(last.failed, "{last:?}");
        assert!(
            took >= Duration::from_secs(2) && took <= Duration::from_secs(3),
            "{took:?}"
        );
        assert_eq!(last.message, "http check failed: off");
        // Failing on: nothing more is said.
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(rx.try_recv().is_err());
        checker.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_probe_fails_by_its_timeout_and_grace_hides_a_slow_start() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let t0 = Instant::now();
        let checker = spawn(
            "t".into(),
            vec![(spec(1, 5), Arc::new(Hang) as Arc<dyn Probe>)],
            t0,
            tx,
        );
        let h = rx.recv().await.map(|c| c.health).unwrap_or_default();
        // Probes within the 5 s grace period were ignored.
        assert!(t0.elapsed() >= Duration::from_secs(5), "{:?}", t0.elapsed());
        assert!(
            h.failed && h.message.contains("timed out after 2000 ms"),
            "{h:?}"
        );
        checker.abort();
    }
}
