//! Deployments in the replicated state: created when a job's update
//! changes what its tasks embody, moved on by the leader's controller
//! (through `PlanTasks.deployments`, compare-and-set on the record's
//! `updated_version`) and by operators' actions; a failure with
//! `auto_revert`, or a cancel, puts the job back to the version the
//! deployment replaced, which starts a deployment of its own.
//!
//! A job keeps its newest [`KEEP_DEPLOYMENTS`] deployments in its own
//! record, newest first: they travel, persist and snapshot with it, and a
//! deployment's change is a change of its job on the feed.

use std::sync::Arc;

use ocean_proto::internal::{Deployment, DeploymentAction, Job};
use ocean_spec::JobSpec;

use super::jobs::spec_version;
use super::{Change, ClusterState, Outcome};

/// Deployments a job remembers.
pub const KEEP_DEPLOYMENTS: usize = 10;

/// Replacing tasks.
pub const RUNNING: &str = "running";
/// Stopped by an operator or by its `step`, until resumed.
pub const PAUSED: &str = "paused";
/// Its canaries are healthy; the rest waits for a promotion.
pub const WAITING: &str = "waiting_for_promotion";
/// Every task runs the new version.
pub const SUCCEEDED: &str = "succeeded";
/// Failed (a deadline, or an operator); reverted when it said so.
pub const FAILED: &str = "failed";
/// Stopped by an operator or by a newer update.
pub const CANCELLED: &str = "cancelled";
/// A later rollback replaced the version it rolled out.
pub const ROLLED_BACK: &str = "rolled_back";

/// Every state, in the order a deployment usually goes through them.
pub const STATES: [&str; 7] = [
    RUNNING,
    PAUSED,
    WAITING,
    SUCCEEDED,
    FAILED,
    CANCELLED,
    ROLLED_BACK,
];

/// The actions operators may take.
pub const ACTIONS: [&str; 5] = ["pause", "resume", "promote", "fail", "cancel"];

/// Whether a deployment is still moving (or may move again).
pub fn is_active(d: &Deployment) -> bool {
    matches!(d.state.as_str(), RUNNING | PAUSED | WAITING)
}

/// The id of the deployment of `job`'s spec version `version`.
pub fn deployment_id(job: &str, version: u64) -> String {
    format!("{job}@{version}")
}

/// The job id and spec version an id names, when it is one.
pub fn parse_id(id: &str) -> Option<(&str, u64)> {
    let (job, v) = id.rsplit_once('@')?;
    Some((job, v.parse().ok()?))
}

/// Whether `action` applies to `d` now; the reason when it does not.
pub fn check_action(d: &Deployment, action: &str) -> Result<(), String> {
    let ok = match action {
        "pause" => matches!(d.state.as_str(), RUNNING | WAITING),
        "resume" => d.state == PAUSED,
        "promote" => !d.promoted && matches!(d.state.as_str(), RUNNING | WAITING | PAUSED),
        "fail" | "cancel" => is_active(d),
        other => {
            return Err(format!(
                "unknown action {other:?}: one of {}",
                ACTIONS.join(", ")
            ))
        }
    };
    if ok {
        return Ok(());
    }
    Err(match action {
        "resume" => format!("deployment {} is {}, not paused", d.id, d.state),
        "promote" if d.promoted => format!("deployment {} has no canaries waiting", d.id),
        _ => format!(
            "deployment {} is {}: only an active (running, paused or waiting) deployment can be {}",
            d.id,
            d.state,
            past(action)
        ),
    })
}

fn past(action: &str) -> &'static str {
    match action {
        "pause" => "paused",
        "promote" => "promoted",
        "fail" => "failed",
        _ => "cancelled",
    }
}

/// The deployment a put of `new` over `old` starts, if it replaces tasks.
pub(super) fn started_by(
    old: &Job,
    new: &Job,
    version: u64,
    rollback_to: u64,
) -> Option<Deployment> {
    let parse = |b: &[u8]| serde_json::from_slice::<JobSpec>(b).ok();
    let (before, after) = (parse(&old.spec_json)?, parse(&new.spec_json)?);
    // A batch job's run is its own rollout (reconcile::desired).
    if before.config_hash() == after.config_hash() || after.job_type == ocean_spec::JobType::Batch {
        return None;
    }
    let to = spec_version(new);
    Some(Deployment {
        id: deployment_id(&new.id, to),
        job_id: new.id.clone(),
        spec_version: to,
        from_spec_version: spec_version(old),
        config_hash: after.config_hash(),
        state: RUNNING.into(),
        created_version: version,
        updated_version: version,
        // Going back to a version that ran needs no canaries.
        promoted: after.upgrade_strategy.canary == 0 || rollback_to > 0,
        rollback_to,
        auto_revert: after.upgrade_strategy.auto_revert,
        instances: after.instances,
        ..Default::default()
    })
}

