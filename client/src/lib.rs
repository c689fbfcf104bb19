//! The one client library of Ocean's masters: the CLI, the DNS server,
//! frameworks and test helpers all speak to the cluster through the
//! [`Client`] trait, one method per `OceanApi` call (`proto/ocean.proto`).
//!
//! ```text
//!       DNS    frameworks    test helpers             CLI, REST tests
//!        |         |            /                          |
//!        +----+----+-----------+                           |
//!             |                                            |
//!      Client (trait, this crate) ---- follow(): a watch   RestClient
//!             |                        that resumes after  (feature `rest`:
//!    +--------+-------------------+    the last complete   the REST API's
//!    |                            |    version             JSON, failover)
//! GrpcClient (this crate)   InProcess (ocean-master's
//! tonic, fails over across  api::in_process: its gRPC handlers
//! masters until a deadline  called as functions, no socket)
//! ```
//!
//! The in-process implementation lives in `ocean-master` so that this crate
//! stays light: it depends on the generated protocol, tonic and tokio, never
//! on the master itself.
//!
//! - [`error`]: [`Error`], typed from the master's gRPC status and metadata.
//! - [`grpc`]: [`GrpcClient`], failover across masters.
//! - [`follow`](mod@follow): [`follow()`], the never-ending watch, and
//!   [`follow_versions`], the same in whole versions.
//! - [`rest`] (cargo feature `rest`): [`RestClient`], the REST API as
//!   JSON with the same failover, for the CLI (which prints the API's JSON
//!   as it is) and for tests of the REST surface.

pub mod error;
pub mod follow;
pub mod grpc;
#[cfg(feature = "rest")]
pub mod rest;
#[cfg(feature = "rest")]
mod rest_deployments;
pub mod secret;

pub use ocean_proto::v1 as api;

pub use error::{Error, FieldError, Result};
pub use follow::{follow, follow_versions};
pub use grpc::{GrpcClient, GrpcOptions, KeepAlive};
#[cfg(feature = "rest")]
pub use rest::{RestClient, RestError, RestOptions, RestTls};
pub use secret::Secret;

use async_trait::async_trait;
use futures::stream::BoxStream;

/// The masters' client API (`ocean.v1.OceanApi`), one method per call.
///
/// Object safe: consumers hold an `Arc<dyn Client>` and do not care whether
/// the masters are across the network or in the same process.
#[async_trait]
pub trait Client: Send + Sync + std::fmt::Debug {
    /// Creates or updates a job from its spec (compare-and-set optional).
    async fn put_job(&self, req: api::PutJobRequest) -> Result<api::PutJobResponse>;
    /// One job.
    async fn get_job(&self, req: api::JobRef) -> Result<api::Job>;
    /// Deletes a job (compare-and-set optional).
    async fn delete_job(&self, req: api::JobRef) -> Result<api::DeleteJobResponse>;
    /// The jobs under a service-tree node.
    async fn list_jobs(&self, req: api::ListJobsRequest) -> Result<api::ListJobsResponse>;
    /// Which master leads, as the answering master knows it.
    async fn leader(&self, req: api::LeaderRequest) -> Result<api::LeaderResponse>;
    /// Every change after a version (a snapshot first when asked from 0 or
    /// from further back than the feed keeps). Ends when the connection
    /// does; [`follow()`] resumes it.
    async fn watch(&self, req: api::WatchRequest)
        -> Result<BoxStream<'static, Result<api::Event>>>;

    /// One job with its tasks' counts and DNS name.
    async fn job_info(&self, req: api::JobRef) -> Result<api::JobDetail>;
    /// Sets a job's instance count.
    async fn scale_job(&self, req: api::ScaleJobRequest) -> Result<api::WriteResponse>;
    /// Clears a job's restart back-off.
    async fn reset_backoff(&self, req: api::JobRef) -> Result<api::WriteResponse>;
    /// A job's spec history.
    async fn job_versions(&self, req: api::JobRef) -> Result<api::JobVersionsResponse>;

    /// Tasks by job, agent and state.
    async fn list_tasks(&self, req: api::ListTasksRequest) -> Result<api::ListTasksResponse>;
    /// One task.
    async fn get_task(&self, req: api::TaskRef) -> Result<api::Task>;
    /// A task's stdout or stderr, followed if asked.
    async fn task_logs(
        &self,
        req: api::TaskLogsRequest,
    ) -> Result<BoxStream<'static, Result<api::LogChunk>>>;

    /// The agents, with the leader's view of them.
    async fn list_agents(&self, req: api::ListAgentsRequest) -> Result<api::ListAgentsResponse>;
    /// One agent.
    async fn get_agent(&self, req: api::AgentRef) -> Result<api::AgentInfo>;
    /// The operator's status of an agent (online, draining, offline, problem).
    async fn set_agent_status(&self, req: api::SetAgentStatusRequest)
        -> Result<api::WriteResponse>;

