//! Helpers for the mysql framework's tests and benchmark: a master hosting
//! it with agents and a DNS server, databases through the REST API, the
//! primary found through Ocean's DNS, and a writer that records every
//! acknowledged commit.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hickory_proto::rr::RecordType;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};
use serde_json::{json, Value};

use crate::dns::{addrs, ask, srvs, DnsProc};
use crate::http::Api;
use crate::tasks::wait_connected;
use crate::{AgentProc, Cluster};

/// mariadbd and mariadb-install-db must be there; in CI their absence
/// fails the test.
pub fn have_mariadb() -> bool {
    let ok = [
        "/usr/sbin/mariadbd",
        "/usr/bin/mariadb-install-db",
        "/usr/bin/mariadb",
    ]
    .iter()
    .all(|p| std::path::Path::new(p).exists());
    if !ok && std::env::var_os("CI").is_some() {
        panic!("mariadb-server is missing (scripts/test.sh installs it)");
    }
    ok
}

/// A master hosting the mysql framework, agents `host-<name>` and a DNS
/// server following the master.
pub async fn start(agents: &[&str]) -> anyhow::Result<(Cluster, Vec<AgentProc>, DnsProc)> {
    let at: Vec<(&str, &str)> = agents.iter().map(|a| (*a, "127.0.0.1")).collect();
    start_at(&at).await
}

/// [`start`] with each agent `(name, address)` reporting its own address
/// (a loopback address of its own stands for a host's: tasks' grants are
/// by the address their agent reports).
pub async fn start_at(
    agents: &[(&str, &str)],
) -> anyhow::Result<(Cluster, Vec<AgentProc>, DnsProc)> {
    let c = Cluster::start(1, &["--frameworks", "mysql"])?;
    c.wait_leader(&[1], Duration::from_secs(15)).await?;
    let mut out = Vec::new();
    for (name, address) in agents {
        let host = format!("host-{name}");
        let mut a = c.new_agent(
            name,
            &[
                "--hostname",
                &host,
                "--address",
                address,
                "--resources",
                "cpus=4,mem=4096,disk=50000",
            ],
        );
        a.start()?;
        out.push(a);
    }
    wait_connected(&c.master(1).api(), agents.len(), Duration::from_secs(20)).await?;
    let mut dns = DnsProc::new(c.dir(), "dns", &[c.master(1).grpc], &[]);
    dns.start()?;
    Ok((c, out, dns))
}

/// The body of `POST /v1/databases` for `name` (cluster `qa`, product line
/// `browser`).
pub fn spec(name: &str, instances: u32) -> Value {
    json!({"name": name, "cluster": "qa", "product_line": "browser", "department": "miui",
           "full_name": format!("/miui/browser/{name}"), "template": "mysql-general",
           "instances": instances})
}

/// Creates a database; fails unless the API answers 201. Returns its detail.
pub async fn create_database(api: &Api, name: &str, instances: u32) -> anyhow::Result<Value> {
    let r = api.post("/v1/databases", &spec(name, instances)).await?;
    if r.status != 201 {
        bail!("create database {name}: {} {}", r.status, r.body);
    }
    Ok(r.body)
}

/// `GET /v1/databases/{name}`.
pub async fn database(api: &Api, name: &str) -> anyhow::Result<Value> {
    Ok(api.get(&format!("/v1/databases/{name}")).await?.body)
}

