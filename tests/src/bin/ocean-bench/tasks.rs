//! Task benchmarks: how fast a job becomes running processes.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use ocean_tests::cluster::{free_addr, Process};
use ocean_tests::http::job_id;
use ocean_tests::tasks::wait_connected;
use ocean_tests::{Api, Cluster};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::{ms, percentile, rss_kib};

/// Follows `GET /v1/events` and sends `(job, when)` for each task that
/// reaches RUNNING.
pub(crate) async fn follow_running(base: String, tx: mpsc::UnboundedSender<(String, Instant)>) {
    let Ok(resp) = reqwest::get(format!("{base}/v1/events")).await else {
        return;
    };
    let mut body = resp.bytes_stream();
    let mut buf = String::new();
    let mut event = String::new();
    while let Some(Ok(chunk)) = body.next().await {
        let now = Instant::now();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(nl) = buf.find('\n') {
            let line: String = buf.drain(..=nl).collect();
            let line = line.trim_end();
            if let Some(e) = line.strip_prefix("event:") {
                event = e.trim().to_string();
            } else if let Some(d) = line.strip_prefix("data:") {
                if event == "task_put" {
                    if let Ok(v) = serde_json::from_str::<Value>(d.trim()) {
                        if v["task"]["state"] == "RUNNING" {
                            let job = v["task"]["job"].as_str().unwrap_or_default().to_string();
                            let _ = tx.send((job, now));
                        }
                    }
                }
            }
        }
    }
}

/// Starts `ocean dev` (master and agent in one process) with its data in
/// `dir`; returns the process, its REST and its gRPC address.
pub(crate) fn start_dev(
    dir: &std::path::Path,
) -> anyhow::Result<(Process, std::net::SocketAddr, std::net::SocketAddr)> {
    let (http, grpc) = (free_addr(), free_addr());
    let mut dev = Process::new(dir.join("dev.log"));
    dev.spawn(&[
        "dev".into(),
        "--data-dir".into(),
        dir.join("data").into_os_string(),
        "--http".into(),
        http.to_string().into(),
        "--grpc".into(),
        grpc.to_string().into(),
        "--dns".into(),
        free_addr().to_string().into(),
    ])?;
    Ok((dev, http, grpc))
}

