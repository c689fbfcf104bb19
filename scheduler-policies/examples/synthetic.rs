//! Plans the synthetic benchmark workload a few times and prints timings,
//! search effort and packing quality; handy under `perf record`.
//!
//! ```text
//! cargo run --release -p ocean-scheduler-policies --example synthetic -- [agents] [jobs] [tasks_per_job] [runs]
//! ```

use std::time::Instant;

use ocean_scheduler_policies::synthetic::{packing, workload, WorkloadSpec};
use ocean_scheduler_policies::{plan, Config};

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
            "placed {} unplaced {} examined {} in {:.1} ms = {:.0} placements/s; agents used {} / lower bound {} = {:.3}",
            p.stats.placed,
            p.stats.unplaced,
            p.stats.agents_examined,
            took * 1e3,
            p.stats.placed as f64 / took,
            pk.agents_used,
            pk.lower_bound,
            pk.ratio
        );
    }
}
