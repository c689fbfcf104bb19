//! The runtime's side of container tasks: launches with a `docker` section
//! go to the Docker executor (or fail, naming why this agent cannot run
//! them), and kills go to whichever executor runs the task.

use std::sync::Arc;
use std::time::Duration;

use ocean_proto::agent::{self as pb, LaunchTask};
use tracing::warn;

use super::convert::status_to_proto;
use super::table::TaskTable;
use super::{failed, LaunchDone, Launched, Runtime};
use crate::docker::{container_task, ContainerTask, DockerExecutor};
use crate::error::{Error, Result};
use crate::executor::check_task_id;
use crate::task::{TaskState, TaskStatus};

impl Runtime {
    /// Starts a container launch (STAGING now, the rest from the executor),
    /// or records it FAILED with the reason.
    pub(super) fn launch_container(
        &mut self,
        t: &LaunchTask,
        table: &mut TaskTable,
        out: &mut Vec<pb::TaskStatus>,
    ) {
        match self.container_task(t) {
            Ok((docker, task)) => {
                let staging = TaskStatus::new(&task.task_id, TaskState::Staging);
                out.push(status_to_proto(&staging));
                table.record(staging);
                self.launching.insert(task.task_id.clone(), None);
                self.checks.expect_container(&task.task_id, &task.health);
                let health = task.health.clone();
                let permits = Arc::clone(&self.permits);
                let done = self.done_tx.clone();
                tokio::spawn(async move {
                    // The semaphore is never closed.
                    let _permit = permits.acquire_owned().await;
                    let task_id = task.task_id.clone();
                    let result = docker
                        .launch(task)
                        .await
                        .map(|()| Launched::Container(health))
                        .map_err(|e| e.to_string());
                    let _ = done.send(LaunchDone { task_id, result });
                });
            }
            Err(message) => {
                warn!(task = %t.task_id, %message, "rejected container launch");
                let status = failed(&t.task_id, message);
                out.push(status_to_proto(&status));
                if !t.task_id.is_empty() {
                    table.record(status);
                }
            }
        }
    }

    /// Kills a task in whichever executor runs it.
    pub(super) fn kill_one(&self, task_id: &str, grace: Option<Duration>) -> Result<()> {
        match &self.docker {
            Some(docker) if docker.has(task_id) => docker.kill(task_id, grace),
            _ => self.executor.kill(task_id, grace),
        }
    }

    /// Checks a container launch against this agent's Docker executor.
    fn container_task(
        &self,
        t: &LaunchTask,
    ) -> std::result::Result<(Arc<DockerExecutor>, ContainerTask), String> {
        if !t.artifacts.is_empty() || !t.templates.is_empty() {
            return Err(
                "artifacts, templates: not supported for container tasks yet (the \
                        release is laid out for native tasks only)"
                    .into(),
            );
        }
        let (Some(docker), Some(config)) = (&self.docker, &self.docker_config) else {
            return Err(format!(
                "container.docker: the Docker executor is unavailable on this agent: {}",
                self.docker_reason
            ));
        };
        check_task_id(&t.task_id).map_err(|e| match e {
            Error::InvalidSpec { message, .. } => message,
            other => other.to_string(),
        })?;
        let task = container_task(t, &self.agent_id, config)?;
        Ok((Arc::clone(docker), task))
    }
}
