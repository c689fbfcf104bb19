//! `ocean-bench dashboard`: the web dashboard at cluster scale. A real
//! three-master cluster, simulated agents (as `schedule`), the synthetic
//! workload grown in stages (1k, 10k, 100k tasks); at each stage:
//!
//! - HTML size and time to the last byte (loopback, so ~server time) of
//!   the overview, the jobs list and a job page;
//! - first contentful paint of each in headless Chromium (Performance API
//!   paint timing), at normal speed and at a 4x CPU throttle (CDP
//!   `Emulation.setCPUThrottlingRate` through chromedriver).
//!
//! At the last stage, with `--dashboards` SSE streams open (the tab and
//! SSE clients) and `--churn-ops` scale writes/s flowing elsewhere:
//!
//! - commit to screen: the open job page's MutationObserver stamps each
//!   task row turning RUNNING; the bench's own watch of the job on the
//!   leader stamps the commit (when the committed change arrived); also
//!   printed from the agent's report (the task's `started_ms`), which adds
//!   the report's trip and the raft round to the figure;
//! - tab memory: the JS heap after a forced GC (CDP `Performance.getMetrics`)
//!   while the tab stays open `--memory-secs` with changes flowing.
//!
//! ```text
//!  sim agents ──► leader ◄── churn (scale writes) ── bench ──watch──► commit times
//!                   │ /ui/, /v1/events (SSE)
//!        chromium tab (observer) + N-1 SSE clients
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use futures::StreamExt;
use ocean_proto::v1::ocean_api_client::OceanApiClient;
use ocean_proto::v1::{event, PutJobRequest, ScaleJobRequest, WatchRequest};
use ocean_scheduler_policies::synthetic::{self, WorkloadSpec};
use ocean_tests::browser::Browser;
use ocean_tests::Cluster;
use serde_json::{json, Value};
use tonic::transport::Channel;

use crate::schedule::{channel, cluster_counts, sim_agent, spec_of, Counters, Pool};
use crate::{ms, percentile};

/// The job the open tab watches; its tasks turning RUNNING are timed.
const PROBE: &str = "cop.bench_owt.ui_pdl.probe_service.web_job.probe_cluster.c1";

/// What to run (see `ocean-bench dashboard --help`).
#[derive(Debug)]
pub struct Opts {
    pub agents: usize,
    pub stages: Vec<usize>,
    pub fetches: usize,
    pub loads: usize,
    pub dashboards: usize,
    pub churn_ops: u64,
    pub samples: usize,
    pub memory_secs: u64,
}

fn epoch_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

async fn put(client: &mut OceanApiClient<Channel>, spec: &Value) -> anyhow::Result<u64> {
    let spec = serde_json::to_vec(spec)?;
    for _ in 0..50 {
        let r = client
            .put_job(PutJobRequest {
                spec: spec.clone(),
                format: "json".into(),
                expected_spec_version: None,
            })
            .await;
        match r {
            Ok(r) => return Ok(r.into_inner().version),
            Err(e) if matches!(e.code(), tonic::Code::Aborted | tonic::Code::Unavailable) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e).context("put job"),
        }
    }
    anyhow::bail!("put job: the leader kept moving")
}

async fn scale(client: &mut OceanApiClient<Channel>, id: &str, n: u32) -> anyhow::Result<u64> {
    let r = client
        .scale_job(ScaleJobRequest {
            id: id.into(),
            instances: n,
            expected_spec_version: None,
        })
        .await
        .with_context(|| format!("scale {id}"))?;
    Ok(r.into_inner().version)
}

