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
    stops: Stops,
    /// The earliest end of a delay still running (leader clock, ms).
    wake_at: Option<u64>,
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
    /// Looks at one job's tasks: drains that are over are due, and the
    /// round's stops of this job (`stop`) are drained first (a RUNNING task
    /// of a job with a delay) or killed now.
    pub fn job(&mut self, job: &JobView, tasks: &[&Task], stop: Vec<String>, now: u64) {
        let delay_ms = u64::from(job.spec.shutdown_delay_seconds) * 1_000;
        let due_from = self.stops.kill.len();
        for t in tasks {
            if t.draining_since_ms == 0 || t.kill_requested || is_terminal(&t.state) {
                continue;
            }
            let until = t.draining_since_ms.saturating_add(delay_ms);
            if now >= until {
                self.stops.kill.push(t.id.clone());
            } else {
                self.wake(until);
            }
        }
        for id in stop {
            let drains = delay_ms > 0
                && tasks.iter().any(|t| {
                    t.id == id
                        && t.state == RUNNING
                        && t.draining_since_ms == 0
                        && !t.kill_requested
                });
            if drains {
                self.wake(now + delay_ms);
                self.stops.draining.insert(id, now);
            } else if !self.stops.kill[due_from..].contains(&id) {
                self.stops.kill.push(id);
            }
        }
    }

    /// The round's stops, with its preemptions killed at once (the room
    /// is needed now), and the earliest end of a drain still running.
    pub fn finish(mut self, preempted: Vec<String>) -> (Stops, Option<u64>) {
        for id in preempted {
            self.stops.draining.remove(&id);
            if !self.stops.kill.contains(&id) {
                self.stops.kill.push(id);
            }
        }
        (self.stops, self.wake_at)
    }

    fn wake(&mut self, at: u64) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }
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
            spec_json: spec.to_canonical_json().into(),
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
        let mut s = Shutdown::default();
        s.job(
            &j,
            &[&a, &staging, &victim],
            vec!["j.a".into(), "j.b".into()],
            10_000,
        );
        let (stops, wake) = s.finish(vec!["j.c".into()]);
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
        s.job(&j, &[&drained], vec![], 14_999);
        assert_eq!(s.finish(vec![]), (Stops::default(), Some(15_000)));
        let mut s = Shutdown::default();
        s.job(&j, &[&drained], vec![], 15_000);
        let (stops, wake) = s.finish(vec![]);
        assert_eq!(stops.kill, vec!["j.a".to_string()]);
        assert!(stops.draining.is_empty());
        assert_eq!(wake, None);
    }

    #[test]
    fn without_a_delay_kills_are_immediate_and_ended_or_killed_drains_are_left_alone() {
        let j = job(0);
        let a = task("j.a", RUNNING, 0);
        let mut s = Shutdown::default();
        s.job(&j, &[&a], vec!["j.a".into()], 1_000);
        let (stops, wake) = s.finish(vec![]);
        assert_eq!(stops.kill, vec!["j.a".to_string()]);
        assert_eq!(wake, None);

        // A delay shortened to 0 while a task drains: its kill is due now.
        let draining = task("j.d", RUNNING, 900);
        let ended = task("j.e", KILLED, 900);
        let mut killed = task("j.f", RUNNING, 900);
        killed.kill_requested = true;
        let mut s = Shutdown::default();
        s.job(&j, &[&draining, &ended, &killed], vec!["j.d".into()], 1_000);
        let (stops, _) = s.finish(vec![]);
        assert_eq!(stops.kill, vec!["j.d".to_string()], "once, not twice");
    }
}
