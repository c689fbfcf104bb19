//! A few seeded chaos schedules with network partitions (leader isolated,
//! an agent cut from the masters, one-way loss, a flapping link) mixed
//! with leader kills, SIGSTOPs, agent and task kills and full restarts,
//! against 3 masters and 3 agents in their own network namespaces (see
//! `ocean_tests::chaos` and docs/chaos.md). After each schedule the
//! cluster must settle with no acknowledged job lost, no job over its
//! instances (sampled throughout), no task replaced by master-only faults,
//! and a linearizable history of job writes and consistent reads.
//! `OCEAN_CHAOS_SEED` replays a run; `OCEAN_CHAOS_SCHEDULES` (default 3)
//! sets its length. `ocean-bench chaos` runs many.

use std::time::Duration;

use ocean_tests::chaos::{run, seed_from_env, Options};

#[test]
fn seeded_schedules_with_partitions_keep_every_promise() {
    let schedules: usize = std::env::var("OCEAN_CHAOS_SCHEDULES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let seed = seed_from_env();
    eprintln!("chaos seed {seed} (OCEAN_CHAOS_SEED={seed} replays it)");
    // The run bounds itself: each settle is bounded, each fault is held
    // for at most 4 s, each client waits at most 3 s for an answer.
    let report = run(Options {
        schedules,
        seed,
        settle_timeout: Duration::from_secs(40),
        verbose: true,
    })
    .expect("the chaos run");
    eprintln!("{report:?}");
    assert!(
        report.anomalies.is_empty(),
        "seed {seed}: {} anomalies:\n{}",
        report.anomalies.len(),
        report.anomalies.join("\n")
    );
    assert_eq!(report.schedules, schedules, "every schedule ran");
    let injected: usize = report.faults.values().sum();
    assert!(injected >= schedules, "faults injected: {:?}", report.faults);
    assert!(report.ops > 50, "the clients hardly ran: {} ops", report.ops);
    assert!(report.acked_writes > 0, "no write was acknowledged");
    assert!(report.looks > 10, "the watcher hardly looked ({})", report.looks);
}
