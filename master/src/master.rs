//! [`Master`]: the handle the APIs use: propose (locally on the leader, or
//! forwarded to it), read state, follow the leader. Starting one is in
//! `startup.rs`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{mpsc as std_mpsc, Arc, Mutex, RwLock};
use std::time::Duration;

use ocean_proto::internal::{Command, Member};
use ocean_proto::raft::raft_transport_client::RaftTransportClient;
use ocean_proto::raft::{forward_request, AddMember, ForwardRequest, ForwardResponse, ReadIndex};
use prost::Message as _;
use tokio::sync::{oneshot, watch};
use tonic::transport::Channel;

use crate::error::{Error, Result};
use crate::kernel::feed::Feed;
use crate::kernel::node::{MemberChange, Msg, NodeStatus};
use crate::kernel::state::{Applied, ClusterState, Outcome};
use crate::metrics::Metrics;
use crate::transport::PeerHealth;

/// How long a write waits for a leader and for its commit.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// A running master, shared by its API servers.
#[derive(Clone, Debug)]
pub struct Master {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) id: u64,
    /// Room on the data dir: a write is refused at once while there is
    /// none, even when the driver is busy waiting for space.
    pub(crate) space: Arc<crate::kernel::storage::DiskSpace>,
    pub(crate) driver: std_mpsc::Sender<Msg>,
    pub(crate) status: watch::Receiver<NodeStatus>,
    pub(crate) state: Arc<RwLock<ClusterState>>,
    pub(crate) feed: Arc<Feed>,
    pub(crate) metrics: Metrics,
    pub(crate) health: Arc<PeerHealth>,
    pub(crate) forward_clients: Mutex<HashMap<String, RaftTransportClient<Channel>>>,
    /// Where and how master-to-master traffic goes.
    pub(crate) raft_route: Arc<crate::transport::route::RaftRoute>,
    /// Agents must present their own agent certificate (TLS configured).
    pub(crate) agent_certs: bool,
    pub(crate) grpc_addr: String,
    pub(crate) http_addr: String,
    /// False while joining: raft traffic that arrives before the leader has
    /// (re)added this master carries replication progress from before it
    /// lost its data, which raft-rs rightly refuses to trust.
    pub(crate) accepting_raft: std::sync::atomic::AtomicBool,
    /// Agents connected to this master (meaningful on the leader).
    pub(crate) sessions: crate::sessions::Sessions,
    /// Agents' usage samples (meaningful on the leader; never replicated).
    pub(crate) usage: crate::usage::UsageStore,
    pub(crate) agent_http: reqwest::Client,
    /// Other masters' REST listeners: plain, or HTTPS trusting the CA when
    /// masters serve REST over TLS (`[tls] http = true`).
    pub(crate) peer_rest: PeerRest,
    /// The DNS zone, for jobs' `dns_name`.
    pub(crate) dns_domain: String,
    /// Whether API requests need a token (`acl.enabled`).
    pub(crate) acl_enabled: bool,
    /// `acl.local_secret`: this process's own components.
    pub(crate) acl_local_secret: ocean_client::Secret,
    /// Writes this master accepted, who made them.
    pub(crate) audit: crate::kernel::audit::AuditLog,
    /// The config's quotas and weights: defaults under the replicated ones.
    pub(crate) scheduler_defaults: crate::config::SchedulerSettings,
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

    /// Whether this master leads term `term` (and is still a member).
    pub fn leads(&self, term: u64) -> bool {
        let s = self.inner.status.borrow();
        s.leader == self.inner.id && s.term == term && !s.removed
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

    /// Whether agents must present their own agent certificate.
    pub fn agent_certs(&self) -> bool {
        self.inner.agent_certs
    }

    /// Whether raft traffic is taken (false until a joining master is in).
    pub fn accepting_raft(&self) -> bool {
        self.inner
            .accepting_raft
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The leader's knowledge of connected agents.
    pub fn sessions(&self) -> &crate::sessions::Sessions {
        &self.inner.sessions
    }

    /// The usage samples agents pushed to this master while it led.
    pub fn usage(&self) -> &crate::usage::UsageStore {
        &self.inner.usage
    }

    /// Whether API requests need a token (`acl.enabled`).
    pub fn acl_enabled(&self) -> bool {
        self.inner.acl_enabled
    }

    /// The writes this master accepted (see [`crate::kernel::audit`]).
    pub fn audit(&self) -> &crate::kernel::audit::AuditLog {
        &self.inner.audit
    }

    /// Whether `secret` is this process's own (`acl.local_secret`).
    pub fn is_local_secret(&self, secret: &ocean_client::Secret) -> bool {
        let own = &self.inner.acl_local_secret;
        !own.is_empty() && own == secret
    }

    /// The HTTP client for agents' log servers.
    pub fn agent_http(&self) -> &reqwest::Client {
        &self.inner.agent_http
    }

    /// The URL of `path` on another master's REST listener at `addr`.
    pub fn peer_rest_url(&self, addr: &str, path: &str) -> String {
        format!("{}://{addr}{path}", self.inner.peer_rest.scheme)
    }

    /// The HTTP client for other masters' REST listeners.
    pub fn peer_rest(&self) -> &reqwest::Client {
        &self.inner.peer_rest.client
    }

    /// A receiver of status changes.
    pub fn status_watch(&self) -> watch::Receiver<NodeStatus> {
        self.inner.status.clone()
    }

    /// Records the address a peer announced in its raft traffic.
    pub fn heard_from(&self, peer: u64, addr: &str) {
        self.inner.health.heard(peer, addr);
    }

    /// The sender into the raft driver (the transport server feeds it).
    pub fn driver(&self) -> &std_mpsc::Sender<Msg> {
        &self.inner.driver
    }

    /// Waits (bounded) until the driver's status satisfies `reached`.
    async fn wait_status(
        &self,
        timeout: Duration,
        reached: impl FnMut(&NodeStatus) -> bool,
    ) -> bool {
        let mut rx = self.inner.status.clone();
        let done =
            tokio::time::timeout(timeout, async { rx.wait_for(reached).await.is_ok() }).await;
        matches!(done, Ok(true))
    }

    /// Waits until this master has applied state `version` (bounded).
    pub async fn wait_for_version(&self, version: u64, timeout: Duration) -> bool {
        self.wait_status(timeout, |s| s.version >= version).await
    }

    /// Sends a request to the raft driver and waits (bounded) for its reply.
    async fn ask_driver<T>(
        &self,
        msg: impl FnOnce(oneshot::Sender<Result<T>>) -> Msg,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .driver
            .send(msg(tx))
            .map_err(|_| Error::ShuttingDown)?;
        match tokio::time::timeout(WRITE_TIMEOUT, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Error::ShuttingDown),
            Err(_) => Err(Error::NotCommitted(self.no_quorum_reason())),
        }
    }

    /// Asks this master, which must be the leader, for a read index.
    pub async fn read_index_local(&self) -> Result<u64> {
        self.ask_driver(|reply| Msg::ReadIndex { reply }).await
    }

    /// Waits until this master's state reflects every write acknowledged
    /// before the call (raft ReadIndex through the leader), so a read that
    /// follows is linearizable on any master.
    pub async fn linearizable(&self) -> Result<()> {
        let req = ForwardRequest {
            kind: Some(forward_request::Kind::ReadIndex(ReadIndex {})),
        };
        let index = match self.through_leader(|| self.read_index_local(), req).await? {
            Routed::Local(i) => i,
            Routed::Forwarded(r) => r.version,
        };
        if self
            .wait_status(WRITE_TIMEOUT, |s| s.applied_index >= index)
            .await
        {
            Ok(())
        } else {
            Err(Error::NotCommitted(format!(
                "master {} has not applied index {index} within {}s",
                self.inner.id,
                WRITE_TIMEOUT.as_secs()
            )))
        }
    }

    /// Proposes a command on this master, which must be the leader, and
    /// waits for it to be applied.
    pub async fn propose_local(&self, mut cmd: Command) -> Result<Applied> {
        // A lease is judged by the leader's clock, whoever asked for it.
        if let Some(ocean_proto::internal::command::Kind::Lease(l)) = &mut cmd.kind {
            l.now_ms = crate::kernel::now_ms();
        }
        self.inner.space.admit()?;
        let data = prost::Message::encode_to_vec(&cmd);
        self.ask_driver(|reply| Msg::Propose { data, reply }).await
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
        self.ask_driver(|reply| Msg::ChangeMembers { change, reply })
            .await
    }

    pub(crate) fn forward_client(&self, addr: &str) -> Result<RaftTransportClient<Channel>> {
        let mut clients = self
            .inner
            .forward_clients
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(addr) {
            return Ok(c.clone());
        }
        let ch = self
            .inner
            .raft_route
            .channel(addr)
            .map_err(|e| Error::Config {
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
            Routed::Forwarded(resp) => {
                // The leader applied it; make our reads see it too.
                let _ = self.wait_for_version(resp.version, WRITE_TIMEOUT).await;
                Ok(Applied {
                    outcome: Outcome::from_wire(&resp.outcome),
                    version: resp.version,
                    changes: Vec::new(),
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
                    raft_addr: String::new(),
                }),
                MemberChange::Remove(id) => forward_request::Kind::RemoveMember(*id),
            }),
        };
        match self
            .through_leader(|| self.change_members_local(change.clone()), req)
            .await?
        {
            Routed::Local(index) => Ok(index),
            Routed::Forwarded(r) => Ok(r.version),
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
                let addr = self.read(|st| {
                    self.inner
                        .raft_route
                        .address(st, &self.inner.health, status.leader)
                });
                if let Some(addr) = addr {
                    let mut client = self.forward_client(&addr)?;
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    match tokio::time::timeout(left, client.forward(forward.clone())).await {
                        Ok(Ok(resp)) => return Ok(Routed::Forwarded(resp.into_inner())),
                        Ok(Err(status)) => match status.code() {
                            // Not (or no longer) the leader, or unreachable: retry.
                            tonic::Code::Unavailable | tonic::Code::Unknown => {}
                            _ => return Err(crate::transport::from_status(status)),
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
    Forwarded(ForwardResponse),
}

/// How a master calls other masters' REST listeners.
#[derive(Debug, Clone)]
pub struct PeerRest {
    /// `http` or `https`.
    pub scheme: &'static str,
    /// Trusts only the cluster's CA and presents this master's certificate
    /// when the listeners serve TLS.
    pub client: reqwest::Client,
}

impl PeerRest {
    /// Plain HTTP.
    pub fn plain() -> Self {
        PeerRest {
            scheme: "http",
            client: reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(2))
                .build()
                .unwrap_or_default(),
        }
    }

    /// HTTPS with the cluster's CA and this master's certificate.
    pub fn tls(files: &ocean_tls::TlsFiles) -> crate::error::Result<Self> {
        let bad = |reason: String| crate::error::Error::Config {
            field: "tls".into(),
            reason,
        };
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|e| bad(format!("{}: {e}", path.display())))
        };
        let ca = reqwest::Certificate::from_pem(&read(&files.ca)?)
            .map_err(|e| bad(format!("{}: {e}", files.ca.display())))?;
        let mut identity = read(&files.cert)?;
        identity.extend_from_slice(&read(&files.key)?);
        let identity = reqwest::Identity::from_pem(&identity)
            .map_err(|e| bad(format!("{}: {e}", files.cert.display())))?;
        let client = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(2))
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .identity(identity)
            .build()
            .map_err(|e| bad(format!("building the HTTPS client: {e}")))?;
        Ok(PeerRest {
            scheme: "https",
            client,
        })
    }
}
