//! The agents' streams as this master holds them: one session per agent
//! (its sender, last heartbeat, whether this leader declared it
//! unreachable) and the leader this master knows of. Owned by the
//! `Master` handle so the agent API (edge), the reconciler and liveness
//! check (leader) and the service layer (agent views) share one registry
//! without importing each other.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ocean_proto::agent::MasterMessage;
use tokio::sync::{mpsc, watch, Notify};
use tonic::Status;
use tracing::info;

use crate::kernel::node::NodeStatus;

/// What the leader knows of each connected agent.
#[derive(Debug)]
pub struct Sessions {
    inner: Mutex<HashMap<String, Session>>,
    /// The agents whose `unreachable` is set, kept beside `inner` (and
    /// changed only under its lock) so the dashboard's count costs the
    /// few unreachable agents, not a lock per agent at 10,000 agents.
    unreachable: Mutex<BTreeSet<String>>,
    /// The leader this master knows of, changed only when it changes. The
    /// node status changes on every commit; at 10,000 agents, waking every
    /// stream's reader on each of those cost the leader more CPU than
    /// placing the tasks.
    leader: Arc<watch::Sender<u64>>,
    /// Whether the task that feeds `leader` runs.
    tracking: AtomicBool,
    /// The agents' latest host checks.
    pub(crate) host_checks: crate::host_checks::Store,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            inner: Mutex::default(),
            unreachable: Mutex::default(),
            leader: Arc::new(watch::channel(0).0),
            tracking: AtomicBool::new(false),
            host_checks: Default::default(),
        }
    }
}

/// Feeds [`Sessions`]' leader from the node status while the master runs.
async fn track_leader(mut status: watch::Receiver<NodeStatus>, out: Arc<watch::Sender<u64>>) {
    loop {
        let leader = status.borrow_and_update().leader;
        out.send_if_modified(|l| {
            let changed = *l != leader;
            *l = leader;
            changed
        });
        if status.changed().await.is_err() {
            return;
        }
    }
}

#[derive(Debug, Clone)]
struct Session {
    generation: u64,
    connected: bool,
    last_heartbeat: Instant,
    /// The open stream to the agent (dropped when it closes).
    tx: Option<SessionTx>,
    /// Ends the stream's reader (the agent was declared unreachable).
    kick: Arc<Notify>,
    /// This leader declared the agent unreachable and has not heard from
    /// it since.
    unreachable: bool,
}

pub(crate) type SessionTx = mpsc::Sender<Result<MasterMessage, Status>>;

/// Liveness of one agent as this master sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    /// Whether its stream to this master is open.
    pub connected: bool,
    /// Milliseconds since its last message.
    pub last_heartbeat_ms: u64,
    /// Declared unreachable by this leader, not heard from since.
    pub unreachable: bool,
}

impl Sessions {
    /// Follows the leader this master knows of (starting the task that
    /// feeds it on first use).
    pub(crate) fn leader_watch(
        &self,
        status: &watch::Receiver<NodeStatus>,
    ) -> watch::Receiver<u64> {
        if !self.tracking.swap(true, Ordering::AcqRel) {
            self.leader.send_replace(status.borrow().leader);
            tokio::spawn(track_leader(status.clone(), self.leader.clone()));
        }
        self.leader.subscribe()
    }