/// Size and times to the last byte of `url`, `n` fetches.
async fn fetch(
    http: &reqwest::Client,
    url: &str,
    n: usize,
) -> anyhow::Result<(usize, Vec<Duration>)> {
    let mut times = Vec::with_capacity(n);
    let mut size = 0;
    for _ in 0..n {
        let t0 = Instant::now();
        let r = http
            .get(url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        anyhow::ensure!(r.status().is_success(), "GET {url}: {}", r.status());
        let body = r.bytes().await?;
        times.push(t0.elapsed());
        size = body.len();
    }
    times.sort();
    Ok((size, times))
}

/// First contentful paint of `url` (ms after navigation start), median
/// of `n` fresh loads.
async fn fcp(b: &Browser, url: &str, n: usize) -> anyhow::Result<f64> {
    let mut all = Vec::with_capacity(n);
    for _ in 0..n {
        b.client.goto("about:blank").await?;
        b.client
            .goto(url)
            .await
            .with_context(|| format!("open {url}"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v = b
                .js(
                    "var e = performance.getEntriesByName('first-contentful-paint')[0]; \
                     return e ? e.startTime : null",
                )
                .await?;
            if let Some(t) = v.as_f64() {
                all.push(t);
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{url}: no first-contentful-paint entry"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    all.sort_by(f64::total_cmp);
    Ok(all[all.len() / 2])
}

/// Scale writes at `ops` per second over the workload's jobs (each job
/// between its size and one more), until `stop`.
async fn churn(
    client: OceanApiClient<Channel>,
    jobs: Vec<(String, u32)>,
    ops: u64,
    stop: Arc<AtomicBool>,
) {
    if ops == 0 || jobs.is_empty() {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / ops as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut i = 0usize;
    let inflight = Arc::new(tokio::sync::Semaphore::new(64));
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let (id, base) = jobs[i % jobs.len()].clone();
        let up = (i / jobs.len()).is_multiple_of(2);
        i += 1;
        let Ok(permit) = inflight.clone().acquire_owned().await else {
            return;
        };
        let mut c = client.clone();
        tokio::spawn(async move {
            let _ = scale(&mut c, &id, base + u32::from(up)).await;
            drop(permit);
        });
    }
}

/// Counts every job and task change the leader commits (the flow rate).
async fn count_changes(ch: Channel, from: u64, n: Arc<AtomicU64>) -> anyhow::Result<()> {
    let mut client = OceanApiClient::new(ch).max_decoding_message_size(usize::MAX);
    let mut s = client
        .watch(WatchRequest {
            from_version: from,
            node: String::new(),
            kinds: vec!["job".into(), "task".into()],
            namespaces: Vec::new(),
        })
        .await?
        .into_inner();
    while let Some(ev) = s.next().await {
        ev?;
        n.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// When each of `PROBE`'s tasks turned RUNNING (epoch ms): as the agent
/// reported it (the task's `started_ms`, else the arrival), and as the
/// bench's own watch of the leader received the committed change (the
/// commit, plus the feed's delivery on loopback).
#[derive(Debug, Clone, Copy)]
struct Commit {
    reported: f64,
    committed: f64,
}

async fn watch_probe(
    ch: Channel,
    from: u64,
    commits: Arc<Mutex<HashMap<String, Commit>>>,
) -> anyhow::Result<()> {
    let mut client = OceanApiClient::new(ch);
    let mut s = client
        .watch(WatchRequest {
            from_version: from,
            node: PROBE.into(),
            kinds: vec!["task".into()],
            namespaces: Vec::new(),
        })
        .await?
        .into_inner();
    while let Some(ev) = s.next().await {
        let ev = ev?;
        let arrived = epoch_ms();
        if let Some(event::Kind::TaskPut(t)) = ev.kind {
            if t.state == "RUNNING" {
                let reported = if t.started_ms > 0 {
                    t.started_ms as f64
                } else {
                    arrived
                };
                commits
                    .lock()
                    .map_err(|_| anyhow::anyhow!("poisoned"))?
                    .entry(t.id)
                    .or_insert(Commit {
                        reported,
                        committed: arrived,
                    });
            }
        }
    }
    Ok(())
}

/// One SSE client of the dashboard's stream (what a tab's live.js opens).
async fn sse_client(http: reqwest::Client, url: String, bytes: Arc<AtomicU64>) {
    let Ok(r) = http.get(&url).send().await else {
        return;
    };
    let mut s = r.bytes_stream();
    while let Some(Ok(chunk)) = s.next().await {
        bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
}

const OBSERVE: &str = "window.seen = {}; var body = document.getElementById('tasks-body'); \
    new MutationObserver(function () { var now = Date.now(); \
      body.querySelectorAll('tr[data-task]').forEach(function (tr) { \
        var id = tr.getAttribute('data-task'); \
        if (!window.seen[id] && tr.cells[1] && tr.cells[1].textContent.indexOf('RUNNING') === 0) window.seen[id] = now; \
      }); }).observe(body, {childList: true, subtree: true, characterData: true}); return true";

async fn heap_mb(b: &Browser) -> anyhow::Result<f64> {
    b.cdp("HeapProfiler.collectGarbage", json!({})).await?;
    let m = b.cdp("Performance.getMetrics", json!({})).await?;
    let used = m["metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|x| x["name"] == "JSHeapUsedSize")
        .and_then(|x| x["value"].as_f64())
        .context("no JSHeapUsedSize metric")?;
    Ok(used / (1024.0 * 1024.0))
}

/// Runs the benchmark; Ctrl-C stops it with everything it started.
pub async fn dashboard(o: Opts) -> anyhow::Result<()> {
    tokio::select! {
        r = run(o) => r,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
    }
}

async fn run(o: Opts) -> anyhow::Result<()> {
    let max = o
        .stages
        .iter()
        .copied()
        .max()
        .context("--tasks: no stage")?;
    let per_job = 100.min(max.max(1));
    let workload = synthetic::workload(&WorkloadSpec {
        agents: o.agents,
        jobs: max.div_ceil(per_job),
        tasks_per_job: per_job,
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
    let lgrpc = c.master(leader).grpc.to_string();
    let base = format!("http://{}", c.master(leader).http);
    let counters = Arc::new(Counters::default());
    let mut by_addr = HashMap::new();
    for id in [1, 2, 3] {
        let addr = c.master(id).grpc.to_string();
        let chans = (0..o.agents.div_ceil(100).max(1))
            .map(|_| channel(&addr))
            .collect::<anyhow::Result<Vec<_>>>()?;
        by_addr.insert(addr, chans);
    }
    let pool = Arc::new(Pool {
        by_addr,
        addrs: vec![lgrpc.clone()],
    });
    for (i, a) in workload.agents.iter().enumerate() {
        tokio::spawn(sim_agent(pool.clone(), i, a.clone(), counters.clone()));
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while counters.registered.load(Ordering::Relaxed) < o.agents {
        anyhow::ensure!(Instant::now() < deadline, "agents did not register");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("{} simulated agents registered", o.agents);

    let mut client = OceanApiClient::new(channel(&lgrpc)?);
    let specs: Vec<Value> = workload.pending.iter().map(spec_of).collect();
    let job_page = specs
        .first()
        .and_then(|s| s["id"].as_str())
        .context("empty workload")?
        .to_string();
    let apis: Vec<ocean_tests::Api> = [1, 2, 3].iter().map(|&id| c.master(id).api()).collect();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let b = Browser::start().await?;
    let pages = [
        ("overview", format!("{base}/ui/")),
        ("jobs", format!("{base}/ui/jobs")),
        ("job", format!("{base}/ui/jobs/{job_page}")),
    ];
    let mut submitted = 0usize;
    let mut stages = o.stages.clone();
    stages.sort_unstable();
    for &stage in &stages {
        let want = stage.div_ceil(per_job).min(specs.len());
        futures::stream::iter(&specs[submitted..want])
            .map(|s| {
                let mut client = client.clone();
                async move { put(&mut client, s).await }
            })
            .buffer_unordered(128)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<anyhow::Result<Vec<_>>>()?;
        submitted = want;
        let asked: u64 = specs[..want]
            .iter()
            .map(|s| s["instances"].as_u64().unwrap_or(0))
            .sum();
        // Until placements stop moving (a few synthetic tasks may not fit
        // their constraints), all asked at the latest.
        let t0 = Instant::now();
        let mut last = (0, Instant::now());
        let tasks = loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let (_, running) = cluster_counts(&apis).await;
            if running != last.0 {
                last = (running, Instant::now());
            }
            if running >= asked || (running > 0 && last.1.elapsed() > Duration::from_secs(5)) {
                break running;
            }
            anyhow::ensure!(
                t0.elapsed() < Duration::from_secs(600),
                "{running} of {asked} RUNNING after 10 minutes"
            );
        };
        println!(
            "\n{tasks} tasks RUNNING (of {asked} asked) on {} agents ({} jobs); load {}",
            o.agents,
            want,
            std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .trim()
        );
        for (name, url) in &pages {
            let (size, times) = fetch(&http, url, o.fetches).await?;
            println!(
                "  {name:8} HTML {:.1} KB; time to last byte p50 {}, p95 {}, max {}",
                size as f64 / 1024.0,
                ms(percentile(&times, 0.5)),
                ms(percentile(&times, 0.95)),
                ms(*times.last().unwrap_or(&Duration::ZERO)),
            );
        }
        for rate in [1.0, 4.0] {
            b.cdp("Emulation.setCPUThrottlingRate", json!({"rate": rate}))
                .await?;
            let mut line = format!("  first contentful paint, CPU x{rate}:");
            for (name, url) in &pages {
                let t = fcp(&b, url, o.loads).await?;
                line.push_str(&format!(" {name} {t:.0} ms;"));
            }
            println!("{line} (median of {} loads)", o.loads);
        }
        b.cdp("Emulation.setCPUThrottlingRate", json!({"rate": 1}))
            .await?;
    }

    // Commit to screen and tab memory, at the last stage.
    let from = put(
        &mut client,
        &json!({"id": PROBE, "cmd": "sleep 3600", "instances": 0,
            "resources": {"cpus": 0.01, "mem": 8}}),
    )
    .await?;
    let commits = Arc::new(Mutex::new(HashMap::new()));
    tokio::spawn(watch_probe(channel(&lgrpc)?, from, commits.clone()));
    let changes = Arc::new(AtomicU64::new(0));
    tokio::spawn(count_changes(channel(&lgrpc)?, from, changes.clone()));
    b.client.goto(&format!("{base}/ui/jobs/{PROBE}")).await?;
    let t0 = Instant::now();
    while !b
        .js("return document.getElementById('live-status').textContent")
        .await?
        .as_str()
        .is_some_and(|s| s.starts_with("Live"))
    {
        anyhow::ensure!(
            t0.elapsed() < Duration::from_secs(20),
            "the probe's page did not go live"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.js(OBSERVE).await?;
    let sse_bytes = Arc::new(AtomicU64::new(0));
    let nodes: Vec<String> = specs[..submitted]
        .iter()
        .filter_map(|s| s["id"].as_str().map(str::to_string))
        .collect();
    for i in 0..o.dashboards.saturating_sub(1) {
        // Half follow the probe's job, half a job of the churn.
        let node = if i.is_multiple_of(2) {
            PROBE.to_string()
        } else {
            nodes[i % nodes.len()].clone()
        };
        let url = format!("{base}/v1/events?from={from}&node={node}&kinds=job,task");
        tokio::spawn(sse_client(http.clone(), url, sse_bytes.clone()));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let churn_jobs: Vec<(String, u32)> = specs[..submitted]
        .iter()
        .filter_map(|s| {
            Some((
                s["id"].as_str()?.to_string(),
                s["instances"].as_u64()? as u32,
            ))
        })
        .collect();
    tokio::spawn(churn(client.clone(), churn_jobs, o.churn_ops, stop.clone()));
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (c0, t_c0) = (changes.load(Ordering::Relaxed), Instant::now());

    let mut lat = Vec::new();
    let mut from_report = Vec::new();
    let mut missed = 0;
    for n in 1..=o.samples {
        scale(&mut client, PROBE, n as u32).await?;
        let t = Instant::now();
        loop {
            let seen = b
                .js("return Object.keys(window.seen).length")
                .await?
                .as_u64()
                .unwrap_or(0);
            if seen >= n as u64 {
                break;
            }
            if t.elapsed() > Duration::from_secs(10) {
                missed += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let seen = b.js("return window.seen").await?;
    let rate = (changes.load(Ordering::Relaxed) - c0) as f64 / t_c0.elapsed().as_secs_f64();
    {
        let commits = commits.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        for (id, at) in seen.as_object().into_iter().flatten() {
            if let (Some(screen), Some(c)) = (at.as_f64(), commits.get(id)) {
                let since = |t: f64| Duration::from_secs_f64((screen - t).max(0.0) / 1000.0);
                lat.push(since(c.committed));
                from_report.push(since(c.reported));
            }
        }
    }
    lat.sort();
    from_report.sort();
    println!(
        "\ncommit to screen ({} samples, {missed} not seen within 10 s) with {} dashboards open and {rate:.0} changes/s: p50 {}, p95 {}, max {}",
        lat.len(),
        o.dashboards,
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.95)),
        ms(*lat.last().unwrap_or(&Duration::ZERO)),
    );
    println!(
        "  from the agent's report (report, raft commit, feed, SSE, screen): p50 {}, p95 {}, max {}",
        ms(percentile(&from_report, 0.5)),
        ms(percentile(&from_report, 0.95)),
        ms(*from_report.last().unwrap_or(&Duration::ZERO)),
    );
    println!(
        "  SSE clients received {:.1} MB",
        sse_bytes.load(Ordering::Relaxed) as f64 / 1e6
    );

    if o.memory_secs > 0 {
        b.cdp("Performance.enable", json!({})).await?;
        let start = heap_mb(&b).await?;
        let rss_start = b.renderer_rss_mb();
        let mut rss_peak = rss_start;
        let t = Instant::now();
        let mut n = o.samples as u32;
        let mut peak = start;
        let mut last_sample = Instant::now();
        while t.elapsed() < Duration::from_secs(o.memory_secs) {
            // The probe keeps changing (up to 20 tasks, then back to 1).
            n = if n >= 20 { 1 } else { n + 1 };
            scale(&mut client, PROBE, n).await?;
            tokio::time::sleep(Duration::from_secs(2)).await;
            if last_sample.elapsed() > Duration::from_secs(30) {
                let h = heap_mb(&b).await?;
                peak = peak.max(h);
                let rss = b.renderer_rss_mb();
                rss_peak = rss_peak.max(rss);
                println!(
                    "  after {:.0} s: JS heap {h:.2} MB, renderer RSS {rss:.1} MB, load {}",
                    t.elapsed().as_secs_f64(),
                    std::fs::read_to_string("/proc/loadavg")
                        .unwrap_or_default()
                        .trim()
                );
                last_sample = Instant::now();
            }
        }
        let end = heap_mb(&b).await?;
        println!(
            "tab memory over {} s with changes flowing: JS heap {start:.2} MB -> {end:.2} MB (growth {:.2} MB, peak {peak:.2} MB)",
            o.memory_secs,
            end - start
        );
        let rss_end = b.renderer_rss_mb();
        println!(
            "  renderer processes' RSS {rss_start:.1} MB -> {rss_end:.1} MB (growth {:.1} MB, peak {rss_peak:.1} MB)",
            rss_end - rss_start
        );
    }
    stop.store(true, Ordering::Relaxed);
    b.close().await;
    Ok(())
}
