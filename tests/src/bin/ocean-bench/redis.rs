//! Redis framework benchmark (issue 20): one master hosting the redis
//! framework, four agents, real redis-server tasks.
//!
//! - provisioning: `POST /v1/caches` of 3 shards x 2 replicas to the first
//!   write a cluster-aware client gets acknowledged;
//! - primary crash: a 3x1 cache, a writer on one shard's slots (`SET`
//!   then `WAIT 1 200`), SIGKILL of that shard's primary, time to the first
//!   write sent after the kill that succeeds; every acknowledged write
//!   checked on the new primary. The next trial waits until the cache is
//!   healed (the replacement a synced replica) and targets another shard;
//! - host loss: the same, but the primary's agent is SIGKILLed and every
//!   Redis process on its host frozen (SIGSTOP); a fresh agent joins for the
//!   next trial.

use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use ocean_tests::caches::{
    addrs, cluster_client, create_cache, formed, lost_writes, owner, start, wait_cache, write_load,
};
use ocean_tests::{Api, Cluster};
use serde_json::Value;

use crate::{ms, percentile};

const WAIT: Duration = Duration::from_secs(90);

fn report(what: &str, mut times: Vec<Duration>) {
    times.sort();
    println!(
        "{what}: n={} p50={} p99={} max={}",
        times.len(),
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        ms(times.last().copied().unwrap_or_default()),
    );
}

/// The node of `detail` at `addr`.
fn node_at(detail: &Value, addr: &str) -> Option<Value> {
    detail["status"]["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["addr"] == addr)
        .cloned()
}

async fn pid_of(api: &Api, node: &Value) -> anyhow::Result<i32> {
    let t = api
        .get(&format!(
            "/v1/tasks/{}",
            node["task"].as_str().unwrap_or("")
        ))
        .await?
        .body;
    Ok(t["pid"].as_i64().context("task without a pid")? as i32)
}

/// Whether no host holds two primaries of the cache.
fn primaries_spread(detail: &serde_json::Value) -> bool {
    let mut hosts: Vec<&str> = detail["status"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["role"] == "primary")
        .filter_map(|n| n["host"].as_str())
        .collect();
    let n = hosts.len();
    hosts.sort_unstable();
    hosts.dedup();
    hosts.len() == n
}

/// When (after the loss) a surviving primary first flagged the victim
/// `fail?` and `fail` and first named another node as the slot's owner;
/// when the victim's replica first flagged it `fail` (from then on the
/// replica's own election is scheduled and a `FAILOVER FORCE` no longer
/// brings it forward); when the operator first forced the failover (its
/// failover record).
#[derive(Debug, Default)]
struct Phases {
    pfail: Option<Duration>,
    fail: Option<Duration>,
    promoted: Option<Duration>,
    replica_fail: Option<Duration>,
    forced: Option<Duration>,
}

impl Phases {
    fn show(&self) -> String {
        let f = |d: Option<Duration>| d.map_or("-".to_string(), ms);
        format!(
            "seen by a surviving primary: fail? {}, fail {}, new owner {}; replica saw fail {}; operator FORCE {}",
            f(self.pfail),
            f(self.fail),
            f(self.promoted),
            f(self.replica_fail),
            f(self.forced),
        )
    }
}

/// The flags of `victim`'s line in `addr`'s `CLUSTER NODES`, and whether
/// it still lists slots.
async fn victim_flags(
    con: &mut redis::aio::MultiplexedConnection,
    victim: &str,
) -> Option<(String, bool)> {
    let text = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async::<String>(con)
        .await
        .ok()?;
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.len() >= 8 && f[1].starts_with(&format!("{victim}@")))
            .then(|| (f[2].to_string(), f.len() > 8))
    })
}

