//! The follower against scripted in-process masters (real gRPC on
//! loopback, in-memory scripts): it resumes from the last version it has
//! completely, on the next master, and keeps its records meanwhile. The
//! end-to-end tests (`tests/tests/dns.rs`) do the same against real
//! masters.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use ocean_dns::follow::Follower;
use ocean_dns::query::Authority;
use ocean_dns::zone::{Lookup, Zone};
use ocean_proto::v1;
use ocean_proto::v1::ocean_api_server::{OceanApi, OceanApiServer};
use ocean_proto::v1::{
    event, DeleteJobResponse, Event, Job, JobRef, LeaderRequest, LeaderResponse, ListJobsRequest,
    ListJobsResponse, PutJobRequest, PutJobResponse, Snapshot, Task, TaskPort, WatchRequest,
};
use tonic::{Request, Response, Status};

const JOB: &str = "cop.example_owt.dev_pdl.demo_service.web_job.http_cluster.dev";
const NAME: &str = "http.web.demo.dev.ocean";

/// Every master shares one script: each Watch call takes the next list of
/// events, sends them and ends the stream (or, when the entry says so,
/// keeps it open); with nothing left it stays open.
#[derive(Clone, Default)]
struct Scripted {
    script: Arc<Mutex<Script>>,
    asked_from: Arc<Mutex<Vec<u64>>>,
}

/// One entry per Watch call, taken in turn.
type Script = VecDeque<(Vec<Event>, End)>;

/// What a scripted stream does after its events.
#[derive(Clone, Copy, PartialEq)]
enum End {
    Close,
    Hang,
}

type EventStream = Pin<Box<dyn Stream<Item = Result<Event, Status>> + Send>>;

#[tonic::async_trait]
impl OceanApi for Scripted {
    async fn put_job(&self, _: Request<PutJobRequest>) -> Result<Response<PutJobResponse>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    async fn get_job(&self, _: Request<JobRef>) -> Result<Response<Job>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    async fn delete_job(&self, _: Request<JobRef>) -> Result<Response<DeleteJobResponse>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    async fn list_jobs(
        &self,
        _: Request<ListJobsRequest>,
    ) -> Result<Response<ListJobsResponse>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    async fn leader(&self, _: Request<LeaderRequest>) -> Result<Response<LeaderResponse>, Status> {
        Err(Status::unavailable("no leader known"))
    }

    type WatchStream = EventStream;

    async fn watch(&self, req: Request<WatchRequest>) -> Result<Response<EventStream>, Status> {
        self.asked_from
            .lock()
            .unwrap()
            .push(req.into_inner().from_version);
        let next = self.script.lock().unwrap().pop_front();
        let stream: EventStream = match next {
            Some((events, End::Close)) => {
                Box::pin(futures::stream::iter(events.into_iter().map(Ok)))
            }
            Some((events, End::Hang)) => Box::pin(
                futures::stream::iter(events.into_iter().map(Ok)).chain(futures::stream::pending()),
            ),
            None => Box::pin(futures::stream::pending()),
        };
        Ok(Response::new(stream))
    }

    async fn job_info(&self, _: Request<v1::JobRef>) -> Result<Response<v1::JobDetail>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    async fn scale_job(
        &self,
        _: Request<v1::ScaleJobRequest>,
    ) -> Result<Response<v1::WriteResponse>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    async fn reset_backoff(
        &self,
        _: Request<v1::JobRef>,
    ) -> Result<Response<v1::WriteResponse>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    async fn job_versions(
        &self,
        _: Request<v1::JobRef>,
    ) -> Result<Response<v1::JobVersionsResponse>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    async fn list_tasks(
        &self,
        _: Request<v1::ListTasksRequest>,
    ) -> Result<Response<v1::ListTasksResponse>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    async fn get_task(&self, _: Request<v1::TaskRef>) -> Result<Response<v1::Task>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    async fn list_agents(
        &self,
        _: Request<v1::ListAgentsRequest>,
    ) -> Result<Response<v1::ListAgentsResponse>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    async fn get_agent(&self, _: Request<v1::AgentRef>) -> Result<Response<v1::AgentInfo>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    async fn set_agent_status(
        &self,
        _: Request<v1::SetAgentStatusRequest>,
    ) -> Result<Response<v1::WriteResponse>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    async fn status(
        &self,
        _: Request<v1::StatusRequest>,
    ) -> Result<Response<v1::StatusResponse>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    async fn list_members(
        &self,
        _: Request<v1::ListMembersRequest>,
    ) -> Result<Response<v1::ListMembersResponse>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    async fn add_member(
        &self,
        _: Request<v1::AddMemberRequest>,
    ) -> Result<Response<v1::MemberChangeResponse>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    async fn remove_member(
        &self,
        _: Request<v1::RemoveMemberRequest>,
    ) -> Result<Response<v1::MemberChangeResponse>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    async fn metrics(
        &self,
        _: Request<v1::MetricsRequest>,
    ) -> Result<Response<v1::MetricsResponse>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    async fn kv_put(
        &self,
        _: Request<v1::KvPutRequest>,
    ) -> Result<Response<v1::WriteResponse>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    async fn kv_get(&self, _: Request<v1::KvKeyRequest>) -> Result<Response<v1::KvEntry>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    async fn kv_list(
        &self,
        _: Request<v1::KvListRequest>,
    ) -> Result<Response<v1::KvListResponse>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    async fn kv_delete(
        &self,
        _: Request<v1::KvKeyRequest>,
    ) -> Result<Response<v1::WriteResponse>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    async fn lease_acquire(
        &self,
        _: Request<v1::LeaseRequest>,
    ) -> Result<Response<v1::LeaseInfo>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    async fn lease_release(
        &self,
        _: Request<v1::LeaseRequest>,
    ) -> Result<Response<v1::LeaseInfo>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    async fn list_deployments(
        &self,
        _: Request<v1::ListDeploymentsRequest>,
    ) -> Result<Response<v1::ListDeploymentsResponse>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    async fn get_deployment(
        &self,
        _: Request<v1::DeploymentRef>,
    ) -> Result<Response<v1::GetDeploymentResponse>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    async fn deployment_action(
        &self,
        _: Request<v1::DeploymentActionRequest>,
    ) -> Result<Response<v1::WriteResponse>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    async fn rollback_job(
        &self,
        _: Request<v1::RollbackJobRequest>,
    ) -> Result<Response<v1::WriteResponse>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    async fn plan_job(
        &self,
        _: Request<v1::PlanJobRequest>,
    ) -> Result<Response<v1::PlanJobResponse>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    async fn lease_get(&self, _: Request<v1::LeaseRef>) -> Result<Response<v1::LeaseInfo>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    type TaskLogsStream = Pin<Box<dyn Stream<Item = Result<v1::LogChunk, Status>> + Send>>;
    async fn task_logs(
        &self,
        _: Request<v1::TaskLogsRequest>,
    ) -> Result<Response<Self::TaskLogsStream>, Status> {
        Err(Status::unimplemented("scripted"))
    }
}

