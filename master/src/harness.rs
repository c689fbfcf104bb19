//! A deterministic in-memory harness for the raft driver: several
//! [`Driver`]s on real RocksDB stores (temp dirs, fsync off), an in-memory
//! network that a seed shuffles and drops, and a clock made of `tick()`
//! calls. No threads, no sockets, no sleeps.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use ocean_proto::internal::Member;
use raft::eraftpb::Message;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tokio::sync::{oneshot, watch};

use crate::config::RaftSettings;
use crate::error::Result;
use crate::kernel::feed::Feed;
use crate::kernel::node::{Driver, Msg, NodeStatus, Transport};
use crate::kernel::state::{put_job_command, Applied, ClusterState};
use crate::kernel::storage::RaftStore;
use crate::metrics::Metrics;

#[derive(Clone, Default)]
struct MemTransport {
    outbox: Arc<Mutex<Vec<Message>>>,
}

impl Transport for MemTransport {
    fn send(&mut self, msgs: Vec<Message>) {
        self.outbox.lock().unwrap().extend(msgs);
    }
}

struct Node {
    driver: Option<Driver<MemTransport>>,
    store: RaftStore,
    outbox: Arc<Mutex<Vec<Message>>>,
    metrics: Metrics,
    _dir: tempfile::TempDir,
    status: watch::Receiver<NodeStatus>,
}

struct Cluster {
    nodes: Vec<Node>,
    rng: StdRng,
    /// Nodes cut off from everyone.
    isolated: BTreeSet<u64>,
    drop_percent: u32,
    settings: RaftSettings,
}

fn settings(snapshot_entries: u64) -> RaftSettings {
    RaftSettings {
        tick_ms: 10,
        election_ticks: 10,
        heartbeat_ticks: 2,
        snapshot_entries,
        fsync: false,
        min_free_disk_mib: 0,
    }
}

fn open_driver(
    id: u64,
    store: RaftStore,
    s: &RaftSettings,
    metrics: Metrics,
) -> (
    Driver<MemTransport>,
    Arc<Mutex<Vec<Message>>>,
    watch::Receiver<NodeStatus>,
) {
    let transport = MemTransport::default();
    let outbox = transport.outbox.clone();
    let version = store.state().read().unwrap().version;
    let (tx, rx) = watch::channel(NodeStatus::initial(id, version));
    let d = Driver::new(id, store, s, transport, Feed::new(64, version), metrics, tx).unwrap();
    (d, outbox, rx)
}

impl Cluster {
    fn new(n: u64, seed: u64, snapshot_entries: u64) -> Self {
        let s = settings(snapshot_entries);
        let members: Vec<Member> = (1..=n)
            .map(|id| Member {
                id,
                grpc_addr: format!("mem:{id}"),
                http_addr: String::new(),
            })
            .collect();
        let nodes = (1..=n)
            .map(|id| {
                let dir = tempfile::tempdir().unwrap();
                let store = RaftStore::open(dir.path(), false).unwrap();
                store.bootstrap(&members).unwrap();
                let metrics = Metrics::new();
                let (d, outbox, status) = open_driver(id, store.clone(), &s, metrics.clone());
                Node {
                    driver: Some(d),
                    store,
                    outbox,
                    metrics,
                    _dir: dir,
                    status,
                }
            })
            .collect();
        Cluster {
            nodes,
            rng: StdRng::seed_from_u64(seed),
            isolated: BTreeSet::new(),
            drop_percent: 0,
            settings: s,
        }
    }

    fn node(&mut self, id: u64) -> &mut Driver<MemTransport> {
        self.nodes[(id - 1) as usize]
            .driver
            .as_mut()
            .expect("node is running")
    }

    /// One round: every live node ticks and processes a Ready, then the
    /// network delivers (shuffled, some dropped) what they sent.
    fn round(&mut self) {
        for n in &mut self.nodes {
            if let Some(d) = n.driver.as_mut() {
                d.tick();
                d.on_ready().unwrap();
            }
        }
        self.deliver();
    }

    fn deliver(&mut self) {
        let stopped = self.deliver_or_stop();
        assert!(stopped.is_empty(), "masters stopped: {stopped:?}");
    }

    /// [`Cluster::deliver`], stopping (as the process would exit) each
    /// node whose Ready fails; returns those nodes and their errors.
    fn deliver_or_stop(&mut self) -> Vec<(u64, crate::error::Error)> {
        let mut stopped = Vec::new();
        for _ in 0..4 {
            let mut msgs: Vec<Message> = Vec::new();
            for n in &self.nodes {
                msgs.append(&mut n.outbox.lock().unwrap());
            }
            if msgs.is_empty() {
                return stopped;
            }
            msgs.shuffle(&mut self.rng);
            for m in msgs {
                if self.isolated.contains(&m.from) || self.isolated.contains(&m.to) {
                    continue;
                }
                if self.drop_percent > 0 && self.rng.gen_range(0..100) < self.drop_percent {
                    continue;
                }
                let to = m.to;
                let Some(n) = self.nodes.get_mut((to - 1) as usize) else {
                    continue;
                };
                if let Some(d) = n.driver.as_mut() {
                    d.handle(Msg::Raft(Box::new(m)));
                    if let Err(e) = d.on_ready() {
                        n.driver = None;
                        stopped.push((to, e));
                    }
                }
            }
        }
        stopped
    }

