//! `ocean task list` and `ocean task logs`.

use std::io::Write as _;

use clap::Subcommand;
use futures::StreamExt;

use crate::client::{Body, Client, Method};
use crate::cmd_client::{print_json, s, urlencode};

/// `ocean task ...`
#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// List tasks.
    List {
        /// Only the tasks of this job.
        #[arg(long)]
        job: Option<String>,
        /// Only tasks in this state (RUNNING, FAILED, ...).
        #[arg(long)]
        state: Option<String>,
        /// Only the tasks a tag query selects, over their job's tags and
        /// their agent's (`pdl.im idc.c3 !status.offline`).
        #[arg(long)]
        q: Option<String>,
    },
    /// Show one task.
    Status {
        /// The task's id.
        id: String,
    },
    /// Print a task's stdout (or stderr).
    Logs {
        /// The task's id.
        id: String,
        /// Keep printing as the task writes.
        #[arg(short, long)]
        follow: bool,
        /// Print stderr instead of stdout.
        #[arg(long)]
        stderr: bool,
        /// Only the last N lines.
        #[arg(long)]
        tail: Option<u64>,
    },
}

/// A task's health for the list: healthy, unhealthy (`!` once it is being
/// replaced), or `-` while unknown.
fn health(t: &serde_json::Value) -> String {
    let mut h = match t["healthy"].as_bool() {
        Some(true) => "healthy".to_string(),
        Some(false) => "unhealthy".to_string(),
        None => "-".to_string(),
    };
    if t["health_failed"].as_bool() == Some(true) {
        h.push('!');
    }
    h
}

/// `ocean task ...`.
pub async fn task(c: &Client, cmd: TaskCommand) -> anyhow::Result<()> {
    match cmd {
        TaskCommand::List { job, state, q } => {
            let mut query = Vec::new();
            if let Some(j) = job {
                query.push(format!("job={}", urlencode(&j)));
            }
            if let Some(st) = state {
                query.push(format!("state={}", urlencode(&st)));
            }
            if let Some(q) = q {
                query.push(format!("q={}", urlencode(&q)));
            }
            let path = if query.is_empty() {
                "/v1/tasks".to_string()
            } else {
                format!("/v1/tasks?{}", query.join("&"))
            };
            let v = c.request(Method::GET, &path, Body::None).await?;
            if c.json {
                print_json(&v);
                return Ok(());
            }
            println!(
                "{:<72} {:<9} {:<10} {:<20} {:<14} {:>7}",
                "ID", "STATE", "HEALTH", "HOST", "PORTS", "EXIT"
            );
            for t in v["tasks"].as_array().into_iter().flatten() {
                let ports: Vec<String> = t["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| s(p, "port"))
                    .collect();
                let mut state = s(t, "state");
                if t["kill_requested"].as_bool() == Some(true) && state != "KILLED" {
                    state.push('*');
                }
                println!(
                    "{:<72} {:<9} {:<10} {:<20} {:<14} {:>7}",
                    s(t, "id"),
                    state,
                    health(t),
                    s(t, "host"),
                    ports.join(","),
                    s(t, "exit_code"),
                );
            }
        }
        TaskCommand::Status { id } => {
            let v = c
                .request(
                    Method::GET,
                    &format!("/v1/tasks/{}", urlencode(&id)),
                    Body::None,
                )
                .await?;
            print_json(&v);
        }
        TaskCommand::Logs {
            id,
            follow,
            stderr,
            tail,
        } => {
            let mut path = format!(
                "/v1/tasks/{}/logs?stream={}",
                urlencode(&id),
                if stderr { "stderr" } else { "stdout" }
            );
            if let Some(n) = tail {
                path.push_str(&format!("&tail={n}"));
            }
            if follow {
                path.push_str("&follow=true");
            }
            let mut body = c.stream(&path).await?;
            let mut out = std::io::stdout();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| e.context("reading the log"))?;
                out.write_all(&chunk)?;
                out.flush()?;
            }
        }
    }
    Ok(())
}
