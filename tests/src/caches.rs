//! Helpers for the redis framework's tests and benchmark: caches through
//! the REST API, Redis' key slots, and direct or cluster-aware clients.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::http::Api;

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
