//! gRPC transport between masters: one sender task per peer that batches
//! queued raft messages into one `Send` call, and peer health as seen from
//! here.

pub mod route;

use std::collections::HashMap;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use ocean_proto::raft::raft_transport_client::RaftTransportClient;
use ocean_proto::raft::RaftBatch;
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use tokio::sync::mpsc;
use tonic::transport::Channel;
use tracing::debug;

use crate::error::Error;
use crate::kernel::node::{Msg, Transport};
use crate::kernel::state::ClusterState;
use crate::transport::route::RaftRoute;

/// How long one batch may take before the peer counts as unreachable.
const SEND_TIMEOUT: Duration = Duration::from_secs(2);

/// Builds a lazily-connecting plain-text gRPC channel to a master.
pub fn channel(addr: &str) -> Result<Channel, tonic::transport::Error> {
    crate::transport::route::channel(addr, None)
}

/// What this master knows of its peers beyond the replicated membership:
/// when each last answered, and the addresses peers announced in their
/// batches (all a joining master has before its first snapshot).
#[derive(Debug, Default)]
pub struct PeerHealth {
    last_ok: Mutex<HashMap<u64, Instant>>,
    heard_at: Mutex<HashMap<u64, String>>,
}

impl PeerHealth {
    /// Records the address a peer announced.
    pub fn heard(&self, peer: u64, addr: &str) {
        if addr.is_empty() {
            return;
        }
        if let Ok(mut m) = self.heard_at.lock() {
            if m.get(&peer).map(String::as_str) != Some(addr) {
                m.insert(peer, addr.to_string());
            }
        }
    }

    /// The address `peer` announced, if it ever sent us a batch.
    pub fn address(&self, peer: u64) -> Option<String> {
        self.heard_at.lock().ok()?.get(&peer).cloned()
    }

    fn ok(&self, peer: u64) {
        if let Ok(mut m) = self.last_ok.lock() {
            m.insert(peer, Instant::now());
        }
    }

    /// Milliseconds since `peer` last acknowledged a batch, if ever.
    pub fn since_ok(&self, peer: u64) -> Option<u64> {
        let m = self.last_ok.lock().ok()?;
        m.get(&peer).map(|t| t.elapsed().as_millis() as u64)
    }
}

struct PeerLink {
    addr: String,
    client: RaftTransportClient<Channel>,
    stream: Option<mpsc::Sender<RaftBatch>>,
}

/// The runtime that carries this master's outgoing raft traffic: one thread
/// of its own, at the raft thread's priority. On the leader the main
/// runtime serves 10,000 agent streams and the API; behind them, heartbeats
/// waited long enough for followers to elect another leader.
#[derive(Debug)]
pub struct NetRuntime(Option<tokio::runtime::Runtime>);

impl NetRuntime {
    /// Starts the runtime's thread.
    pub fn start(id: u64) -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("raft-net-{id}"))
            .on_thread_start(crate::kernel::node::raise_priority)
            .enable_all()
            .build()?;
        Ok(NetRuntime(Some(rt)))
    }

    /// A handle to spawn on it.
    pub fn handle(&self) -> Option<tokio::runtime::Handle> {
        self.0.as_ref().map(|rt| rt.handle().clone())
    }
}

impl Drop for NetRuntime {
    fn drop(&mut self) {
        // Dropped with the driver, possibly where blocking is not allowed.
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// The production [`Transport`]: gRPC to each peer's address as recorded in
/// the replicated membership (or as the peer announced it). Ordinary
/// messages go straight from the driver into a long-lived stream per peer;
/// snapshots go as unary calls so the driver learns their outcome.
pub struct GrpcTransport {
    id: u64,
    addr: String,
    links: HashMap<u64, PeerLink>,
    state: Arc<RwLock<ClusterState>>,
    driver: Sender<Msg>,
    runtime: tokio::runtime::Handle,
    health: Arc<PeerHealth>,
    route: Arc<RaftRoute>,
    /// Kept for as long as the transport sends on it.
    _net: Option<NetRuntime>,
}

impl std::fmt::Debug for GrpcTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcTransport")
            .field("id", &self.id)
            .finish()
    }
}

