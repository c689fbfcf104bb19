//! keepalived run by `ocean elb agent` (`--vrrp-interface`): two LB
//! namespaces on one segment with a client (a bridge in the client's
//! namespace), each programmed by its own LB agent that also runs
//! keepalived for the ELB's VIP; a real master, a real Ocean agent whose
//! task serves in both LB namespaces (each answer names its LB, so the
//! client sees which LB carried a connection).
//!
//! Checked: stale VIPs (labelled `eth0:elb`) put on the interfaces before
//! the agents start are gone after their start, an operator's unlabelled
//! address stays; the VIP answers through the master (priority 150); a new
//! ELB's VIP is added by a reload (SIGHUP: same keepalived pid); SIGKILL of
//! the master's keepalived moves the VIP to the backup within 2 s and the
//! agent restarts keepalived, which takes it back; SIGKILL of the master's
//! whole agent and keepalived moves the VIP within 2 s and traffic flows
//! through the backup; the agent started again removes what the killed
//! keepalived left and takes the VIP back; a stopped agent stops its
//! keepalived and the VIP moves.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use ocean_tests::cluster::Process;
use ocean_tests::elb_net::{
    backend_addr, backend_agents, hello, need_keepalived, wait_for, wait_sync, SERVER,
};
use ocean_tests::http::Api;
use ocean_tests::netns::{in_netns, Netns};
use ocean_tests::Cluster;
use serde_json::json;

const VIP: &str = "10.60.0.100";
const VIP2: &str = "10.60.0.101";
const JOB: &str = "cop.x_owt.y_pdl.web_servicegroup.g_service.front_job.api_cluster.c3";

/// The IPv4 addresses on `ns`'s eth0 with their labels.
fn addrs(ns: &Netns) -> anyhow::Result<Vec<(String, String)>> {
    let v: serde_json::Value =
        serde_json::from_str(&ns.ip(&["-j", "-4", "addr", "show", "dev", "eth0"])?)?;
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .map(|a| {
            (
                a["local"].as_str().unwrap_or("").to_string(),
                a["label"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect())
}

fn holds(ns: &Netns, addr: &str) -> bool {
    addrs(ns).is_ok_and(|a| a.iter().any(|(l, _)| l == addr))
}

/// Pids of the keepalived processes inside `ns`.
fn keepalived_pids(ns: &Netns) -> Vec<i32> {
    ocean_tests::netns::run("ip", &["netns", "pids", &ns.name])
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm"))
                .is_ok_and(|c| c.trim() == "keepalived")
        })
        .collect()
}

fn kill_all(pids: &[i32]) {
    for p in pids {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*p), Signal::SIGKILL);
    }
}

/// Which LB answers a connection to `vip`:80 from the client.
fn who(client: &str, vip: &str) -> anyhow::Result<Option<String>> {
    let addr: SocketAddr = format!("{vip}:80").parse()?;
    in_netns(client, move || hello(addr).ok())
}

struct Lb {
    ns: Netns,
    dir: PathBuf,
    priority: u16,
    metrics: SocketAddr,
}

impl Lb {
    fn agent(&self, grpc: SocketAddr) -> anyhow::Result<Process> {
        let mut p = Process::new(self.dir.join("elb-agent.log"));
        let args = [
            "elb".to_string(),
            "agent".into(),
            "--master".into(),
            grpc.to_string(),
            "--netns".into(),
            self.ns.name.clone(),
            "--vrrp-interface".into(),
            "eth0".into(),
            "--vrrp-router-id".into(),
            "61".into(),
            "--vrrp-priority".into(),
            self.priority.to_string(),
            "--vrrp-advert-ms".into(),
            "200".into(),
            "--vrrp-name".into(),
            format!("lb{}", self.priority),
            "--data-dir".into(),
            self.dir.display().to_string(),
            "--metrics-addr".into(),
            self.metrics.to_string(),
        ];
        p.spawn(&args.map(Into::into))?;
        Ok(p)
    }

