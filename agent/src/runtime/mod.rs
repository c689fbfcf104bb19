//! The agent's runtime: the executor driven by the leader. It re-adopts
//! surviving tasks, keeps the latest status of every task it knows
//! (`table.rs`), runs the session with the masters and the task log server,
//! and carries out the leader's commands in arrival order.
//!
//! ```text
//!  leader ══ session ══► command(): Launch ─► record STAGING ─► spawn executor.launch
//!                │                  Kill   ─► executor.kill (unknown: KILLED unknown_task)
//!                │                  Reconcile ─► TaskReport{full}
//!                │◄═ open_stream(): Register{tasks: full table} + report queue
//!                ◄══ TaskReport{full: false} ◄── table ◄── executor statuses
//!  HTTP  GET /v1/tasks/{id}/logs ─► sandbox stdout/stderr (logs.rs)
//! ```
//!
//! The runtime never kills a task because a stream dropped or the leader
//! changed: statuses wait in the table and the next registration carries
//! them all. Stopping the runtime (or SIGKILL of the agent) leaves the tasks
//! running; the next start re-adopts them.

mod checks;
#[cfg(test)]
mod container_checks_tests;
mod containers;
pub mod convert;
mod table;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ocean_proto::agent::{master_message, ExecutorInfo, KillTask, LaunchTask};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};
use tracing::{info, warn};

use crate::cgroup::CgroupDriver;
use crate::docker::{ContainerEngine, ContainerHealth, DockerConfig, DockerExecutor, LogStream};
use crate::error::{Error, Result};
use crate::executor::{check_task_id, Executor, ExecutorConfig, RunningTask};
use crate::health::HealthChange;
use crate::logs;
use crate::session::{self, AgentIdentity, SessionHandler, SessionState, StreamOpening};
use crate::task::{Reason, TaskState, TaskStatus};
use checks::Checks;
use convert::{status_to_proto, task_spec};
use table::TaskTable;

/// How long an ended task stays in the table (and in every report).
pub const TERMINAL_RETENTION: Duration = Duration::from_secs(600);

/// Launches run concurrently up to this many at a time: enough that a large
/// batch is not serialised, few enough not to fork a thousand wrappers at once.
pub const MAX_CONCURRENT_LAUNCHES: usize = 64;

/// Everything the runtime needs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Who the agent is (id, host, attributes, resources, ports, address).
    pub identity: AgentIdentity,
    /// Masters' gRPC addresses; any one will do, the session finds the leader.
    pub masters: Vec<String>,
    /// Executor settings (data dir, wrapper, log cap, ...).
    pub executor: ExecutorConfig,
    /// The cgroup driver; its parent should be unique to this agent, since
    /// recovery removes task cgroups it has no checkpoint for.
    pub cgroups: Arc<dyn CgroupDriver>,
    /// How long ended tasks stay in reports ([`TERMINAL_RETENTION`]).
    pub terminal_retention: Duration,
    /// See [`MAX_CONCURRENT_LAUNCHES`].
    pub max_concurrent_launches: usize,
    /// Receives the session's state (leader, registrations), if given.
    pub session_state: Option<watch::Sender<SessionState>>,
    /// The Docker executor's settings; `None` disables it (reported as
    /// unavailable, so container jobs go elsewhere).
    pub docker: Option<DockerConfig>,
    /// The engine to use instead of connecting to `docker.socket` (tests).
    pub docker_engine: Option<Arc<dyn ContainerEngine>>,
    /// How often tasks' usage is sampled and pushed to the leader
    /// ([`crate::usage::DEFAULT_INTERVAL`]).
    pub usage_interval: Duration,
    /// Where to serve Prometheus `/metrics` (per-task usage); `None`: not served.
    pub metrics_addr: Option<SocketAddr>,
    /// Host checks reported on the session; `None` reports none.
    pub host_checks: Option<crate::host_checks::HostChecksConfig>,
    /// TLS to the masters: the CA to trust and this agent's certificate
    /// (whose identity must be this agent's id); `None`: plain text.
    pub tls: Option<tonic::transport::ClientTlsConfig>,
}

