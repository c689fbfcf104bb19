//! A job's plan (`POST /v1/jobs/{id}/plan`): what putting a spec would do,
//! committing nothing. The field-level diff against the running version
//! ([`ocean_spec::diff`]), whether and how many tasks a deployment would
//! replace (live tasks whose config hash differs from the new spec's), the
//! steps the upgrade strategy takes, and a dry run of the real placement
//! planner ([`sp::plan`]) on a snapshot of the agents and live tasks with
//! the new version's first batch pending.
//!
//! It lives in `reconcile` because it builds the planner's snapshot the
//! way a round does ([`super::cache`], [`super::job`]); the api layer
//! calls it.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use ocean_proto::internal::Job;
use ocean_scheduler_policies as sp;
use ocean_spec::diff::{diff, FieldChange};
use ocean_spec::{JobSpec, Limits};
use serde::Serialize;

use super::cache::{AgentCache, RunningCache};
use super::job::{task_id, JobView};
use crate::kernel::state::jobs::spec_version;
use crate::kernel::state::{is_live, is_terminal, ClusterState};

/// What putting a spec would do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobPlan {
    pub job_id: String,
    /// The state version the plan was made at.
    pub version: u64,
    /// No job of this id exists: every instance is new.
    pub new_job: bool,
    /// The running spec version (absent for a new job).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_spec_version: Option<u64>,
    /// The field-level diff against the running version.
    pub changes: Vec<FieldChange>,
    /// Whether the tasks' config hash changes (a deployment would start).
    pub replaces_tasks: bool,
    /// Live tasks of the job that would be replaced.
    pub tasks_to_replace: usize,
    /// Live tasks of the job now.
    pub live_tasks: usize,
    /// The new instance count.
    pub instances: u32,
    /// Surge and floor from the strategy for the new instance count.
    pub surge: u32,
    pub floor: u32,
    /// One sentence: what happens.
    pub summary: String,
    /// The deployment's steps, in order.
    pub steps: Vec<PlanStep>,
    /// The dry run of placement for the first batch.
    pub placement: PlacementOutcome,
}

/// One step of a deployment as the strategy shapes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanStep {
    /// `canary`, `promotion`, `replace`, `pause`, `start`, `scale`.
    pub kind: &'static str,
    /// Tasks the step replaces or starts (0 for a wait).
    pub tasks: u32,
    pub detail: String,
}

/// What placement would do with the first batch.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct PlacementOutcome {
    /// New tasks asked for.
    pub asked: usize,
    pub placed: Vec<PlannedTask>,
    /// Tasks that would wait, and why.
    pub waiting: usize,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub waiting_reason: String,
    /// Running tasks that would be preempted for them.
    pub preempted: Vec<String>,
}

/// A task the planner would place.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedTask {
    pub task: String,
    pub agent: String,
    pub hostname: String,
}

/// Plans `new` against the state. `connected` are the agents with a
/// stream to this master; on a master that is not leading none are, and
/// every agent the state knows is then taken as connected (the leader's
/// view, as far as a follower can know it).
pub fn plan_job(st: &ClusterState, connected: &HashSet<String>, new: &JobSpec) -> JobPlan {
    let job = st.jobs.get(&new.id);
    let old: Option<JobSpec> = job.and_then(|j| serde_json::from_slice(&j.spec_json).ok());
    let new_hash = new.config_hash();
    let live: Vec<_> = st.tasks_of(&new.id).filter(|t| is_live(t)).collect();
    let to_replace = live.iter().filter(|t| t.config_hash != new_hash).count();
    let changes = match &old {
        Some(o) => diff(o, new),
        None => Vec::new(),
    };
    let replaces_tasks = old.as_ref().is_some_and(|o| o.config_hash() != new_hash);
    let limits = new.upgrade_strategy.limits(new.instances);
    let steps = steps(old.as_ref(), new, to_replace as u32, limits);
    let first = first_batch(
        old.as_ref(),
        new,
        to_replace as u32,
        live.len() as u32,
        limits,
    );
    let placement = dry_run(st, connected, job.map(|j| j.as_ref()), new, first);
    let summary = summary(old.as_ref(), new, replaces_tasks, to_replace, live.len());
    JobPlan {
        job_id: new.id.clone(),
        version: st.version,
        new_job: job.is_none(),
        current_spec_version: job.map(|j| spec_version(j)),
        changes,
        replaces_tasks,
        tasks_to_replace: to_replace,
        live_tasks: live.len(),
        instances: new.instances,
        surge: limits.surge,
        floor: limits.floor,
        summary,
        steps,
        placement,
    }
}

