//! Plans the synthetic benchmark workload a few times and prints timings,
//! search effort and packing quality; handy under `perf record`.
//!
//! ```text
//! cargo run --release -p ocean-scheduler-policies --example synthetic -- [agents] [jobs] [tasks_per_job] [runs] [spread_percent] [late_jobs]
//! ```
//!
//! With `late_jobs` > 0 it then also plans a late round, as a leader does
//! while jobs keep arriving: every task of the other jobs running (as the
//! first plan placed them) and only the last `late_jobs` jobs pending.
//!
//! Each run also prints a digest of the whole plan (placements with their
//! ports, unplaced tasks with their reasons, preemptions), so two builds can
//! be checked to plan exactly the same.

use std::hash::{Hash, Hasher};
use std::time::Instant;

use ocean_scheduler_policies::synthetic::{packing, workload, WorkloadSpec};
use ocean_scheduler_policies::{plan, Config, JobRequest, Plan, RunningTask, Snapshot};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let arg = |i: usize, default: usize| args.get(i).copied().unwrap_or(default);
    let spec = WorkloadSpec {
        agents: arg(0, 10_000),
        jobs: arg(1, 1_000),
        tasks_per_job: arg(2, 100),
        spread_percent: arg(4, 10) as u64,
        ..WorkloadSpec::default()
    };
    let runs = arg(3, 5);
    let snap = workload(&spec);
    let config = Config::default();
    for _ in 0..runs {
        let start = Instant::now();
        let p = plan(&snap, &config);
        let took = start.elapsed().as_secs_f64();
        let pk = packing(&snap, &p);
        println!(
            "placed {} unplaced {} examined {} in {:.1} ms = {:.0} placements/s; agents used {} / lower bound {} = {:.3}; digest {:016x}",
            p.stats.placed,
            p.stats.unplaced,
            p.stats.agents_examined,
            took * 1e3,
            p.stats.placed as f64 / took,
            pk.agents_used,
            pk.lower_bound,
            pk.ratio,
            digest(&p),
        );
    }
    let late = arg(5, 0).min(snap.pending.len());
    if late > 0 {
        let later = late_round(&snap, &plan(&snap, &config), late);
        for _ in 0..runs {
            let start = Instant::now();
            let p = plan(&later, &config);
            println!(
                "late round: {} running, {} pending: placed {} in {:.1} ms; digest {:016x}",
                later.running.len(),
                later.pending.iter().map(|j| j.tasks.len()).sum::<usize>(),
                p.stats.placed,
                start.elapsed().as_secs_f64() * 1e3,
                digest(&p),
            );
        }
    }
}

/// `snap` with the placements of all but its last `late` jobs running.
fn late_round(snap: &Snapshot, first: &Plan<'_>, late: usize) -> Snapshot {
    let split = snap.pending.len() - late;
    let job =
        |id: &str| -> Option<&JobRequest> { snap.pending[..split].iter().find(|j| j.job == id) };
    let mut by_job = std::collections::HashMap::new();
    let running = first
        .placements
        .iter()
        .filter_map(|p| {
            let j = *by_job.entry(p.job).or_insert_with(|| job(p.job));
            let j = j?;
            Some(RunningTask {
                id: p.task.to_string(),
                job: p.job.to_string(),
                agent: p.agent.to_string(),
                resources: j.resources,
                ports: p.ports.iter().map(|a| a.port).collect(),
                priority: j.priority,
                pdl: j.pdl.clone(),
                service_path: j.service_path.clone(),
            })
        })
        .collect();
    Snapshot {
        running,
        pending: snap.pending[split..].to_vec(),
        ..snap.clone()
    }
}

/// A hash of everything the plan decided, in decision order. `DefaultHasher`
/// (SipHash with fixed keys) is stable within one toolchain, which is all a
/// before/after comparison needs.
fn digest(p: &Plan<'_>) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    p.placements.hash(&mut h);
    p.preemptions.hash(&mut h);
    for u in &p.unplaced {
        (u.job, &u.tasks, u.reason.to_string()).hash(&mut h);
    }
    h.finish()
}