    fn leaders(&self) -> Vec<(u64, u64)> {
        self.nodes
            .iter()
            .filter(|n| n.driver.is_some())
            .map(|n| n.status.borrow().clone())
            .filter(|s| s.role == "leader")
            .map(|s| (s.id, s.term))
            .collect()
    }

    fn run_until_leader(&mut self, excluding: &BTreeSet<u64>) -> u64 {
        for _ in 0..2_000 {
            self.round();
            let live: Vec<(u64, u64)> = self
                .leaders()
                .into_iter()
                .filter(|(id, _)| !excluding.contains(id))
                .collect();
            if live.len() == 1 {
                return live[0].0;
            }
        }
        panic!("no leader elected");
    }

    fn propose(&mut self, id: u64, n: u64) -> oneshot::Receiver<Result<Applied>> {
        let (tx, rx) = oneshot::channel();
        let cmd = put_job_command(format!("job-{n}"), format!("{{\"n\":{n}}}").into_bytes());
        self.node(id).handle(Msg::Propose {
            data: prost::Message::encode_to_vec(&cmd),
            reply: tx,
        });
        rx
    }

    fn state(&self, id: u64) -> ClusterState {
        self.nodes[(id - 1) as usize]
            .store
            .state()
            .read()
            .unwrap()
            .clone()
    }

    fn settle(&mut self, rounds: usize) {
        for _ in 0..rounds {
            self.round();
        }
    }

    fn restart(&mut self, id: u64) {
        let idx = (id - 1) as usize;
        self.nodes[idx].driver = None;
        let path = self.nodes[idx]._dir.path().to_path_buf();
        // Drop every handle to the old DB before reopening it.
        let placeholder = RaftStore::open(&tempfile::tempdir().unwrap().keep(), false).unwrap();
        self.nodes[idx].store = placeholder;
        let store = RaftStore::open(&path, false).unwrap();
        let (d, outbox, status) = open_driver(
            id,
            store.clone(),
            &self.settings,
            self.nodes[idx].metrics.clone(),
        );
        let n = &mut self.nodes[idx];
        n.driver = Some(d);
        n.store = store;
        n.outbox = outbox;
        n.status = status;
    }
}

fn same_jobs(a: &ClusterState, b: &ClusterState) -> bool {
    a.version == b.version && a.jobs == b.jobs
}

#[test]
fn elects_one_leader_and_replicates() {
    for seed in 0..5 {
        let mut c = Cluster::new(3, seed, 1_000);
        let leader = c.run_until_leader(&BTreeSet::new());
        let mut replies: Vec<_> = (0..50).map(|n| c.propose(leader, n)).collect();
        c.settle(20);
        for r in &mut replies {
            let applied = r.try_recv().expect("reply").expect("committed");
            assert!(applied.version >= 1);
        }
        let s1 = c.state(1);
        assert_eq!(s1.jobs.len(), 50);
        assert!(same_jobs(&s1, &c.state(2)), "seed {seed}");
        assert!(same_jobs(&s1, &c.state(3)), "seed {seed}");
        // At most one leader per term, ever.
        let leaders = c.leaders();
        assert_eq!(leaders.len(), 1);
    }
}

#[test]
fn isolated_leader_is_replaced_and_its_uncommitted_write_fails() {
    let mut c = Cluster::new(3, 7, 1_000);
    let old = c.run_until_leader(&BTreeSet::new());
    let old_term = c.nodes[(old - 1) as usize].status.borrow().term;
    c.isolated.insert(old);
    let mut lost = c.propose(old, 999);
    let exclude = BTreeSet::from([old]);
    let new = c.run_until_leader(&exclude);
    assert_ne!(new, old);
    assert!(c.nodes[(new - 1) as usize].status.borrow().term > old_term);
    let mut ok = c.propose(new, 1);
    c.settle(20);
    assert!(ok.try_recv().unwrap().is_ok());
    c.isolated.clear();
    c.settle(200);
    assert!(
        lost.try_recv().unwrap().is_err(),
        "a write on an isolated leader must not be acknowledged"
    );
    assert!(!c.state(old).jobs.contains_key("job-999"));
    assert!(same_jobs(&c.state(1), &c.state(2)));
    assert!(same_jobs(&c.state(1), &c.state(3)));
}

#[test]
fn lagging_follower_catches_up_by_snapshot() {
    let mut c = Cluster::new(3, 11, 20);
    let leader = c.run_until_leader(&BTreeSet::new());
    let lagging = if leader == 3 { 2 } else { 3 };
    c.isolated.insert(lagging);
    for n in 0..200 {
        drop(c.propose(leader, n));
        if n % 10 == 0 {
            c.round();
        }
    }
    c.settle(30);
    assert!(c.nodes[(leader - 1) as usize].store.truncated_index() > 100);
    c.isolated.clear();
    c.settle(300);
    assert!(
        c.nodes[(lagging - 1) as usize]
            .metrics
            .snapshots_installed
            .get()
            >= 1
    );
    assert_eq!(c.state(lagging).jobs.len(), 200);
    assert!(same_jobs(&c.state(leader), &c.state(lagging)));
}

