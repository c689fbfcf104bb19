//! The deployment controller's step: given a deployment, its job and the
//! job's tasks, what to do now. Pure (the time is handed in), so it is
//! tested by asserting exact action lists; the reconcile round runs it for
//! every job with an active deployment and commits what it says with the
//! round's placements (the record under compare-and-set), so a new leader
//! reads where the deployment stood and goes on from there.
//!
//! ```text
//!  canaries (not promoted): start `canary` new tasks beside the old ones
//!     └─ all healthy ─► waiting_for_promotion (or promoted: auto_promote)
//!  rolling: new tasks up to the step's goal, at most `surge` over instances;
//!     an old task stops while the up tasks stay >= floor, each stop one
//!     "replaced" (recorded by id: never twice), then `sleep_seconds`;
//!     after `step` replaced ─► paused until resumed
//!  no old task left and `instances` new ones healthy ─► succeeded
//!  a new task unhealthy past healthy_deadline, or no progress past
//!     progress_deadline ─► fail (reverted by the state when auto_revert)
//! ```
//!
//! A task counts as up when it runs and, if the job has health checks, is
//! healthy; a new one counts towards the rollout once it has been up for
//! `min_healthy_seconds`. Whatever the pace, a job below its instances
//! (a task died) is filled at once, and old tasks never go while that
//! would take the up tasks below the floor.

use ocean_proto::internal::{Deployment, Task};
use ocean_spec::Limits;

use super::desired::{is_up, Decision};
use super::job::JobView;
use crate::kernel::state::deployments::{PAUSED, RUNNING, SUCCEEDED, WAITING};
use crate::kernel::state::{is_live, is_terminal, FINISHED, RUNNING as TASK_RUNNING};

/// One thing the controller does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Place this many tasks of the new version.
    Start(usize),
    /// Stop these tasks (old ones, replaced).
    Stop(Vec<String>),
    /// Store the deployment as it now stands.
    Record(Box<Deployment>),
    /// Fail it, saying why (the state reverts it when it says so).
    Fail(String),
    /// Look again at this leader-clock time (a sleep or a deadline ends).
    WakeAt(u64),
}

