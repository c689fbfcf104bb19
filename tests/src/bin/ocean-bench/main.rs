//! Benchmark drivers for the masters (see docs/benchmarks.md for results):
//!
//! - `failover`: time from SIGKILL of the leader to the first acknowledged
//!   write through a surviving master, over many kills.
//! - `writes`: job puts per second and latency through a 3-master cluster,
//!   side by side with a 3-member etcd cluster driven the same way.
//! - `memory`: master RSS with N jobs stored, and the time for restarted
//!   masters to be serving again.
//! - `launch`: submit-to-RUNNING latency of one-instance jobs in `ocean dev`.
//! - `schedule`: placements committed per second, time to RUNNING, master
//!   RSS and packing with thousands of simulated agents.
//! - `fleet`: a many-instance job over several agents: time until all run,
//!   and the agents' CPU and memory while holding them.
//! - `health`: time from a task's health check starting to fail to its
//!   healthy replacement serving.
//! - `lost-agent`: SIGKILL of an agent and its tasks to all replacements
//!   RUNNING elsewhere; `false-lost`: agents declared unreachable under a
//!   CPU hog.
//! - `dns`: DNS freshness (RUNNING to A record served) and throughput
//!   (dnsperf, Ocean's DNS and Knot DNS side by side).
//! - `watch`: filtered-watch fan-out: many watchers of one service-tree
//!   node while 100,000 tasks change elsewhere; CPU per delivered event
//!   and events delivered outside the filter.
//! - `dashboard`: the web dashboard with 10,000 simulated agents and 1k to
//!   100k tasks: HTML size and time, first contentful paint in headless
//!   Chromium (and at a 4x CPU throttle), commit to screen with 200 streams
//!   open and changes flowing, the open tab's JS heap over time.
//! - `redis`: Redis caches: provisioning, primary crash and host loss to
//!   writes succeeding again, acknowledged writes lost (none expected).
//! - `reshard`: a cache scaled out 3 -> 4 shards: MiB/s Ocean's operator
//!   moves, beside `redis-cli --cluster rebalance` on the same data.
//! - `usage`: the cost of usage collection: a real agent's CPU with N tasks
//!   sampled every 5 s, and the leader's CPU and memory with N simulated
//!   agents pushing M tasks' samples every 5 s.
//! - `mysql`: MySQL databases: provisioning 3 instances to the first
//!   write through DNS, primary faults (a seeded mix of SIGKILL, SIGSTOP
//!   and its host's agent killed) to writable through DNS, acknowledged
//!   commits lost (none expected).
//! - `docker-launch`: submit-to-RUNNING of one-instance container jobs,
//!   side by side with `docker run -d` of the same image.
//!
//! - `chaos`: seeded schedules of faults (leader kill, SIGSTOP, network
//!   partitions, agent and task kills, full restarts) against masters and
//!   agents in network namespaces: anomalies found (none expected), time
//!   to settle.
//!
//! Everything runs on loopback (or, for `chaos`, in namespaces it makes)
//! and stops by itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use ocean_proto::v1::ocean_api_client::OceanApiClient;
use ocean_proto::v1::PutJobRequest;
use ocean_tests::cluster::free_addr;
use ocean_tests::etcd::kv_client::KvClient;
use ocean_tests::etcd::PutRequest;
use ocean_tests::http::{job_id, job_spec};
use ocean_tests::Cluster;
use tonic::transport::{Channel, Endpoint};

mod chaos;
mod dashboard;
mod deploy;
mod dns;
mod docker;
mod health;
mod lost;
mod mysql;
mod redis;
mod reshard;
mod schedule;
mod tasks;
mod usage;
mod watch;

