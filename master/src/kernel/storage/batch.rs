//! [`StoreBatch`]: the writes of one Ready staged for a single RocksDB write.

use ocean_proto::internal::Member;
use prost::Message as _;
use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState};
use rocksdb::WriteBatch;

use super::keys::{
    agent_key, job_key, kv_key, log_key, member_key, task_key, two_u64, APPLIED, CONF_STATE,
};
use crate::error::{corrupt, Result};
use crate::kernel::state::Change;

/// Writes staged for one RocksDB write (see [`RaftStore::batch`]).
#[derive(Default)]
pub struct StoreBatch {
    pub(super) batch: WriteBatch,
    pub(super) entries: Vec<Entry>,
    pub(super) hard_state: Option<HardState>,
    pub(super) commit: Option<u64>,
    pub(super) conf_state: Option<ConfState>,
    pub(super) sync: bool,
}

impl std::fmt::Debug for StoreBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreBatch")
            .field("entries", &self.entries.len())
            .field("sync", &self.sync)
            .finish()
    }
}

impl StoreBatch {
    /// Appends log entries (replacing any conflicting tail).
    pub fn append(&mut self, entries: &[Entry]) -> Result<()> {
        for e in entries {
            self.batch.put(
                log_key(e.index),
                e.write_to_bytes().map_err(|e| corrupt("log entry", e))?,
            );
        }
        self.entries.extend_from_slice(entries);
        Ok(())
    }

    /// Sets the hard state.
    pub fn hard_state(&mut self, hs: &HardState) {
        self.hard_state = Some(hs.clone());
    }

    /// Raises the commit index (recoverable from the quorum, so it needs
    /// no sync of its own).
    pub fn commit(&mut self, commit: u64) {
        self.commit = Some(self.commit.unwrap_or(0).max(commit));
    }

    /// Asks for the write to be synced to disk.
    pub fn sync(&mut self) {
        self.sync = true;
    }

    /// Records what applying entries changed: jobs, membership, the
    /// applied index and version.
    pub fn applied(
        &mut self,
        changes: &[Change],
        members: &[Member],
        removed: &[u64],
        conf_state: Option<&ConfState>,
        applied_index: u64,
        version: u64,
    ) -> Result<()> {
        // In key order, and only the last change of each key: RocksDB's
        // memtable finds a key's place from where the previous one went,
        // which is nearly free for ascending keys but a full skip-list
        // search for each of the thousands of tasks a round places in
        // fair-share order (a quarter of every master's CPU at 100,000
        // tasks). A task placed and reported in one batch is written once.
        let mut keyed: Vec<(Vec<u8>, &Change)> = changes
            .iter()
            .map(|c| {
                let key = match c {
                    Change::JobPut(job) => job_key(&job.id),
                    Change::JobDeleted(id) => job_key(id),
                    Change::AgentPut(a) => agent_key(&a.id),
                    Change::TaskPut(t) => task_key(&t.id),
                    Change::TaskRemoved(id) => task_key(id),
                    Change::KvPut(e) | Change::KvDeleted(e) => kv_key(&e.namespace, &e.key),
                };
                (key, c)
            })
            .collect();
        // Stable, so equal keys keep their order and the last one wins.
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        let mut i = 0;
        while i < keyed.len() {
            if keyed.get(i + 1).is_some_and(|next| next.0 == keyed[i].0) {
                i += 1;
                continue;
            }
            let (key, c) = &keyed[i];
            match c {
                Change::JobPut(job) => self.batch.put(key, job.encode_to_vec()),
                Change::AgentPut(a) => self.batch.put(key, a.encode_to_vec()),
                Change::TaskPut(t) => self.batch.put(key, super::keys::task_value(t)),
                Change::KvPut(e) => self.batch.put(key, e.encode_to_vec()),
                Change::JobDeleted(_) | Change::TaskRemoved(_) | Change::KvDeleted(_) => {
                    self.batch.delete(key)
                }
            }
            i += 1;
        }
        for m in members {
            self.batch.put(member_key(m.id), m.encode_to_vec());
        }
        for id in removed {
            self.batch.delete(member_key(*id));
        }
        if let Some(cs) = conf_state {
            self.batch.put(
                CONF_STATE,
                cs.write_to_bytes().map_err(|e| corrupt("conf state", e))?,
            );
            self.conf_state = Some(cs.clone());
        }
        self.batch.put(APPLIED, two_u64(applied_index, version));
        Ok(())
    }
}