    fn pid_file(&self) -> Option<i32> {
        std::fs::read_to_string(self.dir.join("keepalived/keepalived.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

/// The client's namespace holds a bridge; each LB's eth0 is a port of it.
fn lb(client: &Netns, dir: &Path, role: &str, addr: &str, priority: u16) -> anyhow::Result<Lb> {
    let ns = Netns::new(role)?;
    let port = format!("p{role}");
    ns.ip(&[
        "link",
        "add",
        "eth0",
        "type",
        "veth",
        "peer",
        "name",
        &port,
        "netns",
        &client.name,
    ])?;
    ns.ip(&["addr", "add", &format!("{addr}/24"), "dev", "eth0"])?;
    ns.ip(&["link", "set", "eth0", "up"])?;
    client.ip(&["link", "set", &port, "master", "br0"])?;
    client.ip(&["link", "set", &port, "up"])?;
    // The real server's address is each LB's own: the task's servers
    // listen there, so a connection is answered by the LB that took it.
    ns.ip(&[
        "addr",
        "add",
        &format!("{}/32", backend_addr(0)),
        "dev",
        "lo",
    ])?;
    let dir = dir.join(role);
    std::fs::create_dir_all(&dir)?;
    Ok(Lb {
        ns,
        dir,
        priority,
        metrics: ocean_tests::cluster::free_addr(),
    })
}

/// The value of `metric` for the front ELB's VS on `lb`'s `/metrics`
/// (a real scrape).
async fn scrape(lb: &Lb, metric: &str) -> anyhow::Result<u64> {
    let text = Api::new(&lb.metrics.to_string())
        .get_text("/metrics")
        .await?;
    let series = format!(
        "{metric}{{elb=\"pdl.web_service.front\",vip=\"{VIP}\",port=\"80\",protocol=\"tcp\"}} "
    );
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no {series} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lb_agents_keepalived_moves_the_vip_and_cleans_stale_ones() -> anyhow::Result<()> {
    if !need_keepalived() {
        return Ok(());
    }
    ocean_tests::netns::reap_orphans();
    let dir = tempfile::tempdir()?;
    let client = Netns::new("cl")?;
    client.ip(&["link", "add", "br0", "type", "bridge"])?;
    client.ip(&["addr", "add", "10.60.0.9/24", "dev", "br0"])?;
    client.ip(&["link", "set", "br0", "up"])?;
    let a = lb(&client, dir.path(), "lba", "10.60.0.1", 150)?;
    let b = lb(&client, dir.path(), "lbb", "10.60.0.2", 100)?;

    // Stale VIPs, as a crashed run leaves them: the ELB's VIP on the
    // backup, a VIP of no ELB on the master; and an operator's address.
    b.ns.ip(&[
        "addr",
        "add",
        &format!("{VIP}/32"),
        "dev",
        "eth0",
        "label",
        "eth0:elb",
    ])?;
    a.ns.ip(&[
        "addr",
        "add",
        "10.60.0.77/32",
        "dev",
        "eth0",
        "label",
        "eth0:elb",
    ])?;
    a.ns.ip(&["addr", "add", "10.60.0.55/32", "dev", "eth0"])?;

    let cluster = Cluster::start(1, &[])?;
    let api = cluster.master(1).api();
    let _agents = backend_agents(&cluster, 1, |_| vec![])?;
    let script = dir.path().join("server.py");
    std::fs::write(&script, SERVER)?;
    let serve = |lb: &Lb| {
        format!(
            "ip netns exec {} python3 {} {} $PORT_HTTP",
            lb.ns.name,
            script.display(),
            lb.dir.file_name().unwrap_or_default().to_string_lossy()
        )
    };
    let spec = json!({
        "id": JOB,
        "cmd": format!("{} & exec {}", serve(&a), serve(&b)),
        "instances": 1,
        "resources": {"cpus": 0.1, "mem": 64},
        "ports": [{"name": "http"}],
    });
    let r = api.post("/v1/jobs", &spec).await?;
    anyhow::ensure!(r.is_success(), "job: {:?}", r.body);
    let elb = |name: &str, vip: &str| {
        json!({"name": name, "idc": "c3", "network": "internal", "vips": [vip],
            "listeners": [{"port": 80, "protocol": "tcp", "backend_job": JOB, "backend_port_name": "http"}]})
    };
    let r = api
        .post("/v1/elbs", &elb("pdl.web_service.front", VIP))
        .await?;
    assert_eq!(r.status, 201, "{:?}", r.body);

    let grpc = cluster.master(1).grpc;
    let mut agent_a = a.agent(grpc)?;
    let cl = client.name.clone();
    wait_for(
        "the VIP through the master LB",
        Duration::from_secs(60),
        || Ok(who(&cl, VIP)?.as_deref() == Some("lba")),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", agent_a.log_tail()))?;
    let on_a = addrs(&a.ns)?;
    assert!(
        on_a.contains(&(VIP.to_string(), "eth0:elb".to_string())),
        "{on_a:?}"
    );
    assert!(!holds(&a.ns, "10.60.0.77"), "stale VIP kept: {on_a:?}");
    assert!(
        holds(&a.ns, "10.60.0.55"),
        "operator's address removed: {on_a:?}"
    );

    // Per-VS metrics: connections through the VS raise its counters.
    assert_eq!(scrape(&a, "ocean_elb_vs_real_servers").await?, 1);
    let before = [
        scrape(&a, "ocean_elb_vs_connections_total").await?,
        scrape(&a, "ocean_elb_vs_packets_total").await?,
        scrape(&a, "ocean_elb_vs_bytes_total").await?,
    ];
    for _ in 0..20 {
        assert_eq!(who(&client.name, VIP)?.as_deref(), Some("lba"));
    }
    let after = [
        scrape(&a, "ocean_elb_vs_connections_total").await?,
        scrape(&a, "ocean_elb_vs_packets_total").await?,
        scrape(&a, "ocean_elb_vs_bytes_total").await?,
    ];
    eprintln!("20 connections: counters {before:?} -> {after:?}");
    // Each connection: at least SYN, SYN-ACK, ACK, the hello line, FINs.
    assert!(after[0] - before[0] >= 20, "{before:?} -> {after:?}");
    assert!(after[1] - before[1] >= 20 * 5, "{before:?} -> {after:?}");
    assert!(
        after[2] - before[2] >= (after[1] - before[1]) * 40,
        "{before:?} -> {after:?}"
    );

    let mut agent_b = b.agent(grpc)?;
    wait_sync("the backup's keepalived", Duration::from_secs(30), || {
        b.pid_file().is_some()
    })
    .map_err(|e| anyhow::anyhow!("{e}\n{}", agent_b.log_tail()))?;
    // The backup hears the master's adverts and stays backup.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !holds(&b.ns, VIP),
        "the backup kept the stale VIP or took it: {:?}",
        addrs(&b.ns)?
    );
    assert!(holds(&a.ns, VIP));
    let log = std::fs::read_to_string(b.dir.join("elb-agent.log"))?;
    assert!(log.contains("removed a stale VIP"), "{log}");
    // No traffic went through the backup: its counters say so.
    // (Its keepalived started after its first sync, so its model holds the VS.)
    assert_eq!(scrape(&b, "ocean_elb_vs_real_servers").await?, 1);
    assert_eq!(scrape(&b, "ocean_elb_vs_connections_total").await?, 0);

    // A second ELB: its VIP joins by a reload, not a restart.
    let ka_pid = a.pid_file();
    let r = api
        .post("/v1/elbs", &elb("pdl.web_service.second", VIP2))
        .await?;
    assert_eq!(r.status, 201, "{:?}", r.body);
    wait_sync(
        "the second VIP on the master",
        Duration::from_secs(15),
        || holds(&a.ns, VIP2),
    )?;
    assert_eq!(
        a.pid_file(),
        ka_pid,
        "keepalived restarted instead of reloading"
    );
    assert_eq!(who(&client.name, VIP2)?.as_deref(), Some("lba"));
    let r = api.delete("/v1/elbs/pdl.web_service.second").await?;
    assert!(r.is_success(), "{:?}", r.body);
    wait_sync("the second VIP gone", Duration::from_secs(15), || {
        !holds(&a.ns, VIP2)
    })?;

    // SIGKILL of the master's keepalived: the backup takes the VIP; the
    // agent starts keepalived again, which takes it back.
    let pids = keepalived_pids(&a.ns);
    assert!(!pids.is_empty());
    let killed = Instant::now();
    kill_all(&pids);
    wait_sync("the VIP on the backup", Duration::from_secs(2), || {
        holds(&b.ns, VIP)
    })?;
    eprintln!(
        "keepalived SIGKILLed: VIP on the backup after {:?}",
        killed.elapsed()
    );
    wait_sync(
        "keepalived restarted by the agent",
        Duration::from_secs(15),
        || a.pid_file().is_some_and(|p| !pids.contains(&p)) && !keepalived_pids(&a.ns).is_empty(),
    )
    .map_err(|e| anyhow::anyhow!("{e}\n{}", agent_a.log_tail()))?;
    wait_sync(
        "the VIP back on the master",
        Duration::from_secs(10),
        || holds(&a.ns, VIP) && !holds(&b.ns, VIP),
    )?;
    wait_for(
        "traffic through the master again",
        Duration::from_secs(10),
        || Ok(who(&cl, VIP)?.as_deref() == Some("lba")),
    )
    .await?;

    // SIGKILL of the master's whole agent and its keepalived: the VIP
    // moves and traffic flows through the backup (the dead keepalived
    // leaves its VIP on the master's interface: stale).
    let pids = keepalived_pids(&a.ns);
    let killed = Instant::now();
    agent_a.kill();
    kill_all(&pids);
    let took = wait_sync("the VIP on the backup", Duration::from_secs(2), || {
        holds(&b.ns, VIP)
    })?;
    eprintln!("LB agent and keepalived SIGKILLed: VIP on the backup after {took:?}");
    wait_for("traffic through the backup", Duration::from_secs(5), || {
        Ok(who(&cl, VIP)?.as_deref() == Some("lbb"))
    })
    .await?;
    eprintln!(
        "traffic through the backup {:?} after the kill",
        killed.elapsed()
    );
    assert!(
        holds(&a.ns, VIP),
        "the killed keepalived's VIP should still be there"
    );

    // The master's agent again: the stale VIP goes before its keepalived
    // runs, which then wins the VIP back.
    let removals = || -> anyhow::Result<usize> {
        Ok(std::fs::read_to_string(a.dir.join("elb-agent.log"))?
            .lines()
            .filter(|l| l.contains("removed a stale VIP") && l.contains(VIP))
            .count())
    };
    let removed_before = removals()?;
    let mut agent_a = a.agent(grpc)?;
    wait_sync(
        "the VIP back on the master",
        Duration::from_secs(30),
        || holds(&a.ns, VIP) && !holds(&b.ns, VIP),
    )
    .map_err(|e| anyhow::anyhow!("{e}\n{}", agent_a.log_tail()))?;
    assert_eq!(removals()?, removed_before + 1, "{}", agent_a.log_tail());
    wait_for(
        "traffic through the master again",
        Duration::from_secs(10),
        || Ok(who(&cl, VIP)?.as_deref() == Some("lba")),
    )
    .await?;

    // A stopped agent stops its keepalived, which drops the VIP.
    agent_a.signal(Signal::SIGTERM);
    wait_sync("the agent stopped", Duration::from_secs(15), || {
        agent_a.exited()
    })?;
    assert!(
        keepalived_pids(&a.ns).is_empty(),
        "keepalived outlived its agent"
    );
    assert!(!holds(&a.ns, VIP));
    wait_sync("the VIP on the backup", Duration::from_secs(3), || {
        holds(&b.ns, VIP)
    })?;
    wait_for("traffic through the backup", Duration::from_secs(5), || {
        Ok(who(&cl, VIP)?.as_deref() == Some("lbb"))
    })
    .await?;

    agent_b.signal(Signal::SIGTERM);
    wait_sync("the backup agent stopped", Duration::from_secs(15), || {
        agent_b.exited()
    })?;
    assert!(
        keepalived_pids(&b.ns).is_empty(),
        "keepalived outlived its agent"
    );
    Ok(())
}
