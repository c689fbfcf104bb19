//! The agent's session with the masters: find the leader, register, send
//! heartbeats, follow leader changes. One bidirectional gRPC stream at a time,
//! always to the leader; any master named on the command line will do as a
//! starting point.
//!
//! ```text
//!  masters (gRPC) ──► session(): Register ─► Registered ─► Heartbeat every 0.5 s (the leader says)
//!                       ▲   NotLeader{addr} / stream error: reconnect (to addr)
//!                       └──────────────────────────────────────────────┘
//!  SessionHandler (the runtime): open_stream() ─► Register{tasks} + reports
//!                                command()     ◄─ Launch / Kill / Reconcile
//! ```
//!
//! The session knows nothing about tasks: each new stream asks the handler
//! for a fresh registration (a full task report) and a queue of reports,
//! and hands every command to the handler in arrival order.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ocean_proto::agent::agent_api_client::AgentApiClient;
use ocean_proto::agent::{
    self as pb, agent_message, master_message, AgentMessage, Heartbeat, Register, Resources,
    TaskReport,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{ClientTlsConfig, Endpoint};
use tracing::{info, warn};

use crate::error::{Error, Result};
use crate::ports::PortRange;
use crate::resources::HostResources;

/// What the agent tells the masters about itself.
#[derive(Debug, Clone)]
pub struct AgentIdentity {
    /// Stable id (kept in the data dir).
    pub id: String,
    /// Host name.
    pub hostname: String,
    /// Attributes: hostname, idc, loc, status and any custom ones.
    pub attributes: BTreeMap<String, String>,
    /// Resources offered.
    pub resources: HostResources,
    /// Ports offered.
    pub ports: PortRange,
    /// Address other hosts reach this agent's tasks at.
    pub address: String,
}

/// What the session reports about its connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionState {
    /// The leader the agent is registered with (0 when none).
    pub leader: u64,
    /// Registrations accepted so far (one per stream).
    pub registrations: u64,
}

