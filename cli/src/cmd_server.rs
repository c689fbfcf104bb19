//! `ocean master` and `ocean dev`: build a [`MasterConfig`] from flags and an
//! optional TOML file, bind, and run until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ocean_master::{bind, parse_peers, MasterConfig};

/// Flags of `ocean master`. Flags override the config file.
#[derive(Debug, Args)]
pub struct MasterArgs {
    /// TOML config file (fields as in `MasterConfig`; see docs/operations.md).
    #[arg(long)]
    config: Option<PathBuf>,
    /// This master's raft id.
    #[arg(long)]
    id: Option<u64>,
    /// Data directory (RocksDB).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// REST listen address.
    #[arg(long)]
    http: Option<SocketAddr>,
    /// gRPC listen address (client API and raft).
    #[arg(long)]
    grpc: Option<SocketAddr>,
    /// Initial cluster: ID=HOST:PORT of every master's gRPC address.
    #[arg(long)]
    peers: Option<String>,
    /// Join a running cluster through these masters' gRPC addresses
    /// (comma-separated) instead of bootstrapping.
    #[arg(long)]
    join: Option<String>,
    /// REST address to advertise to clients (default: --http).
    #[arg(long)]
    advertise_http: Option<String>,
    /// gRPC address to advertise to other masters (default: own --peers entry).
    #[arg(long)]
    advertise_grpc: Option<String>,
    /// Raft tick in milliseconds.
    #[arg(long)]
    tick_ms: Option<u64>,
    /// Election timeout in ticks (randomised up to twice this).
    #[arg(long)]
    election_ticks: Option<usize>,
    /// Applied entries kept before the log is compacted behind a snapshot.
    #[arg(long)]
    snapshot_entries: Option<u64>,
    /// Milliseconds between agents' heartbeats (default 500).
    #[arg(long)]
    agent_heartbeat_ms: Option<u64>,
    /// Milliseconds of silence after which an agent is unreachable and its
    /// tasks are replaced (default 2500).
    #[arg(long)]
    agent_timeout_ms: Option<u64>,
    /// Do not fsync the raft log. Loses acknowledged writes on power
    /// failure: for measuring, never for production.
    #[arg(long)]
    unsafe_no_fsync: bool,
    /// Refuse new writes (507 disk_full) while the data dir's filesystem
    /// has less than this many MiB free (default 256; 0: no reserve).
    #[arg(long)]
    min_free_disk_mib: Option<u64>,
    /// The DNS zone (`ocean dns --domain`), for the `dns_name` of jobs.
    #[arg(long)]
    dns_domain: Option<String>,
    /// Frameworks to host in-process while this master leads
    /// (comma-separated: cron, redis, healing, mysql; `none` for none). Each also runs standalone
    /// with `ocean framework run NAME`; the instances share one lease.
    #[arg(long, default_value = "")]
    frameworks: String,
    /// Require a token on every API request (`acl.enabled`); create the
    /// first one with `ocean acl bootstrap`.
    #[arg(long)]
    acl: bool,
    /// Listen address of the master-to-master (raft) listener; without it
    /// raft shares --grpc. Required with TLS, where it is mTLS-only.
    #[arg(long)]
    raft_addr: Option<SocketAddr>,
    /// Every master's raft listener, ID=HOST:PORT (comma-separated); with
    /// --raft-addr, --join names raft listeners too.
    #[arg(long)]
    raft_peers: Option<String>,
    /// Raft address to advertise to other masters (default: own
    /// --raft-peers entry, else --raft-addr).
    #[arg(long)]
    advertise_raft: Option<String>,
    /// This master's certificate (`ocean tls cert --role master`): gRPC
    /// serves TLS, agents must present their own certificate, and masters
    /// talk mTLS on --raft-addr.
    #[command(flatten)]
    tls: crate::cmd_tls::TlsArgs,
    /// Serve the REST API and the dashboard over HTTPS with the master's
    /// certificate (clients trust the CA: `ocean --ca-cert CA.pem`).
    #[arg(long)]
    tls_http: bool,
}