/// What to do for deployment `d` of `job`, whose kept tasks (live and
/// recently ended) are `tasks`, at leader-clock time `now` (ms).
pub fn step(d: &Deployment, job: &JobView, tasks: &[&Task], now: u64) -> Vec<Action> {
    let n = job.spec.instances as usize;
    let strategy = &job.spec.upgrade_strategy;
    let Limits { surge, floor } = strategy.limits(job.spec.instances);
    let (surge, floor) = (surge as usize, floor as usize);
    let min_healthy_ms = u64::from(strategy.min_healthy_seconds) * 1000;
    let live: Vec<&Task> = tasks.iter().copied().filter(|t| is_live(t)).collect();
    let (new, old): (Vec<&Task>, Vec<&Task>) =
        live.iter().partition(|t| t.config_hash == d.config_hash);
    let up = |t: &Task| is_up(job, t) && !t.health_failed;
    let up_since = |t: &Task| {
        if job.spec.health_checks.is_empty() {
            t.started_ms
        } else {
            t.healthy_since_ms
        }
    };
    let counts = |t: &Task| up(t) && now.saturating_sub(up_since(t)) >= min_healthy_ms;
    let new_up = new.iter().filter(|t| counts(t)).count();
    let old_up = old.iter().filter(|t| up(t)).count();

    let mut rec = d.clone();
    let mut actions = Vec::new();
    if rec.started_ms == 0 {
        rec.started_ms = now;
        rec.progress_ms = now;
    }
    if new_up > rec.healthy as usize {
        rec.progress_ms = now;
    }
    rec.healthy = u32::try_from(new_up).unwrap_or(u32::MAX);

    // Whether the rollout waits on a new task's health: one runs but does
    // not count yet, or one of this version failed since the last progress
    // (a crash loop leaves no live task behind to look at).
    let failed_since = tasks.iter().find(|t| {
        is_terminal(&t.state)
            && t.state != FINISHED
            && !t.kill_requested
            && t.config_hash == d.config_hash
            && t.created_version >= d.created_version
            && t.ended_ms >= rec.progress_ms
    });
    let not_up = new.iter().find(|t| !counts(t));
    let waiting_on = not_up.copied().or(failed_since.copied());
    rec.unhealthy_since_ms = match waiting_on {
        Some(_) if rec.unhealthy_since_ms == 0 => now,
        Some(_) => rec.unhealthy_since_ms,
        None => 0,
    };

    let active = rec.state == RUNNING;
    if active {
        if let Some(why) = deadline_passed(&rec, job, waiting_on, now) {
            return vec![Action::Fail(why)];
        }
    }

    // Whatever the pace: a job below its instances is filled at once.
    let total = new.len() + old.len();
    let mut start = n.saturating_sub(total);
    let mut stop: Vec<String> = Vec::new();

    if active && !rec.promoted {
        let canary = strategy.canary as usize;
        // Old tasks beyond the instances (a superseded rollout's surge)
        // go first, within the floor, so canaries stay the only extra.
        let room = (new_up + old_up).saturating_sub(floor);
        stop = old_to_stop(&old, &up, room, old.len().saturating_sub(n));
        let after_stops = total - stop.len();
        let more = canary
            .saturating_sub(new.len())
            .min((n + canary).saturating_sub(after_stops));
        start = start.max(more);
        if !stop.is_empty() {
            rec.replaced.extend(stop.iter().cloned());
            rec.progress_ms = now;
        }
        if new_up >= canary {
            if strategy.auto_promote {
                rec.promoted = true;
                rec.reason = format!("{canary} canaries healthy: promoted automatically");
                rec.progress_ms = now;
            } else {
                rec.state = WAITING.into();
                rec.reason = format!(
                    "{canary} canaries healthy: promote to go on, or fail to roll them back"
                );
            }
        }
    } else if active && old.is_empty() && new_up >= n {
        rec.state = SUCCEEDED.into();
        rec.reason = format!("{n} of {n} tasks run spec version {}", d.spec_version);
    } else if active {
        let step = strategy.step as usize;
        let replaced = rec.replaced.len();
        let remaining = if step > 0 {
            (rec.step_mark as usize + step).saturating_sub(replaced)
        } else {
            usize::MAX
        };
        let mut budget = remaining;
        if budget == 0 && !old.is_empty() {
            rec.state = PAUSED.into();
            rec.reason = format!(
                "step: paused after {replaced} of {n} tasks replaced (step {step}); resume to go on"
            );
        } else {
            let sleeping = now < rec.next_at_ms;
            if sleeping {
                budget = 0;
                actions.push(Action::WakeAt(rec.next_at_ms));
            } else if strategy.sleep_seconds > 0 {
                budget = budget.min(1);
            }
            // Old tasks that serve nobody go first, then the oldest, while
            // the up tasks stay at or above the floor.
            let room = (new_up + old_up).saturating_sub(floor);
            stop = old_to_stop(&old, &up, room, budget);
            // New tasks up to the step's goal, within the surge: enough
            // to replace what the step still allows (new tasks a
            // superseded rollout left count too, or a step could wait on
            // a replacement it never starts).
            let goal = n.min(n.saturating_sub(old.len()).saturating_add(remaining));
            let in_flight = new.iter().any(|t| !counts(t));
            // With a sleep, one new task at a time, and none in the step
            // that replaced one: the sleep comes first.
            let paced = sleeping || (strategy.sleep_seconds > 0 && (in_flight || !stop.is_empty()));
            if !paced {
                let after_stops = total - stop.len();
                let room = (n + surge).saturating_sub(after_stops);
                let mut more = goal.saturating_sub(new.len()).min(room);
                if strategy.sleep_seconds > 0 {
                    more = more.min(1);
                }
                start = start.max(more);
            }
            if !stop.is_empty() {
                rec.replaced.extend(stop.iter().cloned());
                rec.progress_ms = now;
                if strategy.sleep_seconds > 0 {
                    rec.next_at_ms = now + u64::from(strategy.sleep_seconds) * 1000;
                    actions.push(Action::WakeAt(rec.next_at_ms));
                }
            }
        }
    }

    // A new task that runs but has not been up long enough is looked at
    // again when it will have been.
    if min_healthy_ms > 0 {
        if let Some(at) = new
            .iter()
            .filter(|t| up(t) && !counts(t))
            .map(|t| up_since(t) + min_healthy_ms)
            .min()
        {
            actions.push(Action::WakeAt(at));
        }
    }
    if rec.state == RUNNING {
        actions.push(Action::WakeAt(next_deadline(&rec, job)));
    }
    if start > 0 {
        actions.push(Action::Start(start));
    }
    if !stop.is_empty() {
        actions.push(Action::Stop(stop));
    }
    if rec != *d {
        actions.push(Action::Record(Box::new(rec)));
    }
    actions
}

