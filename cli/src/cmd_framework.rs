//! `ocean framework run NAME --master ...`: a framework as a standalone
//! process. It competes for the framework's lease with every other
//! instance (other standalone ones, and the one hosted in-process on the
//! leading master), so exactly one acts at a time.

use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use ocean_framework::{Framework, Runner, RunnerOptions};

/// `ocean framework ...`
#[derive(Debug, Subcommand)]
pub enum FrameworkCommand {
    /// Run a framework until interrupted.
    Run(RunArgs),
}

/// `ocean framework run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The framework: one of the names `ocean framework run --help` lists
    /// (cron, redis, healing, mysql).
    pub name: String,
    /// The masters' gRPC addresses, comma-separated (any master will do;
    /// the client fails over).
    #[arg(long, env = "OCEAN_GRPC", default_value = "127.0.0.1:7701")]
    pub master: String,
    /// This instance's name as the lease's holder (default host:pid).
    #[arg(long)]
    pub holder: Option<String>,
}

/// The frameworks this binary carries, by name.
pub fn by_name(name: &str) -> Option<Arc<dyn Framework>> {
    match name {
        "cron" => Some(Arc::new(ocean_cron::CronFramework)),
        ocean_redis::NAME => Some(Arc::new(ocean_redis::RedisFramework)),
        ocean_healing::NAME => Some(Arc::new(ocean_healing::HealingFramework)),
        ocean_mysql::NAME => Some(Arc::new(ocean_mysql::MysqlFramework)),
        _ => None,
    }
}

/// Names accepted by `--frameworks` and `ocean framework run`.
pub const KNOWN: &[&str] = &["cron", "redis", "healing", "mysql"];

/// Starts the redis framework's operator beside its runner, acting while
/// `holder` (the runner's holder) holds the lease, until the process stops.
pub fn spawn_redis_operator(client: Arc<dyn ocean_client::Client>, holder: String) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        crate::cmd_server::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    ocean_redis::spawn_operator(client, holder, stop_rx);
}

/// Starts the healing framework's operator beside its runner, acting while
/// `holder` holds the lease, until the process stops.
pub fn spawn_healing_operator(client: Arc<dyn ocean_client::Client>, holder: String) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        crate::cmd_server::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    ocean_healing::spawn_operator(client, holder, stop_rx);
}

/// Starts the mysql framework's operator beside its runner, acting while
/// `holder` holds the lease, until the process stops.
pub fn spawn_mysql_operator(client: Arc<dyn ocean_client::Client>, holder: String) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        crate::cmd_server::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    ocean_mysql::spawn_operator(client, holder, stop_rx);
}

/// Parses `--frameworks a,b` into frameworks, naming an unknown one.
pub fn parse_list(list: &str) -> anyhow::Result<Vec<Arc<dyn Framework>>> {
    list.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty() && *n != "none")
        .map(|n| {
            by_name(n)
                .with_context(|| format!("--frameworks: '{n}' is not one of {}", KNOWN.join(", ")))
        })
        .collect()
}

/// A gRPC client of the masters named by `--master` (comma-separated).
pub fn grpc_client(master: &str) -> anyhow::Result<ocean_client::GrpcClient> {
    let addrs: Vec<String> = master
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let options = ocean_client::GrpcOptions {
        tls: crate::client_tls::ClientTlsArgs::from_env()
            .grpc()
            .context("OCEAN_CACERT")?,
        ..ocean_client::GrpcOptions::default()
    };
    let client = ocean_client::GrpcClient::with_options(addrs, options).context("--master")?;
    // Masters with ACLs on need a token; a standalone framework or ELB
    // agent reads it from the environment, never from its command line
    // (which `ps` shows).
    let token = std::env::var("OCEAN_TOKEN").unwrap_or_default();
    client
        .with_token(&ocean_client::Secret::new(token))
        .context("OCEAN_TOKEN")
}

/// Runs `ocean framework ...`.
pub async fn framework(cmd: FrameworkCommand) -> anyhow::Result<()> {
    let FrameworkCommand::Run(args) = cmd;
    let Some(fw) = by_name(&args.name) else {
        bail!(
            "framework '{}' is not one of {}",
            args.name,
            KNOWN.join(", ")
        );
    };
    let client: Arc<dyn ocean_client::Client> = Arc::new(grpc_client(&args.master)?);
    let holder = args.holder.unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "host".into());
        format!("{host}:{}", std::process::id())
    });
    if fw.name() == ocean_redis::NAME {
        spawn_redis_operator(client.clone(), holder.clone());
    }
    if fw.name() == ocean_healing::NAME {
        spawn_healing_operator(client.clone(), holder.clone());
    }
    if fw.name() == ocean_mysql::NAME {
        spawn_mysql_operator(client.clone(), holder.clone());
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        crate::cmd_server::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    Runner::new(fw, client, RunnerOptions::new(holder))
        .run(stop_rx)
        .await;
    Ok(())
}