    pub(crate) fn open(&self, id: &str, tx: SessionTx) -> (u64, Arc<Notify>) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let generation = m.get(id).map(|s| s.generation + 1).unwrap_or(1);
        if m.get(id).is_some_and(|s| s.unreachable) {
            info!(agent = %id, "unreachable agent is back");
            self.unreachable_set().remove(id);
        }
        let kick = Arc::new(Notify::new());
        m.insert(
            id.to_string(),
            Session {
                generation,
                connected: true,
                last_heartbeat: Instant::now(),
                tx: Some(tx),
                kick: kick.clone(),
                unreachable: false,
            },
        );
        (generation, kick)
    }

    /// If the agent has been silent past `timeout` (counting from no
    /// earlier than `base`), records that it is unreachable and ends its
    /// stream if one is still open (a stopped process keeps its TCP
    /// connection), so that when it wakes up it must register again with a
    /// full report. Checked and done under one lock, so a stream that opens
    /// meanwhile is never ended. Returns how long it has been silent and
    /// whether this is the first verdict since it was last heard from.
    pub fn declare_if_silent(
        &self,
        id: &str,
        base: Instant,
        timeout: std::time::Duration,
    ) -> Option<(u64, bool)> {
        let now = Instant::now();
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let last = m.get(id).map(|s| s.last_heartbeat);
        if !overdue(now, base, last, timeout) {
            return None;
        }
        let silent_ms = now
            .saturating_duration_since(last.map_or(base, |l| l.max(base)))
            .as_millis() as u64;
        let s = m.entry(id.to_string()).or_insert_with(|| Session {
            generation: 0,
            connected: false,
            last_heartbeat: Instant::now(),
            tx: None,
            kick: Arc::new(Notify::new()),
            unreachable: false,
        });
        if let Some(tx) = s.tx.take() {
            let _ = tx.try_send(Err(Status::unavailable(
                "this agent was silent past the heartbeat timeout: register again",
            )));
        }
        s.connected = false;
        s.kick.notify_one();
        let first = !std::mem::replace(&mut s.unreachable, true);
        if first {
            self.unreachable_set().insert(id.to_string());
        }
        Some((silent_ms, first))
    }

    /// Which of `ids` are overdue (as [`Sessions::declare_if_silent`] would
    /// find them), in one pass under one lock: the leader checks 10,000
    /// agents ten times a second, and only the overdue few need more.
    pub fn overdue<'a>(
        &self,
        ids: impl Iterator<Item = &'a String>,
        base: Instant,
        timeout: std::time::Duration,
    ) -> Vec<String> {
        let now = Instant::now();
        let m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        ids.filter(|id| {
            let last = m.get(id.as_str()).map(|s| s.last_heartbeat);
            overdue(now, base, last, timeout)
        })
        .cloned()
        .collect()
    }

    /// Forgets every verdict (a new term: each agent gets a fresh timeout).
    pub fn clear_unreachable(&self) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for s in m.values_mut() {
            s.unreachable = false;
        }
        self.unreachable_set().clear();
    }

    /// The agents this leader declared unreachable and has not heard
    /// from since.
    pub fn unreachable_ids(&self) -> Vec<String> {
        self.unreachable_set().iter().cloned().collect()
    }

    /// Taken after `inner` when both are held, never the other way round.
    fn unreachable_set(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.unreachable.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ids of the agents whose stream to this master is open.
    pub fn connected(&self) -> std::collections::HashSet<String> {
        let m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        m.iter()
            .filter(|(_, s)| s.connected)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Queues a message on an agent's stream; false when it is not
    /// connected or its queue is full (the reconciler retries later).
    pub fn send(&self, id: &str, msg: MasterMessage) -> bool {
        let tx = {
            let m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            match m.get(id) {
                Some(Session {
                    connected: true,
                    tx: Some(tx),
                    ..
                }) => tx.clone(),
                _ => return false,
            }
        };
        tx.try_send(Ok(msg)).is_ok()
    }

    pub(crate) fn beat(&self, id: &str) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = m.get_mut(id) {
            s.last_heartbeat = Instant::now();
        }
    }

    pub(crate) fn close(&self, id: &str, generation: u64) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = m.get_mut(id) {
            // A newer stream of the same agent may already be open.
            if s.generation == generation {
                s.connected = false;
                s.tx = None;
            }
        }
    }

    /// The liveness of an agent, if it ever connected to this master.
    pub fn liveness(&self, id: &str) -> Option<Liveness> {
        let m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        m.get(id).map(|s| Liveness {
            connected: s.connected,
            last_heartbeat_ms: s.last_heartbeat.elapsed().as_millis() as u64,
            unreachable: s.unreachable,
        })
    }
}

/// Whether an agent last heard at `last_heard` (never: `None`) is silent
/// past `timeout` at `now`, counting from no earlier than `base` (the start
/// of the term, or the end of this master's own stall).
pub fn overdue(
    now: Instant,
    base: Instant,
    last_heard: Option<Instant>,
    timeout: Duration,
) -> bool {
    let from = last_heard.map_or(base, |l| l.max(base));
    now.saturating_duration_since(from) > timeout
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_unreachable_set_follows_each_verdict_and_return() {
        let s = Sessions::default();
        let long_ago = Instant::now() - Duration::from_secs(60);
        let timeout = Duration::from_millis(1);
        // Never heard of: overdue from `base`.
        assert_eq!(
            s.declare_if_silent("a1", long_ago, timeout).map(|v| v.1),
            Some(true)
        );
        assert_eq!(
            s.declare_if_silent("a2", long_ago, timeout).map(|v| v.1),
            Some(true)
        );
        // A second verdict on the same silence is not a new one.
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(
            s.declare_if_silent("a1", long_ago, timeout).map(|v| v.1),
            Some(false)
        );
        assert_eq!(
            s.unreachable_ids(),
            vec!["a1".to_string(), "a2".to_string()]
        );

        let (tx, _rx) = mpsc::channel(1);
        s.open("a1", tx);
        assert_eq!(s.unreachable_ids(), vec!["a2".to_string()]);
        assert!(!s.liveness("a1").is_some_and(|l| l.unreachable));

        s.clear_unreachable();
        assert!(s.unreachable_ids().is_empty());
        assert!(!s.liveness("a2").is_some_and(|l| l.unreachable));
    }
}
