//! The raft driver: one owner of the `RawNode`, fed by one channel.
//!
//! ```text
//!   proposals, raft messages, conf changes ──► Driver::handle ──► RawNode
//!   ticks ──────────────────────────────────► Driver::tick
//!   Driver::on_ready:  send ─► persist (one fsync per Ready) ─► apply ─► advance
//!                                                 │
//!                               state, change feed, waiting proposers
//! ```
//! The driver does no socket I/O and keeps no clock: [`run`] wraps it in a
//! thread with a channel and a tick timer, and the tests in `harness.rs`
//! drive several drivers over an in-memory network instead.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Instant;

use ocean_proto::internal::Member;
use prost::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeType, Message};
use raft::{RawNode, SnapshotStatus, StateRole};
use tokio::sync::{oneshot, watch};
use tracing::{debug, info};

use crate::config::RaftSettings;
use crate::error::{Error, Result};
use crate::kernel::feed::Feed;
use crate::kernel::state::Applied;
use crate::kernel::storage::RaftStore;
use crate::metrics::Metrics;

mod apply;

/// Where the driver sends raft messages. One small trait per boundary: gRPC
/// in production, an in-memory router in the harness.
pub trait Transport: Send {
    /// Sends messages to their `to` peers; delivery is best effort (raft
    /// retransmits).
    fn send(&mut self, msgs: Vec<Message>);
}

/// A membership change.
#[derive(Debug, Clone)]
pub enum MemberChange {
    /// Add a voting master with these addresses.
    Add(Member),
    /// Remove a master.
    Remove(u64),
}

/// Input to the driver.
#[derive(Debug)]
pub enum Msg {
    /// A raft message from a peer.
    Raft(Box<Message>),
    /// Propose a command (encoded by the proposer, off the raft thread);
    /// the reply comes when it is applied here.
    Propose {
        data: Vec<u8>,
        reply: oneshot::Sender<Result<Applied>>,
    },
    /// Propose a membership change; the reply carries the applied index.
    ChangeMembers {
        change: MemberChange,
        reply: oneshot::Sender<Result<u64>>,
    },
    /// Confirm leadership with a quorum and answer with the commit index a
    /// linearizable read must wait for (raft's ReadIndex).
    ReadIndex { reply: oneshot::Sender<Result<u64>> },
    /// A peer could not be reached.
    Unreachable(u64),
    /// A snapshot send to a peer finished or failed.
    SnapshotDone { to: u64, ok: bool },
    /// Stop the driver.
    Shutdown,
}

/// A raft peer's replication progress, as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PeerProgress {
    /// Raft id.
    pub id: u64,
    /// Highest index known to be replicated there.
    pub matched: u64,
    /// Whether the peer answered within the last election timeout.
    pub recent_active: bool,
}

/// What the driver publishes after each round, for the APIs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeStatus {
    /// This master's raft id.
    pub id: u64,
    /// `leader`, `follower`, `candidate` or `pre_candidate`.
    pub role: &'static str,
    /// Current term.
    pub term: u64,
    /// Known leader id (0 if none).
    pub leader: u64,
    /// Commit index.
    pub commit_index: u64,
    /// Applied index.
    pub applied_index: u64,
    /// State version.
    pub version: u64,
    /// First index still in the log.
    pub first_index: u64,
    /// Voting members.
    pub voters: Vec<u64>,
    /// Replication progress (filled on the leader only).
    pub progress: Vec<PeerProgress>,
    /// True once this master has applied its own removal.
    pub removed: bool,
}

impl NodeStatus {
    /// What a master knows before its driver's first round.
    pub fn initial(id: u64, version: u64) -> Self {
        NodeStatus {
            id,
            role: "follower",
            term: 0,
            leader: 0,
            commit_index: 0,
            applied_index: 0,
            version,
            first_index: 0,
            voters: Vec::new(),
            progress: Vec::new(),
            removed: false,
        }
    }
}

enum Waiter {
    Command(oneshot::Sender<Result<Applied>>),
    Members(oneshot::Sender<Result<u64>>),
}

struct Pending {
    proposal: u64,
    waiter: Waiter,
}