/// Flags of `ocean dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Data directory (default: $OCEAN_DATA_DIR, else ~/.local/share/ocean/dev).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// REST listen address.
    #[arg(long, default_value = "127.0.0.1:7700")]
    http: SocketAddr,
    /// gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:7701")]
    grpc: SocketAddr,
    /// Where the embedded DNS server listens (UDP and TCP); the default
    /// needs no privileges, unlike port 53.
    #[arg(long, default_value_t = ocean_dns::config::default_dev_listen())]
    dns: SocketAddr,
    /// The embedded DNS server's zone.
    #[arg(long, default_value = ocean_spec::dns::DEFAULT_DOMAIN)]
    dns_domain: String,
    /// Resolvers for names outside the zone (comma-separated HOST:PORT);
    /// without any they are REFUSED.
    #[arg(long, value_delimiter = ',')]
    dns_upstream: Vec<SocketAddr>,
    /// Do not start the embedded DNS server.
    #[arg(long)]
    no_dns: bool,
    /// Host ports for the dev agent's tasks, LOW-HIGH.
    #[arg(long, default_value = "31000-32000")]
    ports: String,
    /// Frameworks hosted in-process (comma-separated; `none` for none).
    #[arg(long, default_value = "cron")]
    frameworks: String,
    /// Turn access control on (off by default in dev): every API request
    /// then needs a token; `ocean acl bootstrap` makes the first.
    #[arg(long)]
    acl: bool,
    /// Run with certificates from a CA kept in the data dir (`tls/`): REST
    /// and the dashboard over HTTPS, gRPC with TLS, the agent with its own
    /// certificate, raft on its own mTLS listener (--raft-addr).
    #[arg(long)]
    tls: bool,
    /// The raft listener with --tls.
    #[arg(long, default_value = "127.0.0.1:7702")]
    raft_addr: SocketAddr,
}

fn config_from(args: MasterArgs) -> anyhow::Result<MasterConfig> {
    let mut cfg = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            toml::from_str::<MasterConfig>(&text)
                .with_context(|| format!("config file {}", path.display()))?
        }
        None => {
            let id = args
                .id
                .context("--id: required (or give --config with an `id`)")?;
            let data_dir = args
                .data_dir
                .clone()
                .context("--data-dir: required (or give --config with a `data_dir`)")?;
            MasterConfig::single(
                id,
                data_dir,
                args.http.unwrap_or(([127, 0, 0, 1], 7700).into()),
                args.grpc.unwrap_or(([127, 0, 0, 1], 7701).into()),
            )
        }
    };
    if let Some(id) = args.id {
        cfg.id = id;
    }
    if let Some(d) = args.data_dir {
        cfg.data_dir = d;
    }
    if let Some(h) = args.http {
        cfg.http = h;
    }
    if let Some(g) = args.grpc {
        cfg.grpc = g;
    }
    if let Some(p) = &args.peers {
        cfg.peers = parse_peers(p).context("--peers")?;
    } else if args.config.is_none() {
        cfg.peers = [(cfg.id, cfg.grpc.to_string())].into();
    }
    if let Some(j) = args.join {
        cfg.join = j
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if args.peers.is_none() && args.config.is_none() {
            cfg.peers.clear();
        }
    }
    if cfg.peers.is_empty() && cfg.join.is_empty() {
        // A master given neither is a cluster of one.
        cfg.peers = [(cfg.id, cfg.grpc.to_string())].into();
    }
    if args.advertise_http.is_some() {
        cfg.advertise_http = args.advertise_http;
    }
    if args.advertise_grpc.is_some() {
        cfg.advertise_grpc = args.advertise_grpc;
    }
    if let Some(t) = args.tick_ms {
        cfg.raft.tick_ms = t;
    }
    if let Some(e) = args.election_ticks {
        cfg.raft.election_ticks = e;
    }
    if let Some(s) = args.snapshot_entries {
        cfg.raft.snapshot_entries = s;
    }
    if let Some(h) = args.agent_heartbeat_ms {
        cfg.agents.heartbeat_interval_ms = h;
    }
    if let Some(t) = args.agent_timeout_ms {
        cfg.agents.heartbeat_timeout_ms = t;
    }
    if args.unsafe_no_fsync {
        cfg.raft.fsync = false;
    }
    if let Some(m) = args.min_free_disk_mib {
        cfg.raft.min_free_disk_mib = m;
    }
    if let Some(d) = args.dns_domain {
        cfg.dns_domain = d;
    }
    if args.acl {
        cfg.acl.enabled = true;
    }
    if args.raft_addr.is_some() {
        cfg.raft_addr = args.raft_addr;
    }
    if let Some(p) = &args.raft_peers {
        cfg.raft_peers = parse_peers(p).context("--raft-peers")?;
    }
    if args.advertise_raft.is_some() {
        cfg.advertise_raft = args.advertise_raft;
    }
    if let Some(f) = args.tls.files()? {
        cfg.tls = Some(ocean_master::config::TlsSettings {
            cert: f.cert,
            key: f.key,
            ca: f.ca,
            http: args.tls_http,
        });
    }
    if args.tls_http {
        match cfg.tls.as_mut() {
            Some(tls) => tls.http = true,
            None => anyhow::bail!(
                "--tls-http: needs the master's certificate (--tls-dir, or tls in the config)"
            ),
        }
    }
    cfg.validate()?;
    Ok(cfg)
}