/// Polls `observer`'s and `replica`'s `CLUSTER NODES` every 10 ms from
/// `since` until `stop` (the phases of a host loss as the cluster lived
/// them).
async fn watch_phases(
    observer: String,
    replica: Option<String>,
    victim: String,
    since: Instant,
    stop: Instant,
) -> Phases {
    let mut out = Phases::default();
    let Ok(mut con) = ocean_tests::caches::connect(&observer, Duration::from_millis(300)).await
    else {
        return out;
    };
    let mut rep = match replica {
        Some(r) => ocean_tests::caches::connect(&r, Duration::from_millis(300))
            .await
            .ok(),
        None => None,
    };
    while Instant::now() < stop && out.promoted.is_none() {
        if let Some((flags, slots)) = victim_flags(&mut con, &victim).await {
            let at = since.elapsed();
            if flags.contains("fail?") {
                out.pfail.get_or_insert(at);
            } else if flags.contains("fail") {
                out.pfail.get_or_insert(at);
                out.fail.get_or_insert(at);
            }
            if flags.contains("fail") && !slots {
                // Its slots went to the promoted replica.
                out.promoted.get_or_insert(at);
            }
        }
        if let Some(r) = rep.as_mut() {
            if out.replica_fail.is_none() {
                if let Some((flags, _)) = victim_flags(r, &victim).await {
                    if flags.contains("fail") && !flags.contains("fail?") {
                        out.replica_fail.get_or_insert(since.elapsed());
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    out
}

/// Wall-clock milliseconds now (the operator's failover record is in
/// them).
fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// When the operator first forced the failover of `cache`, if it did
/// after `lost_ms` (wall clock): its failover record's `at_ms`.
async fn forced_after(api: &Api, cache: &str, lost_ms: u64) -> Option<Duration> {
    let r = api
        .get(&format!("/v1/frameworks/redis/kv/failovers/{cache}"))
        .await
        .ok()?;
    let at = r.body["value"]["at_ms"].as_u64()?;
    (at >= lost_ms).then(|| Duration::from_millis(at - lost_ms))
}

/// One crash or host-loss trial on the shard serving `tag`; the time to
/// writes and the acknowledged writes lost.
async fn trial(
    c: &Cluster,
    agents: &mut Vec<ocean_tests::AgentProc>,
    names: &mut Vec<String>,
    cache: &str,
    tag: &str,
    host_loss: bool,
) -> anyhow::Result<(Duration, usize, usize)> {
    let api = c.master(1).api();
    let mut detail = wait_cache(&api, cache, WAIT, "healed", formed(3, 1)).await?;
    // A settled cache has its primaries on distinct hosts again (the
    // operator spreads them after failovers): wait for that, bounded, so
    // each trial starts from the steady state and not mid-recovery.
    let spread = wait_cache(&api, cache, Duration::from_secs(20), "spread", |v| {
        formed(3, 1)(v) && primaries_spread(v)
    })
    .await;
    match spread {
        Ok(d) => detail = d,
        Err(_) => println!("(primaries not spread over hosts within 20 s; trial goes on)"),
    }
    let seeds = addrs(&detail);
    let victim_addr = owner(&seeds, &format!("{{{tag}}}:0"))
        .await
        .context("no owner")?;
    let victim = node_at(&detail, &victim_addr).context("owner not in the status")?;
    let mut pids = vec![pid_of(&api, &victim).await?];
    let host = victim["host"].as_str().unwrap_or("").to_string();
    if host_loss {
        for n in detail["status"]["nodes"].as_array().into_iter().flatten() {
            if n["host"] == host.as_str() && n["addr"] != victim_addr.as_str() {
                pids.push(pid_of(&api, n).await?);
            }
        }
    }
    // A primary on another host watches the phases of a host loss.
    let observer = detail["status"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["host"] != host.as_str() && n["role"] == "primary")
        .and_then(|n| n["addr"].as_str())
        .map(str::to_string);
    // The victim's replica (it takes over).
    let replica = detail["status"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["primary_id"] == victim["node_id"] && n["role"] == "replica")
        .and_then(|n| n["addr"].as_str())
        .map(str::to_string);
    let (tx, rx) = tokio::sync::watch::channel(None);
    let stop = Instant::now() + Duration::from_millis(if host_loss { 7_000 } else { 3_000 });
    let writer = tokio::spawn(write_load(seeds.clone(), tag.to_string(), rx, stop));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut phases = None;
    let lost_ms = wall_ms();
    if host_loss {
        if let Some(o) = observer {
            phases = Some(tokio::spawn(watch_phases(
                o,
                replica,
                victim_addr.clone(),
                Instant::now(),
                stop,
            )));
        }
        let idx = names
            .iter()
            .position(|n| format!("host-{n}") == host)
            .context("host not an agent")?;
        agents[idx].kill();
        for p in &pids {
            kill(Pid::from_raw(*p), Signal::SIGSTOP)?;
        }
    } else {
        kill(Pid::from_raw(pids[0]), Signal::SIGKILL)?;
    }
    let _ = tx.send(Some(Instant::now()));
    let w = writer.await?;
    if let Some(p) = phases {
        let mut p = p.await?;
        p.forced = forced_after(&api, cache, lost_ms).await;
        println!("  {}", p.show());
    }
    let resumed = w.resumed_after.context("writes never resumed")?;
    let lost = lost_writes(&seeds, tag, &w.acked).await?.len();
    if host_loss {
        for p in &pids {
            let _ = kill(Pid::from_raw(*p), Signal::SIGKILL);
        }
        // A new host takes the lost one's place.
        let name = format!("n{}", names.len());
        let mut a = c.new_agent(&name, &["--hostname", &format!("host-{name}")]);
        a.start()?;
        agents.push(a);
        names.push(name);
    }
    Ok((resumed, w.acked.len(), lost))
}

/// Runs the benchmark: `kills` primary crashes and `host_losses` host losses.
pub async fn redis(kills: usize, host_losses: usize) -> anyhow::Result<()> {
    let base = ["a", "b", "c", "d"];
    let (c, mut agents) = start(&base).await?;
    let mut names: Vec<String> = base.iter().map(|s| s.to_string()).collect();
    let api = c.master(1).api();

    // Provisioning 3x2: request to an acknowledged write.
    let asked = Instant::now();
    create_cache(&api, "prov", 3, 2).await?;
    loop {
        anyhow::ensure!(asked.elapsed() < WAIT, "3x2 never took a write");
        let d = ocean_tests::caches::cache(&api, "prov").await?;
        let seeds = addrs(&d);
        if d["status"]["slots_served"] == 16384 {
            if let Ok(mut con) = cluster_client(&seeds).await {
                let ok = redis::cmd("SET")
                    .arg("prov-probe")
                    .arg(1)
                    .query_async::<()>(&mut con)
                    .await;
                if ok.is_ok() {
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "provisioning 3x2: request -> writes OK in {}",
        ms(asked.elapsed())
    );
    let full = wait_cache(&api, "prov", WAIT, "formed", formed(3, 2)).await?;
    println!(
        "provisioning 3x2: request -> all 9 instances in place in {} ({})",
        ms(asked.elapsed()),
        full["state"]
    );
    api.delete("/v1/caches/prov").await?;

    create_cache(&api, "bench", 3, 1).await?;
    // Tags on each shard in turn (slot ranges of the even split).
    let tags: Vec<String> = (0..3)
        .map(|shard| {
            (0..)
                .map(|n| format!("s{shard}-{n}"))
                .find(|t| {
                    let s = u32::from(ocean_tests::caches::slot(t));
                    s * 3 / 16_384 == shard
                })
                .unwrap_or_default()
        })
        .collect();
    let mut times = Vec::new();
    let (mut acked, mut lost) = (0, 0);
    for i in 0..kills {
        let (t, a, l) = trial(&c, &mut agents, &mut names, "bench", &tags[i % 3], false).await?;
        println!(
            "crash {i}: writes OK after {} ({a} acknowledged, {l} lost)",
            ms(t)
        );
        times.push(t);
        acked += a;
        lost += l;
    }
    report("primary SIGKILL -> writes OK", times);
    println!("acknowledged writes: {acked}, lost: {lost}");

    let mut times = Vec::new();
    let (mut acked, mut lost) = (0, 0);
    for i in 0..host_losses {
        let (t, a, l) = trial(&c, &mut agents, &mut names, "bench", &tags[i % 3], true).await?;
        println!(
            "host loss {i}: writes OK after {} ({a} acknowledged, {l} lost)",
            ms(t)
        );
        times.push(t);
        acked += a;
        lost += l;
    }
    report("host loss -> writes OK", times);
    println!("acknowledged writes: {acked}, lost: {lost}");
    Ok(())
}
