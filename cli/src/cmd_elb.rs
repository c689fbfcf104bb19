//! `ocean elb ...`: load balancer objects over the REST API (`/v1/elbs`),
//! and `ocean elb agent`, which programs an LB host's kernel from the
//! masters' watch.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::client::{Body, Client, Method};
use crate::cmd_client::{print_json, urlencode};

/// `ocean elb ...`
#[derive(Debug, Subcommand)]
pub enum ElbCommand {
    /// Create an ELB from a JSON or YAML file ('-' for stdin): `{"name",
    /// "idc", "network": "internal|external", "vips": [..], "listeners":
    /// [{"port", "protocol", "backend_job", "backend_port_name",
    /// "algorithm": "rr|wrr|hash", "weight"}], "domain", "views": [{"name",
    /// "subnets": ["58.32.0.0/11"], "vips": [..]}]}` (views: the VIPs the
    /// domain answers to clients of those networks; docs/dns.md).
    Create {
        /// The ELB file.
        file: PathBuf,
    },
    /// List ELBs.
    List,
    /// One ELB: each virtual server with its real servers and their health.
    Status {
        /// The ELB's name (its service-tree node).
        name: String,
    },
    /// Delete an ELB.
    Delete {
        /// The ELB's name.
        name: String,
    },
    /// Program this LB host's nftables from the masters until interrupted.
    Agent(AgentArgs),
}

/// `ocean elb agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The masters' gRPC addresses, comma-separated.
    #[arg(long, env = "OCEAN_GRPC", default_value = "127.0.0.1:7701")]
    pub master: String,
    /// Only ELBs of this data center (default: all).
    #[arg(long)]
    pub idc: Option<String>,
    /// Program the table inside this named network namespace
    /// (`ip netns exec NAME nft ...`) instead of the agent's own.
    #[arg(long)]
    pub netns: Option<String>,
    /// Seconds between read-backs of the kernel's table (drift repair).
    #[arg(long, default_value_t = 30)]
    pub resync_seconds: u64,
    /// Run keepalived (VRRP only) for the VIPs of the ELBs served, on this
    /// interface (of `--netns` if given); without it keepalived is not run.
    #[arg(long)]
    pub vrrp_interface: Option<String>,
    /// The VRRP router id (1..=255), the same on the LB hosts of a pair.
    #[arg(long, default_value_t = 51)]
    pub vrrp_router_id: u16,
    /// This host's VRRP priority (1..=254): the highest holds the VIPs.
    #[arg(long, default_value_t = 100)]
    pub vrrp_priority: u16,
    /// VRRP advertisement interval in ms (a multiple of 10): the backup
    /// takes over after about three missed adverts.
    #[arg(long, default_value_t = 200)]
    pub vrrp_advert_ms: u32,
    /// keepalived's router_id (default: the host name).
    #[arg(long)]
    pub vrrp_name: Option<String>,
    /// Serve Prometheus `/metrics` (per-VS connections, packets, bytes,
    /// real servers in rotation) on this address.
    #[arg(long)]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Where keepalived.conf, its pid files and its log are kept (one per
    /// agent).
    #[arg(long, default_value = "/var/lib/ocean/elb")]
    pub data_dir: PathBuf,
}

fn read(file: &PathBuf) -> anyhow::Result<Vec<u8>> {
    if file.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf).context("reading stdin")?;
        Ok(buf)
    } else {
        std::fs::read(file).with_context(|| format!("reading {}", file.display()))
    }
}

