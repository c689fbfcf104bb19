//! The client gRPC API (`ocean.v1.OceanApi`): one call per REST
//! operation, each a thin adapter over [`crate::service`]. Errors become
//! statuses in one place (`api::error::to_status`), with the details a
//! client needs in metadata (both versions of a compare-and-set conflict,
//! a lease's holder, every field error of a bad request).

use std::pin::Pin;

use futures::{Stream, StreamExt};
use ocean_proto::v1::ocean_api_server::OceanApi;
use ocean_proto::v1::{
    event, AddMemberRequest, AgentInfo, AgentRef, DeleteJobResponse, Event, Job, JobDetail, JobRef,
    JobVersionsResponse, KvEntry, KvKeyRequest, KvListRequest, KvListResponse, KvPutRequest,
    LeaderRequest, LeaderResponse, LeaseInfo, LeaseRef, LeaseRequest, ListAgentsRequest,
    ListAgentsResponse, ListJobsRequest, ListJobsResponse, ListMembersRequest, ListMembersResponse,
    ListTasksRequest, ListTasksResponse, LogChunk, Member, MemberChangeResponse, MemberStatus,
    MetricsRequest, MetricsResponse, PutJobRequest, PutJobResponse, RemoveMemberRequest,
    ScaleJobRequest, SetAgentStatusRequest, Snapshot, StatusRequest, StatusResponse, Task,
    TaskLogsRequest, TaskRef, WatchRequest, WriteResponse,
};
use ocean_proto::v1::{
    DeploymentActionRequest, DeploymentRef, GetDeploymentResponse, ListDeploymentsRequest,
    ListDeploymentsResponse, PlanJobRequest, PlanJobResponse, RollbackJobRequest,
};
use ocean_spec::Format;
use tonic::{Request, Response, Status};

use super::convert::{self, read_options};
use super::error::to_status;
use super::usage_latest;
use super::watch::{watch, WatchFilter, WatchItem};
use crate::error::Error;
use crate::kernel::state::Change;
use crate::master::Master;
use crate::service::jobs::PutJob;
use crate::service::tasks::TaskFilter;
use crate::service::ReadOptions;

type Answer<T> = std::result::Result<Response<T>, Status>;
type BoxStream<T> = Pin<Box<dyn Stream<Item = std::result::Result<T, Status>> + Send>>;

/// The client API of one master.
#[derive(Debug, Clone)]
pub struct Api(pub Master);

fn ok<T>(v: T) -> Answer<T> {
    Ok(Response::new(v))
}

fn lease_name(name: &str) -> &str {
    if name.is_empty() {
        "leader"
    } else {
        name
    }
}

/// A spec's format as a request names it.
fn spec_format(name: &str) -> std::result::Result<Format, Status> {
    match name {
        "json" => Ok(Format::Json),
        "yaml" => Ok(Format::Yaml),
        "" => Ok(Format::Auto),
        other => Err(to_status(Error::Invalid {
            field: "format".into(),
            reason: format!("'{other}' is not one of json, yaml"),
        })),
    }
}

/// One watch item as the gRPC event.
fn event_of(item: WatchItem) -> Event {
    match item {
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
                jobs: jobs.iter().map(|j| convert::job(j)).collect(),
                agents: agents.iter().map(|a| convert::agent(a)).collect(),
                tasks: tasks.iter().map(|t| convert::task(t)).collect(),
                kv: kv.iter().map(|e| convert::kv(e)).collect(),
            })),
            last_of_version: true,
        },
        WatchItem::Change {
            version,
            change,
            last,
        } => Event {
            version,
            kind: Some(match change {
                Change::JobPut(job) => event::Kind::JobPut(convert::job(&job)),
                Change::JobDeleted(id) => event::Kind::JobDeleted(id),
                Change::AgentPut(a) => event::Kind::AgentPut(convert::agent(&a)),
                Change::TaskPut(t) => event::Kind::TaskPut(convert::task(&t)),
                Change::TaskRemoved(id) => event::Kind::TaskRemoved(id),
                Change::KvPut(e) => event::Kind::KvPut(convert::kv(&e)),
                Change::KvDeleted(e) => event::Kind::KvDeleted(convert::kv(&e)),
            }),
            last_of_version: last,
        },
    }
}