impl GrpcTransport {
    /// A transport for master `id`, which other masters reach at `addr`
    /// (its raft listener when `route` says raft traffic has its own).
    pub fn new(
        id: u64,
        addr: String,
        state: Arc<RwLock<ClusterState>>,
        driver: Sender<Msg>,
        runtime: tokio::runtime::Handle,
        health: Arc<PeerHealth>,
        route: Arc<RaftRoute>,
    ) -> Self {
        GrpcTransport {
            id,
            addr,
            links: HashMap::new(),
            state,
            driver,
            runtime,
            health,
            route,
            _net: None,
        }
    }

    /// Sends on `net` (its own thread) instead of the runtime given to
    /// [`GrpcTransport::new`].
    pub fn on_own_runtime(mut self, net: NetRuntime) -> Self {
        if let Some(handle) = net.handle() {
            self.runtime = handle;
            self._net = Some(net);
        }
        self
    }

    fn link(&mut self, peer: u64) -> Option<&mut PeerLink> {
        let addr = {
            let st = self.state.read().unwrap_or_else(|p| p.into_inner());
            self.route.address(&st, &self.health, peer)
        }?;
        if self.links.get(&peer).is_none_or(|l| l.addr != addr) {
            // The driver thread is not a runtime thread: channels spawn their
            // connection tasks on the runtime they are created in.
            let _rt = self.runtime.enter();
            let client = match self.route.channel(&addr) {
                Ok(ch) => RaftTransportClient::new(ch)
                    .max_encoding_message_size(usize::MAX)
                    .max_decoding_message_size(usize::MAX),
                Err(e) => {
                    debug!(peer, %addr, error = %e, "bad peer address");
                    return None;
                }
            };
            self.links.insert(
                peer,
                PeerLink {
                    addr,
                    client,
                    stream: None,
                },
            );
        }
        self.links.get_mut(&peer)
    }

    fn batch(&self, msgs: &[Message]) -> RaftBatch {
        RaftBatch {
            from: self.id,
            messages: msgs
                .iter()
                .filter_map(|m| m.write_to_bytes().ok())
                .collect(),
            from_addr: self.addr.clone(),
        }
    }

    fn send_to(&mut self, peer: u64, msgs: Vec<Message>) {
        let (snapshots, normal): (Vec<Message>, Vec<Message>) = msgs
            .into_iter()
            .partition(|m| m.get_msg_type() == MessageType::MsgSnapshot);
        let normal = (!normal.is_empty()).then(|| self.batch(&normal));
        let snapshots = (!snapshots.is_empty()).then(|| self.batch(&snapshots));
        let driver = self.driver.clone();
        let health = self.health.clone();
        let runtime = self.runtime.clone();
        let Some(link) = self.link(peer) else {
            debug!(peer, "no address for peer; dropping raft messages");
            let _ = driver.send(Msg::Unreachable(peer));
            return;
        };
        if let Some(batch) = normal {
            if link.stream.as_ref().is_none_or(|s| s.is_closed()) {
                let _rt = runtime.enter();
                link.stream = Some(open_stream(
                    &link.client,
                    peer,
                    driver.clone(),
                    health.clone(),
                ));
            }
            let sent = link
                .stream
                .as_ref()
                .is_some_and(|s| s.try_send(batch).is_ok());
            if !sent {
                // Stuck or gone: raft retransmits what matters.
                let _ = driver.send(Msg::Unreachable(peer));
            }
        }
        if let Some(batch) = snapshots {
            let mut client = link.client.clone();
            runtime.spawn(async move {
                let ok = matches!(
                    tokio::time::timeout(SEND_TIMEOUT * 5, client.send(batch)).await,
                    Ok(Ok(_))
                );
                if ok {
                    health.ok(peer);
                }
                let _ = driver.send(Msg::SnapshotDone { to: peer, ok });
            });
        }
    }
}

