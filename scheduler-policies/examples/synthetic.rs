//! Plans the synthetic benchmark workload a few times and prints timings,
//! search effort and packing quality; handy under `perf record`.
//!
//! ```text
//! cargo run --release -p ocean-scheduler-policies --example synthetic -- [agents] [jobs] [tasks_per_job] [runs] [spread_percent]
//! ```
//!
//! Each run also prints a digest of the whole plan (placements with their
//! ports, unplaced tasks with their reasons, preemptions), so two builds can
//! be checked to plan exactly the same.

use std::hash::{Hash, Hasher};
use std::time::Instant;

use ocean_scheduler_policies::synthetic::{packing, workload, WorkloadSpec};
use ocean_scheduler_policies::{plan, Config, Plan};

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
