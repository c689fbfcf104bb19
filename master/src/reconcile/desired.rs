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
//!
//! ## Batch jobs
//!
//! ```text
//!  the job's kept tasks (live, and its newest 10 ended) ─► progress:
//!     done   = ended FINISHED, exit 0, current config hash, placed since run_since
//!     unsure = 10 ended tasks kept, and the oldest of them ended since run_since
//!  decide_batch: want = instances − done ─► the rules above (scale, rolling
//!                replace, health, drain) keep `want` tasks live
//!  start > 0 and unsure ─► Progress::hold: nothing starts, the job waits saying why
//! ```
//!
//! - **A run.** A batch job (`type: batch`) runs `instances` tasks to a
//!   successful end. Its current run is the tasks with the job's config
//!   hash placed since `JobView::run_since`, the version since which its
//!   spec has had that hash (a change of `instances` or of
//!   `unreachable_strategy` alone continues the run; any other change
//!   starts a new set, and a change back to an earlier spec too). A task of
//!   the run that ended FINISHED with exit code 0 is done: it counts
//!   towards `instances` and is never replaced, so scaling a finished job
//!   up starts only the difference. A task that ended otherwise (FAILED,
//!   KILLED, LOST) is not done: while the run still needs it, the gap is
//!   filled as a service's would be, under the same back-off and flapping.
//! - **Counted from what the state keeps, not recorded.** The replicated
//!   state keeps each job's newest 10 ended tasks (`KEEP_ENDED_PER_JOB`,
//!   forgetting the one that ended first), and the leader counts the
//!   run's successes among them; the job's record holds no count. The
//!   rule is sound, never a guess: while fewer than 10 ended tasks are
//!   kept, none was ever forgotten; and a forgotten task ended before
//!   every kept one, so when the oldest kept one ended before the run
//!   began, no task of the run is forgotten. Otherwise (10 kept, all
//!   ended since the run began) a finished task of the run may be gone,
//!   and starting a task could run a finished one twice: the run starts
//!   nothing more and waits, saying why, until a changed spec starts a new
//!   set. Running a task at most once wins over completing for sure: a
//!   cron run that ran twice cannot be undone, one that waits is seen.
//! - **What that allows.** A run whose `instances` tasks all finish is
//!   told complete as long as `instances <= 10`, which validation enforces
//!   for batch jobs (`ocean_spec::validate::MAX_BATCH_INSTANCES`). A task
//!   that fails is replaced for sure while fewer than 10 tasks have ended
//!   since the run began (its successes, its failures, and the old spec's
//!   tasks stopped for it): a run of `n` tasks absorbs at least `10 − n`
//!   failures (9 for the cron framework's one-task runs, more than the
//!   default flapping limit of 3 within 10 minutes lets through), more
//!   when they come before the others finish. A batch job with more than
//!   10 instances (scaled past validation) cannot be told apart from one
//!   whose oldest finished tasks were forgotten: it holds once 10 of its
//!   tasks ended. Lifting these limits takes a count of the run's
//!   successes on the job's record, kept where task ends are applied.
//! - **Only batch jobs look at ended tasks.** A round gives [`decide`]
//!   only tasks that have not ended; the progress of batch jobs comes from
//!   one more short read of the state over their own kept tasks (at most
//!   `instances` + 10 each), so service jobs cost a round nothing more.

use ocean_proto::internal::{JobBackoff, Task};
use ocean_scheduler_policies as sp;

use std::collections::HashSet;

use super::job::JobView;
use crate::kernel::state::{is_live, is_terminal, FINISHED, KEEP_ENDED_PER_JOB, RUNNING};

/// The decision for one job.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Decision {
    /// New tasks to place.
    pub start: usize,
    /// Tasks to stop.
    pub stop: Vec<String>,
}

/// Decides for a service `job`, given its tasks that have not ended.
/// `agents` describe the cluster for balanced scale-down.
pub fn decide(job: &JobView, tasks: &[&Task], agents: &[sp::Agent]) -> Decision {
    decide_for(job, tasks, agents, job.spec.instances as usize)
}

/// How far a batch job's current run has come, read from its kept tasks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Tasks of the run that ended FINISHED with exit code 0.
    pub done: usize,
    /// Whether the kept ended tasks cannot rule out that a finished task
    /// of the run was forgotten (see the module doc).
    pub unsure: bool,
}