/// Runs `ocean elb ...`.
pub async fn elb(
    client: impl Fn() -> anyhow::Result<Client>,
    cmd: ElbCommand,
) -> anyhow::Result<()> {
    match cmd {
        ElbCommand::Create { file } => {
            let bytes = read(&file)?;
            // Checked here first so a typo is named without a round trip.
            let spec = ocean_elb::spec::parse(&bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
            let c = client()?;
            let body = Body::Raw {
                bytes: serde_json::to_vec(&spec)?,
                content_type: "application/json".into(),
            };
            let v = c.request(Method::POST, "/v1/elbs", body).await?;
            if c.json {
                print_json(&v);
            } else {
                println!("{} created", spec.name);
            }
        }
        ElbCommand::List => {
            let c = client()?;
            let v = c.request(Method::GET, "/v1/elbs", Body::None).await?;
            if c.json {
                print_json(&v);
                return Ok(());
            }
            println!(
                "{:<60} {:<6} {:<9} {:<32} PORTS",
                "NAME", "IDC", "NETWORK", "VIPS"
            );
            for e in v["elbs"].as_array().into_iter().flatten() {
                let e = &e["elb"];
                let join = |v: &Value, f: &dyn Fn(&Value) -> String| {
                    v.as_array()
                        .map(|a| a.iter().map(f).collect::<Vec<_>>().join(","))
                        .unwrap_or_default()
                };
                println!(
                    "{:<60} {:<6} {:<9} {:<32} {}",
                    e["name"].as_str().unwrap_or(""),
                    e["idc"].as_str().unwrap_or(""),
                    e["network"].as_str().unwrap_or(""),
                    join(&e["vips"], &|v| v.as_str().unwrap_or("").to_string()),
                    join(&e["listeners"], &|l| format!(
                        "{}/{}",
                        l["port"],
                        l["protocol"].as_str().unwrap_or("")
                    )),
                );
            }
        }
        ElbCommand::Status { name } => {
            let c = client()?;
            let v = c
                .request(
                    Method::GET,
                    &format!("/v1/elbs/{}", urlencode(&name)),
                    Body::None,
                )
                .await?;
            if c.json {
                print_json(&v);
                return Ok(());
            }
            for vs in v["virtual_servers"].as_array().into_iter().flatten() {
                println!(
                    "VS {}:{}/{} {}  {} in rotation",
                    vs["vip"].as_str().unwrap_or(""),
                    vs["port"],
                    vs["protocol"].as_str().unwrap_or(""),
                    vs["algorithm"].as_str().unwrap_or(""),
                    vs["in_rotation"],
                );
                for rs in vs["real_servers"].as_array().into_iter().flatten() {
                    println!(
                        "  {:<22} {:<9} {:<8} {}  {}",
                        format!("{}:{}", rs["address"].as_str().unwrap_or(""), rs["port"]),
                        rs["state"].as_str().unwrap_or(""),
                        match rs["healthy"].as_bool() {
                            Some(true) => "healthy",
                            Some(false) => "unhealthy",
                            None => "-",
                        },
                        if rs["in_rotation"].as_bool() == Some(true) {
                            "in".to_string()
                        } else {
                            format!("out ({})", rs["reason"].as_str().unwrap_or(""))
                        },
                        rs["task"].as_str().unwrap_or(""),
                    );
                }
            }
        }
        ElbCommand::Delete { name } => {
            let c = client()?;
            let v = c
                .request(
                    Method::DELETE,
                    &format!("/v1/elbs/{}", urlencode(&name)),
                    Body::None,
                )
                .await?;
            if c.json {
                print_json(&v);
            } else {
                println!("{name} deleted");
            }
        }
        ElbCommand::Agent(args) => agent(args).await?,
    }
    Ok(())
}

async fn agent(args: AgentArgs) -> anyhow::Result<()> {
    let client = crate::cmd_framework::grpc_client(&args.master)?;
    let nft = ocean_elb::nft_lib::best(args.netns.as_deref());
    let programmer = ocean_elb::programmer::Programmer::new(nft);
    let opts = ocean_elb::agent::AgentOptions {
        idc: args.idc,
        resync: Duration::from_secs(args.resync_seconds.max(1)),
    };
    // Bound first: a taken port fails the start naming the flag.
    let metrics = match args.metrics_addr {
        Some(addr) => Some(ocean_elb::metrics::MetricsServer {
            listener: tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("--metrics-addr {addr}: cannot listen"))?,
            nft: ocean_elb::nft_lib::best(args.netns.as_deref()).into(),
        }),
        None => None,
    };
    let keepalived = match args.vrrp_interface {
        None => None,
        Some(interface) => {
            let name = match args.vrrp_name {
                Some(n) => n,
                None => nix::unistd::gethostname()
                    .context("reading the host name (or give --vrrp-name)")?
                    .to_string_lossy()
                    .into_owned(),
            };
            let config = ocean_elb::vrrp::VrrpConfig {
                interface,
                virtual_router_id: args.vrrp_router_id,
                priority: args.vrrp_priority,
                advert_int_ms: args.vrrp_advert_ms,
                data_dir: args.data_dir.join("keepalived"),
                name,
            };
            Some(ocean_elb::keepalived_run::Keepalived::start(config, args.netns.clone()).await?)
        }
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        crate::cmd_server::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let extras = ocean_elb::agent::Extras {
        reports: None,
        keepalived,
        metrics,
    };
    ocean_elb::agent::run(Arc::new(client), programmer, opts, stop_rx, extras).await;
    Ok(())
}