/// When `job` was first seen RUNNING on the stream [`follow_running`]
/// feeds, or `None` if not within `limit`.
pub(crate) async fn running_at(
    rx: &mut mpsc::UnboundedReceiver<(String, Instant)>,
    job: &str,
    limit: Duration,
) -> Option<Instant> {
    tokio::time::timeout(limit, async {
        while let Some((seen, at)) = rx.recv().await {
            if seen == job {
                return Some(at);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

/// Submit-to-RUNNING of `runs` one-instance jobs, one after another, in
/// `ocean dev` (master and agent in one process).
pub async fn launch(runs: usize, stop_each: bool) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (dev, http, _grpc) = start_dev(dir.path())?;
    let base = format!("http://{http}");
    let api = Api::new(&http.to_string());
    wait_connected(&api, 1, Duration::from_secs(30))
        .await
        .with_context(|| dev.log_tail())?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(follow_running(base, tx));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut times = Vec::with_capacity(runs);
    let mut ids = Vec::with_capacity(runs);
    // Where the time goes: submit -> placed (leader clock), placed ->
    // process in its cgroup (agent clock), -> RUNNING committed and seen.
    let (mut to_placed, mut to_started, mut to_seen) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs {
        let id = job_id(&format!("lat{i}"));
        let spec = json!({
            "id": id, "cmd": "sleep 3600", "instances": 1,
            "resources": {"cpus": 0.001, "mem": 8}, "kill_grace_period_seconds": 0,
        });
        let t0 = Instant::now();
        let wall0 = wall_ms();
        let r = api.post("/v1/jobs", &spec).await?;
        anyhow::ensure!(r.status < 300, "submit: {}", r.body);
        let seen = running_at(&mut rx, &id, Duration::from_secs(10))
            .await
            .with_context(|| format!("job {i} never ran\n{}", dev.log_tail()))?;
        times.push(seen - t0);
        if stop_each {
            api.delete(&format!("/v1/jobs/{id}")).await?;
        } else {
            ids.push(id.clone());
        }
        let r = api.get(&format!("/v1/tasks?job={id}")).await?;
        if let Some(t) = r.body["tasks"].as_array().and_then(|l| l.first()) {
            let created = t["created_ms"].as_f64().unwrap_or(0.0);
            let started = t["started_ms"].as_f64().unwrap_or(0.0);
            let total = (seen - t0).as_secs_f64() * 1000.0;
            to_placed.push(created - wall0);
            to_started.push(started - created);
            to_seen.push(total - (started - wall0));
        }
    }
    // The jobs keep running while later ones are submitted, as in a
    // cluster that fills up; they are stopped at the end.
    for id in &ids {
        api.delete(&format!("/v1/jobs/{id}")).await?;
    }
    times.sort();
    println!(
        "submit-to-RUNNING over {runs} one-instance jobs (ocean dev{}): p50 {}  p90 {}  p99 {}  max {}",
        if stop_each { ", each job stopped once measured" } else { "" },
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.9)),
        ms(percentile(&times, 0.99)),
        ms(*times.last().unwrap_or(&Duration::ZERO)),
    );
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    println!(
        "medians: submit->placed {:.1} ms, placed->process in its cgroup {:.1} ms, ->RUNNING committed and seen {:.1} ms",
        median(&mut to_placed),
        median(&mut to_started),
        median(&mut to_seen)
    );
    drop(dev);
    ocean_tests::tasks::reap_cgroups(&agent_parent(&dir.path().join("data/agent")));
    Ok(())
}

fn wall_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

fn agent_parent(data_dir: &std::path::Path) -> String {
    let id = std::fs::read_to_string(data_dir.join("agent-id")).unwrap_or_default();
    format!("ocean-{}", id.trim())
}

fn cpu_ticks(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1.to_string();
            let f: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15 (1-based), 12 and 13 after ')'.
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

/// One job of `instances` tiny `sleep` tasks over `agents` agents.
pub async fn fleet(instances: usize, agents: usize) -> anyhow::Result<()> {
    let c = Cluster::start(1, &[])?;
    let api = c.master(1).api();
    let mut procs = Vec::new();
    for i in 0..agents {
        let mut a = c.new_agent(
            &format!("f{i}"),
            &[
                "--resources",
                "cpus=64,mem=65536",
                "--hostname",
                &format!("fleet-{i}"),
            ],
        );
        a.start()?;
        procs.push(a);
    }
    wait_connected(&api, agents, Duration::from_secs(30)).await?;
    let ticks_before: Vec<u64> = procs
        .iter()
        .map(|a| cpu_ticks(a.process.pid().unwrap_or(0)))
        .collect();
    let id = job_id("fleet");
    let spec = json!({
        "id": id, "cmd": "sleep 3600", "instances": instances,
        "resources": {"cpus": 0.01, "mem": 8}, "kill_grace_period_seconds": 0,
        // Bin-packing would put them all on one agent (they fit): spread
        // them to load every agent.
        "placement_policy": "spread",
    });
    let t0 = Instant::now();
    let r = api.post("/v1/jobs", &spec).await?;
    anyhow::ensure!(r.status < 300, "submit: {}", r.body);
    let deadline = t0 + Duration::from_secs(300);
    loop {
        let r = api.get(&format!("/v1/jobs/{id}")).await?;
        if r.body["running"].as_u64() == Some(instances as u64) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "not all running: {}", r.body);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all_running = t0.elapsed();
    let tick = 100.0; // USER_HZ on Linux
    let launch_cpu: Vec<f64> = procs
        .iter()
        .zip(&ticks_before)
        .map(|(a, b)| (cpu_ticks(a.process.pid().unwrap_or(0)) - b) as f64 / tick)
        .collect();
    // Holding: CPU over 10 s of steady state, and RSS.
    let hold_from: Vec<u64> = procs
        .iter()
        .map(|a| cpu_ticks(a.process.pid().unwrap_or(0)))
        .collect();
    tokio::time::sleep(Duration::from_secs(10)).await;
    println!(
        "{instances} instances over {agents} agents: all RUNNING after {}",
        ms(all_running)
    );
    for (i, a) in procs.iter().enumerate() {
        let pid = a.process.pid().unwrap_or(0);
        let hold = (cpu_ticks(pid) - hold_from[i]) as f64 / tick / 10.0 * 100.0;
        println!(
            "agent {i}: CPU during launch {:.2} s, CPU while holding {:.2} %, RSS {:.1} MiB",
            launch_cpu[i],
            hold,
            rss_kib(pid) as f64 / 1024.0
        );
    }
    let master_pid = c.master(1).pid().unwrap_or(0);
    println!("master RSS {:.1} MiB", rss_kib(master_pid) as f64 / 1024.0);
    Ok(())
}
