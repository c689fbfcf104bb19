//! Invariant: a job never has more than `instances` live (not ended, not
//! being stopped) tasks, whatever agents and tasks do: launches refused,
//! tasks failing and finishing, agents lost and back, the job scaled.
//! And once the cluster settles, every job has exactly `instances`.

mod sim;

use sim::{run_seeds, Mix, SimCluster};

const STEPS: usize = 250;

const MIX: Mix = Mix {
    start: 30,
    finish: 6,
    fail: 10,
    refuse: 4,
    lose_agent: 4,
    agent_back: 5,
    drain: 0,
    undrain: 0,
    scale: 8,
    leader_change: 0,
};

fn check(sim: &SimCluster) {
    let instances = sim.instances();
    for (job, live) in sim.live() {
        let want = instances.get(&job).copied().unwrap_or(0) as usize;
        if live.len() > want {
            sim.fail(&format!(
                "job {job} has {} live tasks, more than its {want} instances: {live:?}",
                live.len()
            ));
        }
    }
}

#[test]
fn never_more_than_instances_live_tasks() {
    run_seeds("sim_instances", |seed| async move {
        let rng_agents = 5;
        let mut sim = SimCluster::new(seed, rng_agents, 3, 3);
        for step in 0..STEPS {
            sim.step_no = step;
            sim.event(&MIX);
            let ms = rand::Rng::gen_range(&mut sim.rng, 100..3_000);
            sim.advance(ms).await;
            sim.reconcile().await;
            check(&sim);
        }
        sim.settle(20).await;
        check(&sim);
        sim.check_settled();
    });
}