/// The progress of batch `job`'s current run among `tasks`, all its tasks
/// the state keeps (ended or not). A task is of the run when it has the
/// job's config hash and was placed since the run began
/// ([`JobView::run_since`]).
pub fn progress<'a>(job: &JobView, tasks: impl IntoIterator<Item = &'a Task>) -> Progress {
    let mut done = 0;
    let mut ended = 0;
    let mut oldest_end = u64::MAX;
    for t in tasks.into_iter().filter(|t| is_terminal(&t.state)) {
        ended += 1;
        oldest_end = oldest_end.min(t.updated_version);
        if t.state == FINISHED
            && t.exit_code.unwrap_or(0) == 0
            && t.config_hash == job.hash
            && t.created_version >= job.run_since
        {
            done += 1;
        }
    }
    // Forgotten tasks ended no later than every kept one; a task of the
    // run ended after the run began.
    let unsure = ended >= KEEP_ENDED_PER_JOB && oldest_end >= job.run_since;
    Progress { done, unsure }
}

impl Progress {
    /// Why a run that needs more tasks starts none: when a forgotten task
    /// may have finished, starting another could run it twice.
    pub fn hold(&self, job: &JobView) -> Option<Hold> {
        self.unsure.then(|| Hold {
            until_ms: None,
            why: format!(
                "batch run: {} of {} tasks known to have finished, but its older ended \
                 tasks are forgotten (the masters keep {KEEP_ENDED_PER_JOB} per job) and one \
                 may have finished: none is started again; put a changed spec to run a new set",
                self.done, job.spec.instances
            ),
        })
    }
}

/// Decides for a batch `job` whose current run has made `progress`: the
/// tasks that finished count towards `instances`, so only the rest are
/// kept live (a task that failed or was lost leaves a gap, and is
/// replaced). Tasks on `leaving` agents move as [`super::drain`] moves
/// them, against what remains to run.
pub fn decide_batch(
    job: &JobView,
    tasks: &[&Task],
    agents: &[sp::Agent],
    leaving: &HashSet<String>,
    progress: Progress,
) -> Decision {
    let done = u32::try_from(progress.done).unwrap_or(u32::MAX);
    let remaining = job.spec.instances.saturating_sub(done);
    let moving = tasks
        .iter()
        .any(|t| is_live(t) && leaving.contains(&t.agent_id));
    if moving {
        // Rare (a drain), so the spec is copied only then.
        if let Some(d) = super::drain::decide(&job.with_instances(remaining), tasks, leaving) {
            return d;
        }
    }
    decide_for(job, tasks, agents, remaining as usize)
}

