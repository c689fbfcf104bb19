//! `ocean-bench usage`: the cost of usage collection.
//!
//! - agent: a real agent running N real tasks (`sleep`), its CPU over a
//!   minute with sampling effectively off (`--usage-interval 1h`) and then,
//!   after a restart that re-adopts the same tasks, sampling every 5 s.
//! - leader: one master with N simulated agents (gRPC streams from this
//!   process, as `schedule` does) each heartbeating and pushing a usage
//!   report of M tasks every 5 s; the leader's CPU and RSS without and then
//!   with the reports.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ocean_proto::agent::agent_api_client::AgentApiClient;
use ocean_proto::agent::{
    agent_message, master_message, AgentMessage, Heartbeat, Register, Resources, TaskUsage,
    UsageReport,
};
use ocean_tests::http::job_id;
use ocean_tests::tasks::wait_connected;
use ocean_tests::Cluster;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::rss_kib;
use crate::schedule::channel;
use crate::watch::cpu_secs;

/// CPU (% of one core) `pid` uses over `secs`.
async fn cpu_percent(pid: u32, secs: u64) -> f64 {
    let before = cpu_secs(pid);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    (cpu_secs(pid) - before) / t0.elapsed().as_secs_f64() * 100.0
}

/// The agent half.
pub async fn agent(tasks: usize, secs: u64) -> anyhow::Result<()> {
    let c = Cluster::start(1, &[])?;
    let api = c.master(1).api();
    let mut a = c.new_agent(
        "usage",
        &[
            "--resources",
            "cpus=64,mem=65536",
            "--usage-interval",
            "3600s",
        ],
    );
    a.start()?;
    wait_connected(&api, 1, Duration::from_secs(30)).await?;
    let id = job_id("usagebench");
    let spec = json!({
        "id": id, "cmd": "exec sleep 3600", "instances": tasks,
        "resources": {"cpus": 0.01, "mem": 8}, "kill_grace_period_seconds": 0,
    });
    let r = api.post("/v1/jobs", &spec).await?;
    anyhow::ensure!(r.status < 300, "submit: {}", r.body);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let r = api.get(&format!("/v1/jobs/{id}")).await?;
        if r.body["running"].as_u64() == Some(tasks as u64) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "not all running: {}", r.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Measured after a restart in both phases: a restarted agent supervises
    // re-adopted tasks, which costs more than tasks it launched itself.
    a.kill();
    a.start()?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    wait_connected(&api, 1, Duration::from_secs(30)).await?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let pid = a.process.pid().unwrap_or(0);
    let off = cpu_percent(pid, secs).await;
    let off_rss = rss_kib(pid) as f64 / 1024.0;
    // The same agent and tasks, sampled every 5 s.
    a.kill();
    let at = a.args.iter().position(|x| x == "3600s").unwrap_or(0);
    a.args[at] = "5s".into();
    a.start()?;
    wait_connected(&api, 1, Duration::from_secs(30)).await?;
    let sampled = Instant::now() + Duration::from_secs(60);
    loop {
        let r = api.get("/v1/usage?window=10s").await?;
        if r.body["total"]["used"]["sampled_tasks"].as_u64() == Some(tasks as u64) {
            break;
        }
        anyhow::ensure!(
            Instant::now() < sampled,
            "not all sampled: {}",
            r.body["total"]
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let pid = a.process.pid().unwrap_or(0);
    let on = cpu_percent(pid, secs).await;
    println!(
        "agent with {tasks} tasks over {secs} s: {off:.2} % of a core without sampling \
         (RSS {off_rss:.1} MiB), {on:.2} % sampling every 5 s (RSS {:.1} MiB): \
         collection costs {:.2} % of a core",
        rss_kib(pid) as f64 / 1024.0,
        on - off
    );
    Ok(())
}

/// The leader half.
pub async fn leader(agents: usize, tasks: usize, secs: u64) -> anyhow::Result<()> {
    let c = Cluster::start(1, &[])?;
    let api = c.master(1).api();
    let addr = c.master(1).grpc.to_string();
    let chans: Vec<Channel> = (0..agents.div_ceil(100).max(1))
        .map(|_| channel(&addr))
        .collect::<anyhow::Result<_>>()?;
    let registered = Arc::new(AtomicUsize::new(0));
    let reporting = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for i in 0..agents {
        let ch = chans[i % chans.len()].clone();
        tokio::spawn(sim(
            ch,
            i,
            tasks,
            Arc::clone(&registered),
            Arc::clone(&reporting),
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while registered.load(Ordering::Relaxed) < agents {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} agents registered",
            registered.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let pid = c.master(1).pid().unwrap_or(0);
    let rss0 = rss_kib(pid) as f64 / 1024.0;
    let off = cpu_percent(pid, secs).await;
    // At the real pace until every ring is full (64 samples at 5 s, `RING`
    // in master/src/usage/ring.rs), so memory is measured at its steady
    // state; cpu over the last `secs`. (Filling faster left a backlog and
    // the allocator's high water in both figures.)
    reporting.store(true, Ordering::Relaxed);
    let fill = (64 * 5 + 10u64).saturating_sub(secs);
    tokio::time::sleep(Duration::from_secs(fill)).await;
    let on = cpu_percent(pid, secs).await;
    let rss1 = rss_kib(pid) as f64 / 1024.0;
    println!(
        "leader with {agents} agents x {tasks} tasks over {secs} s: {off:.1} % of a core \
         without usage, {on:.1} % with reports every 5 s ({:.1} % for usage); RSS {rss0:.0} -> \
         {rss1:.0} MiB (+{:.0} MiB)",
        on - off,
        rss1 - rss0,
    );
    // Proof the reports were taken in: an agent's sums as the leader holds them.
    match api.get("/v1/agents/usage-agent-00000").await {
        Ok(r) => println!(
            "agent usage-agent-00000 as the leader sees it: {}",
            r.body["usage"]
        ),
        Err(e) => println!("agent usage-agent-00000: {e:#}"),
    }
    Ok(())
}

/// One simulated agent: registers, beats every second and, once
/// `reporting`, sends a usage report of `tasks` tasks every 5 s.
async fn sim(
    ch: Channel,
    i: usize,
    tasks: usize,
    registered: Arc<AtomicUsize>,
    reporting: Arc<std::sync::atomic::AtomicBool>,
) {
    let agent_id = format!("usage-agent-{i:05}");
    let job = job_id(&format!("u{}", i % 1000));
    let ids: Vec<String> = (0..tasks)
        .map(|t| format!("{job}.{i:010x}{t:05x}"))
        .collect();
    let mut counted = false;
    loop {
        let mut client = AgentApiClient::new(ch.clone());
        let (tx, rx) = mpsc::channel::<AgentMessage>(16);
        let reg = AgentMessage {
            kind: Some(agent_message::Kind::Register(Register {
                agent_id: agent_id.clone(),
                hostname: agent_id.clone(),
                resources: Some(Resources {
                    cpus: 32.0,
                    mem_mib: 65536,
                    disk_mib: 100_000,
                }),
                port_low: 31000,
                port_high: 31999,
                address: "127.0.0.1".into(),
                version: "sim".into(),
                ..Default::default()
            })),
        };
        if tx.send(reg).await.is_err() {
            return;
        }
        let Ok(resp) = client.session(ReceiverStream::new(rx)).await else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        let mut inbound = resp.into_inner();
        let mut beat = tokio::time::interval(Duration::from_secs(1));
        // Spread the agents' reports over the interval, as real agents'
        // start times spread them.
        let offset = Duration::from_millis((i as u64 * 7919) % 5000);
        let mut report =
            tokio::time::interval_at(tokio::time::Instant::now() + offset, Duration::from_secs(5));
        let mut seq = 0u64;
        loop {
            tokio::select! {
                m = inbound.message() => match m {
                    Ok(Some(m)) => {
                        if let Some(master_message::Kind::Registered(_)) = m.kind {
                            if !counted {
                                counted = true;
                                registered.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    _ => break,
                },
                _ = beat.tick() => {
                    seq += 1;
                    let hb = AgentMessage { kind: Some(agent_message::Kind::Heartbeat(Heartbeat { seq })) };
                    if tx.send(hb).await.is_err() { break; }
                }
                _ = report.tick() => {
                    if !reporting.load(Ordering::Relaxed) {
                        continue;
                    }
                    let r = UsageReport {
                        timestamp_ms: 0,
                        interval_ms: 5000,
                        tasks: ids.iter().enumerate().map(|(k, id)| TaskUsage {
                            task_id: id.clone(),
                            cpu_cores: Some(0.01 * (k + 1) as f64),
                            cpu_usage_ns: 1_000_000_000 * seq,
                            memory_rss_bytes: (16 + k as u64) << 20,
                            memory_cache_bytes: 1 << 20,
                            memory_peak_bytes: (20 + k as u64) << 20,
                            pids: 3,
                            disk_bytes: 1 << 16,
                            ..Default::default()
                        }).collect(),
                    };
                    let msg = AgentMessage { kind: Some(agent_message::Kind::Usage(r)) };
                    if tx.send(msg).await.is_err() { break; }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
