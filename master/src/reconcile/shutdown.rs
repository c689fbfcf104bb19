//! Drain before stop (a job's `shutdown_delay_seconds`).
//!
//! ```text
//!  a round wants task T stopped ─┬─ T RUNNING, its job has a delay, not preempted
//!                                │     └─► PlanTasks.draining[T] = now   (out of service, not live)
//!                                │           ... delay passes ...
//!                                │     └─► PlanTasks.kill += T           (a later round)
//!                                └─ otherwise ─► PlanTasks.kill += T      (at once)
//! ```
//!
//! Why here and not in each decision: desired state, drains, deployments
//! and healing all produce "stop these"; taking the task out of service
//! first is the same for all of them, and they already treat a draining
//! task as gone (it is not live), so its replacement starts at once while
//! load balancers and DNS stop sending it new connections.

use std::collections::HashMap;

use ocean_proto::internal::Task;

use super::job::JobView;
use crate::kernel::state::{is_terminal, RUNNING};

/// Stops that are due, collected over a round's jobs.
#[derive(Debug, Default)]
pub struct Shutdown {
    /// Draining tasks whose delay has passed.
    due: Vec<String>,
    /// The earliest end of a delay still running (leader clock, ms).
    pub wake_at: Option<u64>,
}

/// What a round commits for its stops.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Stops {
    /// Sent a kill now.
    pub kill: Vec<String>,
    /// Taken out of service now (task id to `now`).
    pub draining: HashMap<String, u64>,
}

impl Shutdown {
    /// Looks at one job's tasks for drains that are over.
    pub fn job(&mut self, job: &JobView, tasks: &[&Task], now: u64) {
        let delay_ms = u64::from(job.spec.shutdown_delay_seconds) * 1_000;
        for t in tasks {
            if t.draining_since_ms == 0 || t.kill_requested || is_terminal(&t.state) {
                continue;
            }
            let until = t.draining_since_ms.saturating_add(delay_ms);
            if now >= until {
                self.due.push(t.id.clone());
            } else {
                self.wake_at = Some(self.wake_at.map_or(until, |w| w.min(until)));
            }
        }
    }

    /// Splits the round's `kills` into kills now and drains, adding the
    /// drains that are over. `task` finds a task and its job by id;
    /// preempted tasks are killed at once (the room is needed now).
    pub fn split<'a>(
        mut self,
        kills: Vec<String>,
        preempted: &HashMap<String, String>,
        task: impl Fn(&str) -> Option<(&'a Task, &'a JobView)>,
        now: u64,
    ) -> (Stops, Option<u64>) {
        let mut stops = Stops::default();
        for id in kills {
            let drain = !preempted.contains_key(&id)
                && task(&id).is_some_and(|(t, job)| {
                    job.spec.shutdown_delay_seconds > 0
                        && t.state == RUNNING
                        && t.draining_since_ms == 0
                        && !t.kill_requested
                });
            if drain {
                let until = now + u64::from(delay_of(&task, &id)) * 1_000;
                self.wake_at = Some(self.wake_at.map_or(until, |w| w.min(until)));
                stops.draining.insert(id, now);
            } else if !self.due.contains(&id) {
                stops.kill.push(id);
            }
        }
        stops.kill.append(&mut self.due);
        (stops, self.wake_at)
    }
}

fn delay_of<'a>(task: &impl Fn(&str) -> Option<(&'a Task, &'a JobView)>, id: &str) -> u32 {
    task(id).map_or(0, |(_, j)| j.spec.shutdown_delay_seconds)
}

#[cfg(test)]
mod tests {
    use ocean_proto::internal::Job;
    use ocean_spec::JobSpec;

    use super::*;
    use crate::kernel::state::{KILLED, STAGING};

    const ID: &str = "cop.c_owt.o_pdl.p_service.s_job.j_cluster.c";

    fn job(delay: u32) -> JobView {
        let mut spec = JobSpec::new(ID, "sleep 100");
        spec.shutdown_delay_seconds = delay;
        JobView::parse(&Job {
            id: ID.into(),
            spec_json: spec.to_canonical_json(),
            created_version: 1,
            updated_version: 1,
            spec_version: 1,
            ..Default::default()
        })
        .unwrap()
    }

    fn task(id: &str, state: &str, draining_since_ms: u64) -> Task {
        Task {
            id: id.into(),
            job_id: ID.into(),
            state: state.into(),
            draining_since_ms,
            ..Default::default()
        }
    }

    #[test]
    fn a_running_task_of_a_job_with_a_delay_drains_first_then_is_killed_after_it() {
        let j = job(5);
        let a = task("j.a", RUNNING, 0);
        let staging = task("j.b", STAGING, 0);
        let victim = task("j.c", RUNNING, 0);
        let all = [&a, &staging, &victim];
        let find = |id: &str| all.iter().find(|t| t.id == id).map(|t| (*t, &j));
        let preempted = HashMap::from([("j.c".to_string(), "room".to_string())]);
        let (stops, wake) = Shutdown::default().split(
            vec!["j.a".into(), "j.b".into(), "j.c".into()],
            &preempted,
            find,
            10_000,
        );
        assert_eq!(
            stops,
            Stops {
                kill: vec!["j.b".into(), "j.c".into()],
                draining: HashMap::from([("j.a".to_string(), 10_000)]),
            }
        );
        assert_eq!(wake, Some(15_000));

        // Later rounds: not yet, then due.
        let drained = task("j.a", RUNNING, 10_000);
        let mut s = Shutdown::default();
        s.job(&j, &[&drained], 14_999);
        assert_eq!(
            s.split(vec![], &preempted, find, 14_999),
            (Stops::default(), Some(15_000))
        );
        let mut s = Shutdown::default();
        s.job(&j, &[&drained], 15_000);
        let (stops, wake) = s.split(vec![], &preempted, find, 15_000);
        assert_eq!(stops.kill, vec!["j.a".to_string()]);
        assert!(stops.draining.is_empty());
        assert_eq!(wake, None);
    }

    #[test]
    fn without_a_delay_kills_are_immediate_and_ended_or_killed_drains_are_left_alone() {
        let j = job(0);
        let a = task("j.a", RUNNING, 0);
        let all = [&a];
        let find = |id: &str| all.iter().find(|t| t.id == id).map(|t| (*t, &j));
        let (stops, wake) =
            Shutdown::default().split(vec!["j.a".into()], &HashMap::new(), find, 1_000);
        assert_eq!(stops.kill, vec!["j.a".to_string()]);
        assert_eq!(wake, None);

        // A delay shortened to 0 while a task drains: its kill is due now.
        let draining = task("j.d", RUNNING, 900);
        let ended = task("j.e", KILLED, 900);
        let mut killed = task("j.f", RUNNING, 900);
        killed.kill_requested = true;
        let mut s = Shutdown::default();
        s.job(&j, &[&draining, &ended, &killed], 1_000);
        let (stops, _) = s.split(vec!["j.d".into()], &HashMap::new(), find, 1_000);
        assert_eq!(stops.kill, vec!["j.d".to_string()], "once, not twice");
    }
}
