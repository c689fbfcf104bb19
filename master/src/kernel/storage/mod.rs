//! Durable raft storage on RocksDB, and the persisted cluster state.
//!
//! ```text
//!  RocksDB (one DB, one WAL, so writes reach disk in the order made)
//!  ├─ r:hs                 HardState            fsynced with the log
//!  ├─ r:cs                 ConfState
//!  ├─ r:trunc              index,term of the compaction point
//!  ├─ r:log:<be64 index>   Entry                fsynced per Ready (group commit)
//!  ├─ s:applied            applied index, state version
//!  ├─ s:job:<id>           Job
//!  └─ s:member:<be64 id>   Member
//! ```
//!
//! The uncompacted tail of the log is mirrored in memory so raft-rs reads it
//! without touching disk; the state machine is written through on apply
//! (without fsync: a later synced log write flushes the WAL before it), so a
//! restart loads the state and replays only the entries after `s:applied`.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use ocean_proto::internal::{Agent, Job, KvEntry, Member};
use prost::Message as _;
use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};
use rocksdb::{IteratorMode, WriteBatch, WriteOptions, DB};

use crate::error::{corrupt, storage, Result};
use crate::kernel::state::ClusterState;

mod batch;
mod keys;
mod space;

pub use batch::StoreBatch;
pub use keys::INIT_INDEX;
use keys::*;
pub use space::{is_no_space, DiskSpace};

/// Calls `f` with the value of every key under `prefix`, in key order.
fn scan(db: &DB, prefix: &[u8], mut f: impl FnMut(&[u8], &[u8]) -> Result<()>) -> Result<()> {
    for item in db.iterator(IteratorMode::From(prefix, rocksdb::Direction::Forward)) {
        let (k, v) = item.map_err(storage("scan"))?;
        if !k.starts_with(prefix) {
            break;
        }
        f(&k[prefix.len()..], &v)?;
    }
    Ok(())
}

/// The raft log's in-memory mirror.
#[derive(Debug, Default)]
struct LogCore {
    hard_state: HardState,
    conf_state: ConfState,
    /// Index and term of the last entry folded into the state machine and
    /// dropped from the log.
    trunc_index: u64,
    trunc_term: u64,
    /// Entries `trunc_index + 1 ..= last_index`.
    entries: VecDeque<Entry>,
}

impl LogCore {
    fn first_index(&self) -> u64 {
        self.trunc_index + 1
    }

    fn last_index(&self) -> u64 {
        self.trunc_index + self.entries.len() as u64
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.trunc_index {
            return Ok(self.trunc_term);
        }
        if idx < self.trunc_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        match self.entries.get((idx - self.trunc_index - 1) as usize) {
            Some(e) => Ok(e.term),
            None => Err(raft::Error::Store(StorageError::Unavailable)),
        }
    }
}

/// What a persisted write cost, for the fsync histogram.
#[derive(Debug, Clone, Copy)]
pub struct WriteTiming {
    /// Whether the write was synced to disk.
    pub synced: bool,
    /// How long the write took.
    pub elapsed: Duration,
}

/// RocksDB-backed raft storage plus the state machine it feeds. Cloning is
/// cheap; clones share the DB and the in-memory state.
#[derive(Clone)]
pub struct RaftStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: DB,
    core: RwLock<LogCore>,
    state: Arc<RwLock<ClusterState>>,
    fsync: bool,
    space: Arc<DiskSpace>,
}

impl std::fmt::Debug for RaftStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let core = self.core();
        f.debug_struct("RaftStore")
            .field("first_index", &core.first_index())
            .field("last_index", &core.last_index())
            .finish()
    }
}

impl RaftStore {
    /// Opens (or creates) the store in `dir` and loads what it holds.
    pub fn open(dir: &Path, fsync: bool) -> Result<Self> {
        Self::open_with_reserve(dir, fsync, 0)
    }