#[tonic::async_trait]
impl OceanApi for Api {
    async fn put_job(&self, req: Request<PutJobRequest>) -> Answer<PutJobResponse> {
        let req = req.into_inner();
        let format = spec_format(&req.format)?;
        let r = self
            .0
            .service()
            .put_job(PutJob {
                spec: req.spec,
                format,
                expected_spec_version: req.expected_spec_version,
            })
            .await
            .map_err(to_status)?;
        ok(PutJobResponse {
            created: r.outcome == "created",
            id: r.id,
            version: r.version,
            outcome: r.outcome,
            spec_version: r.spec_version.unwrap_or(0),
        })
    }

    async fn get_job(&self, req: Request<JobRef>) -> Answer<Job> {
        let req = req.into_inner();
        let svc = self.0.service();
        svc.authorize(&req.id, crate::service::acl::Right::Read)
            .map_err(to_status)?;
        crate::service::Kernel::wait_read(svc.kernel(), read_options(req.read))
            .await
            .map_err(to_status)?;
        self.0
            .read(|st| st.jobs.get(&req.id).map(|j| convert::job(j)))
            .map(Response::new)
            .ok_or_else(|| {
                to_status(Error::NotFound {
                    kind: "job",
                    id: req.id,
                })
            })
    }

    async fn delete_job(&self, req: Request<JobRef>) -> Answer<DeleteJobResponse> {
        let req = req.into_inner();
        let r = self
            .0
            .service()
            .delete_job(&req.id, req.expected_spec_version)
            .await
            .map_err(to_status)?;
        ok(DeleteJobResponse {
            version: r.version,
            outcome: r.outcome,
        })
    }

    async fn list_jobs(&self, req: Request<ListJobsRequest>) -> Answer<ListJobsResponse> {
        let req = req.into_inner();
        let prefix = (!req.prefix.is_empty()).then_some(req.prefix.as_str());
        let (version, jobs) = self
            .0
            .service()
            .job_records(prefix, read_options(req.read))
            .await
            .map_err(to_status)?;
        ok(ListJobsResponse {
            jobs: jobs.iter().map(|j| convert::job(j)).collect(),
            version,
        })
    }

    async fn leader(&self, _req: Request<LeaderRequest>) -> Answer<LeaderResponse> {
        let l = self.0.service().leader().map_err(to_status)?;
        ok(LeaderResponse {
            id: l.id,
            grpc_addr: l.grpc_addr,
            http_addr: l.http_addr,
            term: l.term,
        })
    }

    type WatchStream = BoxStream<Event>;

    async fn watch(&self, req: Request<WatchRequest>) -> Answer<Self::WatchStream> {
        let req = req.into_inner();
        let grants = self.0.service().watch_grants().map_err(to_status)?;
        let filter = WatchFilter::parse(&req.node, &req.kinds, &req.namespaces)
            .map_err(to_status)?
            .with_grants(grants);
        let m = &self.0;
        let stream = watch(
            m.feed().clone(),
            m.state().clone(),
            req.from_version,
            filter,
        )
        .map(|item| Ok(event_of(item)));
        ok(Box::pin(stream))
    }

    async fn job_info(&self, req: Request<JobRef>) -> Answer<JobDetail> {
        let req = req.into_inner();
        let (version, detail) = self
            .0
            .service()
            .get_job(&req.id, read_options(req.read))
            .await
            .map_err(to_status)?;
        let job = self
            .0
            .read(|st| st.jobs.get(&req.id).cloned())
            .ok_or_else(|| {
                to_status(Error::NotFound {
                    kind: "job",
                    id: req.id,
                })
            })?;
        ok(convert::job_detail(version, detail, &job))
    }

    async fn scale_job(&self, req: Request<ScaleJobRequest>) -> Answer<WriteResponse> {
        let req = req.into_inner();
        let r = self
            .0
            .service()
            .scale_job(&req.id, req.instances, req.expected_spec_version)
            .await
            .map_err(to_status)?;
        ok(convert::write(r))
    }

    async fn reset_backoff(&self, req: Request<JobRef>) -> Answer<WriteResponse> {
        let r = self
            .0
            .service()
            .reset_backoff(&req.into_inner().id)
            .await
            .map_err(to_status)?;
        ok(convert::write(r))
    }

    async fn job_versions(&self, req: Request<JobRef>) -> Answer<JobVersionsResponse> {
        let req = req.into_inner();
        let v = self
            .0
            .service()
            .job_versions(&req.id, read_options(req.read))
            .await
            .map_err(to_status)?;
        ok(convert::job_versions(v))
    }

