//! Master configuration: flags and an optional TOML file map onto
//! [`MasterConfig`]; defaults make `ocean dev` work with no file at all.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};

/// One master's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MasterConfig {
    /// This master's raft id (non-zero, unique in the cluster).
    pub id: u64,
    /// Where RocksDB keeps the raft log, hard state and the cluster state.
    pub data_dir: PathBuf,
    /// REST+JSON listen address.
    #[serde(default = "default_http")]
    pub http: SocketAddr,
    /// gRPC listen address (client API and master-to-master raft traffic).
    #[serde(default = "default_grpc")]
    pub grpc: SocketAddr,
    /// The initial cluster: raft id -> gRPC address of every master,
    /// including this one. Used only to bootstrap an empty data dir. In
    /// TOML either a table `{ 1 = "host:port", ... }` or the flag's form
    /// `"1=host:port,2=host:port"`.
    #[serde(default, deserialize_with = "deserialize_peers")]
    pub peers: BTreeMap<u64, String>,
    /// gRPC addresses of running masters to ask to add this one. When set and
    /// the data dir is empty, the master starts empty and waits for the
    /// leader's snapshot instead of bootstrapping.
    #[serde(default)]
    pub join: Vec<String>,
    /// Address other masters and clients should use for this master's REST
    /// API (defaults to `http`).
    #[serde(default)]
    pub advertise_http: Option<String>,
    /// Address other masters should use for this master's gRPC API (defaults
    /// to this master's entry in `peers`, else `grpc`).
    #[serde(default)]
    pub advertise_grpc: Option<String>,
    /// Raft settings.
    #[serde(default)]
    pub raft: RaftSettings,
    /// Placement settings the leader uses.
    #[serde(default)]
    pub scheduler: SchedulerSettings,
    /// The zone `ocean dns` serves, for the `dns_name` the API shows for a
    /// job (give it the same `--domain` as the DNS servers).
    #[serde(default = "default_dns_domain")]
    pub dns_domain: String,
    /// Agent heartbeats and when a silent agent counts as unreachable.
    #[serde(default)]
    pub agents: AgentSettings,
    /// Access control (tokens and policies on service-tree nodes).
    #[serde(default)]
    pub acl: AclSettings,
    /// Listen address of the master-to-master listener (raft messages and
    /// writes forwarded to the leader). Unset: they share the gRPC
    /// listener, as before. Required with `tls`: then it is mTLS-only.
    #[serde(default)]
    pub raft_addr: Option<SocketAddr>,
    /// Every master's raft listener, `ID=HOST:PORT` like `peers`: where
    /// raft traffic goes when `raft_addr` is set (a master that joins later
    /// announces its own). With `raft_addr`, `--join` names raft listeners.
    #[serde(default, deserialize_with = "deserialize_peers")]
    pub raft_peers: BTreeMap<u64, String>,
    /// Address other masters reach this one's raft listener at (defaults to
    /// this master's entry in `raft_peers`, else `raft_addr`).
    #[serde(default)]
    pub advertise_raft: Option<String>,
    /// Certificates (`ocean tls cert --role master`): the gRPC listener
    /// serves TLS and agents must present their own agent certificate; the
    /// raft listener takes only master certificates.
    #[serde(default)]
    pub tls: Option<TlsSettings>,
}

/// A master's certificate, its key and the cluster's CA.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// This master's certificate (PEM, role master).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// The CA's certificate (PEM): peers' and agents' certificates must
    /// chain to it.
    pub ca: PathBuf,
    /// Serve the REST API (and the dashboard) over HTTPS with the same
    /// certificate. Off by default so existing HTTP clients keep working;
    /// with it, clients must trust the CA (`ocean --ca-cert`).
    #[serde(default)]
    pub http: bool,
}

