//! `ocean agent` (run an agent), `ocean agent list|status|drain`, and the hidden
//! `ocean agent exec-wrapper` (the first program of every task, so the one
//! `ocean` binary is all an agent host needs).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::future::Future;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use ocean_agent::docker::DockerConfig;
use ocean_agent::session::{self, AgentIdentity};
use ocean_agent::{AgentConfig, ExecutorConfig, PortRange, ResourceOverrides, WrapperCommand};
use serde_json::Value;

use crate::client::{Body, Client, Method};

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
    List {
        /// Only the agents a tag query selects (`idc.c3 !status.offline`).
        #[arg(long)]
        q: Option<String>,
    },
    /// Show an agent, or set its status: online, draining (move its tasks
    /// off), offline (out of service; tasks moved off), problem (no new
    /// tasks; what runs stays).
    Status {
        /// The agent's id.
        id: String,
        /// The new status; omit to show the agent.
        status: Option<String>,
        /// Why, for other operators.
        #[arg(long, default_value = "")]
        message: String,
    },
    /// Move every task off an agent (status draining): each replacement
    /// runs before the task it replaces is stopped.
    Drain {
        /// The agent's id.
        id: String,
        /// Why, for other operators.
        #[arg(long, default_value = "")]
        message: String,
    },
    /// The task exec wrapper (started by the agent, not by people):
    /// `[--cgroup DIR]... -- PROGRAM [ARG]...`.
    #[command(hide = true, disable_help_flag = true)]
    ExecWrapper(ExecWrapperArgs),
}

/// Everything after `exec-wrapper`: it belongs to the wrapper and to the
/// task (whose own flags, even `--help`, must reach it).
#[derive(Debug, Args)]
struct ExecWrapperArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    args: Vec<OsString>,
}

/// The wrapper's arguments exactly as given: clap swallows a leading `--`,
/// which the wrapper needs, so they are taken from the process's own argv
/// (everything after the first `exec-wrapper`).
fn wrapper_argv(parsed: Vec<OsString>) -> Vec<OsString> {
    let argv: Vec<OsString> = std::env::args_os().collect();
    match argv.iter().position(|a| a == "exec-wrapper") {
        Some(i) => argv[i + 1..].to_vec(),
        None => parsed,
    }
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
    /// Service-tree and machine tags in one string,
    /// `cop.x_owt.y_pdl.z_idc.c3_loc.bj_status.online`; `--attr` wins
    /// over a tag of the same name.
    #[arg(long)]
    tags: Option<String>,
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
    /// Where to serve task logs, HOST:PORT (default: the --address on an
    /// ephemeral port). The bound address is sent to the masters.
    #[arg(long)]
    http: Option<String>,
    #[command(flatten)]
    docker: DockerOptions,
    #[command(flatten)]
    host_checks: crate::agent_host_checks::HostCheckOptions,
    #[command(flatten)]
    usage: UsageOptions,
    /// This agent's certificate (`ocean tls cert --role agent --name ID`),
    /// for masters with TLS: its name must be this agent's id (a fresh
    /// data dir takes the certificate's name as its id).
    #[command(flatten)]
    tls: crate::cmd_tls::TlsArgs,
}