    async fn list_tasks(&self, req: Request<ListTasksRequest>) -> Answer<ListTasksResponse> {
        let auth = auth_of(&req);
        let req = req.into_inner();
        let some = |s: String| (!s.is_empty()).then_some(s);
        let filter = TaskFilter {
            job: some(req.job),
            agent: some(req.agent),
            state: some(req.state),
            ended: req.ended,
            q: None,
        };
        let (version, tasks) = self
            .0
            .service()
            .list_tasks(&filter, read_options(req.read))
            .await
            .map_err(to_status)?;
        let ids = tasks.iter().map(|t| t.id.clone()).collect();
        let mut latest = usage_latest::latest(&self.0, ids, Vec::new(), auth).await;
        ok(ListTasksResponse {
            version,
            tasks: tasks
                .iter()
                .map(|t| {
                    let mut task = convert::task(t);
                    task.usage = latest.tasks.remove(&t.id).map(|u| convert::task_usage(&u));
                    task
                })
                .collect(),
        })
    }

    async fn get_task(&self, req: Request<TaskRef>) -> Answer<Task> {
        let auth = auth_of(&req);
        let req = req.into_inner();
        let (_, t) = self
            .0
            .service()
            .get_task(&req.id, read_options(req.read))
            .await
            .map_err(to_status)?;
        let mut task = convert::task(&t);
        let mut latest = usage_latest::latest(&self.0, vec![t.id.clone()], Vec::new(), auth).await;
        task.usage = latest.tasks.remove(&t.id).map(|u| convert::task_usage(&u));
        ok(task)
    }

    type TaskLogsStream = BoxStream<LogChunk>;

    async fn task_logs(&self, req: Request<TaskLogsRequest>) -> Answer<Self::TaskLogsStream> {
        let req = req.into_inner();
        let stream = if req.stream.is_empty() {
            "stdout"
        } else {
            req.stream.as_str()
        };
        let resp = self
            .0
            .service()
            .task_logs(&req.id, stream, req.tail, req.follow)
            .await
            .map_err(to_status)?;
        if !resp.status().is_success() {
            let code = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            return Err(if code == 404 {
                Status::not_found(text)
            } else {
                Status::unavailable(format!("agent answered {code}: {text}"))
            });
        }
        let chunks = resp.bytes_stream().map(|b| match b {
            Ok(data) => Ok(LogChunk {
                data: data.to_vec(),
            }),
            Err(e) => Err(Status::unavailable(format!("agent log stream: {e}"))),
        });
        ok(Box::pin(chunks))
    }

    async fn list_agents(&self, req: Request<ListAgentsRequest>) -> Answer<ListAgentsResponse> {
        let auth = auth_of(&req);
        let (version, agents) = self
            .0
            .service()
            .list_agents(read_options(req.into_inner().read))
            .await
            .map_err(to_status)?;
        let ids = agents.iter().map(|(a, _)| a.id.clone()).collect();
        let mut latest = usage_latest::latest(&self.0, Vec::new(), ids, auth).await;
        ok(ListAgentsResponse {
            version,
            agents: agents
                .iter()
                .map(|(a, l)| {
                    let mut info = convert::agent_info(a, *l);
                    info.usage = latest
                        .agents
                        .remove(&a.id)
                        .map(|u| convert::agent_usage(&u));
                    info.host_checks = crate::api::host_checks_of(&self.0, &a.id)
                        .map(|h| crate::host_checks::to_proto(&h));
                    info
                })
                .collect(),
        })
    }

    async fn get_agent(&self, req: Request<AgentRef>) -> Answer<AgentInfo> {
        let auth = auth_of(&req);
        let req = req.into_inner();
        let (_, a, l) = self
            .0
            .service()
            .get_agent(&req.id, read_options(req.read))
            .await
            .map_err(to_status)?;
        let mut info = convert::agent_info(&a, l);
        let mut latest = usage_latest::latest(&self.0, Vec::new(), vec![a.id.clone()], auth).await;
        info.usage = latest
            .agents
            .remove(&a.id)
            .map(|u| convert::agent_usage(&u));
        info.host_checks =
            crate::api::host_checks_of(&self.0, &a.id).map(|h| crate::host_checks::to_proto(&h));
        ok(info)
    }

