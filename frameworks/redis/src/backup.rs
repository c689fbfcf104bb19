//! Backups of a cache and their restore, verified by digest.
//!
//! A backup takes each shard from one node (a synced replica when the
//! shard has one, so the primary's clients never wait on it): every key
//! with `SCAN`, its value with `DUMP` (Redis' own RDB serialisation of the
//! value, checksummed) and its remaining time to live with `PTTL`. The
//! records go to `shard-<i>.dump` under the backup's directory, beside a
//! `manifest.json` with each shard's key count, bytes and digest (SHA-256
//! over the records sorted by key), and the whole cache's.
//!
//! A restore writes every record into another cache with `RESTORE` through
//! a cluster-aware client (each key to the shard that owns its slot, so
//! the target may have any number of shards), then reads the target back
//! the same way and compares key count and digest with the manifest.
//!
//! Files are written to a temporary name and renamed, so a backup that
//! failed halfway leaves no manifest, and a manifest always names whole
//! files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use redis::aio::ConnectionLike;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One key as backed up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: Vec<u8>,
    /// Milliseconds left to live; 0: none.
    pub ttl_ms: u64,
    /// `DUMP`'s payload.
    pub payload: Vec<u8>,
}

/// One shard in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardManifest {
    pub shard: u32,
    /// The task it was read from, and that task's role then.
    pub task: String,
    pub role: String,
    pub keys: u64,
    pub bytes: u64,
    pub digest: String,
    /// The file, relative to the backup's directory.
    pub file: String,
}

/// A backup's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub cache: String,
    pub id: String,
    pub created_ms: u64,
    pub shards: Vec<ShardManifest>,
    /// Over every key of the cache.
    pub keys: u64,
    pub digest: String,
}

/// A backup or restore step failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("redis node {addr}: {reason}")]
    Node { addr: String, reason: String },
    #[error("backup file {path}: {reason}")]
    File { path: String, reason: String },
}

type Result<T> = std::result::Result<T, BackupError>;

fn node_err(addr: &str, e: impl std::fmt::Display) -> BackupError {
    // A pipeline's error lists every command's: keep the message readable.
    let mut reason = e.to_string();
    if reason.len() > 300 {
        let cut = (0..=300)
            .rev()
            .find(|i| reason.is_char_boundary(*i))
            .unwrap_or(0);
        reason.truncate(cut);
        reason.push_str("...");
    }
    BackupError::Node {
        addr: addr.to_string(),
        reason,
    }
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> BackupError {
    BackupError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// The digest of `records` (sorted by key first).
pub fn digest(records: &mut [Record]) -> String {
    records.sort_by(|a, b| a.key.cmp(&b.key));
    let mut h = Sha256::new();
    for r in records.iter() {
        h.update((r.key.len() as u64).to_be_bytes());
        h.update(&r.key);
        h.update((r.payload.len() as u64).to_be_bytes());
        h.update(&r.payload);
    }
    format!("{:x}", h.finalize())
}

/// The records as a file: per record the key's length (u32, big-endian),
/// the key, the ttl (u64), the payload's length (u32) and the payload.
pub fn encode(records: &[Record]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        out.extend_from_slice(&(r.key.len() as u32).to_be_bytes());
        out.extend_from_slice(&r.key);
        out.extend_from_slice(&r.ttl_ms.to_be_bytes());
        out.extend_from_slice(&(r.payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&r.payload);
    }
    out
}

/// The inverse of [`encode`]; `None` if the bytes are cut short.
pub fn decode(mut b: &[u8]) -> Option<Vec<Record>> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if b.len() < n {
            return None;
        }
        let (head, rest) = b.split_at(n);
        *b = rest;
        Some(head)
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let klen = u32::from_be_bytes(take(&mut b, 4)?.try_into().ok()?) as usize;
        let key = take(&mut b, klen)?.to_vec();
        let ttl_ms = u64::from_be_bytes(take(&mut b, 8)?.try_into().ok()?);
        let plen = u32::from_be_bytes(take(&mut b, 4)?.try_into().ok()?) as usize;
        let payload = take(&mut b, plen)?.to_vec();
        out.push(Record {
            key,
            ttl_ms,
            payload,
        });
    }
    Some(out)
}

