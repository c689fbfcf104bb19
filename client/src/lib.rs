//! The one client library of Ocean's masters: the CLI's framework runner,
//! the frameworks and the tests talk to the masters through [`Client`].
//!
//! ```text
//!  frameworks / tools / tests
//!            │  Client (object-safe trait: one method per OceanApi call)
//!     ┌──────┴───────────────────────────┐
//!  GrpcClient (grpc.rs)              in-process client (ocean-master's
//!  failover across masters           api::in_process: the gRPC handlers
//!                                    called as functions, no socket)
//! ```
//!
//! [`follow`] turns `watch` into a stream that survives a broken stream or
//! a dead master, resuming from the last version it delivered completely.
//! The in-process implementation lives in ocean-master so this crate stays
//! light (no RocksDB, no raft).

pub mod error;
pub mod follow;
pub mod grpc;

use futures::stream::BoxStream;

pub use error::{Error, FieldError, Result};
pub use follow::follow;
pub use grpc::GrpcClient;
/// The client API's messages and service (`ocean.v1`).
pub use ocean_proto::v1 as api;

use api::*;

/// Every call of the masters' client API (`proto/proto/ocean.proto`).
#[async_trait::async_trait]
pub trait Client: Send + Sync + std::fmt::Debug {
    async fn put_job(&self, req: PutJobRequest) -> Result<PutJobResponse>;
    async fn get_job(&self, req: JobRef) -> Result<Job>;
    async fn delete_job(&self, req: JobRef) -> Result<DeleteJobResponse>;
    async fn list_jobs(&self, req: ListJobsRequest) -> Result<ListJobsResponse>;
    async fn leader(&self, req: LeaderRequest) -> Result<LeaderResponse>;
    async fn watch(&self, req: WatchRequest) -> Result<BoxStream<'static, Result<Event>>>;
    async fn job_info(&self, req: JobRef) -> Result<JobDetail>;
    async fn scale_job(&self, req: ScaleJobRequest) -> Result<WriteResponse>;
    async fn reset_backoff(&self, req: JobRef) -> Result<WriteResponse>;
    async fn job_versions(&self, req: JobRef) -> Result<JobVersionsResponse>;
    async fn list_tasks(&self, req: ListTasksRequest) -> Result<ListTasksResponse>;
    async fn get_task(&self, req: TaskRef) -> Result<Task>;
    async fn task_logs(&self, req: TaskLogsRequest)
        -> Result<BoxStream<'static, Result<LogChunk>>>;
    async fn list_agents(&self, req: ListAgentsRequest) -> Result<ListAgentsResponse>;
    async fn get_agent(&self, req: AgentRef) -> Result<AgentInfo>;
    async fn set_agent_status(&self, req: SetAgentStatusRequest) -> Result<WriteResponse>;
    async fn status(&self, req: StatusRequest) -> Result<StatusResponse>;
    async fn list_members(&self, req: ListMembersRequest) -> Result<ListMembersResponse>;
    async fn add_member(&self, req: AddMemberRequest) -> Result<MemberChangeResponse>;
    async fn remove_member(&self, req: RemoveMemberRequest) -> Result<MemberChangeResponse>;
    async fn metrics(&self, req: MetricsRequest) -> Result<MetricsResponse>;
    async fn kv_put(&self, req: KvPutRequest) -> Result<WriteResponse>;
    async fn kv_get(&self, req: KvKeyRequest) -> Result<KvEntry>;
    async fn kv_list(&self, req: KvListRequest) -> Result<KvListResponse>;
    async fn kv_delete(&self, req: KvKeyRequest) -> Result<WriteResponse>;
    async fn lease_acquire(&self, req: LeaseRequest) -> Result<LeaseInfo>;
    async fn lease_release(&self, req: LeaseRequest) -> Result<LeaseInfo>;
    async fn lease_get(&self, req: LeaseRef) -> Result<LeaseInfo>;
}
