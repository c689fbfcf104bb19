//! The chaos run: schedules, settling, and the checks after each.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::clients::Clients;
use super::cluster::{NsCluster, AGENTS};
use super::faults::{self, Fault, ALL};
use super::{answering, census, over_count, task_pids, Rng};
use crate::http::job_id;
use crate::linearizability;
use crate::netns::in_netns;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// How many schedules.
    pub schedules: usize,
    /// The seed every choice derives from.
    pub seed: u64,
    /// How long the cluster may take to settle after a schedule.
    pub settle_timeout: Duration,
    /// Print a line per schedule.
    pub verbose: bool,
}

/// What a run found.
#[derive(Debug, Default)]
pub struct Report {
    /// Schedules completed.
    pub schedules: usize,
    /// Faults injected, by kind (skipped ones, which found no target, are
    /// not counted).
    pub faults: BTreeMap<&'static str, usize>,
    /// Faults skipped for want of a target (no leader, no task).
    pub skipped: usize,
    /// Everything that broke a promise; must be empty.
    pub anomalies: Vec<String>,
    /// Time from the last heal of each schedule to a settled cluster.
    pub settle: Vec<Duration>,
    /// Register operations recorded and checked.
    pub ops: usize,
    /// Of those, writes acknowledged.
    pub acked_writes: usize,
    /// Workload jobs acknowledged during faults.
    pub acked_jobs: usize,
    /// Schedules of master-only faults whose tasks were compared.
    pub task_checks: usize,
    /// Census looks by the over-count watcher.
    pub looks: u64,
}

/// A workload job: real tasks, retried fast after failures.
pub fn workload_spec(id: &str, instances: u64) -> Value {
    json!({
        "id": id,
        "cmd": "sleep 600",
        "instances": instances,
        "resources": {"cpus": 0.01, "mem": 16},
        "kill_grace_period_seconds": 1,
        "placement_policy": "spread",
        // Task kills are failures: with the default flapping rules a job
        // would rightly stop relaunching and never settle.
        "flapping": {"max_failures": 1000},
        "backoff": {"backoff_seconds": 0.2, "max_launch_delay_seconds": 2},
    })
}

/// Starts the cluster in its namespaces, runs `opts.schedules` schedules
/// from the clients' namespace, and reports. Blocks the calling thread.
pub fn run(opts: Options) -> anyhow::Result<Report> {
    let cluster = NsCluster::start()?;
    let ns = cluster.client_ns();
    in_netns(&ns, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(run_in(cluster, opts))
    })?
}

