//! A fake leader: a tonic `AgentApi` on 127.0.0.1:0 that hands every agent
//! stream to the test. The test reads what the agent sends and writes the
//! master's commands; dropping a [`Conn`] ends that stream, as a dying
//! leader would.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use ocean_proto::agent::agent_api_server::{AgentApi, AgentApiServer};
use ocean_proto::agent::{
    agent_message, master_message, AgentMessage, MasterMessage, Register, Registered, TaskReport,
    TaskStatus,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

/// One agent stream, seen from the master.
pub struct Conn {
    pub id: u64,
    pub register: Register,
    tx: mpsc::Sender<Result<MasterMessage, Status>>,
}

impl Conn {
    /// Sends a command to the agent.
    pub async fn send(&self, kind: master_message::Kind) -> anyhow::Result<()> {
        self.tx
            .send(Ok(MasterMessage { kind: Some(kind) }))
            .await
            .map_err(|_| anyhow!("stream {} is closed", self.id))
    }
}

/// What the agents send, tagged with their stream.
pub enum FromAgent {
    Opened(Conn),
    Message(u64, AgentMessage),
}

struct Service {
    events: mpsc::UnboundedSender<FromAgent>,
    next: Arc<AtomicU64>,
}

type Out = Pin<Box<dyn Stream<Item = Result<MasterMessage, Status>> + Send>>;

#[tonic::async_trait]
impl AgentApi for Service {
    type SessionStream = Out;

    async fn session(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Out>, Status> {
        let mut inbound = request.into_inner();
        let first = inbound
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("empty stream"))?;
        let Some(agent_message::Kind::Register(register)) = first.kind else {
            return Err(Status::invalid_argument("register first"));
        };
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = mpsc::channel(64);
        let _ = self
            .events
            .send(FromAgent::Opened(Conn { id, register, tx }));
        let events = self.events.clone();
        tokio::spawn(async move {
            while let Ok(Some(m)) = inbound.message().await {
                if events.send(FromAgent::Message(id, m)).is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// The fake master: its address and what the agents send.
pub struct FakeMaster {
    pub addr: SocketAddr,
    /// Every status reported so far, in order (full reports included).
    pub history: Vec<TaskStatus>,
    events: mpsc::UnboundedReceiver<FromAgent>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeMaster {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeMaster {
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, events) = mpsc::unbounded_channel();
        let service = Service {
            events: tx,
            next: Arc::new(AtomicU64::new(1)),
        };
        let server = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(AgentApiServer::new(service))
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await;
        });
        Ok(Self {
            addr,
            history: Vec::new(),
            events,
            server,
        })
    }

    async fn next(&mut self, within: Duration) -> anyhow::Result<FromAgent> {
        tokio::time::timeout(within, self.events.recv())
            .await
            .context("timed out waiting for the agent")?
            .context("the fake master stopped")
    }

    /// Waits for a new stream (skipping messages of older ones) and
    /// accepts its registration.
    pub async fn accept(&mut self, within: Duration) -> anyhow::Result<Conn> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if let FromAgent::Opened(conn) = self.next(left).await? {
                conn.send(master_message::Kind::Registered(Registered {
                    agent_id: conn.register.agent_id.clone(),
                    leader_id: 1,
                    heartbeat_interval_ms: 200,
                }))
                .await?;
                return Ok(conn);
            }
        }
    }

    /// The next report on stream `conn` matching `want` (heartbeats and
    /// other reports are skipped; the skipped reports are returned too).
    pub async fn report(
        &mut self,
        conn: u64,
        within: Duration,
        mut want: impl FnMut(&TaskReport) -> bool,
    ) -> anyhow::Result<(TaskReport, Vec<TaskReport>)> {
        let deadline = tokio::time::Instant::now() + within;
        let mut skipped = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await.context("waiting for a report")? {
                FromAgent::Message(id, m) if id == conn => {
                    if let Some(agent_message::Kind::Report(r)) = m.kind {
                        self.history.extend(r.tasks.iter().cloned());
                        if want(&r) {
                            return Ok((r, skipped));
                        }
                        skipped.push(r);
                    }
                }
                FromAgent::Opened(c) => {
                    return Err(anyhow!("unexpected new stream {} while waiting", c.id))
                }
                FromAgent::Message(..) => {}
            }
        }
    }

    /// When heartbeats arrived on stream `conn` during `span` (other
    /// messages are dropped).
    pub async fn heartbeats(&mut self, conn: u64, span: Duration) -> Vec<std::time::Instant> {
        let end = tokio::time::Instant::now() + span;
        let mut at = Vec::new();
        while let Ok(Some(e)) = tokio::time::timeout_at(end, self.events.recv()).await {
            if let FromAgent::Message(id, m) = e {
                if id == conn && matches!(m.kind, Some(agent_message::Kind::Heartbeat(_))) {
                    at.push(std::time::Instant::now());
                }
            }
        }
        at
    }
}
