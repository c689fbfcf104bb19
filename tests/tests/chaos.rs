//! A bounded chaos test: for a fixed time (60 s; `OCEAN_CHAOS_SECS` to
//! change it) random SIGKILLs hit the leader, agents (with their tasks: the
//! host died) and single task processes of a 3-master, 3-agent cluster,
//! while new jobs keep being submitted. Throughout, no job may run more
//! RUNNING tasks than it asked for; once everything is back and settled,
//! every acknowledged job exists and runs exactly its instances, and the
//! agents' cgroups hold exactly those tasks. The seed is printed, and
//! `OCEAN_CHAOS_SEED` replays a run's choices.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ocean_tests::chaos::{
    answering, census, over_count, seed_from_env, settle_problems, workload_spec, Rng,
};
use ocean_tests::tasks::{bounded, reap_cgroups, submit, wait_connected};
use ocean_tests::{http::job_id, AgentProc, Api, Cluster};
use serde_json::Value;

/// The chaos's job (its flapping rules allow the kills' failures).
fn spec(name: &str, instances: u32) -> Value {
    workload_spec(&job_id(name), u64::from(instances))
}

#[tokio::test(flavor = "multi_thread")]
async fn chaos_never_runs_more_than_asked_and_loses_no_acknowledged_job() {
    let secs: u64 = std::env::var("OCEAN_CHAOS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    // Within nextest's 180 s limit (.config/nextest.toml) at the default 60 s.
    bounded(secs + 110, async move {
        let seed = seed_from_env();
        eprintln!("chaos seed {seed} (OCEAN_CHAOS_SEED={seed} replays it)");
        let mut rng = Rng(seed);
        let mut c = Cluster::start(3, &[])?;
        let apis: Vec<Api> = c.masters.iter().map(|m| m.api()).collect();
        let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(30)).await?;
        let mut agents: Vec<AgentProc> = ["a", "b", "c"]
            .iter()
            .map(|n| {
                let mut a = c.new_agent(n, &["--hostname", &format!("chaos-{n}")]);
                a.start().map(|()| a)
            })
            .collect::<anyhow::Result<_>>()?;
        wait_connected(&c.master(leader).api(), 3, Duration::from_secs(30)).await?;
        let mut acknowledged: BTreeMap<String, u64> = BTreeMap::new();
        for (i, n) in [3u32, 2, 4].iter().enumerate() {
            let name = format!("chaos-{i}");
            submit(&c.master(leader).api(), &spec(&name, *n)).await?;
            acknowledged.insert(job_id(&name), u64::from(*n));
        }

        // The watcher: at every look, no job has more RUNNING tasks than
        // it asked for.
        let violations: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watcher = {
            let (apis, violations, stop) = (apis.clone(), violations.clone(), stop.clone());
            tokio::spawn(async move {
                let mut looks = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Some(api) = answering(&apis).await {
                        if let Some(jobs) = census(&api).await {
                            looks += 1;
                            violations
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .extend(over_count(&jobs));
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                looks
            })
        };

        let end = Instant::now() + Duration::from_secs(secs);
        let mut down_master: Option<u64> = None;
        let mut down_agent: Option<usize> = None;
        let mut next_job = 3;
        let mut actions = Vec::new();
        while Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(1500 + rng.below(2500))).await;
            // What was killed last time comes back first.
            if let Some(id) = down_master.take() {
                c.master_mut(id).start()?;
            }
            if let Some(i) = down_agent.take() {
                agents[i].start()?;
            }
            let Some(api) = answering(&apis).await else {
                continue;
            };
            match rng.below(4) {
                0 => {
                    let Ok(l) = api.get("/v1/leader").await else {
                        continue;
                    };
                    let Some(id) = l.body["id"].as_u64() else {
                        continue;
                    };
                    c.master_mut(id).kill();
                    down_master = Some(id);
                    actions.push(format!("kill leader {id}"));
                }
                1 => {
                    let i = rng.below(3) as usize;
                    agents[i].kill();
                    reap_cgroups(&agents[i].cgroup_parent());
                    down_agent = Some(i);
                    actions.push(format!("kill agent {i} and its tasks"));
                }
                2 => {
                    let Ok(r) = api.get("/v1/tasks?state=RUNNING").await else {
                        continue;
                    };
                    let list = r.body["tasks"].as_array().cloned().unwrap_or_default();
                    if list.is_empty() {
                        continue;
                    }
                    let t = &list[rng.below(list.len() as u64) as usize];
                    if let Some(pid) = t["pid"].as_i64() {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid as i32),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                        actions.push(format!("kill task {}", t["id"]));
                    }
                }
                _ => {
                    let name = format!("chaos-{next_job}");
                    next_job += 1;
                    let n = 1 + rng.below(2) as u32;
                    // Acknowledged means a 2xx; anything else may or may
                    // not have committed, and is not counted on.
                    if let Ok(r) = api.post("/v1/jobs", &spec(&name, n)).await {
                        if r.status < 300 {
                            acknowledged.insert(job_id(&name), u64::from(n));
                        }
                    }
                    actions.push(format!("submit {name} x{n}"));
                }
            }
        }
        if let Some(id) = down_master.take() {
            c.master_mut(id).start()?;
        }
        if let Some(i) = down_agent.take() {
            agents[i].start()?;
        }
        eprintln!("chaos actions: {actions:?}");

        // Settled: every acknowledged job runs exactly its instances, and
        // the cgroups agree.
        let settle = Instant::now() + Duration::from_secs(80);
        let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(30)).await?;
        let api = c.master(leader).api();
        wait_connected(&api, 3, Duration::from_secs(60)).await?;
        let mut last = String::new();
        loop {
            if let Some(jobs) = census(&api).await {
                let problems = settle_problems(&jobs, &acknowledged, &agents);
                if problems.is_empty() {
                    break;
                }
                last = problems.join("; ");
            }
            anyhow::ensure!(Instant::now() < settle, "did not settle: {last}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let looks = watcher.await?;
        let violations = violations.lock().unwrap_or_else(|p| p.into_inner()).clone();
        eprintln!(
            "{} actions, {} acknowledged jobs, {looks} looks by the watcher",
            actions.len(),
            acknowledged.len()
        );
        anyhow::ensure!(looks > 10, "the watcher hardly looked ({looks})");
        anyhow::ensure!(
            violations.is_empty(),
            "more RUNNING than asked: {violations:?}"
        );
        Ok(())
    })
    .await;
}
