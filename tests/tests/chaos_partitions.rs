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
    assert!(
        injected >= schedules,
        "faults injected: {:?}",
        report.faults
    );
    assert!(
        report.ops > 50,
        "the clients hardly ran: {} ops",
        report.ops
    );
    assert!(report.acked_writes > 0, "no write was acknowledged");
    assert!(
        report.looks > 10,
        "the watcher hardly looked ({})",
        report.looks
    );
}

/// A regression test for what the schedules found: agents stayed on a
/// SIGSTOPped leader until HTTP/2 keepalive gave up on it (3–5 s), past the
/// 2.5 s the new leader gives every agent at the start of its term, so
/// every task was declared lost and replaced by a leader change. Agents
/// must move to the new leader in time, and every task must survive.
#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_leader_costs_no_task() {
    use ocean_tests::http::job_id;
    use ocean_tests::tasks::{bounded, running, submit, tasks, wait_connected, wait_tasks};
    use ocean_tests::Cluster;

    bounded(120, async {
        let c = Cluster::start(3, &[])?;
        let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(30)).await?;
        let api = c.master(leader).api();
        let mut agents = Vec::new();
        for n in ["a", "b"] {
            let mut a = c.new_agent(n, &["--hostname", &format!("stop-{n}")]);
            a.start()?;
            agents.push(a);
        }
        wait_connected(&api, 2, Duration::from_secs(30)).await?;
        let job = job_id("survivor");
        submit(
            &api,
            &serde_json::json!({
                "id": job, "cmd": "sleep 600", "instances": 4,
                "resources": {"cpus": 0.01, "mem": 16},
            }),
        )
        .await?;
        let list = wait_tasks(&api, &job, "4 RUNNING", Duration::from_secs(30), |l| {
            running(l).len() == 4
        })
        .await?;
        let ids = |l: &[serde_json::Value]| -> Vec<(String, i64)> {
            let mut v: Vec<(String, i64)> = running(l)
                .iter()
                .map(|t| {
                    (
                        t["id"].as_str().unwrap_or_default().to_string(),
                        t["pid"].as_i64().unwrap_or(0),
                    )
                })
                .collect();
            v.sort();
            v
        };
        let before = ids(&list);
        c.master(leader).signal(nix::sys::signal::Signal::SIGSTOP);
        let others: Vec<u64> = [1, 2, 3].into_iter().filter(|i| *i != leader).collect();
        let new_leader = c.wait_leader(&others, Duration::from_secs(30)).await?;
        // Longer than the new leader's grace for every agent.
        tokio::time::sleep(Duration::from_secs(4)).await;
        c.master(leader).signal(nix::sys::signal::Signal::SIGCONT);
        let api = c.master(new_leader).api();
        wait_connected(&api, 2, Duration::from_secs(30)).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = ids(&tasks(&api, &job).await);
        anyhow::ensure!(
            after == before,
            "a stopped leader replaced tasks: {before:?} -> {after:?}"
        );
        let lost = api.metric("ocean_agents_unreachable_total").await?;
        anyhow::ensure!(lost == 0.0, "{lost} agents declared unreachable");
        Ok(())
    })
    .await;
}