/// What to publish after a batch is written.
#[derive(Default)]
struct Announce {
    changes: Vec<(u64, crate::kernel::feed::Changes)>,
    replies: Vec<(Pending, Option<Result<Applied>>, u64)>,
}

/// The raft driver.
pub struct Driver<T: Transport> {
    id: u64,
    raw: RawNode<RaftStore>,
    store: RaftStore,
    transport: T,
    feed: Arc<Feed>,
    metrics: Metrics,
    status: watch::Sender<NodeStatus>,
    snapshot_entries: u64,
    next_proposal: u64,
    /// Proposals waiting to be applied, by log index.
    pending: BTreeMap<u64, Pending>,
    /// Read-index requests waiting for a quorum, by request id.
    pending_reads: BTreeMap<u64, oneshot::Sender<Result<u64>>>,
    /// Reads asked of a new leader before it committed an entry of its own
    /// term: raft-rs drops those silently, so they wait here until it has.
    deferred_reads: Vec<(u64, oneshot::Sender<Result<u64>>)>,
    removed: bool,
}

impl<T: Transport> std::fmt::Debug for Driver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").field("id", &self.id).finish()
    }
}

fn role_name(r: StateRole) -> &'static str {
    match r {
        StateRole::Leader => "leader",
        StateRole::Follower => "follower",
        StateRole::Candidate => "candidate",
        StateRole::PreCandidate => "pre_candidate",
    }
}

impl<T: Transport> Driver<T> {
    /// Builds a driver over an opened (and bootstrapped, unless joining)
    /// store.
    pub fn new(
        id: u64,
        store: RaftStore,
        settings: &RaftSettings,
        transport: T,
        feed: Arc<Feed>,
        metrics: Metrics,
        status: watch::Sender<NodeStatus>,
    ) -> Result<Self> {
        let applied = store.state().read().map(|s| s.applied_index).unwrap_or(0);
        let cfg = raft::Config {
            id,
            election_tick: settings.election_ticks,
            heartbeat_tick: settings.heartbeat_ticks,
            applied,
            max_size_per_msg: 4 * 1024 * 1024,
            max_inflight_msgs: 4096,
            check_quorum: true,
            pre_vote: true,
            // Committed entries are applied a few at a time (a round's
            // entry of 2,000 placements is about 75 KB, so this is some
            // 5,000 placements): between Readies the loop ticks and sends
            // heartbeats, and a leader that spent half a second applying a
            // burst of placements lost its term.
            max_committed_size_per_ready: 192 * 1024,
            ..Default::default()
        };
        cfg.validate()?;
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let raw = RawNode::new(&cfg, store.clone(), &logger)?;
        Ok(Driver {
            id,
            raw,
            store,
            transport,
            feed,
            metrics,
            status,
            snapshot_entries: settings.snapshot_entries,
            next_proposal: 1,
            pending: BTreeMap::new(),
            pending_reads: BTreeMap::new(),
            deferred_reads: Vec::new(),
            removed: false,
        })
    }

    fn new_proposal_id(&mut self) -> u64 {
        self.next_proposal += 1;
        (self.id << 40) | (self.next_proposal & ((1 << 40) - 1))
    }

    /// Handles one input. Returns false on shutdown.
    pub fn handle(&mut self, msg: Msg) -> bool {
        match msg {
            Msg::Raft(m) => {
                if let Err(e) = self.raw.step(*m) {
                    debug!(error = %e, "raft step rejected a message");
                }
            }
            Msg::Propose { data, reply } => self.propose(data, reply),
            Msg::ChangeMembers { change, reply } => self.change_members(change, reply),
            Msg::ReadIndex { reply } => {
                if self.raw.raft.state != StateRole::Leader {
                    let _ = reply.send(Err(self.not_leader()));
                } else {
                    let id = self.new_proposal_id();
                    if self.raw.raft.commit_to_current_term() {
                        self.raw.read_index(id.to_be_bytes().to_vec());
                        self.pending_reads.insert(id, reply);
                    } else {
                        self.deferred_reads.push((id, reply));
                    }
                }
            }
            Msg::Unreachable(peer) => self.raw.report_unreachable(peer),
            Msg::SnapshotDone { to, ok } => {
                let status = if ok {
                    SnapshotStatus::Finish
                } else {
                    SnapshotStatus::Failure
                };
                self.raw.report_snapshot(to, status);
            }
            Msg::Shutdown => return false,
        }
        true
    }

