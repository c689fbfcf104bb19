//! `ocean ticket ...`: the healing framework's tickets over the REST API
//! (`/v1/tickets`): which hosts fell ill, what was done, and closing one.

use clap::Subcommand;
use serde_json::{json, Value};

use crate::client::{Body, Client, Method};
use crate::cmd_client::{print_json, urlencode};

/// `ocean ticket ...`
#[derive(Debug, Subcommand)]
pub enum TicketCommand {
    /// List tickets, newest first.
    List {
        /// Only this host's (agent id or host name).
        #[arg(long)]
        host: Option<String>,
        /// Only this tree node's (e.g. `idc.c3`).
        #[arg(long)]
        node: Option<String>,
        /// Only open tickets.
        #[arg(long)]
        open: bool,
    },
    /// A ticket: every transition with its cause, every action with its
    /// verdict.
    Show {
        /// The ticket's id.
        id: String,
    },
    /// Close a ticket (a person took over, or the host is fixed).
    Close {
        /// The ticket's id.
        id: String,
        /// Why, for other operators.
        #[arg(long, default_value = "")]
        message: String,
    },
}

fn ms(v: &Value) -> String {
    v.as_u64().map_or_else(|| "-".into(), |t| t.to_string())
}

fn print_list(v: &Value) {
    println!(
        "{:<40} {:<20} {:<12} {:<10} {:<6} FAILING",
        "ID", "HOST", "NODE", "STATE", "OPEN"
    );
    for t in v["tickets"].as_array().into_iter().flatten() {
        let failing: Vec<&str> = t["failing"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        println!(
            "{:<40} {:<20} {:<12} {:<10} {:<6} {}",
            t["id"].as_str().unwrap_or(""),
            t["hostname"].as_str().unwrap_or(""),
            t["node"].as_str().unwrap_or(""),
            t["state"].as_str().unwrap_or(""),
            t["closed_ms"].is_null(),
            failing.join("; ")
        );
    }
}

fn print_ticket(t: &Value) {
    println!("ticket   {}", t["id"].as_str().unwrap_or(""));
    println!(
        "host     {} ({})",
        t["hostname"].as_str().unwrap_or(""),
        t["host"].as_str().unwrap_or("")
    );
    println!("node     {}", t["node"].as_str().unwrap_or(""));
    println!("state    {}", t["state"].as_str().unwrap_or(""));
    println!("opened   {}", ms(&t["opened_ms"]));
    match t["closed_ms"].as_u64() {
        Some(c) => println!(
            "closed   {c}: {}",
            t["closed_reason"].as_str().unwrap_or("")
        ),
        None => println!("closed   no (open)"),
    }
    println!("repairs  {} failed", t["repairs_failed"]);
    println!("\ntransitions:");
    for x in t["transitions"].as_array().into_iter().flatten() {
        println!(
            "  {} {} -> {}: {}",
            ms(&x["at_ms"]),
            x["from"].as_str().unwrap_or(""),
            x["to"].as_str().unwrap_or(""),
            x["cause"].as_str().unwrap_or("")
        );
    }
    println!("\nactions:");
    for a in t["actions"].as_array().into_iter().flatten() {
        let verdict = a["verdict"].as_str().unwrap_or("(running)");
        let verdict = if a["kind"].as_str().is_some_and(|k| k.starts_with("repair:")) {
            format!(" => {verdict}")
        } else {
            String::new()
        };
        println!(
            "  {} {}: {}{verdict}",
            ms(&a["at_ms"]),
            a["kind"].as_str().unwrap_or(""),
            a["detail"].as_str().unwrap_or("")
        );
    }
}

/// Runs `ocean ticket ...`.
pub async fn ticket(c: &Client, cmd: TicketCommand) -> anyhow::Result<()> {
    let out = match cmd {
        TicketCommand::List { host, node, open } => {
            let mut q = Vec::new();
            if let Some(h) = host {
                q.push(format!("host={}", urlencode(&h)));
            }
            if let Some(n) = node {
                q.push(format!("node={}", urlencode(&n)));
            }
            if open {
                q.push("open=true".into());
            }
            let q = if q.is_empty() {
                String::new()
            } else {
                format!("?{}", q.join("&"))
            };
            let v = c
                .request(Method::GET, &format!("/v1/tickets{q}"), Body::None)
                .await?;
            if !c.json {
                print_list(&v);
                return Ok(());
            }
            v
        }
        TicketCommand::Show { id } => {
            let v = c
                .request(
                    Method::GET,
                    &format!("/v1/tickets/{}", urlencode(&id)),
                    Body::None,
                )
                .await?;
            if !c.json {
                print_ticket(&v);
                return Ok(());
            }
            v
        }
        TicketCommand::Close { id, message } => {
            c.request(
                Method::POST,
                &format!("/v1/tickets/{}/close", urlencode(&id)),
                Body::Json(json!({ "message": message })),
            )
            .await?
        }
    };
    print_json(&out);
    Ok(())
}
