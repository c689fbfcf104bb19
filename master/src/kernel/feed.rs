//! The change feed: every applied change, stamped with the state version,
//! kept in a bounded ring for consumers that resume, and broadcast live.
//!
//! ```text
//!  driver --publish(version, change)--> ring (last N) --> broadcast
//!                                           |                 |
//!  watcher(from) -- backlog from ring, or a snapshot --+-- live events
//! ```
//! Versions are deterministic across masters (they count applied commands),
//! so a consumer can resume on any master after a leader change.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use ocean_proto::internal::{Agent, Job, KvEntry, Task};
use tokio::sync::broadcast;

use crate::kernel::state::{job_of, Change, ClusterState};

/// The changes one command made, all at one version (a scheduling round
/// places many tasks in one command).
pub type Changes = Arc<ChangeSet>;

/// The changes of one version, with an index built on first use by the
/// watchers that follow a service-tree node: which changes carry a given
/// `tag.value` piece in their job's id. Every watcher on the master shares
/// it, so 1,000 watchers of one node look up their candidates instead of
/// each testing every change of a 1,000-task round.
#[derive(Debug)]
pub struct ChangeSet {
    changes: Box<[Change]>,
    by_piece: OnceLock<HashMap<u64, Vec<u32>>>,
}

impl ChangeSet {
    /// The changes of one version, in the order they were applied.
    pub fn new(changes: Vec<Change>) -> Self {
        ChangeSet {
            changes: changes.into_boxed_slice(),
            by_piece: OnceLock::new(),
        }
    }

    /// Positions, ascending, of the changes whose job id (a task's job's)
    /// carries `piece` (`tag.value`, e.g. `pdl.demo`). A superset when two
    /// pieces hash alike: callers still test each candidate.
    pub fn carrying(&self, piece: &str) -> &[u32] {
        let index = self.by_piece.get_or_init(|| {
            let mut index: HashMap<u64, Vec<u32>> = HashMap::new();
            for (i, c) in self.changes.iter().enumerate() {
                let Some(id) = tree_id(c) else { continue };
                for p in ocean_spec::tree::id_pieces(id) {
                    index.entry(piece_hash(p)).or_default().push(i as u32);
                }
            }
            index
        });
        index.get(&piece_hash(piece)).map_or(&[], Vec::as_slice)
    }
}

impl std::ops::Deref for ChangeSet {
    type Target = [Change];

    fn deref(&self) -> &[Change] {
        &self.changes
    }
}

impl From<Vec<Change>> for ChangeSet {
    fn from(changes: Vec<Change>) -> Self {
        ChangeSet::new(changes)
    }
}

/// The service-tree id a change belongs under: its job's. Agents and
/// framework keys are under no node.
pub fn tree_id(c: &Change) -> Option<&str> {
    match c {
        Change::JobPut(j) => Some(&j.id),
        Change::JobDeleted(id) => Some(id),
        Change::TaskPut(t) => Some(&t.job_id),
        Change::TaskRemoved(id) => Some(job_of(id).unwrap_or(id)),
        Change::AgentPut(_) | Change::KvPut(_) | Change::KvDeleted(_) => None,
    }
}

