//! [`StoreBatch`]: the writes of one Ready staged for a single RocksDB write.

use ocean_proto::v1::Member;
use prost::Message as _;
use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState};
use rocksdb::WriteBatch;

use super::keys::{
    agent_key, job_key, log_key, member_key, task_key, two_u64, APPLIED, CONF_STATE,
};
use crate::error::{corrupt, Result};
use crate::state::Change;

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
        for c in changes {
            match c {
                Change::JobPut(job) => self.batch.put(job_key(&job.id), job.encode_to_vec()),
                Change::JobDeleted(id) => self.batch.delete(job_key(id)),
                Change::AgentPut(a) => self.batch.put(agent_key(&a.id), a.encode_to_vec()),
                Change::TaskPut(t) => self.batch.put(task_key(&t.id), t.encode_to_vec()),
                Change::TaskRemoved(id) => self.batch.delete(task_key(id)),
            }
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
