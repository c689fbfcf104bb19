//! gRPC services on every master: the client API (`OceanApi`, in
//! `grpc_api.rs`) and the master-to-master transport (`RaftTransport`: raft
//! messages and writes forwarded to the leader).

use std::future::Future;

use ocean_proto::internal::{command, Command, Member};
use ocean_proto::raft::raft_transport_server::{RaftTransport, RaftTransportServer};
use ocean_proto::raft::{forward_request, ForwardRequest, ForwardResponse, RaftAck, RaftBatch};
use ocean_proto::v1::ocean_api_server::OceanApiServer;
use prost::Message as _;
use protobuf::Message as _;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

use super::error::to_status;
use crate::error::{Error, Result};
use crate::kernel::node::{MemberChange, Msg};
use crate::kernel::state::Outcome;
use crate::master::Master;

/// Serves the gRPC services on `listener` until `shutdown` resolves: the
/// client API, the agents' stream and, unless raft traffic has its own
/// listener ([`serve_raft`]), the master-to-master transport. With `tls`
/// it serves TLS, and client certificates are checked when presented
/// (the agents' stream requires one).
pub async fn serve(
    leading: crate::reconcile::Leading,
    listener: TcpListener,
    tls: Option<&crate::config::TlsSettings>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let master = leading.master.clone();
    let api = OceanApiServer::new(super::grpc_api::Api(master.clone()))
        .max_decoding_message_size(16 * 1024 * 1024)
        .max_encoding_message_size(usize::MAX);
    let transport = (!master.inner.raft_route.separate).then(|| transport_server(&master));
    let mut builder = tonic::transport::Server::builder().tcp_nodelay(true);
    if let Some(tls) = tls {
        builder = builder
            .tls_config(server_tls(tls, false)?)
            .map_err(serve_error)?;
    }
    builder
        .layer(super::auth::GrpcAuthLayer::new(master.clone()))
        .add_service(api)
        .add_service(super::grpc_usage::Usage::server(master.clone()))
        .add_optional_service(transport)
        .add_service(super::agent::AgentService::server(leading))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
        .map_err(serve_error)
}

/// Serves the master-to-master transport alone on `listener` (the raft
/// listener). With `tls` only masters get in: the handshake requires a
/// certificate from the CA, and the call one whose identity is a master.
pub async fn serve_raft(
    master: Master,
    listener: TcpListener,
    tls: Option<&crate::config::TlsSettings>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let mut builder = tonic::transport::Server::builder().tcp_nodelay(true);
    let check = tls.is_some();
    if let Some(tls) = tls {
        builder = builder
            .tls_config(server_tls(tls, true)?)
            .map_err(serve_error)?;
    }
    let service = tonic::service::interceptor::InterceptedService::new(
        transport_server(&master),
        move |req: Request<()>| if check { require_master(req) } else { Ok(req) },
    );
    builder
        .add_service(service)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
        .map_err(serve_error)
}

/// Refuses a raft-listener call whose certificate is not a master's.
fn require_master(req: Request<()>) -> std::result::Result<Request<()>, Status> {
    match ocean_tls::peer_identity(&req) {
        Ok(id) if id.role == ocean_tls::Role::Master => Ok(req),
        Ok(id) => Err(Status::permission_denied(format!(
            "certificate: the raft listener takes master certificates only; this one is {id}"
        ))),
        Err(e) => Err(Status::unauthenticated(e.to_string())),
    }
}

fn transport_server(master: &Master) -> RaftTransportServer<Transport> {
    RaftTransportServer::new(Transport(master.clone()))
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX)
}

fn server_tls(
    tls: &crate::config::TlsSettings,
    require_client_cert: bool,
) -> Result<tonic::transport::ServerTlsConfig> {
    tls.files()
        .server(require_client_cert)
        .map_err(|e| Error::Config {
            field: "tls".into(),
            reason: e.to_string(),
        })
}

fn serve_error(e: tonic::transport::Error) -> Error {
    Error::Io {
        context: "serve gRPC".into(),
        source: std::io::Error::other(e),
    }
}

/// The master-to-master transport.
#[derive(Debug, Clone)]
pub struct Transport(pub Master);

/// What a follower may forward: the writes its service layer proposes on
/// a client's behalf, and its own address. Placements, status reports and
/// agents' registrations are proposed by the leader itself; a forwarded one
/// did not come from a follower doing its job. A job's spec is validated
/// again, so nothing invalid reaches the log through this port.
pub fn check_forwarded(cmd: &Command) -> std::result::Result<(), Status> {
    match &cmd.kind {
        Some(command::Kind::PutJob(p)) => {
            let spec = ocean_spec::parse_job_spec(&p.spec_json, ocean_spec::Format::Json)
                .map_err(|e| super::error::spec_status(&e))?;
            if spec.id != p.id {
                return Err(Status::invalid_argument(format!(
                    "command: job id '{}' differs from its spec's '{}'",
                    p.id, spec.id
                )));
            }
            Ok(())
        }
        Some(
            command::Kind::DeleteJob(_)
            | command::Kind::ScaleJob(_)
            | command::Kind::ResetBackoff(_)
            | command::Kind::SetAgentStatus(_)
            | command::Kind::PutKv(_)
            | command::Kind::DeleteKv(_)
            | command::Kind::Lease(_)
            | command::Kind::SetMember(_)
            | command::Kind::Noop(_),
        ) => Ok(()),
        Some(other) => Err(Status::permission_denied(format!(
            "command: {} is proposed by the leader only, never forwarded",
            command_name(other)
        ))),
        None => Err(Status::invalid_argument("command: empty")),
    }
}