impl TlsSettings {
    /// The files of `ocean tls cert --out DIR`.
    pub fn from_dir(dir: &std::path::Path) -> Self {
        let f = ocean_tls::TlsFiles::from_dir(dir);
        TlsSettings {
            cert: f.cert,
            key: f.key,
            ca: f.ca,
            http: false,
        }
    }

    /// The same as [`ocean_tls::TlsFiles`].
    pub fn files(&self) -> ocean_tls::TlsFiles {
        ocean_tls::TlsFiles {
            cert: self.cert.clone(),
            key: self.key.clone(),
            ca: self.ca.clone(),
        }
    }
}

/// Access control. Off by default, so `ocean dev` and existing clusters
/// work without tokens; every master of a cluster should be given the same.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AclSettings {
    /// Require a token on every API request (REST, gRPC, SSE, dashboard)
    /// and check its rights in the service layer.
    #[serde(default)]
    pub enabled: bool,
    /// A secret this process's own components present (the DNS server
    /// `ocean dev` embeds): it acts as the cluster itself. Made fresh by
    /// the process, never read from a file, never stored or replicated.
    #[serde(skip)]
    pub local_secret: ocean_client::Secret,
}

fn default_dns_domain() -> String {
    ocean_spec::dns::DEFAULT_DOMAIN.to_string()
}

/// How often agents send heartbeats, and how long the leader waits for one
/// before it declares the agent unreachable and replaces its tasks. Read
/// by whichever master leads.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AgentSettings {
    /// Interval between an agent's heartbeats (told to the agent when it
    /// registers).
    #[serde(default = "default_heartbeat_interval_ms")]
    pub heartbeat_interval_ms: u64,
    /// Silence after which an agent is unreachable: its tasks become LOST
    /// and are replaced (or wait, per their job's `unreachable_strategy`).
    /// At least twice the interval.
    #[serde(default = "default_heartbeat_timeout_ms")]
    pub heartbeat_timeout_ms: u64,
}

fn default_heartbeat_interval_ms() -> u64 {
    500
}
fn default_heartbeat_timeout_ms() -> u64 {
    2_500
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            heartbeat_interval_ms: default_heartbeat_interval_ms(),
            heartbeat_timeout_ms: default_heartbeat_timeout_ms(),
        }
    }
}

impl AgentSettings {
    /// The interval as a duration.
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }

    /// The timeout as a duration.
    pub fn heartbeat_timeout(&self) -> Duration {
        Duration::from_millis(self.heartbeat_timeout_ms)
    }
}

/// Cluster-wide placement settings: fair share between product lines and
/// quotas on service-tree nodes. Read by whichever master leads, so every
/// master should be given the same.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SchedulerSettings {
    /// Weight of each product line (`cop.<c>_owt.<o>_pdl.<p>`) in weighted
    /// dominant-resource fairness; unnamed product lines weigh 1.
    #[serde(default)]
    pub pdl_weights: BTreeMap<String, f64>,
    /// Caps on what the tasks under a service-tree node may hold.
    #[serde(default)]
    pub quotas: Vec<QuotaSetting>,
}

/// One quota: the tasks of every job under `node` (an id prefix ending at a
/// tag boundary, e.g. `cop.example_owt.dev_pdl.demo`) hold at most `cpus`
/// and `mem` MiB together; tasks over it wait with the quota as the reason.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QuotaSetting {
    /// The service-tree node.
    pub node: String,
    /// Most cpus.
    #[serde(default)]
    pub cpus: Option<f64>,
    /// Most memory, MiB.
    #[serde(default)]
    pub mem: Option<u64>,
}

