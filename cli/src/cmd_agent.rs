//! `ocean agent` (run an agent) and `ocean agent list`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use ocean_agent::session::{self, AgentIdentity, SessionState};
use ocean_agent::{PortRange, ResourceOverrides};
use reqwest::Method;
use serde_json::Value;
use tokio::sync::watch;

use crate::client::{Body, Client};

/// `ocean agent`: run an agent, or manage agents.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AgentCommand {
    #[command(subcommand)]
    cmd: Option<AgentSub>,
    #[command(flatten)]
    run: RunArgs,
}

impl AgentCommand {
    /// Whether this runs an agent (rather than a client command).
    pub fn is_run(&self) -> bool {
        self.cmd.is_none()
    }
}

#[derive(Debug, Subcommand)]
enum AgentSub {
    /// List agents (liveness as the leader sees it).
    List,
}

/// Flags of a running agent.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Masters' gRPC addresses, comma-separated (any master; the agent
    /// follows the leader).
    #[arg(long, env = "OCEAN_MASTER")]
    master: Option<String>,
    /// Data directory (agent id, checkpoints, sandboxes).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// An attribute, KEY=VALUE (repeatable): idc, loc, status or any other.
    #[arg(long = "attr")]
    attrs: Vec<String>,
    /// Override detected resources: cpus=N,mem=MiB,disk=MiB.
    #[arg(long)]
    resources: Option<String>,
    /// Host ports for tasks, LOW-HIGH.
    #[arg(long, default_value = "31000-32000")]
    ports: String,
    /// Host name to report (default: the system's).
    #[arg(long)]
    hostname: Option<String>,
    /// Address other hosts reach this agent's tasks at (default 127.0.0.1).
    #[arg(long, default_value = "127.0.0.1")]
    address: String,
}

/// Builds the agent's identity from flags, naming the flag that is wrong.
pub fn identity(
    data_dir: &std::path::Path,
    attrs: &[String],
    resources: Option<&str>,
    ports: &str,
    hostname: Option<String>,
    address: String,
) -> anyhow::Result<AgentIdentity> {
    let hostname = match hostname {
        Some(h) => h,
        None => nix::unistd::gethostname()
            .context("reading the host name")?
            .to_string_lossy()
            .into_owned(),
    };
    let mut attributes = BTreeMap::from([
        ("hostname".to_string(), hostname.clone()),
        ("status".to_string(), "online".to_string()),
    ]);
    for a in attrs {
        let (k, v) = a
            .split_once('=')
            .with_context(|| format!("--attr {a:?}: expected KEY=VALUE"))?;
        if k.is_empty() {
            anyhow::bail!("--attr {a:?}: the key is empty");
        }
        attributes.insert(k.to_string(), v.to_string());
    }
    let detected = ocean_agent::resources::detect(data_dir).context("detecting host resources")?;
    let resources = match resources {
        Some(r) => r
            .parse::<ResourceOverrides>()
            .context("--resources")?
            .apply(detected),
        None => detected,
    };
    let ports: PortRange = ports.parse().context("--ports")?;
    Ok(AgentIdentity {
        id: session::agent_id(data_dir).context("agent id")?,
        hostname,
        attributes,
        resources,
        ports,
        address,
    })
}

/// `ocean agent ...`.
pub async fn agent(
    c: impl FnOnce() -> anyhow::Result<Client>,
    cmd: AgentCommand,
) -> anyhow::Result<()> {
    match cmd.cmd {
        Some(AgentSub::List) => list(&c()?).await,
        None => run(cmd.run).await,
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let masters: Vec<String> = args
        .master
        .as_deref()
        .context("--master: required (gRPC address of any master, HOST:PORT)")?
        .split(',')
        .map(|s| s.trim().trim_start_matches("http://").to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let data_dir = args.data_dir.context("--data-dir: required")?;
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("--data-dir: cannot create {}", data_dir.display()))?;
    let me = identity(
        &data_dir,
        &args.attrs,
        args.resources.as_deref(),
        &args.ports,
        args.hostname,
        args.address,
    )?;
    tracing::info!(agent = %me.id, masters = ?masters, "agent starting");
    let (state_tx, _state_rx) = watch::channel(SessionState::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        crate::cmd_server::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    session::run(me, masters, state_tx, stop_rx).await?;
    Ok(())
}

async fn list(c: &Client) -> anyhow::Result<()> {
    let v = c.request(Method::GET, "/v1/agents", Body::None).await?;
    if c.json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    let s = |v: &Value, k: &str| match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(o) => o.to_string(),
    };
    println!(
        "{:<24} {:<20} {:>6} {:>8} {:<10} {:<30}",
        "ID", "HOSTNAME", "CPUS", "MEM", "CONNECTED", "ATTRIBUTES"
    );
    for a in v["agents"].as_array().into_iter().flatten() {
        let attrs = a["attributes"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        println!(
            "{:<24} {:<20} {:>6} {:>8} {:<10} {:<30}",
            s(a, "id"),
            s(a, "hostname"),
            s(&a["resources"], "cpus"),
            s(&a["resources"], "mem"),
            s(a, "connected"),
            attrs
        );
    }
    Ok(())
}
