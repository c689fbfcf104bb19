//! Agents in the replicated state beyond their registration: the status
//! operators set, and the leader's verdict on an agent that went silent.
//!
//! ```text
//!  SetAgentStatus ─► Agent.status (online | draining | offline | problem)
//!  AgentUnreachable ─► its tasks: lost ─► LOST (replaced)
//!                                 waiting ─► unreachable_since_ms = at_ms
//!                                   └─ cleared by the next report of the agent
//! ```
//! A task's state still only moves forward: LOST is the end, as for any
//! other terminal state, and the agent kills such a task when it returns.

use std::collections::BTreeSet;
use std::sync::Arc;

use ocean_proto::internal::{Agent, AgentUnreachable, SetAgentStatus, Task};

use super::tasks::{is_terminal, LOST};
use super::{Change, ClusterState, Outcome};

/// The statuses operators may give an agent.
pub const AGENT_STATUSES: [&str; 4] = ["online", "draining", "offline", "problem"];

/// The agent's status as placement sees it: the operator's when set, else
/// the agent's own `status` attribute, else `online`.
pub fn agent_status(a: &Agent) -> &str {
    if !a.status.is_empty() {
        return &a.status;
    }
    a.attributes
        .get("status")
        .map(String::as_str)
        .unwrap_or("online")
}

/// Whether tasks on an agent with this status are moved elsewhere.
pub fn moves_tasks_off(status: &str) -> bool {
    matches!(status, "draining" | "offline")
}

impl ClusterState {
    pub(super) fn set_agent_status(&mut self, s: &SetAgentStatus) -> (Outcome, Vec<Change>) {
        let Some(known) = self.agents.get(&s.agent_id) else {
            return (Outcome::NotFound, Vec::new());
        };
        // Checked at the edge; a bad value in the log changes nothing.
        if !AGENT_STATUSES.contains(&s.status.as_str()) {
            return (Outcome::Unchanged, Vec::new());
        }
        if known.status == s.status && known.status_message == s.message {
            return (Outcome::Unchanged, Vec::new());
        }
        let next = self.version + 1;
        let mut a = Agent::clone(known);
        a.status = s.status.clone();
        a.status_message = s.message.clone();
        a.status_version = next;
        let a = Arc::new(a);
        self.agents.insert(a.id.clone(), a.clone());
        self.version = next;
        (Outcome::Updated, vec![Change::AgentPut(a)])
    }

    pub(super) fn agent_unreachable(&mut self, u: &AgentUnreachable) -> (Outcome, Vec<Change>) {
        let next = self.version + 1;
        let mut changes = Vec::new();
        let mut ended_jobs = BTreeSet::new();
        let mine = |st: &ClusterState, id: &str| {
            st.tasks
                .get(id)
                .filter(|t| t.agent_id == u.agent_id && !is_terminal(&t.state))
                .cloned()
        };
        for id in &u.lost {
            let Some(task) = mine(self, id) else { continue };
            let mut t = Task::clone(&task);
            t.state = LOST.to_string();
            t.reason = "agent_unreachable".into();
            t.message = format!(
                "agent {} was silent past the heartbeat timeout; the task is replaced elsewhere",
                u.agent_id
            );
            t.ended_ms = u.at_ms;
            t.updated_version = next;
            self.recount(Some(&task.state), Some(LOST));
            ended_jobs.insert(t.job_id.clone());
            let t = Arc::new(t);
            self.replace_task(t.clone());
            changes.push(Change::TaskPut(t));
        }
        for id in &u.waiting {
            let Some(task) = mine(self, id) else { continue };
            if task.unreachable_since_ms != 0 {
                continue;
            }
            let mut t = Task::clone(&task);
            t.unreachable_since_ms = u.at_ms;
            t.updated_version = next;
            let t = Arc::new(t);
            self.replace_task(t.clone());
            changes.push(Change::TaskPut(t));
        }
        for job in ended_jobs {
            changes.extend(self.forget_ended(&job));
        }
        self.finish(changes)
    }
}

/// Builds an operator's status change.
pub fn set_agent_status_command(
    agent_id: String,
    status: String,
    message: String,
) -> ocean_proto::internal::Command {
    ocean_proto::internal::Command {
        min_version: 0,
        kind: Some(ocean_proto::internal::command::Kind::SetAgentStatus(
            SetAgentStatus {
                agent_id,
                status,
                message,
            },
        )),
    }
}