#[derive(Debug, Parser)]
#[command(about = "Ocean master benchmarks")]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// The cost of usage collection on an agent and on the leader.
    Usage {
        /// `agent`, `leader` or `both`.
        #[arg(long, default_value = "both", value_parser = ["agent", "leader", "both"])]
        part: String,
        /// Real tasks on the agent.
        #[arg(long, default_value_t = 300)]
        agent_tasks: usize,
        /// Simulated agents pushing to the leader.
        #[arg(long, default_value_t = 10_000)]
        agents: usize,
        /// Tasks per simulated agent.
        #[arg(long, default_value_t = 10)]
        tasks: usize,
        /// Seconds each CPU figure is measured over.
        #[arg(long, default_value_t = 60)]
        secs: u64,
    },
    /// A rolling deployment of one job over simulated agents, and a
    /// rollback, timed.
    Deploy {
        #[arg(long, default_value_t = 100)]
        agents: usize,
        #[arg(long, default_value_t = 1_000)]
        tasks: usize,
        /// The job's upgrade_strategy.max_surge.
        #[arg(long, default_value = "10%")]
        max_surge: String,
    },
    /// Seeded fault schedules with partitions; anomalies and settle times.
    Chaos {
        /// How many schedules.
        #[arg(long, default_value_t = 100)]
        schedules: usize,
        /// The seed (default: `OCEAN_CHAOS_SEED`, else the clock).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// SIGKILL the leader repeatedly and time the first acknowledged write.
    Failover {
        #[arg(long, default_value_t = 20)]
        kills: usize,
    },
    /// Throughput and latency of writes, Ocean and etcd side by side.
    Writes {
        /// Concurrent clients, comma-separated.
        #[arg(long, default_value = "1,16,256")]
        clients: String,
        /// Seconds per run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Skip etcd.
        #[arg(long)]
        no_etcd: bool,
        /// Masters with certificates: raft over mTLS on its own listener,
        /// the writes over TLS with a client certificate.
        #[arg(long)]
        tls: bool,
    },
    /// RSS with N jobs and restart-to-serving time.
    Memory {
        #[arg(long, default_value_t = 100_000)]
        jobs: usize,
    },
    /// Submit-to-RUNNING latency of one-instance native jobs in `ocean dev`.
    Launch {
        #[arg(long, default_value_t = 200)]
        runs: usize,
        /// Stop each job right after it is measured (its kill then runs
        /// while the next job launches).
        #[arg(long)]
        stop_each: bool,
    },
    /// Placement at scale: simulated agents on the real protocol, a real
    /// three-master cluster, the synthetic workload as job specs.
    Schedule {
        #[arg(long, default_value_t = 10_000)]
        agents: usize,
        #[arg(long, default_value_t = 100_000)]
        tasks: usize,
        /// Job submissions in flight at once (clients submitting
        /// concurrently, as many teams and pipelines do).
        #[arg(long, default_value_t = 128)]
        submitters: usize,
        /// An extra flag for every `ocean master` (repeatable), e.g.
        /// `--master-arg=--election-ticks=20`.
        #[arg(long = "master-arg", allow_hyphen_values = true)]
        master_args: Vec<String>,
        /// Masters with certificates (raft over mTLS on its own listener);
        /// every simulated agent has its own certificate and connection,
        /// submissions go over TLS.
        #[arg(long)]
        tls: bool,
        /// Every simulated agent on a connection of its own (as with
        /// --tls), to tell the connections' cost from TLS's.
        #[arg(long)]
        own_connections: bool,
    },
    /// Redis caches: provisioning 3x2, primary SIGKILL -> writes OK (0
    /// acknowledged writes lost), host loss -> writes OK.
    Redis {
        #[arg(long, default_value_t = 20)]
        kills: usize,
        #[arg(long, default_value_t = 3)]
        host_losses: usize,
    },
    /// Redis scale-out 3 -> 4 shards: MiB/s moved by Ocean's operator and
    /// by `redis-cli --cluster rebalance` on the same data, side by side.
    Reshard {
        /// MiB of data in the cache before the scale-out.
        #[arg(long, default_value_t = 256)]
        mb: usize,
        /// Replicas per shard of the Ocean cache (the peer has none).
        #[arg(long, default_value_t = 0)]
        replicas: u32,
        #[arg(long, default_value_t = 1)]
        rounds: usize,
    },
    /// MySQL databases: provisioning 3 instances -> first write via DNS,
    /// primary faults -> writable via DNS (0 acknowledged commits lost).
    Mysql {
        #[arg(long, default_value_t = 20)]
        provisions: usize,
        /// Faults on the primary, one after another (the database healed
        /// between them).
        #[arg(long, default_value_t = 20)]
        kills: usize,
        /// Which faults, chosen at random among these for each trial:
        /// `sigkill` (the primary's mariadbd), `sigstop` (hung, woken once
        /// the database wrote through its new primary), `agent` (the
        /// primary's host's agent SIGKILLed, started again after).
        #[arg(long, value_delimiter = ',', default_value = "sigkill")]
        faults: Vec<String>,
        /// Seed of the faults' choice and of the wait before each.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Health check failing to healthy replacement serving (1 s interval,
    /// 3 failures), in `ocean dev`.
    Health {
        #[arg(long, default_value_t = 20)]
        trials: usize,
    },
    /// DNS freshness and throughput (dnsperf; Knot DNS side by side).
    Dns {
        /// Tasks whose records the DNS server holds.
        #[arg(long, default_value_t = 10_000)]
        tasks: usize,
        /// Tasks per job.
        #[arg(long, default_value_t = 10)]
        per_job: usize,
        /// Tasks timed from RUNNING to their A record.
        #[arg(long, default_value_t = 250)]
        events: usize,
        /// Seconds of each dnsperf run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// dnsperf runs per server, alternating.
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        /// Skip Knot DNS.
        #[arg(long)]
        no_knot: bool,
    },
    /// Submit-to-RUNNING of one-instance container jobs in `ocean dev`,
    /// interleaved with `docker run -d` of the same image and limits.
    DockerLaunch {
        #[arg(long, default_value_t = 100)]
        runs: usize,
    },
    /// One job of many tiny instances over several agents.
    Fleet {
        #[arg(long, default_value_t = 1000)]
        instances: usize,
        #[arg(long, default_value_t = 3)]
        agents: usize,
    },
    /// SIGKILL of an agent and its tasks to all replacements RUNNING on
    /// the other agents (default heartbeat settings).
    LostAgent {
        #[arg(long, default_value_t = 12)]
        trials: usize,
        #[arg(long, default_value_t = 6)]
        instances: usize,
    },
    /// Filtered-watch fan-out: watchers of one node on a follower while the
    /// schedule workload changes tasks elsewhere (run without, then with
    /// the watchers).
    Watch {
        #[arg(long, default_value_t = 1000)]
        watchers: usize,
        #[arg(long, default_value_t = 10_000)]
        agents: usize,
        #[arg(long, default_value_t = 100_000)]
        tasks: usize,
    },
    /// The web dashboard at scale: page size and time, first contentful
    /// paint (normal and 4x CPU throttle), commit to screen, tab memory.
    Dashboard {
        #[arg(long, default_value_t = 10_000)]
        agents: usize,
        /// Task counts to measure at, comma-separated (the workload grows).
        #[arg(long, default_value = "1000,10000,100000")]
        tasks: String,
        /// Fetches of each page per stage.
        #[arg(long, default_value_t = 50)]
        fetches: usize,
        /// Browser loads of each page per stage and CPU rate.
        #[arg(long, default_value_t = 5)]
        loads: usize,
        /// SSE streams open during commit to screen (the tab counts as one).
        #[arg(long, default_value_t = 200)]
        dashboards: usize,
        /// Scale writes per second elsewhere in the cluster (each is
        /// several job and task changes; the change rate is reported).
        #[arg(long, default_value_t = 300)]
        churn_ops: u64,
        /// Tasks of the watched job timed from RUNNING to the screen.
        #[arg(long, default_value_t = 40)]
        samples: usize,
        /// Seconds the tab stays open for the memory figure (0: skip).
        #[arg(long, default_value_t = 180)]
        memory_secs: u64,
    },
    /// Agents declared unreachable while busy loops saturate every core.
    FalseLost {
        #[arg(long, default_value_t = 10)]
        minutes: u64,
        #[arg(long, default_value_t = 2)]
        agents: usize,
    },
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.cmd {
        Cmd::Failover { kills } => failover(kills).await,
        Cmd::Chaos { schedules, seed } => chaos::chaos(schedules, seed).await,
        Cmd::Writes {
            clients,
            seconds,
            no_etcd,
            tls,
        } => {
            let clients: Vec<usize> = clients
                .split(',')
                .map(|c| c.trim().parse().context("--clients: not a number"))
                .collect::<anyhow::Result<_>>()?;
            writes(&clients, Duration::from_secs(seconds), !no_etcd, tls).await
        }
        Cmd::Memory { jobs } => memory(jobs).await,
        Cmd::Launch { runs, stop_each } => tasks::launch(runs, stop_each).await,
        Cmd::DockerLaunch { runs } => docker::docker_launch(runs).await,
        Cmd::Deploy {
            agents,
            tasks,
            max_surge,
        } => deploy::deploy(agents, tasks, &max_surge).await,
        Cmd::Schedule {
            agents,
            tasks,
            submitters,
            master_args,
            tls,
            own_connections,
        } => {
            let per_agent = tls || own_connections;
            schedule::schedule(agents, tasks, submitters, &master_args, tls, per_agent).await
        }
        Cmd::Usage {
            part,
            agent_tasks,
            agents,
            tasks,
            secs,
        } => {
            if part != "leader" {
                usage::agent(agent_tasks, secs).await?;
            }
            if part != "agent" {
                usage::leader(agents, tasks, secs).await?;
            }
            Ok(())
        }
        Cmd::Fleet { instances, agents } => tasks::fleet(instances, agents).await,
        Cmd::Watch {
            watchers,
            agents,
            tasks,
        } => watch::watch(watchers, agents, tasks).await,
        Cmd::Dashboard {
            agents,
            tasks,
            fetches,
            loads,
            dashboards,
            churn_ops,
            samples,
            memory_secs,
        } => {
            let stages = tasks
                .split(',')
                .map(|t| t.trim().parse().context("--tasks: not a number"))
                .collect::<anyhow::Result<Vec<usize>>>()?;
            dashboard::dashboard(dashboard::Opts {
                agents,
                stages,
                fetches,
                loads,
                dashboards,
                churn_ops,
                samples,
                memory_secs,
            })
            .await
        }
        Cmd::Health { trials } => health::health(trials).await,
        Cmd::Redis { kills, host_losses } => redis::redis(kills, host_losses).await,
        Cmd::Reshard {
            mb,
            replicas,
            rounds,
        } => reshard::reshard(mb, replicas, rounds).await,
        Cmd::Mysql {
            provisions,
            kills,
            faults,
            seed,
        } => mysql::mysql(provisions, kills, &faults, seed).await,
        Cmd::LostAgent { trials, instances } => lost::lost_agent(trials, instances).await,
        Cmd::FalseLost { minutes, agents } => lost::false_lost(minutes, agents).await,
        Cmd::Dns {
            tasks,
            per_job,
            events,
            seconds,
            rounds,
            no_knot,
        } => dns::dns(tasks, per_job, events, seconds, rounds, !no_knot).await,
    }
}

async fn failover(kills: usize) -> anyhow::Result<()> {
    let mut c = Cluster::start(3, &[])?;
    let all = [1, 2, 3];
    let mut times = Vec::new();
    for k in 0..kills {
        let leader = c.wait_leader(&all, Duration::from_secs(20)).await?;
        // Everyone caught up and healthy before the kill.
        let r = c.master(leader).api().put_job(&format!("warm{k}")).await?;
        anyhow::ensure!(r.status < 300, "warm-up write failed: {:?}", r.body);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let survivor = all.iter().copied().find(|i| *i != leader).unwrap_or(1);
        let api = c.master(survivor).api();
        c.master_mut(leader).kill();
        let t0 = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match api.put_job(&format!("f{k}-{attempt}")).await {
                Ok(r) if r.status < 300 => break,
                _ if t0.elapsed() > Duration::from_secs(30) => {
                    bail!("no write acknowledged 30 s after the kill")
                }
                _ => {}
            }
        }
        let dt = t0.elapsed();
        println!("kill {k}: leader {leader} -> first ack through {survivor} after {} ({attempt} attempts)", ms(dt));
        times.push(dt);
        c.master_mut(leader).start()?;
    }
    times.sort();
    println!(
        "failover over {} kills: p50 {}, p90 {}, max {}",
        times.len(),
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.9)),
        ms(*times.last().unwrap_or(&Duration::ZERO))
    );
    Ok(())
}

