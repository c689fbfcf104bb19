//! Lost agents: the leader's check that every agent is still heard from.
//!
//! ```text
//!  agent stream: any message ─► Sessions.last_heard (leader memory)
//!  every 100 ms: silent > heartbeat_timeout ─► declare unreachable:
//!                 end its stream (it must register again, with a full report)
//!                 verdict per task ─► AgentUnreachable entry ─► round replaces LOST tasks
//!  the agent returns ─► Register{all tasks} ─► reports::full_report:
//!                 LOST tasks it still runs are killed there, waiting ones carry on
//! ```
//! Timeouts start from the later of the agent's last message and the start
//! of this leader's term (after its read index), so a new leader gives
//! every agent a fresh timeout instead of declaring all of them lost. The
//! check runs on the same runtime as the streams' readers; when the check
//! itself was late (the master was starved), every agent gets a fresh
//! timeout too, since a late reader would otherwise be blamed on the agents.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ocean_proto::agent::{master_message, MasterMessage, Reconcile};
use ocean_proto::internal::{AgentUnreachable, Task};
use tracing::{debug, info, warn};

use tokio::sync::watch;

use super::Leading;
use crate::kernel::now_ms;
use crate::kernel::state::{agent_unreachable_command, is_terminal};

/// How often the leader looks for silent agents.
const CHECK_EVERY: Duration = Duration::from_millis(100);

pub use crate::sessions::overdue;

/// What becomes of the tasks of an unreachable agent at `now_ms`. `wait_ms`
/// gives each job's wait for its agent (0: replace at once; jobs that are
/// gone wait for nothing). Tasks that ended are left alone, tasks already
/// waiting are lost once their wait is over. Pure.
pub fn verdict<'a>(
    agent: &str,
    tasks: impl IntoIterator<Item = &'a Task>,
    wait_ms: impl Fn(&str) -> u64,
    now_ms: u64,
) -> AgentUnreachable {
    let mut v = AgentUnreachable {
        agent_id: agent.to_string(),
        at_ms: now_ms,
        ..Default::default()
    };
    for t in tasks {
        if t.agent_id != agent || is_terminal(&t.state) {
            continue;
        }
        let wait = wait_ms(&t.job_id);
        if wait == 0 {
            v.lost.push(t.id.clone());
        } else if t.unreachable_since_ms == 0 {
            v.waiting.push(t.id.clone());
        } else if now_ms >= t.unreachable_since_ms.saturating_add(wait) {
            v.lost.push(t.id.clone());
        }
    }
    v
}

/// The check of term `term` on `master`, until `stop` is signalled. The
/// leadership supervisor ([`crate::leader`]) starts it once the term's read
/// index is applied: from then on the state knows every task.
pub async fn run(master: Leading, term: u64, mut stop: watch::Receiver<bool>) {
    master.sessions().clear_unreachable();
    let timeout = master.scheduler().agent_settings().heartbeat_timeout();
    let mut base = Instant::now();
    let mut last_check = base;
    info!(
        term,
        timeout_ms = timeout.as_millis() as u64,
        "watching agents' heartbeats"
    );
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CHECK_EVERY) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let now = Instant::now();
        if now - last_check > (timeout / 4).max(CHECK_EVERY * 5) {
            warn!(
                term,
                late_ms = (now - last_check).as_millis() as u64,
                "the heartbeat check itself ran late; every agent gets a fresh timeout"
            );
            base = now;
        }
        last_check = now;
        check(&master, base, timeout).await;
    }
    debug!(term, "heartbeat check stopped");
}

