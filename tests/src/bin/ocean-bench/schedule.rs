//! `ocean-bench schedule`: placement at cluster scale, end to end. A real
//! three-master cluster; thousands of simulated agents that speak the real
//! agent protocol (one `AgentApi.Session` stream each: register, heartbeat,
//! and RUNNING reports for every launch, without forking anything); the
//! synthetic workload of `scheduler-policies` submitted as job specs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use futures::StreamExt;
use ocean_proto::agent::agent_api_client::AgentApiClient;
use ocean_proto::agent::{
    agent_message, master_message, AgentMessage, Heartbeat, Register, Resources, TaskReport,
    TaskStatus,
};
use ocean_proto::v1::ocean_api_client::OceanApiClient;
use ocean_proto::v1::PutJobRequest;
use ocean_scheduler_policies::synthetic::{self, WorkloadSpec};
use ocean_scheduler_policies::JobRequest;
use ocean_tests::Cluster;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

use crate::rss_kib;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// How often a simulated agent beats (the masters are told the same).
const HEARTBEAT: Duration = Duration::from_secs(1);

/// Writes retried because leadership moved under them.
static LEADER_CHANGES_SEEN: AtomicUsize = AtomicUsize::new(0);

/// Counters shared by the simulated agents.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) registered: AtomicUsize,
    pub(crate) launched: AtomicUsize,
    /// Agents that received at least one task.
    used: AtomicUsize,
    /// Demand launched, for the packing bound.
    cpus_milli: std::sync::atomic::AtomicU64,
    mem_mib: std::sync::atomic::AtomicU64,
}

fn register(a: &ocean_scheduler_policies::Agent) -> AgentMessage {
    AgentMessage {
        kind: Some(agent_message::Kind::Register(Register {
            agent_id: a.id.clone(),
            hostname: a.id.clone(),
            attributes: a.attributes.clone().into_iter().collect(),
            resources: Some(Resources {
                cpus: a.capacity.cpus(),
                mem_mib: a.capacity.mem_mib,
                disk_mib: a.capacity.disk_mib,
            }),
            port_low: 31000,
            port_high: 31999,
            // The DNS benchmark gives its agents distinct addresses.
            address: a
                .attributes
                .get("address")
                .cloned()
                .unwrap_or_else(|| "127.0.0.1".into()),
            version: "sim".into(),
            tasks: Vec::new(),
            http_addr: String::new(),
            executors: Vec::new(),
        })),
    }
}

/// Connections to every master, `per` agents per HTTP/2 connection.
pub(crate) struct Pool {
    pub(crate) by_addr: HashMap<String, Vec<Channel>>,
    pub(crate) addrs: Vec<String>,
}

impl Pool {
    fn channel(&self, addr: &str, i: usize) -> Option<Channel> {
        let chans = self.by_addr.get(addr)?;
        Some(chans[i % chans.len()].clone())
    }
}

