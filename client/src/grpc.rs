//! [`GrpcClient`]: the [`Client`] over gRPC, failing over across masters.
//! Any master serves any call (followers forward writes to the leader), so
//! a call goes to the master that answered last and moves on to the next
//! one only when that master cannot be reached or has no leader.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;
use ocean_proto::v1::ocean_api_client::OceanApiClient;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::api::*;
use crate::{Client, Error, FieldError, Result};

/// A client of several masters (see the module docs).
#[derive(Debug)]
pub struct GrpcClient {
    addrs: Vec<String>,
    channels: Vec<Channel>,
    current: AtomicUsize,
    timeout: Duration,
}

impl GrpcClient {
    /// A client of the masters at `addrs` (`HOST:PORT`, `http://` optional).
    /// Nothing is connected until the first call.
    pub fn new(addrs: impl IntoIterator<Item = String>) -> Result<Self> {
        let addrs: Vec<String> = addrs
            .into_iter()
            .map(|a| a.trim().trim_end_matches('/').to_string())
            .filter(|a| !a.is_empty())
            .map(|a| {
                if a.contains("://") {
                    a
                } else {
                    format!("http://{a}")
                }
            })
            .collect();
        let invalid = |reason: String| Error::Invalid {
            message: format!("addrs: {reason}"),
            errors: vec![FieldError::new("addrs", reason)],
        };
        if addrs.is_empty() {
            return Err(invalid("no master address given".into()));
        }
        let mut channels = Vec::new();
        for a in &addrs {
            let ep = Endpoint::from_shared(a.clone())
                .map_err(|e| invalid(format!("'{a}' is not HOST:PORT: {e}")))?
                .connect_timeout(Duration::from_secs(1))
                .tcp_nodelay(true);
            channels.push(ep.connect_lazy());
        }
        Ok(GrpcClient {
            addrs,
            channels,
            current: AtomicUsize::new(0),
            timeout: Duration::from_secs(5),
        })
    }

    /// How long a call keeps trying other masters (default 5 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The masters' addresses.
    pub fn addrs(&self) -> &[String] {
        &self.addrs
    }

    /// Runs `call` against the current master, moving to the next one on
    /// an unreachable master or one without a leader, until the deadline.
    async fn call<T, F, Fut>(&self, call: F) -> Result<T>
    where
        F: Fn(OceanApiClient<Channel>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, Status>>,
    {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let n = self.channels.len();
        let mut tried = 0;
        loop {
            let i = self.current.load(Ordering::Relaxed) % n;
            let client =
                OceanApiClient::new(self.channels[i].clone()).max_decoding_message_size(usize::MAX);
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let status = match tokio::time::timeout(
                left.max(Duration::from_millis(1)),
                call(client),
            )
            .await
            {
                Ok(Ok(resp)) => return Ok(resp.into_inner()),
                Ok(Err(status)) => status,
                Err(_) => Status::unavailable(format!("{}: no answer in time", self.addrs[i])),
            };
            if !retryable(&status) || tokio::time::Instant::now() >= deadline {
                return Err(Error::from_status(status));
            }
            tracing::debug!(master = %self.addrs[i], error = %status.message(), "trying the next master");
            let _ =
                self.current
                    .compare_exchange(i, (i + 1) % n, Ordering::Relaxed, Ordering::Relaxed);
            tried += 1;
            if tried % n == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Unreachable, or reachable without a leader: another master may do.
/// `Aborted` (outcome unknown) is not retried: a write may have landed.
fn retryable(s: &Status) -> bool {
    matches!(s.code(), Code::Unavailable)
        || (s.code() == Code::Unknown && s.message().contains("transport"))
}

/// The unary calls, each the same few lines; the streaming ones follow
/// by hand. `async_trait` must see the expanded methods, so the macro
/// writes the whole impl.
macro_rules! client_impl {
    ($($name:ident($req:ty) -> $resp:ty;)* ; $($rest:item)*) => {
        #[async_trait::async_trait]
        impl Client for GrpcClient {
            $(
                async fn $name(&self, req: $req) -> Result<$resp> {
                self.call(|mut c| {
                    let req = req.clone();
                    async move { c.$name(req).await }
                })
                .await
                }
            )*
            $($rest)*
        }
    };
}

client_impl! {
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
    ;
    async fn watch(&self, req: WatchRequest) -> Result<BoxStream<'static, Result<Event>>> {
        let stream = self
            .call(|mut c| {
                let req = req.clone();
                async move { c.watch(req).await }
            })
            .await?;
        Ok(stream.map(|r| r.map_err(Error::from_status)).boxed())
    }

    async fn task_logs(&self, req: TaskLogsRequest) -> Result<BoxStream<'static, Result<LogChunk>>> {
        let stream = self
            .call(|mut c| {
                let req = req.clone();
                async move { c.task_logs(req).await }
            })
            .await?;
        Ok(stream.map(|r| r.map_err(Error::from_status)).boxed())
    }
}
