//! gRPC services on every master: the client API (`OceanApi`) and the
//! master-to-master transport (`RaftTransport`: raft messages and writes
//! forwarded to the leader).

use std::future::Future;
use std::pin::Pin;

use futures::{Stream, StreamExt};
use ocean_proto::raft::raft_transport_server::{RaftTransport, RaftTransportServer};
use ocean_proto::raft::{forward_request, ForwardRequest, ForwardResponse, RaftAck, RaftBatch};
use ocean_proto::v1::ocean_api_server::{OceanApi, OceanApiServer};
use ocean_proto::v1::{
    event, Agent, Command, DeleteJobResponse, Event, Job, JobRef, KvEntry, LeaderRequest,
    LeaderResponse, ListJobsRequest, ListJobsResponse, Member, PutJobRequest, PutJobResponse,
    Snapshot, Task, WatchRequest,
};
use ocean_spec::{parse_job_spec, Format};
use prost::Message as _;
use protobuf::Message as _;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

use super::error::{spec_status, to_status};
use super::watch::{watch, WatchFilter, WatchItem};
use crate::error::{Error, Result};
use crate::master::Master;
use crate::node::{MemberChange, Msg};
use crate::state::{delete_job_command, put_job_command, Change, Outcome};

/// Serves both gRPC services on `listener` until `shutdown` resolves.
pub async fn serve(
    master: Master,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let master_for_agents = master.clone();
    let api = OceanApiServer::new(Api(master.clone()))
        .max_decoding_message_size(16 * 1024 * 1024)
        .max_encoding_message_size(usize::MAX);
    let transport = RaftTransportServer::new(Transport(master))
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(api)
        .add_service(transport)
        .add_service(super::agent::AgentService::server(master_for_agents))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
        .map_err(|e| Error::Io {
            context: "serve gRPC".into(),
            source: std::io::Error::other(e),
        })
}

/// The client API.
#[derive(Debug, Clone)]
pub struct Api(pub Master);

/// The master-to-master transport.
#[derive(Debug, Clone)]
pub struct Transport(pub Master);

type WatchStream = Pin<Box<dyn Stream<Item = std::result::Result<Event, Status>> + Send>>;

#[tonic::async_trait]
impl OceanApi for Api {
    async fn put_job(
        &self,
        req: Request<PutJobRequest>,
    ) -> std::result::Result<Response<PutJobResponse>, Status> {
        let req = req.into_inner();
        let format = match req.format.as_str() {
            "json" => Format::Json,
            "yaml" => Format::Yaml,
            "" => Format::Auto,
            other => {
                return Err(Status::invalid_argument(format!(
                    "format: '{other}' is not one of json, yaml"
                )))
            }
        };
        let spec = parse_job_spec(&req.spec, format).map_err(|e| spec_status(&e))?;
        let id = spec.id.clone();
        let applied = self
            .0
            .propose(put_job_command(id.clone(), spec.to_canonical_json()))
            .await
            .map_err(to_status)?;
        let created = applied.outcome == Outcome::Created;
        Ok(Response::new(PutJobResponse {
            id,
            version: applied.version,
            created,
        }))
    }

    async fn get_job(&self, req: Request<JobRef>) -> std::result::Result<Response<Job>, Status> {
        let id = req.into_inner().id;
        self.0
            .read(|st| st.jobs.get(&id).map(|j| Job::clone(j)))
            .map(Response::new)
            .ok_or_else(|| to_status(Error::NotFound { kind: "job", id }))
    }

    async fn delete_job(
        &self,
        req: Request<JobRef>,
    ) -> std::result::Result<Response<DeleteJobResponse>, Status> {
        let id = req.into_inner().id;
        let applied = self
            .0
            .propose(delete_job_command(id.clone()))
            .await
            .map_err(to_status)?;
        if applied.outcome == Outcome::NotFound {
            return Err(to_status(Error::NotFound { kind: "job", id }));
        }
        Ok(Response::new(DeleteJobResponse {
            version: applied.version,
        }))
    }

    async fn list_jobs(
        &self,
        _req: Request<ListJobsRequest>,
    ) -> std::result::Result<Response<ListJobsResponse>, Status> {
        Ok(Response::new(self.0.read(|st| ListJobsResponse {
            jobs: st.jobs.values().map(|j| Job::clone(j)).collect(),
            version: st.version,
        })))
    }

    async fn leader(
        &self,
        _req: Request<LeaderRequest>,
    ) -> std::result::Result<Response<LeaderResponse>, Status> {
        let term = self.0.status().term;
        match self.0.leader() {
            Some(l) => Ok(Response::new(LeaderResponse {
                id: l.id,
                grpc_addr: l.grpc_addr,
                http_addr: l.http_addr,
                term,
            })),
            None => Err(Status::unavailable("no leader known")),
        }
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        req: Request<WatchRequest>,
    ) -> std::result::Result<Response<WatchStream>, Status> {
        let req = req.into_inner();
        let filter =
            WatchFilter::parse(&req.node, &req.kinds, &req.namespaces).map_err(to_status)?;
        let m = &self.0;
        let stream = watch(
            m.feed().clone(),
            m.state().clone(),
            req.from_version,
            filter,
        )
        .map(|item| {
            Ok(match item {
                WatchItem::Snapshot {
                    version,
                    jobs,
                    agents,
                    tasks,
                    kv,
                } => Event {
                    version,
                    kind: Some(event::Kind::Snapshot(Snapshot {
                        version,
                        jobs: jobs.iter().map(|j| Job::clone(j)).collect(),
                        agents: agents.iter().map(|a| Agent::clone(a)).collect(),
                        tasks: tasks.iter().map(|t| Task::clone(t)).collect(),
                        kv: kv.iter().map(|e| KvEntry::clone(e)).collect(),
                    })),
                },
                WatchItem::Change {
                    version, change, ..
                } => Event {
                    version,
                    kind: Some(match change {
                        Change::JobPut(job) => event::Kind::JobPut(Job::clone(&job)),
                        Change::JobDeleted(id) => event::Kind::JobDeleted(id),
                        Change::AgentPut(a) => event::Kind::AgentPut(Agent::clone(&a)),
                        Change::TaskPut(t) => event::Kind::TaskPut(Task::clone(&t)),
                        Change::TaskRemoved(id) => event::Kind::TaskRemoved(id),
                        Change::KvPut(e) => event::Kind::KvPut(KvEntry::clone(&e)),
                        Change::KvDeleted(e) => event::Kind::KvDeleted(KvEntry::clone(&e)),
                    }),
                },
            })
        });
        Ok(Response::new(Box::pin(stream)))
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
            let msg = raft::eraftpb::Message::parse_from_bytes(&bytes).map_err(|e| {
                Status::invalid_argument(format!("messages: not a raft message: {e}"))
            })?;
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
                let cmd = Command::decode(&*bytes)
                    .map_err(|e| Status::invalid_argument(format!("command: {e}")))?;
                let applied = master.propose_local(cmd).await.map_err(to_status)?;
                Ok(Response::new(ForwardResponse {
                    version: applied.version,
                    outcome: applied.outcome.to_wire(),
                }))
            }
            Some(forward_request::Kind::AddMember(m)) => {
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