/// Usage sampling and the agent's Prometheus endpoint.
#[derive(Debug, Clone, Default, Args)]
pub struct UsageOptions {
    /// How often tasks' usage is sampled and pushed to the leader: `500ms`,
    /// `5s`, `1m` (default 5s).
    #[arg(long, value_parser = parse_interval)]
    pub usage_interval: Option<std::time::Duration>,
    /// Serve per-task usage for Prometheus at http://ADDR/metrics,
    /// HOST:PORT (default: not served).
    #[arg(long)]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// `500ms`, `5s`, `2m` or a plain number of seconds.
fn parse_interval(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{s:?}: give a duration such as 500ms, 5s or 1m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("{s:?}: the unit must be ms, s or m")),
    };
    if !(secs > 0.0 && secs <= 3600.0) {
        return Err(format!("{s:?}: must be more than 0 and at most 1h"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// The Docker executor's flags.
#[derive(Debug, Clone, Args)]
pub struct DockerOptions {
    /// The Docker engine's unix socket. When it cannot be reached the agent
    /// runs native tasks only and reports Docker as unavailable.
    #[arg(long, default_value = ocean_agent::docker::launch::DEFAULT_SOCKET)]
    pub docker_socket: PathBuf,
    /// Disable the Docker executor (container jobs go to other agents).
    #[arg(long)]
    pub no_docker: bool,
    /// A host directory under which containers may mount volumes
    /// (repeatable). Without one, jobs with volumes are refused here.
    #[arg(long = "docker-volume-root")]
    pub docker_volume_roots: Vec<PathBuf>,
    /// Allow privileged containers on this agent.
    #[arg(long)]
    pub docker_allow_privileged: bool,
}

impl Default for DockerOptions {
    fn default() -> Self {
        Self {
            docker_socket: PathBuf::from(ocean_agent::docker::launch::DEFAULT_SOCKET),
            no_docker: false,
            docker_volume_roots: Vec::new(),
            docker_allow_privileged: false,
        }
    }
}

/// What [`run_agent`] needs; `ocean agent`'s flags, or `ocean dev`'s choices.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// Masters' gRPC addresses.
    pub masters: Vec<String>,
    /// Data directory (agent id, checkpoints, sandboxes).
    pub data_dir: PathBuf,
    /// `KEY=VALUE` attributes.
    pub attrs: Vec<String>,
    /// Resource overrides, `cpus=N,mem=MiB,disk=MiB`.
    pub resources: Option<String>,
    /// Host ports for tasks, `LOW-HIGH`.
    pub ports: String,
    /// Host name to report.
    pub hostname: Option<String>,
    /// Address other hosts reach this agent's tasks at.
    pub address: String,
    /// Task log listen address (default `<address>:0`).
    pub http: Option<String>,
    /// The Docker executor's settings.
    pub docker: DockerOptions,
    /// Usage sampling and `/metrics`.
    pub usage: UsageOptions,
    /// Host checks.
    pub host_checks: crate::agent_host_checks::HostCheckOptions,
    /// TLS to the masters with this agent's certificate; `None`: plain.
    pub tls: Option<ocean_tls::TlsFiles>,
}

/// Builds the agent's identity from flags, naming the flag that is wrong.
pub fn identity(
    data_dir: &Path,
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
        Some(AgentSub::List { q }) => list(&c()?, q.as_deref()).await,
        Some(AgentSub::Status {
            id,
            status: None,
            message,
        }) => {
            if !message.is_empty() {
                anyhow::bail!("--message: give a STATUS to set along with it");
            }
            show(&c()?, &id).await
        }
        Some(AgentSub::Status {
            id,
            status: Some(status),
            message,
        }) => set_status(&c()?, &id, &status, &message).await,
        Some(AgentSub::Drain { id, message }) => drain(&c()?, &id, &message).await,
        Some(AgentSub::ExecWrapper(w)) => ocean_agent::wrapper_main(wrapper_argv(w.args)),
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
    if masters.is_empty() {
        anyhow::bail!("--master: give at least one gRPC address, HOST:PORT");
    }
    let options = AgentOptions {
        masters,
        data_dir: args.data_dir.context("--data-dir: required")?,
        attrs: crate::cmd_tree::tag_attrs(args.tags.as_deref())?
            .into_iter()
            .chain(args.attrs)
            .collect(),
        resources: args.resources,
        ports: args.ports,
        hostname: args.hostname,
        address: args.address,
        http: args.http,
        docker: args.docker,
        usage: args.usage,
        host_checks: args.host_checks,
        tls: args.tls.files()?,
    };
    let restart = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    run_agent(options, stop_or_restart(restart.clone())).await?;
    if restart.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(re_exec());
    }
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C (stop), or on SIGHUP (restart: `restart`
/// is set).
async fn stop_or_restart(restart: std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let hup = async {
        match signal(SignalKind::hangup()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = crate::cmd_server::shutdown_signal() => {}
        _ = hup => {
            tracing::info!("SIGHUP: restarting the agent (its tasks keep running)");
            restart.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// Replaces this process with a fresh start of the same agent. The pid
/// stays, so its tasks stay its children: the new start re-adopts them and
/// still learns their exit codes. Every descriptor Rust opened is
/// close-on-exec, so nothing of the old start leaks into the new one.
/// `/proc/self/exe` rather than the path: the running binary even if its
/// file was replaced or removed since.
fn re_exec() -> anyhow::Error {
    use std::os::unix::process::CommandExt;
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| "ocean".into());
    let error = std::process::Command::new("/proc/self/exe")
        .arg0(arg0)
        .args(args)
        .exec();
    anyhow::Error::new(error).context("SIGHUP: cannot start the agent again")
}

/// Checks that this host's cgroups can hold tasks, naming what is missing:
/// the hierarchy or controller (from detection) or the directory that
/// cannot be created.
fn cgroups_for(agent_id: &str) -> anyhow::Result<std::sync::Arc<dyn ocean_agent::CgroupDriver>> {
    // One parent per agent: recovery removes task cgroups it has no
    // checkpoint for, so two agents on one host must not share a parent.
    let parent = format!("ocean-{agent_id}");
    let cgroups = ocean_agent::detect_cgroups(&parent).context(
        "cgroups: the agent needs the cpu, memory and pids controllers (cgroup v1) or a cgroup2 mount",
    )?;
    for dir in cgroups.task_cgroup("probe").dirs() {
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).with_context(|| {
                format!(
                    "cgroups: cannot create {} (the agent must run as root with cgroups mounted read-write)",
                    parent.display()
                )
            })?;
        }
    }
    Ok(cgroups)
}

/// Runs an agent (executor, task log server, session with the leader)
/// until `shutdown` resolves. Its tasks keep running afterwards; the next
/// start on the same data dir re-adopts them.
pub async fn run_agent(
    o: AgentOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&o.data_dir)
        .with_context(|| format!("--data-dir: cannot create {}", o.data_dir.display()))?;
    let http = o.http.clone().unwrap_or_else(|| format!("{}:0", o.address));
    let tls = match &o.tls {
        Some(files) => {
            adopt_certificate_name(&o.data_dir, files)?;
            Some(files.client().context("--tls")?)
        }
        None => None,
    };
    let me = identity(
        &o.data_dir,
        &o.attrs,
        o.resources.as_deref(),
        &o.ports,
        o.hostname,
        o.address,
    )?;
    let cgroups = cgroups_for(&me.id)?;
    let wrapper = task_wrapper()?;
    let mut executor = ExecutorConfig::new(&o.data_dir, wrapper);
    executor.hostname = me.hostname.clone();
    let listener = tokio::net::TcpListener::bind(&http)
        .await
        .with_context(|| format!("--http: cannot listen on {http}"))?;
    tracing::info!(agent = %me.id, masters = ?o.masters, cgroups = ?cgroups.version(), "agent starting");
    let docker = docker_config(&o.docker, &me.hostname)?;
    let mut config = AgentConfig::new(me, o.masters, executor, cgroups);
    config.docker = docker;
    if let Some(every) = o.usage.usage_interval {
        config.usage_interval = every;
    }
    config.metrics_addr = o.usage.metrics_addr;
    config.host_checks = o.host_checks.config(&o.data_dir)?;
    config.tls = tls;
    ocean_agent::runtime::run(config, listener, shutdown).await?;
    Ok(())
}

/// A fresh data dir takes its agent id from the certificate, so the id
/// the masters bind the session to is the one the agent registers with.
/// An id already there is kept: a mismatch is the masters' to refuse.
fn adopt_certificate_name(data_dir: &Path, files: &ocean_tls::TlsFiles) -> anyhow::Result<()> {
    let path = data_dir.join("agent-id");
    if path.exists() {
        return Ok(());
    }
    let pem = std::fs::read_to_string(&files.cert)
        .with_context(|| format!("--tls-cert: cannot read {}", files.cert.display()))?;
    let identity = ocean_tls::identity_of_pem(&pem).context("--tls-cert")?;
    if identity.role != ocean_tls::Role::Agent {
        anyhow::bail!("--tls-cert: the certificate is {identity}, not an agent's");
    }
    std::fs::write(&path, format!("{}\n", identity.name))
        .with_context(|| format!("--data-dir: cannot write {}", path.display()))?;
    Ok(())
}

async fn show(c: &Client, id: &str) -> anyhow::Result<()> {
    let v = c
        .request(Method::GET, &format!("/v1/agents/{id}"), Body::None)
        .await?;
    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    Ok(())
}

async fn set_status(c: &Client, id: &str, status: &str, message: &str) -> anyhow::Result<()> {
    let body = serde_json::json!({"status": status, "message": message});
    let v = c
        .request(
            Method::POST,
            &format!("/v1/agents/{id}/status"),
            Body::Json(body),
        )
        .await?;
    report(c, &v)
}

async fn drain(c: &Client, id: &str, message: &str) -> anyhow::Result<()> {
    let body = serde_json::json!({"message": message});
    let v = c
        .request(
            Method::POST,
            &format!("/v1/agents/{id}/drain"),
            Body::Json(body),
        )
        .await?;
    report(c, &v)
}

fn report(c: &Client, v: &Value) -> anyhow::Result<()> {
    if c.json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    } else {
        println!(
            "agent {}: {} ({})",
            v["id"].as_str().unwrap_or("?"),
            v["status"].as_str().unwrap_or("?"),
            v["outcome"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}

/// The Docker executor's config from its flags; `None` with `--no-docker`.
fn docker_config(o: &DockerOptions, hostname: &str) -> anyhow::Result<Option<DockerConfig>> {
    if o.no_docker {
        return Ok(None);
    }
    let mut config = DockerConfig::new(hostname);
    config.socket = o.docker_socket.clone();
    config.allow_privileged = o.docker_allow_privileged;
    for root in &o.docker_volume_roots {
        if !root.is_absolute()
            || root
                .components()
                .any(|c| c == std::path::Component::ParentDir)
        {
            anyhow::bail!(
                "--docker-volume-root: {} must be an absolute path without '..'",
                root.display()
            );
        }
        config.volume_roots.push(root.clone());
    }
    Ok(Some(config))
}

async fn list(c: &Client, q: Option<&str>) -> anyhow::Result<()> {
    let path = match q {
        Some(q) => format!("/v1/agents?q={}", crate::cmd_client::urlencode(q)),
        None => "/v1/agents".to_string(),
    };
    let v = c.request(Method::GET, &path, Body::None).await?;
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
        "{:<24} {:<20} {:>6} {:>8} {:<10} {:<9} {:<30} TAGS",
        "ID", "HOSTNAME", "CPUS", "MEM", "CONNECTED", "STATUS", "ATTRIBUTES"
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
        let connected = if a["unreachable"] == Value::Bool(true) {
            "unreachable".to_string()
        } else {
            s(a, "connected")
        };
        println!(
            "{:<24} {:<20} {:>6} {:>8} {:<10} {:<9} {:<30} {}",
            s(a, "id"),
            s(a, "hostname"),
            s(&a["resources"], "cpus"),
            s(&a["resources"], "mem"),
            connected,
            s(a, "status"),
            attrs,
            s(a, "tags")
        );
    }
    Ok(())
}

/// The first program of every task: the small `ocean-task-wrapper` when it
/// is installed next to `ocean` (it starts in about 2 ms; `ocean` itself
/// loads RocksDB and its libraries, about 10 ms per task), else
/// `ocean agent exec-wrapper`, which does the same.
fn task_wrapper() -> anyhow::Result<WrapperCommand> {
    let ocean = std::env::current_exe().context("finding the ocean binary (the task wrapper)")?;
    let small = ocean.with_file_name("ocean-task-wrapper");
    if small.is_file() {
        return Ok(WrapperCommand {
            program: small,
            args: Vec::new(),
        });
    }
    Ok(WrapperCommand {
        program: ocean,
        args: vec!["agent".into(), "exec-wrapper".into()],
    })
}
