//! Invariants of deployments under everything else a cluster does: spec
//! updates with random strategies (surge, unavailability, steps, sleeps,
//! canaries), operators pausing, resuming, promoting, failing and
//! cancelling, tasks failing and finishing, agents lost and back, jobs
//! scaled, leaders changing. After every step:
//! - no task is replaced twice: the replaced ids of all of a job's
//!   deployments are distinct, and none is of the version its deployment
//!   rolls out;
//! - a round never grows a job past `instances + max(surge, canary)` of
//!   its current strategy (or past what it had before the round);
//!
//! and once the cluster settles (an operator resumes and promotes what
//! waits), no deployment is left active and every job runs exactly its
//! instances, all of its current version unless its deployment failed.

mod sim;

use std::collections::{BTreeMap, BTreeSet};

use ocean_master::kernel::state::deployments::{check_action, is_active, FAILED, SUCCEEDED};
use ocean_master::kernel::state::{deployment_action_command, put_job_command};
use ocean_proto::internal::DeploymentAction;
use ocean_spec::{Amount, JobSpec};
use rand::Rng;
use sim::{run_seeds, Mix, SimCluster};

const STEPS: usize = 250;

const MIX: Mix = Mix {
    start: 30,
    finish: 4,
    fail: 8,
    refuse: 3,
    lose_agent: 3,
    agent_back: 4,
    drain: 0,
    undrain: 0,
    scale: 4,
    leader_change: 5,
};

fn spec_of(sim: &SimCluster, job: &str) -> JobSpec {
    sim.read(|st| serde_json::from_slice(&st.jobs[job].spec_json).expect("a committed spec parses"))
}

/// A new version of a random job with a random strategy.
fn update(sim: &mut SimCluster) -> String {
    let job = sim.jobs[sim.rng.gen_range(0..sim.jobs.len())].clone();
    let mut spec = spec_of(sim, &job);
    let step = sim.step_no;
    spec.cmd = Some(format!("sleep {}", 1000 + step));
    let r = &mut sim.rng;
    let u = &mut spec.upgrade_strategy;
    u.max_surge = [
        None,
        Some(Amount::Count(0)),
        Some(Amount::Count(2)),
        Some(Amount::Percent(50.0)),
    ][r.gen_range(0..4)];
    u.max_unavailable = [None, Some(Amount::Count(1)), Some(Amount::Count(0))][r.gen_range(0..3)];
    u.step = [0, 0, 1, 2][r.gen_range(0..4)];
    u.sleep_seconds = [0, 0, 2][r.gen_range(0..3)];
    u.canary = [0, 0, 1, 2][r.gen_range(0..4)];
    u.auto_promote = u.canary > 0 && r.gen_bool(0.5);
    u.auto_revert = r.gen_bool(0.3);
    let what = format!(
        "update {job}: surge {:?} unavailable {:?} step {} sleep {} canary {} auto_promote {} auto_revert {}",
        u.max_surge, u.max_unavailable, u.step, u.sleep_seconds, u.canary, u.auto_promote, u.auto_revert
    );
    sim.commit(put_job_command(job, spec.to_canonical_json()));
    what
}

/// An operator's action on a random job's newest deployment, if it applies.
fn act(sim: &mut SimCluster, action: &str) -> Option<String> {
    let job = sim.jobs[sim.rng.gen_range(0..sim.jobs.len())].clone();
    let d = sim.read(|st| st.jobs[&job].deployments.first().cloned())?;
    check_action(&d, action).ok()?;
    let now = sim.leader_now_ms();
    sim.commit(deployment_action_command(DeploymentAction {
        job_id: job,
        deployment_id: d.id.clone(),
        action: action.into(),
        now_ms: now,
        ..Default::default()
    }));
    Some(format!("{action} {}", d.id))
}

/// The most live tasks each job may have: its instances plus the larger
/// of its surge and canaries.
fn ceilings(sim: &SimCluster) -> BTreeMap<String, usize> {
    sim.read(|st| {
        st.jobs
            .values()
            .map(|j| {
                let s: JobSpec = serde_json::from_slice(&j.spec_json).expect("parses");
                let l = s.upgrade_strategy.limits(s.instances);
                let extra = l.surge.max(s.upgrade_strategy.canary);
                (j.id.clone(), (s.instances + extra) as usize)
            })
            .collect()
    })
}

