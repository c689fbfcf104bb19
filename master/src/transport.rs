//! gRPC transport between masters: one sender task per peer that batches
//! queued raft messages into one `Send` call, and peer health as seen from
//! here.

use std::collections::HashMap;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use ocean_proto::raft::raft_transport_client::RaftTransportClient;
use ocean_proto::raft::RaftBatch;
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};
use tracing::debug;

use crate::node::{Msg, Transport};
use crate::state::ClusterState;

/// How long one batch may take before the peer counts as unreachable.
const SEND_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest number of messages in one batch.
const MAX_BATCH: usize = 1024;

/// Builds a lazily-connecting gRPC channel to a master.
pub fn channel(addr: &str) -> Result<Channel, tonic::transport::Error> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_millis(500))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5))
        .connect_lazy())
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
    tx: mpsc::UnboundedSender<Message>,
}

/// The production [`Transport`]: gRPC to each peer's address as recorded in
/// the replicated membership.
pub struct GrpcTransport {
    id: u64,
    addr: String,
    links: HashMap<u64, PeerLink>,
    state: Arc<RwLock<ClusterState>>,
    driver: Sender<Msg>,
    runtime: tokio::runtime::Handle,
    health: Arc<PeerHealth>,
}

impl std::fmt::Debug for GrpcTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcTransport")
            .field("id", &self.id)
            .finish()
    }
}

impl GrpcTransport {
    /// A transport for master `id`.
    pub fn new(
        id: u64,
        addr: String,
        state: Arc<RwLock<ClusterState>>,
        driver: Sender<Msg>,
        runtime: tokio::runtime::Handle,
        health: Arc<PeerHealth>,
    ) -> Self {
        GrpcTransport {
            id,
            addr,
            links: HashMap::new(),
            state,
            driver,
            runtime,
            health,
        }
    }

    fn link(&mut self, peer: u64) -> Option<&PeerLink> {
        let addr = {
            let st = self.state.read().unwrap_or_else(|p| p.into_inner());
            st.members.get(&peer).map(|m| m.grpc_addr.clone())
        };
        let addr = addr.or_else(|| self.health.address(peer))?;
        let stale = self
            .links
            .get(&peer)
            .is_none_or(|l| l.addr != addr || l.tx.is_closed());
        if stale {
            // The driver thread is not a runtime thread: channels spawn their
            // connection tasks on the runtime they are created in.
            let _rt = self.runtime.enter();
            let (tx, rx) = mpsc::unbounded_channel();
            let client = match channel(&addr) {
                Ok(ch) => RaftTransportClient::new(ch)
                    .max_encoding_message_size(usize::MAX)
                    .max_decoding_message_size(usize::MAX),
                Err(e) => {
                    debug!(peer, %addr, error = %e, "bad peer address");
                    return None;
                }
            };
            self.runtime.spawn(peer_loop(
                self.id,
                self.addr.clone(),
                peer,
                client,
                rx,
                self.driver.clone(),
                self.health.clone(),
            ));
            self.links.insert(peer, PeerLink { addr, tx });
        }
        self.links.get(&peer)
    }
}

impl Transport for GrpcTransport {
    fn send(&mut self, msgs: Vec<Message>) {
        for m in msgs {
            let to = m.to;
            match self.link(to) {
                Some(link) => {
                    let _ = link.tx.send(m);
                }
                None => {
                    debug!(peer = to, "no address for peer; dropping raft message");
                    let _ = self.driver.send(Msg::Unreachable(to));
                }
            }
        }
    }
}

async fn peer_loop(
    from: u64,
    from_addr: String,
    peer: u64,
    mut client: RaftTransportClient<Channel>,
    mut rx: mpsc::UnboundedReceiver<Message>,
    driver: Sender<Msg>,
    health: Arc<PeerHealth>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let has_snapshot = batch
            .iter()
            .any(|m| m.get_msg_type() == MessageType::MsgSnapshot);
        let messages: Vec<Vec<u8>> = batch
            .iter()
            .filter_map(|m| m.write_to_bytes().ok())
            .collect();
        let req = RaftBatch {
            from,
            messages,
            from_addr: from_addr.clone(),
        };
        let ok = matches!(
            tokio::time::timeout(SEND_TIMEOUT, client.send(req)).await,
            Ok(Ok(_))
        );
        if ok {
            health.ok(peer);
        } else {
            // raft retransmits; what queued up meanwhile is stale.
            while rx.try_recv().is_ok() {}
            let _ = driver.send(Msg::Unreachable(peer));
        }
        if has_snapshot {
            let _ = driver.send(Msg::SnapshotDone { to: peer, ok });
        }
    }
}