/// Adds `started` to `job`'s deployments; an active one it supersedes is
/// cancelled, and a rollback marks the deployment it undoes.
pub(super) fn record_start(job: &mut Job, started: Deployment, version: u64) {
    for d in &mut job.deployments {
        if is_active(d) {
            d.state = CANCELLED.into();
            d.reason = format!("superseded by spec version {}", started.spec_version);
            d.updated_version = version;
        } else if started.rollback_to > 0
            && d.state == SUCCEEDED
            && d.spec_version > started.rollback_to
        {
            d.state = ROLLED_BACK.into();
            d.reason = format!("rolled back to spec version {}", started.rollback_to);
            d.updated_version = version;
        }
    }
    job.deployments.insert(0, started);
    job.deployments.truncate(KEEP_DEPLOYMENTS);
}

impl ClusterState {
    /// Stores what the leader's controller made of a deployment, when the
    /// job's record of it is still the one the leader read and active.
    pub(super) fn controller_update(&mut self, mut d: Deployment, version: u64) -> Option<Change> {
        let job = self.jobs.get(&d.job_id)?;
        let at = job.deployments.iter().position(|x| x.id == d.id)?;
        let stored = &job.deployments[at];
        if stored.updated_version != d.updated_version || !is_active(stored) {
            return None;
        }
        let mut job = Job::clone(job);
        d.updated_version = version;
        job.deployments[at] = d;
        job.updated_version = version;
        let job = Arc::new(job);
        self.jobs.insert(job.id.clone(), job.clone());
        Some(Change::JobPut(job))
    }

    /// Applies an operator's (or the controller's) action; one that no
    /// longer applies (raced with another) changes nothing.
    pub(super) fn deployment_action(&mut self, a: &DeploymentAction) -> (Outcome, Vec<Change>) {
        let Some(job) = self.jobs.get(&a.job_id) else {
            return (Outcome::NotFound, Vec::new());
        };
        let Some(at) = job.deployments.iter().position(|d| d.id == a.deployment_id) else {
            return (Outcome::NotFound, Vec::new());
        };
        if check_action(&job.deployments[at], &a.action).is_err() {
            return (Outcome::Unchanged, Vec::new());
        }
        let next = self.version + 1;
        let mut job = Job::clone(job);
        let d = &mut job.deployments[at];
        let by = if a.by.is_empty() {
            "an operator"
        } else {
            &a.by
        };
        let mut revert = None;
        match a.action.as_str() {
            "pause" => {
                d.state = PAUSED.into();
                d.reason = reason_or(&a.reason, || format!("paused by {by}"));
            }
            "resume" => {
                d.state = RUNNING.into();
                d.reason = String::new();
                // The sleep after the last replaced task still holds.
                d.step_mark = u32::try_from(d.replaced.len()).unwrap_or(u32::MAX);
                // Time paused is not time without progress.
                d.progress_ms = a.now_ms;
                if d.unhealthy_since_ms > 0 {
                    d.unhealthy_since_ms = a.now_ms;
                }
            }
            "promote" => {
                d.promoted = true;
                d.state = RUNNING.into();
                d.reason = format!("canaries promoted by {by}");
                d.progress_ms = a.now_ms;
            }
            "fail" => {
                d.state = FAILED.into();
                d.reason = reason_or(&a.reason, || format!("failed by {by}"));
                // Canaries not promoted are extra tasks beside a version
                // that still serves whole: failing them always rolls them
                // back. Past the promotion, only auto_revert goes back.
                if (d.auto_revert || !d.promoted) && d.revert_of == 0 && d.from_spec_version > 0 {
                    revert = Some((d.from_spec_version, d.spec_version));
                    d.reason = format!(
                        "{}; reverted to spec version {}",
                        d.reason, d.from_spec_version
                    );
                }
            }
            _ => {
                d.state = CANCELLED.into();
                d.reason = reason_or(&a.reason, || format!("cancelled by {by}"));
                if d.from_spec_version > 0 {
                    revert = Some((d.from_spec_version, d.spec_version));
                    d.reason =
                        format!("{}; back to spec version {}", d.reason, d.from_spec_version);
                }
            }
        }
        d.updated_version = next;
        d.updated_ms = a.now_ms;
        job.updated_version = next;
        let id = job.id.clone();
        self.jobs.insert(id.clone(), Arc::new(job));
        let mut changes = Vec::new();
        if let Some((to, of)) = revert {
            if let Some(c) = self.revert(&id, to, of, next) {
                changes.push(c);
            }
        }
        if changes.is_empty() {
            changes.push(Change::JobPut(self.jobs[&id].clone()));
        }
        self.version = next;
        (Outcome::Updated, changes)
    }