    /// The same, refusing proposals while the filesystem of `dir` has
    /// less than `min_free` bytes free ([`DiskSpace`]).
    pub fn open_with_reserve(dir: &Path, fsync: bool, min_free: u64) -> Result<Self> {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.set_max_background_jobs(2);
        opts.set_allow_concurrent_memtable_write(false);
        opts.set_memtable_factory(rocksdb::MemtableFactory::Vector);
        // RocksDB's default 64 MiB memtable was the largest single item in
        // a master's heap with 100,000 jobs stored (issue 22's < 300 MiB);
        // everything here is also held in memory as state or log tail, so a
        // smaller memtable only flushes more often, in the background.
        opts.set_write_buffer_size(16 << 20);
        let db = DB::open(&opts, dir).map_err(storage("open"))?;

        let mut core = LogCore::default();
        if let Some(b) = db.get(HARD_STATE).map_err(storage("read hard state"))? {
            core.hard_state =
                HardState::parse_from_bytes(&b).map_err(|e| corrupt("hard state", e))?;
        }
        if let Some(b) = db.get(CONF_STATE).map_err(storage("read conf state"))? {
            core.conf_state =
                ConfState::parse_from_bytes(&b).map_err(|e| corrupt("conf state", e))?;
        }
        if let Some(b) = db.get(TRUNCATED).map_err(storage("read truncation"))? {
            (core.trunc_index, core.trunc_term) = read_two_u64(&b, "truncation point")?;
        }
        scan(&db, LOG_PREFIX, |_, v| {
            let e = Entry::parse_from_bytes(v).map_err(|e| corrupt("log entry", e))?;
            if e.index != core.last_index() + 1 {
                return Err(corrupt(
                    "log",
                    format!("gap: entry {} after {}", e.index, core.last_index()),
                ));
            }
            core.entries.push_back(e);
            Ok(())
        })?;

        let mut state = ClusterState::default();
        if let Some(b) = db.get(APPLIED).map_err(storage("read applied index"))? {
            (state.applied_index, state.version) = read_two_u64(&b, "applied index")?;
        }
        scan(&db, JOB_PREFIX, |_, v| {
            let job = Job::decode(v).map_err(|e| corrupt("job", e))?;
            state.jobs.insert(job.id.clone(), Arc::new(job));
            Ok(())
        })?;
        scan(&db, MEMBER_PREFIX, |_, v| {
            let m = Member::decode(v).map_err(|e| corrupt("member", e))?;
            state.members.insert(m.id, m);
            Ok(())
        })?;
        scan(&db, AGENT_PREFIX, |_, v| {
            let a = Agent::decode(v).map_err(|e| corrupt("agent", e))?;
            state.agents.insert(a.id.clone(), Arc::new(a));
            Ok(())
        })?;
        scan(&db, TASK_PREFIX, |id, v| {
            state.insert_task(Arc::new(keys::task_from(id, v)?));
            Ok(())
        })?;
        scan(&db, KV_PREFIX, |_, v| {
            let e = KvEntry::decode(v).map_err(|e| corrupt("framework key", e))?;
            let k = crate::kernel::state::kv::kv_map_key(&e.namespace, &e.key);
            state.kv.insert(k, Arc::new(e));
            Ok(())
        })?;

        Ok(RaftStore {
            inner: Arc::new(Inner {
                db,
                core: RwLock::new(core),
                state: Arc::new(RwLock::new(state)),
                fsync,
                space: DiskSpace::new(dir, min_free),
            }),
        })
    }

