//! Task status reports from agents: checked, batched into one raft entry
//! per round trip, and full reports compared with the replicated state.

use std::collections::HashSet;
use std::sync::Arc;

use ocean_proto::agent::{master_message, Kill, KillTask, MasterMessage, TaskStatus};
use ocean_proto::internal::TaskUpdate;
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use super::Leading;
use super::DEFAULT_KILL_GRACE_MS;
use crate::kernel::state::{is_terminal, rank, task_updates_command, ClusterState, LOST, STAGING};

/// Most updates put in one raft entry.
const MAX_BATCH: usize = 5_000;

/// Checks one status from agent `agent`, naming the wrong field.
pub fn to_update(agent: &str, s: &TaskStatus) -> Result<TaskUpdate, String> {
    if s.task_id.is_empty() || s.task_id.len() > 512 {
        return Err("task_id: must be 1-512 characters".into());
    }
    if rank(&s.state).is_none() {
        return Err(format!(
            "state: '{}' is not one of {}",
            s.state,
            crate::kernel::state::STATES.join(", ")
        ));
    }
    Ok(TaskUpdate {
        task_id: s.task_id.clone(),
        agent_id: agent.to_string(),
        state: s.state.clone(),
        reason: s.reason.clone(),
        exit_code: s.exit_code,
        signal: s.signal,
        message: truncate(&s.message, 1024),
        timestamp_ms: s.timestamp_ms,
        pid: s.pid,
        healthy: s.healthy,
        health_message: truncate(&s.health_message, 1024),
        health_failed: s.health_failed,
        received_ms: 0,
    })
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Checks statuses, logging (and dropping) the bad ones.
pub fn checked(agent: &str, statuses: &[TaskStatus]) -> Vec<TaskUpdate> {
    statuses
        .iter()
        .filter_map(|s| match to_update(agent, s) {
            Ok(u) => Some(u),
            Err(e) => {
                warn!(agent, task = %s.task_id, error = %e, "bad task status from agent");
                None
            }
        })
        .collect()
}

/// The queue of agents' status updates, which outlives terms: the
/// leadership supervisor keeps it, and each term's batcher locks it while
/// it runs. Updates queued while this master does not lead wait in it for
/// its next term, in the order they came (agents also re-send everything
/// to a new leader when they register again; a status recorded twice
/// leaves the task as the first left it, since states only move forward
/// and an ended task takes no more updates).
pub type UpdatesQueue = Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<TaskUpdate>>>;

/// Proposes queued updates, as many per raft entry as have queued up while
/// the previous entry was being committed (group commit, as the driver
/// does for its log writes), until `stop` is signalled. An update is taken
/// from the queue only to be proposed: a stop leaves the rest queued.
pub async fn batch_updates(
    master: Leading,
    queue: UpdatesQueue,
    term: u64,
    mut stop: watch::Receiver<bool>,
) {
    let mut rx = queue.lock().await;
    loop {
        let first = tokio::select! {
            // A signalled stop wins over queued updates.
            biased;
            _ = stop.wait_for(|s| *s) => break,
            u = rx.recv() => match u {
                Some(u) => u,
                None => break,
            },
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(u) => batch.push(u),
                Err(_) => break,
            }
        }
        let n = batch.len();
        // Back-off is timed on the leader's clock, written into the entry
        // so every master applies the same times.
        let now = crate::kernel::now_ms();
        for u in &mut batch {
            u.received_ms = now;
        }
        // A write that outlasts the timeout is not lost: it stays in the
        // log and is applied when it commits. One that fails because this
        // master no longer leads is sent again by the agents, to the next
        // leader, when they register there.
        if let Err(e) = master.propose_local(task_updates_command(batch)).await {
            debug!(term, updates = n, error = %e, "task updates not acknowledged");
        }
    }
    debug!(term, "status batcher stopped");
}

/// What a full report from an agent means for the leader.
#[derive(Debug, Default, PartialEq)]
pub struct FullReport {
    /// Status changes to record.
    pub updates: Vec<TaskUpdate>,
    /// Tasks the agent runs that nobody wants (unknown, ended, or placed
    /// elsewhere): stop them.
    pub kill: Vec<String>,
    /// Tasks placed on the agent that it never got: launch them again.
    pub relaunch: Vec<String>,
}

/// Whether a report says nothing the state does not already hold: same
/// state and the same health (no verdict, as from an agent that restarted
/// and has not checked yet, keeps the recorded one).
fn same_status(t: &ocean_proto::internal::Task, u: &TaskUpdate) -> bool {
    t.state == u.state
        && (u.healthy.is_none() || (t.healthy == u.healthy && t.health_message == u.health_message))
        && (t.health_failed || !u.health_failed)
}

