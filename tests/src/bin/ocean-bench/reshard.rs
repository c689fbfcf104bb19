//! Resharding throughput (issue 20, scale-out), side by side:
//!
//! - Ocean: a cache of 3 shards filled with `--mb` MiB of equal-sized
//!   values is scaled to 4 (`POST /v1/caches/{id}/scale`); the time from
//!   the first slot moved (the status' progress) to the resharding's end,
//!   and the bytes the new shard then holds (`MEMORY USAGE` of its keys).
//! - `redis-cli --cluster rebalance --cluster-use-empty-masters` on a
//!   plain Redis Cluster of the same shape and data (3 primaries, then an
//!   empty fourth added with `--cluster add-node`), run by hand on this
//!   machine's `redis-server` processes; the same bytes measure.
//!
//! Equal-sized values make slot counts and bytes the same balance, so
//! both move about a quarter of the data.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ocean_tests::caches::{
    addrs, cache, cluster_client, connect, formed, held_bytes, nodes_with, start,
};
use ocean_tests::cluster::free_addr;
use serde_json::{json, Value};

use crate::ms;

const WAIT: Duration = Duration::from_secs(600);
/// Bytes per value.
const VALUE: usize = 10_000;

/// Writes `mb` MiB of `VALUE`-byte values through a cluster client.
async fn fill(seeds: &[String], mb: usize) -> anyhow::Result<usize> {
    let mut con = cluster_client(seeds).await?;
    let keys = mb * 1024 * 1024 / VALUE;
    let v = "v".repeat(VALUE);
    for i in 0..keys {
        redis::cmd("SET")
            .arg(format!("k:{i}"))
            .arg(&v)
            .query_async::<()>(&mut con)
            .await?;
    }
    Ok(keys)
}

/// A client writing small keys through a cluster-aware client until
/// stopped, as an application would during the move: writes acknowledged,
/// and every error it saw.
struct Writer {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(u64, Vec<String>)>,
}

impl Writer {
    async fn start(seeds: Vec<String>) -> anyhow::Result<Writer> {
        let mut con = cluster_client(&seeds).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let (mut acked, mut errors) = (0u64, Vec::new());
            let mut i = 0u64;
            while !flag.load(Ordering::Relaxed) {
                i += 1;
                let r = redis::cmd("SET")
                    .arg(format!("w:{i}"))
                    .arg(i)
                    .query_async::<()>(&mut con)
                    .await;
                match r {
                    Ok(()) => acked += 1,
                    Err(e) => errors.push(e.to_string()),
                }
            }
            (acked, errors)
        });
        Ok(Writer { stop, task })
    }

    async fn stop(self, who: &str) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        let (acked, errors) = self.task.await?;
        println!(
            "{who}: client during the move: {acked} writes acknowledged, {} errors {:?}",
            errors.len(),
            errors.iter().take(3).collect::<Vec<_>>()
        );
        Ok(())
    }
}

fn rate(bytes: u64, took: Duration) -> String {
    format!(
        "{:.1} MiB in {} = {:.1} MiB/s",
        bytes as f64 / 1_048_576.0,
        ms(took),
        bytes as f64 / 1_048_576.0 / took.as_secs_f64().max(1e-9)
    )
}

