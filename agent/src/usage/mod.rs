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

mod container;
mod disk;
pub mod metrics;
mod rate;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ocean_proto::agent::{TaskUsage, UsageReport};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::cgroup::{CgroupDriver, CgroupUsage};
use crate::docker::{ContainerStats, DockerExecutor};
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
    docker: Option<Arc<DockerExecutor>>,
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
    let sampler = tokio::spawn(run(executor, docker, interval, latest));
    Ok((sampler, server))
}

/// Samples every task the executor runs each `interval` until the runtime
/// that spawned it stops.
pub async fn run(
    executor: Arc<Executor>,
    docker: Option<Arc<DockerExecutor>>,
    interval: Duration,
    latest: Arc<Latest>,
) {
    let mut sampler = Sampler::default();
    let mut container_cgroups = container::Cgroups::default();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let started = Instant::now();
        // Containers first, through the engine's stats (network calls, so
        // not on the blocking thread).
        let containers = match &docker {
            Some(d) => container_stats(d, &mut container_cgroups).await,
            None => Vec::new(),
        };
        let tasks = executor.tasks();
        let cgroups = Arc::clone(executor.cgroups());
        let taken = tokio::task::spawn_blocking(move || {
            // One instant for the whole sample, so the interval is one.
            let now = Instant::now();
            let mut report = sample(&mut sampler, cgroups.as_ref(), &tasks, now);
            for (task, stats, memory) in containers {
                let usage = CgroupUsage {
                    cpu_usage_ns: stats.cpu_usage_ns,
                    cpu_throttled_ns: stats.cpu_throttled_ns,
                    cpu_throttled_periods: stats.cpu_throttled_periods,
                    memory_rss_bytes: stats.memory_rss_bytes,
                    memory_cache_bytes: stats.memory_cache_bytes,
                    memory_peak_bytes: stats.memory_peak_bytes,
                    memory_limit_bytes: stats.memory_limit_bytes,
                    // The engine's stats have no count: the container's
                    // own memory cgroup does.
                    oom_kills: memory.and_then(|m| m.oom_kills()).unwrap_or(0),
                    pids: stats.pids,
                };
                report
                    .tasks
                    .push(task_usage(&mut sampler, task, &usage, 0.0, 0, now));
            }
            let keep: std::collections::HashSet<String> =
                report.tasks.iter().map(|t| t.task_id.clone()).collect();
            sampler.forget_except(|id| keep.contains(id));
            (sampler, report)
        })
        .await;
        match taken {
            Ok((back, report)) => {
                sampler = back;
                debug!(
                    tasks = report.tasks.len(),
                    took_us = started.elapsed().as_micros() as u64,
                    "usage sampled"
                );
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

/// The engine's stats of every running container task, with its memory
/// cgroup (found once per container, from the pid `inspect` gives); a
/// container that cannot be read (it just ended) is left out of this
/// sample.
async fn container_stats(
    docker: &DockerExecutor,
    cgroups: &mut container::Cgroups,
) -> Vec<(String, ContainerStats, Option<container::MemoryDir>)> {
    let engine = docker.engine();
    let mut out = Vec::new();
    let mut running = std::collections::HashSet::new();
    for task in docker.tasks() {
        let Some(id) = docker.running_container(&task) else {
            continue;
        };
        let stats = match engine.stats(&id).await {
            Ok(stats) => stats,
            Err(error) => {
                debug!(%task, %error, "cannot read the container's stats");
                continue;
            }
        };
        let pid = if cgroups.known(&id) {
            None
        } else {
            engine.inspect(&id).await.ok().map(|i| i.pid)
        };
        let memory = cgroups.dir(&id, || pid).cloned();
        running.insert(id);
        out.push((task, stats, memory));
    }
    cgroups.retain(|id| running.contains(id));
    out
}

/// One task's sample from its counters.
fn task_usage(
    sampler: &mut Sampler,
    task_id: String,
    usage: &CgroupUsage,
    cpus_limit: f64,
    disk_bytes: u64,
    now: Instant,
) -> TaskUsage {
    let cpu_cores = sampler.cores(&task_id, usage.cpu_usage_ns, now);
    TaskUsage {
        task_id,
        cpu_cores,
        cpu_usage_ns: usage.cpu_usage_ns.unwrap_or(0),
        cpu_throttled_ns: usage.cpu_throttled_ns,
        cpu_throttled_periods: usage.cpu_throttled_periods,
        memory_rss_bytes: usage.memory_rss_bytes,
        memory_cache_bytes: usage.memory_cache_bytes,
        memory_peak_bytes: usage.memory_peak_bytes,
        memory_limit_bytes: usage.memory_limit_bytes.unwrap_or(0),
        oom_kills: usage.oom_kills,
        pids: usage.pids,
        disk_bytes,
        cpus_limit,
    }
}

/// One report of `tasks` (native ones; the caller adds containers and
/// drops the sampler's readings of tasks that are gone), with rates
/// against the sampler's previous reading.
pub fn sample(
    sampler: &mut Sampler,
    cgroups: &dyn CgroupDriver,
    tasks: &[RunningTask],
    now: Instant,
) -> UsageReport {
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        let usage = match cgroups.usage(&task.cgroup) {
            Ok(u) => u,
            // Gone between the listing and the read: the task just ended.
            Err(error) => {
                debug!(task = %task.task_id, %error, "cannot read the task's usage");
                continue;
            }
        };
        let cpus_limit = sampler.quota(&task.task_id, || {
            cgroups
                .limits(&task.cgroup)
                .ok()
                .map(|l| l.cpus.unwrap_or(0.0))
        });
        let disk = sampler.disk(&task.task_id, now, || disk::size(&task.sandbox));
        out.push(task_usage(
            sampler,
            task.task_id.clone(),
            &usage,
            cpus_limit,
            disk,
            now,
        ));
    }
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