fn check(sim: &SimCluster, before: &BTreeMap<String, BTreeSet<String>>) {
    let ceilings = ceilings(sim);
    for (job, live) in sim.live() {
        let had = before.get(&job).map_or(0, |l| l.len());
        let most = ceilings.get(&job).copied().unwrap_or(0).max(had);
        if live.len() > most {
            sim.fail(&format!(
                "job {job} has {} live tasks after a round, more than {most} (it had {had}): {live:?}",
                live.len()
            ));
        }
    }
    sim.read(|st| {
        for j in st.jobs.values() {
            let mut seen = BTreeSet::new();
            for d in &j.deployments {
                for id in &d.replaced {
                    if !seen.insert(id.clone()) {
                        sim.fail(&format!("task {id} replaced twice (deployment {})", d.id));
                    }
                    if st
                        .tasks
                        .get(id)
                        .is_some_and(|t| t.config_hash == d.config_hash)
                    {
                        sim.fail(&format!(
                            "deployment {} replaced {id}, a task of the version it rolls out",
                            d.id
                        ));
                    }
                }
            }
        }
    });
}

#[test]
fn deployments_replace_each_task_once_within_their_limits_and_end() {
    run_seeds("sim_deploy", |seed| async move {
        let mut sim = SimCluster::new(seed, 5, 3, 4);
        for step in 0..STEPS {
            sim.step_no = step;
            let roll = sim.rng.gen_range(0..100);
            let e = if roll < 12 {
                Some(update(&mut sim))
            } else if roll < 24 {
                let action = [
                    "pause", "resume", "resume", "promote", "promote", "fail", "cancel",
                ][sim.rng.gen_range(0..7)];
                act(&mut sim, action)
            } else {
                sim.event(&MIX)
            };
            if let Some(e) = e.filter(|_| roll < 24) {
                sim.note(e);
            }
            let ms = sim.rng.gen_range(100..3_000);
            sim.advance(ms).await;
            let before = sim.live();
            sim.reconcile().await;
            check(&sim, &before);
        }
        // An operator sees everything through: what waits is resumed or
        // promoted until nothing is active.
        for _ in 0..10 {
            for job in sim.jobs.clone() {
                let d = sim.read(|st| st.jobs[&job].deployments.first().cloned());
                let Some(d) = d.filter(is_active) else {
                    continue;
                };
                for action in ["resume", "promote"] {
                    if check_action(&d, action).is_ok() {
                        let now = sim.leader_now_ms();
                        sim.commit(deployment_action_command(DeploymentAction {
                            job_id: job.clone(),
                            deployment_id: d.id.clone(),
                            action: action.into(),
                            now_ms: now,
                            ..Default::default()
                        }));
                        sim.note(format!("settle: {action} {}", d.id));
                    }
                }
            }
            let before = sim.live();
            sim.settle(4).await;
            check(&sim, &before);
        }
        sim.check_settled();
        sim.read(|st| {
            for j in st.jobs.values() {
                let Some(d) = j.deployments.first() else {
                    continue;
                };
                if is_active(d) {
                    let tasks: Vec<String> = st
                        .tasks_of(&j.id)
                        .map(|t| {
                            format!(
                                "{} {} hash {:x} kill {}",
                                t.id, t.state, t.config_hash, t.kill_requested
                            )
                        })
                        .collect();
                    sim.fail(&format!(
                        "deployment {} still {} after settling: {d:?}; spec {}; tasks {tasks:?}; backoff {:?}; waiting {}",
                        d.id,
                        d.state,
                        String::from_utf8_lossy(&j.spec_json),
                        j.backoff,
                        j.waiting
                    ));
                }
                let hash = serde_json::from_slice::<JobSpec>(&j.spec_json)
                    .expect("parses")
                    .config_hash();
                let mixed = st
                    .tasks_of(&j.id)
                    .filter(|t| ocean_master::kernel::state::is_live(t))
                    .any(|t| t.config_hash != hash);
                if d.state == SUCCEEDED && mixed {
                    sim.fail(&format!("{} succeeded but old tasks run", d.id));
                }
                if mixed && d.state != FAILED {
                    sim.fail(&format!(
                        "job {} runs old tasks after settling ({} {})",
                        j.id, d.id, d.state
                    ));
                }
            }
        });
    });
}