/// Waits until `pred` holds of the database's detail; returns it.
pub async fn wait_database(
    api: &Api,
    name: &str,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let d = database(api, name).await?;
        if pred(&d) {
            return Ok(d);
        }
        if Instant::now() > deadline {
            bail!("{what}: not within {timeout:?}; database now {d:#}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A database whose primary and `instances - 1` replicas are in place.
pub fn healthy(instances: usize) -> impl Fn(&Value) -> bool {
    move |d: &Value| {
        let ns = nodes(d);
        let roles: Vec<&str> = ns.iter().filter_map(|n| n["role"].as_str()).collect();
        d["state"] == "ok"
            && roles.iter().filter(|r| **r == "primary").count() == 1
            && roles.iter().filter(|r| **r == "replica").count() + 1 == instances
    }
}

/// The instances in a database's detail.
pub fn nodes(d: &Value) -> Vec<Value> {
    d["status"]["nodes"].as_array().cloned().unwrap_or_default()
}

/// The `ip:port` of the node with `role` (the first).
pub fn addr_of(d: &Value, role: &str) -> Option<String> {
    nodes(d)
        .into_iter()
        .find(|n| n["role"] == role)
        .and_then(|n| n["addr"].as_str().map(String::from))
}

/// The primary's `ip:port` as Ocean's DNS serves it now:
/// `_mysql._tcp.primary.<db>.browser.qa.ocean` SRV, then its target's A.
pub async fn resolve_primary(dns: SocketAddr, db: &str) -> Option<String> {
    let name = format!("_mysql._tcp.primary.{db}.browser.qa.ocean");
    let m = ask(dns, &name, RecordType::SRV, false).await.ok()?;
    let (port, target) = srvs(&m).into_iter().next()?;
    let a = ask(dns, &target, RecordType::A, false).await.ok()?;
    let ip = addrs(&a).into_iter().next()?;
    Some(format!("{ip}:{port}"))
}

/// A connection to `addr` as `user`, bounded by `timeout`.
pub async fn connect(
    addr: &str,
    user: &str,
    password: &str,
    timeout: Duration,
) -> anyhow::Result<Conn> {
    let (ip, port) = addr.rsplit_once(':').context("ip:port")?;
    let opts = OptsBuilder::default()
        .ip_or_hostname(ip)
        .tcp_port(port.parse()?)
        .user(Some(user))
        .pass(Some(password))
        .prefer_socket(false);
    tokio::time::timeout(timeout, Conn::new(opts))
        .await
        .with_context(|| format!("connect to {addr} timed out"))?
        .with_context(|| format!("connect to {addr} as {user}"))
}

/// The application's credentials from a database's detail.
pub fn app_password(d: &Value) -> String {
    d["credentials"]["password"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// What a writer saw.
#[derive(Debug, Default)]
pub struct Writes {
    /// Ids whose INSERT was acknowledged (committed and acked to us).
    pub acked: Vec<u64>,
    /// When each write was acknowledged.
    pub at: Vec<Instant>,
}

/// Inserts `first`, `first + 1`, ... into `app.acks` through whatever address DNS
/// gives for the primary, reconnecting (and re-resolving) after any
/// error, until `stop`. A write whose outcome is unknown (an error or a
/// timeout) is not counted as acknowledged.
pub async fn write_load(
    dns: SocketAddr,
    db: String,
    password: String,
    first: u64,
    stop: Arc<AtomicBool>,
) -> Writes {
    let mut w = Writes::default();
    let mut conn: Option<Conn> = None;
    let mut next = first;
    while !stop.load(Ordering::Relaxed) {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => {
                let Some(addr) = resolve_primary(dns, &db).await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                match connect(&addr, "app", &password, Duration::from_secs(1)).await {
                    Ok(c) => conn.insert(c),
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                }
            }
        };
        let id = next;
        next += 1;
        let r = tokio::time::timeout(
            Duration::from_secs(2),
            c.query_drop(format!("INSERT INTO app.acks (id) VALUES ({id})")),
        )
        .await;
        match r {
            Ok(Ok(())) => {
                w.acked.push(id);
                w.at.push(Instant::now());
            }
            _ => conn = None,
        }
    }
    w
}

/// The acknowledged ids missing from `app.acks` at `addr`.
pub async fn missing(addr: &str, password: &str, acked: &[u64]) -> anyhow::Result<Vec<u64>> {
    let mut c = connect(addr, "app", password, Duration::from_secs(2)).await?;
    let have: Vec<u64> = c.query("SELECT id FROM app.acks WHERE id > 0").await?;
    let have: std::collections::BTreeSet<u64> = have.into_iter().collect();
    Ok(acked
        .iter()
        .copied()
        .filter(|i| !have.contains(i))
        .collect())
}

/// Waits until a write through DNS is acknowledged (creating `app.acks`
/// if needed, then inserting a negative id of its own); the time it took.
pub async fn wait_writable(
    dns: SocketAddr,
    db: &str,
    password: &str,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let mut last = String::from("no primary in DNS yet");
    while t.elapsed() < timeout {
        if let Some(addr) = resolve_primary(dns, db).await {
            match connect(&addr, "app", password, Duration::from_secs(1)).await {
                Ok(mut c) => {
                    let r = tokio::time::timeout(
                        Duration::from_secs(2),
                        async {
                            c.query_drop(
                                "CREATE TABLE IF NOT EXISTS app.acks (id BIGINT PRIMARY KEY) ENGINE=InnoDB",
                            )
                            .await?;
                            let probe = std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .map(|d| d.as_nanos() as i64)
                                .unwrap_or(1);
                            c.query_drop(format!("INSERT INTO app.acks (id) VALUES ({})", -probe))
                                .await
                        },
                    )
                    .await;
                    match r {
                        Ok(Ok(())) => return Ok(t.elapsed()),
                        Ok(Err(e)) => last = e.to_string(),
                        Err(_) => last = "write timed out".into(),
                    }
                }
                Err(e) => last = format!("{e:#}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bail!("{db}: not writable through DNS within {timeout:?}: {last}")
}
