//! Backups of a cache as RDB snapshots, and what verifies them.
//!
//! A backup takes each shard from one node (a synced replica when the
//! shard has one, so the primary's clients never wait on it): its RDB
//! snapshot streamed over the replication protocol ([`crate::rdb`]) into
//! `shard-<i>.rdb` under the backup's directory. Each file is then loaded
//! into a throwaway `redis-server` ([`crate::rdb_check`]), which proves it
//! loads and gives the shard's key count and content digest. The
//! `manifest.json` beside the files holds, per shard, the file's SHA-256
//! and size, its slot ranges, its key count and its content digest, and
//! the source cache's spec.
//!
//! The content digest is SHA-256 over every key's name and `DUMP` payload
//! (Redis' own serialisation of the value), sorted by key: independent of
//! the order keys are read in, and any changed byte of any value changes
//! it. Both sides compute it the same way from a server that loaded the
//! same file with the same `redis-server`, so the payloads' encodings
//! agree.
//!
//! A restore ([`crate::backup_api`]) starts a new cache whose shards'
//! first nodes load these files as their RDB at start, and then compares
//! each shard's keys and digest with the manifest.
//!
//! Files are written to a temporary name and renamed, so a backup that
//! failed halfway leaves no manifest, and a manifest always names whole
//! files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use redis::aio::ConnectionLike;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::spec::CacheSpec;

/// One key as read for a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: Vec<u8>,
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
    /// Keys in the snapshot (once loaded: keys already expired are not
    /// loaded).
    pub keys: u64,
    /// The RDB file's size.
    pub bytes: u64,
    /// The content digest (see the module's documentation).
    pub digest: String,
    /// The RDB file, relative to the backup's directory.
    pub file: String,
    /// The RDB file's SHA-256: a restore refuses a file that differs.
    pub sha256: String,
    /// The slot ranges the shard served, inclusive: its keys' slots lie
    /// in them, and a restored shard serves the same.
    pub slots: Vec<(u16, u16)>,
}

/// A backup's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub cache: String,
    pub id: String,
    pub created_ms: u64,
    /// `rdb`: one RDB snapshot per shard.
    pub format: String,
    /// The cache's spec when it was backed up (a restore's default shape).
    pub spec: CacheSpec,
    pub shards: Vec<ShardManifest>,
    /// Over every key of the cache.
    pub keys: u64,
    /// SHA-256 over the shards' digests in shard order.
    pub digest: String,
}

/// The whole cache's digest from its shards' (in shard order).
pub fn cache_digest<'a>(shard_digests: impl IntoIterator<Item = &'a str>) -> String {
    let mut h = Sha256::new();
    for d in shard_digests {
        h.update(d.as_bytes());
        h.update(b"\n");
    }
    format!("{:x}", h.finalize())
}

/// A backup or restore step failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("redis node {addr}: {reason}")]
    Node { addr: String, reason: String },
    #[error("backup file {path}: {reason}")]
    File { path: String, reason: String },
    /// The throwaway server that checks a snapshot failed.
    #[error("checking {path} in a throwaway redis-server: {reason}")]
    Check { path: String, reason: String },
}

pub type Result<T> = std::result::Result<T, BackupError>;

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

/// The digest of `records` (sorted by key first): over each key's and
/// payload's length and bytes, so boundaries count.
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

/// Every key of the connection's node, dumped (`SCAN` then `DUMP`
/// pipelined, a thousand keys at a time). Keys that expire between the
/// scan and the dump are left out. `replica`: the node is a cluster
/// replica, which redirects reads to its primary unless told `READONLY`.
pub async fn dump_all<C: ConnectionLike + Send>(
    con: &mut C,
    addr: &str,
    replica: bool,
) -> Result<Vec<Record>> {
    if replica {
        redis::cmd("READONLY")
            .query_async::<()>(con)
            .await
            .map_err(|e| node_err(addr, e))?;
    }
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
                p.cmd("DUMP").arg(k);
            }
            let replies: Vec<redis::Value> =
                p.query_async(con).await.map_err(|e| node_err(addr, e))?;
            for (k, reply) in keys.into_iter().zip(replies) {
                // Nil: expired or deleted since the scan.
                if let redis::Value::BulkString(payload) = reply {
                    out.push(Record { key: k, payload });
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn r(key: &str, payload: &[u8]) -> Record {
        Record {
            key: key.as_bytes().to_vec(),
            payload: payload.to_vec(),
        }
    }

    #[test]
    fn the_digest_ignores_order_and_sees_every_byte() {
        let mut one = vec![r("a", b"1"), r("b", b"2")];
        let mut two = vec![r("b", b"2"), r("a", b"1")];
        assert_eq!(digest(&mut one), digest(&mut two));
        let mut changed = vec![r("a", b"1"), r("b", b"3")];
        assert_ne!(digest(&mut one), digest(&mut changed));
        let mut fewer = vec![r("a", b"1")];
        assert_ne!(digest(&mut one), digest(&mut fewer));
        // Key and value boundaries count: "ab"+"" is not "a"+"b".
        let mut x = vec![r("ab", b"")];
        let mut y = vec![r("a", b"b")];
        assert_ne!(digest(&mut x), digest(&mut y));
    }

    #[test]
    fn the_cache_digest_follows_its_shards_in_order() {
        assert_eq!(cache_digest(["a", "b"]), cache_digest(["a", "b"]));
        assert_ne!(cache_digest(["a", "b"]), cache_digest(["b", "a"]));
        assert_ne!(cache_digest(["ab"]), cache_digest(["a", "b"]));
    }
}