    fn not_leader(&self) -> Error {
        Error::NoLeader(format!(
            "master {} is not the leader (leader: {})",
            self.id, self.raw.raft.leader_id
        ))
    }

    fn propose(&mut self, data: Vec<u8>, reply: oneshot::Sender<Result<Applied>>) {
        if self.raw.raft.state != StateRole::Leader {
            let _ = reply.send(Err(self.not_leader()));
            return;
        }
        // Raft's own writes (hard state, entries already accepted) keep the
        // reserve; only new work is turned away.
        if let Err(e) = self.store.space().admit() {
            let _ = reply.send(Err(e));
            return;
        }
        let proposal = self.new_proposal_id();
        let before = self.raw.raft.raft_log.last_index();
        match self.raw.propose(proposal.to_be_bytes().to_vec(), data) {
            Ok(()) => {
                let index = self.raw.raft.raft_log.last_index();
                if index == before {
                    let _ = reply.send(Err(self.not_leader()));
                    return;
                }
                self.metrics.proposals.inc();
                self.pending.insert(
                    index,
                    Pending {
                        proposal,
                        waiter: Waiter::Command(reply),
                    },
                );
            }
            Err(e) => {
                let _ = reply.send(Err(Error::from(e)));
            }
        }
    }

    fn change_members(&mut self, change: MemberChange, reply: oneshot::Sender<Result<u64>>) {
        if self.raw.raft.state != StateRole::Leader {
            let _ = reply.send(Err(self.not_leader()));
            return;
        }
        if let Err(e) = self.store.space().admit() {
            let _ = reply.send(Err(e));
            return;
        }
        if self.raw.raft.has_pending_conf() {
            let _ = reply.send(Err(Error::Conflict(
                "another membership change is still being applied; retry shortly".into(),
            )));
            return;
        }
        let mut cc = ConfChange::default();
        match &change {
            MemberChange::Add(m) => {
                cc.set_change_type(ConfChangeType::AddNode);
                cc.node_id = m.id;
                cc.context = m.encode_to_vec().into();
            }
            MemberChange::Remove(id) => {
                cc.set_change_type(ConfChangeType::RemoveNode);
                cc.node_id = *id;
            }
        }
        let proposal = self.new_proposal_id();
        let before = self.raw.raft.raft_log.last_index();
        match self
            .raw
            .propose_conf_change(proposal.to_be_bytes().to_vec(), cc)
        {
            Ok(()) if self.raw.raft.raft_log.last_index() > before => {
                let index = self.raw.raft.raft_log.last_index();
                self.pending.insert(
                    index,
                    Pending {
                        proposal,
                        waiter: Waiter::Members(reply),
                    },
                );
            }
            Ok(()) => {
                let _ = reply.send(Err(Error::Conflict(
                    "membership change was dropped; retry".into(),
                )));
            }
            Err(e) => {
                let _ = reply.send(Err(Error::from(e)));
            }
        }
    }

    /// Advances the raft clock by one tick.
    pub fn tick(&mut self) {
        self.raw.tick();
    }