/// Decodes a command a follower forwarded and checks it may be proposed
/// ([`check_forwarded`]).
pub fn forwarded_command(bytes: &[u8]) -> std::result::Result<Command, Status> {
    let cmd =
        Command::decode(bytes).map_err(|e| Status::invalid_argument(format!("command: {e}")))?;
    check_forwarded(&cmd)?;
    Ok(cmd)
}

/// Decodes one raft message of a peer's batch.
pub fn raft_message(bytes: &[u8]) -> std::result::Result<raft::eraftpb::Message, Status> {
    raft::eraftpb::Message::parse_from_bytes(bytes)
        .map_err(|e| Status::invalid_argument(format!("messages: not a raft message: {e}")))
}

fn command_name(kind: &command::Kind) -> &'static str {
    match kind {
        command::Kind::PutAgent(_) => "put_agent",
        command::Kind::PlanTasks(_) => "plan_tasks",
        command::Kind::TaskUpdates(_) => "task_updates",
        command::Kind::AgentUnreachable(_) => "agent_unreachable",
        command::Kind::RecordUsage(_) => "record_usage",
        _ => "this command",
    }
}

impl Transport {
    /// Hands a batch of raft messages to the driver.
    fn take_batch(&self, batch: RaftBatch) -> std::result::Result<(), Status> {
        self.0.heard_from(batch.from, &batch.from_addr);
        if !self.0.accepting_raft() {
            return Ok(());
        }
        for bytes in batch.messages {
            let msg = raft_message(&bytes)?;
            self.0
                .driver()
                .send(Msg::Raft(Box::new(msg)))
                .map_err(|_| Status::unavailable("master is shutting down"))?;
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl RaftTransport for Transport {
    async fn send(
        &self,
        req: Request<RaftBatch>,
    ) -> std::result::Result<Response<RaftAck>, Status> {
        self.take_batch(req.into_inner())?;
        Ok(Response::new(RaftAck {}))
    }

    async fn stream(
        &self,
        req: Request<tonic::Streaming<RaftBatch>>,
    ) -> std::result::Result<Response<RaftAck>, Status> {
        let mut stream = req.into_inner();
        while let Some(batch) = stream.message().await? {
            self.take_batch(batch)?;
        }
        Ok(Response::new(RaftAck {}))
    }

    async fn forward(
        &self,
        req: Request<ForwardRequest>,
    ) -> std::result::Result<Response<ForwardResponse>, Status> {
        let master = &self.0;
        if master.status().leader != master.id() {
            return Err(Status::unavailable(format!(
                "master {} is not the leader",
                master.id()
            )));
        }
        match req.into_inner().kind {
            Some(forward_request::Kind::Command(bytes)) => {
                let cmd = forwarded_command(&bytes)?;
                let applied = master.propose_local(cmd).await.map_err(to_status)?;
                Ok(Response::new(ForwardResponse {
                    version: applied.version,
                    outcome: applied.outcome.to_wire(),
                }))
            }
            Some(forward_request::Kind::AddMember(m)) => {
                // Reach the newcomer before it can announce itself.
                master.inner.health.heard(m.id, &m.raft_addr);
                let member = Member {
                    id: m.id,
                    grpc_addr: m.grpc_addr,
                    http_addr: m.http_addr,
                };
                if master.status().voters.contains(&m.id) {
                    if !m.rejoin {
                        return Err(Status::already_exists(format!(
                            "master {} is already a member",
                            m.id
                        )));
                    }
                    // Our progress record says it holds entries it lost:
                    // forget it, then add it back fresh.
                    master
                        .change_members_local(MemberChange::Remove(m.id))
                        .await
                        .map_err(to_status)?;
                }
                let deadline = tokio::time::Instant::now() + crate::master::WRITE_TIMEOUT;
                loop {
                    match master
                        .change_members_local(MemberChange::Add(member.clone()))
                        .await
                    {
                        Ok(index) => {
                            return Ok(Response::new(ForwardResponse {
                                version: index,
                                outcome: Outcome::Noop.as_str().to_string(),
                            }))
                        }
                        Err(Error::Conflict(_)) if tokio::time::Instant::now() < deadline => {
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        }
                        Err(e) => return Err(to_status(e)),
                    }
                }
            }
            Some(forward_request::Kind::RemoveMember(id)) => {
                let index = master
                    .change_members_local(MemberChange::Remove(id))
                    .await
                    .map_err(to_status)?;
                Ok(Response::new(ForwardResponse {
                    version: index,
                    outcome: Outcome::Noop.as_str().to_string(),
                }))
            }
            Some(forward_request::Kind::ReadIndex(_)) => {
                let index = master.read_index_local().await.map_err(to_status)?;
                Ok(Response::new(ForwardResponse {
                    version: index,
                    outcome: Outcome::Noop.as_str().to_string(),
                }))
            }
            None => Err(Status::invalid_argument("kind: missing")),
        }
    }
}
