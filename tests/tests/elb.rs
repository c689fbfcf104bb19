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

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ocean_client::api::{Task, TaskPort};
use ocean_elb::nft::{Nft, NftCommand};
use ocean_elb::nft_lib::NftLib;
use ocean_elb::plane::{desired, virtual_servers};
use ocean_elb::programmer::Programmer;
use ocean_elb::spec::{parse, ElbSpec};
use ocean_tests::elb_net::{backend_addr, setup, spray, VIP};
use ocean_tests::netns::{in_netns, Netns};

const JOB: &str = "cop.x_owt.y_pdl.web_servicegroup.g_service.front_job.api_cluster.c3";

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
    let net = setup(3, true)?;
    // The agent's path (libnftables in process) programs; the `nft`
    // binary reads back below, so the two must agree.
    let mut p = Programmer::new(Box::new(NftLib::open(Some(&net.lb.name))?));
    let nft = || NftCommand {
        netns: Some(net.lb.name.clone()),
    };
    let mut tasks = vec![task(0, Some(true)), task(1, None), task(2, Some(true))];
    assert!(sync(&mut p, &tasks)? > 0);

    // Every healthy backend gets connections; none fail.
    let (seen, errors) = spray(&net.client.name, 60)?;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        seen.keys().cloned().collect::<Vec<_>>(),
        names(&["b0", "b1", "b2"])
    );

    // The same state again: nothing sent to the kernel, byte-identical
    // table; a fresh programmer reading the kernel back agrees.
    let before = listing(&net.lb)?;
    assert_eq!(sync(&mut p, &tasks)?, 0);
    let mut fresh = Programmer::new(Box::new(nft()));
    assert_eq!(
        sync(&mut fresh, &tasks)?,
        0,
        "read-back differs from what was installed"
    );
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
    assert_eq!(
        seen.keys().cloned().collect::<Vec<_>>(),
        names(&["b0", "b2"])
    );
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
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    Ok(())
}

#[test]
fn a_failed_transaction_leaves_the_previous_state() -> anyhow::Result<()> {
    let net = setup(1, true)?;
    let binary = NftCommand {
        netns: Some(net.lb.name.clone()),
    };
    let library = NftLib::open(Some(&net.lb.name))?;
    let mut p = Programmer::new(Box::new(binary.clone()));
    sync(&mut p, &[task(0, Some(true))])?;
    let before = listing(&net.lb)?;
    // A valid change followed by one nft refuses (a slot element whose
    // key is a VS key, not an id and a slot): nothing of it may land,
    // through the binary or the library.
    let bad = format!(
        "delete element ip ocean_elb rs_addrs {{ {} }}\nadd element ip ocean_elb slots {{ {VIP} . tcp . 80 : 10.1.1.1 . 80 }}\n",
        backend_addr(0)
    );
    let nfts: [&dyn Nft; 2] = [&binary, &library];
    for nft in nfts {
        let refused = nft.apply(&bad);
        assert!(refused.is_err(), "{nft:?} took a bad script");
        assert_eq!(listing(&net.lb)?, before);
    }
    // The library's refusal carries nft's own words.
    let Err(e) = library.apply(&bad) else {
        anyhow::bail!("the library took a bad script")
    };
    assert!(e.to_string().contains("Error"), "{e}");
    // And traffic still flows.
    let (seen, errors) = spray(&net.client.name, 5)?;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(seen.get("b0"), Some(&5));
    Ok(())
}

/// Two listeners of one ELB, each its own VS and job, on the backends'
/// echo port: `80` → job 0 (b0), `81` → job 1 (b1).
fn two_vs() -> ElbSpec {
    let yaml = format!(
        "name: pdl.web_service.front\nidc: c3\nnetwork: internal\nvips: [{VIP}]\n\
         listeners: [{{port: 80, protocol: tcp, backend_job: {JOB}0, backend_port_name: http}},\n\
         {{port: 81, protocol: tcp, backend_job: {JOB}1, backend_port_name: http}}]\n"
    );
    parse(yaml.as_bytes()).expect("valid ELB")
}

