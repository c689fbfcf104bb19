//! Where this master sends master-to-master traffic (raft messages and
//! forwarded writes) and how: to peers' gRPC listeners in plain text as
//! before, or, when raft traffic has its own listener, to those listeners
//! (mTLS when certificates are configured).

use std::collections::BTreeMap;
use std::time::Duration;

use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use super::PeerHealth;
use crate::kernel::state::ClusterState;

/// The reserved KV namespace where each master announces its raft
/// listener (key: its raft id), so a master that joined later is
/// reachable after any leader change.
pub const NAMESPACE: &str = "ocean.raft";

/// How to reach peers.
#[derive(Debug, Clone, Default)]
pub struct RaftRoute {
    /// Raft traffic goes to peers' own raft listeners.
    pub separate: bool,
    /// This master's own raft listener, as peers reach it (when separate).
    pub own: Option<String>,
    /// The configured raft listeners (`raft_peers`).
    pub peers: BTreeMap<u64, String>,
    /// This master's certificate and the CA, for every peer connection.
    pub tls: Option<ClientTlsConfig>,
}

impl RaftRoute {
    /// The address `peer`'s raft traffic goes to: with a separate listener
    /// the announced one, else the configured one; as before, the member's
    /// gRPC address. Either way a peer's own announcement last.
    pub fn address(&self, st: &ClusterState, health: &PeerHealth, peer: u64) -> Option<String> {
        let known = if self.separate {
            st.kv_get(NAMESPACE, &peer.to_string())
                .and_then(|e| String::from_utf8(e.value.clone()).ok())
                .or_else(|| self.peers.get(&peer).cloned())
        } else {
            st.members.get(&peer).map(|m| m.grpc_addr.clone())
        };
        known.or_else(|| health.address(peer))
    }

    /// A lazily-connecting channel to a peer at `addr`.
    pub fn channel(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        channel(addr, self.tls.as_ref())
    }
}

/// A lazily-connecting channel to a master, over TLS when `tls` is given.
pub fn channel(
    addr: &str,
    tls: Option<&ClientTlsConfig>,
) -> Result<Channel, tonic::transport::Error> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut ep = Endpoint::from_shared(format!("{scheme}://{addr}"))?
        .connect_timeout(Duration::from_millis(500))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5));
    if let Some(tls) = tls {
        ep = ep.tls_config(tls.clone())?;
    }
    Ok(ep.connect_lazy())
}
