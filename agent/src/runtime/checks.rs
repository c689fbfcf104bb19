//! The runtime's health checkers: one per running task whose job has
//! checks, started when the launch succeeded (or at recovery, from the
//! checkpoint or the container's label), stopped when the task ends.
//! Container tasks are probed on their host ports like native ones (bridge
//! mappings publish them, host networking listens on them); their command
//! checks run inside the container.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::warn;

use crate::checkpoint::TaskCheckpoint;
use crate::docker::probe::ExecProbe;
use crate::docker::{AdoptedHealth, ContainerEngine, ContainerHealth};
use crate::executor::{task_env, RunningTask};
use crate::health::probe::{CommandProbe, HttpProbe, TcpProbe};
use crate::health::{self, HealthChange, HealthCheckSpec, Probe, Protocol};
use crate::task::TaskSpec;

/// The checkers of one agent.
pub(crate) struct Checks {
    running: HashMap<String, JoinHandle<()>>,
    /// Specs of tasks being launched that have checks.
    pending: HashMap<String, TaskSpec>,
    /// Container tasks being launched that have checks.
    pending_containers: HashSet<String>,
    changes: mpsc::UnboundedSender<HealthChange>,
    /// Where tasks' ports are probed: the agent's advertised address, as
    /// clients reach them (loopback when it is a wildcard or a name).
    target: IpAddr,
    hostname: String,
}

impl Checks {
    pub(crate) fn new(
        address: &str,
        hostname: &str,
        changes: mpsc::UnboundedSender<HealthChange>,
    ) -> Checks {
        let target = address
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<IpAddr>()
            .ok()
            .filter(|ip| !ip.is_unspecified())
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        Checks {
            running: HashMap::new(),
            pending: HashMap::new(),
            pending_containers: HashSet::new(),
            changes,
            target,
            hostname: hostname.to_string(),
        }
    }

    /// Remembers a task being launched, if it has checks.
    pub(crate) fn expect(&mut self, spec: &TaskSpec) {
        if !spec.health_checks.is_empty() {
            self.pending.insert(spec.task_id.clone(), spec.clone());
        }
    }

    /// The launch of `task_id` ended; starts its checks if it runs.
    pub(crate) fn launched(&mut self, task_id: &str, task: Option<&RunningTask>) {
        let Some(spec) = self.pending.remove(task_id) else {
            return;
        };
        if let Some(task) = task {
            self.start(&spec, task, Instant::now());
        }
    }

    /// Starts checking re-adopted tasks, timing their grace period from
    /// their launch.
    pub(crate) fn recovered(&mut self, adopted: &[RunningTask], checkpoints: &[TaskCheckpoint]) {
        let now_ms = crate::task::now_ms();
        for task in adopted {
            let Some(cp) = checkpoints.iter().find(|c| c.task_id == task.task_id) else {
                continue;
            };
            let age = Duration::from_millis(now_ms.saturating_sub(cp.launched_at_ms));
            let started = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
            self.start(&cp.spec, task, started);
        }
    }

    /// Remembers a container task being launched, if it has checks.
    pub(crate) fn expect_container(&mut self, task_id: &str, health: &ContainerHealth) {
        if !health.checks.is_empty() {
            self.pending_containers.insert(task_id.to_string());
        }
    }

    /// The launch of container task `task_id` ended; starts its checks if
    /// its container runs (`Some(container id)`), counting the grace period
    /// from now, right after the container started.
    pub(crate) fn launched_container(
        &mut self,
        task_id: &str,
        running: Option<(&str, &ContainerHealth, Arc<dyn ContainerEngine>)>,
    ) {
        if !self.pending_containers.remove(task_id) {
            return;
        }
        if let Some((container, health, engine)) = running {
            self.start_container(task_id, container, health, engine, Instant::now());
        }
    }

