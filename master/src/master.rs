//! [`Master`]: the handle the APIs use — propose (locally on the leader, or
//! forwarded to it), read state, follow the leader — and [`run`], which
//! wires storage, the raft driver thread, the transport and the servers.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{mpsc as std_mpsc, Arc, Mutex, RwLock};
use std::time::Duration;

use ocean_proto::raft::raft_transport_client::RaftTransportClient;
use ocean_proto::raft::{forward_request, AddMember, ForwardRequest};
use ocean_proto::v1::{command, Command, Member};
use prost::Message as _;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tonic::transport::Channel;
use tracing::{info, warn};

use crate::config::MasterConfig;
use crate::error::{Error, Result};
use crate::feed::Feed;
use crate::metrics::Metrics;
use crate::node::{self, Driver, MemberChange, Msg, NodeStatus};
use crate::state::{Applied, ClusterState, Outcome};
use crate::storage::RaftStore;
use crate::transport::{channel, GrpcTransport, PeerHealth};

/// How long a write waits for a leader and for its commit.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// A running master, shared by its API servers.
#[derive(Clone, Debug)]
pub struct Master {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    id: u64,
    driver: std_mpsc::Sender<Msg>,
    status: watch::Receiver<NodeStatus>,
    state: Arc<RwLock<ClusterState>>,
    feed: Arc<Feed>,
    metrics: Metrics,
    health: Arc<PeerHealth>,
    forward_clients: Mutex<HashMap<String, RaftTransportClient<Channel>>>,
    grpc_addr: String,
    http_addr: String,
    /// False while joining: raft traffic that arrives before the leader has
    /// (re)added this master carries replication progress from before it
    /// lost its data, which raft-rs rightly refuses to trust.
    accepting_raft: std::sync::atomic::AtomicBool,
}

impl Master {
    /// This master's raft id.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The latest status published by the driver.
    pub fn status(&self) -> NodeStatus {
        self.inner.status.borrow().clone()
    }

    /// The shared state (read-only use).
    pub fn state(&self) -> &Arc<RwLock<ClusterState>> {
        &self.inner.state
    }

    /// Runs `f` on the state under its read lock.
    pub fn read<R>(&self, f: impl FnOnce(&ClusterState) -> R) -> R {
        let st = self.inner.state.read().unwrap_or_else(|p| p.into_inner());
        f(&st)
    }

    /// The change feed.
    pub fn feed(&self) -> &Arc<Feed> {
        &self.inner.feed
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Milliseconds since a peer last acknowledged raft traffic.
    pub fn peer_since_ok(&self, peer: u64) -> Option<u64> {
        self.inner.health.since_ok(peer)
    }

    /// The known leader and its addresses.
    pub fn leader(&self) -> Option<Member> {
        let leader = self.status().leader;
        if leader == 0 {
            return None;
        }
        if leader == self.inner.id {
            return Some(Member {
                id: leader,
                grpc_addr: self.inner.grpc_addr.clone(),
                http_addr: self.inner.http_addr.clone(),
            });
        }
        self.read(|st| st.members.get(&leader).cloned())
            .or(Some(Member {
                id: leader,
                ..Default::default()
            }))
    }

    /// Whether raft traffic is taken (false until a joining master is in).
    pub fn accepting_raft(&self) -> bool {
        self.inner
            .accepting_raft
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Records the address a peer announced in its raft traffic.
    pub fn heard_from(&self, peer: u64, addr: &str) {
        self.inner.health.heard(peer, addr);
    }

    /// The sender into the raft driver (the transport server feeds it).
    pub fn driver(&self) -> &std_mpsc::Sender<Msg> {
        &self.inner.driver
    }

    /// Waits until this master has applied state `version` (bounded).
    pub async fn wait_for_version(&self, version: u64, timeout: Duration) -> bool {
        let mut rx = self.inner.status.clone();
        let reached = tokio::time::timeout(timeout, async {
            rx.wait_for(|s| s.version >= version).await.is_ok()
        })
        .await;
        matches!(reached, Ok(true))
    }

    /// Proposes a command on this master, which must be the leader, and
    /// waits for it to be applied.
    pub async fn propose_local(&self, cmd: Command) -> Result<Applied> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .driver
            .send(Msg::Propose { cmd, reply: tx })
            .map_err(|_| Error::ShuttingDown)?;
        match tokio::time::timeout(WRITE_TIMEOUT, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Error::ShuttingDown),
            Err(_) => Err(Error::NotCommitted(self.no_quorum_reason())),
        }
    }