#[test]
fn a_restarted_programmer_keeps_the_vs_ids_and_changes_nothing() -> anyhow::Result<()> {
    let net = setup(2, true)?;
    let elbs = [two_vs()];
    let tasks_of = |healthy: [bool; 2]| -> Vec<Task> {
        (0..2)
            .map(|i| Task {
                job_id: format!("{JOB}{i}"),
                id: format!("{JOB}{i}.0"),
                ..task(i, Some(healthy[i]))
            })
            .collect()
    };
    let sync_with = |p: &mut Programmer, tasks: &[Task]| -> anyhow::Result<usize> {
        let vss = virtual_servers(&elbs, &|job| {
            tasks.iter().filter(|t| t.job_id == job).collect()
        });
        let plane = desired(&vss, p.installed());
        Ok(p.sync(&plane)?.changes)
    };
    let key = |port: u16| ocean_elb::plane::VsKey {
        vip: VIP.parse().expect("an address"),
        proto: ocean_elb::spec::Protocol::Tcp,
        port,
    };
    let mut p = Programmer::new(Box::new(NftLib::open(Some(&net.lb.name))?));
    // Port 81 is served first and takes id 1; port 80 joins later and
    // takes 2: ids out of key order, as a long-running agent has them.
    sync_with(&mut p, &tasks_of([false, true]))?;
    let tasks = tasks_of([true, true]);
    assert!(sync_with(&mut p, &tasks)? > 0);
    assert_eq!(
        (p.ids().get(&key(80)), p.ids().get(&key(81))),
        (Some(2), Some(1))
    );
    let before = listing(&net.lb)?;
    assert!(
        before.contains(r#""0.0.0.2""#),
        "ids as addresses: {before}"
    );

    // The agent restarts: a fresh programmer reads the table (and its
    // ids) back and has nothing to do; the kernel is byte-identical.
    let mut again = Programmer::new(Box::new(NftLib::open(Some(&net.lb.name))?));
    assert_eq!(
        sync_with(&mut again, &tasks)?,
        0,
        "a restart changed the table"
    );
    assert_eq!(again.ids(), p.ids());
    assert_eq!(listing(&net.lb)?, before);

    // Traffic through both VS, from the client and from the LB host
    // itself (its own connections take the output hook).
    for ns in [&net.client.name, &net.lb.name] {
        let (seen, errors) = spray(ns, 10)?;
        assert!(errors.is_empty(), "{ns}: {errors:?}");
        assert_eq!(seen.get("b0"), Some(&10), "{ns}: {seen:?}");
        let b1: SocketAddr = format!("{VIP}:81").parse()?;
        let name = in_netns(ns, move || ocean_tests::elb_net::hello(b1))??;
        assert_eq!(name, "b1");
    }

    // A change after the restart is the minimal diff: b1 leaves VS 81
    // (its service, id, slot, address out; the empty entry in), and
    // VS 80 keeps id 2.
    assert_eq!(sync_with(&mut again, &tasks_of([true, false]))?, 5);
    assert_eq!(again.ids().get(&key(80)), Some(2));
    assert_eq!(again.ids().get(&key(81)), None);
    let (seen, errors) = spray(&net.client.name, 5)?;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(seen.get("b0"), Some(&5));
    Ok(())
}

/// `vs` virtual servers of 20 real servers each on VIPs 10.98.x.y:80,
/// plus the test VIP's VS on backend 0.
fn many(vs: u32) -> Vec<ocean_elb::plane::VirtualServer> {
    use ocean_elb::plane::{RealServer, VirtualServer, VsKey};
    use ocean_elb::spec::{Algorithm, Protocol};
    let server = |addr: std::net::Ipv4Addr| (RealServer { addr, port: 8080 }, 1);
    let key = |vip: std::net::Ipv4Addr| VsKey {
        vip,
        proto: Protocol::Tcp,
        port: 80,
    };
    let mut out = vec![VirtualServer {
        key: key(VIP.parse().expect("an address")),
        elb: "pdl.web_service.front".into(),
        algorithm: Algorithm::Rr,
        real_servers: vec![server(backend_addr(0).parse().expect("an address"))],
    }];
    for v in 0..vs {
        out.push(VirtualServer {
            key: key(std::net::Ipv4Addr::new(
                10,
                98,
                (v / 256) as u8,
                (v % 256) as u8,
            )),
            elb: format!("pdl.web_service.s{v}"),
            algorithm: Algorithm::Rr,
            real_servers: (0..20)
                .map(|r| server(std::net::Ipv4Addr::from(0x0a60_0000 + v * 20 + r)))
                .collect(),
        });
    }
    out
}

#[test]
fn a_programmer_killed_mid_apply_leaves_the_old_table_or_the_new() -> anyhow::Result<()> {
    use std::process::{Command, Stdio};
    use std::time::Instant;

    let net = setup(1, true)?;
    let mut p = Programmer::new(Box::new(NftCommand {
        netns: Some(net.lb.name.clone()),
    }));
    let old = desired(&many(0), None);
    let new = desired(&many(1_000), None);
    p.sync(&old)?;
    let read = || -> anyhow::Result<ocean_elb::nft_read::Installed> {
        let json = listing(&net.lb)?;
        ocean_elb::nft_read::parse_installed(&json)?
            .ok_or_else(|| anyhow::anyhow!("the table reads as another shape: mixed?"))
    };
    let ids = read()?.ids;
    // The change a programmer would send: 1,000 VS and their 20,000
    // slots, ids and addresses added to the installed table.
    let script = ocean_elb::nft_script::script(Some((&old, &ids)), &new);
    assert!(!script.full && script.changes > 40_000);
    let (mut kept, mut landed) = (0, 0);
    for delay_ms in [5u64, 30, 80, 150, 250, 400] {
        // The programmer's `nft -f` process, killed outright after `delay`.
        let mut child = Command::new("ip")
            .args(["netns", "exec", &net.lb.name, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut stdin = child.stdin.take().expect("piped");
        let text = script.text.clone();
        let writer = std::thread::spawn(move || {
            // A broken pipe is what a kill mid-write gives.
            let _ = stdin.write_all(text.as_bytes());
        });
        let start = Instant::now();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        child.wait()?;
        let _ = writer.join();
        let now = read()?;
        if now.plane == old {
            kept += 1;
        } else if now.plane == new {
            landed += 1;
            // Back to the old state for the next round.
            p.refresh()?;
            p.sync(&old)?;
        } else {
            anyhow::bail!("killed after {:?}: neither old nor new", start.elapsed());
        }
        // The old VS still serves.
        let (seen, errors) = spray(&net.client.name, 3)?;
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(seen.get("b0"), Some(&3));
    }
    eprintln!("kills mid-apply: {kept} left the old table, {landed} came after the commit");
    // Some kills came before the end of the transaction, or this proved
    // nothing.
    assert!(
        kept > 0,
        "every apply finished before its kill ({landed} landed)"
    );
    Ok(())
}

/// A UDP echo server (`b0:` + the datagram) on port 8080.
const UDP_ECHO: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('0.0.0.0', 8080))
while True:
    d, a = s.recvfrom(4096)
    s.sendto(b'b0:' + d, a)
"#;

#[test]
fn udp_through_the_vip_reaches_the_real_server_and_answers() -> anyhow::Result<()> {
    use std::net::UdpSocket;

    let mut net = setup(1, false)?;
    net.backends[0].spawn(&["python3", "-c", UDP_ECHO])?;
    let yaml = format!(
        "name: pdl.web_service.dns\nidc: c3\nnetwork: internal\nvips: [{VIP}]\n\
         listeners: [{{port: 53, protocol: udp, backend_job: {JOB}, backend_port_name: http}}]\n"
    );
    let elbs = [parse(yaml.as_bytes()).expect("valid ELB")];
    let tasks = [task(0, Some(true))];
    let vss = virtual_servers(&elbs, &|_| tasks.iter().collect());
    let mut p = Programmer::new(Box::new(NftLib::open(Some(&net.lb.name))?));
    p.sync(&desired(&vss, None))?;
    // The id rewrite and the DNAT keep the UDP checksum right (a wrong
    // one is dropped silently), from a client and from the LB host.
    let vip: SocketAddr = format!("{VIP}:53").parse()?;
    for ns in [&net.client.name, &net.lb.name] {
        let answer = in_netns(ns, move || -> anyhow::Result<String> {
            let s = UdpSocket::bind("0.0.0.0:0")?;
            s.set_read_timeout(Some(Duration::from_millis(500)))?;
            let mut buf = [0u8; 64];
            // The server may still be starting: a few tries.
            for _ in 0..20 {
                s.send_to(b"hi", vip)?;
                if let Ok((n, from)) = s.recv_from(&mut buf) {
                    anyhow::ensure!(from == vip, "answered from {from}");
                    return Ok(String::from_utf8_lossy(&buf[..n]).into_owned());
                }
            }
            anyhow::bail!("no answer through {vip}")
        })??;
        assert_eq!(answer, "b0:hi", "{ns}");
    }
    Ok(())
}