async fn run_in(mut c: NsCluster, opts: Options) -> anyhow::Result<Report> {
    let mut rng = Rng(opts.seed | 1);
    let mut report = Report::default();
    let apis = c.apis();
    let t0 = Instant::now();
    if let Err(e) = bring_up(&c).await {
        anyhow::bail!("the cluster did not come up: {e:#}\n{}", c.logs());
    }
    // Jobs acknowledged and their instances; a few long-lived ones carry
    // tasks through every schedule.
    let mut acked: BTreeMap<String, u64> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for i in 0..3u64 {
        let id = job_id(&format!("chaos-base-{i}"));
        let api = leader_api(&c).await?;
        let r = api.post("/v1/jobs", &workload_spec(&id, 2 + i % 2)).await?;
        anyhow::ensure!(r.status < 300, "submit {id}: {} {}", r.status, r.body);
        acked.insert(id, 2 + i % 2);
    }

    let violations: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let looks = Arc::new(AtomicU64::new(0));
    let watcher = {
        let (apis, violations, stop, looks) = (
            apis.clone(),
            violations.clone(),
            stop.clone(),
            looks.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Some(api) = answering(&apis).await {
                    if let Some(jobs) = census(&api).await {
                        looks.fetch_add(1, Ordering::Relaxed);
                        let mut v = violations.lock().unwrap_or_else(|p| p.into_inner());
                        v.extend(over_count(&jobs));
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };

    for s in 0..opts.schedules {
        // Start from a settled cluster (not timed: old jobs may be ending).
        if let Err(e) = settle(&c, &acked, opts.settle_timeout).await {
            report
                .anomalies
                .push(format!("before schedule {s}: did not settle: {e}"));
            break;
        }
        let schedule: Vec<Fault> = (0..2 + rng.below(2))
            .map(|_| ALL[rng.below(ALL.len() as u64) as usize])
            .collect();
        let masters_only = schedule.iter().all(|f| f.masters_only());
        if opts.verbose {
            eprintln!(
                "schedule {s} at {:.1} s: {schedule:?}",
                t0.elapsed().as_secs_f64()
            );
        }
        let before = match task_pids(&leader_api(&c).await?).await {
            Some(t) => t,
            None => anyhow::bail!("schedule {s}: no consistent task list"),
        };
        let keys: Vec<String> = (0..2).map(|k| job_id(&format!("chaos-r{s}-{k}"))).collect();
        let clients = Clients::start(3, &apis, &keys, rng.next_u64(), t0);
        let mut done = Vec::new();
        let mut submit_at = rng.below(schedule.len() as u64) as usize;
        for (i, f) in schedule.iter().enumerate() {
            let (mut applied, what) = faults::apply(&mut c, *f, &mut rng).await?;
            if what.starts_with("skipped") {
                report.skipped += 1;
            } else {
                *report.faults.entry(f.name()).or_default() += 1;
            }
            done.push(what);
            let hold = Instant::now() + Duration::from_millis(1500 + rng.below(2500));
            while Instant::now() < hold {
                tokio::time::sleep(Duration::from_millis(200 + rng.below(400))).await;
                faults::tick(&mut c, &mut applied)?;
                if i == submit_at {
                    submit_at = usize::MAX;
                    let id = job_id(&format!("chaos-w{s}"));
                    let n = 1 + rng.below(2);
                    let api = &apis[rng.below(apis.len() as u64) as usize];
                    let answer = tokio::time::timeout(
                        Duration::from_secs(3),
                        api.post("/v1/jobs", &workload_spec(&id, n)),
                    )
                    .await;
                    // Only a 2xx is counted on; anything else may or may
                    // not have committed.
                    if let Ok(Ok(r)) = answer {
                        if r.status < 300 {
                            acked.insert(id.clone(), n);
                            order.push(id);
                            report.acked_jobs += 1;
                        }
                    }
                }
            }
            faults::heal(&mut c, applied)?;
            if i + 1 < schedule.len() {
                tokio::time::sleep(Duration::from_millis(300 + rng.below(1200))).await;
            }
        }
        let healed = Instant::now();
        let settled = settle(&c, &acked, opts.settle_timeout).await;
        let took = healed.elapsed();
        let history = clients.finish().await;
        if let Err(e) = settled {
            report
                .anomalies
                .push(format!("schedule {s} {done:?}: did not settle: {e}"));
            break;
        }
        report.settle.push(took);
        report.ops += history.len();
        report.acked_writes += history
            .iter()
            .filter(|o| {
                matches!(o.call, linearizability::Call::Write(_))
                    && o.outcome == linearizability::Outcome::Ok
            })
            .count();
        let checking = Instant::now();
        for a in linearizability::check(&history) {
            if opts.verbose {
                eprintln!("schedule {s}: {a}");
            }
            report.anomalies.push(format!("schedule {s} {done:?}: {a}"));
        }
        let checked = checking.elapsed();
        if masters_only {
            report.task_checks += 1;
            let after = task_pids(&leader_api(&c).await?).await.unwrap_or_default();
            for (job, tasks) in &before {
                if after.get(job) != Some(tasks) {
                    report.anomalies.push(format!(
                        "schedule {s} {done:?} touched only masters, yet {job}'s tasks changed: {tasks:?} -> {:?}",
                        after.get(job)
                    ));
                }
            }
        }
        if opts.verbose {
            eprintln!(
                "schedule {s}: {done:?} settled in {:.1} s, {} ops checked in {:.1} s",
                took.as_secs_f64(),
                history.len(),
                checked.as_secs_f64()
            );
        }
        report.schedules += 1;
        // Keep the cluster small: the registers and all but the newest
        // few workload jobs go.
        let api = leader_api(&c).await?;
        for k in &keys {
            let _ = api.delete(&format!("/v1/jobs/{k}")).await;
        }
        while order.len() > 4 {
            let old = order.remove(0);
            let r = api.delete(&format!("/v1/jobs/{old}")).await?;
            anyhow::ensure!(r.status < 300, "delete {old}: {} {}", r.status, r.body);
            acked.remove(&old);
        }
        if !report.anomalies.is_empty() && !opts.verbose {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = watcher.await;
    report.looks = looks.load(Ordering::Relaxed);
    let v = violations.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let distinct: BTreeSet<String> = v.into_iter().collect();
    report.anomalies.extend(distinct);
    if !report.anomalies.is_empty() {
        eprintln!("logs:\n{}", c.logs());
        eprintln!("every log is kept in {}", c.keep_dir().display());
    }
    Ok(report)
}

/// The leader's REST client, once the masters agree on one.
async fn leader_api(c: &NsCluster) -> anyhow::Result<crate::Api> {
    let l = c.wait_agreed_leader(Duration::from_secs(60)).await?;
    Ok(c.masters[(l - 1) as usize].api())
}

/// The leader is agreed and every agent connected.
async fn bring_up(c: &NsCluster) -> anyhow::Result<()> {
    let l = c.wait_agreed_leader(Duration::from_secs(60)).await?;
    crate::tasks::wait_connected(
        &c.masters[(l - 1) as usize].api(),
        AGENTS,
        Duration::from_secs(60),
    )
    .await
}

/// Waits until the masters agree on a leader, every agent is connected,
/// every acknowledged job exists with its instances and runs exactly that
/// many tasks, and the agents' cgroups hold exactly the tasks the state
/// says run.
async fn settle(
    c: &NsCluster,
    acked: &BTreeMap<String, u64>,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let why = match settled_once(c, acked).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if Instant::now() > deadline {
            return Err(why);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn settled_once(c: &NsCluster, acked: &BTreeMap<String, u64>) -> Result<(), String> {
    let l = c
        .wait_agreed_leader(Duration::from_millis(1))
        .await
        .map_err(|e| e.to_string())?;
    let api = c.masters[(l - 1) as usize].api();
    crate::tasks::wait_connected(&api, AGENTS, Duration::from_millis(1))
        .await
        .map_err(|e| e.to_string())?;
    let jobs = census(&api).await.ok_or("no census from the leader")?;
    let problems = super::settle_problems(&jobs, acked, &c.agents);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}
