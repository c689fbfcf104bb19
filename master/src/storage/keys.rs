//! The key layout of the one RocksDB instance (see `storage/mod.rs`).

use crate::error::{corrupt, Result};

pub(super) const HARD_STATE: &[u8] = b"r:hs";
pub(super) const CONF_STATE: &[u8] = b"r:cs";
pub(super) const TRUNCATED: &[u8] = b"r:trunc";
pub(super) const LOG_PREFIX: &[u8] = b"r:log:";
pub(super) const LOG_END: &[u8] = b"r:log;";
pub(super) const APPLIED: &[u8] = b"s:applied";
pub(super) const JOB_PREFIX: &[u8] = b"s:job:";
pub(super) const MEMBER_PREFIX: &[u8] = b"s:member:";
pub(super) const AGENT_PREFIX: &[u8] = b"s:agent:";
pub(super) const TASK_PREFIX: &[u8] = b"s:task:";
pub(super) const STATE_START: &[u8] = b"s:";
pub(super) const STATE_END: &[u8] = b"s;";

/// The index and term every bootstrapped master starts its log at. Starting
/// above zero means a master that joins later can only catch up through a
/// snapshot, so it learns the initial membership from it (as TiKV does).
pub const INIT_INDEX: u64 = 5;
pub(super) const INIT_TERM: u64 = 5;

pub(super) fn log_key(index: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(LOG_PREFIX.len() + 8);
    k.extend_from_slice(LOG_PREFIX);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

pub(super) fn two_u64(a: u64, b: u64) -> Vec<u8> {
    let mut v = a.to_be_bytes().to_vec();
    v.extend_from_slice(&b.to_be_bytes());
    v
}

pub(super) fn read_two_u64(bytes: &[u8], what: &'static str) -> Result<(u64, u64)> {
    if bytes.len() != 16 {
        return Err(corrupt(
            what,
            format!("expected 16 bytes, got {}", bytes.len()),
        ));
    }
    let a = u64::from_be_bytes(bytes[..8].try_into().map_err(|e| corrupt(what, e))?);
    let b = u64::from_be_bytes(bytes[8..].try_into().map_err(|e| corrupt(what, e))?);
    Ok((a, b))
}

pub(super) fn job_key(id: &str) -> Vec<u8> {
    let mut k = JOB_PREFIX.to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}

pub(super) fn member_key(id: u64) -> Vec<u8> {
    let mut k = MEMBER_PREFIX.to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

pub(super) fn agent_key(id: &str) -> Vec<u8> {
    let mut k = AGENT_PREFIX.to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}

pub(super) fn task_key(id: &str) -> Vec<u8> {
    let mut k = TASK_PREFIX.to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}