fn connect(addr: &str) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .connect_lazy())
}

/// One load run: `clients` tasks sending as fast as they are answered.
async fn run_load<F, Fut>(clients: usize, dur: Duration, op: F) -> (u64, Vec<Duration>, u64)
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let deadline = Instant::now() + dur;
    let mut tasks = Vec::new();
    for client in 0..clients {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut n = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                if op(client, n).await {
                    lat.push(t.elapsed());
                } else {
                    errors += 1;
                }
                n += 1;
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((l, e)) = t.await {
            all.extend(l);
            errors += e;
        }
    }
    all.sort();
    (all.len() as u64, all, errors)
}

async fn writes(
    clients: &[usize],
    dur: Duration,
    with_etcd: bool,
    tls: bool,
) -> anyhow::Result<()> {
    let extra: Vec<String> = std::env::var("OCEAN_BENCH_MASTER_FLAGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let pki_dir = tempfile::tempdir()?;
    let (c, client_tls) = if tls {
        let pki = ocean_tests::tls::Pki::new(pki_dir.path(), "bench-ca")?;
        let client = pki.client_tls(ocean_tls::Role::Client, "bench")?;
        println!("TLS on: raft over mTLS on its own listeners, writes over TLS");
        (
            ocean_tests::tls::TlsCluster::start(3, &pki, &extra)?.cluster,
            Some(client),
        )
    } else {
        (Cluster::start(3, &extra)?, None)
    };
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(20)).await?;
    let grpc = c.master(leader).grpc.to_string();
    // With `--acl` in OCEAN_BENCH_MASTER_FLAGS every write carries the
    // bootstrap (admin) token and is checked like any client's.
    let mut api = c.master(leader).api();
    let mut auth: Option<tonic::metadata::AsciiMetadataValue> = None;
    if extra.contains(&"--acl") {
        let boot = api
            .post("/v1/acl/bootstrap", &serde_json::json!({}))
            .await?;
        let secret = boot.body["secret"]
            .as_str()
            .context("bootstrap")?
            .to_string();
        api = api.with_token(&secret);
        auth = Some(format!("Bearer {secret}").parse()?);
        println!("ACLs on: writes carry a token");
    }
    // The value etcd stores is the same canonical spec Ocean stores.
    api.put_job("probe").await?;
    let stored = api.get(&format!("/v1/jobs/{}", job_id("probe"))).await?;
    let value = serde_json::to_vec(&stored.body["spec"])?;
    println!("value size: {} bytes (canonical job spec)", value.len());
    let channels: Vec<Channel> = (0..8)
        .map(|_| ocean_tests::tls::channel(&grpc, client_tls.as_ref()))
        .collect::<anyhow::Result<_>>()?;

    let etcd = if with_etcd {
        Some(EtcdCluster::start()?)
    } else {
        None
    };
    let etcd_leader = match &etcd {
        Some(e) => Some(e.leader_endpoint().await?),
        None => None,
    };
    let etcd_channels: Vec<Channel> = match &etcd_leader {
        Some(ep) => (0..8).map(|_| connect(ep)).collect::<anyhow::Result<_>>()?,
        None => Vec::new(),
    };

    println!("| clients | system | writes/s | p50 | p99 | errors |");
    println!("|---|---|---|---|---|---|");
    for &n in clients {
        let chans = channels.clone();
        let auth = auth.clone();
        let (count, lat, errors) = run_load(n, dur, move |client, seq| {
            let mut api = OceanApiClient::new(chans[client % chans.len()].clone());
            let auth = auth.clone();
            async move {
                let spec = job_spec(&format!("w{client}-{seq}-{n}"));
                let req = PutJobRequest {
                    spec: serde_json::to_vec(&spec).unwrap_or_default(),
                    format: "json".into(),
                    expected_spec_version: None,
                };
                let mut req = tonic::Request::new(req);
                if let Some(a) = auth {
                    req.metadata_mut().insert("authorization", a);
                }
                api.put_job(req).await.is_ok()
            }
        })
        .await;
        println!(
            "| {n} | ocean | {:.0} | {} | {} | {errors} |",
            count as f64 / dur.as_secs_f64(),
            ms(percentile(&lat, 0.5)),
            ms(percentile(&lat, 0.99))
        );
        if std::env::var_os("OCEAN_BENCH_DEBUG").is_some() {
            let api = c.master(leader).api();
            let fs = api
                .metric("ocean_raft_fsync_seconds_sum")
                .await
                .unwrap_or(0.0);
            let fc = api
                .metric("ocean_raft_fsync_seconds_count")
                .await
                .unwrap_or(1.0);
            let es = api
                .metric("ocean_raft_entries_per_write_sum")
                .await
                .unwrap_or(0.0);
            eprintln!(
                "  leader: {fc} synced writes, mean fsync {:.2} ms, mean entries/write {:.1}",
                fs / fc * 1000.0,
                es / fc
            );
        }
        if !etcd_channels.is_empty() {
            let chans = etcd_channels.clone();
            let value = value.clone();
            let (count, lat, errors) = run_load(n, dur, move |client, seq| {
                let mut kv = KvClient::new(chans[client % chans.len()].clone());
                let req = PutRequest {
                    key: job_id(&format!("w{client}-{seq}-{n}")).into_bytes(),
                    value: value.clone(),
                    ..Default::default()
                };
                async move { kv.put(req).await.is_ok() }
            })
            .await;
            println!(
                "| {n} | etcd 3.4 | {:.0} | {} | {} | {errors} |",
                count as f64 / dur.as_secs_f64(),
                ms(percentile(&lat, 0.5)),
                ms(percentile(&lat, 0.99))
            );
        }
    }
    drop(etcd);
    Ok(())
}