/// Compares a full report of `agent` with the state. Pure.
pub fn compare(agent: &str, statuses: &[TaskStatus], st: &ClusterState) -> FullReport {
    let mut out = FullReport::default();
    let mut seen = HashSet::new();
    for u in checked(agent, statuses) {
        seen.insert(u.task_id.clone());
        let known = st
            .tasks
            .get(&u.task_id)
            .filter(|t| t.agent_id == agent && !is_terminal(&t.state));
        match known {
            // What the state already says needs no raft entry (a full
            // report after a leader change repeats almost everything).
            // A task waiting for its unreachable agent is recorded again
            // to clear the mark.
            Some(t) if same_status(t, &u) && t.unreachable_since_ms == 0 => {}
            Some(_) => out.updates.push(u),
            None if !is_terminal(&u.state) => out.kill.push(u.task_id),
            None => {}
        }
    }
    // Only this agent's tasks: after a leader change every agent reports,
    // and a scan of all tasks per report would hold the state for minutes.
    for t in st.tasks_on(agent) {
        if is_terminal(&t.state) || seen.contains(&t.id) {
            continue;
        }
        if t.state == STAGING {
            out.relaunch.push(t.id.clone());
        } else {
            out.updates.push(TaskUpdate {
                task_id: t.id.clone(),
                agent_id: agent.to_string(),
                state: LOST.to_string(),
                reason: "unknown_to_agent".into(),
                message: "the agent no longer knows this task".into(),
                timestamp_ms: crate::kernel::now_ms(),
                ..Default::default()
            });
        }
    }
    out
}

/// Handles a full report: records statuses, stops unwanted tasks, and
/// makes the reconciler relaunch what never arrived.
pub async fn full_report(master: Leading, agent: String, statuses: Vec<TaskStatus>) {
    // The state must hold every committed task before "unknown" means
    // anything: after a leader change, entries of the old term may still be
    // unapplied here. The reconciler's read index at the start of the term
    // establishes that once for every agent.
    if !master.scheduler().wait_ready(&master).await {
        debug!(agent = %agent, "full report ignored: not a ready leader");
        return;
    }
    let report = master.read(|st| compare(&agent, &statuses, st));
    let sched = master.scheduler();
    for u in report.updates {
        sched.record(u);
    }
    if !report.kill.is_empty() {
        warn!(agent = %agent, tasks = ?report.kill, "stopping tasks nobody wants");
        let msg = MasterMessage {
            kind: Some(master_message::Kind::Kill(Kill {
                tasks: report
                    .kill
                    .iter()
                    .map(|id| KillTask {
                        task_id: id.clone(),
                        grace_ms: DEFAULT_KILL_GRACE_MS,
                    })
                    .collect(),
            })),
        };
        master.sessions().send(&agent, msg);
    }
    // Launches go out in a round: only when some are missing (a report
    // that matches the state needs none, and 10,000 agents registering
    // woke a round each).
    if !report.relaunch.is_empty() {
        sched.forget_launches(&report.relaunch);
        sched.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocean_proto::internal::Task;
    use std::sync::Arc;

    fn status(id: &str, state: &str) -> TaskStatus {
        TaskStatus {
            task_id: id.into(),
            state: state.into(),
            ..Default::default()
        }
    }

    fn task(id: &str, agent: &str, state: &str) -> Arc<Task> {
        Arc::new(Task {
            id: id.into(),
            agent_id: agent.into(),
            state: state.into(),
            ..Default::default()
        })
    }

    #[test]
    fn bad_statuses_name_the_field() {
        assert!(to_update("a", &status("", "RUNNING"))
            .unwrap_err()
            .starts_with("task_id"));
        assert!(to_update("a", &status("t", "DANCING"))
            .unwrap_err()
            .starts_with("state"));
        assert_eq!(
            to_update("a", &status("t", "RUNNING")).unwrap().agent_id,
            "a"
        );
    }

    #[test]
    fn full_report_sorts_tasks_out() {
        let mut st = ClusterState::default();
        for t in [
            task("run", "a", "RUNNING"),
            task("starting", "a", "STARTING"),
            task("gone", "a", "RUNNING"),
            task("staged", "a", "STAGING"),
            task("ended", "a", "KILLED"),
            task("elsewhere", "b", "RUNNING"),
        ] {
            st.insert_task(t);
        }
        let r = compare(
            "a",
            &[
                status("run", "RUNNING"),
                status("starting", "RUNNING"),
                status("ended", "RUNNING"),
                status("elsewhere", "RUNNING"),
                status("stranger", "RUNNING"),
                status("old", "FINISHED"),
            ],
            &st,
        );
        assert_eq!(r.relaunch, vec!["staged".to_string()]);
        assert_eq!(
            r.kill,
            vec!["ended".to_string(), "elsewhere".into(), "stranger".into()]
        );
        let ids: Vec<(&str, &str)> = r
            .updates
            .iter()
            .map(|u| (u.task_id.as_str(), u.state.as_str()))
            .collect();
        // "run" is as the state says: nothing to record.
        assert_eq!(ids, vec![("starting", "RUNNING"), ("gone", "LOST")]);
    }

    #[test]
    fn a_full_report_records_health_changes_only() {
        let mut st = ClusterState::default();
        let mut known = Task::clone(&task("t", "a", "RUNNING"));
        known.healthy = Some(true);
        st.insert_task(Arc::new(known));
        let mut same = status("t", "RUNNING");
        assert!(compare("a", &[same.clone()], &st).updates.is_empty());
        same.healthy = Some(true);
        assert!(compare("a", &[same.clone()], &st).updates.is_empty());
        let mut sick = same;
        sick.healthy = Some(false);
        sick.health_message = "tcp connect: refused".into();
        let r = compare("a", &[sick], &st);
        assert_eq!(r.updates.len(), 1);
        assert_eq!(r.updates[0].healthy, Some(false));
    }
}
