//! The `ocean` binary: parses the command line, installs tracing, and calls
//! into the library crates. Everything else lives in those crates.

mod agent_host_checks;
mod client;
mod client_tls;
mod cmd_acl;
mod cmd_agent;
mod cmd_alert;
mod cmd_cache;
mod cmd_client;
mod cmd_cron;
mod cmd_db;
mod cmd_deploy;
mod cmd_dns;
mod cmd_elb;
mod cmd_framework;
mod cmd_logs;
mod cmd_operator;
mod cmd_server;
mod cmd_task;
mod cmd_ticket;
mod cmd_tls;
mod cmd_top;
mod cmd_tree;
mod cmd_usage;
mod dev_tls;
mod heap;

use clap::{Parser, Subcommand};

/// Ocean: an elastic cluster scheduler.
#[derive(Debug, Parser)]
#[command(name = "ocean", version, about, propagate_version = true)]
struct Cli {
    /// Master REST address(es) for client commands, comma-separated; the
    /// first that answers is used.
    #[arg(
        long,
        global = true,
        env = "OCEAN_ADDR",
        default_value = "http://127.0.0.1:7700"
    )]
    addr: String,
    /// Print raw JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// API token for masters with ACLs on (`ocean acl bootstrap` makes the
    /// first); sent as `Authorization: Bearer`.
    #[arg(long, global = true, env = "OCEAN_TOKEN", hide_env_values = true)]
    token: Option<ocean_client::Secret>,
    #[command(flatten)]
    tls: client_tls::ClientTlsArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an all-in-one single-node cluster for development.
    Dev(cmd_server::DevArgs),
    /// Run a master.
    Master(cmd_server::MasterArgs),
    /// Show the cluster's status as the answering master sees it.
    Status,
    /// Access control: bootstrap, tokens and policies.
    #[command(subcommand)]
    Acl(cmd_acl::AclCommand),
    /// Work with jobs.
    #[command(subcommand)]
    Job(cmd_client::JobCommand),
    /// Follow and steer deployments (list, status, pause, resume, promote,
    /// fail, cancel).
    #[command(subcommand)]
    Deployment(cmd_deploy::DeploymentCommand),
    /// List tasks and read their logs.
    #[command(subcommand)]
    Task(cmd_task::TaskCommand),
    /// Run an agent (`ocean agent --master ... --data-dir ...`), or
    /// `ocean agent list`, `ocean agent status ID [STATUS]`, `ocean agent drain ID`.
    Agent(cmd_agent::AgentCommand),
    /// Run the DNS server for the cluster's names (`ocean dns --master ...
    /// --listen ...`).
    Dns(cmd_dns::DnsArgs),
    /// Add, remove and list masters.
    #[command(subcommand)]
    Member(cmd_client::MemberCommand),
    /// The masters' maintenance: `snapshot save FILE`, `snapshot restore FILE`.
    #[command(subcommand)]
    Operator(cmd_operator::OperatorCommand),
    /// Periodic jobs (the cron framework).
    #[command(subcommand)]
    Cron(cmd_cron::CronCommand),
    /// Load balancers (ELB): objects, status, and the LB host's agent.
    #[command(subcommand)]
    Elb(cmd_elb::ElbCommand),
    /// Redis caches (the redis framework): create, list, status, scale,
    /// backup, restore, delete.
    #[command(subcommand)]
    Cache(cmd_cache::CacheCommand),
    /// Host healing tickets (the healing framework): list, show, close.
    #[command(subcommand)]
    Ticket(cmd_ticket::TicketCommand),
    /// MySQL databases (the mysql framework): create, list, status, delete.
    #[command(subcommand)]
    Db(cmd_db::DbCommand),
    /// Run a framework standalone (`ocean framework run cron --master ...`).
    #[command(subcommand)]
    Framework(cmd_framework::FrameworkCommand),
    /// Search the logs of a job's tasks, running and ended.
    Logs(cmd_logs::LogsArgs),
    /// A live view of what tasks use under a service-tree node.
    Top(cmd_top::TopArgs),
    /// The service tree (`ocean tree [NODE]`), and nodes' replicated quotas
    /// and weights (`ocean tree quota NODE --cpus --mem --weight`).
    Tree(cmd_tree::TreeCommand),
    /// Alert rules on tree nodes (`ocean alert rule add|list|rm`) and
    /// alerts (`ocean alert list`).
    #[command(subcommand)]
    Alert(cmd_alert::AlertCommand),
    /// Utilisation per product line (`ocean usage report`).
    #[command(subcommand)]
    Usage(cmd_usage::UsageCommand),
    /// Certificates: `ocean tls ca --out DIR`, `ocean tls cert --ca DIR
    /// --name NAME --role master|agent|client --out DIR`.
    #[command(subcommand)]
    Tls(cmd_tls::TlsCommand),
}