async fn serve(api: Scripted) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(OceanApiServer::new(api))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    addr
}

fn job() -> Job {
    let mut spec = ocean_spec::JobSpec::new(JOB, "true");
    spec.ports = vec![ocean_spec::PortSpec {
        name: "http".into(),
        port: 0,
        protocol: ocean_spec::PortProtocol::Tcp,
    }];
    Job {
        id: JOB.into(),
        spec_json: spec.to_canonical_json(),
        ..Default::default()
    }
}

fn task(n: u32) -> Task {
    Task {
        id: format!("{JOB}.{n:015x}"),
        job_id: JOB.into(),
        address: format!("10.0.0.{n}"),
        state: "RUNNING".into(),
        ports: vec![TaskPort {
            name: "http".into(),
            port: 31000 + n,
        }],
        ..Default::default()
    }
}

/// A task's put in `version`; `last` on the last change of that version
/// (the master marks it so).
fn put(version: u64, n: u32, last: bool) -> Event {
    Event {
        version,
        kind: Some(event::Kind::TaskPut(task(n))),
        last_of_version: last,
    }
}

fn snapshot(version: u64) -> Event {
    Event {
        version,
        kind: Some(event::Kind::Snapshot(Snapshot {
            version,
            jobs: vec![job()],
            agents: vec![],
            tasks: vec![task(1)],
            kv: vec![],
        })),
        last_of_version: true,
    }
}

fn served(auth: &Authority, n: u32) -> bool {
    let name = format!("{n:015x}.{NAME}");
    auth.with_zone(|z| matches!(z.lookup(&name), Lookup::Node(_)))
}

#[tokio::test]
async fn resumes_from_the_last_complete_version_on_the_next_master() {
    let api = Scripted::default();
    {
        let mut script = api.script.lock().unwrap();
        // First master: a snapshot at 10, version 11, then half of version
        // 12 (one version can hold many changes) before the stream breaks.
        script.push_back((
            vec![snapshot(10), put(11, 2, true), put(12, 3, false)],
            End::Close,
        ));
        // Second master: everything after 11 again (the whole of 12, then 13).
        script.push_back((
            vec![put(12, 3, false), put(12, 4, true), put(13, 5, true)],
            End::Close,
        ));
    }
    let first = serve(api.clone()).await;
    let second = serve(api.clone()).await;
    let auth = Arc::new(Authority::new(Zone::new("ocean", 5, None), false));
    let follower = Follower::new(&[first, second], "ocean", auth.clone()).unwrap();
    let task = tokio::spawn(follower.watch());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !(1..=5).all(|n| served(&auth, n)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every task served; watches asked from {:?}",
            api.asked_from.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The first watch starts from nothing (a snapshot), the second from
    // 11, the last version known complete (12 was cut in half).
    let asked = api.asked_from.lock().unwrap().clone();
    assert_eq!(&asked[..2], &[0, 11], "{asked:?}");
    // The second stream ended too; the records stay while the follower
    // reconnects, from 13 this time.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!((1..=5).all(|n| served(&auth, n)));
    assert_eq!(api.asked_from.lock().unwrap().get(2), Some(&13));
    task.abort();
}

/// A version is served only once all of its changes arrived: half of
/// version 12 on an open stream changes nothing in the zone.
#[tokio::test]
async fn half_a_version_is_not_served() {
    let api = Scripted::default();
    api.script.lock().unwrap().push_back((
        vec![snapshot(10), put(11, 2, true), put(12, 3, false)],
        End::Hang,
    ));
    let addr = serve(api.clone()).await;
    let auth = Arc::new(Authority::new(Zone::new("ocean", 5, None), false));
    let follower = Follower::new(&[addr], "ocean", auth.clone()).unwrap();
    let task = tokio::spawn(follower.watch());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !served(&auth, 2) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "version 11 not served"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(served(&auth, 1) && served(&auth, 2));
    assert!(!served(&auth, 3), "half of version 12 was served");
    assert_eq!(auth.with_zone(|z| z.serial), 11);
    task.abort();
}

#[test]
fn a_bad_master_address_is_a_config_error() {
    let auth = Arc::new(Authority::new(Zone::new("ocean", 5, None), false));
    let err = Follower::new(&["not an address".into()], "ocean", auth).unwrap_err();
    assert!(err.to_string().starts_with("masters:"), "{err}");
}
