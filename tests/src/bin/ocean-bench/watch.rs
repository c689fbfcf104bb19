//! `ocean-bench watch`: filtered-watch fan-out. Many watchers follow one
//! service-tree node on a follower while a large workload changes tasks
//! elsewhere in the tree. Reports the follower's CPU per delivered event
//! (against the same run without the filtered watchers) and every event a
//! watcher received that its filter should have excluded.
//!
//! ```text
//!  simulated agents ──► leader ──► raft ──► follower ──► W watchers (node = pdl.watched)
//!  100,000 tasks elsewhere ─┘                    └──► 1 reference watcher (no node:
//!  pdl.watched + pdl.watched2 scaled in steps           counts what W must each see)
//! ```
//!
//! `pdl.watched2` is the boundary decoy: a prefix match on the id string
//! would deliver its events to `pdl.watched` watchers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use ocean_proto::v1::ocean_api_client::OceanApiClient;
use ocean_proto::v1::{event, Event, PutJobRequest, WatchRequest};
use ocean_scheduler_policies::synthetic::{self, WorkloadSpec};
use ocean_spec::TreeNode;
use ocean_tests::Cluster;
use serde_json::json;
use tonic::transport::Channel;

use crate::schedule::{channel, cluster_counts, sim_agent, spec_of, Counters, Pool};

/// The node every filtered watcher follows.
const WATCHED: &str = "cop.bench_owt.fanout_pdl.watched";
const WATCHED_JOB: &str = "cop.bench_owt.fanout_pdl.watched_service.web_job.api_cluster.c1";
/// Shares `WATCHED` as a string prefix but lies outside its node.
const DECOY_JOB: &str = "cop.bench_owt.fanout_pdl.watched2_service.web_job.api_cluster.c1";
/// Scale steps of the watched and decoy jobs during the churn.
const STEPS: u32 = 20;

/// One run's figures.
#[derive(Debug, Default)]
struct Run {
    watchers: usize,
    cpu_secs: f64,
    /// Events the filtered watchers received in all.
    delivered: u64,
    /// Events a filtered watcher received that its filter excludes.
    wrong: u64,
    /// What each filtered watcher should have received (the reference
    /// watcher's count of events under the node).
    expected: u64,
    min_seen: u64,
    max_seen: u64,
    /// Events the unfiltered reference watcher received.
    all_events: u64,
    placed: u64,
}

/// CPU seconds (user + system) `pid` has used.
pub(crate) fn cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces): state is the
    // 3rd field of the line, utime the 14th, stime the 15th.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Linux reports these in USER_HZ, 100 on every architecture it runs on.
    (ticks(11) + ticks(12)) / 100.0
}

/// The job id an event is about, if it is about a job or task.
fn subject(ev: &Event) -> Option<&str> {
    match ev.kind.as_ref()? {
        event::Kind::JobPut(j) => Some(&j.id),
        event::Kind::JobDeleted(id) => Some(id),
        event::Kind::TaskPut(t) => Some(&t.id),
        event::Kind::TaskRemoved(id) => Some(id),
        _ => None,
    }
}

fn job(id: &str, instances: u32) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": id,
        "cmd": "sleep 3600",
        "instances": instances,
        "resources": {"cpus": 0.01, "mem": 8},
    }))
    .unwrap_or_default()
}

async fn put(client: &mut OceanApiClient<Channel>, spec: Vec<u8>) -> anyhow::Result<u64> {
    let mut tries = 0;
    loop {
        let r = client
            .put_job(PutJobRequest {
                spec: spec.clone(),
                format: "json".into(),
                expected_spec_version: None,
            })
            .await;
        match r {
            Ok(r) => return Ok(r.into_inner().version),
            Err(e)
                if tries < 20
                    && matches!(e.code(), tonic::Code::Aborted | tonic::Code::Unavailable) =>
            {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e).context("put job"),
        }
    }
}