/// The decision for a job that keeps `want` tasks live.
fn decide_for(job: &JobView, tasks: &[&Task], agents: &[sp::Agent], want: usize) -> Decision {
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

/// The surplus of `tasks` over `want` to stop. Tasks not yet running
/// serve nobody: they go first (the newest first), and only then does
/// `scale_down` choose among running ones. Otherwise a surplus that
/// includes a replacement still starting (a drain cancelled mid-move, a
/// scale-down during a launch) could stop a serving task and keep the
/// one that has not started, leaving the job below its instances.
fn surplus(job: &JobView, tasks: &[&Task], agents: &[sp::Agent], want: usize) -> Vec<String> {
    let extra = tasks.len().saturating_sub(want);
    let (running, mut starting): (Vec<&Task>, Vec<&Task>) =
        tasks.iter().partition(|t| t.state == RUNNING);
    starting.sort_by(|a, b| b.id.cmp(&a.id));
    let mut stop: Vec<String> = starting.iter().take(extra).map(|t| t.id.clone()).collect();
    if stop.len() == extra {
        return stop;
    }
    let running: Vec<sp::RunningTask> = running
        .iter()
        .map(|t| sp::RunningTask {
            id: t.id.clone(),
            job: t.job_id.clone(),
            agent: t.agent_id.clone(),
            ..Default::default()
        })
        .collect();
    let constraints = job.constraints.clone().unwrap_or_default();
    stop.extend(
        sp::scale_down(agents, &running, &job.id, &constraints, want)
            .into_iter()
            .map(str::to_string),
    );
    stop
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

    #[test]
    fn a_surplus_stops_tasks_not_yet_running_before_serving_ones() {
        // A drain cancelled while the replacement starts: three live tasks
        // for two instances. Found by the drain simulation (sim_drain).
        let v = view(2, "x");
        let old = task("t1", v.hash, RUNNING);
        let older = task("t0", v.hash, RUNNING);
        // On another agent than the serving two: balancing alone would
        // stop one of those.
        let replacement = Task {
            agent_id: "a2".into(),
            ..task("t2", v.hash, "STAGING")
        };
        let d = decide(&v, &[&older, &old, &replacement], &[]);
        assert_eq!(d.stop, vec!["t2".to_string()]);
        // Two not running, one surplus: the newest of them goes.
        let other = task("t3", v.hash, "STARTING");
        let d = decide(&v, &[&older, &replacement, &other], &[]);
        assert_eq!(d.stop, vec!["t3".to_string()]);
        // All running: scale_down chooses, as before.
        let d = decide(&v, &[&older, &old, &task("t4", v.hash, RUNNING)], &[]);
        assert_eq!(d.stop.len(), 1);
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

    /// A batch job whose spec became its own at version 100 (created at 1).
    fn batch(instances: u32, cmd: &str) -> JobView {
        let mut spec = JobSpec::new(ID, cmd);
        spec.instances = instances;
        spec.job_type = ocean_spec::JobType::Batch;
        JobView::parse(&ocean_proto::internal::Job {
            id: ID.into(),
            spec_json: spec.to_canonical_json().into(),
            created_version: 1,
            updated_version: 100,
            spec_since: 100,
            ..Default::default()
        })
        .unwrap()
    }

    /// A task of `v` placed at version `placed` that ended at `ended` in
    /// `state` (FINISHED exits 0, FAILED 1).
    fn ended(id: &str, v: &JobView, state: &str, placed: u64, ended: u64) -> Task {
        Task {
            exit_code: Some(i32::from(state != FINISHED)),
            created_version: placed,
            updated_version: ended,
            ..task(id, v.hash, state)
        }
    }

    fn decide_b(v: &JobView, live: &[&Task], kept: &[&Task]) -> Decision {
        let p = progress(v, kept.iter().copied().chain(live.iter().copied()));
        decide_batch(v, live, &[], &HashSet::new(), p)
    }

    #[test]
    fn a_finished_batch_task_is_not_relaunched_and_a_failed_one_is() {
        let v = batch(2, "x");
        assert!(v.is_batch() && v.run_since == 100);
        let ok = ended("t1", &v, FINISHED, 101, 105);
        let bad = ended("t2", &v, crate::kernel::state::FAILED, 101, 106);
        assert_eq!(
            progress(&v, [&ok, &bad]),
            Progress {
                done: 1,
                unsure: false
            }
        );
        // The failed one is replaced, the finished one is not.
        assert_eq!(decide_b(&v, &[], &[&ok, &bad]).start, 1);
        let again = task("t3", v.hash, RUNNING);
        assert_eq!(decide_b(&v, &[&again], &[&ok, &bad]), Decision::default());
        // Killed by someone else, or lost: replaced too.
        for state in [crate::kernel::state::KILLED, crate::kernel::state::LOST] {
            let gone = ended("t3", &v, state, 107, 108);
            assert_eq!(decide_b(&v, &[], &[&ok, &bad, &gone]).start, 1, "{state}");
        }
        // Both done: the job is complete and starts nothing.
        let ok2 = ended("t3", &v, FINISHED, 107, 108);
        assert_eq!(decide_b(&v, &[], &[&ok, &bad, &ok2]), Decision::default());
        // A service job with the same (live) tasks keeps its instances.
        assert_eq!(decide(&view(2, "x"), &[], &[]).start, 2);
    }

    #[test]
    fn scaling_up_a_completed_batch_job_starts_only_the_difference() {
        let done: Vec<Task> = (0..2)
            .map(|i| ended(&format!("t{i}"), &batch(2, "x"), FINISHED, 101, 102 + i))
            .collect();
        let kept: Vec<&Task> = done.iter().collect();
        assert_eq!(decide_b(&batch(2, "x"), &[], &kept), Decision::default());
        // Scaling keeps the hash, so the run goes on: 3 more, not 5.
        let more = batch(5, "x");
        assert_eq!(more.hash, batch(2, "x").hash);
        assert_eq!(decide_b(&more, &[], &kept).start, 3);
        // Scaled down below what finished: nothing to start or stop.
        assert_eq!(decide_b(&batch(1, "x"), &[], &kept), Decision::default());
        // Scaled down while running: the surplus stops.
        let run = task("t9", more.hash, RUNNING);
        assert_eq!(
            decide_b(&batch(2, "x"), &[&run], &kept).stop,
            vec!["t9".to_string()]
        );
    }

    #[test]
    fn a_new_spec_starts_a_full_new_set() {
        let old = batch(2, "old");
        let done: Vec<Task> = (0..2)
            .map(|i| ended(&format!("t{i}"), &old, FINISHED, 101, 102 + i))
            .collect();
        let kept: Vec<&Task> = done.iter().collect();
        let new = batch(2, "new");
        assert_ne!(new.hash, old.hash);
        assert_eq!(progress(&new, kept.iter().copied()).done, 0);
        assert_eq!(decide_b(&new, &[], &kept).start, 2);
        // Back to an earlier spec is a new set too: its successes were
        // placed before the run began.
        let mut again = batch(2, "old");
        again.run_since = 200;
        assert_eq!(again.hash, old.hash);
        assert_eq!(decide_b(&again, &[], &kept).start, 2);
        // Old tasks still running are replaced one at a time, as a
        // service's would be.
        let o = task("o1", old.hash, RUNNING);
        assert_eq!(decide_b(&new, &[&o], &[]).start, 1);
    }

    #[test]
    fn a_run_that_may_have_forgotten_a_finished_task_holds() {
        let v = batch(2, "x");
        let ok = ended("t0", &v, FINISHED, 101, 150);
        let mut kept: Vec<Task> = (1..10)
            .map(|i| {
                ended(
                    &format!("t{i}"),
                    &v,
                    crate::kernel::state::FAILED,
                    101,
                    150 + i,
                )
            })
            .collect();
        kept.push(ok);
        let refs: Vec<&Task> = kept.iter().collect();
        // Ten kept, all ended since the run began (at 100): an older
        // success of the run may have been forgotten.
        let p = progress(&v, refs.iter().copied());
        assert_eq!(
            p,
            Progress {
                done: 1,
                unsure: true
            }
        );
        assert_eq!(decide_batch(&v, &[], &[], &HashSet::new(), p).start, 1);
        let h = p.hold(&v).expect("holds");
        assert_eq!(h.until_ms, None);
        assert!(h.why.contains("1 of 2"), "{}", h.why);
        // Nine kept: nothing was ever forgotten.
        let p = progress(&v, refs[1..].iter().copied());
        assert!(!p.unsure && p.hold(&v).is_none());
        // The oldest kept ended before the run began: what was forgotten
        // ended before it too, so none of it was of this run.
        kept[0].updated_version = 99;
        let p = progress(&v, kept.iter());
        assert!(!p.unsure, "{p:?}");
        // A run that is complete needs no certainty about the rest.
        let done: Vec<Task> = (0..10)
            .map(|i| ended(&format!("d{i}"), &v, FINISHED, 101, 150 + i))
            .collect();
        let p = progress(&v, done.iter());
        assert!(p.unsure && p.done == 10);
        assert_eq!(decide_batch(&v, &[], &[], &HashSet::new(), p).start, 0);
    }

    #[test]
    fn a_batch_drain_moves_only_what_remains() {
        let v = batch(2, "x");
        let ok = ended("t0", &v, FINISHED, 101, 102);
        let mut moving = task("t1", v.hash, RUNNING);
        moving.agent_id = "old".into();
        let leaving: HashSet<String> = ["old".to_string()].into();
        let p = progress(&v, [&ok, &moving]);
        let d = decide_batch(&v, &[&moving], &[], &leaving, p);
        // One replacement for the one task still to finish, not two.
        assert_eq!((d.start, d.stop.len()), (1, 0));
        let service = super::super::drain::decide(&view(2, "x"), &[&moving], &leaving);
        assert_eq!(service.map(|d| d.start), Some(2));
    }

    #[test]
    fn a_batch_job_fits_in_the_ended_tasks_the_state_keeps() {
        let max = ocean_spec::validate::MAX_BATCH_INSTANCES;
        assert_eq!(usize::try_from(max).ok(), Some(KEEP_ENDED_PER_JOB));
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