impl AgentConfig {
    /// A config with default retention and launch concurrency.
    pub fn new(
        identity: AgentIdentity,
        masters: Vec<String>,
        executor: ExecutorConfig,
        cgroups: Arc<dyn CgroupDriver>,
    ) -> Self {
        Self {
            identity,
            masters,
            executor,
            cgroups,
            terminal_retention: TERMINAL_RETENTION,
            max_concurrent_launches: MAX_CONCURRENT_LAUNCHES,
            session_state: None,
            docker: None,
            docker_engine: None,
            usage_interval: crate::usage::DEFAULT_INTERVAL,
            metrics_addr: None,
            host_checks: None,
            tls: None,
        }
    }
}

/// The address to advertise for a listener bound at `bound`: itself, unless
/// it is a wildcard (`0.0.0.0`), then the agent's advertised host.
pub fn advertised_http_addr(bound: SocketAddr, address: &str) -> String {
    if !bound.ip().is_unspecified() {
        return bound.to_string();
    }
    if address.contains(':') && !address.starts_with('[') {
        format!("[{address}]:{}", bound.port())
    } else {
        format!("{address}:{}", bound.port())
    }
}

/// Runs the agent until `shutdown` resolves: re-adopts surviving tasks,
/// serves task logs on `http`, and keeps a session with the leader. The
/// tasks keep running after it returns.
pub async fn run(
    config: AgentConfig,
    http: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    if config.masters.is_empty() {
        return Err(Error::Parse {
            what: "master addresses",
            input: String::new(),
            message: "give at least one master gRPC address, HOST:PORT".into(),
        });
    }
    let bound = http
        .local_addr()
        .map_err(Error::io("read the address of", "the task log listener"))?;
    let http_addr = advertised_http_addr(bound, &config.identity.address);
    let data_dir = config.executor.data_dir.clone();
    let data_dir_checks = data_dir.clone();
    let (executor, mut status_rx) = Executor::new(
        config.executor.clone(),
        Arc::clone(&config.cgroups),
        config.identity.ports,
    );
    let executor = Arc::new(executor);
    let recovery = executor.recover().await?;
    info!(
        adopted = recovery.adopted.len(),
        ended = recovery.ended.len(),
        orphan_cgroups = recovery.orphan_cgroups.len(),
        "recovered tasks"
    );
    let (docker_started, docker_info) = crate::docker::start(
        config.docker.as_ref(),
        config.docker_engine.clone(),
        &config.identity.id,
        &config.executor,
        executor.status_sender(),
    )
    .await;
    let (docker, docker_recovery) = docker_started.unzip();
    let table = Arc::new(Mutex::new(TaskTable::default()));
    {
        // Recovery's statuses are in the first registration, not reports.
        let mut t = lock(&table);
        while let Ok(status) = status_rx.try_recv() {
            t.record(status);
        }
    }

    let lookup = Arc::clone(&table);
    let live: Option<logs::LiveLogs> = docker.clone().map(|d| -> logs::LiveLogs {
        Arc::new(move |task: &str, stream: &'static str, tail, follow| {
            let stream = if stream == "stderr" {
                LogStream::Stderr
            } else {
                LogStream::Stdout
            };
            d.live_logs(task, stream, tail, follow)
        })
    });
    let router = logs::router_with_live(
        data_dir,
        Arc::new(move |task: &str| lock(&lookup).has_ended(task)),
        live,
    );
    let server = tokio::spawn(async move {
        if let Err(error) = axum::serve(http, router).await {
            warn!(%error, "the task log server stopped");
        }
    });
    info!(agent = %config.identity.id, http = %http_addr, masters = ?config.masters, "agent running");

    let (usage, usage_rx) = crate::usage::Latest::new();
    let (sampler, metrics) = crate::usage::start(
        Arc::clone(&executor),
        docker.clone(),
        config.usage_interval,
        usage,
        config.metrics_addr,
        &config.identity.id,
    )
    .await?;
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (checks_tx, checks_rx) = watch::channel(None);
    let host_checks = config.host_checks.clone().map(|cfg| {
        let t = Arc::clone(&table);
        let tasks: crate::host_checks::TaskSnapshot = Arc::new(move || lock(&t).snapshot());
        crate::host_checks::spawn(
            cfg,
            Arc::new(crate::host_checks::RealReads),
            tasks,
            checks_tx,
        )
    });
    let handler = Arc::new(Handler {
        usage: usage_rx,
        host_checks: checks_rx,
        executors: vec![
            ExecutorInfo {
                name: NATIVE_EXECUTOR.into(),
                available: true,
                ..Default::default()
            },
            docker_info.clone(),
        ],
        identity: config.identity.clone(),
        http_addr,
        table: Arc::clone(&table),
        commands: cmd_tx,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let state = config
        .session_state
        .clone()
        .unwrap_or_else(|| watch::channel(SessionState::default()).0);
    // Heartbeats must not queue behind launches, kills and log serving:
    // the session has a thread and a runtime of its own.
    let mut session = session::spawn_on_own_thread(
        config.masters.clone(),
        config.tls.clone(),
        handler,
        state,
        stop_rx,
    )?;

    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let (health_tx, health_rx) = mpsc::unbounded_channel();
    let mut checks = Checks::new(
        &config.identity.address,
        &config.identity.hostname,
        health_tx,
    );
    match crate::checkpoint::read_all(&data_dir_checks) {
        Ok(checkpoints) => checks.recovered(&recovery.adopted, &checkpoints),
        Err(error) => {
            warn!(%error, "cannot read checkpoints: re-adopted tasks are not health checked")
        }
    }
    if let (Some(docker), Some(recovery)) = (&docker, &docker_recovery) {
        checks.recovered_containers(&recovery.checked, &docker.engine());
    }
    let mut runtime = Runtime {
        checks,
        health_rx,
        executor,
        docker,
        docker_config: config.docker.clone(),
        docker_reason: docker_info.reason.clone(),
        agent_id: config.identity.id.clone(),
        table,
        status_rx,
        done_tx,
        launching: HashMap::new(),
        permits: Arc::new(Semaphore::new(config.max_concurrent_launches.max(1))),
        retention: config.terminal_retention,
    };
    let result = tokio::select! {
        () = shutdown => Ok(()),
        () = runtime.run(cmd_rx, done_rx) => Ok(()),
        joined = &mut session => match joined {
            Ok(result) => result,
            Err(_) => Err(Error::Session("the session thread stopped without a result".into())),
        },
    };
    let _ = stop_tx.send(true);
    server.abort();
    sampler.abort();
    if let Some(metrics) = metrics {
        metrics.abort();
    }
    if let Some(h) = host_checks {
        h.abort();
    }
    // The session sees the stop within its next poll; it ends with its thread.
    let _ = tokio::time::timeout(Duration::from_secs(1), &mut session).await;
    info!("agent stopped; its tasks keep running");
    result
}

fn lock(table: &Mutex<TaskTable>) -> MutexGuard<'_, TaskTable> {
    table
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The name agents report for the native executor.
pub const NATIVE_EXECUTOR: &str = "native";

/// The session's view of the runtime.
struct Handler {
    /// What the registration says about the executors.
    executors: Vec<ExecutorInfo>,
    identity: AgentIdentity,
    http_addr: String,
    table: Arc<Mutex<TaskTable>>,
    commands: mpsc::UnboundedSender<master_message::Kind>,
    usage: watch::Receiver<Option<Arc<ocean_proto::agent::UsageReport>>>,
    /// The latest host checks, sent on each new stream.
    host_checks: watch::Receiver<Option<ocean_proto::agent::HostChecks>>,
}

impl SessionHandler for Handler {
    fn usage(&self) -> Option<watch::Receiver<Option<Arc<ocean_proto::agent::UsageReport>>>> {
        Some(self.usage.clone())
    }

    fn open_stream(&self) -> StreamOpening {
        let (tasks, reports) = lock(&self.table).open_stream();
        let mut register = session::register_message(&self.identity, tasks, self.http_addr.clone());
        register.executors = self.executors.clone();
        StreamOpening {
            register,
            reports,
            host_checks: Some(self.host_checks.clone()),
        }
    }

    fn command(&self, command: master_message::Kind) {
        // The runtime outlives the session; a closed channel means shutdown.
        let _ = self.commands.send(command);
    }
}

/// The end of one launch.
struct LaunchDone {
    task_id: String,
    result: std::result::Result<Launched, String>,
}

/// What a successful launch started.
enum Launched {
    /// The native executor's task.
    Native(RunningTask),
    /// A container, with its health checks (the container's id is asked
    /// of the Docker executor: it may have ended already).
    Container(ContainerHealth),
}

enum Event {
    Command(master_message::Kind),
    Status(TaskStatus),
    Launched(LaunchDone),
    Health(HealthChange),
    Expire,
}

/// The single owner of command handling, so commands apply in order.
struct Runtime {
    executor: Arc<Executor>,
    docker: Option<Arc<DockerExecutor>>,
    docker_config: Option<DockerConfig>,
    /// Why there is no Docker executor, when there is none.
    docker_reason: String,
    agent_id: String,
    table: Arc<Mutex<TaskTable>>,
    status_rx: mpsc::UnboundedReceiver<TaskStatus>,
    done_tx: mpsc::UnboundedSender<LaunchDone>,
    /// Tasks whose launch is under way, with a kill that arrived meanwhile
    /// (`Some(grace)`, where a `None` grace means the task's own).
    launching: HashMap<String, Option<Option<Duration>>>,
    permits: Arc<Semaphore>,
    retention: Duration,
    checks: Checks,
    health_rx: mpsc::UnboundedReceiver<HealthChange>,
}

impl Runtime {
    async fn run(
        &mut self,
        mut commands: mpsc::UnboundedReceiver<master_message::Kind>,
        mut launched: mpsc::UnboundedReceiver<LaunchDone>,
    ) {
        let every = self
            .retention
            .clamp(Duration::from_millis(10), Duration::from_secs(10));
        let mut expire = tokio::time::interval(every);
        expire.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let event = tokio::select! {
                Some(c) = commands.recv() => Event::Command(c),
                Some(s) = self.status_rx.recv() => Event::Status(s),
                Some(d) = launched.recv() => Event::Launched(d),
                Some(h) = self.health_rx.recv() => Event::Health(h),
                _ = expire.tick() => Event::Expire,
                else => return,
            };
            match event {
                Event::Command(master_message::Kind::Launch(l)) => self.launch(l.tasks),
                Event::Command(master_message::Kind::Kill(k)) => self.kill(k.tasks),
                Event::Command(master_message::Kind::Reconcile(_)) => self.reconcile(),
                Event::Command(_) => {}
                Event::Status(first) => self.statuses(Some(first)),
                Event::Launched(done) => self.launched(done),
                Event::Health(change) => {
                    let mut table = lock(&self.table);
                    if let Some(wire) = table.set_health(&change.task_id, change.health) {
                        table.send(vec![wire], false);
                    }
                }
                Event::Expire => {
                    let dropped = lock(&self.table).expire(self.retention);
                    if dropped > 0 {
                        info!(dropped, "forgot tasks that ended a while ago");
                    }
                }
            }
        }
    }

    /// Records `first` and everything else the executor has queued, and
    /// reports them in one message.
    fn statuses(&mut self, first: Option<TaskStatus>) {
        let mut table = lock(&self.table);
        let mut out = Vec::new();
        // Bounded, so a flood of statuses cannot starve commands.
        let queued = std::iter::from_fn(|| self.status_rx.try_recv().ok()).take(4096);
        for status in first.into_iter().chain(queued) {
            let id = status.task_id.clone();
            if status.state.is_terminal() {
                self.checks.stop(&id);
            }
            if table.record(status) {
                out.extend(table.wire(&id));
            }
        }
        table.send(out, false);
    }

    fn launch(&mut self, tasks: Vec<LaunchTask>) {
        // A handle of its own, so `self` stays free for container launches.
        let table = Arc::clone(&self.table);
        let mut table = lock(&table);
        let mut out = Vec::with_capacity(tasks.len());
        for t in tasks {
            if let Some(known) = table.wire(&t.task_id) {
                // Idempotent by task id: say where it is instead.
                out.push(known);
                continue;
            }
            if t.docker.is_some() {
                self.launch_container(&t, &mut table, &mut out);
                continue;
            }
            let spec = task_spec(&t).and_then(|spec| {
                check_task_id(&spec.task_id)
                    .map(|()| spec)
                    .map_err(|e| match e {
                        Error::InvalidSpec { message, .. } => message,
                        other => other.to_string(),
                    })
            });
            let spec = match spec {
                Ok(spec) => spec,
                Err(message) => {
                    warn!(task = %t.task_id, %message, "rejected launch");
                    let status = failed(&t.task_id, message);
                    out.push(status_to_proto(&status));
                    if !t.task_id.is_empty() {
                        table.record(status);
                    }
                    continue;
                }
            };
            // Recorded before anything awaits: a Reconcile right after lists it.
            let staging = TaskStatus::new(&spec.task_id, TaskState::Staging);
            out.push(status_to_proto(&staging));
            table.record(staging);
            self.checks.expect(&spec);
            self.launching.insert(spec.task_id.clone(), None);
            let executor = Arc::clone(&self.executor);
            let permits = Arc::clone(&self.permits);
            let done = self.done_tx.clone();
            tokio::spawn(async move {
                // The semaphore is never closed.
                let _permit = permits.acquire_owned().await;
                let task_id = spec.task_id.clone();
                let result = executor
                    .launch(spec)
                    .await
                    .map(Launched::Native)
                    .map_err(|e| e.to_string());
                let _ = done.send(LaunchDone { task_id, result });
            });
        }
        table.send(out, false);
    }

    fn launched(&mut self, done: LaunchDone) {
        let pending_kill = self.launching.remove(&done.task_id).flatten();
        match &done.result {
            Ok(Launched::Container(health)) => {
                let running = self.docker.as_ref().and_then(|d| {
                    d.running_container(&done.task_id)
                        .map(|container| (container, d.engine()))
                });
                self.checks.launched_container(
                    &done.task_id,
                    running
                        .as_ref()
                        .map(|(c, engine)| (c.as_str(), health, Arc::clone(engine))),
                );
            }
            Ok(Launched::Native(task)) => self.checks.launched(&done.task_id, Some(task)),
            Err(_) => {
                self.checks.launched(&done.task_id, None);
                self.checks.launched_container(&done.task_id, None);
            }
        }
        match done.result {
            Ok(_) => {
                if let Some(grace) = pending_kill {
                    info!(task = %done.task_id, "carrying out a kill that arrived during launch");
                    if let Err(error) = self.kill_one(&done.task_id, grace) {
                        warn!(%error, task = %done.task_id, "cannot kill task");
                    }
                }
            }
            Err(message) => {
                // The executor reports most failures itself; take those in
                // first, then make sure the task does not stay STAGING.
                self.statuses(None);
                let mut table = lock(&self.table);
                if !table
                    .get(&done.task_id)
                    .is_some_and(|s| s.state.is_terminal())
                {
                    let status = failed(&done.task_id, message);
                    let wire = status_to_proto(&status);
                    table.record(status);
                    table.send(vec![wire], false);
                }
            }
        }
    }

    fn kill(&mut self, tasks: Vec<KillTask>) {
        let mut out = Vec::new();
        for k in tasks {
            let grace = (k.grace_ms > 0).then(|| Duration::from_millis(k.grace_ms));
            if let Some(pending) = self.launching.get_mut(&k.task_id) {
                *pending = Some(grace);
                continue;
            }
            if self.kill_one(&k.task_id, grace).is_ok() {
                continue;
            }
            // Not running: it may just have ended (its status queued).
            self.statuses(None);
            match lock(&self.table).wire(&k.task_id) {
                Some(known) => out.push(known),
                None => {
                    let mut status = TaskStatus::new(&k.task_id, TaskState::Killed);
                    status.reason = Some(Reason::UnknownTask);
                    status.message = Some("no such task on this agent".into());
                    out.push(status_to_proto(&status));
                }
            }
        }
        lock(&self.table).send(out, false);
    }

    fn reconcile(&mut self) {
        self.statuses(None);
        let mut table = lock(&self.table);
        let all = table.snapshot();
        info!(tasks = table.len(), "full report for the leader");
        table.send(all, true);
    }
}

fn failed(task_id: &str, message: String) -> TaskStatus {
    let mut status = TaskStatus::new(task_id, TaskState::Failed);
    status.reason = Some(Reason::LaunchFailed);
    status.message = Some(message);
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listeners_advertise_the_agent_address() {
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap_or_else(|_| unreachable!());
        assert_eq!(advertised_http_addr(any, "10.0.0.5"), "10.0.0.5:8080");
        assert_eq!(advertised_http_addr(any, "fe80::1"), "[fe80::1]:8080");
        let one: SocketAddr = "127.0.0.1:9".parse().unwrap_or_else(|_| unreachable!());
        assert_eq!(advertised_http_addr(one, "10.0.0.5"), "127.0.0.1:9");
    }
}