fn summary(
    old: Option<&JobSpec>,
    new: &JobSpec,
    replaces: bool,
    to_replace: usize,
    live: usize,
) -> String {
    let Some(old) = old else {
        return format!("a new job: {} task(s) will be started", new.instances);
    };
    let scale = match new.instances.cmp(&old.instances) {
        std::cmp::Ordering::Equal => String::new(),
        _ => format!("; scaled from {} to {}", old.instances, new.instances),
    };
    if replaces {
        format!(
            "a deployment replaces {to_replace} of {live} live task(s) with the new version{scale}"
        )
    } else if old == new {
        "no change: no task is replaced".to_string()
    } else {
        format!("no task is replaced (the change does not reach running tasks){scale}")
    }
}

/// How many new tasks the deployment starts first: the canaries, else as
/// many as surge and unavailability allow at once, cut at the first pause.
fn first_batch(old: Option<&JobSpec>, new: &JobSpec, to_replace: u32, live: u32, l: Limits) -> u32 {
    if old.is_none() {
        return new.instances;
    }
    let grow = new.instances.saturating_sub(live);
    if to_replace == 0 {
        return grow;
    }
    let s = &new.upgrade_strategy;
    if s.canary > 0 {
        return s.canary.min(new.instances);
    }
    let mut n = (l.surge + new.instances.saturating_sub(l.floor)).max(1);
    if s.step > 0 {
        n = n.min(s.step);
    }
    n.min(to_replace) + grow
}

fn steps(old: Option<&JobSpec>, new: &JobSpec, to_replace: u32, l: Limits) -> Vec<PlanStep> {
    let mut out = Vec::new();
    if old.is_none() {
        out.push(PlanStep {
            kind: "start",
            tasks: new.instances,
            detail: format!("start {} task(s)", new.instances),
        });
    }
    let Some(old) = old else { return out };
    if new.instances > old.instances {
        let more = new.instances - old.instances;
        out.push(PlanStep {
            kind: "scale",
            tasks: more,
            detail: format!(
                "start {more} more task(s) (instances {} -> {})",
                old.instances, new.instances
            ),
        });
    }
    if to_replace == 0 {
        return out;
    }
    let s = &new.upgrade_strategy;
    let at_once = l.surge + new.instances.saturating_sub(l.floor);
    let mut pace = format!(
        "up to {} new task(s) beyond {} (max_surge), at least {} serving (floor)",
        l.surge, new.instances, l.floor
    );
    if s.sleep_seconds > 0 {
        pace.push_str(&format!(
            ", {} s sleep after each replaced task",
            s.sleep_seconds
        ));
    }
    if s.min_healthy_seconds > 0 {
        pace.push_str(&format!(
            ", each new task healthy for {} s before it counts",
            s.min_healthy_seconds
        ));
    }
    let mut left = to_replace;
    if s.canary > 0 {
        let c = s.canary.min(left);
        out.push(PlanStep {
            kind: "canary",
            tasks: c,
            detail: format!("start {c} canary task(s) of the new version beside the old ones"),
        });
        out.push(PlanStep {
            kind: "promotion",
            tasks: 0,
            detail: if s.auto_promote {
                "promoted automatically once the canaries are healthy".into()
            } else {
                "wait for promotion (ocean deployment promote ID)".into()
            },
        });
        left -= c;
    }
    let batch = if s.step > 0 { s.step } else { left.max(1) };
    while left > 0 {
        let n = batch.min(left);
        left -= n;
        out.push(PlanStep {
            kind: "replace",
            tasks: n,
            detail: format!("replace {n} task(s), {at_once} at a time at most: {pace}"),
        });
        if s.step > 0 && left > 0 {
            out.push(PlanStep {
                kind: "pause",
                tasks: 0,
                detail: format!(
                    "pause after {} replaced (step {}) until resumed",
                    to_replace - left,
                    s.step
                ),
            });
        }
    }
    out
}