/// Builds the leader's verdict on an unreachable agent.
pub fn agent_unreachable_command(u: AgentUnreachable) -> ocean_proto::internal::Command {
    ocean_proto::internal::Command {
        min_version: 0,
        kind: Some(ocean_proto::internal::command::Kind::AgentUnreachable(u)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::state::{
        plan_tasks_command, put_agent_command, put_job_command, task_updates_command, RUNNING,
        STAGING,
    };
    use ocean_proto::internal::TaskUpdate;

    const JOB: &str = "cop.c_owt.o_pdl.p_service.s_job.j_cluster.c";

    fn state() -> ClusterState {
        let mut s = ClusterState::default();
        let spec = ocean_spec::JobSpec::new(JOB, "sleep 1");
        s.apply(&put_job_command(JOB.into(), spec.to_canonical_json()));
        s.apply(&put_agent_command(Agent {
            id: "a1".into(),
            hostname: "h1".into(),
            ..Default::default()
        }));
        let tasks = ["t1", "t2", "t3"]
            .iter()
            .map(|id| Task {
                id: id.to_string(),
                job_id: JOB.into(),
                agent_id: "a1".into(),
                ..Default::default()
            })
            .collect();
        s.apply(&plan_tasks_command(tasks, vec![], Default::default()));
        let running = ["t1", "t2"]
            .iter()
            .map(|id| TaskUpdate {
                task_id: id.to_string(),
                agent_id: "a1".into(),
                state: RUNNING.into(),
                ..Default::default()
            })
            .collect();
        s.apply(&task_updates_command(running));
        s
    }

    #[test]
    fn operator_status_is_kept_across_registrations() {
        let mut s = state();
        let a = s.apply(&set_agent_status_command(
            "a1".into(),
            "draining".into(),
            "disk swap".into(),
        ));
        assert_eq!(a.outcome, Outcome::Updated);
        assert_eq!(agent_status(&s.agents["a1"]), "draining");
        // The agent re-registers (its facts may change): the status stays.
        s.apply(&put_agent_command(Agent {
            id: "a1".into(),
            hostname: "h1-renamed".into(),
            ..Default::default()
        }));
        assert_eq!(s.agents["a1"].status, "draining");
        assert_eq!(s.agents["a1"].hostname, "h1-renamed");
        // Unknown agents and statuses change nothing.
        let bad = set_agent_status_command("a1".into(), "asleep".into(), String::new());
        assert!(s.apply(&bad).changes.is_empty());
        let missing = set_agent_status_command("zz".into(), "online".into(), String::new());
        assert_eq!(s.apply(&missing).outcome, Outcome::NotFound);
    }

    #[test]
    fn the_agents_own_attribute_applies_until_an_operator_speaks() {
        let mut a = Agent::default();
        assert_eq!(agent_status(&a), "online");
        a.attributes.insert("status".into(), "problem".into());
        assert_eq!(agent_status(&a), "problem");
        a.status = "online".into();
        assert_eq!(agent_status(&a), "online");
    }

    #[test]
    fn unreachable_tasks_end_lost_or_wait_and_a_report_clears_the_wait() {
        let mut s = state();
        let a = s.apply(&agent_unreachable_command(AgentUnreachable {
            agent_id: "a1".into(),
            at_ms: 1_000,
            lost: vec!["t1".into(), "t3".into()],
            waiting: vec!["t2".into()],
        }));
        assert_eq!(a.changes.len(), 3);
        assert_eq!(s.tasks["t1"].state, LOST);
        assert_eq!(s.tasks["t1"].reason, "agent_unreachable");
        assert_eq!(s.tasks["t3"].state, LOST, "a STAGING task is lost too");
        assert_eq!(s.tasks["t2"].state, RUNNING);
        assert_eq!(s.tasks["t2"].unreachable_since_ms, 1_000);
        assert_eq!((s.count(LOST), s.count(STAGING)), (2, 0));
        // Repeating the verdict changes nothing: LOST is final, and the
        // first time a task was found unreachable is kept.
        let again = s.apply(&agent_unreachable_command(AgentUnreachable {
            agent_id: "a1".into(),
            at_ms: 2_000,
            lost: vec!["t1".into()],
            waiting: vec!["t2".into()],
        }));
        assert!(again.changes.is_empty());
        assert_eq!(s.tasks["t2"].unreachable_since_ms, 1_000);
        // Its agent reports it (same state): the wait is over.
        let a = s.apply(&task_updates_command(vec![TaskUpdate {
            task_id: "t2".into(),
            agent_id: "a1".into(),
            state: RUNNING.into(),
            ..Default::default()
        }]));
        assert_eq!(a.changes.len(), 1);
        assert_eq!(s.tasks["t2"].unreachable_since_ms, 0);
        // A late report of a LOST task does not revive it.
        s.apply(&task_updates_command(vec![TaskUpdate {
            task_id: "t1".into(),
            agent_id: "a1".into(),
            state: RUNNING.into(),
            ..Default::default()
        }]));
        assert_eq!(s.tasks["t1"].state, LOST);
        // Another agent's verdict does not touch these tasks.
        let other = s.apply(&agent_unreachable_command(AgentUnreachable {
            agent_id: "a2".into(),
            at_ms: 3_000,
            lost: vec!["t2".into()],
            waiting: vec![],
        }));
        assert!(other.changes.is_empty());
        let back = ClusterState::from_image(&s.to_image()).unwrap();
        assert_eq!(back, s);
    }
}
