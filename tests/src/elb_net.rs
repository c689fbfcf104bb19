//! The ELB tests' network: an LB namespace, a client namespace and backend
//! namespaces, linked by veth pairs made inside the LB namespace; the VIP
//! is the LB's own address. Everything is removed when the [`Net`] drops.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use std::path::Path;

use crate::cluster::Process;
use crate::netns::{in_netns, Netns};

/// The VIP every ELB test uses (inside its own namespaces).
pub const VIP: &str = "10.99.0.10";

/// An echo server that first says its name (`argv[1]`), on port
/// `argv[2]`; with `argv[3]`, it creates that file once it listens (what a
/// health check can wait for).
pub const SERVER: &str = r#"
import socket, sys, threading
name = sys.argv[1].encode()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', int(sys.argv[2]))); s.listen(4096)
if len(sys.argv) > 3: open(sys.argv[3], 'w').close()
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

/// The namespaces of one test.
#[derive(Debug)]
pub struct Net {
    /// The LB: the VIP is its own, it forwards between the others.
    pub lb: Netns,
    /// The client.
    pub client: Netns,
    /// The backends, `10.(11+i).0.2`.
    pub backends: Vec<Netns>,
}

impl Net {
    /// `ocean elb agent` programming the LB namespace from the master at
    /// `grpc`, logging into `dir`.
    pub fn lb_agent(&self, dir: &Path, grpc: SocketAddr) -> anyhow::Result<Process> {
        let mut p = Process::new(dir.join("elb-agent.log"));
        p.spawn(&[
            "elb".into(),
            "agent".into(),
            "--master".into(),
            grpc.to_string().into(),
            "--netns".into(),
            self.lb.name.clone().into(),
        ])?;
        Ok(p)
    }
}

/// Backend i's address.
pub fn backend_addr(i: usize) -> String {
    format!("10.{}.0.2", 11 + i)
}

/// Starts `n` agents `b0..` of `cluster`, each announcing backend `i`'s
/// address (its tasks serve from that backend's namespace), with the flags
/// `extra(i)` adds (`--attr slot=s{i}`, `--hostname b{i}`, ...).
pub fn backend_agents(
    cluster: &crate::Cluster,
    n: usize,
    extra: impl Fn(usize) -> Vec<String>,
) -> anyhow::Result<Vec<crate::AgentProc>> {
    let mut agents = Vec::new();
    for i in 0..n {
        let mut args = extra(i);
        args.extend([
            "--address".to_string(),
            backend_addr(i),
            "--http".into(),
            "127.0.0.1:0".into(),
            "--no-docker".into(),
        ]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut a = cluster.new_agent(&format!("b{i}"), &refs);
        a.start()?;
        agents.push(a);
    }
    Ok(agents)
}

/// The LB, a client and `n` backends; with `servers`, an echo server
/// (`SERVER`) on port 8080 in each backend.
pub fn setup(n: usize, servers: bool) -> anyhow::Result<Net> {
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
        lb.link(
            &format!("tob{i}"),
            &format!("10.{}.0.1", 11 + i),
            &b,
            "eth0",
            &backend_addr(i),
        )?;
        b.ip(&[
            "route",
            "add",
            "default",
            "via",
            &format!("10.{}.0.1", 11 + i),
        ])?;
        if servers {
            b.spawn(&["python3", "-c", SERVER, &format!("b{i}"), "8080"])?;
        }
        backends.push(b);
    }
    // Wait for every server, straight from the client (routed by the LB).
    for i in (0..n).filter(|_| servers) {
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

/// Polls `f` every 100 ms until it holds; how long it took, or an error
/// naming `what` after `timeout`.
pub async fn wait_for(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    loop {
        if f()? {
            return Ok(start.elapsed());
        }
        anyhow::ensure!(start.elapsed() < timeout, "{what}: not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Connects and reads the server's name.
pub fn hello(addr: SocketAddr) -> std::io::Result<String> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line)?;
    Ok(line.trim().to_string())
}

/// `n` connections to the VIP from namespace `ns`: which server answered
/// how often, and the errors.
pub fn spray(ns: &str, n: usize) -> anyhow::Result<(BTreeMap<String, usize>, Vec<String>)> {
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

/// Whether keepalived is installed; in CI its absence is a failure (the
/// test script installs it), elsewhere the test says it skips.
pub fn need_keepalived() -> bool {
    if std::process::Command::new("keepalived")
        .arg("--version")
        .output()
        .is_ok()
    {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "keepalived is not installed (scripts/deps.sh)"
    );
    eprintln!("skipping: keepalived is not installed");
    false
}

/// Polls `f` every 20 ms (blocking: for tests timing a failover to the
/// millisecond off the async runtime); how long it took to hold.
pub fn wait_sync(
    what: &str,
    timeout: std::time::Duration,
    mut f: impl FnMut() -> bool,
) -> anyhow::Result<std::time::Duration> {
    let start = std::time::Instant::now();
    while !f() {
        anyhow::ensure!(start.elapsed() < timeout, "{what}: not within {timeout:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(start.elapsed())
}
