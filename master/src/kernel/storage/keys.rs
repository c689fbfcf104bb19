//! The key layout of the one RocksDB instance (see `storage/mod.rs`).

use ocean_proto::internal::Task;
use prost::Message as _;

use crate::error::{corrupt, Result};
use crate::kernel::state::job_of;

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
/// Frameworks' keys: `s:kv:<namespace>/<key>` (namespaces hold no `/`).
pub(super) const KV_PREFIX: &[u8] = b"s:kv:";
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

pub(super) fn kv_key(namespace: &str, key: &str) -> Vec<u8> {
    let mut k = KV_PREFIX.to_vec();
    k.extend_from_slice(crate::kernel::state::kv::kv_map_key(namespace, key).as_bytes());
    k
}

pub(super) fn task_key(id: &str) -> Vec<u8> {
    let mut k = TASK_PREFIX.to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}

/// A task's stored value: its record without the id, which the key
/// holds, and without the job id when the task id names it (`<job
/// id>.<suffix>`, as every placed task's does). Each task is written on
/// placement and again on every status change, by every master, and the
/// two ids were about half of each write.
pub(super) fn task_value(t: &Task) -> Vec<u8> {
    let full = t.encode_to_vec();
    let derivable = job_of(&t.id) == Some(t.job_id.as_str());
    // prost writes fields in field-number order: `id` (1) and `job_id`
    // (2) come first, each as a tag byte, a length and the bytes.
    let mut rest = &full[..];
    for (tag, drop) in [(ID_TAG, true), (JOB_ID_TAG, derivable)] {
        if !drop || rest.first() != Some(&tag) {
            continue;
        }
        let mut after_tag = &rest[1..];
        match prost::encoding::decode_varint(&mut after_tag) {
            Ok(len) if (len as usize) <= after_tag.len() => {
                rest = &after_tag[len as usize..];
            }
            _ => return full,
        }
    }
    // The leading fields are dropped in place, without a second buffer.
    let skip = full.len() - rest.len();
    let mut value = full;
    value.drain(..skip);
    value
}

/// The task stored under `id` with `value` (see [`task_value`]; records
/// stored whole are read as they are).
pub(super) fn task_from(id: &[u8], value: &[u8]) -> Result<Task> {
    let mut t = Task::decode(value).map_err(|e| corrupt("task", e))?;
    if t.id.is_empty() {
        t.id = String::from_utf8(id.to_vec()).map_err(|e| corrupt("task key", e))?;
    }
    if t.job_id.is_empty() {
        t.job_id = job_of(&t.id).unwrap_or_default().to_string();
    }
    Ok(t)
}

/// `Task.id` and `Task.job_id`: field numbers 1 and 2, length-delimited.
const ID_TAG: u8 = (1 << 3) | 2;
const JOB_ID_TAG: u8 = (2 << 3) | 2;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_task_drops_the_ids_its_key_names_and_reads_back_whole() {
        let job = "cop.xiaomi_owt.inf_pdl.p_servicegroup.g_service.s_job.j_cluster.c3";
        let t = Task {
            id: format!("{job}.00000000070002a"),
            job_id: job.into(),
            agent_id: "h00001".into(),
            state: "RUNNING".into(),
            pid: 42,
            ..Default::default()
        };
        let v = task_value(&t);
        assert!(v.len() + t.id.len() + t.job_id.len() <= t.encode_to_vec().len());
        assert_eq!(task_from(t.id.as_bytes(), &v).unwrap(), t);
        // A job id the task id does not name is kept.
        let odd = Task {
            id: "t1".into(),
            job_id: "other".into(),
            ..t.clone()
        };
        let v = task_value(&odd);
        assert_eq!(task_from(b"t1", &v).unwrap(), odd);
        // Records stored whole (before this form) read as they are.
        assert_eq!(task_from(t.id.as_bytes(), &t.encode_to_vec()).unwrap(), t);
        // Not a task: an error naming it, not a panic.
        assert!(task_from(b"x", &[0xff, 0xff]).is_err());
    }
}
