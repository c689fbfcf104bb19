//! The pure core at cluster scale: 100,000 pending tasks (1,000 jobs of 100,
//! mixed constraints and sizes) onto 10,000 agents, in one `plan()` call.
//!
//! ```text
//! cargo bench -p ocean-scheduler-policies \
//!     --bench placement -- --sample-size 10
//! ```
//!
//! Before measuring, it prints one timed run with the packing quality
//! (agents used vs. the lower bound ceil(total demand / agent capacity)).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ocean_scheduler_policies::synthetic::{packing, workload, WorkloadSpec};
use ocean_scheduler_policies::{plan, Config};

fn report(name: &str, spec: &WorkloadSpec) {
    let snap = workload(spec);
    let config = Config::default();
    let start = Instant::now();
    let p = plan(&snap, &config);
    let took = start.elapsed();
    let pk = packing(&snap, &p);
    println!(
        "{name}: {} agents, {} tasks: placed {}, unplaced {}, examined {} agents, \
         {:.1} ms, {:.0} placements/s; packing: {} agents used, lower bound {}, ratio {:.3}",
        spec.agents,
        snap.pending_tasks(),
        p.stats.placed,
        p.stats.unplaced,
        p.stats.agents_examined,
        took.as_secs_f64() * 1e3,
        p.stats.placed as f64 / took.as_secs_f64(),
        pk.agents_used,
        pk.lower_bound,
        pk.ratio,
    );
    for u in p.unplaced.iter().take(5) {
        println!("  unplaced {} x{}: {}", u.job, u.tasks.len(), u.reason);
    }
}

fn placement(c: &mut Criterion) {
    let mixed = WorkloadSpec::default();
    let binpack_only = WorkloadSpec {
        spread_percent: 0,
        ..WorkloadSpec::default()
    };
    report("mixed (10% spread)", &mixed);
    report("binpack only", &binpack_only);

    let mut group = c.benchmark_group("placement");
    group.measurement_time(Duration::from_secs(20));
    for (name, spec) in [
        ("100k_tasks_10k_agents", &mixed),
        ("100k_tasks_10k_agents_binpack", &binpack_only),
    ] {
        let snap = workload(spec);
        let config = Config::default();
        group.throughput(Throughput::Elements(snap.pending_tasks() as u64));
        group.bench_function(name, |b| {
            b.iter(|| black_box(plan(black_box(&snap), &config)).stats.placed)
        });
    }
    group.finish();
}

criterion_group!(benches, placement);
criterion_main!(benches);