    /// Processes a Ready if there is one: send, persist, apply, advance.
    pub fn on_ready(&mut self) -> Result<()> {
        if self.raw.raft.state != StateRole::Leader {
            let pending = std::mem::take(&mut self.pending_reads).into_values();
            let deferred = std::mem::take(&mut self.deferred_reads)
                .into_iter()
                .map(|(_, r)| r);
            for reply in pending.chain(deferred) {
                let _ = reply.send(Err(self.not_leader()));
            }
        } else if !self.deferred_reads.is_empty() && self.raw.raft.commit_to_current_term() {
            for (id, reply) in std::mem::take(&mut self.deferred_reads) {
                self.raw.read_index(id.to_be_bytes().to_vec());
                self.pending_reads.insert(id, reply);
            }
        }
        if !self.raw.has_ready() {
            self.publish_status();
            return Ok(());
        }
        let mut ready = self.raw.ready();
        for rs in ready.take_read_states() {
            let id = <[u8; 8]>::try_from(rs.request_ctx.as_slice()).map(u64::from_be_bytes);
            if let Some(reply) = id.ok().and_then(|id| self.pending_reads.remove(&id)) {
                let _ = reply.send(Ok(rs.index));
            }
        }
        if !ready.messages().is_empty() {
            self.transport.send(ready.take_messages());
        }
        if !ready.snapshot().is_empty() {
            let snap = ready.snapshot().clone();
            self.store.apply_snapshot(&snap)?;
            let version = self.store.state().read().map(|s| s.version).unwrap_or(0);
            self.feed.reset(version);
            self.metrics.snapshots_installed.inc();
            info!(
                index = snap.get_metadata().index,
                version, "installed snapshot from leader"
            );
        }
        // New entries and the hard state first, synced only when raft
        // requires it (new entries, term or vote), and acknowledged at
        // once: a follower's ack (and so every client's commit) does not
        // wait for this master to apply what was committed before, which
        // takes tens of ms for a round of thousands of placements.
        let committed = ready.take_committed_entries();
        let mut batch = self.store.batch();
        batch.append(ready.entries())?;
        if let Some(hs) = ready.hs() {
            batch.hard_state(hs);
        }
        if ready.must_sync() {
            batch.sync();
        }
        let appended = ready.entries().len();
        let timing = self.store.write_batch(batch)?;
        if timing.synced {
            self.metrics
                .fsync_seconds
                .observe(timing.elapsed.as_secs_f64());
            self.metrics.entries_per_write.observe(appended as f64);
        }
        if !ready.persisted_messages().is_empty() {
            self.transport.send(ready.take_persisted_messages());
        }
        // Then what the (already durable) committed entries change, in a
        // write of its own that needs no sync: after a crash the log
        // replays whatever it lost. Answers go out once it is written.
        if !committed.is_empty() {
            let mut batch = self.store.batch();
            let announce = self.apply(committed, &mut batch)?;
            self.store.write_batch(batch)?;
            self.announce(announce);
        }
        let mut light = self.raw.advance(ready);
        let mut batch = self.store.batch();
        if let Some(commit) = light.commit_index() {
            batch.commit(commit);
        }
        if !light.messages().is_empty() {
            self.transport.send(light.take_messages());
        }
        let announce = self.apply(light.take_committed_entries(), &mut batch)?;
        self.store.write_batch(batch)?;
        self.announce(announce);
        self.raw.advance_apply();
        self.maybe_compact()?;
        self.publish_status();
        Ok(())
    }

    fn maybe_compact(&mut self) -> Result<()> {
        let applied = self.raw.raft.raft_log.applied;
        if applied.saturating_sub(self.store.truncated_index()) > self.snapshot_entries
            && self.store.compact(applied)?
        {
            self.metrics.compactions.inc();
            debug!(index = applied, "compacted the raft log");
        }
        Ok(())
    }

    fn publish_status(&mut self) {
        let raft = &self.raw.raft;
        let progress = if raft.state == StateRole::Leader {
            raft.prs()
                .iter()
                .map(|(id, pr)| PeerProgress {
                    id: *id,
                    matched: pr.matched,
                    recent_active: pr.recent_active || *id == self.id,
                })
                .collect::<Vec<_>>()
        } else {
            Vec::new()
        };
        let mut voters: Vec<u64> = raft.prs().conf().voters().ids().iter().collect();
        voters.sort_unstable();
        let (applied, version) = {
            let st = self.store.state();
            let st = st.read().unwrap_or_else(|p| p.into_inner());
            (st.applied_index, st.version)
        };
        let mut progress = progress;
        progress.sort_by_key(|p| p.id);
        let status = NodeStatus {
            id: self.id,
            role: role_name(raft.state),
            term: raft.term,
            leader: raft.leader_id,
            commit_index: raft.raft_log.committed,
            applied_index: applied,
            version,
            first_index: self.store.truncated_index() + 1,
            voters,
            progress,
            removed: self.removed,
        };
        self.metrics.term.set(status.term as i64);
        self.metrics
            .is_leader
            .set(i64::from(raft.state == StateRole::Leader));
        self.metrics.commit_index.set(status.commit_index as i64);
        self.metrics.applied_index.set(applied as i64);
        self.metrics
            .apply_lag
            .set(status.commit_index.saturating_sub(applied) as i64);
        self.metrics.state_version.set(version as i64);
        self.status.send_if_modified(|old| {
            if (old.role, old.term, old.leader) != (status.role, status.term, status.leader) {
                // Why leadership moved is the first question after a stall.
                info!(
                    id = status.id,
                    role = status.role,
                    term = status.term,
                    leader = status.leader,
                    was_role = old.role,
                    was_term = old.term,
                    "raft role changed"
                );
            }
            if *old != status {
                *old = status;
                true
            } else {
                false
            }
        });
    }