#[test]
fn lossy_network_still_converges() {
    let mut c = Cluster::new(3, 3, 50);
    c.drop_percent = 20;
    let mut acked = Vec::new();
    for n in 0..100 {
        let leader = c.run_until_leader(&BTreeSet::new());
        let mut r = c.propose(leader, n);
        c.settle(15);
        if let Ok(Ok(_)) = r.try_recv() {
            acked.push(n);
        }
    }
    c.drop_percent = 0;
    c.settle(300);
    assert!(
        acked.len() > 50,
        "too few writes acknowledged: {}",
        acked.len()
    );
    for n in acked {
        assert!(
            c.state(1).jobs.contains_key(&format!("job-{n}")),
            "acknowledged write {n} lost"
        );
    }
    assert!(same_jobs(&c.state(1), &c.state(2)));
    assert!(same_jobs(&c.state(1), &c.state(3)));
}

#[test]
fn restart_of_every_node_recovers_state() {
    let mut c = Cluster::new(3, 5, 30);
    let leader = c.run_until_leader(&BTreeSet::new());
    for n in 0..100 {
        drop(c.propose(leader, n));
    }
    c.settle(50);
    let before = c.state(1);
    assert_eq!(before.jobs.len(), 100);
    for id in 1..=3 {
        c.restart(id);
    }
    for id in 1..=3 {
        assert!(
            same_jobs(&c.state(id), &before),
            "node {id} lost state on restart"
        );
    }
    let leader = c.run_until_leader(&BTreeSet::new());
    let mut r = c.propose(leader, 1000);
    c.settle(20);
    assert!(r.try_recv().unwrap().is_ok());
    assert_eq!(c.state(2).jobs.len(), 101);
}

#[test]
fn a_read_index_asked_of_a_brand_new_leader_is_answered() {
    for seed in 0..5 {
        let mut c = Cluster::new(3, seed, 1_000);
        let leader = c.run_until_leader(&BTreeSet::new());
        // Asked at once: the leader may not have committed an entry of its
        // term yet, which raft-rs answers by dropping the request.
        let (tx, mut rx) = oneshot::channel();
        c.node(leader).handle(Msg::ReadIndex { reply: tx });
        c.settle(20);
        let index = rx.try_recv().expect("a reply").expect("a read index");
        assert!(index > 0, "seed {seed}");
    }
}

/// A command from a newer Ocean (a kind this build cannot decode, or one
/// marked as needing a newer log format) stops every master before it
/// applies anything of the batch: the state stays as it was, with a clear
/// error, instead of applying the entry as a no-op or differently.
#[test]
fn a_command_from_a_newer_version_stops_apply_and_changes_nothing() {
    use ocean_proto::internal::{command, Command, Noop};
    // Field 98, an empty message: a command kind this build has no
    // variant for, as a newer leader would write it.
    let unknown_kind = vec![0x92, 0x06, 0x00];
    let newer_field = prost::Message::encode_to_vec(&Command {
        kind: Some(command::Kind::Noop(Noop {})),
        min_version: crate::kernel::state::format::LOG_FORMAT + 1,
    });
    for data in [unknown_kind, newer_field] {
        let mut c = Cluster::new(3, 11, 1_000);
        let leader = c.run_until_leader(&BTreeSet::new());
        let _ok: Vec<_> = (0..3).map(|n| c.propose(leader, n)).collect();
        c.settle(20);
        let before: Vec<ClusterState> = (1..=3).map(|id| c.state(id)).collect();
        let (tx, _rx) = oneshot::channel();
        c.node(leader).handle(Msg::Propose { data, reply: tx });
        let mut stopped = Vec::new();
        for _ in 0..40 {
            for (i, n) in c.nodes.iter_mut().enumerate() {
                let Some(d) = n.driver.as_mut() else { continue };
                d.tick();
                if let Err(e) = d.on_ready() {
                    // The process exits on this error; so does the node.
                    n.driver = None;
                    stopped.push((i as u64 + 1, e));
                }
            }
            stopped.extend(c.deliver_or_stop());
        }
        let stopped: BTreeSet<u64> = stopped
            .into_iter()
            .map(|(id, e)| {
                let msg = e.to_string();
                assert!(msg.contains("upgrade this master"), "master {id}: {msg}");
                id
            })
            .collect();
        assert_eq!(stopped.len(), 3, "every master stops at the entry");
        for id in 1..=3 {
            let after = c.state(id);
            assert_eq!(
                after.version,
                before[id as usize - 1].version,
                "master {id}"
            );
            assert_eq!(after.jobs.len(), 3, "master {id}");
        }
    }
}