/// Runs the planner on the agents and live tasks of `st` with `count` new
/// tasks of `new` pending.
fn dry_run(
    st: &ClusterState,
    connected: &HashSet<String>,
    job: Option<&Job>,
    new: &JobSpec,
    count: u32,
) -> PlacementOutcome {
    if count == 0 {
        return PlacementOutcome::default();
    }
    // The job as it would be stored: the new spec at the next version.
    let mut stored = job.cloned().unwrap_or_default();
    stored.id = new.id.clone();
    stored.spec_json = new.to_canonical_json().into();
    stored.updated_version = st.version + 1;
    let Some(view) = JobView::parse(&stored) else {
        return PlacementOutcome::default();
    };
    let mut specs: foldhash::HashMap<String, Arc<JobView>> = st
        .jobs
        .values()
        .filter(|j| j.id != new.id)
        .filter_map(|j| Some((j.id.clone(), Arc::new(JobView::parse(j)?))))
        .collect();
    let view = Arc::new(view);
    specs.insert(new.id.clone(), view.clone());
    let live: Vec<_> = st
        .tasks
        .values()
        .filter(|t| !is_terminal(&t.state))
        .cloned()
        .collect();
    let mut running = RunningCache::default();
    running.update(&live, &specs);
    let agents: Vec<_> = st.agents.values().cloned().collect();
    let everyone: HashSet<String>;
    let connected = if connected.is_empty() {
        everyone = agents.iter().map(|a| a.id.clone()).collect();
        &everyone
    } else {
        connected
    };
    let mut cache = AgentCache::default();
    cache.update(&agents, connected);
    let ids = (0..count as usize)
        .map(|i| task_id(&new.id, st.version + 1, i))
        .collect();
    let request = match &view.constraints {
        Ok(_) => view.request(ids),
        Err(e) => {
            return PlacementOutcome {
                asked: count as usize,
                waiting: count as usize,
                waiting_reason: e.clone(),
                ..PlacementOutcome::default()
            }
        }
    };
    let snapshot = sp::Snapshot {
        agents: cache.take(),
        running: running.take(),
        pending: vec![request],
        pdl_weights: BTreeMap::new(),
        quotas: Vec::new(),
    };
    let plan = sp::plan(&snapshot, &sp::Config::default());
    let hostname = |agent: &str| {
        st.agents
            .get(agent)
            .map(|a| a.hostname.clone())
            .unwrap_or_default()
    };
    let unplaced = plan.unplaced_of(&new.id);
    PlacementOutcome {
        asked: count as usize,
        placed: plan
            .placements
            .iter()
            .filter(|p| p.job == new.id)
            .map(|p| PlannedTask {
                task: p.task.to_string(),
                agent: p.agent.to_string(),
                hostname: hostname(p.agent),
            })
            .collect(),
        waiting: unplaced.map_or(0, |u| u.tasks.len()),
        waiting_reason: unplaced.map(|u| u.reason.to_string()).unwrap_or_default(),
        preempted: plan
            .preemptions
            .iter()
            .map(|p| p.victim.to_string())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::state::put_job_command;
    use crate::service::Kernel as _;
    use crate::service::LocalKernel;

    const ID: &str = "cop.c_owt.o_pdl.p_service.s_job.j_cluster.c";

    fn spec(cmd: &str, instances: u32) -> JobSpec {
        let mut s = JobSpec::new(ID, cmd);
        s.instances = instances;
        s.health_checks
            .push(serde_json::from_str(r#"{"protocol": "tcp", "port_name": "p"}"#).unwrap());
        s.ports
            .push(serde_json::from_str(r#"{"name": "p"}"#).unwrap());
        s
    }

    #[test]
    fn a_health_check_only_change_replaces_no_task() {
        let k = LocalKernel::new();
        k.apply(put_job_command(ID.into(), spec("a", 3).to_canonical_json()));
        let mut new = spec("a", 3);
        new.health_checks[0].interval_seconds = 2;
        let p = k.read(|st| plan_job(st, &HashSet::new(), &new));
        assert!(!p.replaces_tasks);
        assert!(p.summary.contains("no task is replaced"), "{}", p.summary);
        assert_eq!(p.changes.len(), 1);
        assert_eq!(p.changes[0].path, "health_checks[0].interval_seconds");
        assert_eq!(p.steps, vec![]);
        assert_eq!(p.current_spec_version, Some(1));
    }

    #[test]
    fn steps_follow_canary_and_step() {
        let mut new = spec("b", 10);
        new.upgrade_strategy.canary = 2;
        new.upgrade_strategy.step = 3;
        let old = spec("a", 10);
        let l = new.upgrade_strategy.limits(10);
        let s = steps(Some(&old), &new, 10, l);
        let kinds: Vec<(&str, u32)> = s.iter().map(|s| (s.kind, s.tasks)).collect();
        assert_eq!(
            kinds,
            vec![
                ("canary", 2),
                ("promotion", 0),
                ("replace", 3),
                ("pause", 0),
                ("replace", 3),
                ("pause", 0),
                ("replace", 2),
            ]
        );
        assert_eq!(first_batch(Some(&old), &new, 10, 10, l), 2);
        new.upgrade_strategy.canary = 0;
        assert_eq!(first_batch(Some(&old), &new, 10, 10, l), 1);
    }

    #[test]
    fn without_agents_the_first_batch_waits_saying_why() {
        let k = LocalKernel::new();
        let p = k.read(|st| plan_job(st, &HashSet::new(), &spec("a", 2)));
        assert!(p.new_job);
        assert_eq!((p.placement.asked, p.placement.waiting), (2, 2));
        assert!(p.placement.placed.is_empty());
        assert!(!p.placement.waiting_reason.is_empty());
    }
}
