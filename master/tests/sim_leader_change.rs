//! Invariant: a leader change neither kills nor duplicates a task. A new
//! leader (a fresh reconciler, empty memory, the next term) over the same
//! replicated state resends what is outstanding and places only what is
//! missing: in a cluster where nothing asks for a kill (no scaling, no
//! drains, no lost agents), no kill is ever sent, a task live before the
//! change is still live (unless its agent ended it) after the new
//! leader's first round, and no job ever runs more processes than its
//! instances, nor one task on two agents.

mod sim;

use std::collections::BTreeMap;

use sim::{run_seeds, Mix, SimCluster};

const STEPS: usize = 250;

const MIX: Mix = Mix {
    start: 30,
    finish: 5,
    fail: 8,
    refuse: 4,
    lose_agent: 0,
    agent_back: 0,
    drain: 0,
    undrain: 0,
    scale: 0,
    leader_change: 12,
};

fn check(sim: &SimCluster) {
    if let Some((term, task)) = sim.kills_sent.first() {
        sim.fail(&format!(
            "the leader of term {term} killed task {task}, which nothing asked to stop"
        ));
    }
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
    // What the agents actually run.
    let mut procs: BTreeMap<&str, usize> = BTreeMap::new();
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (agent, a) in &sim.agents {
        for (task, p) in &a.procs {
            *procs.entry(p.job.as_str()).or_default() += 1;
            if let Some(other) = seen.insert(task, agent) {
                sim.fail(&format!("task {task} runs on both {other} and {agent}"));
            }
        }
    }
    for (job, n) in procs {
        let want = instances.get(job).copied().unwrap_or(0) as usize;
        if n > want {
            sim.fail(&format!(
                "agents run {n} processes of job {job}, more than its {want} instances"
            ));
        }
    }
}

#[test]
fn a_leader_change_neither_kills_nor_duplicates() {
    run_seeds("sim_leader_change", |seed| async move {
        let mut sim = SimCluster::new(seed, 4, 3, 3);
        for step in 0..STEPS {
            sim.step_no = step;
            let before = sim.live();
            let event = sim.event(&MIX);
            let ms = rand::Rng::gen_range(&mut sim.rng, 100..3_000);
            sim.advance(ms).await;
            sim.reconcile().await;
            check(&sim);
            if event.is_some_and(|e| e.starts_with("leader change")) {
                // Only agents end tasks here (a refused launch fails);
                // the new leader must not ask any to stop.
                for (job, tasks) in &before {
                    for t in tasks {
                        let stopped =
                            sim.read(|st| st.tasks.get(t).is_some_and(|t| t.kill_requested));
                        if stopped {
                            sim.fail(&format!(
                                "task {t} of job {job}, live before the change, is being stopped by the new leader"
                            ));
                        }
                    }
                }
            }
        }
        sim.settle(20).await;
        check(&sim);
        sim.check_settled();
    });
}