    /// Starts checking re-adopted containers, timing their grace period
    /// from the container's start.
    pub(crate) fn recovered_containers(
        &mut self,
        adopted: &[AdoptedHealth],
        engine: &Arc<dyn ContainerEngine>,
    ) {
        let now_ms = crate::task::now_ms();
        for a in adopted {
            let age = Duration::from_millis(now_ms.saturating_sub(a.started_at_ms));
            let started = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
            self.start_container(
                &a.task_id,
                &a.container,
                &a.health,
                Arc::clone(engine),
                started,
            );
        }
    }

    fn start_container(
        &mut self,
        task_id: &str,
        container: &str,
        health: &ContainerHealth,
        engine: Arc<dyn ContainerEngine>,
        started: Instant,
    ) {
        let probes = health
            .checks
            .iter()
            .map(|check| {
                let probe: Option<Arc<dyn Probe>> = match check.protocol {
                    Protocol::Http | Protocol::Tcp => self.port_probe(check, &health.ports),
                    Protocol::Command => Some(Arc::new(ExecProbe {
                        engine: Arc::clone(&engine),
                        container: container.to_string(),
                        command: check.command.clone(),
                        timeout: check.timeout,
                    })),
                };
                (check.clone(), probe)
            })
            .collect();
        self.spawn(task_id, probes, started);
    }

    fn start(&mut self, spec: &TaskSpec, task: &RunningTask, started: Instant) {
        let probes = spec
            .health_checks
            .iter()
            .map(|check| (check.clone(), self.probe(spec, task, check)))
            .collect();
        self.spawn(&task.task_id, probes, started);
    }

    /// Starts one checker for `task_id`'s checks with their probes
    /// (`None`: the check names a port the task lacks).
    fn spawn(
        &mut self,
        task_id: &str,
        checks: Vec<(HealthCheckSpec, Option<Arc<dyn Probe>>)>,
        started: Instant,
    ) {
        if checks.is_empty() {
            return;
        }
        let probes: Vec<(HealthCheckSpec, Arc<dyn Probe>)> = checks
            .into_iter()
            .filter_map(|(check, probe)| match probe {
                Some(p) => Some((check, p)),
                None => {
                    warn!(task = %task_id, port = check.port_index, "health check names a port the task does not have");
                    None
                }
            })
            .collect();
        let handle = health::spawn(task_id.to_string(), probes, started, self.changes.clone());
        if let Some(old) = self.running.insert(task_id.to_string(), handle) {
            old.abort();
        }
    }

    /// An http or tcp probe of the host port `check` names.
    fn port_probe(&self, check: &HealthCheckSpec, ports: &[u16]) -> Option<Arc<dyn Probe>> {
        let addr = SocketAddr::new(self.target, *ports.get(check.port_index)?);
        Some(match check.protocol {
            Protocol::Http => Arc::new(HttpProbe {
                addr,
                path: check.path.clone(),
                status_min: check.status_min,
                status_max: check.status_max,
            }),
            _ => Arc::new(TcpProbe { addr }),
        })
    }

    fn probe(
        &self,
        spec: &TaskSpec,
        task: &RunningTask,
        check: &HealthCheckSpec,
    ) -> Option<Arc<dyn Probe>> {
        Some(match check.protocol {
            Protocol::Http | Protocol::Tcp => self.port_probe(check, &task.ports)?,
            Protocol::Command => {
                let path = std::env::var("PATH").ok();
                Arc::new(CommandProbe {
                    command: check.command.clone(),
                    env: task_env(
                        spec,
                        &task.ports,
                        &self.hostname,
                        &task.sandbox,
                        path.as_deref(),
                    ),
                    cwd: task.sandbox.clone(),
                })
            }
        })
    }

    /// The task ended: stop checking it.
    pub(crate) fn stop(&mut self, task_id: &str) {
        self.pending.remove(task_id);
        self.pending_containers.remove(task_id);
        if let Some(handle) = self.running.remove(task_id) {
            handle.abort();
        }
    }
}

impl Drop for Checks {
    fn drop(&mut self) {
        for handle in self.running.values() {
            handle.abort();
        }
    }
}
