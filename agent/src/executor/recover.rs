//! Recovery after an agent restart: re-adopt the tasks whose checkpointed
//! pid is still the same process, report the others as ended, and remove
//! what nothing refers to any more (orphan cgroups, expired sandboxes).

use std::sync::Arc;

use tracing::{info, warn};

use super::supervise::{adopted_exit, finish, Waiter};
use super::{Executor, Recovery, RunningTask};
use crate::checkpoint;
use crate::error::Result;
use crate::sandbox;
use crate::task::{ExitInfo, Reason, TaskState, TaskStatus};

impl Executor {
    /// Re-adopts the tasks in the data dir's checkpoints after a restart.
    /// A task whose pid is alive with the checkpointed start time is
    /// supervised again (RUNNING, reason `recovered`); any other is reported
    /// ended (`oom_killed` if its cgroup counted an OOM kill, KILLED if a kill
    /// had been requested, else LOST with `exited_while_agent_down`) and its
    /// cgroup removed. Task cgroups with no checkpoint are killed and
    /// removed, and expired sandboxes deleted. Call it once, before launching.
    pub async fn recover(&self) -> Result<Recovery> {
        let config = &self.inner.config;
        let mut recovery = Recovery::default();
        for checkpoint in checkpoint::read_all(&config.data_dir)? {
            let task = checkpoint.task_id.clone();
            if self.inner.tasks().contains_key(&task) {
                continue;
            }
            let ended = adopted_exit(checkpoint.pid, checkpoint.start_time);
            if ended.is_none() {
                self.inner.ports().reserve(&checkpoint.ports);
                let info = RunningTask {
                    task_id: task.clone(),
                    pid: checkpoint.pid,
                    ports: checkpoint.ports.clone(),
                    sandbox: checkpoint.sandbox.clone(),
                    cgroup: checkpoint.cgroup.clone(),
                };
                let kill_grace = checkpoint.spec.kill_grace;
                let kill_pending = checkpoint.kill_requested;
                info!(%task, pid = checkpoint.pid, "re-adopted task");
                let mut status = TaskStatus::new(&task, TaskState::Running);
                status.pid = Some(checkpoint.pid);
                status.reason = Some(Reason::Recovered);
                self.inner.emit(status);
                self.supervise(checkpoint, Waiter::Adopted, true, info.clone(), kill_grace);
                if kill_pending {
                    // The kill was requested before the restart: carry it out.
                    self.kill(&task, None)?;
                }
                recovery.adopted.push(info);
            } else {
                info!(%task, pid = checkpoint.pid, "task ended while the agent was down");
                self.inner.ports().reserve(&checkpoint.ports);
                let exit = ended.unwrap_or(ExitInfo::Unknown);
                let status = finish(&self.inner, &checkpoint, exit, true).await;
                recovery.ended.push(status);
            }
        }
        let live: Vec<String> = self.inner.tasks().keys().cloned().collect();
        for name in self.inner.cgroups.list()? {
            if live.contains(&name) {
                continue;
            }
            let cgroup = self.inner.cgroups.task_cgroup(&name);
            warn!(task = %name, "removing orphan task cgroup");
            let cgroups = Arc::clone(&self.inner.cgroups);
            match tokio::task::spawn_blocking(move || cgroups.destroy(&cgroup)).await {
                Ok(Ok(())) => recovery.orphan_cgroups.push(name),
                Ok(Err(error)) => warn!(%error, task = %name, "cannot remove orphan cgroup"),
                Err(error) => warn!(%error, task = %name, "orphan cgroup cleanup panicked"),
            }
        }
        let removed = sandbox::gc(&config.data_dir, config.sandbox_retention, &live)?;
        if !removed.is_empty() {
            info!(count = removed.len(), "removed expired sandboxes");
        }
        Ok(recovery)
    }
}
