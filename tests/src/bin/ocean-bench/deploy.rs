//! `ocean-bench deploy`: a rolling deployment at scale, end to end. A real
//! three-master cluster and simulated agents that speak the real agent
//! protocol (they report every launch RUNNING at once and every kill
//! KILLED, see `schedule`); one job of `--tasks` instances is updated with
//! `max_surge` and timed to `succeeded`, sampling every 100 ms that the
//! job's running tasks never drop below its floor; then a rollback is
//! timed to the first task of the old version running.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ocean_scheduler_policies::synthetic::{self, WorkloadSpec};
use ocean_tests::http::job_id;
use ocean_tests::{Api, Cluster};
use serde_json::{json, Value};

use crate::schedule::{channel, sim_agent, Counters, Pool};
use crate::watch::cpu_secs;

fn spec(job: &str, tasks: usize, cmd: &str, surge: &str) -> Value {
    json!({
        "id": job,
        "cmd": cmd,
        "instances": tasks,
        "resources": {"cpus": 0.01, "mem": 8},
        "upgrade_strategy": {"max_surge": surge},
    })
}

async fn running(api: &Api, job: &str) -> u64 {
    match api.get(&format!("/v1/jobs/{job}")).await {
        Ok(r) => r.body["running"].as_u64().unwrap_or(0),
        Err(_) => 0,
    }
}

async fn newest(api: &Api, job: &str) -> Value {
    match api.get(&format!("/v1/deployments?job={job}")).await {
        Ok(r) => r.body["deployments"][0].clone(),
        Err(_) => Value::Null,
    }
}

/// Runs the benchmark and prints its figures.
pub async fn deploy(agents: usize, tasks: usize, surge: &str) -> anyhow::Result<()> {
    let workload = synthetic::workload(&WorkloadSpec {
        agents,
        jobs: 1,
        tasks_per_job: 1,
        ..WorkloadSpec::default()
    });
    let c = Cluster::start(
        3,
        &[
            "--agent-heartbeat-ms",
            "1000",
            "--agent-timeout-ms",
            "30000",
        ],
    )?;
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(20)).await?;
    let grpc = c.master(leader).grpc.to_string();
    let pid = c.master(leader).pid().unwrap_or(0);
    let mut by_addr = std::collections::HashMap::new();
    for id in [1, 2, 3] {
        let addr = c.master(id).grpc.to_string();
        by_addr.insert(addr.clone(), vec![channel(&addr)?]);
    }
    let pool = Arc::new(Pool {
        by_addr,
        addrs: vec![grpc],
    });
    let counters = Arc::new(Counters::default());
    for (i, a) in workload.agents.iter().enumerate() {
        tokio::spawn(sim_agent(pool.clone(), i, a.clone(), counters.clone()));
    }
    let api = c.master(leader).api();
    let deadline = Instant::now() + Duration::from_secs(120);
    while counters
        .registered
        .load(std::sync::atomic::Ordering::Relaxed)
        < agents
    {
        anyhow::ensure!(Instant::now() < deadline, "agents did not register");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let job = job_id("deploybench");
    let r = api
        .post("/v1/jobs", &spec(&job, tasks, "sleep 1", surge))
        .await?;
    anyhow::ensure!(r.status < 300, "submit: {}", r.body);
    while running(&api, &job).await < tasks as u64 {
        anyhow::ensure!(Instant::now() < deadline, "first version did not run");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("{tasks} tasks running on {agents} simulated agents; updating");

    let cpu0 = cpu_secs(pid);
    let t0 = Instant::now();
    let r = api
        .post("/v1/jobs", &spec(&job, tasks, "sleep 2", surge))
        .await?;
    anyhow::ensure!(r.status < 300, "update: {}", r.body);
    let mut lowest = u64::MAX;
    let mut samples = 0;
    let done = loop {
        anyhow::ensure!(
            t0.elapsed() < Duration::from_secs(600),
            "deployment did not finish"
        );
        lowest = lowest.min(running(&api, &job).await);
        samples += 1;
        let d = newest(&api, &job).await;
        match d["state"].as_str() {
            Some("succeeded") => break d,
            Some("failed" | "cancelled") => anyhow::bail!("deployment ended {d}"),
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let took = t0.elapsed();
    let cpu = cpu_secs(pid) - cpu0;
    println!(
        "rolling deploy: {tasks} tasks over {agents} agents, max_surge {surge}: {:.2} s to succeeded; \
         leader CPU {cpu:.2} s ({:.0}% of a core); replaced {}; running never below {lowest} \
         (floor {tasks}, {samples} samples every 100 ms)",
        took.as_secs_f64(),
        100.0 * cpu / took.as_secs_f64(),
        done["replaced"],
    );
    anyhow::ensure!(lowest >= tasks as u64, "capacity dropped below the floor");

    // Rollback: to the first task of the old version running.
    let t1 = Instant::now();
    let r = api
        .post(&format!("/v1/jobs/{job}/rollback"), &json!({}))
        .await?;
    anyhow::ensure!(r.status < 300, "rollback: {}", r.body);
    let id = format!("{job}@{}", r.body["spec_version"]);
    let first = loop {
        anyhow::ensure!(
            t1.elapsed() < Duration::from_secs(60),
            "rollback did not start"
        );
        let d = api.get(&format!("/v1/deployments/{id}")).await?.body;
        let up = d["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["version"] == "new" && t["state"] == "RUNNING" && t["replaced"] != true);
        if up {
            break t1.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    println!(
        "rollback: {:.1} ms from POST rollback to the first old-version task RUNNING \
         (simulated agents: the masters' path only)",
        first.as_secs_f64() * 1000.0
    );
    Ok(())
}