/// One pass: declares silent agents unreachable and commits what becomes of
/// their tasks.
async fn check(master: &Leading, base: Instant, timeout: Duration) {
    let agents: Vec<String> =
        master.read(|st| master.sessions().overdue(st.agents.keys(), base, timeout));
    for agent in agents {
        let Some((silent_ms, first)) = master.sessions().declare_if_silent(&agent, base, timeout)
        else {
            continue;
        };
        if first {
            master.metrics().agents_unreachable.inc();
            warn!(agent = %agent, silent_ms, "agent unreachable: silent past the heartbeat timeout");
        }
        let v = master.read(|st| {
            let mut waits: HashMap<&str, u64> = HashMap::new();
            let tasks: Vec<&std::sync::Arc<Task>> = st
                .tasks_on(&agent)
                .filter(|t| !is_terminal(&t.state))
                .collect();
            for t in &tasks {
                waits.entry(t.job_id.as_str()).or_insert_with(|| {
                    st.jobs
                        .get(&t.job_id)
                        .and_then(|j| {
                            serde_json::from_slice::<ocean_spec::JobSpec>(&j.spec_json).ok()
                        })
                        .and_then(|s| s.unreachable_strategy)
                        .map_or(0, |u| u64::from(u.replace_after_seconds) * 1000)
                });
            }
            verdict(
                &agent,
                tasks.iter().map(|t| t.as_ref()),
                |job| waits.get(job).copied().unwrap_or(0),
                now_ms(),
            )
        });
        if v.lost.is_empty() && v.waiting.is_empty() {
            continue;
        }
        let (lost, waiting) = (v.lost.len(), v.waiting.len());
        match master.propose_local(agent_unreachable_command(v)).await {
            Ok(_) => {
                info!(agent = %agent, lost, waiting, "tasks of an unreachable agent recorded");
                master.scheduler().wake();
                // Had it registered again while the verdict was committing,
                // its report would predate the verdict: ask for another, so
                // the tasks now LOST are stopped there.
                master.sessions().send(
                    &agent,
                    MasterMessage {
                        kind: Some(master_message::Kind::Reconcile(Reconcile {})),
                    },
                );
            }
            Err(e) => debug!(agent = %agent, error = %e, "could not record an unreachable agent"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, job: &str, state: &str, since: u64) -> Task {
        Task {
            id: id.into(),
            job_id: job.into(),
            agent_id: "a".into(),
            state: state.into(),
            unreachable_since_ms: since,
            ..Default::default()
        }
    }

    #[test]
    fn silence_counts_from_the_later_of_last_message_and_base() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let timeout = Duration::from_millis(2500);
        // Heard 3 s ago, term started before: overdue.
        assert!(overdue(t0 + 3 * s, t0, Some(t0), timeout));
        // Heard recently.
        assert!(!overdue(t0 + 3 * s, t0, Some(t0 + 2 * s), timeout));
        // Never heard by this leader: its term's start counts.
        assert!(!overdue(t0 + 2 * s, t0, None, timeout));
        assert!(overdue(t0 + 3 * s, t0, None, timeout));
        // Heard long ago, but this leader only started 1 s ago.
        assert!(!overdue(t0 + 10 * s, t0 + 9 * s, Some(t0), timeout));
    }

    #[test]
    fn tasks_are_lost_at_once_or_after_their_jobs_wait() {
        let tasks = [
            task("quick", "web", "RUNNING", 0),
            task("stateful", "db", "RUNNING", 0),
            task("waited", "db", "RUNNING", 1_000),
            task("long-waited", "db", "RUNNING", 100),
            task("ended", "web", "FAILED", 0),
        ];
        let wait = |job: &str| if job == "db" { 5_000 } else { 0 };
        let v = verdict("a", tasks.iter(), wait, 5_500);
        assert_eq!(v.lost, vec!["quick".to_string(), "long-waited".into()]);
        assert_eq!(v.waiting, vec!["stateful".to_string()]);
        assert_eq!(v.at_ms, 5_500);
        // Tasks of other agents are not this verdict's business.
        let v = verdict("b", tasks.iter(), wait, 5_500);
        assert!(v.lost.is_empty() && v.waiting.is_empty());
    }
}