pub(crate) fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

async fn memory(jobs: usize) -> anyhow::Result<()> {
    let mut c = Cluster::start(3, &[])?;
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(20)).await?;
    let base: Vec<u64> = (1..=3)
        .map(|i| rss_kib(c.master(i).pid().unwrap_or(0)))
        .collect();
    let grpc = c.master(leader).grpc.to_string();
    let chans: Vec<Channel> = (0..8)
        .map(|_| connect(&grpc))
        .collect::<anyhow::Result<_>>()?;
    let t0 = Instant::now();
    let per = jobs.div_ceil(64);
    let mut tasks = Vec::new();
    for w in 0..64 {
        let mut api = OceanApiClient::new(chans[w % chans.len()].clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..per {
                let n = w * per + i;
                if n >= jobs {
                    break;
                }
                let spec = job_spec(&format!("m{n}"));
                let req = PutJobRequest {
                    spec: serde_json::to_vec(&spec).unwrap_or_default(),
                    format: "json".into(),
                    expected_spec_version: None,
                };
                let mut tries = 0;
                while api.put_job(req.clone()).await.is_err() && tries < 5 {
                    tries += 1;
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    println!("loaded {jobs} jobs in {:.1} s", t0.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 1..=3u64 {
        let rss = rss_kib(c.master(i).pid().unwrap_or(0));
        let count = c.master(i).api().get("/v1/status").await?.body["jobs"]
            .as_u64()
            .unwrap_or(0);
        println!(
            "master {i}{}: {count} jobs, RSS {:.1} MiB (empty: {:.1} MiB)",
            if i == leader { " (leader)" } else { "" },
            rss as f64 / 1024.0,
            base[(i - 1) as usize] as f64 / 1024.0
        );
    }
    // One follower restarts.
    let follower = (1..=3).find(|i| *i != leader).unwrap_or(1);
    c.master_mut(follower).kill();
    let t0 = Instant::now();
    c.master_mut(follower).start()?;
    wait_serving(&c, follower, jobs).await?;
    println!(
        "restarted follower {follower}: serving {jobs} jobs after {}",
        ms(t0.elapsed())
    );
    // All three restart.
    for i in 1..=3 {
        c.master_mut(i).kill();
    }
    let t0 = Instant::now();
    for i in 1..=3 {
        c.master_mut(i).start()?;
    }
    for i in 1..=3 {
        wait_serving(&c, i, jobs).await?;
    }
    let serving = t0.elapsed();
    c.wait_leader(&[1, 2, 3], Duration::from_secs(20)).await?;
    loop {
        let r = c.master(1).api().put_job("after-restart").await?;
        if r.status < 300 {
            break;
        }
    }
    println!(
        "restarted all three: every master serving reads of {jobs} jobs after {}, first write acknowledged after {}",
        ms(serving),
        ms(t0.elapsed())
    );
    for i in 1..=3u64 {
        println!(
            "master {i} after restart: RSS {:.1} MiB",
            rss_kib(c.master(i).pid().unwrap_or(0)) as f64 / 1024.0
        );
    }
    Ok(())
}

async fn wait_serving(c: &Cluster, id: u64, jobs: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(r) = c.master(id).api().get("/v1/status").await {
            if r.body["jobs"].as_u64() == Some(jobs as u64) {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("master {id} not serving {jobs} jobs after 120 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Three etcd members on loopback, killed on drop.
struct EtcdCluster {
    procs: Vec<std::process::Child>,
    clients: Vec<String>,
    _dir: tempfile::TempDir,
}

impl EtcdCluster {
    fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let peers: Vec<String> = (0..3).map(|_| free_addr().to_string()).collect();
        let clients: Vec<String> = (0..3).map(|_| free_addr().to_string()).collect();
        let initial = peers
            .iter()
            .enumerate()
            .map(|(i, p)| format!("e{i}=http://{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut procs = Vec::new();
        for i in 0..3 {
            let log = std::fs::File::create(dir.path().join(format!("e{i}.log")))?;
            procs.push(
                std::process::Command::new("etcd")
                    .args(["--name", &format!("e{i}")])
                    .arg("--data-dir")
                    .arg(dir.path().join(format!("e{i}")))
                    .args(["--listen-client-urls", &format!("http://{}", clients[i])])
                    .args(["--advertise-client-urls", &format!("http://{}", clients[i])])
                    .args(["--listen-peer-urls", &format!("http://{}", peers[i])])
                    .args([
                        "--initial-advertise-peer-urls",
                        &format!("http://{}", peers[i]),
                    ])
                    .args(["--initial-cluster", &initial])
                    .args([
                        "--initial-cluster-state",
                        "new",
                        "--initial-cluster-token",
                        "bench",
                    ])
                    .stdin(std::process::Stdio::null())
                    .stdout(log.try_clone()?)
                    .stderr(log)
                    .spawn()
                    .context("spawn etcd (apt-get install etcd-server)")?,
            );
        }
        Ok(EtcdCluster {
            procs,
            clients,
            _dir: dir,
        })
    }

    /// The client address of the current leader.
    async fn leader_endpoint(&self) -> anyhow::Result<String> {
        let endpoints = self.clients.join(",");
        for _ in 0..100 {
            let out = std::process::Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .args([
                    "--endpoints",
                    &endpoints,
                    "endpoint",
                    "status",
                    "-w",
                    "json",
                ])
                .output()?;
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout) {
                for ep in v.as_array().into_iter().flatten() {
                    let me = ep["Status"]["header"]["member_id"].as_u64();
                    let leader = ep["Status"]["leader"].as_u64();
                    if me.is_some() && me == leader {
                        let e = ep["Endpoint"].as_str().unwrap_or_default();
                        return Ok(e.trim_start_matches("http://").to_string());
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!("etcd elected no leader")
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}