    fn no_quorum_reason(&self) -> String {
        let s = self.status();
        let n = s.voters.len().max(1);
        format!(
            "not committed within {}s: master {} cannot reach a majority ({} of {}) of the masters",
            WRITE_TIMEOUT.as_secs(),
            self.inner.id,
            n / 2 + 1,
            n
        )
    }

    /// Applies a membership change on this master, which must be the leader.
    pub async fn change_members_local(&self, change: MemberChange) -> Result<u64> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .driver
            .send(Msg::ChangeMembers { change, reply: tx })
            .map_err(|_| Error::ShuttingDown)?;
        match tokio::time::timeout(WRITE_TIMEOUT, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Error::ShuttingDown),
            Err(_) => Err(Error::NotCommitted(self.no_quorum_reason())),
        }
    }

    fn forward_client(&self, addr: &str) -> Result<RaftTransportClient<Channel>> {
        let mut clients = self
            .inner
            .forward_clients
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(addr) {
            return Ok(c.clone());
        }
        let ch = channel(addr).map_err(|e| Error::Config {
            field: "members".into(),
            reason: format!("bad gRPC address '{addr}': {e}"),
        })?;
        let c = RaftTransportClient::new(ch)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        clients.insert(addr.to_string(), c.clone());
        Ok(c)
    }

    /// Proposes a command through the leader, wherever it is: locally when
    /// this master leads, else forwarded over gRPC. Retries across leader
    /// changes until [`WRITE_TIMEOUT`].
    pub async fn propose(&self, cmd: Command) -> Result<Applied> {
        let bytes = cmd.encode_to_vec();
        let result = self
            .through_leader(
                || self.propose_local(cmd.clone()),
                ForwardRequest {
                    kind: Some(forward_request::Kind::Command(bytes.clone())),
                },
            )
            .await?;
        match result {
            Routed::Local(applied) => Ok(applied),
            Routed::Forwarded(version) => {
                // The leader applied it; make our reads see it too.
                let _ = self.wait_for_version(version, WRITE_TIMEOUT).await;
                Ok(Applied {
                    outcome: Outcome::Noop,
                    version,
                    change: None,
                })
            }
        }
    }

    /// Adds or removes a master through the leader.
    pub async fn change_members(&self, change: MemberChange) -> Result<u64> {
        let req = ForwardRequest {
            kind: Some(match &change {
                MemberChange::Add(m) => forward_request::Kind::AddMember(AddMember {
                    id: m.id,
                    grpc_addr: m.grpc_addr.clone(),
                    http_addr: m.http_addr.clone(),
                    rejoin: false,
                }),
                MemberChange::Remove(id) => forward_request::Kind::RemoveMember(*id),
            }),
        };
        match self
            .through_leader(|| self.change_members_local(change.clone()), req)
            .await?
        {
            Routed::Local(index) => Ok(index),
            Routed::Forwarded(v) => Ok(v),
        }
    }

    async fn through_leader<T, F, Fut>(
        &self,
        local: F,
        forward: ForwardRequest,
    ) -> Result<Routed<T>>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let deadline = tokio::time::Instant::now() + WRITE_TIMEOUT;
        let mut status_rx = self.inner.status.clone();
        loop {
            let status = status_rx.borrow_and_update().clone();
            if status.removed {
                return Err(Error::Conflict(format!(
                    "master {} was removed from the cluster",
                    self.inner.id
                )));
            }
            if status.leader == self.inner.id {
                match local().await {
                    Err(Error::NoLeader(_)) => {}
                    other => return other.map(Routed::Local),
                }
            } else if status.leader != 0 {
                let addr = self
                    .read(|st| st.members.get(&status.leader).map(|m| m.grpc_addr.clone()))
                    .or_else(|| self.inner.health.address(status.leader));
                if let Some(addr) = addr {
                    let mut client = self.forward_client(&addr)?;
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    match tokio::time::timeout(left, client.forward(forward.clone())).await {
                        Ok(Ok(resp)) => return Ok(Routed::Forwarded(resp.into_inner().version)),
                        Ok(Err(status)) => match status.code() {
                            // Not (or no longer) the leader, or unreachable: retry.
                            tonic::Code::Unavailable | tonic::Code::Unknown => {}
                            _ => return Err(crate::api::error::from_status(status)),
                        },
                        Err(_) => return Err(Error::NotCommitted(self.no_quorum_reason())),
                    }
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(if status.leader == 0 {
                    Error::NoLeader(format!(
                        "no leader elected within {}s: a majority of the {} masters is unreachable from master {}",
                        WRITE_TIMEOUT.as_secs(),
                        status.voters.len(),
                        self.inner.id
                    ))
                } else {
                    Error::NotCommitted(self.no_quorum_reason())
                });
            }
            // Wait for a leader change, but poll too: a forward to a dead
            // leader fails before anyone notices it is dead.
            let _ = tokio::time::timeout(Duration::from_millis(10), status_rx.changed()).await;
        }
    }
}

