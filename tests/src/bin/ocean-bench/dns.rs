//! `ocean-bench dns`: Ocean's DNS (issue 6), measured end to end.
//!
//! - A real master, simulated agents on the real agent protocol (each with
//!   its own address, see `schedule.rs`), `--tasks` tasks in jobs of
//!   `--per-job`, and a real `ocean dns` process following the master.
//! - Freshness: a job is scaled up one instance at a time; a watcher on
//!   the same master's watch stream sees each task's RUNNING change the
//!   moment the master publishes its commit, and from then on the task's
//!   name is asked of the DNS server in a tight loop until it answers.
//!   Reported from the watch event (commit published) and, more
//!   conservatively, from the agent's RUNNING report (`started_ms`, so
//!   including the raft commit itself).
//! - Throughput: `dnsperf` for `--seconds` against Ocean's DNS and against
//!   Knot DNS serving the same records (taken from Ocean's answers) as a
//!   static zone, with the same query file, alternately, `--rounds` times.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, Record, RecordType};
use ocean_proto::v1::ocean_api_client::OceanApiClient;
use ocean_proto::v1::{event, WatchRequest};
use ocean_scheduler_policies::synthetic::{self, WorkloadSpec};
use ocean_tests::cluster::free_addr;
use ocean_tests::dns::{ask, DnsProc};
use ocean_tests::http::job_id;
use ocean_tests::Cluster;
use serde_json::json;
use tokio::sync::mpsc;

use crate::schedule::{channel, sim_agent, Counters, Pool};
use crate::{ms, percentile};

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The absolute DNS name of `job_id(name)`.
fn name_of(job: &str) -> String {
    format!("{job}.itest.ocean.local.ocean.")
}

fn spec(name: &str, instances: usize) -> serde_json::Value {
    json!({
        "id": job_id(name),
        "cmd": "sleep 3600",
        "instances": instances,
        "resources": {"cpus": 0.01, "mem": 4},
        "ports": [{"name": "http"}],
    })
}