/// Up to `limit` old tasks to stop: those that serve nobody first, then
/// the oldest, stopping an up one only while `room` (up tasks above the
/// floor) lasts.
fn old_to_stop(
    old: &[&Task],
    up: &impl Fn(&Task) -> bool,
    mut room: usize,
    limit: usize,
) -> Vec<String> {
    let mut candidates = old.to_vec();
    candidates.sort_by(|a, b| (up(a), &a.id).cmp(&(up(b), &b.id)));
    let mut stop = Vec::new();
    for t in candidates {
        if stop.len() >= limit {
            break;
        }
        if up(t) {
            if room == 0 {
                break;
            }
            room -= 1;
        }
        stop.push(t.id.clone());
    }
    stop
}

/// The first deadline that has passed, as the failure's reason.
fn deadline_passed(
    rec: &Deployment,
    job: &JobView,
    waiting_on: Option<&Task>,
    now: u64,
) -> Option<String> {
    let s = &job.spec.upgrade_strategy;
    let healthy_ms = u64::from(s.healthy_deadline()) * 1000;
    if rec.unhealthy_since_ms > 0 && now.saturating_sub(rec.unhealthy_since_ms) >= healthy_ms {
        let what = waiting_on.map_or_else(String::new, |t| {
            let mut w = format!(": task {} is {}", t.id, t.state);
            if t.state == TASK_RUNNING && !t.health_message.is_empty() {
                w.push_str(&format!(" (health: {})", t.health_message));
            } else if !t.message.is_empty() {
                w.push_str(&format!(" ({})", t.message));
            }
            w
        });
        return Some(format!(
            "no new task became healthy within healthy_deadline_seconds ({}){what}",
            s.healthy_deadline()
        ));
    }
    let progress_ms = u64::from(s.progress_deadline()) * 1000;
    if now.saturating_sub(rec.progress_ms) >= progress_ms {
        return Some(format!(
            "no progress within progress_deadline_seconds ({}): {} replaced, {} new healthy",
            s.progress_deadline(),
            rec.replaced.len(),
            rec.healthy
        ));
    }
    None
}

/// When the nearest deadline of a running deployment passes.
fn next_deadline(rec: &Deployment, job: &JobView) -> u64 {
    let s = &job.spec.upgrade_strategy;
    let progress = rec.progress_ms + u64::from(s.progress_deadline()) * 1000;
    if rec.unhealthy_since_ms > 0 {
        progress.min(rec.unhealthy_since_ms + u64::from(s.healthy_deadline()) * 1000)
    } else {
        progress
    }
}

/// A job whose deployment failed without going back holds its tasks of
/// both versions as they are: no task is replaced for the version; a job
/// below its instances is filled (with the current spec, as any gap), and
/// a surplus goes, tasks that serve nobody first.
pub fn hold(job: &JobView, tasks: &[&Task]) -> Decision {
    let n = job.spec.instances as usize;
    let mut live: Vec<&Task> = tasks.iter().copied().filter(|t| is_live(t)).collect();
    let mut d = Decision {
        start: n.saturating_sub(live.len()),
        ..Decision::default()
    };
    if live.len() > n {
        live.sort_by(|a, b| (is_up(job, a), &a.id).cmp(&(is_up(job, b), &b.id)));
        d.stop = live[..live.len() - n]
            .iter()
            .map(|t| t.id.clone())
            .collect();
    }
    d
}

#[cfg(test)]
mod tests;
