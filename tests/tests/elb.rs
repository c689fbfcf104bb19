//! The ELB data plane on the real kernel: an LB namespace programmed by
//! `ocean-elb`'s programmer with the real `nft`, backends (real processes)
//! in three namespaces, a client in another; real TCP through the VIP.
//!
//! The task records are built by the test (a task's state, health, address
//! and port, as the masters would report them) rather than run by Ocean
//! agents inside the namespaces: agents place tasks on their host's
//! address, and running one agent per namespace is left for later (see the
//! ELB section of ARCHITECTURE.md). The REST objects are tested against a
//! real master in `elb_api.rs`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ocean_client::api::{Task, TaskPort};
use ocean_elb::nft::{Nft, NftCommand};
use ocean_elb::plane::{desired, virtual_servers};
use ocean_elb::programmer::Programmer;
use ocean_elb::spec::{parse, ElbSpec};
use ocean_tests::netns::{in_netns, Netns};

const JOB: &str = "cop.x_owt.y_pdl.web_servicegroup.g_service.front_job.api_cluster.c3";
const VIP: &str = "10.99.0.10";

/// An echo server that first says its name.
const SERVER: &str = r#"
import socket, sys, threading
name = sys.argv[1].encode()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', 8080)); s.listen(4096)
def serve(c):
    try:
        c.sendall(name + b'\n')
        while True:
            d = c.recv(4096)
            if not d: break
            c.sendall(d)
    except OSError: pass
    finally: c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

struct Net {
    lb: Netns,
    client: Netns,
    backends: Vec<Netns>,
}

fn backend_addr(i: usize) -> String {
    format!("10.{}.0.2", 11 + i)
}

fn setup(n: usize) -> anyhow::Result<Net> {
    let lb = Netns::new("lb")?;
    let client = Netns::new("cl")?;
    lb.link("tocl", "10.10.0.1", &client, "eth0", "10.10.0.2")?;
    client.ip(&["route", "add", "default", "via", "10.10.0.1"])?;
    lb.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
    // The VIP is the LB's own (keepalived puts it there on the master).
    lb.ip(&["addr", "add", &format!("{VIP}/32"), "dev", "lo"])?;
    let mut backends = Vec::new();
    for i in 0..n {
        let mut b = Netns::new(&format!("b{i}"))?;
        lb.link(&format!("tob{i}"), &format!("10.{}.0.1", 11 + i), &b, "eth0", &backend_addr(i))?;
        b.ip(&["route", "add", "default", "via", &format!("10.{}.0.1", 11 + i)])?;
        b.spawn(&["python3", "-c", SERVER, &format!("b{i}")])?;
        backends.push(b);
    }
    // Wait for every server, straight from the client (routed by the LB).
    for i in 0..n {
        let addr: SocketAddr = format!("{}:8080", backend_addr(i)).parse()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if in_netns(&client.name, move || hello(addr).is_ok())? {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "backend {i} did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(Net {
        lb,
        client,
        backends,
    })
}

/// Connects and reads the server's name.
fn hello(addr: SocketAddr) -> std::io::Result<String> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line)?;
    Ok(line.trim().to_string())
}

/// `n` connections to the VIP from namespace `ns`: which server answered
/// how often, and the errors.
fn spray(ns: &str, n: usize) -> anyhow::Result<(BTreeMap<String, usize>, Vec<String>)> {
    let addr: SocketAddr = format!("{VIP}:80").parse()?;
    in_netns(ns, move || {
        let mut seen = BTreeMap::new();
        let mut errors = Vec::new();
        for _ in 0..n {
            match hello(addr) {
                Ok(name) => *seen.entry(name).or_insert(0) += 1,
                Err(e) => errors.push(e.kind().to_string()),
            }
        }
        (seen, errors)
    })
}

fn elb() -> ElbSpec {
    let yaml = format!(
        "name: pdl.web_service.front\nidc: c3\nnetwork: internal\nvips: [{VIP}]\n\
         listeners: [{{port: 80, protocol: tcp, backend_job: {JOB}, backend_port_name: http}}]\n"
    );
    parse(yaml.as_bytes()).expect("valid ELB")
}

fn task(i: usize, healthy: Option<bool>) -> Task {
    Task {
        id: format!("{JOB}.{i}"),
        job_id: JOB.into(),
        state: "RUNNING".into(),
        address: backend_addr(i),
        healthy,
        ports: vec![TaskPort {
            name: "http".into(),
            port: 8080,
        }],
        ..Default::default()
    }
}