/// Reads the agent id kept in `data_dir`, or creates one.
pub fn agent_id(data_dir: &Path) -> Result<String> {
    let path = data_dir.join("agent-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        let id = id.trim().to_string();
        if !id.is_empty() {
            return Ok(id);
        }
    }
    std::fs::create_dir_all(data_dir).map_err(Error::io("create data dir", data_dir))?;
    let id = format!("agent-{:016x}", rand::random::<u64>());
    let tmp = data_dir.join("agent-id.tmp");
    std::fs::write(&tmp, format!("{id}\n")).map_err(Error::io("write", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(Error::io("rename", &path))?;
    Ok(id)
}

/// The registration for a new stream: who the agent is, plus `tasks`, the
/// full report of every task it knows, and `http_addr`, where its task logs
/// are served.
pub fn register_message(
    me: &AgentIdentity,
    tasks: Vec<pb::TaskStatus>,
    http_addr: String,
) -> Register {
    Register {
        agent_id: me.id.clone(),
        hostname: me.hostname.clone(),
        attributes: me.attributes.clone().into_iter().collect(),
        resources: Some(Resources {
            cpus: me.resources.cpus,
            mem_mib: me.resources.mem_mib,
            disk_mib: me.resources.disk_mib,
        }),
        port_low: u32::from(me.ports.low),
        port_high: u32::from(me.ports.high),
        address: me.address.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        tasks,
        http_addr,
        executors: Vec::new(),
    }
}

/// One stream's worth of what the agent says: the registration that opens
/// it and the task reports to send after it.
#[derive(Debug)]
pub struct StreamOpening {
    /// Sent first.
    pub register: Register,
    /// Reports for this stream only. A stream that ends drops its queue:
    /// the next registration is a full report, so nothing is lost.
    pub reports: mpsc::UnboundedReceiver<TaskReport>,
    /// The host checks to send: the latest at once, then each change.
    pub host_checks: Option<watch::Receiver<Option<pb::HostChecks>>>,
}

/// What the session needs from the agent's runtime. The session owns the
/// connection (leader discovery, heartbeats, redirects); the runtime owns
/// the tasks.
pub trait SessionHandler: Send + Sync {
    /// Called once per stream, after the connection to a master is up and
    /// before anything is sent on it.
    fn open_stream(&self) -> StreamOpening;
    /// A command from the leader (launch, kill, reconcile), in arrival order.
    fn command(&self, command: master_message::Kind);
    /// The agent's newest usage sample, sent on the stream each time it
    /// changes (only the latest: a slow stream skips samples rather than
    /// queueing them). `None`: the agent reports no usage.
    fn usage(&self) -> Option<watch::Receiver<Option<Arc<pb::UsageReport>>>> {
        None
    }
}

/// Keeps the agent registered with the current leader until `shutdown`
/// turns true. `masters` are gRPC addresses (`HOST:PORT`). Losing the
/// leader never touches the tasks: the session just reconnects. With
/// `tls` every connection is TLS, presenting the agent's certificate.
pub async fn run(
    masters: Vec<String>,
    tls: Option<ClientTlsConfig>,
    handler: Arc<dyn SessionHandler>,
    state: watch::Sender<SessionState>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    if masters.is_empty() {
        return Err(Error::Parse {
            what: "master addresses",
            input: String::new(),
            message: "give at least one master gRPC address, HOST:PORT".into(),
        });
    }
    let mut next = 0usize;
    let mut redirect: Option<String> = None;
    let mut last: Option<String> = None;
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        let addr = redirect.take().unwrap_or_else(|| {
            // Not straight back to the master that just failed: a stopped
            // one still accepts connections and would hold the agent for
            // another keepalive round.
            if masters.len() > 1 && Some(&masters[next % masters.len()]) == last.as_ref() {
                next += 1;
            }
            masters[next % masters.len()].clone()
        });
        next += 1;
        let outcome = tokio::select! {
            o = one_session(handler.as_ref(), &addr, tls.as_ref(), &state) => o,
            _ = stopped(&mut shutdown) => return Ok(()),
        };
        state.send_modify(|s| s.leader = 0);
        last = Some(addr.clone());
        match outcome {
            Ended::Redirect(to) if !to.is_empty() => {
                redirect = Some(to);
                continue;
            }
            Ended::Redirect(_) => {}
            Ended::Failed(e) => warn!(master = %addr, error = %e, "session with master ended"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = stopped(&mut shutdown) => return Ok(()),
        }
    }
}

/// Runs [`run`] on a dedicated OS thread with its own single-threaded
/// runtime, so that heartbeats are sent on time however busy the agent's
/// main runtime is (a burst of launches, log followers). The receiver
/// yields the session's result when it ends.
pub fn spawn_on_own_thread(
    masters: Vec<String>,
    tls: Option<ClientTlsConfig>,
    handler: Arc<dyn SessionHandler>,
    state: watch::Sender<SessionState>,
    shutdown: watch::Receiver<bool>,
) -> Result<tokio::sync::oneshot::Receiver<Result<()>>> {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Session(format!("cannot build the session's runtime: {e}")))?;
    std::thread::Builder::new()
        .name("agent-session".into())
        .spawn(move || {
            let mut owner = shutdown.clone();
            let result = rt.block_on(async move {
                tokio::select! {
                    r = run(masters, tls, handler, state, shutdown) => r,
                    // The runtime that started the session is gone without
                    // a word (its stop sender dropped): so is the session.
                    () = async { while owner.changed().await.is_ok() {} } => Ok(()),
                }
            });
            let _ = done_tx.send(result);
        })
        .map_err(|e| Error::Session(format!("cannot start the session thread: {e}")))?;
    Ok(done_rx)
}

/// Resolves when shutdown is asked for; never, if nobody can ask any more.
async fn stopped(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

enum Ended {
    Redirect(String),
    Failed(String),
}

/// Outbound messages queued towards tonic; large enough that a burst of
/// reports does not stall reading the leader's commands.
const OUTBOUND_QUEUE: usize = 256;

/// How long the session waits for any frame from its master before it
/// pings, and then for the ping's answer.
const KEEPALIVE: Duration = Duration::from_secs(1);

async fn one_session(
    handler: &dyn SessionHandler,
    addr: &str,
    tls: Option<&ClientTlsConfig>,
    state: &watch::Sender<SessionState>,
) -> Ended {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let endpoint = match Endpoint::from_shared(format!("{scheme}://{addr}")) {
        Ok(e) => e
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            // A master that stops answering (SIGSTOP, a dead host, a cut
            // link) must be left within 2 s: a new leader gives every agent
            // only the heartbeat timeout (2.5 s by default) from the start
            // of its term before it declares it unreachable and replaces
            // its tasks.
            .http2_keep_alive_interval(KEEPALIVE)
            .keep_alive_timeout(KEEPALIVE),
        Err(e) => return Ended::Failed(format!("bad master address: {e}")),
    };
    let endpoint = match tls {
        Some(tls) => match endpoint.tls_config(tls.clone()) {
            Ok(e) => e,
            Err(e) => return Ended::Failed(format!("tls: {e}")),
        },
        None => endpoint,
    };
    let channel = match endpoint.connect().await {
        Ok(c) => c,
        Err(e) => return Ended::Failed(format!("connect: {e}")),
    };
    let mut client = AgentApiClient::new(channel);
    let (tx, rx) = mpsc::channel::<AgentMessage>(OUTBOUND_QUEUE);
    let StreamOpening {
        register,
        mut reports,
        mut host_checks,
    } = handler.open_stream();
    if let Some(rx) = host_checks.as_mut() {
        rx.mark_changed();
    }
    let agent_id = register.agent_id.clone();
    let register = AgentMessage {
        kind: Some(agent_message::Kind::Register(register)),
    };
    if tx.send(register).await.is_err() {
        return Ended::Failed("stream closed".into());
    }
    let mut inbound = match client.session(ReceiverStream::new(rx)).await {
        Ok(r) => r.into_inner(),
        Err(s) => return Ended::Failed(format!("{}: {}", s.code(), s.message())),
    };
    let mut interval = heartbeats(Duration::from_secs(1));
    let mut seq = 0u64;
    let mut usage = handler.usage();
    loop {
        tokio::select! {
            msg = inbound.message() => match msg {
                Ok(Some(m)) => match m.kind {
                    Some(master_message::Kind::Registered(r)) => {
                        info!(agent = %agent_id, leader = r.leader_id, "registered with the leader");
                        if r.heartbeat_interval_ms > 0 {
                            interval = heartbeats(Duration::from_millis(r.heartbeat_interval_ms));
                        }
                        state.send_modify(|s| {
                            s.leader = r.leader_id;
                            s.registrations += 1;
                        });
                    }
                    Some(master_message::Kind::NotLeader(n)) => return Ended::Redirect(n.leader_grpc_addr),
                    Some(command) => handler.command(command),
                    None => {}
                },
                Ok(None) => return Ended::Failed("the master closed the stream".into()),
                Err(s) => return Ended::Failed(format!("{}: {}", s.code(), s.message())),
            },
            Some(report) = reports.recv() => {
                let msg = AgentMessage { kind: Some(agent_message::Kind::Report(report)) };
                if tx.send(msg).await.is_err() {
                    return Ended::Failed("stream closed".into());
                }
            }
            Some(sample) = next_usage(&mut usage) => {
                let msg = AgentMessage { kind: Some(agent_message::Kind::Usage((*sample).clone())) };
                if tx.send(msg).await.is_err() {
                    return Ended::Failed("stream closed".into());
                }
            }
            Some(checks) = crate::host_checks::next(&mut host_checks) => {
                let msg = AgentMessage { kind: Some(agent_message::Kind::HostChecks(checks)) };
                if tx.send(msg).await.is_err() {
                    return Ended::Failed("stream closed".into());
                }
            }
            _ = interval.tick() => {
                seq += 1;
                let hb = AgentMessage { kind: Some(agent_message::Kind::Heartbeat(Heartbeat { seq })) };
                if tx.send(hb).await.is_err() {
                    return Ended::Failed("stream closed".into());
                }
            }
        }
    }
}

/// The next usage sample; never resolves without a feed (or once it closed).
async fn next_usage(
    feed: &mut Option<watch::Receiver<Option<Arc<pb::UsageReport>>>>,
) -> Option<Arc<pb::UsageReport>> {
    let Some(rx) = feed.as_mut() else {
        return std::future::pending().await;
    };
    if rx.changed().await.is_err() {
        *feed = None;
        return std::future::pending().await;
    }
    rx.borrow_and_update().clone()
}

/// A heartbeat timer. After a pause (a stopped process, a starved host) it
/// sends one heartbeat and carries on at the interval, rather than a burst
/// of the missed ones.
fn heartbeats(every: Duration) -> tokio::time::Interval {
    let mut i = tokio::time::interval(every);
    i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    i
}