/// Timing and log-compaction settings of the raft driver.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaftSettings {
    /// Length of one raft tick in milliseconds.
    #[serde(default = "default_tick_ms")]
    pub tick_ms: u64,
    /// Ticks without a heartbeat before a follower campaigns; the actual
    /// timeout is randomised in [election_ticks, 2 * election_ticks).
    #[serde(default = "default_election_ticks")]
    pub election_ticks: usize,
    /// Ticks between leader heartbeats.
    #[serde(default = "default_heartbeat_ticks")]
    pub heartbeat_ticks: usize,
    /// Applied entries kept in the log before it is compacted behind a
    /// snapshot.
    #[serde(default = "default_snapshot_entries")]
    pub snapshot_entries: u64,
    /// fsync every write batch of the raft log (turn off only for tests of
    /// something else; durability depends on it).
    #[serde(default = "default_true")]
    pub fsync: bool,
    /// New writes are refused (507 disk_full) while the data dir's
    /// filesystem has less than this many MiB free, so that raft and
    /// RocksDB keep room for what they already accepted: a raft log write
    /// that fails for space stops the master (0: no reserve).
    #[serde(default = "default_min_free_disk_mib")]
    pub min_free_disk_mib: u64,
}

fn default_http() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7700))
}
fn default_grpc() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7701))
}
fn default_tick_ms() -> u64 {
    50
}
fn default_election_ticks() -> usize {
    5
}
fn default_heartbeat_ticks() -> usize {
    1
}
fn default_snapshot_entries() -> u64 {
    10_000
}
fn default_min_free_disk_mib() -> u64 {
    256
}
fn default_true() -> bool {
    true
}

impl Default for RaftSettings {
    fn default() -> Self {
        RaftSettings {
            tick_ms: default_tick_ms(),
            election_ticks: default_election_ticks(),
            heartbeat_ticks: default_heartbeat_ticks(),
            snapshot_entries: default_snapshot_entries(),
            fsync: true,
            min_free_disk_mib: default_min_free_disk_mib(),
        }
    }
}

impl RaftSettings {
    /// The tick as a duration.
    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms)
    }
}

impl MasterConfig {
    /// A single-master config, as `ocean dev` uses.
    pub fn single(id: u64, data_dir: PathBuf, http: SocketAddr, grpc: SocketAddr) -> Self {
        MasterConfig {
            id,
            data_dir,
            http,
            grpc,
            peers: BTreeMap::from([(id, grpc.to_string())]),
            join: Vec::new(),
            advertise_http: None,
            advertise_grpc: None,
            raft: RaftSettings::default(),
            scheduler: SchedulerSettings::default(),
            dns_domain: default_dns_domain(),
            agents: AgentSettings::default(),
            acl: AclSettings::default(),
            raft_addr: None,
            raft_peers: BTreeMap::new(),
            advertise_raft: None,
            tls: None,
        }
    }

