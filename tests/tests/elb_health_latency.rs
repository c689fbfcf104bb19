//! How fast a health change reaches the data plane, as a distribution: a
//! real master, three real agents whose tasks (`ocean-echo`) serve inside
//! three backend namespaces, `ocean elb agent` programming the LB
//! namespace. Backend 1's command health check is flipped `FLIPS` times
//! (red, green, red, ...); for each flip the test times
//!
//! - *reported → plane*: from the moment the masters' watch carries the
//!   task's new health (an event follower of the test's own, which sees it
//!   when the LB agent does) to the LB namespace's nftables table holding
//!   the change (the backend's address leaves or rejoins `rs_addrs`);
//! - *flip → plane*: from the health file's change, which includes up to
//!   one check interval (1 s) of waiting for the next check.
//!
//! A second test SIGKILLs backend 1's task `KILLS` times and times the
//! kill to the table no longer holding its address (no check interval on
//! that path: the agent sees its child exit).
//!
//! The issue's target is p99 <= 300 ms from the task being reported
//! unhealthy or killed. Run by hand (about a minute each), with the bins
//! built:
//!
//! ```text
//! cargo nextest run -p ocean-tests --test elb_health_latency --run-ignored only --no-capture
//! ```

use std::time::{Duration, Instant};

use ocean_elb::nft::Nft;
use ocean_elb::nft_lib::NftLib;
use ocean_elb::nft_read;
use ocean_tests::cluster::{ocean_bin, Process};
use ocean_tests::elb_net::{backend_addr, backend_agents, setup, spray, wait_for, Net, VIP};
use ocean_tests::events::EventLog;
use ocean_tests::tasks::{running, wait_tasks};
use ocean_tests::{AgentProc, Cluster};
use serde_json::json;

const FLIPS: usize = 40;
const KILLS: usize = 20;