async fn serve(
    cfg: MasterConfig,
    frameworks: Vec<std::sync::Arc<dyn ocean_framework::Framework>>,
) -> anyhow::Result<()> {
    let http = bind(cfg.http).await?;
    let grpc = bind(cfg.grpc).await?;
    // The dashboard shows the quotas and weights the scheduler is given.
    let scheduler = cfg.scheduler.clone();
    let hosts_redis = frameworks.iter().any(|f| f.name() == ocean_redis::NAME);
    let hosts_healing = frameworks.iter().any(|f| f.name() == ocean_healing::NAME);
    let hosts_mysql = frameworks.iter().any(|f| f.name() == ocean_mysql::NAME);
    let holder = format!("master-{}", cfg.id);
    // Cache backups are files on this master's disk, beside its data.
    let redis_backups = cfg.data_dir.join("redis-backups");
    // Every master serves the dashboard at /ui/ beside its REST API, and
    // the caches' API; with the redis framework hosted, its operator runs
    // beside the runner and acts while this master's runner holds the lease.
    ocean_master::run_mounted(
        cfg,
        http,
        grpc,
        frameworks,
        move |m| {
            let client: std::sync::Arc<dyn ocean_client::Client> =
                std::sync::Arc::new(ocean_master::api::in_process::InProcess::new(m.clone()));
            if hosts_redis {
                crate::cmd_framework::spawn_redis_operator(client.clone(), holder.clone());
            }
            if hosts_healing {
                crate::cmd_framework::spawn_healing_operator(client.clone(), holder.clone());
            }
            if hosts_mysql {
                crate::cmd_framework::spawn_mysql_operator(client.clone(), holder);
            }
            // ELB objects (/v1/elbs), caches (/v1/caches), tickets
            // (/v1/tickets) and databases (/v1/databases) through the
            // in-process client.
            ocean_ui::router_full(m, scheduler, redis_backups.clone())
                .merge(ocean_elb::http::router(client.clone()))
                .merge(ocean_redis::api::router_with(
                    ocean_redis::api::Api::new(client.clone()).with_backups(redis_backups),
                ))
                .merge(ocean_healing::api::router(client.clone()))
                .merge(ocean_mysql::api::router(client))
        },
        shutdown_signal(),
    )
    .await?;
    Ok(())
}

/// `ocean master`.
pub async fn master(args: MasterArgs) -> anyhow::Result<()> {
    let frameworks = crate::cmd_framework::parse_list(&args.frameworks)?;
    serve(config_from(args)?, frameworks).await
}