    /// Puts `job` back to its spec version `to` (with its current
    /// instances): a new spec version whose deployment reverts the one of
    /// version `of`. Nothing when version `to` is no longer kept (the
    /// failed deployment's reason stays).
    fn revert(&mut self, id: &str, to: u64, of: u64, version: u64) -> Option<Change> {
        let job = self.jobs.get(id)?;
        let old = job.history.iter().find(|h| h.spec_version == to)?;
        let spec_json = with_current_instances(&old.spec_json, &job.spec_json)?;
        let mut changes = self.store_spec(id, &spec_json, false, version, to, of);
        changes.pop()
    }
}

/// The canonical spec `old` with the instances of spec `current`: what
/// going back to an earlier version puts (a rollback or a revert keeps the
/// job's scale). `None` when either does not parse.
pub fn with_current_instances(old: &[u8], current: &[u8]) -> Option<Vec<u8>> {
    let mut spec: serde_json::Value = serde_json::from_slice(old).ok()?;
    let now: serde_json::Value = serde_json::from_slice(current).ok()?;
    spec["instances"] = now["instances"].clone();
    Some(
        serde_json::from_value::<JobSpec>(spec)
            .ok()?
            .to_canonical_json(),
    )
}

fn reason_or(given: &str, default: impl FnOnce() -> String) -> String {
    if given.is_empty() {
        default()
    } else {
        given.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::state::{deployment_action_command, plan_command, put_job_command};
    use ocean_proto::internal::PlanTasks;

    const ID: &str = "cop.c_owt.o_pdl.p_service.s_job.j_cluster.c";

    fn spec(cmd: &str, f: impl FnOnce(&mut JobSpec)) -> Vec<u8> {
        let mut s = JobSpec::new(ID, cmd);
        s.instances = 3;
        f(&mut s);
        s.to_canonical_json()
    }

    fn action(id: &str, what: &str) -> ocean_proto::internal::DeploymentAction {
        DeploymentAction {
            job_id: ID.into(),
            deployment_id: id.into(),
            action: what.into(),
            now_ms: 1_000,
            ..Default::default()
        }
    }

    fn newest(s: &ClusterState) -> Deployment {
        s.jobs[ID].deployments[0].clone()
    }

    #[test]
    fn only_a_change_tasks_embody_starts_a_deployment() {
        let mut s = ClusterState::default();
        s.apply(&put_job_command(ID.into(), spec("a", |_| {})));
        assert!(
            s.jobs[ID].deployments.is_empty(),
            "a new job replaces nothing"
        );
        s.apply(&put_job_command(
            ID.into(),
            spec("a", |s| s.backoff.backoff_seconds = 7.0),
        ));
        assert_eq!(s.jobs[ID].spec_version, 2);
        assert!(s.jobs[ID].deployments.is_empty(), "back-off only: in place");
        s.apply(&put_job_command(
            ID.into(),
            spec("b", |s| s.backoff.backoff_seconds = 7.0),
        ));
        let d = newest(&s);
        assert_eq!(d.id, format!("{ID}@3"));
        assert_eq!((d.from_spec_version, d.spec_version), (2, 3));
        assert_eq!(d.state, RUNNING);
        assert!(d.promoted, "no canaries: nothing to promote");
        // A newer update supersedes it.
        s.apply(&put_job_command(ID.into(), spec("c", |_| {})));
        let ds = &s.jobs[ID].deployments;
        assert_eq!((ds[0].spec_version, ds[1].state.as_str()), (4, CANCELLED));
        assert!(
            ds[1].reason.contains("superseded by spec version 4"),
            "{}",
            ds[1].reason
        );
    }

    #[test]
    fn the_controller_writes_only_over_what_it_read() {
        let mut s = ClusterState::default();
        s.apply(&put_job_command(ID.into(), spec("a", |_| {})));
        s.apply(&put_job_command(ID.into(), spec("b", |_| {})));
        let read = newest(&s);
        // An operator pauses it meanwhile.
        s.apply(&deployment_action_command(action(&read.id, "pause")));
        assert_eq!(newest(&s).state, PAUSED);
        let mut stale = read.clone();
        stale.replaced.push("t1".into());
        let before = s.clone();
        s.apply(&plan_command(PlanTasks {
            deployments: vec![stale],
            ..Default::default()
        }));
        assert_eq!(s.jobs, before.jobs, "the pause is not overwritten");
        let mut fresh = newest(&s);
        fresh.reason = "paused after 1 of 3".into();
        let a = s.apply(&plan_command(PlanTasks {
            deployments: vec![fresh],
            ..Default::default()
        }));
        assert_eq!(newest(&s).reason, "paused after 1 of 3");
        assert_eq!(newest(&s).updated_version, a.version);
    }

    #[test]
    fn actions_move_it_and_a_failure_reverts_when_asked() {
        let mut s = ClusterState::default();
        s.apply(&put_job_command(ID.into(), spec("a", |_| {})));
        s.apply(&put_job_command(
            ID.into(),
            spec("b", |s| {
                s.upgrade_strategy.auto_revert = true;
                s.upgrade_strategy.canary = 1;
            }),
        ));
        let d = newest(&s);
        assert!(!d.promoted && d.auto_revert);
        assert_eq!(
            check_action(&d, "resume").unwrap_err(),
            format!("deployment {} is running, not paused", d.id)
        );
        s.apply(&deployment_action_command(action(&d.id, "promote")));
        assert!(newest(&s).promoted);
        s.apply(&deployment_action_command(action(&d.id, "pause")));
        s.apply(&deployment_action_command(action(&d.id, "resume")));
        assert_eq!(newest(&s).state, RUNNING);
        // A scale in between keeps the instances on the revert.
        s.apply(&crate::kernel::state::scale_job_command(ID.into(), 5));
        let mut fail = action(&d.id, "fail");
        fail.reason = "task x not healthy within 300 s".into();
        s.apply(&deployment_action_command(fail));
        let job = &s.jobs[ID];
        let (revert, failed) = (&job.deployments[0], &job.deployments[1]);
        assert_eq!(failed.state, FAILED);
        assert_eq!(
            failed.reason,
            "task x not healthy within 300 s; reverted to spec version 1"
        );
        assert_eq!(
            (revert.spec_version, revert.revert_of, revert.state.as_str()),
            (3, 2, RUNNING)
        );
        let now: JobSpec = serde_json::from_slice(&job.spec_json).unwrap();
        assert_eq!((now.cmd.as_deref(), now.instances), (Some("a"), 5));
        // A revert that fails is not reverted again.
        s.apply(&deployment_action_command(action(&revert.id, "fail")));
        assert_eq!(s.jobs[ID].spec_version, 3);
        // Nothing applies to an ended deployment.
        let before = s.clone();
        let a = s.apply(&deployment_action_command(action(&d.id, "pause")));
        assert_eq!((a.outcome, &s), (Outcome::Unchanged, &before));
    }

    #[test]
    fn a_cancel_goes_back_to_the_version_it_replaced() {
        let mut s = ClusterState::default();
        s.apply(&put_job_command(ID.into(), spec("a", |_| {})));
        s.apply(&put_job_command(ID.into(), spec("b", |_| {})));
        let d = newest(&s);
        s.apply(&deployment_action_command(action(&d.id, "cancel")));
        let job = &s.jobs[ID];
        assert_eq!(job.deployments[1].state, CANCELLED);
        assert_eq!(job.deployments[0].revert_of, 2);
        assert_eq!(job.spec_json, spec("a", |_| {}));
    }
}
