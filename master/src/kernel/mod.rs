//! The kernel: the replicated core every other layer stands on. It knows
//! nothing of the leader's controllers or of the REST/gRPC edge; it
//! imports only `config`, `error` and `metrics`.
//!
//! - [`state`]: the deterministic state machine.
//! - [`storage`]: raft log, hard state, snapshots and the persisted state on RocksDB.
//! - [`node`]: the raft driver (Ready loop, group commit, apply, compaction).
//! - [`feed`]: the versioned change feed.
//! - [`audit`]: the writes this master accepted, who made them.

pub mod audit;
pub mod feed;
pub mod node;
pub mod state;
pub mod storage;

/// Milliseconds since the Unix epoch on this machine's clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(std::time::Duration::ZERO)
        .as_millis() as u64
}