/// Runs the benchmark.
pub async fn dns(
    tasks: usize,
    per_job: usize,
    events: usize,
    seconds: u64,
    rounds: usize,
    knot: bool,
) -> anyhow::Result<()> {
    let per_job = per_job.clamp(1, tasks.max(1));
    let jobs = tasks.div_ceil(per_job);
    let c = Cluster::start(1, &[])?;
    let master = c.master(1);
    let grpc = master.grpc.to_string();
    let api = master.api();

    // Simulated agents with distinct addresses, so every task has its own.
    let n_agents = (tasks / 100).clamp(4, 200);
    let mut workload = synthetic::workload(&WorkloadSpec {
        agents: n_agents,
        jobs: 1,
        tasks_per_job: 1,
        ..WorkloadSpec::default()
    });
    let counters = Arc::new(Counters::default());
    let pool = Arc::new(Pool {
        by_addr: HashMap::from([(grpc.clone(), vec![channel(&grpc)?, channel(&grpc)?])]),
        addrs: vec![grpc.clone()],
    });
    for (i, a) in workload.agents.iter_mut().enumerate() {
        a.attributes.insert(
            "address".into(),
            format!("10.{}.{}.{}", i / 65_536 % 256, i / 256 % 256, i % 256),
        );
        a.attributes.insert("status".into(), "online".into());
        tokio::spawn(sim_agent(pool.clone(), i, a.clone(), counters.clone()));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while counters.registered.load(Ordering::Relaxed) < n_agents {
        anyhow::ensure!(Instant::now() < deadline, "agents did not register");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let t0 = Instant::now();
    for j in 0..jobs {
        let n = per_job.min(tasks - j * per_job);
        let r = api.post("/v1/jobs", &spec(&format!("d{j}"), n)).await?;
        anyhow::ensure!(r.status < 300, "submit: {} {}", r.status, r.body);
    }
    loop {
        let running = api.metric("ocean_tasks_running").await.unwrap_or(0.0) as usize;
        if running >= tasks {
            break;
        }
        anyhow::ensure!(
            t0.elapsed() < Duration::from_secs(600),
            "only {running} of {tasks} tasks RUNNING"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "{tasks} tasks RUNNING on {n_agents} simulated agents in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    let mut dns = DnsProc::new(c.dir(), "bench", &[master.grpc], &[]);
    dns.start()?;
    let records = collect_records(dns.addr, jobs, per_job, tasks).await?;
    eprintln!(
        "Ocean DNS serves {} records under {} names",
        records.iter().map(|(_, r)| r.len()).sum::<usize>(),
        records.len()
    );

    freshness(&api, &grpc, dns.addr, events).await?;

    let dir = c.dir().to_path_buf();
    let queries = dir.join("queries.txt");
    write_queries(&queries, &records)?;
    let knot_addr = if knot {
        Some(start_knot(&dir, &records, dns.addr).await?)
    } else {
        None
    };
    let mut table = Vec::new();
    for round in 0..rounds {
        let qps = dnsperf(dns.addr, &queries, seconds)?;
        table.push(("Ocean DNS", round, qps));
        if let Some((addr, _)) = &knot_addr {
            let qps = dnsperf(*addr, &queries, seconds)?;
            table.push(("Knot DNS", round, qps));
        }
    }
    println!("\n| server | round | queries/s | lost | response codes |");
    println!("| --- | --- | --- | --- | --- |");
    for (server, round, r) in &table {
        println!(
            "| {server} | {} | {:.0} | {} | {} |",
            round + 1,
            r.qps,
            r.lost,
            r.codes
        );
    }
    if let Some((_, mut knotd)) = knot_addr {
        let _ = knotd.kill();
        let _ = knotd.wait();
    }
    Ok(())
}

/// Asks Ocean's DNS (over TCP, whole answers) for every job's A and SRV and
/// every task's A, and checks that all `tasks` are there.
async fn collect_records(
    dns: SocketAddr,
    jobs: usize,
    per_job: usize,
    tasks: usize,
) -> anyhow::Result<Vec<(String, Vec<Record>)>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut out = Vec::new();
        let mut srv_count = 0;
        for j in 0..jobs {
            let job = name_of(&format!("d{j}"));
            let a = ask(dns, &job, RecordType::A, true).await?;
            out.push((job.clone(), a.answers.clone()));
            let srv_name = format!("_http._tcp.{job}");
            let s = ask(dns, &srv_name, RecordType::SRV, true).await?;
            srv_count += s.answers.len();
            for r in &s.answers {
                if let RData::SRV(srv) = &r.data {
                    let t = srv.target.to_ascii();
                    let ta = ask(dns, &t, RecordType::A, true).await?;
                    out.push((t, ta.answers.clone()));
                }
            }
            out.push((srv_name, s.answers.clone()));
        }
        if srv_count >= tasks {
            return Ok(out);
        }
        if Instant::now() > deadline {
            bail!("Ocean DNS has {srv_count} of {tasks} SRV targets ({jobs} jobs of {per_job})");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Scales a job up one task at a time and times each task's name.
async fn freshness(
    api: &ocean_tests::Api,
    grpc: &str,
    dns: SocketAddr,
    events: usize,
) -> anyhow::Result<()> {
    let job = job_id("fresh");
    let r = api.post("/v1/jobs", &spec("fresh", 0)).await?;
    anyhow::ensure!(r.status < 300, "submit: {} {}", r.status, r.body);
    let version = r.body["version"].as_u64().unwrap_or(0);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut client = OceanApiClient::new(channel(grpc)?).max_decoding_message_size(usize::MAX);
    let mut stream = client
        .watch(WatchRequest {
            from_version: version,
            ..Default::default()
        })
        .await?
        .into_inner();
    let watched = job.clone();
    tokio::spawn(async move {
        while let Ok(Some(ev)) = stream.message().await {
            if let Some(event::Kind::TaskPut(t)) = ev.kind {
                if t.job_id == watched && t.state == "RUNNING" {
                    let _ = tx.send((t.id, t.started_ms, Instant::now()));
                }
            }
        }
    });
    let mut from_event = Vec::new();
    let mut from_report = Vec::new();
    for i in 1..=events {
        let r = api
            .post(&format!("/v1/jobs/{job}/scale"), &json!({"instances": i}))
            .await?;
        anyhow::ensure!(r.status < 300, "scale: {} {}", r.status, r.body);
        let (id, started_ms, seen) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .context("no RUNNING event within 30 s")?
            .context("watch ended")?;
        let label = id
            .strip_prefix(&format!("{job}."))
            .unwrap_or(&id)
            .to_string();
        let name = format!("{label}.{}", name_of("fresh"));
        let q = ocean_tests::dns::query_bytes(&name, RecordType::A, false)?;
        let sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
        sock.set_read_timeout(Some(Duration::from_millis(200)))?;
        let mut buf = [0u8; 1500];
        loop {
            sock.send_to(&q, dns)?;
            if let Ok(n) = sock.recv(&mut buf) {
                // NOERROR with one answer.
                if n > 12 && buf[3] & 0x0f == ResponseCode::NoError.low() && buf[7] > 0 {
                    break;
                }
            }
            anyhow::ensure!(
                seen.elapsed() < Duration::from_secs(10),
                "{name} not served 10 s after RUNNING"
            );
        }
        from_event.push(seen.elapsed());
        from_report.push(Duration::from_millis(wall_ms().saturating_sub(started_ms)));
    }
    from_event.sort();
    from_report.sort();
    let line = |what: &str, v: &[Duration]| {
        println!(
            "freshness {what} over {} tasks: p50 {}, p99 {}, max {}",
            v.len(),
            ms(percentile(v, 0.5)),
            ms(percentile(v, 0.99)),
            ms(*v.last().unwrap_or(&Duration::ZERO))
        )
    };
    line(
        "from the RUNNING commit's watch event to the A record served",
        &from_event,
    );
    line(
        "from the agent's RUNNING report (incl. the raft commit) to the A record served",
        &from_report,
    );
    Ok(())
}

/// One `name TYPE` line per record set, in dnsperf's format.
fn write_queries(path: &Path, records: &[(String, Vec<Record>)]) -> anyhow::Result<()> {
    let mut text = String::new();
    for (name, recs) in records {
        let t = recs.first().map_or(RecordType::A, |r| r.record_type());
        text.push_str(&format!("{} {}\n", name.trim_end_matches('.'), t));
    }
    std::fs::write(path, text)?;
    Ok(())
}

/// Writes the records as a zone file and starts `knotd` serving it.
async fn start_knot(
    dir: &Path,
    records: &[(String, Vec<Record>)],
    ocean: SocketAddr,
) -> anyhow::Result<(SocketAddr, std::process::Child)> {
    let mut zone = String::from(
        "$ORIGIN ocean.\n$TTL 5\n@ IN SOA ns.ocean. hostmaster.ocean. 1 60 10 86400 5\n@ IN NS ns.ocean.\nns IN A 127.0.0.1\n",
    );
    for (_, recs) in records {
        for r in recs {
            let rdata = match &r.data {
                RData::A(a) => format!("A {}", a.0),
                RData::AAAA(a) => format!("AAAA {}", a.0),
                RData::SRV(s) => format!(
                    "SRV {} {} {} {}",
                    s.priority,
                    s.weight,
                    s.port,
                    s.target.to_ascii()
                ),
                _ => continue,
            };
            zone.push_str(&format!("{} {} IN {rdata}\n", r.name.to_ascii(), r.ttl));
        }
    }
    let zone_path = dir.join("ocean.zone");
    std::fs::write(&zone_path, zone)?;
    let addr = free_addr();
    let storage = dir.join("knot");
    std::fs::create_dir_all(&storage)?;
    let conf = format!(
        "server:\n    listen: {}@{}\n    rundir: {st}\nlog:\n  - target: stderr\n    any: warning\ndatabase:\n    storage: {st}\ntemplate:\n  - id: default\n    storage: {st}\n    semantic-checks: off\nzone:\n  - domain: ocean\n    file: {}\n",
        addr.ip(),
        addr.port(),
        zone_path.display(),
        st = storage.display()
    );
    let conf_path = dir.join("knot.conf");
    std::fs::write(&conf_path, conf)?;
    let log = std::fs::File::create(dir.join("knot.log"))?;
    let child = Command::new("knotd")
        .arg("-c")
        .arg(&conf_path)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("start knotd (Debian package `knot`)")?;
    // Same answers as Ocean for a sample of names.
    let deadline = Instant::now() + Duration::from_secs(20);
    let sample = &records[records.len() / 2];
    loop {
        if let (Ok(k), Ok(o)) = (
            ask(
                addr,
                &sample.0,
                sample.1.first().map_or(RecordType::A, |r| r.record_type()),
                false,
            )
            .await,
            ask(
                ocean,
                &sample.0,
                sample.1.first().map_or(RecordType::A, |r| r.record_type()),
                false,
            )
            .await,
        ) {
            let key = |m: &hickory_proto::op::Message| {
                let mut v: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
                v.sort();
                v
            };
            if !k.answers.is_empty() {
                anyhow::ensure!(
                    key(&k) == key(&o),
                    "Knot and Ocean disagree on {}: {k:?} vs {o:?}",
                    sample.0
                );
                break;
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "knotd did not serve the zone; see {}",
            dir.join("knot.log").display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((addr, child))
}

struct Perf {
    qps: f64,
    lost: String,
    codes: String,
}

/// Runs dnsperf against `server` and reads its summary.
fn dnsperf(server: SocketAddr, queries: &Path, seconds: u64) -> anyhow::Result<Perf> {
    let out = Command::new("dnsperf")
        .args([
            "-s",
            &server.ip().to_string(),
            "-p",
            &server.port().to_string(),
        ])
        .arg("-d")
        .arg(queries)
        .args([
            "-l",
            &seconds.to_string(),
            "-c",
            "8",
            "-q",
            "500",
            "-T",
            "2",
        ])
        .output()
        .context("run dnsperf (Debian package `dnsperf`)")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let field = |label: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(label))
            .map(|l| l.trim_start()[label.len()..].trim().to_string())
            .unwrap_or_default()
    };
    let qps: f64 = field("Queries per second:").parse().unwrap_or(0.0);
    if qps == 0.0 {
        bail!(
            "dnsperf gave no rate:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(Perf {
        qps,
        lost: field("Queries lost:"),
        codes: field("Response codes:"),
    })
}
