//! The runtime's health checkers: one per running task whose job has
//! checks, started when the launch succeeded (or at recovery, from the
//! checkpoint), stopped when the task ends.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::warn;

use crate::checkpoint::TaskCheckpoint;
use crate::executor::{task_env, RunningTask};
use crate::health::probe::{CommandProbe, HttpProbe, TcpProbe};
use crate::health::{self, HealthChange, HealthCheckSpec, Probe, Protocol};
use crate::task::TaskSpec;

/// The checkers of one agent.
pub(crate) struct Checks {
    running: HashMap<String, JoinHandle<()>>,
    /// Specs of tasks being launched that have checks.
    pending: HashMap<String, TaskSpec>,
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

    fn start(&mut self, spec: &TaskSpec, task: &RunningTask, started: Instant) {
        if spec.health_checks.is_empty() {
            return;
        }
        let probes: Vec<(HealthCheckSpec, Arc<dyn Probe>)> = spec
            .health_checks
            .iter()
            .filter_map(|check| match self.probe(spec, task, check) {
                Some(p) => Some((check.clone(), p)),
                None => {
                    warn!(task = %task.task_id, port = check.port_index, "health check names a port the task does not have");
                    None
                }
            })
            .collect();
        let handle = health::spawn(task.task_id.clone(), probes, started, self.changes.clone());
        if let Some(old) = self.running.insert(task.task_id.clone(), handle) {
            old.abort();
        }
    }

    fn probe(
        &self,
        spec: &TaskSpec,
        task: &RunningTask,
        check: &HealthCheckSpec,
    ) -> Option<Arc<dyn Probe>> {
        let addr = || {
            task.ports
                .get(check.port_index)
                .map(|p| SocketAddr::new(self.target, *p))
        };
        Some(match check.protocol {
            Protocol::Http => Arc::new(HttpProbe {
                addr: addr()?,
                path: check.path.clone(),
                status_min: check.status_min,
                status_max: check.status_max,
            }),
            Protocol::Tcp => Arc::new(TcpProbe { addr: addr()? }),
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
