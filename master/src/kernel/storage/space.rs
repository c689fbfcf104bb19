//! Room on the data dir's filesystem, and whether this master takes writes.
//!
//! ```text
//!  proposal ──► DiskSpace::admit ──► free < min_free, or a write failed for space? ──► DiskFull (507)
//!  RaftStore::write ──ENOSPC──► DiskSpace::write_failed ──► DiskFull ──► the driver stops the master
//!  startup: less than the reserve (at least 16 MiB) free ──► wait for room, then open (no restart loop)
//! ```
//! Refusing new proposals below a reserve keeps RocksDB away from ENOSPC in
//! the common case (raft still needs room for heartbeats' hard state, for
//! entries it already accepted, and RocksDB for its log file and flushes).
//! When a raft log write fails for space anyway, raft must not acknowledge
//! it and must not skip it, and RocksDB cannot take the same log file again
//! in this process (see `RaftStore::write`; Debian's RocksDB 7.8.3 build
//! aborts the process on it): the master stops, and its restart waits for
//! room before it opens the store.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How long a free-space reading stays fresh: one `statvfs` per this
/// interval, however many proposals arrive.
const FRESH_FOR: Duration = Duration::from_millis(100);

/// Free space on the data dir and the state of writes to it. Shared by
/// the store (which sees write failures), the driver and the API (which
/// refuse proposals).
#[derive(Debug)]
pub struct DiskSpace {
    dir: PathBuf,
    /// Proposals are refused while the filesystem has less free than this.
    min_free: u64,
    /// Free bytes at the last reading.
    free: AtomicU64,
    /// When that reading was taken.
    read_at: Mutex<Option<Instant>>,
    /// Set once a write failed for lack of space (the master is stopping).
    stuck: AtomicBool,
    /// The error of the write that failed, for the answer.
    failure: Mutex<String>,
}

impl DiskSpace {
    /// Watches the filesystem holding `dir`; proposals need `min_free`
    /// bytes free.
    pub fn new(dir: &Path, min_free: u64) -> Arc<Self> {
        Arc::new(DiskSpace {
            dir: dir.to_path_buf(),
            min_free,
            free: AtomicU64::new(u64::MAX),
            read_at: Mutex::new(None),
            stuck: AtomicBool::new(false),
            failure: Mutex::new(String::new()),
        })
    }

    /// Free bytes on the data dir's filesystem, read at most every
    /// [`FRESH_FOR`]. An unreadable filesystem counts as roomy: the write
    /// itself then says what is wrong.
    pub fn free_bytes(&self) -> u64 {
        let mut at = self.read_at.lock().unwrap_or_else(|p| p.into_inner());
        if at.is_none_or(|t| t.elapsed() >= FRESH_FOR) {
            let free = rustix::fs::statvfs(&self.dir)
                .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
                .unwrap_or(u64::MAX);
            self.free.store(free, Ordering::Relaxed);
            *at = Some(Instant::now());
        }
        self.free.load(Ordering::Relaxed)
    }

    /// Whether a new write may be proposed here; the error names the
    /// reason.
    pub fn admit(&self) -> Result<()> {
        if self.stuck.load(Ordering::Acquire) {
            let failure = self.failure.lock().unwrap_or_else(|p| p.into_inner());
            return Err(Error::DiskFull(format!(
                "a write to the data dir {} failed for lack of space ({failure}); \
                 this master stops and takes writes again once restarted with room",
                self.dir.display()
            )));
        }
        if self.min_free == 0 {
            return Ok(());
        }
        let free = self.free_bytes();
        if free < self.min_free {
            return Err(Error::DiskFull(format!(
                "the data dir {} has {} MiB free, below the {} MiB reserve (raft.min_free_disk_mib)",
                self.dir.display(),
                free / MIB,
                self.min_free / MIB
            )));
        }
        Ok(())
    }

    /// Records a write that failed for lack of space.
    pub fn write_failed(&self, error: &str) {
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = error.to_string();
        self.stuck.store(true, Ordering::Release);
    }
}

const MIB: u64 = 1024 * 1024;

/// Whether a RocksDB error means the filesystem is out of space (ENOSPC,
/// or RocksDB's own space limit). RocksDB reports only a message: its
/// status codes do not cross the C API.
pub fn is_no_space(e: &rocksdb::Error) -> bool {
    let s = e.to_string();
    s.contains("No space left on device") || s.contains("NoSpace") || s.contains("Space limit")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserve_larger_than_the_disk_refuses_and_names_the_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let space = DiskSpace::new(dir.path(), u64::MAX);
        let err = space
            .admit()
            .expect_err("no filesystem has u64::MAX bytes free");
        assert!(
            matches!(&err, Error::DiskFull(m) if m.contains("reserve")),
            "{err}"
        );
    }

    #[test]
    fn a_write_failed_for_space_refuses_what_follows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let space = DiskSpace::new(dir.path(), 1);
        assert!(space.admit().is_ok());
        space.write_failed("IO error: No space left on device");
        let err = space.admit().expect_err("a write failed");
        assert!(err.to_string().contains("No space left on device"), "{err}");
    }
}