    /// The answering master's raft status and its view of the members.
    async fn status(&self, req: api::StatusRequest) -> Result<api::StatusResponse>;
    /// The masters of the cluster.
    async fn list_members(&self, req: api::ListMembersRequest) -> Result<api::ListMembersResponse>;
    /// Adds a master.
    async fn add_member(&self, req: api::AddMemberRequest) -> Result<api::MemberChangeResponse>;
    /// Removes a master.
    async fn remove_member(
        &self,
        req: api::RemoveMemberRequest,
    ) -> Result<api::MemberChangeResponse>;
    /// The answering master's metrics, Prometheus text format.
    async fn metrics(&self, req: api::MetricsRequest) -> Result<api::MetricsResponse>;

    /// Writes a key of a framework's store (compare-and-set optional).
    async fn kv_put(&self, req: api::KvPutRequest) -> Result<api::WriteResponse>;
    /// One key of a framework's store.
    async fn kv_get(&self, req: api::KvKeyRequest) -> Result<api::KvEntry>;
    /// The keys of a namespace under a prefix.
    async fn kv_list(&self, req: api::KvListRequest) -> Result<api::KvListResponse>;
    /// Deletes a key (compare-and-set optional).
    async fn kv_delete(&self, req: api::KvKeyRequest) -> Result<api::WriteResponse>;
    /// Takes or renews a framework's leader lease.
    async fn lease_acquire(&self, req: api::LeaseRequest) -> Result<api::LeaseInfo>;
    /// Gives a lease up (only its holder can).
    async fn lease_release(&self, req: api::LeaseRequest) -> Result<api::LeaseInfo>;
    /// A lease as it stands.
    async fn lease_get(&self, req: api::LeaseRef) -> Result<api::LeaseInfo>;

    /// Deployments of a job (or of every job), newest first per job.
    async fn list_deployments(
        &self,
        req: api::ListDeploymentsRequest,
    ) -> Result<api::ListDeploymentsResponse>;
    /// One deployment with each task's progress.
    async fn get_deployment(&self, req: api::DeploymentRef) -> Result<api::GetDeploymentResponse>;
    /// Pauses, resumes, promotes, fails or cancels a deployment.
    async fn deployment_action(
        &self,
        req: api::DeploymentActionRequest,
    ) -> Result<api::WriteResponse>;
    /// Puts a job back to an earlier spec version (a deployment starts).
    async fn rollback_job(&self, req: api::RollbackJobRequest) -> Result<api::WriteResponse>;
    /// What putting a spec would do, committing nothing.
    async fn plan_job(&self, req: api::PlanJobRequest) -> Result<api::PlanJobResponse>;
}

/// Calls the macro `$m` with every unary call of [`Client`], one
/// `name(Request) -> Response;` each, then `;` and the items given after
/// it, so each implementation (gRPC, in-process, test doubles) lists the
/// calls once and none can be forgotten. The request and response names
/// resolve where it is called (import `ocean_proto::v1::*` there).
#[macro_export]
macro_rules! with_unary_calls {
    ($m:ident { $($rest:tt)* }) => {
        $m! {
            put_job(PutJobRequest) -> PutJobResponse;
            get_job(JobRef) -> Job;
            delete_job(JobRef) -> DeleteJobResponse;
            list_jobs(ListJobsRequest) -> ListJobsResponse;
            leader(LeaderRequest) -> LeaderResponse;
            job_info(JobRef) -> JobDetail;
            scale_job(ScaleJobRequest) -> WriteResponse;
            reset_backoff(JobRef) -> WriteResponse;
            job_versions(JobRef) -> JobVersionsResponse;
            list_tasks(ListTasksRequest) -> ListTasksResponse;
            get_task(TaskRef) -> Task;
            list_agents(ListAgentsRequest) -> ListAgentsResponse;
            get_agent(AgentRef) -> AgentInfo;
            set_agent_status(SetAgentStatusRequest) -> WriteResponse;
            status(StatusRequest) -> StatusResponse;
            list_members(ListMembersRequest) -> ListMembersResponse;
            add_member(AddMemberRequest) -> MemberChangeResponse;
            remove_member(RemoveMemberRequest) -> MemberChangeResponse;
            metrics(MetricsRequest) -> MetricsResponse;
            kv_put(KvPutRequest) -> WriteResponse;
            kv_get(KvKeyRequest) -> KvEntry;
            kv_list(KvListRequest) -> KvListResponse;
            kv_delete(KvKeyRequest) -> WriteResponse;
            lease_acquire(LeaseRequest) -> LeaseInfo;
            lease_release(LeaseRequest) -> LeaseInfo;
            lease_get(LeaseRef) -> LeaseInfo;
            list_deployments(ListDeploymentsRequest) -> ListDeploymentsResponse;
            get_deployment(DeploymentRef) -> GetDeploymentResponse;
            deployment_action(DeploymentActionRequest) -> WriteResponse;
            rollback_job(RollbackJobRequest) -> WriteResponse;
            plan_job(PlanJobRequest) -> PlanJobResponse;
            ;
            $($rest)*
        }
    };
}