    async fn set_agent_status(&self, req: Request<SetAgentStatusRequest>) -> Answer<WriteResponse> {
        let req = req.into_inner();
        let r = self
            .0
            .service()
            .set_agent_status(&req.id, &req.status, &req.message)
            .await
            .map_err(to_status)?;
        ok(convert::write(r))
    }

    async fn status(&self, _req: Request<StatusRequest>) -> Answer<StatusResponse> {
        let s = self.0.service().status();
        ok(StatusResponse {
            id: s.id,
            role: s.role.to_string(),
            term: s.term,
            leader: s.leader.unwrap_or(0),
            commit_index: s.commit_index,
            applied_index: s.applied_index,
            first_index: s.first_index,
            version: s.version,
            jobs: s.jobs as u64,
            removed: s.removed,
            members: s
                .members
                .into_iter()
                .map(|m| MemberStatus {
                    id: m.id,
                    grpc_addr: m.grpc_addr,
                    http_addr: m.http_addr,
                    voter: m.voter,
                    leader: m.leader,
                    healthy: m.healthy,
                    match_index: m.match_index,
                    last_contact_ms: m.last_contact_ms,
                })
                .collect(),
        })
    }

    async fn list_members(&self, _req: Request<ListMembersRequest>) -> Answer<ListMembersResponse> {
        ok(ListMembersResponse {
            members: self
                .0
                .service()
                .members()
                .into_iter()
                .map(|m| Member {
                    id: m.id,
                    grpc_addr: m.grpc_addr,
                    http_addr: m.http_addr,
                    voter: m.voter,
                })
                .collect(),
        })
    }

    async fn add_member(&self, req: Request<AddMemberRequest>) -> Answer<MemberChangeResponse> {
        let req = req.into_inner();
        let index = self
            .0
            .service()
            .add_member(req.id, &req.grpc_addr, &req.http_addr)
            .await
            .map_err(to_status)?;
        ok(MemberChangeResponse {
            id: req.id,
            index,
            outcome: "added".into(),
        })
    }

    async fn remove_member(
        &self,
        req: Request<RemoveMemberRequest>,
    ) -> Answer<MemberChangeResponse> {
        let id = req.into_inner().id;
        let index = self
            .0
            .service()
            .remove_member(id)
            .await
            .map_err(to_status)?;
        ok(MemberChangeResponse {
            id,
            index,
            outcome: "removed".into(),
        })
    }

    async fn metrics(&self, _req: Request<MetricsRequest>) -> Answer<MetricsResponse> {
        ok(MetricsResponse {
            text: self.0.metrics().render(),
        })
    }

    async fn kv_put(&self, req: Request<KvPutRequest>) -> Answer<WriteResponse> {
        let req = req.into_inner();
        let r = self
            .0
            .service()
            .kv_put(&req.namespace, &req.key, req.value, req.expected_revision)
            .await
            .map_err(to_status)?;
        ok(convert::write(r))
    }

    async fn kv_get(&self, req: Request<KvKeyRequest>) -> Answer<KvEntry> {
        let req = req.into_inner();
        let svc = self.0.service();
        // The view is for JSON; gRPC hands back the stored bytes.
        svc.kv_get(&req.namespace, &req.key, read_options(req.read))
            .await
            .map_err(to_status)?;
        self.0
            .read(|st| st.kv_get(&req.namespace, &req.key).map(|e| convert::kv(e)))
            .map(Response::new)
            .ok_or_else(|| {
                to_status(Error::NotFound {
                    kind: "key",
                    id: req.key,
                })
            })
    }

    async fn kv_list(&self, req: Request<KvListRequest>) -> Answer<KvListResponse> {
        let req = req.into_inner();
        let list = self
            .0
            .service()
            .kv_list(&req.namespace, &req.prefix, read_options(req.read))
            .await
            .map_err(to_status)?;
        let entries = self.0.read(|st| {
            list.keys
                .iter()
                .filter_map(|k| st.kv_get(&k.namespace, &k.key).map(|e| convert::kv(e)))
                .collect()
        });
        ok(KvListResponse {
            version: list.version,
            entries,
        })
    }

    async fn kv_delete(&self, req: Request<KvKeyRequest>) -> Answer<WriteResponse> {
        let req = req.into_inner();
        let r = self
            .0
            .service()
            .kv_delete(&req.namespace, &req.key, req.expected_revision)
            .await
            .map_err(to_status)?;
        ok(convert::write(r))
    }