/// One simulated agent: registers with the leader (following `NotLeader`
/// and reconnecting after errors, as real agents do), beats, and reports
/// every launched task RUNNING at once (and every killed one KILLED).
pub(crate) async fn sim_agent(
    pool: Arc<Pool>,
    i: usize,
    agent: ocean_scheduler_policies::Agent,
    c: Arc<Counters>,
) {
    let mut known: HashMap<String, String> = HashMap::new();
    let mut counted = false;
    let mut target = pool.addrs[i % pool.addrs.len()].clone();
    let mut attempt = 0usize;
    loop {
        let Some(channel) = pool.channel(&target, i) else {
            return;
        };
        match session(channel, &agent, &mut known, &c, &mut counted).await {
            Some(next) if !next.is_empty() => target = next,
            _ => {
                attempt += 1;
                target = pool.addrs[(i + attempt) % pool.addrs.len()].clone();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One stream; returns the leader to go to, if told.
async fn session(
    channel: Channel,
    agent: &ocean_scheduler_policies::Agent,
    known: &mut HashMap<String, String>,
    c: &Counters,
    counted: &mut bool,
) -> Option<String> {
    let mut client = AgentApiClient::new(channel)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);
    let (tx, rx) = mpsc::channel::<AgentMessage>(64);
    let mut reg = register(agent);
    if let Some(agent_message::Kind::Register(r)) = &mut reg.kind {
        r.tasks = known.iter().map(|(id, s)| status(id, s)).collect();
    }
    tx.send(reg).await.ok()?;
    let mut inbound = client
        .session(ReceiverStream::new(rx))
        .await
        .ok()?
        .into_inner();
    let mut beat = tokio::time::interval(HEARTBEAT);
    let mut seq = 0;
    loop {
        tokio::select! {
            m = inbound.message() => {
                let m = m.ok()??;
                let mut report = Vec::new();
                let mut full = false;
                match m.kind {
                    Some(master_message::Kind::Registered(_)) if !*counted => {
                        *counted = true;
                        c.registered.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(master_message::Kind::Registered(_)) => {}
                    Some(master_message::Kind::Launch(l)) => {
                        c.launched.fetch_add(l.tasks.len(), Ordering::Relaxed);
                        for t in l.tasks {
                            // As a real agent: a launch of a task it has is
                            // answered with where that task is.
                            if let Some(state) = known.get(&t.task_id) {
                                report.push(status(&t.task_id, state));
                                continue;
                            }
                            if known.is_empty() {
                                c.used.fetch_add(1, Ordering::Relaxed);
                            }
                            c.cpus_milli.fetch_add((t.cpus * 1000.0).round() as u64, Ordering::Relaxed);
                            c.mem_mib.fetch_add(t.mem_mib, Ordering::Relaxed);
                            known.insert(t.task_id.clone(), "RUNNING".into());
                            report.push(status(&t.task_id, "RUNNING"));
                        }
                    }
                    Some(master_message::Kind::Kill(k)) => {
                        for t in k.tasks {
                            known.insert(t.task_id.clone(), "KILLED".into());
                            report.push(status(&t.task_id, "KILLED"));
                        }
                    }
                    Some(master_message::Kind::Reconcile(_)) => {
                        full = true;
                        report = known.iter().map(|(id, s)| status(id, s)).collect();
                    }
                    Some(master_message::Kind::NotLeader(n)) => return Some(n.leader_grpc_addr),
                    None => {}
                }
                if !report.is_empty() || full {
                    let msg = AgentMessage {
                        kind: Some(agent_message::Kind::Report(TaskReport { tasks: report, full })),
                    };
                    tx.send(msg).await.ok()?;
                }
            }
            _ = beat.tick() => {
                seq += 1;
                let hb = AgentMessage { kind: Some(agent_message::Kind::Heartbeat(Heartbeat { seq })) };
                tx.send(hb).await.ok()?;
            }
        }
    }
}

fn status(id: &str, state: &str) -> TaskStatus {
    TaskStatus {
        task_id: id.to_string(),
        state: state.to_string(),
        timestamp_ms: now_ms(),
        pid: 1,
        ..Default::default()
    }
}

/// The synthetic job request as a job spec.
pub(crate) fn spec_of(j: &JobRequest) -> Value {
    let constraints: Vec<Value> = j
        .constraints
        .iter()
        .map(|c| {
            let op = c.operator.as_str();
            match &c.value {
                Some(v) => json!([c.attribute, op, v]),
                None => json!([c.attribute, op]),
            }
        })
        .collect();
    let ports: Vec<Value> = j
        .ports
        .iter()
        .map(|p| json!({"name": p.name, "port": p.fixed.unwrap_or(0)}))
        .collect();
    let mut spec = json!({
        "id": j.service_path,
        "cmd": "sleep 3600",
        "instances": j.tasks.len(),
        "resources": {
            "cpus": j.resources.cpus(),
            "mem": j.resources.mem_mib,
            "disk": j.resources.disk_mib,
        },
        "ports": ports,
        "constraints": constraints,
        "priority": j.priority,
    });
    if let Some(p) = &j.policy {
        spec["placement_policy"] = json!(p);
    }
    spec
}

pub(crate) fn channel(addr: &str) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .http2_adaptive_window(true)
        .connect_lazy())
}

/// A master's placement and RUNNING counters (from `/metrics`: cheap to
/// read, unlike following 100,000 events).
async fn counts(api: &ocean_tests::Api) -> (u64, u64) {
    let value = |v: anyhow::Result<f64>| v.unwrap_or(0.0) as u64;
    (
        value(api.metric("ocean_tasks_placed_total").await),
        value(api.metric("ocean_tasks_running").await),
    )
}

/// The highest counters of any master: every master applies every
/// placement, but one that lost the leadership, or is cut off, may lag, and
/// watching it alone would end the run early.
pub(crate) async fn cluster_counts(apis: &[ocean_tests::Api]) -> (u64, u64) {
    let all = futures::future::join_all(apis.iter().map(counts)).await;
    all.into_iter()
        .fold((0, 0), |(p, r), (p1, r1)| (p.max(p1), r.max(r1)))
}

/// Why a run stopped short: each master's counters, term and leader, and
/// the jobs the leader says wait.
async fn diagnose(apis: &[ocean_tests::Api]) {
    for (i, api) in apis.iter().enumerate() {
        let (p, r) = counts(api).await;
        let term = api.metric("ocean_raft_term").await.unwrap_or(-1.0);
        let leader = api.get_text("/v1/leader").await.unwrap_or_default();
        println!(
            "  master {}: placed {p}, running {r}, term {term}, leader {}",
            i + 1,
            leader.trim()
        );
    }
    // The jobs as the first master that answers lists them.
    let mut listed = None;
    for api in apis {
        if let Ok(r) = api.get("/v1/jobs").await {
            listed = Some(r);
            break;
        }
    }
    let Some(jobs) = listed else {
        println!("  no master listed the jobs");
        return;
    };
    let waiting: Vec<String> = jobs.body["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|j| !j["waiting"].is_null())
        .map(|j| format!("{}: {}", j["id"], j["waiting"]))
        .collect();
    println!("  {} job(s) waiting", waiting.len());
    for w in waiting.iter().take(5) {
        println!("    {w}");
    }
}

/// Runs the benchmark.
pub async fn schedule(
    agents: usize,
    tasks: usize,
    submitters: usize,
    master_args: &[String],
    tls: bool,
    own_connections: bool,
) -> anyhow::Result<()> {
    let per_job = 100.min(tasks.max(1));
    let spec = WorkloadSpec {
        agents,
        jobs: tasks.div_ceil(per_job),
        tasks_per_job: per_job,
        ..WorkloadSpec::default()
    };
    let workload = synthetic::workload(&spec);
    let total: usize = workload.pending.iter().map(|j| j.tasks.len()).sum();

    // The simulated agents beat every second (below), so the masters are
    // told that interval. Since agents that fall silent are declared
    // unreachable (default timeout 2.5 s), the timeout is set well above
    // what a CPU-starved load generator can keep: on the shared 2-core VM,
    // the defaults had thousands of simulated agents declared unreachable
    // and re-registering during a run, which is what `false-lost`
    // measures, not placement.
    let heartbeat = HEARTBEAT.as_millis().to_string();
    let mut args = vec![
        "--agent-heartbeat-ms",
        &heartbeat,
        "--agent-timeout-ms",
        "30000",
    ];
    args.extend(master_args.iter().map(String::as_str));
    let pki_dir = tempfile::tempdir()?;
    let pki = if tls {
        Some(ocean_tests::tls::Pki::new(pki_dir.path(), "bench-ca")?)
    } else {
        None
    };
    let c = match &pki {
        Some(pki) => ocean_tests::tls::TlsCluster::start(3, pki, &args)?.cluster,
        None => Cluster::start(3, &args)?,
    };
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(20)).await?;
    let grpc = c.master(leader).grpc.to_string();
    eprintln!(
        "leader {leader}: http {} grpc {grpc}",
        c.master(leader).http
    );
    let rss0 = rss_kib(c.master(leader).pid().unwrap_or(0));

    // A server takes a bounded number of concurrent streams per
    // connection (hyper's default is 200), so 100 agents per connection,
    // to every master (agents follow the leader when it changes).
    let counters = Arc::new(Counters::default());
    let per_master = if own_connections {
        agents
    } else {
        agents.div_ceil(100).max(1)
    };
    let mut by_addr = HashMap::new();
    // With TLS each simulated agent presents its own certificate, so it
    // has a connection of its own (as real agents do).
    let agent_tls = match &pki {
        Some(pki) => {
            let t = Instant::now();
            let certs = workload
                .agents
                .iter()
                .map(|a| pki.client_tls(ocean_tls::Role::Agent, &a.id))
                .collect::<anyhow::Result<Vec<_>>>()?;
            eprintln!(
                "{agents} agent certificates issued in {:.2} s",
                t.elapsed().as_secs_f64()
            );
            Some(certs)
        }
        None => None,
    };
    for id in [1, 2, 3] {
        let addr = c.master(id).grpc.to_string();
        let chans = match &agent_tls {
            Some(certs) => certs
                .iter()
                .map(|t| ocean_tests::tls::channel(&addr, Some(t)))
                .collect::<anyhow::Result<Vec<_>>>()?,
            None => (0..per_master)
                .map(|_| channel(&addr))
                .collect::<anyhow::Result<Vec<_>>>()?,
        };
        by_addr.insert(addr, chans);
    }
    let pool = Arc::new(Pool {
        by_addr,
        addrs: vec![grpc.clone()],
    });
    let t0 = Instant::now();
    for (i, a) in workload.agents.iter().enumerate() {
        tokio::spawn(sim_agent(pool.clone(), i, a.clone(), counters.clone()));
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while counters.registered.load(Ordering::Relaxed) < agents {
        anyhow::ensure!(Instant::now() < deadline, "agents did not register");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let registered_in = t0.elapsed();
    let rss_agents = rss_kib(c.master(leader).pid().unwrap_or(0));

    let mut api = c.master(leader).api();
    // With `--master-arg=--acl` every submission carries the bootstrap
    // (admin) token and is checked like any client's.
    let mut auth: Option<tonic::metadata::AsciiMetadataValue> = None;
    if master_args.iter().any(|a| a == "--acl") {
        let boot = api
            .post("/v1/acl/bootstrap", &serde_json::json!({}))
            .await?;
        let secret = boot.body["secret"]
            .as_str()
            .context("bootstrap")?
            .to_string();
        api = api.with_token(&secret);
        auth = Some(format!("Bearer {secret}").parse()?);
        eprintln!("ACLs on: submissions carry a token");
    }
    // Leader changes are counted by term: leadership may move away and
    // back within a run.
    let term0 = api.metric("ocean_raft_term").await.unwrap_or(0.0) as u64;

    // Submit every job, `submitters` at a time, over gRPC.
    let specs: Vec<Vec<u8>> = workload
        .pending
        .iter()
        .map(|j| serde_json::to_vec(&spec_of(j)))
        .collect::<Result<_, _>>()?;
    let t_submit = Instant::now();
    let submit_tls = match &pki {
        Some(pki) => Some(pki.client_tls(ocean_tls::Role::Client, "bench")?),
        None => None,
    };
    let client = OceanApiClient::new(ocean_tests::tls::channel(&grpc, submit_tls.as_ref())?);
    futures::stream::iter(specs)
        .map(|s| {
            let mut client = client.clone();
            let auth = auth.clone();
            async move {
                // As any client: a write caught by a leader change is
                // retried (puts are idempotent).
                let mut tries = 0;
                loop {
                    let mut req = tonic::Request::new(PutJobRequest {
                        spec: s.clone(),
                        format: "json".into(),
                        expected_spec_version: None,
                    });
                    if let Some(a) = &auth {
                        req.metadata_mut().insert("authorization", a.clone());
                    }
                    let r = client.put_job(req).await;
                    match r {
                        Err(e)
                            if tries < 20
                                && matches!(
                                    e.code(),
                                    tonic::Code::Aborted | tonic::Code::Unavailable
                                ) =>
                        {
                            tries += 1;
                            LEADER_CHANGES_SEEN.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        r => return r.context("put job"),
                    }
                }
            }
        })
        .buffer_unordered(submitters.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;
    let submitted_in = t_submit.elapsed();

    let apis: Vec<ocean_tests::Api> = [1, 2, 3].iter().map(|&id| c.master(id).api()).collect();
    // Placements committed and tasks RUNNING, until they stop growing.
    let total = total as u64;
    let mut last = (0, 0, Instant::now());
    let (mut t_placed, mut t_running) = (Duration::ZERO, Duration::ZERO);
    let (mut p, mut r);
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        (p, r) = cluster_counts(&apis).await;
        if p != last.0 {
            t_placed = t_submit.elapsed();
        }
        if r != last.1 {
            t_running = t_submit.elapsed();
        }
        if (p, r) != (last.0, last.1) {
            last = (p, r, Instant::now());
        }
        if (r >= total && p >= total) || last.2.elapsed() > Duration::from_secs(10) {
            break;
        }
    }
    if p < total || r < total {
        println!("(stopped short: no progress for 10 s)");
        diagnose(&apis).await;
    }
    // A leader change at the very end must not lose the figures above:
    // without an agreed leader, memory is read from the first one.
    let leader = match c.wait_leader(&[1, 2, 3], Duration::from_secs(20)).await {
        Ok(now) if now != leader => {
            println!("(leadership moved from master {leader} to {now} during the run)");
            now
        }
        Ok(now) => now,
        Err(e) => {
            let why = e.to_string();
            let why = why.lines().next().unwrap_or_default();
            println!("(no agreed leader at the end: {why}; memory read from master {leader})");
            leader
        }
    };
    let rss_tasks = rss_kib(c.master(leader).pid().unwrap_or(0));
    let term1 = c
        .master(leader)
        .api()
        .metric("ocean_raft_term")
        .await
        .unwrap_or(0.0) as u64;
    if term1 > term0 {
        println!(
            "(raft term went from {term0} to {term1} after the agents registered: at least one election)"
        );
    }

    // Packing: agents that got tasks against the lower bound
    // max(ceil(total cpus / capacity), ceil(total mem / capacity)).
    let cap = synthetic::agent_capacity();
    let used = counters.used.load(Ordering::Relaxed);
    let bound = counters
        .cpus_milli
        .load(Ordering::Relaxed)
        .div_ceil(cap.cpus_milli)
        .max(
            counters
                .mem_mib
                .load(Ordering::Relaxed)
                .div_ceil(cap.mem_mib),
        );

    println!(
        "{agents} simulated agents registered in {:.2} s",
        registered_in.as_secs_f64()
    );
    println!(
        "{} jobs ({total} tasks) submitted in {:.2} s",
        workload.pending.len(),
        submitted_in.as_secs_f64()
    );
    println!(
        "placements committed: {p} of {total} in {:.2} s from the first submit = {:.0} placements/s",
        t_placed.as_secs_f64(),
        p as f64 / t_placed.as_secs_f64().max(1e-9)
    );
    println!(
        "RUNNING: {r} of {total} after {:.2} s",
        t_running.as_secs_f64()
    );
    println!(
        "leader RSS: {:.0} MiB empty, {:.0} MiB with {agents} agents, {:.0} MiB with {} tasks",
        rss0 as f64 / 1024.0,
        rss_agents as f64 / 1024.0,
        rss_tasks as f64 / 1024.0,
        r
    );
    println!(
        "packing: {used} agents used, lower bound {bound}, ratio {:.3}",
        used as f64 / bound.max(1) as f64
    );
    let retried = LEADER_CHANGES_SEEN.load(Ordering::Relaxed);
    if retried > 0 {
        println!("({retried} job submissions retried after a leader change)");
    }
    if let Some(to) = std::env::var_os("OCEAN_BENCH_KEEP_LOG") {
        for id in [1, 2, 3] {
            let dest = format!("{}.{id}", to.to_string_lossy());
            std::fs::copy(c.master(id).process.log_path(), dest)?;
        }
    }
    for id in [1, 2, 3] {
        if id != leader {
            println!(
                "follower {id} RSS: {:.0} MiB",
                rss_kib(c.master(id).pid().unwrap_or(0)) as f64 / 1024.0
            );
        }
    }
    Ok(())
}
