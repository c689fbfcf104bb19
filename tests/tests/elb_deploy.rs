//! A rolling deploy behind an ELB drops no connection: three real agents
//! whose tasks serve inside their host's backend namespace, `ocean elb
//! agent` programming the LB namespace, and a client opening new
//! connections through the VIP as fast as it can while the job's three
//! tasks are replaced one by one.
//!
//! The load is at least 500 new connections a second, and the test
//! asserts it: the tasks run `ocean-echo` (a small Rust server of this
//! crate), sixteen client threads connect, read the server's name and close,
//! and the client's namespace has the whole port range so its TIME_WAIT
//! sockets do not run it out of source ports.
//!
//! What makes it lossless, and what this test holds to:
//! - a new task serves only once its health check passed (not when it
//!   merely runs: its process may not listen yet);
//! - an old task leaves the rotation before it is stopped
//!   (`shutdown_delay_seconds`), and established connections finish.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ocean_tests::cluster::ocean_bin;
use ocean_tests::elb_net::{backend_agents, hello, setup, spray, wait_for, VIP};
use ocean_tests::netns::in_netns;
use ocean_tests::tasks::{submit, wait_deployment};
use ocean_tests::Cluster;
use serde_json::{json, Value};

const JOB: &str = "cop.x_owt.y_pdl.web_servicegroup.g_service.front_job.api_cluster.c3";

/// The load the issue asks the deploy to survive, in new connections/s.
const RATE: f64 = 500.0;

/// Client threads, each opening one connection after the other: on a busy
/// 2-core machine a connection waits milliseconds for the server's thread
/// to be scheduled, so the rate needs many in flight, not more CPU.
const CLIENTS: usize = 16;

fn spec(dir: &std::path::Path, version: u32) -> Value {
    // Each agent is a host named b<i>; its tasks enter that host's
    // namespace, named in a file of the test's.
    let cmd = format!(
        "exec ip netns exec $(cat {dir}/ns-$HOST) {echo} v{version}-$OCEAN_TASK_ID $PORT_HTTP ready",
        dir = dir.display(),
        echo = ocean_bin().with_file_name("ocean-echo").display(),
    );
    json!({
        "id": JOB,
        "cmd": cmd,
        "instances": 3,
        "placement_policy": "spread",
        "resources": {"cpus": 0.05, "mem": 64},
        "ports": [{"name": "http"}],
        "env": {"VERSION": version.to_string()},
        "health_checks": [{"protocol": "command", "command": "test -e ready",
            "interval_seconds": 1, "grace_period_seconds": 10, "timeout_seconds": 2,
            "max_consecutive_failures": 3}],
        "shutdown_delay_seconds": 2,
        "kill_grace_period_seconds": 1,
        "upgrade_strategy": {"max_surge": 1, "max_unavailable": 0},
    })
}

/// What the client saw: answers by server name, failures by kind.
#[derive(Debug, Default)]
struct Load {
    answers: BTreeMap<String, usize>,
    failures: BTreeMap<String, usize>,
    took: Duration,
}

/// Opens connections through the VIP from `ns` until `stop`.
fn load(ns: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<anyhow::Result<Load>> {
    std::thread::spawn(move || {
        let addr: SocketAddr = format!("{VIP}:80").parse()?;
        in_netns(&ns, move || {
            let mut l = Load::default();
            let start = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                match hello(addr) {
                    Ok(name) => *l.answers.entry(name).or_default() += 1,
                    Err(e) => *l.failures.entry(e.kind().to_string()).or_default() += 1,
                }
            }
            l.took = start.elapsed();
            l
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_deploy_behind_the_elb_fails_no_connection() -> anyhow::Result<()> {
    let net = setup(3, false)?;
    // Thousands of short connections to one VIP:port: every source port.
    net.client
        .exec(&["sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65535"])?;
    let dir = tempfile::tempdir()?;
    for (i, b) in net.backends.iter().enumerate() {
        std::fs::write(dir.path().join(format!("ns-b{i}")), &b.name)?;
    }
    let cluster = Cluster::start(1, &[])?;
    let api = cluster.master(1).api();
    let agents = backend_agents(&cluster, 3, |i| vec!["--hostname".into(), format!("b{i}")])?;
    submit(&api, &spec(dir.path(), 1)).await?;
    let elb = json!({"name": "pdl.web_service.front", "idc": "c3", "network": "internal",
        "vips": [VIP], "listeners": [{"port": 80, "protocol": "tcp", "backend_job": JOB,
        "backend_port_name": "http"}]});
    let r = api.post("/v1/elbs", &elb).await?;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let mut lb_agent = net.lb_agent(dir.path(), cluster.master(1).grpc)?;
    let client = net.client.name.clone();
    wait_for(
        "three v1 tasks behind the VIP",
        Duration::from_secs(60),
        || {
            let (seen, _) = spray(&client, 30)?;
            Ok(seen.keys().filter(|k| k.starts_with("v1-")).count() == 3)
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", lb_agent.log_tail()))?;

    let stop = Arc::new(AtomicBool::new(false));
    let loads: Vec<_> = (0..CLIENTS)
        .map(|_| load(client.clone(), stop.clone()))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    submit(&api, &spec(dir.path(), 2)).await?;
    let done = wait_deployment(
        &api,
        JOB,
        "the deployment ended",
        Duration::from_secs(90),
        |d| ["succeeded", "failed", "cancelled"].contains(&d["state"].as_str().unwrap_or("")),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", lb_agent.log_tail()))?;
    anyhow::ensure!(done["state"] == "succeeded", "deployment ended: {done}");
    // The last old task drains for its shutdown delay, then stops.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = Load::default();
    for l in loads {
        let l = l
            .join()
            .map_err(|_| anyhow::anyhow!("a load thread panicked"))??;
        for (k, v) in l.answers {
            *total.answers.entry(k).or_default() += v;
        }
        for (k, v) in l.failures {
            *total.failures.entry(k).or_default() += v;
        }
        total.took = total.took.max(l.took);
    }
    let answered: usize = total.answers.values().sum();
    let rate = answered as f64 / total.took.as_secs_f64();
    eprintln!(
        "{answered} connections in {:?} ({rate:.0}/s): {:?}, failures {:?}",
        total.took, total.answers, total.failures
    );
    assert!(
        total.failures.is_empty(),
        "failed connections during the deploy: {:?}",
        total.failures
    );
    assert!(
        rate >= RATE,
        "only {rate:.0} new connections/s, the issue asks for {RATE}"
    );
    // Every new task served, and the old ones are gone from the rotation.
    let new = total
        .answers
        .keys()
        .filter(|k| k.starts_with("v2-"))
        .count();
    assert_eq!(new, 3, "{total:?}");
    let (seen, errors) = spray(&client, 30)?;
    assert!(errors.is_empty(), "{errors:?}");
    assert!(seen.keys().all(|k| k.starts_with("v2-")), "{seen:?}");
    lb_agent.kill();
    drop(agents);
    Ok(())
}