    fn core(&self) -> RwLockReadGuard<'_, LogCore> {
        self.inner.core.read().unwrap_or_else(|p| p.into_inner())
    }

    fn core_mut(&self) -> RwLockWriteGuard<'_, LogCore> {
        self.inner.core.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The shared cluster state (read by the APIs, written by the driver).
    pub fn state(&self) -> Arc<RwLock<ClusterState>> {
        self.inner.state.clone()
    }

    /// True when nothing was ever stored: no conf state, no log.
    pub fn is_empty(&self) -> bool {
        let core = self.core();
        core.conf_state == ConfState::default() && core.last_index() == 0
    }

    /// Writes the initial cluster on an empty store: every bootstrapped
    /// master must be given the same `members`.
    pub fn bootstrap(&self, members: &[Member]) -> Result<()> {
        let cs = ConfState {
            voters: members.iter().map(|m| m.id).collect(),
            ..Default::default()
        };
        let hs = HardState {
            term: INIT_TERM,
            commit: INIT_INDEX,
            ..Default::default()
        };

        let mut batch = WriteBatch::default();
        batch.put(
            CONF_STATE,
            cs.write_to_bytes().map_err(|e| corrupt("conf state", e))?,
        );
        batch.put(
            HARD_STATE,
            hs.write_to_bytes().map_err(|e| corrupt("hard state", e))?,
        );
        batch.put(TRUNCATED, two_u64(INIT_INDEX, INIT_TERM));
        batch.put(APPLIED, two_u64(INIT_INDEX, 0));
        for m in members {
            batch.put(member_key(m.id), m.encode_to_vec());
        }
        self.write(batch, true)?;

        let mut core = self.core_mut();
        core.conf_state = cs;
        core.hard_state = hs;
        core.trunc_index = INIT_INDEX;
        core.trunc_term = INIT_TERM;
        let mut state = self.inner.state.write().unwrap_or_else(|p| p.into_inner());
        state.applied_index = INIT_INDEX;
        for m in members {
            state.members.insert(m.id, m.clone());
        }
        Ok(())
    }

    /// Free space on the data dir and whether proposals are taken.
    pub fn space(&self) -> &Arc<DiskSpace> {
        &self.inner.space
    }

    /// Writes `batch`. A write that fails for lack of space is an
    /// [`Error::DiskFull`](crate::error::Error::DiskFull): it cannot be made
    /// again in this process, because RocksDB (7.8) does not resume a log
    /// file that failed a write (it syncs the failed file, which Debian's
    /// build asserts on: the process aborts, often before this returns).
    /// The driver then stops the master without acknowledging anything the
    /// write held; a restart once there is room replays the log.
    fn write(&self, batch: WriteBatch, sync: bool) -> Result<WriteTiming> {
        let mut opts = WriteOptions::default();
        let synced = sync && self.inner.fsync;
        opts.set_sync(synced);
        let start = Instant::now();
        if let Err(e) = self.inner.db.write_opt(batch, &opts) {
            if space::is_no_space(&e) {
                self.inner.space.write_failed(e.as_ref());
                return Err(crate::error::Error::DiskFull(format!(
                    "a write to the raft log failed: {e}"
                )));
            }
            return Err(storage("write")(e));
        }
        Ok(WriteTiming {
            synced,
            elapsed: start.elapsed(),
        })
    }

    /// Starts a batch of writes that [`RaftStore::write_batch`] makes as
    /// one RocksDB write: a Ready's entries, hard state and applied state
    /// go to disk together, with at most one fsync.
    pub fn batch(&self) -> StoreBatch {
        StoreBatch::default()
    }

    /// Makes the batch's writes, synced if any part asked for it, then
    /// updates the in-memory log.
    pub fn write_batch(&self, b: StoreBatch) -> Result<WriteTiming> {
        let mut batch = b.batch;
        let (old_last, mut hs) = {
            let core = self.core();
            (core.last_index(), core.hard_state.clone())
        };
        if let Some(last) = b.entries.last() {
            if last.index < old_last {
                // A new leader overwrote a conflicting tail: drop what follows.
                batch.delete_range(log_key(last.index + 1), log_key(old_last + 1));
            }
        }
        let hs_changed = match (&b.hard_state, b.commit) {
            (Some(new), _) => {
                hs = new.clone();
                true
            }
            (None, Some(commit)) if commit > hs.commit => {
                hs.commit = commit;
                true
            }
            _ => false,
        };
        if hs_changed {
            batch.put(
                HARD_STATE,
                hs.write_to_bytes().map_err(|e| corrupt("hard state", e))?,
            );
        }
        if batch.is_empty() {
            return Ok(WriteTiming {
                synced: false,
                elapsed: Duration::ZERO,
            });
        }
        let timing = self.write(batch, b.sync)?;

        let mut core = self.core_mut();
        if let Some(first) = b.entries.first() {
            let keep = first.index.saturating_sub(core.trunc_index + 1) as usize;
            core.entries.truncate(keep);
            core.entries.extend(b.entries);
        }
        if hs_changed {
            core.hard_state = hs;
        }
        if let Some(cs) = b.conf_state {
            core.conf_state = cs;
        }
        Ok(timing)
    }

    /// Persists new log entries and the hard state in one synced write.
    pub fn persist(&self, entries: &[Entry], hs: Option<&HardState>) -> Result<WriteTiming> {
        let mut b = self.batch();
        b.append(entries)?;
        if let Some(hs) = hs {
            b.hard_state(hs);
        }
        b.sync();
        self.write_batch(b)
    }

    /// Replaces everything with a snapshot received from the leader.
    pub fn apply_snapshot(&self, snap: &Snapshot) -> Result<()> {
        let meta = snap.get_metadata();
        let mut state = ClusterState::from_image(snap.get_data())?;
        state.applied_index = meta.index;

        let mut batch = WriteBatch::default();
        batch.delete_range(STATE_START, STATE_END);
        batch.delete_range(LOG_PREFIX, LOG_END);
        for job in state.jobs.values() {
            batch.put(job_key(&job.id), job.encode_to_vec());
        }
        for m in state.members.values() {
            batch.put(member_key(m.id), m.encode_to_vec());
        }
        for a in state.agents.values() {
            batch.put(agent_key(&a.id), a.encode_to_vec());
        }
        for t in state.tasks.values() {
            batch.put(task_key(&t.id), t.encode_to_vec());
        }
        for e in state.kv.values() {
            batch.put(keys::kv_key(&e.namespace, &e.key), e.encode_to_vec());
        }
        batch.put(APPLIED, two_u64(meta.index, state.version));
        batch.put(TRUNCATED, two_u64(meta.index, meta.term));
        let cs = meta.get_conf_state().clone();
        batch.put(
            CONF_STATE,
            cs.write_to_bytes().map_err(|e| corrupt("conf state", e))?,
        );
        let mut hs = self.core().hard_state.clone();
        hs.term = hs.term.max(meta.term);
        hs.commit = hs.commit.max(meta.index);
        batch.put(
            HARD_STATE,
            hs.write_to_bytes().map_err(|e| corrupt("hard state", e))?,
        );
        self.write(batch, true)?;

        let mut core = self.core_mut();
        core.entries.clear();
        core.trunc_index = meta.index;
        core.trunc_term = meta.term;
        core.conf_state = cs;
        core.hard_state = hs;
        *self.inner.state.write().unwrap_or_else(|p| p.into_inner()) = state;
        Ok(())
    }

    /// Drops log entries up to and including `index` (which must be
    /// applied); a follower that needs them gets a snapshot instead.
    pub fn compact(&self, index: u64) -> Result<bool> {
        let (first, term) = {
            let core = self.core();
            if index < core.first_index() || index > core.last_index() {
                return Ok(false);
            }
            (core.first_index(), core.term(index)?)
        };
        let mut batch = WriteBatch::default();
        batch.delete_range(log_key(first), log_key(index + 1));
        batch.put(TRUNCATED, two_u64(index, term));
        self.write(batch, false)?;
        let mut core = self.core_mut();
        let drop = (index - core.trunc_index) as usize;
        core.entries.drain(..drop);
        core.trunc_index = index;
        core.trunc_term = term;
        Ok(true)
    }

    /// Index of the compaction point.
    pub fn truncated_index(&self) -> u64 {
        self.core().trunc_index
    }

    /// The current hard state.
    pub fn hard_state(&self) -> HardState {
        self.core().hard_state.clone()
    }
}

impl raft::Storage for RaftStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let core = self.core();
        Ok(RaftState::new(
            core.hard_state.clone(),
            core.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let core = self.core();
        if low < core.first_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > core.last_index() + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let max = max_size.into().unwrap_or(u64::MAX);
        let lo = (low - core.first_index()) as usize;
        let hi = (high - core.first_index()) as usize;
        let mut out = Vec::with_capacity(hi - lo);
        let mut size = 0u64;
        for e in core.entries.range(lo..hi) {
            size += u64::from(e.compute_size());
            if !out.is_empty() && size > max {
                break;
            }
            out.push(e.clone());
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.core().term(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.core().first_index())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.core().last_index())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let state = self.inner.state.read().unwrap_or_else(|p| p.into_inner());
        let core = self.core();
        if state.applied_index < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        let mut snap = Snapshot::default();
        snap.set_data(state.to_image().into());
        let meta = snap.mut_metadata();
        meta.index = state.applied_index;
        meta.term = core.term(state.applied_index)?;
        meta.set_conf_state(core.conf_state.clone());
        Ok(snap)
    }
}

#[cfg(test)]
mod tests;