    /// Checks the settings, naming the first wrong field.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, reason: String| {
            Err(Error::Config {
                field: field.to_string(),
                reason,
            })
        };
        if self.id == 0 {
            return bad("id", "must be a positive integer".into());
        }
        if self.peers.is_empty() && self.join.is_empty() {
            return bad(
                "peers",
                "give the initial cluster (--peers) or masters to join (--join)".into(),
            );
        }
        if !self.peers.is_empty() && !self.peers.contains_key(&self.id) && self.join.is_empty() {
            return bad(
                "peers",
                format!("must include this master's own id {}", self.id),
            );
        }
        if self.peers.contains_key(&0) {
            return bad("peers", "raft ids must be positive integers".into());
        }
        for (id, addr) in &self.peers {
            if addr.parse::<SocketAddr>().is_err() && !addr.contains(':') {
                return bad(&format!("peers.{id}"), format!("'{addr}' is not HOST:PORT"));
            }
        }
        if let Some(tls) = &self.tls {
            if self.raft_addr.is_none() {
                return bad(
                    "raft_addr",
                    "required with tls: masters talk mTLS-only on their own listener".into(),
                );
            }
            if let Err(e) = tls.files().check() {
                return bad("tls", e.to_string());
            }
            // Its peers would refuse it anyway; saying so at start names
            // the file instead of leaving a master that never joins.
            let pem = std::fs::read_to_string(&tls.cert).unwrap_or_default();
            match ocean_tls::identity_of_pem(&pem) {
                Ok(id) if id.role == ocean_tls::Role::Master => {}
                Ok(id) => {
                    return bad(
                        "tls.cert",
                        format!(
                            "{} is the certificate of {id}, not a master's (ocean tls cert --role master)",
                            tls.cert.display()
                        ),
                    )
                }
                Err(e) => return bad("tls.cert", format!("{}: {e}", tls.cert.display())),
            }
        }
        if self.raft_addr.is_some()
            && self.join.is_empty()
            && !self.raft_peers.contains_key(&self.id)
        {
            return bad(
                "raft_peers",
                format!(
                    "must give this master's own id {} (every master's raft listener) with raft_addr",
                    self.id
                ),
            );
        }
        let r = &self.raft;
        if r.tick_ms == 0 || r.tick_ms > 10_000 {
            return bad("raft.tick_ms", "must be in 1..=10000".into());
        }
        if r.heartbeat_ticks == 0 {
            return bad("raft.heartbeat_ticks", "must be at least 1".into());
        }
        if r.election_ticks <= r.heartbeat_ticks {
            return bad(
                "raft.election_ticks",
                "must be greater than raft.heartbeat_ticks".into(),
            );
        }
        if let Err(reason) = ocean_spec::dns::validate_domain(&self.dns_domain) {
            return bad("dns_domain", reason);
        }
        if r.snapshot_entries == 0 {
            return bad("raft.snapshot_entries", "must be at least 1".into());
        }
        let a = &self.agents;
        if !(50..=60_000).contains(&a.heartbeat_interval_ms) {
            return bad(
                "agents.heartbeat_interval_ms",
                format!("must be in 50..=60000; got {}", a.heartbeat_interval_ms),
            );
        }
        if a.heartbeat_timeout_ms < 2 * a.heartbeat_interval_ms
            || a.heartbeat_timeout_ms > 3_600_000
        {
            return bad(
                "agents.heartbeat_timeout_ms",
                format!(
                    "must be at least twice agents.heartbeat_interval_ms ({}) and at most 3600000; got {}",
                    a.heartbeat_interval_ms, a.heartbeat_timeout_ms
                ),
            );
        }
        for (pdl, w) in &self.scheduler.pdl_weights {
            if !(w.is_finite() && *w > 0.0) {
                return bad(
                    &format!("scheduler.pdl_weights.{pdl}"),
                    format!("must be a positive number; got {w}"),
                );
            }
        }
        for (i, q) in self.scheduler.quotas.iter().enumerate() {
            if q.node.is_empty() || !q.node.starts_with("cop.") {
                return bad(
                    &format!("scheduler.quotas[{i}].node"),
                    format!(
                        "'{}' is not a service-tree node (cop.<c>[_owt.<o>...])",
                        q.node
                    ),
                );
            }
            if q.cpus.is_none() && q.mem.is_none() {
                return bad(
                    &format!("scheduler.quotas[{i}]"),
                    "give cpus, mem or both".into(),
                );
            }
            if let Some(c) = q.cpus {
                if !(c.is_finite() && c >= 0.0) {
                    return bad(
                        &format!("scheduler.quotas[{i}].cpus"),
                        format!("must be a non-negative number; got {c}"),
                    );
                }
            }
        }
        Ok(())
    }

    /// The gRPC address other masters reach this one at.
    pub fn advertised_grpc(&self) -> String {
        self.advertise_grpc
            .clone()
            .or_else(|| self.peers.get(&self.id).cloned())
            .unwrap_or_else(|| self.grpc.to_string())
    }

    /// The raft listener's address other masters reach this one at, when
    /// raft traffic has its own listener.
    pub fn advertised_raft(&self) -> Option<String> {
        let listen = self.raft_addr?;
        Some(
            self.advertise_raft
                .clone()
                .or_else(|| self.raft_peers.get(&self.id).cloned())
                .unwrap_or_else(|| listen.to_string()),
        )
    }

    /// The REST address clients reach this one at.
    pub fn advertised_http(&self) -> String {
        self.advertise_http
            .clone()
            .unwrap_or_else(|| self.http.to_string())
    }
}