/// Every key of the connection's node, dumped (`SCAN` then `DUMP` and
/// `PTTL` pipelined, a thousand keys at a time). Keys that expire between
/// the scan and the dump are left out.
pub async fn dump_all<C: ConnectionLike + Send>(con: &mut C, addr: &str) -> Result<Vec<Record>> {
    // A replica of a cluster redirects reads to its primary unless the
    // connection says it may read stale data (it is a backup's source).
    redis::cmd("READONLY")
        .query_async::<()>(con)
        .await
        .map_err(|e| node_err(addr, e))?;
    let mut out = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query_async(con)
            .await
            .map_err(|e| node_err(addr, e))?;
        if !keys.is_empty() {
            let mut p = redis::pipe();
            for k in &keys {
                p.cmd("DUMP").arg(k).cmd("PTTL").arg(k);
            }
            let replies: Vec<redis::Value> =
                p.query_async(con).await.map_err(|e| node_err(addr, e))?;
            for (k, pair) in keys.into_iter().zip(replies.chunks(2)) {
                let (redis::Value::BulkString(payload), Some(ttl)) = (&pair[0], pair.get(1)) else {
                    continue;
                };
                let ttl: i64 = redis::from_redis_value(ttl.clone()).unwrap_or(-1);
                if ttl == -2 {
                    continue;
                }
                out.push(Record {
                    key: k,
                    ttl_ms: u64::try_from(ttl).unwrap_or(0),
                    payload: payload.clone(),
                });
            }
        }
        cursor = next;
        if cursor == 0 {
            return Ok(out);
        }
    }
}

/// A connection to one node for a backup (calls bounded by `timeout`).
pub async fn connect(addr: &str, timeout: Duration) -> Result<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://{addr}/")).map_err(|e| node_err(addr, e))?;
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
        .map_err(|e| node_err(addr, e))
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| file_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| file_err(path, e))
}

/// Where cache `cache`'s backup `id` lives under `root`.
pub fn dir_of(root: &Path, cache: &str, id: &str) -> PathBuf {
    root.join(cache).join(id)
}

/// Reads a backup's manifest.
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join("manifest.json");
    let bytes = std::fs::read(&path).map_err(|e| file_err(&path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| file_err(&path, e))
}

/// The manifests of cache `cache`'s backups under `root`, oldest first.
pub fn list(root: &Path, cache: &str) -> Vec<Manifest> {
    let mut out: Vec<Manifest> = std::fs::read_dir(root.join(cache))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| read_manifest(&e.path()).ok())
        .collect();
    out.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
    out
}

/// Every record of a backup, read from its files and checked against the
/// manifest's per-shard digests.
pub fn load(dir: &Path, m: &Manifest) -> Result<Vec<Record>> {
    let mut all = Vec::new();
    for s in &m.shards {
        let path = dir.join(&s.file);
        let bytes = std::fs::read(&path).map_err(|e| file_err(&path, e))?;
        let mut records =
            decode(&bytes).ok_or_else(|| file_err(&path, "cut short or not a backup file"))?;
        let d = digest(&mut records);
        if d != s.digest || records.len() as u64 != s.keys {
            return Err(file_err(
                &path,
                format!(
                    "holds {} keys with digest {d}, the manifest says {} keys with {}",
                    records.len(),
                    s.keys,
                    s.digest
                ),
            ));
        }
        all.extend(records);
    }
    Ok(all)
}

/// Writes `records` into the cluster `con` reaches (`RESTORE`, keeping
/// each key's remaining ttl), a thousand at a time.
pub async fn restore_all<C: ConnectionLike + Send>(
    con: &mut C,
    records: &[Record],
) -> std::result::Result<(), redis::RedisError> {
    for r in records {
        redis::cmd("RESTORE")
            .arg(&r.key)
            .arg(r.ttl_ms)
            .arg(&r.payload)
            .query_async::<()>(con)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(key: &str, payload: &[u8]) -> Record {
        Record {
            key: key.as_bytes().to_vec(),
            ttl_ms: 7,
            payload: payload.to_vec(),
        }
    }

    #[test]
    fn files_round_trip_and_a_cut_file_is_refused() {
        let recs = vec![r("a", b"\x00\x01x"), r("bb", b""), r("", b"y")];
        let bytes = encode(&recs);
        assert_eq!(decode(&bytes), Some(recs));
        assert_eq!(decode(&bytes[..bytes.len() - 1]), None);
        assert_eq!(decode(&[]), Some(vec![]));
    }

    #[test]
    fn the_digest_ignores_order_and_sees_every_byte() {
        let mut one = vec![r("a", b"1"), r("b", b"2")];
        let mut two = vec![r("b", b"2"), r("a", b"1")];
        assert_eq!(digest(&mut one), digest(&mut two));
        let mut changed = vec![r("a", b"1"), r("b", b"3")];
        assert_ne!(digest(&mut one), digest(&mut changed));
        // Key and value boundaries count: "ab"+"" is not "a"+"b".
        let mut x = vec![r("ab", b"")];
        let mut y = vec![r("a", b"b")];
        assert_ne!(digest(&mut x), digest(&mut y));
    }
}