async fn ocean(mb: usize, replicas: u32) -> anyhow::Result<()> {
    let (c, _agents) = start(&["a", "b", "c"]).await?;
    let api = c.master(1).api();
    let memory_mb = (mb as u64 + 64).max(64);
    let r = api
        .post(
            "/v1/caches",
            &json!({"name": "bench", "product_line": "qa", "shards": 3,
                    "replicas": replicas, "memory_mb": memory_mb}),
        )
        .await?;
    anyhow::ensure!(r.status == 201, "create: {} {}", r.status, r.body);
    let formed3 = |v: &Value| formed(3, replicas as usize)(v);
    let d = ocean_tests::caches::wait_cache(&api, "bench", WAIT, "formed", formed3).await?;
    let keys = fill(&addrs(&d), mb).await?;
    println!("ocean: 3 shards x {replicas} replicas, {keys} keys of {VALUE} bytes");

    let writer = Writer::start(addrs(&d)).await?;
    let asked = Instant::now();
    let r = api
        .post("/v1/caches/bench/scale", &json!({"shards": 4}))
        .await?;
    anyhow::ensure!(r.status == 200, "scale: {} {}", r.status, r.body);
    let mut first_move = None;
    let done = loop {
        anyhow::ensure!(asked.elapsed() < WAIT, "resharding not done in {WAIT:?}");
        let d = cache(&api, "bench").await?;
        let moved = d["status"]["resharding"]["slots_moved"]
            .as_u64()
            .unwrap_or(0);
        if moved > 0 && first_move.is_none() {
            first_move = Some(Instant::now());
        }
        if d["resharding"].is_null() {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let end = Instant::now();
    writer.stop("ocean").await?;
    let formed4 = |v: &Value| formed(4, replicas as usize)(v);
    let d = ocean_tests::caches::wait_cache(&api, "bench", WAIT, "formed", formed4).await?;
    let new = nodes_with(&d, "primary")
        .into_iter()
        .find(|n| n["shard"] == 3)
        .context("shard 3 has no primary")?;
    let bytes = held_bytes(new["addr"].as_str().unwrap_or_default(), None).await?;
    let first = first_move.unwrap_or(asked);
    println!(
        "ocean: request -> first slot moved {}, moving {}",
        ms(first - asked),
        rate(bytes, end - first)
    );
    println!(
        "ocean: request -> resharding done {} ({} slots on the new shard)",
        ms(end - asked),
        new["slots"]
    );
    drop(done);
    api.delete("/v1/caches/bench").await?;
    Ok(())
}

/// A `redis-server` cluster node on a free loopback port, in `dir`.
fn node(dir: &std::path::Path, mb: usize) -> anyhow::Result<(Child, String)> {
    let port = free_addr().port();
    let bus = free_addr().port();
    let d = dir.join(port.to_string());
    std::fs::create_dir_all(&d)?;
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--cluster-enabled", "yes"])
        .args(["--cluster-port", &bus.to_string()])
        .args([
            "--cluster-config-file",
            "nodes.conf",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args([
            "--maxmemory",
            &format!("{}mb", mb + 64),
            "--protected-mode",
            "no",
        ])
        // As Ocean runs its instances (crate ocean-redis, jobs.rs).
        .args([
            "--cluster-node-timeout",
            "1000",
            "--cluster-require-full-coverage",
            "no",
        ])
        .arg("--dir")
        .arg(&d)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("redis-server")?;
    Ok((child, format!("127.0.0.1:{port}")))
}

/// Waits until every node of `addrs` says `cluster_state:ok` (a master
/// that just joined waits out a rejoin delay first, and refuses keys
/// until then).
async fn cluster_ok(addrs: &[&String]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    for a in addrs {
        loop {
            let mut con = connect(a, Duration::from_secs(2)).await?;
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query_async(&mut con)
                .await?;
            if info.contains("cluster_state:ok") {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "{a}: cluster state not ok");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

fn cli(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("redis-cli").args(args).output()?;
    anyhow::ensure!(
        out.status.success(),
        "redis-cli {args:?}: {}: {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

async fn peer(mb: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut nodes = Vec::new();
    for _ in 0..4 {
        nodes.push(node(dir.path(), mb)?);
    }
    let result = async {
        for (_, a) in &nodes {
            let deadline = Instant::now() + Duration::from_secs(10);
            while connect(a, Duration::from_millis(200)).await.is_err() {
                anyhow::ensure!(Instant::now() < deadline, "{a} never answered");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let (a, b, c, d) = (&nodes[0].1, &nodes[1].1, &nodes[2].1, &nodes[3].1);
        cli(&[
            "--cluster",
            "create",
            a,
            b,
            c,
            "--cluster-replicas",
            "0",
            "--cluster-yes",
        ])?;
        cluster_ok(&[a, b, c]).await?;
        let keys = fill(&[a.clone(), b.clone(), c.clone()], mb).await?;
        println!("redis-cli: 3 primaries, {keys} keys of {VALUE} bytes");
        cli(&["--cluster", "add-node", d, a])?;
        cluster_ok(&[a, b, c, d]).await?;
        let writer = Writer::start(vec![a.clone(), b.clone(), c.clone()]).await?;
        let t = Instant::now();
        let moved = tokio::task::spawn_blocking({
            let a = a.clone();
            move || cli(&["--cluster", "rebalance", &a, "--cluster-use-empty-masters"])
        })
        .await?;
        let took = t.elapsed();
        writer.stop("redis-cli").await?;
        moved?;
        let bytes = held_bytes(d, None).await?;
        println!("redis-cli --cluster rebalance: {}", rate(bytes, took));
        Ok(())
    }
    .await;
    for (mut child, _) in nodes {
        let _ = child.kill();
        let _ = child.wait();
    }
    result
}

/// `ocean-bench reshard`.
pub async fn reshard(mb: usize, replicas: u32, rounds: usize) -> anyhow::Result<()> {
    for round in 0..rounds {
        println!("round {round}");
        ocean(mb, replicas).await?;
        peer(mb).await?;
    }
    Ok(())
}