fn deserialize_peers<'de, D>(d: D) -> std::result::Result<BTreeMap<u64, String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Peers {
        Text(String),
        Table(BTreeMap<String, String>),
    }
    use serde::de::Error as _;
    match Peers::deserialize(d)? {
        Peers::Text(s) => parse_peers(&s).map_err(D::Error::custom),
        Peers::Table(t) => t
            .into_iter()
            .map(|(k, v)| {
                k.trim().parse::<u64>().map(|id| (id, v)).map_err(|_| {
                    D::Error::custom(format!("peers: key '{k}' is not a positive integer id"))
                })
            })
            .collect(),
    }
}

/// Parses `1=host:port,2=host:port` into a peer map.
pub fn parse_peers(s: &str) -> Result<BTreeMap<u64, String>> {
    let mut peers = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((id, addr)) = part.split_once('=') else {
            return Err(Error::Config {
                field: "peers".into(),
                reason: format!("'{part}' is not ID=HOST:PORT"),
            });
        };
        let id: u64 = id.trim().parse().map_err(|_| Error::Config {
            field: "peers".into(),
            reason: format!("'{id}' in '{part}' is not a positive integer id"),
        })?;
        if peers.insert(id, addr.trim().to_string()).is_some() {
            return Err(Error::Config {
                field: "peers".into(),
                reason: format!("id {id} appears twice"),
            });
        }
    }
    Ok(peers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_and_reject() {
        let p = parse_peers("1=127.0.0.1:1,2=127.0.0.1:2").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[&2], "127.0.0.1:2");
        assert!(parse_peers("1=a:1,1=b:2").is_err());
        assert!(parse_peers("x=a:1").is_err());
        assert!(parse_peers("127.0.0.1:1").is_err());
    }

    #[test]
    fn toml_peers_as_table_or_text() {
        let base = "id = 1\ndata_dir = \"/tmp/x\"\n";
        let t: MasterConfig =
            toml::from_str(&format!("{base}peers = {{ 1 = \"a:1\", 2 = \"b:2\" }}")).unwrap();
        assert_eq!(t.peers[&2], "b:2");
        let t: MasterConfig = toml::from_str(&format!("{base}peers = \"1=a:1,3=c:3\"")).unwrap();
        assert_eq!(t.peers[&3], "c:3");
        let e = toml::from_str::<MasterConfig>(&format!("{base}peers = {{ x = \"a:1\" }}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("peers"), "{e}");
        let e = toml::from_str::<MasterConfig>(&format!("{base}bogus = 1"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn validate_names_the_field() {
        let mut c = MasterConfig::single(1, "/tmp/x".into(), default_http(), default_grpc());
        assert!(c.validate().is_ok());
        c.raft.election_ticks = 1;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("raft.election_ticks"), "{e}");
        c.raft.election_ticks = 5;
        c.agents.heartbeat_timeout_ms = 600;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("agents.heartbeat_timeout_ms"), "{e}");
        c.agents.heartbeat_timeout_ms = 2_500;
        c.agents.heartbeat_interval_ms = 10;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("agents.heartbeat_interval_ms"), "{e}");
        c.agents.heartbeat_interval_ms = 500;
        assert!(c.validate().is_ok());
        c.id = 0;
        assert!(c.validate().unwrap_err().to_string().contains("id"));
    }

    #[test]
    fn the_example_config_is_valid() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/examples/master-1.toml"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let c: MasterConfig = toml::from_str(&text).unwrap();
        c.validate().unwrap();
        assert_eq!(c.scheduler.quotas.len(), 1);
        assert_eq!(c.agents, AgentSettings::default());
    }

    #[test]
    fn scheduler_settings_parse_and_name_bad_fields() {
        let text = r#"
            id = 1
            data_dir = "/tmp/x"
            peers = { 1 = "127.0.0.1:7701" }
            [scheduler]
            pdl_weights = { "cop.a_owt.b_pdl.c" = 2.0 }
            [[scheduler.quotas]]
            node = "cop.a_owt.b_pdl.c"
            cpus = 4.0
        "#;
        let mut c: MasterConfig = toml::from_str(text).unwrap();
        assert!(c.validate().is_ok());
        assert_eq!(c.scheduler.pdl_weights["cop.a_owt.b_pdl.c"], 2.0);
        assert_eq!(c.scheduler.quotas[0].cpus, Some(4.0));
        c.scheduler.quotas[0].node = "a_owt.b".into();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("scheduler.quotas[0].node"), "{e}");
        c.scheduler.quotas[0].node = "cop.a".into();
        c.scheduler.pdl_weights.insert("cop.x".into(), -1.0);
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("scheduler.pdl_weights.cop.x"), "{e}");
        let typo = text.replace("cpus = 4.0", "cpu = 4.0");
        let e = toml::from_str::<MasterConfig>(&typo)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cpu"), "{e}");
    }

    #[test]
    fn a_master_refuses_a_certificate_that_is_not_a_masters() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca");
        ocean_tls::new_ca(&ca, "test").unwrap();
        let issue = |role, name: &str| {
            let out = dir.path().join(name);
            let who = ocean_tls::Identity::new(role, name).unwrap();
            ocean_tls::issue(&ca, &who, &[], &out).unwrap();
            out
        };
        let mut c = MasterConfig::single(1, "/tmp/x".into(), default_http(), default_grpc());
        c.raft_addr = Some("127.0.0.1:7702".parse().unwrap());
        c.raft_peers = parse_peers("1=127.0.0.1:7702").unwrap();
        c.tls = Some(TlsSettings::from_dir(&issue(ocean_tls::Role::Agent, "a1")));
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("tls.cert") && e.contains("agent:a1"), "{e}");
        c.tls = Some(TlsSettings::from_dir(&issue(ocean_tls::Role::Master, "m1")));
        assert!(c.validate().is_ok());
    }

    #[test]
    fn tls_and_the_raft_listener_parse_and_name_bad_fields() {
        let text = r#"
            id = 1
            data_dir = "/tmp/x"
            peers = "1=127.0.0.1:7701"
            raft_addr = "127.0.0.1:7702"
            raft_peers = "1=127.0.0.1:7702,2=127.0.0.1:7712"
        "#;
        let mut c: MasterConfig = toml::from_str(text).unwrap();
        assert!(c.validate().is_ok());
        assert_eq!(c.advertised_raft().as_deref(), Some("127.0.0.1:7702"));
        c.raft_peers.remove(&1);
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("raft_peers"), "{e}");
        assert_eq!(c.advertised_raft().as_deref(), Some("127.0.0.1:7702"));

        // Certificates without a raft listener, and missing files.
        let mut c: MasterConfig = toml::from_str(
            r#"
            id = 1
            data_dir = "/tmp/x"
            peers = "1=127.0.0.1:7701"
            [tls]
            cert = "/nonexistent/cert.pem"
            key = "/nonexistent/key.pem"
            ca = "/nonexistent/ca.pem"
        "#,
        )
        .unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("raft_addr") && e.contains("tls"), "{e}");
        c.raft_addr = Some("127.0.0.1:7702".parse().unwrap());
        c.raft_peers = parse_peers("1=127.0.0.1:7702").unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("tls") && e.contains("/nonexistent/cert.pem"),
            "{e}"
        );
        // Without either, nothing changes.
        let plain = MasterConfig::single(1, "/tmp/x".into(), default_http(), default_grpc());
        assert!(plain.validate().is_ok() && plain.advertised_raft().is_none());
    }
}
