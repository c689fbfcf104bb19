//! `ocean alert`: alert rules on service-tree nodes (`rule add|list|rm`,
//! `/v1/alerts/rules`) and the alerts they raised (`list`, `/v1/alerts`).

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use crate::client::{Body, Client, Method};
use crate::cmd_client::{print_json, s, urlencode};

/// `ocean alert ...`.
#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// Alert rules: add, list, rm.
    #[command(subcommand)]
    Rule(RuleCommand),
    /// Firing alerts and the recently resolved.
    List {
        /// Only `firing` or `resolved` alerts.
        #[arg(long, value_parser = ["firing", "resolved"])]
        state: Option<String>,
    },
}

/// `ocean alert rule ...`.
#[derive(Debug, Subcommand)]
pub enum RuleCommand {
    /// Add a rule on a node; it applies to everything under the node,
    /// including what is added later.
    Add(AddArgs),
    /// List rules (on nodes under `--node`).
    List {
        #[arg(long)]
        node: Option<String>,
    },
    /// Delete a rule; its firing alerts resolve.
    Rm {
        /// The rule's id.
        id: String,
    },
}

/// `ocean alert rule add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The node (`pdl.demo`, `cop.x_owt.y_pdl.z`); the whole tree when
    /// left out.
    #[arg(long, default_value = "")]
    node: String,
    /// `job_below_instances`, `task_flapping`, `memory_above`, `agent_lost`,
    /// `failover` or `healing_storm`.
    #[arg(long)]
    kind: String,
    /// Seconds the condition must hold before the alert fires.
    #[arg(long = "for", default_value_t = 0)]
    for_seconds: u64,
    /// task_flapping: restarts allowed in the window.
    #[arg(long)]
    max_restarts: Option<u32>,
    /// task_flapping: the window, minutes; failover: how long the alert
    /// stays firing after the newest failover (default 10).
    #[arg(long)]
    window_minutes: Option<u32>,
    /// memory_above: percent of the task's memory limit.
    #[arg(long)]
    percent: Option<f64>,
    /// Where firing and resolved alerts are POSTed.
    #[arg(long)]
    webhook: Option<String>,
    /// The rule's id (a DNS label); generated when left out.
    #[arg(long)]
    id: Option<String>,
    #[arg(long, default_value = "")]
    description: String,
}

/// Runs `ocean alert ...`.
pub async fn alert(c: &Client, cmd: AlertCommand) -> anyhow::Result<()> {
    match cmd {
        AlertCommand::Rule(RuleCommand::Add(a)) => add(c, a).await,
        AlertCommand::Rule(RuleCommand::List { node }) => {
            let path = format!(
                "/v1/alerts/rules?node={}",
                urlencode(node.as_deref().unwrap_or(""))
            );
            let v = c.request(Method::GET, &path, Body::None).await?;
            if c.json {
                print_json(&v);
                return Ok(());
            }
            println!(
                "{:<14} {:<20} {:>6}  {:<40} WEBHOOK",
                "ID", "KIND", "FOR", "NODE"
            );
            for r in v["rules"].as_array().into_iter().flatten() {
                let node = r["node"]
                    .as_str()
                    .filter(|n| !n.is_empty())
                    .unwrap_or("(root)");
                println!(
                    "{:<14} {:<20} {:>5}s  {:<40} {}",
                    s(r, "id"),
                    s(r, "kind"),
                    r["for_seconds"],
                    node,
                    s(r, "webhook")
                );
            }
            Ok(())
        }
        AlertCommand::Rule(RuleCommand::Rm { id }) => {
            let path = format!("/v1/alerts/rules/{}", urlencode(&id));
            let v = c.request(Method::DELETE, &path, Body::None).await?;
            if c.json {
                print_json(&v);
            } else {
                println!("{id}: {}", s(&v, "outcome"));
            }
            Ok(())
        }
        AlertCommand::List { state } => {
            let path = format!(
                "/v1/alerts?state={}",
                urlencode(state.as_deref().unwrap_or(""))
            );
            let v = c.request(Method::GET, &path, Body::None).await?;
            if c.json {
                print_json(&v);
                return Ok(());
            }
            println!(
                "{:<9} {:<14} {:<20} {:<60} MESSAGE",
                "STATE", "RULE", "KIND", "SUBJECT"
            );
            for a in v["alerts"].as_array().into_iter().flatten() {
                println!(
                    "{:<9} {:<14} {:<20} {:<60} {}",
                    s(a, "state"),
                    s(a, "rule"),
                    s(a, "kind"),
                    s(a, "subject"),
                    s(a, "message")
                );
            }
            Ok(())
        }
    }
}

async fn add(c: &Client, a: AddArgs) -> anyhow::Result<()> {
    let mut body = Map::new();
    body.insert("node".into(), json!(a.node));
    body.insert("kind".into(), json!(a.kind));
    body.insert("for_seconds".into(), json!(a.for_seconds));
    body.insert("description".into(), json!(a.description));
    let optional = [
        ("id", a.id.map(Value::from)),
        ("max_restarts", a.max_restarts.map(Value::from)),
        ("window_minutes", a.window_minutes.map(Value::from)),
        ("percent", a.percent.map(Value::from)),
        ("webhook", a.webhook.map(Value::from)),
    ];
    for (k, v) in optional.into_iter().filter_map(|(k, v)| Some((k, v?))) {
        body.insert(k.into(), v);
    }
    let v = c
        .request(
            Method::POST,
            "/v1/alerts/rules",
            Body::Json(Value::Object(body)),
        )
        .await?;
    if c.json {
        print_json(&v);
    } else {
        println!("{}: created", s(&v, "id"));
    }
    Ok(())
}