fn main() {
    heap::cap_arenas();
    let cli = Cli::parse();
    exit_with_parent();
    let server = matches!(
        cli.command,
        Command::Dev(_) | Command::Master(_) | Command::Dns(_) | Command::Framework(_)
    ) || matches!(&cli.command, Command::Agent(a) if a.is_run())
        || matches!(&cli.command, Command::Elb(cmd_elb::ElbCommand::Agent(_)));
    init_tracing(server);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(run(cli));
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let token = cli.token.clone().unwrap_or_default();
    let tls = cli.tls.clone();
    let client = || client::Client::new(&cli.addr, cli.json, token.clone(), &tls);
    match cli.command {
        Command::Dev(args) => cmd_server::dev(args).await,
        Command::Master(args) => cmd_server::master(args).await,
        Command::Status => cmd_client::status(&client()?).await,
        Command::Acl(cmd) => cmd_acl::acl(&client()?, cmd).await,
        Command::Job(cmd) => cmd_client::job(&client()?, cmd).await,
        Command::Deployment(cmd) => cmd_deploy::deployment(&client()?, cmd).await,
        Command::Member(cmd) => cmd_client::member(&client()?, cmd).await,
        Command::Operator(cmd) => cmd_operator::operator(&client()?, cmd).await,
        Command::Task(cmd) => cmd_task::task(&client()?, cmd).await,
        Command::Agent(cmd) => cmd_agent::agent(client, cmd).await,
        Command::Dns(args) => cmd_dns::dns(args, &cli.tls).await,
        Command::Cron(cmd) => cmd_cron::cron(&client()?, cmd).await,
        Command::Cache(cmd) => cmd_cache::cache(&client()?, cmd).await,
        Command::Ticket(cmd) => cmd_ticket::ticket(&client()?, cmd).await,
        Command::Db(cmd) => cmd_db::db(&client()?, cmd).await,
        Command::Framework(cmd) => cmd_framework::framework(cmd).await,
        Command::Elb(cmd) => cmd_elb::elb(client, cmd).await,
        Command::Logs(args) => cmd_logs::logs(&client()?, args).await,
        Command::Top(args) => cmd_top::top(&client()?, args).await,
        Command::Tree(cmd) => cmd_tree::tree(&client()?, cmd).await,
        Command::Alert(cmd) => cmd_alert::alert(&client()?, cmd).await,
        Command::Usage(cmd) => cmd_usage::usage(&client()?, cmd).await,
        Command::Tls(cmd) => cmd_tls::tls(cmd),
    }
}

/// With `OCEAN_EXIT_WITH_PARENT=1` (set by test harnesses and benchmark
/// drivers), exit as soon as the parent process is gone, so a killed or
/// timed-out driver leaves no master or agent behind. Tasks are not
/// affected: they live in their own sessions and cgroups.
fn exit_with_parent() {
    if std::env::var_os("OCEAN_EXIT_WITH_PARENT").is_none() {
        return;
    }
    let parent = std::os::unix::process::parent_id();
    let _ = std::thread::Builder::new()
        .name("parent-watch".into())
        .spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_millis(200));
            if std::os::unix::process::parent_id() != parent {
                std::process::exit(0);
            }
        });
}

fn init_tracing(server: bool) {
    use tracing_subscriber::EnvFilter;
    // hickory-server logs every query at info.
    let default = if server {
        "info,hickory_server=warn"
    } else {
        "warn"
    };
    let filter = EnvFilter::try_from_env("OCEAN_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
