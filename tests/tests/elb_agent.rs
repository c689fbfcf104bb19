//! The ELB end to end: a real master (the ELB created through
//! `POST /v1/elbs`), three real Ocean agents whose tasks run the backend
//! servers inside three backend namespaces (each task's command enters its
//! namespace; each agent reports that namespace's address as its own), and
//! `ocean elb agent --netns LB` programming the LB namespace from the
//! masters' watch. A task's command health check turning red takes it out
//! of the rotation; turning green brings it back. The ELB's domain name
//! resolves to its VIP through a real `ocean dns` while the ELB exists.

use std::net::IpAddr;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use ocean_tests::dns::{addrs, rcode, wait_answer, DnsProc};
use ocean_tests::elb_net::{backend_agents, setup, spray, wait_for, SERVER, VIP};
use ocean_tests::Cluster;
use serde_json::json;

fn job_id(i: usize) -> String {
    format!("cop.x_owt.y_pdl.web_servicegroup.g_service.front_job.api{i}_cluster.c3")
}

fn seen(ns: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let (seen, _) = spray(ns, n)?;
    Ok(seen.into_keys().collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_elb_agent_follows_real_tasks_and_their_health() -> anyhow::Result<()> {
    let net = setup(3, false)?;
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("server.py");
    std::fs::write(&script, SERVER)?;
    let cluster = Cluster::start(1, &[])?;
    let api = cluster.master(1).api();
    let agents = backend_agents(&cluster, 3, |i| vec!["--attr".into(), format!("slot=s{i}")])?;
    let sick = |i: usize| dir.path().join(format!("sick{i}"));
    for (i, b) in net.backends.iter().enumerate() {
        let spec = json!({
            "id": job_id(i),
            "cmd": format!("exec ip netns exec {} python3 {} b{i} $PORT_HTTP", b.name, script.display()),
            "instances": 1,
            "resources": {"cpus": 0.1, "mem": 64},
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
    let elb = json!({"name": "pdl.web_service.front", "idc": "c3", "network": "internal",
        "vips": [VIP], "listeners": listeners, "domain": "front.web.ocean"});
    let r = api.post("/v1/elbs", &elb).await?;
    assert_eq!(r.status, 201, "{:?}", r.body);
    // The same VIP:port again under another name is refused, naming the field.
    // Its domain resolves to its VIP in Ocean's DNS (real packets).
    let mut dns = DnsProc::new(dir.path(), "main", &[cluster.master(1).grpc], &[]);
    dns.start()?;
    let vip: IpAddr = VIP.parse()?;
    wait_answer(
        dns.addr,
        "front.web.ocean",
        RecordType::A,
        "the ELB's VIP",
        Duration::from_secs(20),
        |m| addrs(m) == vec![vip],
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", dns.log_tail()))?;
    let mut other = elb.clone();
    other["name"] = json!("pdl.web_service.other");
    other["domain"] = json!(null);
    let r = api.post("/v1/elbs", &other).await?;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.body["errors"][0]["field"], "vips[0]");

    let mut lb_agent = net.lb_agent(dir.path(), cluster.master(1).grpc)?;
    let client = net.client.name.clone();
    let all = vec!["b0".to_string(), "b1".into(), "b2".into()];
    wait_for("every task behind the VIP", Duration::from_secs(60), || {
        Ok(seen(&client, 30)? == all)
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", lb_agent.log_tail()))?;

    let status = api.get("/v1/elbs/pdl.web_service.front").await?;
    assert_eq!(
        status.body["virtual_servers"][0]["in_rotation"], 3,
        "{:?}",
        status.body
    );

    // Task 1's health check fails: it leaves the rotation.
    std::fs::write(sick(1), b"")?;
    let took = wait_for("the unhealthy task out", Duration::from_secs(15), || {
        Ok(seen(&client, 30)? == ["b0", "b2"])
    })
    .await?;
    eprintln!("unhealthy task out of the VIP after {took:?} (checks every 1 s)");
    std::fs::remove_file(sick(1))?;
    wait_for("the task back", Duration::from_secs(15), || {
        Ok(seen(&client, 30)? == all)
    })
    .await?;

    // Deleted ELB: the agent empties the table.
    let r = api.delete("/v1/elbs/pdl.web_service.front").await?;
    assert!(r.is_success(), "{:?}", r.body);
    wait_for("the VS gone", Duration::from_secs(10), || {
        let (seen, _) = spray(&client, 3)?;
        Ok(seen.is_empty())
    })
    .await?;
    wait_answer(
        dns.addr,
        "front.web.ocean",
        RecordType::A,
        "the name gone",
        Duration::from_secs(10),
        |m| rcode(m) == ResponseCode::NXDomain,
    )
    .await?;
    lb_agent.kill();
    drop(agents);
    Ok(())
}