/// FNV-1a: cheap for short pieces, and collisions only cost a test.
fn piece_hash(piece: &str) -> u64 {
    piece.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// One item of the live stream.
#[derive(Debug, Clone)]
pub enum FeedItem {
    /// The changes of one version.
    Changes(u64, Changes),
    /// The state was replaced wholesale (a snapshot was installed): consumers
    /// must re-read a snapshot.
    Reset,
}

/// Where a new subscriber starts.
#[derive(Debug)]
pub enum Start {
    /// Replay these changes (all with version > the requested one), then
    /// follow the live stream.
    Backlog(Vec<(u64, Changes)>),
    /// The requested version is too old (or 0): here is the whole state at
    /// `version`, plus the changes already queued after it.
    Snapshot {
        version: u64,
        jobs: Vec<Arc<Job>>,
        agents: Vec<Arc<Agent>>,
        tasks: Vec<Arc<Task>>,
        kv: Vec<Arc<KvEntry>>,
        backlog: Vec<(u64, Changes)>,
    },
}

/// A subscription: where to start, and the live receiver.
#[derive(Debug)]
pub struct Subscription {
    /// What to send before the live stream.
    pub start: Start,
    /// Live items; a lagging receiver gets `RecvError::Lagged` and must
    /// resubscribe.
    pub live: broadcast::Receiver<FeedItem>,
}

#[derive(Debug)]
struct Ring {
    items: VecDeque<(u64, Changes)>,
    /// Every version `> floor` is in `items` (or was published after).
    floor: u64,
}

/// The change feed of one master.
#[derive(Debug)]
pub struct Feed {
    ring: Mutex<Ring>,
    tx: broadcast::Sender<FeedItem>,
    capacity: usize,
}

impl Feed {
    /// A feed that keeps the last `capacity` changes, starting at `version`.
    pub fn new(capacity: usize, version: u64) -> Arc<Self> {
        let (tx, _) = broadcast::channel(capacity.max(16));
        Arc::new(Feed {
            ring: Mutex::new(Ring {
                items: VecDeque::with_capacity(capacity.min(4096)),
                floor: version,
            }),
            tx,
            capacity,
        })
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes applied changes in version order, one item per version.
    pub fn publish(&self, changes: Vec<(u64, Changes)>) {
        if changes.is_empty() {
            return;
        }
        let mut ring = self.ring();
        for (v, c) in changes {
            if ring.items.len() == self.capacity {
                if let Some((old, _)) = ring.items.pop_front() {
                    ring.floor = old;
                }
            }
            ring.items.push_back((v, c.clone()));
            // No receivers is fine: nobody is watching.
            let _ = self.tx.send(FeedItem::Changes(v, c));
        }
    }

    /// The latest changes to jobs and tasks at or below `version`, newest
    /// first, at most `limit`, each object once (its newest change).
    pub fn recent(&self, limit: usize, version: u64) -> Vec<(u64, Change)> {
        let ring = self.ring();
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for (v, set) in ring.items.iter().rev().filter(|(v, _)| *v <= version) {
            for c in set.iter().rev() {
                let id = match c {
                    Change::JobPut(j) => j.id.as_str(),
                    Change::JobDeleted(id) => id.as_str(),
                    Change::TaskPut(t) => t.id.as_str(),
                    _ => continue,
                };
                if seen.insert(id.to_string()) {
                    out.push((*v, c.clone()));
                    if out.len() == limit {
                        return out;
                    }
                }
            }
        }
        out
    }

    /// The live stream alone, for consumers that re-read the state on
    /// every item (the reconciler).
    pub fn live(&self) -> broadcast::Receiver<FeedItem> {
        self.tx.subscribe()
    }

    /// The state was replaced by a snapshot at `version`.
    pub fn reset(&self, version: u64) {
        let mut ring = self.ring();
        ring.items.clear();
        ring.floor = version;
        let _ = self.tx.send(FeedItem::Reset);
    }

    /// Subscribes from `from` (exclusive). Consumers drop any live change
    /// with a version they already have.
    pub fn subscribe(&self, from: u64, state: &RwLock<ClusterState>) -> Subscription {
        let ring = self.ring();
        let live = self.tx.subscribe();
        let start = if from > 0 && from >= ring.floor {
            Start::Backlog(
                ring.items
                    .iter()
                    .filter(|(v, _)| *v > from)
                    .cloned()
                    .collect(),
            )
        } else {
            let st = state.read().unwrap_or_else(|p| p.into_inner());
            let version = st.version;
            Start::Snapshot {
                version,
                jobs: st.jobs.values().cloned().collect(),
                agents: st.agents.values().cloned().collect(),
                tasks: st.tasks.values().cloned().collect(),
                kv: st.kv.values().cloned().collect(),
                backlog: ring
                    .items
                    .iter()
                    .filter(|(v, _)| *v > version)
                    .cloned()
                    .collect(),
            }
        };
        Subscription { start, live }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn del(id: &str) -> Changes {
        Arc::new(vec![Change::JobDeleted(id.into())].into())
    }

    #[test]
    fn a_version_indexes_its_changes_by_the_pieces_of_their_job_ids() {
        let job = |pdl: &str| format!("cop.c_owt.o_pdl.{pdl}_service.s_job.j_cluster.c3");
        let task = |pdl: &str| Task {
            id: format!("{}.0001", job(pdl)),
            job_id: job(pdl),
            ..Task::default()
        };
        let set = ChangeSet::new(vec![
            Change::JobDeleted(job("demo")),
            Change::JobDeleted(job("demo2")),
            Change::TaskPut(Arc::new(task("demo"))),
            Change::AgentPut(Arc::new(Agent::default())),
            Change::TaskRemoved(format!("{}.0002", job("demo2"))),
        ]);
        assert_eq!(set.carrying("pdl.demo"), &[0, 2]);
        assert_eq!(set.carrying("pdl.demo2"), &[1, 4]);
        assert_eq!(set.carrying("cluster.c3"), &[0, 1, 2, 4]);
        assert_eq!(set.carrying("cluster.c"), &[] as &[u32]);
        assert_eq!(set.carrying("pdl.other"), &[] as &[u32]);
        assert_eq!(set.len(), 5);
    }

    #[test]
    fn resume_from_ring_or_snapshot() {
        let feed = Feed::new(3, 0);
        let state = RwLock::new(ClusterState::default());
        feed.publish(vec![(1, del("a")), (2, del("b")), (3, del("c"))]);
        match feed.subscribe(1, &state).start {
            Start::Backlog(b) => assert_eq!(b.iter().map(|x| x.0).collect::<Vec<_>>(), vec![2, 3]),
            other => panic!("expected backlog, got {other:?}"),
        }
        feed.publish(vec![(4, del("d")), (5, del("e"))]);
        // Versions 1 and 2 fell out of the ring: resuming from 0 or 1 needs
        // a snapshot, from 2 the ring still has everything after it.
        assert!(matches!(
            feed.subscribe(0, &state).start,
            Start::Snapshot { .. }
        ));
        assert!(matches!(
            feed.subscribe(1, &state).start,
            Start::Snapshot { .. }
        ));
        match feed.subscribe(2, &state).start {
            Start::Backlog(b) => {
                assert_eq!(b.iter().map(|x| x.0).collect::<Vec<_>>(), vec![3, 4, 5])
            }
            other => panic!("expected backlog, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn live_items_follow_subscription() {
        let feed = Feed::new(8, 0);
        let state = RwLock::new(ClusterState::default());
        let mut sub = feed.subscribe(0, &state);
        feed.publish(vec![(1, del("a"))]);
        feed.reset(10);
        assert!(matches!(
            sub.live.recv().await.unwrap(),
            FeedItem::Changes(1, _)
        ));
        assert!(matches!(sub.live.recv().await.unwrap(), FeedItem::Reset));
    }
}
