//! What a job needs this round: how many new tasks, and which tasks to
//! stop. Pure: the state goes in, a decision comes out.
//!
//! A job's live tasks (not ended, not being stopped) are split into those
//! of the current spec (same config hash) and older ones:
//! - no older ones: start the missing, or stop the surplus chosen by
//!   `scale_down` (which keeps `GROUP_BY` / `MAX_PER` balanced);
//! - older ones (an update is rolling out): one at a time, Marathon's
//!   default. Start one new task when none of the new ones is still
//!   starting; once it runs, the job is one over, so stop one old task.
//!   A job below its instance count is first filled with new tasks.
//!
//! Tasks whose health checks failed too often (`health_failed`) are
//! replaced start-first: they no longer count towards the instances, so
//! replacements are placed, and they are stopped only while the job keeps
//! `upgrade_strategy.minimum_health_capacity` of its instances counting
//! them (with the default 1.0: once a replacement runs healthy). A job
//! with health checks counts a task as up only once it is healthy.
//!
//! [`hold`] says whether restart back-off or flapping holds new launches.

use ocean_proto::internal::{JobBackoff, Task};
use ocean_scheduler_policies as sp;

use super::job::JobView;
use crate::state::{is_live, RUNNING};

/// The decision for one job.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Decision {
    /// New tasks to place.
    pub start: usize,
    /// Tasks to stop.
    pub stop: Vec<String>,
}

/// Decides for `job`, given its tasks that have not ended. `agents` and
/// `running` describe the cluster for balanced scale-down.
pub fn decide(job: &JobView, tasks: &[&Task], agents: &[sp::Agent]) -> Decision {
    decide_with_done(job, tasks, agents, 0)
}

/// How many tasks of a batch job are done: ended FINISHED with exit code
/// 0 under the job's current spec (same config hash). They count towards
/// `instances` and are never replaced; failed or lost ones are.
pub fn batch_done<'a>(job: &JobView, tasks: impl Iterator<Item = &'a Task>) -> usize {
    tasks
        .filter(|t| {
            t.state == crate::state::FINISHED
                && t.exit_code.unwrap_or(0) == 0
                && t.config_hash == job.hash
        })
        .count()
}

/// [`decide`] for a job of which `done` tasks already finished (batch).
pub fn decide_with_done(
    job: &JobView,
    tasks: &[&Task],
    agents: &[sp::Agent],
    done: usize,
) -> Decision {
    let want = (job.spec.instances as usize).saturating_sub(done);
    let (doomed, live): (Vec<&Task>, Vec<&Task>) = tasks
        .iter()
        .copied()
        .filter(|t| is_live(t))
        .partition(|t| t.health_failed);
    let mut d = decide_live(job, &live, agents, want);
    if !doomed.is_empty() {
        let up = live.iter().filter(|t| is_up(job, t)).count();
        let keep = (job.spec.upgrade_strategy.minimum_health_capacity * want as f64).ceil();
        let keep = keep.max(0.0) as usize;
        let n = (up + doomed.len()).saturating_sub(keep).min(doomed.len());
        d.stop.extend(oldest_first(&doomed, n));
    }
    d
}

/// Whether a task serves: running, and healthy when the job has checks.
pub fn is_up(job: &JobView, t: &Task) -> bool {
    t.state == RUNNING && (job.spec.health_checks.is_empty() || t.healthy == Some(true))
}

/// Why new launches of a job wait, if they do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// Leader clock (ms) when launches may resume; `None` until a reset.
    pub until_ms: Option<u64>,
    /// The job's waiting explanation.
    pub why: String,
}

/// Whether the job's back-off holds new tasks at `now_ms` (leader clock):
/// flapping holds them until a reset, a delay until it has passed.
pub fn hold(backoff: Option<&JobBackoff>, now_ms: u64) -> Option<Hold> {
    let b = backoff?;
    if b.flapping {
        return Some(Hold {
            until_ms: None,
            why: b.message.clone(),
        });
    }
    (now_ms < b.next_launch_ms).then(|| Hold {
        until_ms: Some(b.next_launch_ms),
        why: format!("backing off: {}", b.message),
    })
}

fn decide_live(job: &JobView, live: &[&Task], agents: &[sp::Agent], want: usize) -> Decision {
    let (current, old): (Vec<&Task>, Vec<&Task>) =
        live.iter().partition(|t| t.config_hash == job.hash);
    let mut d = Decision::default();
    if old.is_empty() {
        if current.len() < want {
            d.start = want - current.len();
        } else if current.len() > want {
            d.stop = surplus(job, &current, agents, want);
        }
        return d;
    }
    if current.len() >= want {
        // The new version is complete: every old task goes, and any surplus.
        d.stop = old.iter().map(|t| t.id.clone()).collect();
        if current.len() > want {
            d.stop.extend(surplus(job, &current, agents, want));
        }
        return d;
    }
    let total = current.len() + old.len();
    let starting = current.iter().any(|t| !is_up(job, t));
    if total < want {
        d.start = want - total;
    } else if !starting {
        if total > want {
            d.stop = oldest_first(&old, total - want);
        } else {
            d.start = 1;
        }
    }
    d
}