    async fn lease_acquire(&self, req: Request<LeaseRequest>) -> Answer<LeaseInfo> {
        let req = req.into_inner();
        let l = self
            .0
            .service()
            .lease_acquire(
                &req.namespace,
                lease_name(&req.name),
                &req.holder,
                req.ttl_ms,
            )
            .await
            .map_err(to_status)?;
        ok(convert::lease(l))
    }

    async fn lease_release(&self, req: Request<LeaseRequest>) -> Answer<LeaseInfo> {
        let req = req.into_inner();
        let svc = self.0.service();
        let name = lease_name(&req.name);
        svc.lease_release(&req.namespace, name, &req.holder)
            .await
            .map_err(to_status)?;
        let l = svc
            .lease_get(&req.namespace, name, ReadOptions::default())
            .await
            .map_err(to_status)?;
        ok(convert::lease(l))
    }

    async fn lease_get(&self, req: Request<LeaseRef>) -> Answer<LeaseInfo> {
        let req = req.into_inner();
        let l = self
            .0
            .service()
            .lease_get(
                &req.namespace,
                lease_name(&req.name),
                read_options(req.read),
            )
            .await
            .map_err(to_status)?;
        ok(convert::lease(l))
    }

    async fn list_deployments(
        &self,
        req: Request<ListDeploymentsRequest>,
    ) -> Answer<ListDeploymentsResponse> {
        let req = req.into_inner();
        let job = (!req.job.is_empty()).then_some(req.job.as_str());
        let list = self
            .0
            .service()
            .list_deployments(job, read_options(req.read))
            .await
            .map_err(to_status)?;
        ok(ListDeploymentsResponse {
            version: list.version,
            deployments: list.deployments.iter().map(convert::deployment).collect(),
        })
    }

    async fn get_deployment(&self, req: Request<DeploymentRef>) -> Answer<GetDeploymentResponse> {
        let req = req.into_inner();
        let (version, d) = self
            .0
            .service()
            .get_deployment(&req.id, read_options(req.read))
            .await
            .map_err(to_status)?;
        ok(GetDeploymentResponse {
            version,
            deployment: Some(convert::deployment(&d)),
        })
    }

    async fn deployment_action(
        &self,
        req: Request<DeploymentActionRequest>,
    ) -> Answer<WriteResponse> {
        let req = req.into_inner();
        let r = self
            .0
            .service()
            .deployment_action(&req.id, &req.action, &req.reason)
            .await
            .map_err(to_status)?;
        ok(convert::write(r))
    }

    async fn rollback_job(&self, req: Request<RollbackJobRequest>) -> Answer<WriteResponse> {
        let req = req.into_inner();
        let r = self
            .0
            .service()
            .rollback_job(&req.id, req.to_version)
            .await
            .map_err(to_status)?;
        ok(convert::write(r))
    }

    async fn plan_job(&self, req: Request<PlanJobRequest>) -> Answer<PlanJobResponse> {
        let req = req.into_inner();
        // A plan shows where the job would run: reading it is enough.
        self.0
            .service()
            .authorize(&req.id, crate::service::acl::Right::Read)
            .map_err(to_status)?;
        let format = spec_format(&req.format)?;
        let spec = self
            .0
            .service()
            .parse_spec(&req.spec, format)
            .map_err(to_status)?;
        if spec.id != req.id {
            return Err(to_status(Error::Invalid {
                field: "id".into(),
                reason: format!("the spec's id {} is not the job {} asked", spec.id, req.id),
            }));
        }
        let connected = self.0.sessions().connected();
        let plan = self
            .0
            .read(|st| crate::reconcile::plan::plan_job(st, &connected, &spec));
        ok(PlanJobResponse {
            version: plan.version,
            replaces_tasks: plan.replaces_tasks,
            tasks_to_replace: plan.tasks_to_replace as u64,
            summary: plan.summary.clone(),
            plan_json: serde_json::to_vec(&plan).unwrap_or_default(),
        })
    }
}

/// The caller's token, for a follower's question to the leader
/// (`usage_latest.rs`).
fn auth_of<T>(req: &Request<T>) -> Option<axum::http::HeaderValue> {
    let v = req.metadata().get("authorization")?;
    axum::http::HeaderValue::from_bytes(v.as_bytes()).ok()
}
