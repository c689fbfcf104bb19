//! The audit log of writes: who (a token's name and accessor), what (the
//! operation and the object), when, and the state version the write made.
//!
//! Each master records the writes its own service layer accepted, in a
//! bounded ring (for `GET /v1/acl/audit`) and a broadcast (the `audit`
//! events of `/v1/events`), and as `ocean::audit` tracing events for the
//! host's log collector. The entries are not replicated: a write is
//! recorded by the master that received it (followers forward the
//! command, not the request), so a complete log is the union of every
//! master's. Putting the entry in the raft command would make it
//! replicated; that is left for later (it needs a proto field).

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;
use tokio::sync::broadcast;

/// How many entries a master keeps.
pub const KEPT: usize = 10_000;

/// One accepted write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// The token: `name (accessor)`.
    pub who: String,
    /// The operation and object, e.g. `put job cop.x_..._job.web_cluster.c1`.
    pub what: String,
    /// Milliseconds since the Unix epoch on the recording master.
    pub at_ms: u64,
    /// The state version the write was applied at.
    pub version: u64,
    /// The master that recorded it.
    pub master: u64,
}

/// A master's recent audit entries and their live broadcast.
#[derive(Debug)]
pub struct AuditLog {
    ring: Mutex<VecDeque<AuditEntry>>,
    live: broadcast::Sender<AuditEntry>,
}

impl Default for AuditLog {
    fn default() -> Self {
        AuditLog {
            ring: Mutex::new(VecDeque::new()),
            live: broadcast::channel(1024).0,
        }
    }
}

impl AuditLog {
    /// Records `entry`: kept, broadcast and traced.
    pub fn record(&self, entry: AuditEntry) {
        tracing::info!(
            target: "ocean::audit",
            who = %entry.who,
            what = %entry.what,
            version = entry.version,
            "write"
        );
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        if ring.len() == KEPT {
            ring.pop_front();
        }
        ring.push_back(entry.clone());
        drop(ring);
        let _ = self.live.send(entry);
    }

    /// The latest `limit` entries, oldest first.
    pub fn recent(&self, limit: usize) -> Vec<AuditEntry> {
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        ring.iter()
            .skip(ring.len().saturating_sub(limit))
            .cloned()
            .collect()
    }

    /// Entries recorded from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<AuditEntry> {
        self.live.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u64) -> AuditEntry {
        AuditEntry {
            who: "ops (ab12)".into(),
            what: format!("put job j{i}"),
            at_ms: i,
            version: i,
            master: 1,
        }
    }

    #[tokio::test]
    async fn entries_are_kept_bounded_and_broadcast() {
        let log = AuditLog::default();
        let mut rx = log.subscribe();
        log.record(entry(0));
        assert_eq!(rx.recv().await.unwrap(), entry(0));
        for i in 1..(KEPT as u64 + 5) {
            log.record(entry(i));
        }
        let recent = log.recent(3);
        assert_eq!(
            recent.iter().map(|e| e.version).collect::<Vec<_>>(),
            [KEPT as u64 + 2, KEPT as u64 + 3, KEPT as u64 + 4]
        );
        assert_eq!(log.recent(usize::MAX).len(), KEPT);
    }
}