enum Routed<T> {
    Local(T),
    Forwarded(u64),
}

/// Builds a set-member command (a master announcing its addresses).
fn set_member_command(m: Member) -> Command {
    Command {
        kind: Some(command::Kind::SetMember(m)),
    }
}

/// A started master: its handle and what to await for shutdown.
#[derive(Debug)]
pub struct Started {
    /// The handle.
    pub master: Master,
    driver_thread: Option<std::thread::JoinHandle<()>>,
}

impl Started {
    /// Stops the raft driver and waits for it.
    pub fn stop(mut self) {
        let _ = self.master.inner.driver.send(Msg::Shutdown);
        if let Some(t) = self.driver_thread.take() {
            let _ = t.join();
        }
    }
}

/// Opens the store, bootstraps or joins, and starts the raft driver thread.
/// The caller serves the APIs (see [`run`]).
pub async fn start(config: &MasterConfig) -> Result<Started> {
    config.validate()?;
    std::fs::create_dir_all(&config.data_dir).map_err(|source| Error::Io {
        context: format!("create data dir {}", config.data_dir.display()),
        source,
    })?;
    let store = RaftStore::open(&config.data_dir.join("raft"), config.raft.fsync)?;
    let grpc_addr = config.advertised_grpc();
    let http_addr = config.advertised_http();
    let fresh = store.is_empty();
    let mut seeds = config.join.clone();
    if fresh && seeds.is_empty() && config.peers.len() > 1 {
        // An empty data dir in a cluster that already runs means this
        // master lost its data: rejoin instead of bootstrapping, or the
        // leader would trust entries it no longer has.
        let others: Vec<String> = config
            .peers
            .iter()
            .filter(|(id, _)| **id != config.id)
            .map(|(_, a)| a.clone())
            .collect();
        if cluster_is_running(&others).await {
            warn!(
                id = config.id,
                "data dir is empty but the cluster is running: rejoining"
            );
            seeds = others;
        }
    }
    if fresh && seeds.is_empty() {
        let members: Vec<Member> = config
            .peers
            .iter()
            .map(|(id, addr)| Member {
                id: *id,
                grpc_addr: addr.clone(),
                // Every master must bootstrap the same state; each then
                // announces its own REST address through the log.
                http_addr: String::new(),
            })
            .collect();
        store.bootstrap(&members)?;
        info!(id = config.id, peers = ?config.peers.keys().collect::<Vec<_>>(), "bootstrapped a new cluster");
    }
    let state = store.state();
    let version = state.read().map(|s| s.version).unwrap_or(0);
    let feed = Feed::new(100_000, version);
    let metrics = Metrics::new();
    let health = Arc::new(PeerHealth::default());
    let (status_tx, status_rx) = watch::channel(NodeStatus {
        id: config.id,
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
    });
    let (tx, rx) = std_mpsc::channel();
    let transport = GrpcTransport::new(
        config.id,
        grpc_addr.clone(),
        state.clone(),
        tx.clone(),
        tokio::runtime::Handle::current(),
        health.clone(),
    );
    let driver = Driver::new(
        config.id,
        store,
        &config.raft,
        transport,
        feed.clone(),
        metrics.clone(),
        status_tx,
    )?;
    let settings = config.raft.clone();
    let driver_thread = std::thread::Builder::new()
        .name(format!("raft-{}", config.id))
        .spawn(move || {
            let run = std::panic::AssertUnwindSafe(|| node::run(driver, rx, &settings));
            if std::panic::catch_unwind(run).is_err() {
                // Serving without a raft driver would answer with stale,
                // unreplicated state forever: fail loudly instead.
                tracing::error!("raft driver panicked; stopping this master");
                std::process::exit(70);
            }
        })
        .map_err(|source| Error::Io {
            context: "spawn raft driver thread".into(),
            source,
        })?;

    let master = Master {
        inner: Arc::new(Inner {
            id: config.id,
            driver: tx,
            status: status_rx,
            state,
            feed,
            metrics,
            health,
            forward_clients: Mutex::new(HashMap::new()),
            grpc_addr,
            http_addr,
            accepting_raft: std::sync::atomic::AtomicBool::new(!fresh || seeds.is_empty()),
        }),
    };
    if fresh && !seeds.is_empty() {
        tokio::spawn(join_cluster(master.clone(), seeds));
    }
    tokio::spawn(announce_self(master.clone()));
    Ok(Started {
        master,
        driver_thread: Some(driver_thread),
    })
}