impl Transport for GrpcTransport {
    fn send(&mut self, msgs: Vec<Message>) {
        let mut by_peer: Vec<(u64, Vec<Message>)> = Vec::new();
        for m in msgs {
            match by_peer.iter_mut().find(|(p, _)| *p == m.to) {
                Some((_, v)) => v.push(m),
                None => by_peer.push((m.to, vec![m])),
            }
        }
        for (peer, msgs) in by_peer {
            self.send_to(peer, msgs);
        }
    }
}

/// Batches waiting to go out on a peer's stream before it counts as stuck.
const STREAM_BACKLOG: usize = 1024;
/// Opens a long-lived stream to a peer; the returned sender closes when the
/// stream fails, so the next batch opens a new one.
fn open_stream(
    client: &RaftTransportClient<Channel>,
    peer: u64,
    driver: Sender<Msg>,
    health: Arc<PeerHealth>,
) -> mpsc::Sender<RaftBatch> {
    let (tx, rx) = mpsc::channel::<RaftBatch>(STREAM_BACKLOG);
    let mut client = client.clone();
    tokio::spawn(async move {
        let (probe_tx, mut probe_rx) = mpsc::unbounded_channel::<()>();
        // Count traffic the peer accepts as proof of life.
        let outgoing = tokio_stream::wrappers::ReceiverStream::new(rx);
        let outgoing = futures::StreamExt::inspect(outgoing, move |_| {
            let _ = probe_tx.send(());
        });
        let health2 = health.clone();
        let watcher = tokio::spawn(async move {
            while probe_rx.recv().await.is_some() {
                health2.ok(peer);
            }
        });
        let result = client.stream(outgoing).await;
        watcher.abort();
        if let Err(status) = result {
            debug!(peer, error = %status.message(), "raft stream to peer ended");
            let _ = driver.send(Msg::Unreachable(peer));
        }
    });
    tx
}

fn md_u64(s: &tonic::Status, key: &str) -> Option<u64> {
    s.metadata().get(key)?.to_str().ok()?.parse().ok()
}

/// Turns a status from a forwarded call back into an error: the inverse of
/// `api::error::to_status`, which sets the metadata read here.
pub fn from_status(s: tonic::Status) -> Error {
    let msg = s.message().to_string();
    let conflict = s
        .metadata()
        .get("x-ocean-conflict")
        .and_then(|v| v.to_str().ok());
    match conflict {
        Some("version") => {
            return Error::VersionConflict {
                kind: "object",
                id: msg,
                expected: md_u64(&s, "x-ocean-expected-version").unwrap_or(0),
                actual: md_u64(&s, "x-ocean-actual-version").unwrap_or(0),
            }
        }
        Some("lease") => {
            return Error::LeaseHeld {
                name: msg,
                holder: s
                    .metadata()
                    .get("x-ocean-holder")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string(),
                expires_ms: md_u64(&s, "x-ocean-expires-ms").unwrap_or(0),
            }
        }
        _ => {}
    }
    match s.code() {
        tonic::Code::Unavailable => Error::NoLeader(msg),
        tonic::Code::Aborted | tonic::Code::DeadlineExceeded => Error::NotCommitted(msg),
        // The leader's data dir is full (its message already says so).
        tonic::Code::ResourceExhausted => {
            Error::DiskFull(msg.strip_prefix("disk full: ").unwrap_or(&msg).to_string())
        }
        tonic::Code::NotFound => Error::NotFound {
            kind: "object",
            id: msg,
        },
        tonic::Code::FailedPrecondition | tonic::Code::AlreadyExists => Error::Conflict(msg),
        tonic::Code::InvalidArgument => Error::Invalid {
            field: "request".into(),
            reason: msg,
        },
        _ => Error::Peer {
            peer: 0,
            reason: msg,
        },
    }
}