    /// The transport (for the harness).
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// This driver's raft id.
    pub fn id(&self) -> u64 {
        self.id
    }
}

/// How long the driver polls for input after a busy round before parking.
const SPIN: std::time::Duration = std::time::Duration::from_micros(500);

fn spin_recv(rx: &Receiver<Msg>, for_at_most: std::time::Duration) -> Option<Msg> {
    let until = Instant::now() + for_at_most;
    loop {
        if let Ok(msg) = rx.try_recv() {
            return Some(msg);
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::yield_now();
    }
}

/// Runs the driver on the current thread until shutdown or a fatal error.
/// Many inputs are taken per round, so many proposals share one Ready and
/// one fsync (group commit).
pub fn run<T: Transport>(mut driver: Driver<T>, rx: Receiver<Msg>, settings: &RaftSettings) {
    let tick = settings.tick();
    let mut next_tick = Instant::now() + tick;
    let mut busy = false;
    loop {
        let wait = next_tick.saturating_duration_since(Instant::now());
        // Right after work, the next message (a follower's ack, the next
        // proposal) usually follows within microseconds: poll briefly
        // before parking the thread, whose wake-up costs far more on a VM.
        let first = if busy { spin_recv(&rx, SPIN) } else { None };
        let next = match first {
            Some(msg) => Ok(msg),
            None => rx.recv_timeout(wait),
        };
        busy = next.is_ok();
        match next {
            Ok(msg) => {
                if !driver.handle(msg) {
                    break;
                }
                let mut taken = 1;
                while taken < 65_536 {
                    match rx.try_recv() {
                        Ok(msg) => {
                            if !driver.handle(msg) {
                                return;
                            }
                            taken += 1;
                        }
                        Err(_) => break,
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        let now = Instant::now();
        if now >= next_tick {
            driver.tick();
            next_tick += tick;
            if next_tick < now {
                next_tick = now + tick;
            }
        }
        if let Err(e) = driver.on_ready() {
            // A storage failure leaves this master unable to keep its
            // promises; stop rather than diverge.
            if matches!(e, Error::DiskFull(_)) {
                tracing::error!(
                    error = %e,
                    "the data dir is full: stopping this master without acknowledging the \
                     failed write; once restarted it waits for room before it opens the store"
                );
            } else {
                tracing::error!(error = %e, "raft driver failed; stopping this master");
            }
            std::process::exit(70);
        }
    }
    info!(id = driver.id, "raft driver stopped");
}

/// Nice value of the raft threads (the driver and its network runtime; the
/// rest of the process runs at 0).
const RAFT_NICE: i32 = -5;

/// Lets the raft thread go first when the host's CPUs are contended: a
/// leader that waits behind its own reconciler, agent streams or another
/// tenant misses heartbeats and loses its term, which at 10,000 agents
/// costs a re-registration storm. Best effort: without the privilege
/// (CAP_SYS_NICE) the thread keeps the default priority.
pub fn raise_priority() {
    // On Linux, PRIO_PROCESS with a thread id sets that one thread.
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), RAFT_NICE) {
        tracing::debug!(
            tid = tid.as_raw_nonzero().get(),
            error = %e,
            "raft thread keeps the default CPU priority"
        );
    }
}
