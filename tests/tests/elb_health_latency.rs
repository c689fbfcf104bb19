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
//! The issue's target is p99 <= 300 ms from the task being reported
//! unhealthy. Run by hand (it takes about a minute), with the bins built:
//!
//! ```text
//! cargo nextest run -p ocean-tests --test elb_health_latency --run-ignored only --no-capture
//! ```

use std::time::{Duration, Instant};

use ocean_elb::nft::Nft;
use ocean_elb::nft_lib::NftLib;
use ocean_elb::nft_read;
use ocean_tests::cluster::ocean_bin;
use ocean_tests::elb_net::{backend_addr, setup, spray, wait_for, VIP};
use ocean_tests::events::EventLog;
use ocean_tests::Cluster;
use serde_json::json;

const FLIPS: usize = 40;

fn job_id(i: usize) -> String {
    format!("cop.x_owt.y_pdl.web_servicegroup.g_service.front_job.lat{i}_cluster.c3")
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement run by hand (about a minute): see the module docs"]
async fn health_changes_reach_the_data_plane_within_300_ms_p99() -> anyhow::Result<()> {
    let net = setup(3, false)?;
    let dir = tempfile::tempdir()?;
    let cluster = Cluster::start(1, &[])?;
    let api = cluster.master(1).api();
    let grpc = cluster.master(1).grpc;
    let mut agents = Vec::new();
    for i in 0..3 {
        let mut a = cluster.new_agent(
            &format!("b{i}"),
            &[
                "--attr",
                &format!("slot=s{i}"),
                "--address",
                &backend_addr(i),
                "--http",
                "127.0.0.1:0",
                "--no-docker",
            ],
        );
        a.start()?;
        agents.push(a);
    }
    let echo = ocean_bin().with_file_name("ocean-echo");
    let sick = |i: usize| dir.path().join(format!("sick{i}"));
    for (i, b) in net.backends.iter().enumerate() {
        let spec = json!({
            "id": job_id(i),
            "cmd": format!("exec ip netns exec {} {} b{i} $PORT_HTTP", b.name, echo.display()),
            "instances": 1,
            "resources": {"cpus": 0.05, "mem": 32},
            "ports": [{"name": "http"}],
            "constraints": [["slot", "LIKE", format!("s{i}")]],
            "health_checks": [{"protocol": "command", "command": format!("test ! -e {}", sick(i).display()),
                "interval_seconds": 1, "grace_period_seconds": 0, "max_consecutive_failures": 0}],
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
    assert_eq!(r.status, 201, "{:?}", r.body);
    let mut lb_agent = net.lb_agent(dir.path(), grpc)?;
    let client = net.client.name.clone();
    wait_for("every task behind the VIP", Duration::from_secs(60), || {
        let (seen, _) = spray(&client, 30)?;
        Ok(seen.len() == 3)
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", lb_agent.log_tail()))?;

    let log = EventLog::follow(&grpc.to_string(), 0);
    let lb_ns = net.lb.name.clone();
    let target: std::net::Ipv4Addr = backend_addr(1).parse()?;
    let flips = dir.path().to_path_buf();
    // The flips and the table polling block: a thread of their own.
    let marks = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<(Instant, Instant)>> {
        let nft = NftLib::open(Some(&lb_ns))?;
        let holds = || -> anyhow::Result<bool> {
            let plane = match nft.list()? {
                Some(json) => nft_read::parse(&json)?,
                None => None,
            };
            Ok(plane.is_some_and(|p| p.rs_addrs.contains(&target)))
        };
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
            while holds()? == red {
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
    lb_agent.kill();
    drop(agents);
    Ok(())
}
