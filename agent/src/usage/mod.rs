//! Per-task usage: what each task's cgroup says it uses, sampled every
//! `--usage-interval` (5 s by default), pushed to the leader on the session
//! stream and served to Prometheus at `/metrics` on the agent's own
//! listener.
//!
//! ```text
//!  every interval: Executor::tasks() ─► CgroupDriver::usage (cpu, memory, pids)
//!                                      + sandbox size (disk.rs)
//!                  ─► Sampler: cumulative cpu ns ─► cores over the interval (rate.rs)
//!                  ─► Latest (the newest sample of every task)
//!                        ├─► watch ─► session: AgentMessage::Usage (latest only, never queued)
//!                        └─► GET /metrics (metrics.rs, text format with job and tree labels)
//! ```
//!
//! Reading a cgroup is a handful of small file reads, done on a blocking
//! thread so a slow filesystem never holds the runtime.

mod disk;
pub mod metrics;
mod rate;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ocean_proto::agent::{TaskUsage, UsageReport};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::cgroup::CgroupDriver;
use crate::error::{Error, Result};
use crate::executor::{Executor, RunningTask};
pub use rate::Sampler;

/// The default interval between two samples.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// The newest report, shared by the session (which pushes it) and the
/// metrics endpoint (which renders it).
#[derive(Debug, Default)]
pub struct Latest {
    report: RwLock<Option<Arc<UsageReport>>>,
    tx: Option<watch::Sender<Option<Arc<UsageReport>>>>,
}

impl Latest {
    /// A holder whose reports are also published on a watch channel.
    pub fn new() -> (Arc<Self>, watch::Receiver<Option<Arc<UsageReport>>>) {
        let (tx, rx) = watch::channel(None);
        let latest = Latest {
            report: RwLock::new(None),
            tx: Some(tx),
        };
        (Arc::new(latest), rx)
    }

    /// The newest report, if any sample was taken yet.
    pub fn get(&self) -> Option<Arc<UsageReport>> {
        self.report
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set(&self, report: UsageReport) {
        let report = Arc::new(report);
        *self.report.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(&report));
        if let Some(tx) = &self.tx {
            tx.send_replace(Some(report));
        }
    }
}

/// Starts the sampler and, with `metrics_addr`, the `/metrics` listener
/// (bound here, so a taken port fails the agent's start naming the flag).
pub async fn start(
    executor: Arc<Executor>,
    interval: Duration,
    latest: Arc<Latest>,
    metrics_addr: Option<SocketAddr>,
    agent: &str,
) -> Result<(JoinHandle<()>, Option<JoinHandle<()>>)> {
    if interval.is_zero() {
        return Err(Error::Parse {
            what: "--usage-interval",
            input: "0".into(),
            message: "must be more than zero".into(),
        });
    }
    let server = match metrics_addr {
        Some(addr) => {
            let listener = TcpListener::bind(addr).await.map_err(Error::io(
                "listen for /metrics (--metrics-addr) on",
                addr.to_string(),
            ))?;
            let router = metrics::router(Arc::clone(&latest), agent.to_string());
            info!(%addr, "serving task usage at /metrics");
            Some(tokio::spawn(async move {
                if let Err(error) = axum::serve(listener, router).await {
                    warn!(%error, "the /metrics server stopped");
                }
            }))
        }
        None => None,
    };
    let sampler = tokio::spawn(run(executor, interval, latest));
    Ok((sampler, server))
}

/// Samples every task the executor runs each `interval` until the runtime
/// that spawned it stops.
pub async fn run(executor: Arc<Executor>, interval: Duration, latest: Arc<Latest>) {
    let mut sampler = Sampler::default();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let tasks = executor.tasks();
        let cgroups = Arc::clone(executor.cgroups());
        let taken = tokio::task::spawn_blocking(move || {
            let report = sample(&mut sampler, cgroups.as_ref(), &tasks, Instant::now());
            (sampler, report)
        })
        .await;
        match taken {
            Ok((back, report)) => {
                sampler = back;
                latest.set(report);
            }
            // A panicking read is a bug; start afresh rather than stop.
            Err(error) => {
                debug!(%error, "usage sample failed");
                sampler = Sampler::default();
            }
        }
    }
}

/// One report of `tasks`, with rates against the sampler's previous reading.
pub fn sample(
    sampler: &mut Sampler,
    cgroups: &dyn CgroupDriver,
    tasks: &[RunningTask],
    now: Instant,
) -> UsageReport {
    let mut out = Vec::with_capacity(tasks.len());
    let mut seen = HashMap::with_capacity(tasks.len());
    for task in tasks {
        let usage = match cgroups.usage(&task.cgroup) {
            Ok(u) => u,
            // Gone between the listing and the read: the task just ended.
            Err(error) => {
                debug!(task = %task.task_id, %error, "cannot read the task's usage");
                continue;
            }
        };
        let cpus_limit = cgroups
            .limits(&task.cgroup)
            .ok()
            .and_then(|l| l.cpus)
            .unwrap_or(0.0);
        let cpu_cores = sampler.cores(&task.task_id, usage.cpu_usage_ns, now);
        seen.insert(task.task_id.as_str(), ());
        out.push(TaskUsage {
            task_id: task.task_id.clone(),
            cpu_cores,
            cpu_usage_ns: usage.cpu_usage_ns.unwrap_or(0),
            cpu_throttled_ns: usage.cpu_throttled_ns,
            memory_rss_bytes: usage.memory_rss_bytes,
            memory_cache_bytes: usage.memory_cache_bytes,
            memory_peak_bytes: usage.memory_peak_bytes,
            memory_limit_bytes: usage.memory_limit_bytes.unwrap_or(0),
            oom_kills: usage.oom_kills,
            pids: usage.pids,
            disk_bytes: disk::size(&task.sandbox),
            cpus_limit,
        });
    }
    sampler.forget_except(|id| seen.contains_key(id));
    UsageReport {
        timestamp_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        interval_ms: sampler.interval_ms(),
        tasks: out,
    }
}

/// The job a task id names: everything before its last dot (task ids are
/// `<job>.<suffix>`).
pub fn job_of(task_id: &str) -> &str {
    task_id.rsplit_once('.').map_or(task_id, |(job, _)| job)
}