/// Whether any of these masters knows a leader.
async fn cluster_is_running(addrs: &[String]) -> bool {
    use ocean_proto::v1::ocean_api_client::OceanApiClient;
    let probes = addrs.iter().map(|a| async move {
        let Ok(ch) = channel(a) else { return false };
        let mut client = OceanApiClient::new(ch);
        let call = client.leader(ocean_proto::v1::LeaderRequest {});
        matches!(
            tokio::time::timeout(Duration::from_millis(1500), call).await,
            Ok(Ok(_))
        )
    });
    futures::future::join_all(probes)
        .await
        .into_iter()
        .any(|x| x)
}

/// Asks running masters to add this one, until one of them accepts.
async fn join_cluster(master: Master, seeds: Vec<String>) {
    let req = ForwardRequest {
        kind: Some(forward_request::Kind::AddMember(AddMember {
            id: master.inner.id,
            grpc_addr: master.inner.grpc_addr.clone(),
            http_addr: master.inner.http_addr.clone(),
            rejoin: true,
        })),
    };
    loop {
        for seed in &seeds {
            // Ask the seed who leads, then ask the leader.
            let leader = match channel(seed) {
                Ok(ch) => {
                    let mut c = ocean_proto::v1::ocean_api_client::OceanApiClient::new(ch);
                    match c.leader(ocean_proto::v1::LeaderRequest {}).await {
                        Ok(r) => r.into_inner().grpc_addr,
                        Err(_) => continue,
                    }
                }
                Err(_) => continue,
            };
            let target = if leader.is_empty() {
                seed.clone()
            } else {
                leader
            };
            let Ok(mut client) = master.forward_client(&target) else {
                continue;
            };
            match client.forward(req.clone()).await {
                Ok(_) => {
                    info!(leader = %target, "joined the cluster");
                    master
                        .inner
                        .accepting_raft
                        .store(true, std::sync::atomic::Ordering::SeqCst);
                    return;
                }
                Err(status) => {
                    warn!(leader = %target, error = %status.message(), "join request failed; retrying")
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Keeps this master's addresses in the replicated membership current, so
/// every master can name the leader's REST address.
async fn announce_self(master: Master) {
    let me = Member {
        id: master.inner.id,
        grpc_addr: master.inner.grpc_addr.clone(),
        http_addr: master.inner.http_addr.clone(),
    };
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if master.status().removed {
            return;
        }
        let known = master.read(|st| st.members.get(&me.id).cloned());
        let Some(known) = known else { continue };
        if known == me || master.status().leader == 0 {
            continue;
        }
        if let Err(e) = master.propose(set_member_command(me.clone())).await {
            warn!(error = %e, "could not announce this master's addresses; will retry");
        }
    }
}

/// Runs a master until `shutdown` resolves: raft driver, gRPC and REST.
pub async fn run(
    config: MasterConfig,
    http: TcpListener,
    grpc: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let started = start(&config).await?;
    let master = started.master.clone();
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let grpc_server = crate::api::grpc::serve(master.clone(), grpc, wait_stop(stop_rx.clone()));
    let http_server = crate::api::http::serve(master.clone(), http, wait_stop(stop_rx));
    info!(id = config.id, http = %config.http, grpc = %config.grpc, "master serving");
    let (g, h) = tokio::join!(grpc_server, http_server);
    tokio::task::spawn_blocking(move || started.stop())
        .await
        .ok();
    g?;
    h?;
    Ok(())
}

async fn wait_stop(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Binds a listener, naming the address on failure.
pub async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}
