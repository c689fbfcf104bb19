//! Re-adoption after an agent restart: the agent's containers are found
//! by their `io.ocean.agent` label; running ones are followed again, ended
//! ones are reported with their real exit code and removed.

use std::time::Duration;

use tracing::{info, warn};

use super::executor::{short, DockerExecutor, Tracked};
use super::launch::{ContainerHealth, LABEL_AGENT, LABEL_KILL_GRACE_MS, LABEL_TASK};
use crate::error::{Error, Result};
use crate::runtime::convert::DEFAULT_KILL_GRACE;
use crate::task::{Reason, TaskState, TaskStatus};

/// What [`DockerExecutor::recover`] found.
#[derive(Debug, Clone, Default)]
pub struct DockerRecovery {
    /// Tasks whose containers still run, now followed again.
    pub adopted: Vec<String>,
    /// Final statuses of containers that ended while the agent was down
    /// (removed now).
    pub ended: Vec<TaskStatus>,
    /// Re-adopted containers that have health checks, to check again.
    pub checked: Vec<AdoptedHealth>,
}

/// The health checks of a re-adopted container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdoptedHealth {
    /// Task id.
    pub task_id: String,
    /// Container id.
    pub container: String,
    /// When the container started, ms since the epoch (the checks' grace
    /// period counts from there).
    pub started_at_ms: u64,
    /// Its checks, from the [`super::launch::LABEL_HEALTH`] label.
    pub health: ContainerHealth,
}

impl DockerExecutor {
    /// Re-adopts this agent's containers after a restart: running ones are
    /// followed again (RUNNING, `recovered`), ended ones are reported with
    /// their real exit code and removed. Call once, before launching.
    pub async fn recover(&self) -> Result<DockerRecovery> {
        let found = self
            .inner
            .engine
            .list(LABEL_AGENT, &self.inner.agent_id)
            .await
            .map_err(|e| Error::Launch {
                task: String::new(),
                message: format!("list containers: {e}"),
            })?;
        let mut recovery = DockerRecovery::default();
        for c in found {
            let Some(task) = c.labels.get(LABEL_TASK).cloned() else {
                warn!(container = %c.id, "removing a container without a task label");
                let _ = self.inner.engine.remove(&c.id).await;
                continue;
            };
            let kill_grace = c
                .labels
                .get(LABEL_KILL_GRACE_MS)
                .and_then(|ms| ms.parse().ok())
                .map_or(DEFAULT_KILL_GRACE, Duration::from_millis);
            {
                let mut tasks = self.inner.tasks();
                if tasks.contains_key(&task) {
                    continue;
                }
                tasks.insert(
                    task.clone(),
                    Tracked {
                        container: c.id.clone(),
                        kill_grace,
                        started: true,
                        ending: !c.running,
                        ..Tracked::default()
                    },
                );
            }
            if c.running {
                info!(%task, container = %short(&c.id), "re-adopted container");
                let mut status = TaskStatus::new(&task, TaskState::Running);
                status.reason = Some(Reason::Recovered);
                status.pid = i32::try_from(c.pid).ok().filter(|p| *p > 0);
                status.message = Some(format!("container {}", short(&c.id)));
                self.inner.emit(status);
                if let Some(health) = ContainerHealth::from_labels(&c.labels) {
                    recovery.checked.push(AdoptedHealth {
                        task_id: task.clone(),
                        container: c.id.clone(),
                        started_at_ms: c.started_at_ms,
                        health,
                    });
                }
                recovery.adopted.push(task);
            } else {
                let outcome = (c.status == "created").then(|| {
                    (
                        TaskState::Failed,
                        Reason::LaunchFailed,
                        "the agent stopped while launching the container".to_string(),
                    )
                });
                info!(%task, status = %c.status, "container ended while the agent was down");
                let status = self.inner.finish(&task, outcome).await;
                recovery.ended.push(status);
            }
        }
        Ok(recovery)
    }
}