/// Counts of one watcher.
#[derive(Default)]
struct Seen {
    events: AtomicU64,
    wrong: AtomicU64,
    /// Events under `WATCHED` (the reference watcher only).
    under: AtomicU64,
}

/// Follows `node` from `from` until the stream ends; counts into `seen`.
async fn watcher(
    channel: Channel,
    node: &'static str,
    from: u64,
    seen: Arc<Seen>,
    started: Arc<AtomicUsize>,
) -> anyhow::Result<()> {
    let filter = TreeNode::parse(WATCHED).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut client = OceanApiClient::new(channel).max_decoding_message_size(usize::MAX);
    let mut stream = client
        .watch(WatchRequest {
            from_version: from,
            node: node.into(),
            kinds: vec!["job".into(), "task".into()],
            namespaces: Vec::new(),
        })
        .await?
        .into_inner();
    started.fetch_add(1, Ordering::Relaxed);
    while let Some(ev) = stream.next().await {
        let ev = ev?;
        seen.events.fetch_add(1, Ordering::Relaxed);
        let covered = subject(&ev).is_some_and(|id| filter.covers_id(id));
        if node.is_empty() {
            if covered {
                seen.under.fetch_add(1, Ordering::Relaxed);
            }
        } else if !covered {
            seen.wrong.fetch_add(1, Ordering::Relaxed);
            if seen.wrong.load(Ordering::Relaxed) == 1 {
                eprintln!("wrongly delivered: {ev:?}");
            }
        }
    }
    Ok(())
}

