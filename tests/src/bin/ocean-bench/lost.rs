//! Self-healing benchmarks for lost agents (issue 5):
//!
//! - `lost-agent`: time from SIGKILL of an agent and its tasks (the host
//!   died) to all of its tasks' replacements RUNNING on the other agents,
//!   default heartbeat settings, over many trials.
//! - `false-lost`: agents declared unreachable while a CPU hog saturates
//!   every core for a fixed time (the answer should be zero).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ocean_tests::http::job_id;
use ocean_tests::tasks::{reap_cgroups, running, tasks, wait_connected};
use ocean_tests::{AgentProc, Api, Cluster};
use serde_json::{json, Value};

use crate::{ms, percentile};

fn spec(name: &str, instances: usize) -> Value {
    json!({
        "id": job_id(name), "cmd": "sleep 3600", "instances": instances,
        "resources": {"cpus": 0.01, "mem": 8}, "kill_grace_period_seconds": 0,
        "placement_policy": "spread",
    })
}

fn start_agents(c: &Cluster, n: usize, tag: &str) -> anyhow::Result<Vec<AgentProc>> {
    (0..n)
        .map(|i| {
            let mut a = c.new_agent(&format!("{tag}{i}"), &["--hostname", &format!("{tag}-{i}")]);
            a.start().map(|()| a)
        })
        .collect()
}

/// Polls until the job has `n` RUNNING tasks, none on `not_on`.
async fn wait_running(api: &Api, job: &str, n: usize, not_on: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let list = tasks(api, job).await;
        let r = running(&list);
        if r.len() == n && r.iter().all(|t| t["agent"] != not_on) {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "replacements not RUNNING: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `lost-agent`: `trials` SIGKILLs of the agent holding most of a
/// `instances`-task job among three agents.
pub async fn lost_agent(trials: usize, instances: usize) -> anyhow::Result<()> {
    let c = Cluster::start(1, &[])?;
    let api = c.master(1).api();
    let mut agents = start_agents(&c, 3, "lost")?;
    wait_connected(&api, 3, Duration::from_secs(30)).await?;
    let job = job_id("lost-agent");
    let r = api.post("/v1/jobs", &spec("lost-agent", instances)).await?;
    anyhow::ensure!(r.status < 300, "submit: {}", r.body);
    wait_running(&api, &job, instances, "").await?;
    let mut times = Vec::new();
    for trial in 0..trials {
        let list = tasks(&api, &job).await;
        let ids: Vec<String> = agents.iter().filter_map(AgentProc::id).collect();
        let on = |id: &str| running(&list).iter().filter(|t| t["agent"] == id).count();
        let victim = (0..agents.len()).max_by_key(|i| on(&ids[*i])).unwrap_or(0);
        let moved = on(&ids[victim]);
        let t0 = Instant::now();
        agents[victim].kill();
        reap_cgroups(&agents[victim].cgroup_parent());
        wait_running(&api, &job, instances, &ids[victim]).await?;
        let took = t0.elapsed();
        println!(
            "trial {trial}: {moved} task(s) replaced, all RUNNING after {}",
            ms(took)
        );
        times.push(took);
        // The host comes back empty, for the next trial.
        agents[victim].start()?;
        wait_connected(&api, 3, Duration::from_secs(30)).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    times.sort();
    println!(
        "SIGKILL of an agent and its tasks to all replacements RUNNING, {} trials, {instances} tasks over 3 agents: p50 {} p99 {} max {}",
        times.len(),
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        ms(times.last().copied().unwrap_or_default())
    );
    Ok(())
}

/// Busy loops, one per core, killed when dropped.
struct Hog(Vec<Child>);

impl Hog {
    fn start(n: usize) -> anyhow::Result<Hog> {
        let mut children = Vec::new();
        for _ in 0..n {
            children.push(
                Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .stdin(Stdio::null())
                    .spawn()?,
            );
        }
        Ok(Hog(children))
    }
}

impl Drop for Hog {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `false-lost`: agents declared unreachable during `minutes` of a CPU hog
/// (two busy loops per core) with `agents` agents holding a job.
pub async fn false_lost(minutes: u64, agent_count: usize) -> anyhow::Result<()> {
    let c = Cluster::start(1, &[])?;
    let api = c.master(1).api();
    let _agents = start_agents(&c, agent_count, "hog")?;
    wait_connected(&api, agent_count, Duration::from_secs(30)).await?;
    let job = job_id("steady");
    let instances = 2 * agent_count;
    let r = api.post("/v1/jobs", &spec("steady", instances)).await?;
    anyhow::ensure!(r.status < 300, "submit: {}", r.body);
    wait_running(&api, &job, instances, "").await?;
    let before = api.metric("ocean_agents_unreachable_total").await?;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let hog = Hog::start(2 * cores)?;
    println!(
        "{} busy loops on {cores} cores for {minutes} min, {agent_count} agents, {instances} tasks",
        2 * cores
    );
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(60 * minutes);
    let mut worst_heartbeat = 0u64;
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Ok(r) = api.get("/v1/agents").await {
            for a in r.body["agents"].as_array().into_iter().flatten() {
                worst_heartbeat = worst_heartbeat.max(a["last_heartbeat_ms"].as_u64().unwrap_or(0));
            }
        }
    }
    drop(hog);
    let after = api.metric("ocean_agents_unreachable_total").await?;
    let lost = tasks(&api, &job)
        .await
        .iter()
        .filter(|t| t["reason"] == "agent_unreachable")
        .count();
    println!(
        "agents declared unreachable: {} (tasks lost to it: {lost}); the longest silence seen at 1 s samples: {worst_heartbeat} ms",
        after - before
    );
    Ok(())
}