fn surplus(job: &JobView, tasks: &[&Task], agents: &[sp::Agent], want: usize) -> Vec<String> {
    let running: Vec<sp::RunningTask> = tasks
        .iter()
        .map(|t| sp::RunningTask {
            id: t.id.clone(),
            job: t.job_id.clone(),
            agent: t.agent_id.clone(),
            ..Default::default()
        })
        .collect();
    let constraints = job.constraints.clone().unwrap_or_default();
    sp::scale_down(agents, &running, &job.id, &constraints, want)
        .into_iter()
        .map(str::to_string)
        .collect()
}

/// Old tasks to stop: those not running first (they serve nobody), then the
/// oldest.
fn oldest_first(old: &[&Task], n: usize) -> Vec<String> {
    let mut v: Vec<&Task> = old.to_vec();
    v.sort_by(|a, b| (a.state == RUNNING, &a.id).cmp(&(b.state == RUNNING, &b.id)));
    v.into_iter().take(n).map(|t| t.id.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocean_spec::JobSpec;

    const ID: &str = "cop.c_owt.o_pdl.p_service.s_job.j_cluster.c";

    fn view(instances: u32, cmd: &str) -> JobView {
        crate::reconcile::job::test_view(ID, instances, cmd)
    }

    fn task(id: &str, hash: u64, state: &str) -> Task {
        Task {
            id: id.into(),
            job_id: ID.into(),
            agent_id: "a1".into(),
            state: state.into(),
            config_hash: hash,
            ..Default::default()
        }
    }

    #[test]
    fn scale_up_and_down() {
        let v = view(3, "x");
        let t: Vec<Task> = (0..2)
            .map(|i| task(&format!("t{i}"), v.hash, RUNNING))
            .collect();
        let refs: Vec<&Task> = t.iter().collect();
        assert_eq!(decide(&v, &refs, &[]).start, 1);
        let v1 = view(1, "x");
        let d = decide(&v1, &refs, &[]);
        assert_eq!((d.start, d.stop), (0, vec!["t1".to_string()]));
    }

    #[test]
    fn a_batch_jobs_finished_tasks_are_done_and_failed_ones_are_replaced() {
        let v = view(2, "x");
        let mut ok = task("t1", v.hash, crate::state::FINISHED);
        ok.exit_code = Some(0);
        let mut bad = task("t2", v.hash, crate::state::FAILED);
        bad.exit_code = Some(1);
        let mut old = task("t0", v.hash + 1, crate::state::FINISHED);
        old.exit_code = Some(0);
        let ended = [&ok, &bad, &old];
        let done = batch_done(&v, ended.iter().copied());
        assert_eq!(done, 1, "only a success under the current spec is done");
        // No live task: the failed one is replaced, the finished one is not.
        assert_eq!(decide_with_done(&v, &[], &[], done).start, 1);
        // Both done: nothing to start; scaled to 3: one more.
        assert_eq!(decide_with_done(&v, &[], &[], 2).start, 0);
        assert_eq!(decide_with_done(&view(3, "x"), &[], &[], 2).start, 1);
        // A new spec (another hash) starts a full new set.
        let v2 = view(2, "y");
        assert_eq!(batch_done(&v2, ended.iter().copied()), 0);
        // A service job is unchanged: done is 0 for it.
        let r = task("r", v.hash, RUNNING);
        assert_eq!(decide(&v, &[&r], &[]).start, 1);
    }

    #[test]
    fn stopping_tasks_do_not_count() {
        let v = view(2, "x");
        let mut t1 = task("t1", v.hash, RUNNING);
        t1.kill_requested = true;
        let t2 = task("t2", v.hash, RUNNING);
        assert_eq!(decide(&v, &[&t1, &t2], &[]).start, 1);
    }

    #[test]
    fn rolling_update_one_at_a_time() {
        let old = view(3, "old");
        let new = view(3, "new");
        let mut tasks: Vec<Task> = (0..3)
            .map(|i| task(&format!("o{i}"), old.hash, RUNNING))
            .collect();
        // Step 1: start one new task, stop nothing.
        let refs: Vec<&Task> = tasks.iter().collect();
        assert_eq!(
            decide(&new, &refs, &[]),
            Decision {
                start: 1,
                stop: vec![]
            }
        );
        // While it starts, wait.
        tasks.push(task("n0", new.hash, "STAGING"));
        let refs: Vec<&Task> = tasks.iter().collect();
        assert_eq!(decide(&new, &refs, &[]), Decision::default());
        // Once it runs, stop one old task.
        tasks[3].state = RUNNING.into();
        let refs: Vec<&Task> = tasks.iter().collect();
        assert_eq!(
            decide(&new, &refs, &[]),
            Decision {
                start: 0,
                stop: vec!["o0".into()]
            }
        );
        // With that one stopping, start the next.
        tasks[0].kill_requested = true;
        let refs: Vec<&Task> = tasks.iter().collect();
        assert_eq!(decide(&new, &refs, &[]).start, 1);
        // All new: the rest of the old go.
        tasks.push(task("n1", new.hash, RUNNING));
        tasks.push(task("n2", new.hash, RUNNING));
        let refs: Vec<&Task> = tasks.iter().collect();
        assert_eq!(
            decide(&new, &refs, &[]).stop,
            vec!["o1".to_string(), "o2".to_string()]
        );
    }

    #[test]
    fn rolling_update_refills_a_short_job_first() {
        let old = view(3, "old");
        let new = view(3, "new");
        let t = task("o0", old.hash, RUNNING);
        assert_eq!(decide(&new, &[&t], &[]).start, 2);
    }

    fn with_check(mut v: JobView) -> JobView {
        let mut spec = JobSpec::clone(&v.spec);
        spec.health_checks = serde_json::from_str(
            r#"[{"protocol":"command","command":"true","grace_period_seconds":0}]"#,
        )
        .unwrap();
        v.spec = std::sync::Arc::new(spec);
        v
    }

    #[test]
    fn unhealthy_tasks_are_replaced_start_first() {
        let v = with_check(view(2, "x"));
        let mut good = task("t0", v.hash, RUNNING);
        good.healthy = Some(true);
        let mut sick = task("t1", v.hash, RUNNING);
        sick.healthy = Some(false);
        sick.health_failed = true;
        // Start a replacement, stop nothing yet.
        assert_eq!(
            decide(&v, &[&good, &sick], &[]),
            Decision {
                start: 1,
                stop: vec![]
            }
        );
        // Running but not yet healthy: still nothing stopped.
        let mut new = task("t2", v.hash, RUNNING);
        assert_eq!(decide(&v, &[&good, &sick, &new], &[]), Decision::default());
        // Healthy: now the sick one goes.
        new.healthy = Some(true);
        assert_eq!(
            decide(&v, &[&good, &sick, &new], &[]).stop,
            vec!["t1".to_string()]
        );
    }

    #[test]
    fn a_replacement_that_cannot_start_keeps_the_unhealthy_task() {
        let v = with_check(view(1, "x"));
        let mut sick = task("t1", v.hash, RUNNING);
        sick.health_failed = true;
        let d = decide(&v, &[&sick], &[]);
        assert_eq!((d.start, d.stop.len()), (1, 0));
        // However long the replacement waits (never placed, or still
        // staging), the unhealthy task stays.
        let staging = task("t2", v.hash, "STAGING");
        assert!(decide(&v, &[&sick, &staging], &[]).stop.is_empty());
    }

    #[test]
    fn a_lower_minimum_health_capacity_stops_unhealthy_tasks_sooner() {
        let mut v = with_check(view(2, "x"));
        let mut spec = JobSpec::clone(&v.spec);
        spec.upgrade_strategy.minimum_health_capacity = 0.5;
        v.spec = std::sync::Arc::new(spec);
        let mut good = task("t0", v.hash, RUNNING);
        good.healthy = Some(true);
        let mut sick = task("t1", v.hash, RUNNING);
        sick.health_failed = true;
        let d = decide(&v, &[&good, &sick], &[]);
        assert_eq!((d.start, d.stop), (1, vec!["t1".to_string()]));
    }

    #[test]
    fn backoff_and_flapping_hold_launches() {
        assert_eq!(hold(None, 5), None);
        let mut b = JobBackoff {
            failures: 2,
            next_launch_ms: 1_000,
            message: "2 failure(s)".into(),
            ..Default::default()
        };
        let h = hold(Some(&b), 999).unwrap();
        assert_eq!(h.until_ms, Some(1_000));
        assert!(h.why.starts_with("backing off"));
        assert_eq!(hold(Some(&b), 1_000), None);
        b.flapping = true;
        b.message = "flapping: 3 failures".into();
        let h = hold(Some(&b), 5_000).unwrap();
        assert_eq!((h.until_ms, h.why.as_str()), (None, "flapping: 3 failures"));
    }
}