/// `ocean dev`: one master, one agent and the DNS server in one process,
/// with a default data dir.
pub async fn dev(args: DevArgs) -> anyhow::Result<()> {
    let data_dir = match args.data_dir {
        Some(d) => d,
        None => match std::env::var_os("OCEAN_DATA_DIR") {
            Some(d) => PathBuf::from(d),
            None => {
                let home = std::env::var_os("HOME")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| ".".into());
                home.join(".local/share/ocean/dev")
            }
        },
    };
    let frameworks = crate::cmd_framework::parse_list(&args.frameworks)?;
    let mut cfg = MasterConfig::single(1, data_dir.clone(), args.http, args.grpc);
    cfg.dns_domain = args.dns_domain.clone();
    cfg.acl.enabled = args.acl;
    if args.acl {
        // The embedded DNS server follows the master with this process's
        // own secret: it needs no token from the user.
        cfg.acl.local_secret = ocean_master::service::acl::store::new_local_secret();
    }
    let pki = if args.tls {
        let pki = crate::dev_tls::DevPki::ensure(&data_dir.join("tls"), &data_dir.join("agent"))?;
        let mut tls = ocean_master::config::TlsSettings::from_dir(&pki.master);
        tls.http = true;
        cfg.tls = Some(tls);
        cfg.raft_addr = Some(args.raft_addr);
        cfg.raft_peers = std::collections::BTreeMap::from([(1, args.raft_addr.to_string())]);
        Some(pki)
    } else {
        None
    };
    cfg.validate()?;
    if !args.no_dns {
        // The DNS server follows this master like any `ocean dns` would.
        let mut dns = ocean_dns::DnsConfig::new(vec![args.grpc.to_string()], args.dns);
        dns.domain = args.dns_domain.clone();
        dns.upstreams = args.dns_upstream.clone();
        dns.token = cfg.acl.local_secret.clone();
        if let Some(pki) = &pki {
            dns.tls =
                Some(ocean_tls::TlsFiles::client_without_cert(&pki.ca_cert()).context("--tls")?);
        }
        dns.validate().context("--dns")?;
        let sockets = ocean_dns::bind(&dns)
            .await
            .with_context(|| format!("--dns {}", args.dns))?;
        tokio::spawn(async move {
            if let Err(e) = ocean_dns::serve(dns, sockets, shutdown_signal()).await {
                tracing::error!(error = %e, "the dev DNS server stopped");
            }
        });
        eprintln!(
            "ocean dev: DNS on {} (UDP and TCP), zone {}: dig @{} -p {} leader.{}",
            args.dns,
            args.dns_domain,
            args.dns.ip(),
            args.dns.port(),
            args.dns_domain
        );
    }
    // The all-in-one agent registers with this master like any other agent
    // and runs tasks like any other; it serves task logs on a loopback port.
    let agent = crate::cmd_agent::AgentOptions {
        masters: vec![args.grpc.to_string()],
        data_dir: data_dir.join("agent"),
        attrs: Vec::new(),
        resources: None,
        ports: args.ports.clone(),
        hostname: None,
        address: "127.0.0.1".into(),
        http: Some("127.0.0.1:0".into()),
        docker: crate::cmd_agent::DockerOptions::default(),
        usage: Default::default(),
        host_checks: Default::default(),
        tls: pki
            .as_ref()
            .map(|p| ocean_tls::TlsFiles::from_dir(&p.agent)),
    };
    // The dev agent shares the master's process and cannot restart alone:
    // a SIGHUP meant for it (healing's `restart-agent` repair) is logged,
    // not left to end the whole cluster.
    if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                tracing::warn!("SIGHUP ignored: the agent of ocean dev cannot restart alone");
            }
        });
    }
    tokio::spawn(async move {
        // Stops on the same signal as the master, closing its stream so the
        // master's graceful shutdown is not kept waiting; its tasks keep
        // running for the next start.
        if let Err(e) = crate::cmd_agent::run_agent(agent, shutdown_signal()).await {
            tracing::error!(error = %format!("{e:#}"), "the dev agent stopped");
        }
    });
    let scheme = if pki.is_some() { "https" } else { "http" };
    eprintln!(
        "ocean dev: master 1 on {scheme}://{} (gRPC {}), data in {}",
        args.http,
        args.grpc,
        data_dir.display()
    );
    eprintln!("ocean dev: dashboard on {scheme}://{}/ui/", args.http);
    if let Some(pki) = &pki {
        eprintln!(
            "ocean dev: TLS is ON (raft on {}); clients trust the dev CA: export OCEAN_ADDR=https://{} OCEAN_CACERT={}",
            args.raft_addr,
            args.http,
            pki.ca_cert().display()
        );
    }
    if args.acl {
        eprintln!(
            "ocean dev: access control is ON: every request needs a token; \
             create the first admin token with `ocean acl bootstrap`"
        );
    } else {
        eprintln!(
            "ocean dev: access control is OFF (no tokens needed; `ocean dev --acl` turns it on)"
        );
    }
    eprintln!("try: ocean job run docs/examples/http-server.json && ocean job list");
    serve(cfg, frameworks).await
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