fn sync(p: &mut Programmer, tasks: &[Task]) -> anyhow::Result<usize> {
    let elbs = [elb()];
    let vss = virtual_servers(&elbs, &|_| tasks.iter().collect());
    let plane = desired(&vss, p.installed());
    Ok(p.sync(&plane)?.changes)
}

fn listing(ns: &Netns) -> anyhow::Result<String> {
    ns.exec(&["nft", "-j", "list", "table", "ip", "ocean_elb"])
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn traffic_through_the_vip_follows_healthy_tasks() -> anyhow::Result<()> {
    let net = setup(3)?;
    let nft = || NftCommand {
        netns: Some(net.lb.name.clone()),
    };
    let mut p = Programmer::new(Box::new(nft()));
    let mut tasks = vec![task(0, Some(true)), task(1, None), task(2, Some(true))];
    assert!(sync(&mut p, &tasks)? > 0);

    // Every healthy backend gets connections; none fail.
    let (seen, errors) = spray(&net.client.name, 60)?;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(seen.keys().cloned().collect::<Vec<_>>(), names(&["b0", "b1", "b2"]));

    // The same state again: nothing sent to the kernel, byte-identical
    // table; a fresh programmer reading the kernel back agrees.
    let before = listing(&net.lb)?;
    assert_eq!(sync(&mut p, &tasks)?, 0);
    let mut fresh = Programmer::new(Box::new(nft()));
    assert_eq!(sync(&mut fresh, &tasks)?, 0, "read-back differs from what was installed");
    assert_eq!(listing(&net.lb)?, before);

    // An established connection to b1 survives b1 leaving the rotation.
    let addr: SocketAddr = format!("{VIP}:80").parse()?;
    let held = in_netns(&net.client.name, move || -> anyhow::Result<TcpStream> {
        for _ in 0..50 {
            let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            let mut buf = [0u8; 3];
            (&s).read_exact(&mut buf)?;
            if &buf == b"b1\n" {
                return Ok(s);
            }
        }
        anyhow::bail!("never reached b1")
    })??;
    tasks[1].healthy = Some(false);
    assert!(sync(&mut p, &tasks)? > 0);
    let (seen, errors) = spray(&net.client.name, 60)?;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(seen.keys().cloned().collect::<Vec<_>>(), names(&["b0", "b2"]));
    (&held).write_all(b"still here\n")?;
    let mut echo = String::new();
    BufReader::new(&held).read_line(&mut echo)?;
    assert_eq!(echo, "still here\n", "the drained connection was cut");
    drop(held);

    // A new task joins (b1 healthy again).
    tasks[1].healthy = Some(true);
    sync(&mut p, &tasks)?;
    let (seen, _) = spray(&net.client.name, 60)?;
    assert_eq!(seen.len(), 3);

    // Hairpin: a backend reaching the VIP gets an answer (masquerade).
    let (seen, errors) = spray(&net.backends[0].name, 30)?;
    assert!(errors.is_empty(), "hairpin: {errors:?}");
    assert_eq!(seen.values().sum::<usize>(), 30);

    // No healthy backend: refused at once (RST), not a timeout.
    for t in &mut tasks {
        t.healthy = Some(false);
    }
    sync(&mut p, &tasks)?;
    let start = Instant::now();
    let (seen, errors) = spray(&net.client.name, 5)?;
    assert!(seen.is_empty());
    assert_eq!(errors, vec!["connection refused"; 5]);
    assert!(start.elapsed() < Duration::from_secs(1), "{:?}", start.elapsed());
    Ok(())
}

#[test]
fn a_failed_transaction_leaves_the_previous_state() -> anyhow::Result<()> {
    let net = setup(1)?;
    let nft = NftCommand {
        netns: Some(net.lb.name.clone()),
    };
    let mut p = Programmer::new(Box::new(nft.clone()));
    sync(&mut p, &[task(0, Some(true))])?;
    let before = listing(&net.lb)?;
    // A valid change followed by one the kernel refuses (a map element
    // whose key has no slot part): nothing of it may land.
    let bad = format!(
        "delete element ip ocean_elb rs_addrs {{ {} }}\nadd element ip ocean_elb slots {{ {VIP} . tcp . 80 : 10.1.1.1 . 80 }}\n",
        backend_addr(0)
    );
    assert!(nft.apply(&bad).is_err());
    assert_eq!(listing(&net.lb)?, before);
    // And traffic still flows.
    let (seen, errors) = spray(&net.client.name, 5)?;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(seen.get("b0"), Some(&5));
    Ok(())
}
