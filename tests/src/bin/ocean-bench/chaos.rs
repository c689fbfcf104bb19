//! Chaos with partitions (issue 22): `--schedules N` seeded schedules of
//! faults against 3 masters and 3 agents in network namespaces (see
//! `ocean_tests::chaos` and docs/chaos.md), printing the schedules run,
//! the faults injected by kind, the anomalies found (0 expected) and the
//! time to settle after each schedule. Needs root (namespaces, nft).

use std::time::Duration;

use ocean_tests::chaos::{run, seed_from_env, Options};

use crate::percentile;

/// Runs `schedules` schedules from `seed` (default: `OCEAN_CHAOS_SEED`,
/// else the clock).
pub async fn chaos(schedules: usize, seed: Option<u64>) -> anyhow::Result<()> {
    let seed = seed.map(|s| s | 1).unwrap_or_else(seed_from_env);
    println!("chaos: {schedules} schedules, seed {seed}");
    let report = tokio::task::spawn_blocking(move || {
        run(Options {
            schedules,
            seed,
            settle_timeout: Duration::from_secs(90),
            verbose: true,
        })
    })
    .await??;
    let mut settle = report.settle.clone();
    settle.sort();
    println!("schedules run: {}", report.schedules);
    let total: usize = report.faults.values().sum();
    println!(
        "faults injected: {total} ({} skipped for want of a target)",
        report.skipped
    );
    for (kind, n) in &report.faults {
        println!("  {kind}: {n}");
    }
    println!(
        "register ops checked: {} ({} acknowledged writes); workload jobs acknowledged under faults: {}; master-only schedules with tasks compared: {}; watcher looks: {}",
        report.ops, report.acked_writes, report.acked_jobs, report.task_checks, report.looks
    );
    println!(
        "time to settle: p50 {:.2} s, p99 {:.2} s, max {:.2} s",
        percentile(&settle, 0.50).as_secs_f64(),
        percentile(&settle, 0.99).as_secs_f64(),
        settle.last().copied().unwrap_or_default().as_secs_f64()
    );
    println!("anomalies: {}", report.anomalies.len());
    for a in &report.anomalies {
        println!("  {a}");
    }
    anyhow::ensure!(
        report.anomalies.is_empty(),
        "{} anomalies (seed {seed})",
        report.anomalies.len()
    );
    Ok(())
}
