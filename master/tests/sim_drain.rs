//! Invariant: a drain keeps capacity. While agents are set draining (and
//! back online), a job's serving tasks (RUNNING, not being stopped) never
//! drop below `instances - MAX_UNAVAILABLE` once they reached it, where
//! the drain (`reconcile::drain`) allows no unavailability: each old task
//! stops only once a replacement serves in its place. And once the
//! cluster settles, no live task is left on a draining agent.

mod sim;

use std::collections::BTreeMap;

use sim::{run_seeds, Mix, SimCluster};

const STEPS: usize = 250;
/// Serving tasks a drain may take away below `instances`, as
/// `reconcile::drain` defines it (replacements first).
const MAX_UNAVAILABLE: usize = 0;

/// Tasks only end when the leader stops them: any drop in serving tasks
/// is the drain's doing.
const MIX: Mix = Mix {
    start: 30,
    finish: 0,
    fail: 0,
    refuse: 3,
    lose_agent: 0,
    agent_back: 0,
    drain: 6,
    undrain: 3,
    scale: 0,
    leader_change: 0,
};

/// Checks the floor of each job; returns the serving counts.
fn check(
    sim: &SimCluster,
    before: &BTreeMap<String, usize>,
    instances: &BTreeMap<String, u32>,
) -> BTreeMap<String, usize> {
    let now = sim.serving();
    for (job, want) in instances {
        let floor = (*want as usize).saturating_sub(MAX_UNAVAILABLE);
        let was = before.get(job).copied().unwrap_or(0);
        let is = now.get(job).copied().unwrap_or(0);
        if is < was.min(floor) {
            sim.fail(&format!(
                "job {job} serves {is} tasks, down from {was}, below {floor} ({want} instances, {MAX_UNAVAILABLE} may be unavailable)"
            ));
        }
    }
    now
}

#[test]
fn a_drain_keeps_capacity_while_moving_tasks() {
    run_seeds("sim_drain", |seed| async move {
        let mut sim = SimCluster::new(seed, 6, 3, 3);
        let instances = sim.instances();
        let mut serving = sim.serving();
        for step in 0..STEPS {
            sim.step_no = step;
            sim.event(&MIX);
            let ms = rand::Rng::gen_range(&mut sim.rng, 100..3_000);
            sim.advance(ms).await;
            sim.reconcile().await;
            serving = check(&sim, &serving, &instances);
        }
        sim.settle(20).await;
        check(&sim, &serving, &instances);
        let left = sim.on_leaving_agents();
        if left > 0 {
            sim.fail(&format!(
                "after settling, {left} tasks are still on draining agents"
            ));
        }
        let serving = sim.serving();
        for (job, want) in &instances {
            let n = serving.get(job).copied().unwrap_or(0);
            if n != *want as usize {
                sim.fail(&format!("after settling, job {job} serves {n}, not {want}"));
            }
        }
    });
}