async fn run(watchers: usize, agents: usize, tasks: usize) -> anyhow::Result<Run> {
    let per_job = 100.min(tasks.max(1));
    let workload = synthetic::workload(&WorkloadSpec {
        agents,
        jobs: tasks.div_ceil(per_job),
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
    let follower = [1, 2, 3]
        .into_iter()
        .find(|&i| i != leader)
        .context("no follower")?;
    let lgrpc = c.master(leader).grpc.to_string();
    let fgrpc = c.master(follower).grpc.to_string();

    let counters = Arc::new(Counters::default());
    let mut by_addr = HashMap::new();
    for id in [1, 2, 3] {
        let addr = c.master(id).grpc.to_string();
        let chans = (0..agents.div_ceil(100).max(1))
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
    while counters.registered.load(Ordering::Relaxed) < agents {
        anyhow::ensure!(Instant::now() < deadline, "agents did not register");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut client = OceanApiClient::new(channel(&lgrpc)?);
    let from = put(&mut client, job(WATCHED_JOB, 1)).await?;
    put(&mut client, job(DECOY_JOB, 1)).await?;

    // 100 watch streams per HTTP/2 connection (hyper's stream limit is 200).
    let chans = (0..watchers.div_ceil(100).max(1))
        .map(|_| channel(&fgrpc))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let started = Arc::new(AtomicUsize::new(0));
    let reference = Arc::new(Seen::default());
    tokio::spawn(watcher(
        channel(&fgrpc)?,
        "",
        from,
        reference.clone(),
        started.clone(),
    ));
    let seen: Vec<Arc<Seen>> = (0..watchers).map(|_| Arc::new(Seen::default())).collect();
    for (i, s) in seen.iter().enumerate() {
        let ch = chans[i % chans.len()].clone();
        tokio::spawn(watcher(ch, WATCHED, from, s.clone(), started.clone()));
    }
    while started.load(Ordering::Relaxed) < watchers + 1 {
        anyhow::ensure!(Instant::now() < deadline, "watchers did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let pid = c.master(follower).pid().context("follower pid")?;
    let cpu0 = cpu_secs(pid);
    // The watched and decoy jobs grow in steps while the workload lands.
    let scaler = {
        let mut client = client.clone();
        tokio::spawn(async move {
            for step in 1..=STEPS {
                for id in [WATCHED_JOB, DECOY_JOB] {
                    put(&mut client, job(id, 1 + step)).await?;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            anyhow::Ok(())
        })
    };
    let specs: Vec<Vec<u8>> = workload
        .pending
        .iter()
        .map(|j| serde_json::to_vec(&spec_of(j)))
        .collect::<Result<_, _>>()?;
    futures::stream::iter(specs)
        .map(|s| {
            let mut client = client.clone();
            async move { put(&mut client, s).await }
        })
        .buffer_unordered(128)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;
    scaler.await??;

    // Until placements and deliveries stop moving.
    let apis: Vec<ocean_tests::Api> = [1, 2, 3].iter().map(|&id| c.master(id).api()).collect();
    let total = tasks as u64 + 2 * (1 + STEPS as u64);
    let snapshot = |seen: &[Arc<Seen>]| -> u64 {
        reference.events.load(Ordering::Relaxed)
            + seen
                .iter()
                .map(|s| s.events.load(Ordering::Relaxed))
                .sum::<u64>()
    };
    let mut last = (0, 0, 0, Instant::now());
    let placed = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (p, r) = cluster_counts(&apis).await;
        let n = snapshot(&seen);
        if (p, r, n) != (last.0, last.1, last.2) {
            last = (p, r, n, Instant::now());
        }
        let quiet = last.3.elapsed();
        if (p >= total && r >= total && quiet > Duration::from_secs(2))
            || quiet > Duration::from_secs(15)
        {
            break p;
        }
    };
    // The quiet tail is idle for the follower either way; it is part of
    // both runs alike.
    let cpu_secs = cpu_secs(pid) - cpu0;
    let counts: Vec<u64> = seen
        .iter()
        .map(|s| s.events.load(Ordering::Relaxed))
        .collect();
    Ok(Run {
        watchers,
        cpu_secs,
        delivered: counts.iter().sum(),
        wrong: seen.iter().map(|s| s.wrong.load(Ordering::Relaxed)).sum(),
        expected: reference.under.load(Ordering::Relaxed),
        min_seen: counts.iter().copied().min().unwrap_or(0),
        max_seen: counts.iter().copied().max().unwrap_or(0),
        all_events: reference.events.load(Ordering::Relaxed),
        placed,
    })
}

fn print(r: &Run) {
    println!(
        "{} filtered watcher(s): follower CPU {:.2} s; {} task placements; the reference watcher saw {} events, {} under {WATCHED}",
        r.watchers, r.cpu_secs, r.placed, r.all_events, r.expected
    );
    if r.watchers > 0 {
        println!(
            "  delivered {} events in all ({}..{} per watcher, {} expected each); wrongly delivered: {}",
            r.delivered, r.min_seen, r.max_seen, r.expected, r.wrong
        );
    }
}

/// Runs the benchmark: the same run without and with the watchers.
pub async fn watch(watchers: usize, agents: usize, tasks: usize) -> anyhow::Result<()> {
    let base = run(0, agents, tasks).await?;
    print(&base);
    let with = run(watchers, agents, tasks).await?;
    print(&with);
    let extra = with.cpu_secs - base.cpu_secs;
    println!(
        "follower CPU for the watchers: {:.2} s over {} delivered events = {:.1} µs per delivered event (all of the run's CPU: {:.1} µs per event)",
        extra,
        with.delivered,
        extra * 1e6 / with.delivered.max(1) as f64,
        with.cpu_secs * 1e6 / with.delivered.max(1) as f64
    );
    let missed = with.min_seen < with.expected;
    println!(
        "wrongly delivered: {}; every watcher saw all {} events of its node: {}",
        with.wrong,
        with.expected,
        if missed { "NO" } else { "yes" }
    );
    anyhow::ensure!(
        with.wrong == 0,
        "{} events delivered outside the filter",
        with.wrong
    );
    anyhow::ensure!(!missed, "a watcher missed events of its node");
    Ok(())
}
