//! The agent's memory of its tasks: the latest status of every task it
//! runs or ended recently, and the queue of the master stream that is up.
//! It is what a registration and a reconcile report list, and it outlives
//! any one stream, so a status that could not be sent waits here until the
//! next registration carries it.

use std::collections::HashMap;
use std::time::Duration;

use ocean_proto::agent::{self as pb, TaskReport};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::convert::status_with_health;
use crate::health::TaskHealth;
use crate::task::{TaskState, TaskStatus};

struct Known {
    status: TaskStatus,
    /// As its checker last found it (default: no verdict).
    health: TaskHealth,
    /// When the task reached a terminal state (for expiry).
    ended_at: Option<Instant>,
}

/// Latest status per task, plus the current stream's report queue.
#[derive(Default)]
pub(crate) struct TaskTable {
    tasks: HashMap<String, Known>,
    stream: Option<mpsc::UnboundedSender<TaskReport>>,
}

impl std::fmt::Debug for TaskTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskTable")
            .field("tasks", &self.tasks.len())
            .field("stream", &self.stream.is_some())
            .finish()
    }
}

impl TaskTable {
    /// The latest status of a task.
    pub(crate) fn get(&self, task_id: &str) -> Option<&TaskStatus> {
        self.tasks.get(task_id).map(|k| &k.status)
    }

    /// True if the task is unknown or has ended: its logs will not grow.
    pub(crate) fn has_ended(&self, task_id: &str) -> bool {
        self.get(task_id).is_none_or(|s| s.state.is_terminal())
    }

    /// Records a status; returns false when it adds nothing (the executor's
    /// own STAGING after the runtime already recorded it), so it need not
    /// be reported again.
    pub(crate) fn record(&mut self, status: TaskStatus) -> bool {
        if let Some(known) = self.tasks.get(&status.task_id) {
            if known.status.state == TaskState::Staging && status.state == TaskState::Staging {
                return false;
            }
        }
        let ended_at = status.state.is_terminal().then(Instant::now);
        let health = self
            .tasks
            .get(&status.task_id)
            .map(|k| k.health.clone())
            .unwrap_or_default();
        self.tasks.insert(
            status.task_id.clone(),
            Known {
                status,
                health,
                ended_at,
            },
        );
        true
    }

    /// The wire form of a task's latest status, with its health.
    pub(crate) fn wire(&self, task_id: &str) -> Option<pb::TaskStatus> {
        self.tasks
            .get(task_id)
            .map(|k| status_with_health(&k.status, &k.health))
    }

    /// Records a health change of a task that has not ended; returns what
    /// to report, if anything changed.
    pub(crate) fn set_health(
        &mut self,
        task_id: &str,
        health: TaskHealth,
    ) -> Option<pb::TaskStatus> {
        let known = self.tasks.get_mut(task_id)?;
        if known.status.state.is_terminal() || known.health == health {
            return None;
        }
        known.health = health;
        Some(status_with_health(&known.status, &known.health))
    }

    /// Every known task's latest status, in task id order.
    pub(crate) fn snapshot(&self) -> Vec<pb::TaskStatus> {
        let mut all: Vec<pb::TaskStatus> = self
            .tasks
            .values()
            .map(|k| status_with_health(&k.status, &k.health))
            .collect();
        all.sort_by(|a, b| a.task_id.cmp(&b.task_id));
        all
    }

    /// Starts a new stream: returns the full report for its registration
    /// and its report queue. The previous stream's queue is dropped, since
    /// anything in it is older than the registration.
    pub(crate) fn open_stream(
        &mut self,
    ) -> (Vec<pb::TaskStatus>, mpsc::UnboundedReceiver<TaskReport>) {
        let (tx, rx) = mpsc::unbounded_channel();
        self.stream = Some(tx);
        (self.snapshot(), rx)
    }

    /// Queues a report on the current stream, if one is up.
    pub(crate) fn send(&mut self, tasks: Vec<pb::TaskStatus>, full: bool) {
        if tasks.is_empty() && !full {
            return;
        }
        if let Some(tx) = &self.stream {
            if tx.send(TaskReport { tasks, full }).is_err() {
                self.stream = None;
            }
        }
    }

    /// Forgets tasks that ended more than `retention` ago; returns how many.
    pub(crate) fn expire(&mut self, retention: Duration) -> usize {
        let before = self.tasks.len();
        let now = Instant::now();
        self.tasks
            .retain(|_, k| k.ended_at.is_none_or(|t| now.duration_since(t) < retention));
        before - self.tasks.len()
    }

    /// Number of known tasks.
    pub(crate) fn len(&self) -> usize {
        self.tasks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::convert::status_to_proto;

    #[tokio::test(start_paused = true)]
    async fn ended_tasks_expire_running_ones_stay() {
        let mut t = TaskTable::default();
        t.record(TaskStatus::new("run", TaskState::Running));
        t.record(TaskStatus::new("done", TaskState::Finished));
        tokio::time::advance(Duration::from_secs(599)).await;
        assert_eq!(t.expire(Duration::from_secs(600)), 0);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(t.expire(Duration::from_secs(600)), 1);
        assert!(t.get("run").is_some() && t.get("done").is_none());
        assert!(t.has_ended("done") && !t.has_ended("run"));
    }

    #[test]
    fn health_is_kept_across_statuses_and_reported_only_when_it_changes() {
        let mut t = TaskTable::default();
        t.record(TaskStatus::new("a", TaskState::Running));
        let sick = TaskHealth {
            healthy: Some(false),
            message: "refused".into(),
            failed: false,
        };
        assert!(t.set_health("a", sick.clone()).is_some());
        assert!(t.set_health("a", sick).is_none());
        assert!(t.set_health("unknown", TaskHealth::default()).is_none());
        t.record(TaskStatus::new("a", TaskState::Running));
        let w = t.wire("a").unwrap_or_default();
        assert_eq!(
            (w.healthy, w.health_message.as_str()),
            (Some(false), "refused")
        );
        assert_eq!(t.snapshot()[0].healthy, Some(false));
        t.record(TaskStatus::new("a", TaskState::Killed));
        assert!(t.set_health("a", TaskHealth::default()).is_none());
    }

    #[test]
    fn reports_go_to_the_newest_stream_only() {
        let mut t = TaskTable::default();
        t.record(TaskStatus::new("a", TaskState::Staging));
        assert!(!t.record(TaskStatus::new("a", TaskState::Staging)));
        // No stream: nothing is queued, but the table remembers.
        t.send(
            vec![status_to_proto(&TaskStatus::new("a", TaskState::Starting))],
            false,
        );
        let (full, mut old) = t.open_stream();
        assert_eq!(full.len(), 1);
        let (_, mut new) = t.open_stream();
        t.send(t.snapshot(), true);
        assert!(old.try_recv().is_err(), "the old stream's queue is closed");
        assert!(new.try_recv().is_ok_and(|r| r.full && r.tasks.len() == 1));
    }
}
