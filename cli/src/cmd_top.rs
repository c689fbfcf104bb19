//! `ocean top [NODE]`: a live view of what the tasks under a service-tree
//! node use against what they asked for, refreshed like `top`, from
//! `GET /v1/usage`.

use std::io::Write as _;
use std::time::Duration;

use clap::Args;
use serde_json::Value;

use crate::client::{Body, Client, Method};
use crate::cmd_client::{print_json, urlencode};

/// `ocean top` flags.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// The service-tree node, e.g. `cop.xiaomi_owt.inf_pdl.ocean` (default:
    /// the whole tree).
    node: Option<String>,
    /// Sort by `cpu` or `mem` (highest first).
    #[arg(long, default_value = "cpu", value_parser = ["cpu", "mem"])]
    sort: String,
    /// Rows of `tasks`, `jobs`, `nodes` or `agents`.
    #[arg(long, default_value = "tasks", value_parser = ["tasks", "jobs", "nodes", "agents"])]
    by: String,
    /// The window usage is averaged over: `10s`, `1m`, ...
    #[arg(long, default_value = "10s")]
    window: String,
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 2.0)]
    interval: f64,
    /// Show at most this many rows.
    #[arg(long, default_value_t = 40)]
    rows: usize,
    /// Print one screen and exit.
    #[arg(long)]
    once: bool,
}

/// Runs `ocean top` until interrupted (or once).
pub async fn top(c: &Client, args: TopArgs) -> anyhow::Result<()> {
    if !(args.interval >= 0.1 && args.interval <= 3600.0) {
        anyhow::bail!("--interval: give seconds from 0.1 to 3600");
    }
    let mut path = format!("/v1/usage?window={}", urlencode(&args.window));
    if let Some(node) = &args.node {
        path.push_str(&format!("&node={}", urlencode(node)));
    }
    loop {
        let report = c.request(Method::GET, &path, Body::None).await?;
        if c.json {
            print_json(&report);
            return Ok(());
        }
        let screen = render(&report, &args);
        let mut out = std::io::stdout().lock();
        if !args.once {
            // Home and clear: redraw in place, as top does.
            write!(out, "\x1b[H\x1b[2J")?;
        }
        out.write_all(screen.as_bytes())?;
        out.flush()?;
        drop(out);
        if args.once {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs_f64(args.interval)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

fn mib(bytes: &Value) -> f64 {
    f(bytes) / (1024.0 * 1024.0)
}

/// One screen of the report.
fn render(r: &Value, args: &TopArgs) -> String {
    let total = &r["total"];
    let node = r["node"].as_str().filter(|n| !n.is_empty()).unwrap_or("/");
    let mut s = format!(
        "ocean top  node {node}  window {}s  leader {}  at {}\n\
         tasks {}  cpu {:.2} used / {:.2} allocated cores  mem {:.1} MiB rss (+{:.1} cache) / {} MiB allocated\n\n",
        r["window_seconds"],
        r["leader"],
        clock(r["at_ms"].as_u64().unwrap_or(0)),
        total["tasks"],
        f(&total["used"]["cpu_cores"]),
        f(&total["allocated"]["cpus"]),
        mib(&total["used"]["memory_rss_bytes"]),
        mib(&total["used"]["memory_cache_bytes"]),
        total["allocated"]["mem_mib"],
    );
    let mut rows: Vec<&Value> = r[args.by.as_str()]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let key = |v: &Value| match args.sort.as_str() {
        "mem" => f(&v["used"]["memory_rss_bytes"]),
        _ => f(&v["used"]["cpu_cores"]),
    };
    rows.sort_by(|a, b| key(b).total_cmp(&key(a)));
    s.push_str(&format!(
        "{:>7} {:>7} {:>10} {:>10} {:>9} {:>6}  {}\n",
        "CPU", "CPU-REQ", "RSS-MiB", "MEM-REQ", "CACHE-MiB", "PIDS", "ID"
    ));
    for v in rows.iter().take(args.rows) {
        let used = &v["used"];
        s.push_str(&format!(
            "{:>7.3} {:>7.2} {:>10.1} {:>10} {:>9.1} {:>6}  {}\n",
            f(&used["cpu_cores"]),
            f(&v["allocated"]["cpus"]),
            mib(&used["memory_rss_bytes"]),
            v["allocated"]["mem_mib"].as_u64().unwrap_or(0),
            mib(&used["memory_cache_bytes"]),
            used["pids"].as_u64().unwrap_or(0),
            v["id"].as_str().unwrap_or("")
        ));
    }
    if rows.len() > args.rows {
        s.push_str(&format!("... {} more\n", rows.len() - args.rows));
    }
    s
}

/// `HH:MM:SS` UTC of a ms timestamp.
fn clock(ms: u64) -> String {
    let secs = ms / 1000;
    format!(
        "{:02}:{:02}:{:02}Z",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    )
}
