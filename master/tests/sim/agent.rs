//! Simulated agents: they accept or refuse launches (idempotently by task
//! id, remembering ended tasks as the real agent's task table does), run
//! processes, obey kills, and report statuses that the simulated status
//! batcher commits through the real `reports::checked`.

use std::collections::BTreeMap;

use ocean_master::kernel::state::task_updates_command;
use ocean_master::reconcile::{reports, Host};
use ocean_proto::agent::{master_message, MasterMessage, TaskStatus};

use super::SimCluster;

/// A process an agent runs.
#[derive(Debug, Clone)]
pub struct Proc {
    pub job: String,
    /// STAGING (launched, not yet started) or RUNNING.
    pub state: &'static str,
}

/// A simulated agent.
#[derive(Debug, Default)]
pub struct SimAgent {
    /// Refuses launches (a broken executor): they fail at once.
    pub refuses: bool,
    /// Lost: its stream is closed and it hears nothing.
    pub lost: bool,
    /// Processes by task id, until they end.
    pub procs: BTreeMap<String, Proc>,
    /// How ended tasks ended: as a real agent's task table, it answers a
    /// repeated launch of one with its status instead of running it again.
    pub ended: BTreeMap<String, &'static str>,
}

impl SimAgent {
    /// Ends task `id` (a process or not) as `state`.
    pub(super) fn end(&mut self, id: &str, state: &'static str) {
        self.procs.remove(id);
        self.ended.insert(id.to_string(), state);
    }
}

impl SimCluster {
    pub(super) fn receive(&mut self, agent: &str, term: u64, msg: MasterMessage) {
        let Some(a) = self.agents.get_mut(agent) else {
            return;
        };
        if a.lost {
            return;
        }
        let mut out = Vec::new();
        match msg.kind {
            Some(master_message::Kind::Launch(l)) => {
                for t in l.tasks {
                    // Agents launch idempotently by task id.
                    if a.procs.contains_key(&t.task_id) {
                        continue;
                    }
                    if let Some(state) = a.ended.get(&t.task_id) {
                        out.push(status(&t.task_id, state, "known"));
                        continue;
                    }
                    if a.refuses {
                        a.end(&t.task_id, "FAILED");
                        out.push(status(&t.task_id, "FAILED", "launch_failed"));
                        continue;
                    }
                    a.procs.insert(
                        t.task_id.clone(),
                        Proc {
                            job: t.job_id.clone(),
                            state: "STAGING",
                        },
                    );
                }
            }
            Some(master_message::Kind::Kill(k)) => {
                for t in k.tasks {
                    self.history.push(format!(
                        "[{:>4}] {agent}: kill {} (term {term})",
                        self.step_no, t.task_id
                    ));
                    self.kills_sent.push((term, t.task_id.clone()));
                    a.end(&t.task_id, "KILLED");
                    out.push(status(&t.task_id, "KILLED", "killed"));
                }
            }
            _ => {}
        }
        for s in out {
            self.reports.push((agent.to_string(), s));
        }
    }

    /// Commits the agents' statuses (the status batcher's work).
    pub fn commit_reports(&mut self) {
        let reports = std::mem::take(&mut self.reports);
        if reports.is_empty() {
            return;
        }
        let now = self.leader.now_ms();
        let mut updates = Vec::new();
        for (agent, s) in reports {
            for mut u in reports::checked(&agent, std::slice::from_ref(&s)) {
                u.received_ms = now;
                updates.push(u);
            }
        }
        self.commit(task_updates_command(updates));
    }
}

pub(super) fn status(task: &str, state: &str, reason: &str) -> TaskStatus {
    TaskStatus {
        task_id: task.to_string(),
        state: state.to_string(),
        reason: reason.to_string(),
        ..Default::default()
    }
}