fn job_id(i: usize) -> String {
    format!("cop.x_owt.y_pdl.web_servicegroup.g_service.front_job.lat{i}_cluster.c3")
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// A real master, three agents (one per backend namespace) running a job
/// each, an ELB over the three, and the LB agent, every task behind the VIP.
struct Rig {
    // Dropped in this order: the LB agent, the agents, the master, then
    // the files and the namespaces.
    lb_agent: Process,
    agents: Vec<AgentProc>,
    cluster: Cluster,
    dir: tempfile::TempDir,
    net: Net,
}

impl Rig {
    async fn start() -> anyhow::Result<Rig> {
        let net = setup(3, false)?;
        let dir = tempfile::tempdir()?;
        let cluster = Cluster::start(1, &[])?;
        let api = cluster.master(1).api();
        let grpc = cluster.master(1).grpc;
        let agents = backend_agents(&cluster, 3, |i| vec!["--attr".into(), format!("slot=s{i}")])?;
        let echo = ocean_bin().with_file_name("ocean-echo");
        for (i, b) in net.backends.iter().enumerate() {
            let spec = json!({
                "id": job_id(i),
                "cmd": format!("exec ip netns exec {} {} b{i} $PORT_HTTP", b.name, echo.display()),
                "instances": 1,
                "resources": {"cpus": 0.05, "mem": 32},
                "ports": [{"name": "http"}],
                "constraints": [["slot", "LIKE", format!("s{i}")]],
                "health_checks": [{"protocol": "command",
                    "command": format!("test ! -e {}", dir.path().join(format!("sick{i}")).display()),
                    "interval_seconds": 1, "grace_period_seconds": 0, "max_consecutive_failures": 0}],
                // A killed task comes back at once, again and again.
                "backoff": {"backoff_seconds": 0.1, "backoff_factor": 1.0,
                            "max_launch_delay_seconds": 1.0, "reset_after_seconds": 600},
                "flapping": {"max_failures": 1000, "window_seconds": 600},
            });
            let r = api.post("/v1/jobs", &spec).await?;
            anyhow::ensure!(r.is_success(), "job {i}: {:?}", r.body);
        }
        let listeners: Vec<_> = (0..3)
            .map(|i| json!({"port": 80, "protocol": "tcp", "backend_job": job_id(i), "backend_port_name": "http"}))
            .collect();
        let elb = json!({"name": "pdl.web_service.lat", "idc": "c3", "network": "internal",
            "vips": [VIP], "listeners": listeners});
        let r = api.post("/v1/elbs", &elb).await?;
        anyhow::ensure!(r.status == 201, "{:?}", r.body);
        let lb_agent = net.lb_agent(dir.path(), grpc)?;
        let client = net.client.name.clone();
        wait_for("every task behind the VIP", Duration::from_secs(60), || {
            let (seen, _) = spray(&client, 30)?;
            Ok(seen.len() == 3)
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", lb_agent.log_tail()))?;
        Ok(Rig {
            net,
            dir,
            cluster,
            agents,
            lb_agent,
        })
    }
}

/// Whether the LB namespace's table holds `addr` among its real servers.
fn holds(nft: &NftLib, addr: std::net::Ipv4Addr) -> anyhow::Result<bool> {
    let plane = match nft.list()? {
        Some(json) => nft_read::parse(&json)?,
        None => None,
    };
    Ok(plane.is_some_and(|p| p.rs_addrs.contains(&addr)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement run by hand (about a minute): see the module docs"]
async fn health_changes_reach_the_data_plane_within_300_ms_p99() -> anyhow::Result<()> {
    let mut rig = Rig::start().await?;
    let grpc = rig.cluster.master(1).grpc;
    let log = EventLog::follow(&grpc.to_string(), 0);
    let lb_ns = rig.net.lb.name.clone();
    let target: std::net::Ipv4Addr = backend_addr(1).parse()?;
    let flips = rig.dir.path().to_path_buf();
    // The flips and the table polling block: a thread of their own.
    let marks = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<(Instant, Instant)>> {
        let nft = NftLib::open(Some(&lb_ns))?;
        let mut marks = Vec::new();
        for n in 0..FLIPS {
            let red = n % 2 == 0;
            let file = flips.join("sick1");
            let flipped = Instant::now();
            if red {
                std::fs::write(&file, b"")?;
            } else {
                std::fs::remove_file(&file)?;
            }
            let deadline = flipped + Duration::from_secs(10);
            while holds(&nft, target)? == red {
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "flip {n}: the plane did not follow"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            marks.push((flipped, Instant::now()));
            // Let the other checks settle before the next flip.
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(marks)
    })
    .await??;
    // The masters' record of each flip: the first put of task 1 whose
    // health is the flip's, after the flip.
    let task = log
        .tasks_put()
        .into_iter()
        .find(|p| p.object.job_id == job_id(1))
        .map(|p| p.object.id)
        .ok_or_else(|| anyhow::anyhow!("no event of backend 1's task"))?;
    let puts = log.task_puts(&task);
    let mut reported = Vec::new();
    let mut whole = Vec::new();
    for (n, (flipped, planed)) in marks.iter().enumerate() {
        let want = n % 2 == 1;
        let put = puts
            .iter()
            .find(|p| p.at >= *flipped && p.object.healthy == Some(want))
            .ok_or_else(|| anyhow::anyhow!("flip {n}: no event with healthy={want}"))?;
        reported.push(planed.saturating_duration_since(put.at));
        whole.push(planed.duration_since(*flipped));
    }
    reported.sort();
    whole.sort();
    eprintln!(
        "{FLIPS} health flips: reported -> plane p50 {:?} p99 {:?} max {:?}; flip -> plane (incl. the 1 s check interval) p50 {:?} p99 {:?} max {:?}",
        pct(&reported, 0.5),
        pct(&reported, 0.99),
        reported[reported.len() - 1],
        pct(&whole, 0.5),
        pct(&whole, 0.99),
        whole[whole.len() - 1],
    );
    assert!(
        pct(&reported, 0.99) <= Duration::from_millis(300),
        "p99 {:?} over 300 ms",
        pct(&reported, 0.99)
    );
    rig.lb_agent.kill();
    drop(rig.agents);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement run by hand (about a minute): see the module docs"]
async fn killed_tasks_leave_the_data_plane_within_300_ms_p99() -> anyhow::Result<()> {
    let mut rig = Rig::start().await?;
    let api = rig.cluster.master(1).api();
    let target: std::net::Ipv4Addr = backend_addr(1).parse()?;
    let lb_ns = rig.net.lb.name.clone();
    let nft = tokio::task::spawn_blocking(move || NftLib::open(Some(&lb_ns))).await??;
    let nft = std::sync::Arc::new(nft);
    let mut gone = Vec::new();
    for n in 0..KILLS {
        // The task (a new one after each kill) runs, passed its check and
        // is in the table again.
        let list = wait_tasks(
            &api,
            &job_id(1),
            "a running task",
            Duration::from_secs(30),
            |l| running(l).len() == 1 && running(l)[0]["pid"].as_i64().unwrap_or(0) > 0,
        )
        .await?;
        let pid = running(&list)[0]["pid"].as_i64().unwrap_or(0) as i32;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let n2 = nft.clone();
            if tokio::task::spawn_blocking(move || holds(&n2, target)).await?? {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "kill {n}: the task never came back"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let n2 = nft.clone();
        let took = tokio::task::spawn_blocking(move || -> anyhow::Result<Duration> {
            // The task's process, as its agent reports it (a child of the
            // test's own agent).
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            )?;
            let killed = Instant::now();
            while holds(&n2, target)? {
                anyhow::ensure!(
                    killed.elapsed() < Duration::from_secs(10),
                    "kill {n}: the plane did not follow"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(killed.elapsed())
        })
        .await??;
        gone.push(took);
    }
    gone.sort();
    eprintln!(
        "{KILLS} kills: SIGKILL -> out of the plane p50 {:?} p99 {:?} max {:?}",
        pct(&gone, 0.5),
        pct(&gone, 0.99),
        gone[gone.len() - 1],
    );
    assert!(
        pct(&gone, 0.99) <= Duration::from_millis(300),
        "p99 {:?} over 300 ms",
        pct(&gone, 0.99)
    );
    rig.lb_agent.kill();
    drop(rig.agents);
    Ok(())
}
