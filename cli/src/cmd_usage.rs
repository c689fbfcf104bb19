//! `ocean usage report [--node N] [--window W] [--format table|json|csv]`:
//! utilisation per product line (`GET /v1/usage/report`).

use anyhow::Context;
use clap::{Args, Subcommand};
use futures::StreamExt;

use crate::client::{Body, Client, Method};
use crate::cmd_client::{print_json, urlencode};

/// `ocean usage ...`.
#[derive(Debug, Subcommand)]
pub enum UsageCommand {
    /// Allocated, used, peak and idle share per product line over a window.
    Report(ReportArgs),
}

/// `ocean usage report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The node to report under; the whole tree when left out.
    #[arg(long, default_value = "")]
    node: String,
    /// `30s`, `5m`, `6h`, `30d` (at most 400 days: the masters keep product
    /// lines' minutes two days and hours 400; windows longer than ~5 min
    /// are read from them).
    #[arg(long, default_value = "5m")]
    window: String,
    /// `table`, `json` or `csv`.
    #[arg(long, default_value = "table", value_parser = ["table", "json", "csv"])]
    format: String,
}

/// Runs `ocean usage ...`.
pub async fn usage(c: &Client, cmd: UsageCommand) -> anyhow::Result<()> {
    let UsageCommand::Report(a) = cmd;
    let path = |format: &str| {
        format!(
            "/v1/usage/report?node={}&window={}&format={format}",
            urlencode(&a.node),
            urlencode(&a.window)
        )
    };
    if a.format == "csv" {
        let mut body = c.stream(&path("csv")).await?;
        let mut out = Vec::new();
        while let Some(chunk) = body.next().await {
            out.extend_from_slice(&chunk.context("reading the report")?);
        }
        print!("{}", String::from_utf8_lossy(&out));
        return Ok(());
    }
    let v = c.request(Method::GET, &path("json"), Body::None).await?;
    if c.json || a.format == "json" {
        print_json(&v);
        return Ok(());
    }
    println!(
        "{:<40} {:>5} {:>8} {:>8} {:>8} {:>6} {:>10} {:>10} {:>10} {:>6}",
        "PRODUCT LINE", "TASKS", "CPU", "USED", "PEAK", "IDLE", "MEM(MiB)", "USED", "PEAK", "IDLE"
    );
    let f = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
    let pct = |v: &serde_json::Value| {
        v.as_f64()
            .map_or("-".to_string(), |x| format!("{:.0}%", x * 100.0))
    };
    for l in v["lines"]
        .as_array()
        .into_iter()
        .flatten()
        .chain([&v["total"]])
    {
        println!(
            "{:<40} {:>5} {:>8.2} {:>8.2} {:>8.2} {:>6} {:>10.0} {:>10.0} {:>10.0} {:>6}",
            l["pdl"].as_str().unwrap_or("-"),
            l["tasks"],
            f(&l["allocated"]["cpu_cores"]),
            f(&l["used"]["cpu_cores"]),
            f(&l["peak"]["cpu_cores"]),
            pct(&l["idle_share"]["cpu"]),
            f(&l["allocated"]["memory_mib"]),
            f(&l["used"]["memory_mib"]),
            f(&l["peak"]["memory_mib"]),
            pct(&l["idle_share"]["memory"]),
        );
    }
    Ok(())
}
