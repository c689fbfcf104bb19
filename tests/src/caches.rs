//! Helpers for the redis framework's tests and benchmark: caches through
//! the REST API, Redis' key slots, and direct or cluster-aware clients.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::http::Api;
use crate::tasks::wait_connected;
use crate::{AgentProc, Cluster};

/// Redis Cluster's CRC16 (XMODEM), as in the cluster spec.
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for b in bytes {
        crc ^= u16::from(*b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The slot of `key` (its `{hash tag}` if it has a non-empty one).
pub fn slot(key: &str) -> u16 {
    let k = key.as_bytes();
    let hashed = match key.find('{') {
        Some(open) => match key[open + 1..].find('}') {
            Some(len) if len > 0 => &k[open + 1..open + 1 + len],
            _ => k,
        },
        None => k,
    };
    crc16(hashed) % 16_384
}

/// One hash tag per slot: `tags[s]` hashes to slot `s`.
pub fn tag_per_slot() -> Vec<String> {
    let mut tags: Vec<Option<String>> = vec![None; 16_384];
    let mut left = 16_384;
    let mut n = 0u64;
    while left > 0 {
        let t = format!("t{n}");
        let s = usize::from(crc16(t.as_bytes()) % 16_384);
        if tags[s].is_none() {
            tags[s] = Some(t);
            left -= 1;
        }
        n += 1;
    }
    tags.into_iter().flatten().collect()
}

/// Creates a cache; fails unless the API answers 201.
pub async fn create_cache(api: &Api, name: &str, shards: u32, replicas: u32) -> anyhow::Result<()> {
    let r = api
        .post(
            "/v1/caches",
            &json!({"name": name, "product_line": "qa", "shards": shards,
                    "replicas": replicas, "memory_mb": 32}),
        )
        .await?;
    if r.status != 201 {
        bail!("create cache {name}: {} {}", r.status, r.body);
    }
    Ok(())
}

/// `GET /v1/caches/{name}`.
pub async fn cache(api: &Api, name: &str) -> anyhow::Result<Value> {
    Ok(api.get(&format!("/v1/caches/{name}")).await?.body)
}

/// Waits until `pred` holds of the cache's detail; returns it.
pub async fn wait_cache(
    api: &Api,
    name: &str,
    within: Duration,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + within;
    loop {
        let v = cache(api, name).await.unwrap_or(Value::Null);
        if pred(&v) {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("cache {name} not {what} within {within:?}: {v:#}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A cache's nodes (from its status) with `role`.
pub fn nodes_with(detail: &Value, role: &str) -> Vec<Value> {
    detail["status"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["role"] == role)
        .cloned()
        .collect()
}

/// A connection to one node, every call bounded by `timeout` (via the
/// client's response timeout).
pub async fn connect(
    addr: &str,
    timeout: Duration,
) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://{addr}/"))?;
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
        .with_context(|| format!("connect to {addr}"))
}

/// A cluster-aware client seeded with `addrs`.
pub async fn cluster_client(
    addrs: &[String],
) -> anyhow::Result<redis::cluster_async::ClusterConnection> {
    let urls: Vec<String> = addrs.iter().map(|a| format!("redis://{a}/")).collect();
    let c = redis::cluster::ClusterClientBuilder::new(urls)
        .connection_timeout(Duration::from_secs(1))
        .response_timeout(Duration::from_secs(2))
        .build()?;
    Ok(c.get_async_connection().await?)
}

/// The address of the primary serving `key`'s slot, asked of every one
/// of `addrs` at once: the first that answers naming a primary not
/// flagged failing wins. At once, not in turn: after a host loss some
/// seeds hang until the timeout, and asking them one after the other
/// would add 300 ms per hung seed to every rediscovery (cluster clients
/// refresh their slot map from several nodes too).
pub async fn owner(addrs: &[String], key: &str) -> Option<String> {
    use futures::stream::{FuturesUnordered, StreamExt};
    let s = slot(key);
    let mut asks: FuturesUnordered<_> = addrs.iter().map(|a| owner_per(a, s)).collect();
    while let Some(answer) = asks.next().await {
        if answer.is_some() {
            return answer;
        }
    }
    None
}

/// [`owner`], but done `grace` after the first seed that names no owner:
/// healthy seeds answer together, so a writer polling for the owner after
/// a host loss asks again every `grace` or so instead of waiting out a
/// hung seed's 300 ms on every ask. The writer's policy (a client's),
/// not Ocean's.
pub async fn owner_soon(addrs: &[String], key: &str, grace: Duration) -> Option<String> {
    use futures::stream::{FuturesUnordered, StreamExt};
    let s = slot(key);
    let mut asks: FuturesUnordered<_> = addrs.iter().map(|a| owner_per(a, s)).collect();
    let mut until: Option<tokio::time::Instant> = None;
    loop {
        let next = match until {
            Some(t) => tokio::time::timeout_at(t, asks.next()).await.ok()?,
            None => asks.next().await,
        };
        match next? {
            Some(a) => return Some(a),
            None => {
                until.get_or_insert_with(|| tokio::time::Instant::now() + grace);
            }
        }
    }
}

/// What node `a` says serves slot `s` (a primary not flagged failing).
async fn owner_per(a: &str, s: u16) -> Option<String> {
    let mut c = connect(a, Duration::from_millis(300)).await.ok()?;
    let text = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async::<String>(&mut c)
        .await
        .ok()?;
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 9 || !f[2].contains("master") || f[2].contains("fail") {
            continue;
        }
        let serves = f[8..].iter().any(|r| match r.split_once('-') {
            Some((lo, hi)) => {
                lo.parse::<u16>().is_ok_and(|lo| lo <= s)
                    && hi.parse::<u16>().is_ok_and(|hi| s <= hi)
            }
            None => r.parse::<u16>() == Ok(s),
        });
        if serves {
            return Some(f[1].split('@').next().unwrap_or("").to_string());
        }
    }
    None
}

/// What a writer saw: writes acknowledged by a replica (`WAIT 1`), and
/// when writes succeeded again after `killed_at`.
#[derive(Debug, Default)]
pub struct Written {
    /// Writes a replica acknowledged.
    pub acked: Vec<u64>,
    /// From the kill to the first write that succeeded after it.
    pub resumed_after: Option<Duration>,
}

/// How long [`write_load`]'s writer waits for more seeds once one named
/// no owner (see [`owner_soon`]).
pub const REDISCOVER_GRACE: Duration = Duration::from_millis(50);

/// Writes `{tag}:i` = i, each followed by `WAIT 1 200`, until `stop`;
/// after an error it finds the slot's owner again.
pub async fn write_load(
    seeds: Vec<String>,
    tag: String,
    killed_at: tokio::sync::watch::Receiver<Option<Instant>>,
    stop: Instant,
) -> Written {
    let mut out = Written::default();
    let key0 = format!("{{{tag}}}:0");
    let mut con = None;
    let mut i = 0u64;
    while Instant::now() < stop {
        if con.is_none() {
            if let Some(a) = owner_soon(&seeds, &key0, REDISCOVER_GRACE).await {
                con = connect(&a, Duration::from_millis(300)).await.ok();
            }
            if con.is_none() {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        }
        let Some(c) = con.as_mut() else { continue };
        i += 1;
        let issued = Instant::now();
        let set = redis::cmd("SET")
            .arg(format!("{{{tag}}}:{i}"))
            .arg(i)
            .query_async::<()>(c)
            .await;
        if set.is_err() {
            con = None;
            continue;
        }
        // Only a write sent after the kill counts as resumed (a reply
        // already on its way proves nothing).
        let killed = *killed_at.borrow();
        if let (Some(k), None) = (killed, out.resumed_after) {
            if issued > k {
                out.resumed_after = Some(k.elapsed());
            }
        }
        match redis::cmd("WAIT")
            .arg(1)
            .arg(200)
            .query_async::<u64>(c)
            .await
        {
            Ok(n) if n >= 1 => out.acked.push(i),
            Ok(_) => {}
            Err(_) => con = None,
        }
    }
    out
}

/// A master hosting the redis framework and agents `host-<name>`.
pub async fn start(agents: &[&str]) -> anyhow::Result<(Cluster, Vec<AgentProc>)> {
    let c = Cluster::start(1, &["--frameworks", "redis"])?;
    c.wait_leader(&[1], Duration::from_secs(15)).await?;
    let mut out = Vec::new();
    for name in agents {
        let mut a = c.new_agent(name, &["--hostname", &format!("host-{name}")]);
        a.start()?;
        out.push(a);
    }
    wait_connected(&c.master(1).api(), agents.len(), Duration::from_secs(20)).await?;
    Ok((c, out))
}

/// Every node's address in a cache's detail.
pub fn addrs(detail: &Value) -> Vec<String> {
    detail["status"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["addr"].as_str().map(String::from))
        .collect()
}

/// Whether a cache's detail shows it formed: ok, `shards` primaries and
/// `shards x replicas` replicas.
pub fn formed(shards: usize, replicas: usize) -> impl Fn(&Value) -> bool {
    move |v: &Value| {
        v["state"] == "ok"
            && nodes_with(v, "primary").len() == shards
            && nodes_with(v, "replica").len() == shards * replicas
    }
}

/// The acknowledged writes of [`write_load`] missing from `tag`'s
/// slot owner now, asked of any of `seeds`. The slot may move while it
/// reads (the operator spreads primaries over hosts after failovers):
/// a MOVED reply sends it to the new owner, from the start.
pub async fn lost_writes(seeds: &[String], tag: &str, acked: &[u64]) -> anyhow::Result<Vec<u64>> {
    let mut tries = 0;
    'again: loop {
        tries += 1;
        let owner = owner(seeds, &format!("{{{tag}}}:0"))
            .await
            .context("no node serves the slot")?;
        let mut con = connect(&owner, Duration::from_secs(2)).await?;
        let mut lost = Vec::new();
        for i in acked {
            let v: Result<Option<u64>, redis::RedisError> = redis::cmd("GET")
                .arg(format!("{{{tag}}}:{i}"))
                .query_async(&mut con)
                .await;
            let v = match v {
                Err(e) if e.redirect_node().is_some() && tries < 5 => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue 'again;
                }
                v => v?,
            };
            if v != Some(*i) {
                lost.push(*i);
            }
        }
        return Ok(lost);
    }
}

/// redis-server must be there; in CI its absence fails the test.
pub fn have_redis() -> bool {
    let ok = std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok && std::env::var_os("CI").is_some() {
        panic!("redis-server is missing (scripts/test.sh installs redis-server)");
    }
    ok
}

/// Bytes (`MEMORY USAGE`, summed) of the keys the node at `addr` holds,
/// but for those starting with `skip` (when given).
pub async fn held_bytes(addr: &str, skip: Option<&str>) -> anyhow::Result<u64> {
    let mut con = connect(addr, Duration::from_secs(10)).await?;
    let mut cursor = 0u64;
    let mut bytes = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut con)
            .await?;
        // One round trip per page, not per key: 16,384 sequential round
        // trips took most of a loaded CI machine's time budget.
        let mut pipe = redis::pipe();
        for k in keys
            .iter()
            .filter(|k| skip.is_none_or(|p| !k.starts_with(p)))
        {
            pipe.cmd("MEMORY").arg("USAGE").arg(k);
        }
        if !pipe.is_empty() {
            let sizes: Vec<Option<u64>> = pipe.query_async(&mut con).await?;
            bytes += sizes.into_iter().flatten().sum::<u64>();
        }
        if next == 0 {
            return Ok(bytes);
        }
        cursor = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_the_cluster_spec() {
        // From the Redis Cluster specification's examples.
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
        assert_eq!(slot("foo{}{bar}"), crc16(b"foo{}{bar}") % 16_384);
    }
}
