//! `ocean tree [NODE]`: the service tree under a node, each line a child
//! with its jobs, tasks, agents, the resources held, quota and weight
//! (`GET /v1/tree`); `ocean tree quota NODE --cpus --mem --weight` sets a
//! node's replicated quota and weight (`PUT /v1/tree/{node}/quota`),
//! `--clear` removes them. Also the agent's `--tags` flag, read here.

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use crate::client::{Body, Client, Method};
use crate::cmd_client::{print_json, urlencode};

/// `ocean tree`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TreeCommand {
    #[command(subcommand)]
    cmd: Option<TreeSub>,
    /// The node to show (`cop.x_owt.y`); the root when left out.
    node: Option<String>,
    /// How many levels below the node to print (default 1).
    #[arg(long, default_value_t = 1)]
    depth: u32,
}

#[derive(Debug, Subcommand)]
enum TreeSub {
    /// Show, set or clear a node's quota and fair-share weight (replicated:
    /// every master's scheduler uses them; the config keeps defaults).
    Quota {
        /// The node (`cop.x_owt.y_pdl.z`).
        node: String,
        /// Most cores the tasks under the node may hold.
        #[arg(long)]
        cpus: Option<f64>,
        /// Most memory, MiB.
        #[arg(long)]
        mem: Option<u64>,
        /// Fair-share weight (product-line nodes only).
        #[arg(long)]
        weight: Option<f64>,
        /// Remove the node's replicated quota and weight.
        #[arg(long, conflicts_with_all = ["cpus", "mem", "weight"])]
        clear: bool,
    },
}

/// Runs `ocean tree ...`.
pub async fn tree(c: &Client, cmd: TreeCommand) -> anyhow::Result<()> {
    match cmd.cmd {
        Some(TreeSub::Quota {
            node,
            cpus,
            mem,
            weight,
            clear,
        }) => quota(c, &node, cpus, mem, weight, clear).await,
        None => show(c, cmd.node.as_deref().unwrap_or(""), cmd.depth).await,
    }
}

async fn quota(
    c: &Client,
    node: &str,
    cpus: Option<f64>,
    mem: Option<u64>,
    weight: Option<f64>,
    clear: bool,
) -> anyhow::Result<()> {
    let path = format!("/v1/tree/{}/quota", urlencode(node));
    let v = if clear {
        c.request(Method::DELETE, &path, Body::None).await?
    } else if cpus.is_none() && mem.is_none() && weight.is_none() {
        c.request(Method::GET, &path, Body::None).await?
    } else {
        let mut body = Map::new();
        if let Some(x) = cpus {
            body.insert("cpus".into(), json!(x));
        }
        if let Some(x) = mem {
            body.insert("mem".into(), json!(x));
        }
        if let Some(x) = weight {
            body.insert("weight".into(), json!(x));
        }
        c.request(Method::PUT, &path, Body::Json(Value::Object(body)))
            .await?
    };
    if c.json || v.get("outcome").is_none() {
        print_json(&v);
    } else {
        println!("{}: {}", node, v["outcome"].as_str().unwrap_or("-"));
    }
    Ok(())
}

async fn show(c: &Client, node: &str, depth: u32) -> anyhow::Result<()> {
    let v = get(c, node).await?;
    if c.json {
        print_json(&v);
        return Ok(());
    }
    println!(
        "{:<48} {:>5} {:>6} {:>6} {:>8} {:>9}  {:<22} WEIGHT",
        "NODE", "JOBS", "TASKS", "AGENTS", "CPUS", "MEM(MiB)", "QUOTA"
    );
    let name = if node.is_empty() { "(root)" } else { node };
    line(name, &v["totals"], &v["quota"], &v["weight"]);
    print_children(c, &v, 1, depth).await
}

async fn get(c: &Client, node: &str) -> anyhow::Result<Value> {
    let path = format!("/v1/tree?node={}", urlencode(node));
    c.request(Method::GET, &path, Body::None)
        .await
        .with_context(|| format!("reading the tree at '{node}'"))
}

/// Prints `v`'s children indented by `level`, and theirs down to `depth`.
fn print_children<'a>(
    c: &'a Client,
    v: &'a Value,
    level: u32,
    depth: u32,
) -> futures::future::BoxFuture<'a, anyhow::Result<()>> {
    Box::pin(async move {
        let children = v["children"].as_array().cloned().unwrap_or_default();
        let n = children.len();
        for (i, ch) in children.iter().enumerate() {
            let branch = if i + 1 == n { "└─ " } else { "├─ " };
            let indent = "   ".repeat(level as usize - 1);
            let piece = ch["piece"].as_str().unwrap_or("?");
            let job = if ch["is_job"] == Value::Bool(true) {
                " (job)"
            } else {
                ""
            };
            line(
                &format!("{indent}{branch}{piece}{job}"),
                &ch["totals"],
                &ch["quota"],
                &ch["weight"],
            );
            if level < depth && ch["is_job"] != Value::Bool(true) {
                let sub = get(c, ch["node"].as_str().unwrap_or("")).await?;
                print_children(c, &sub, level + 1, depth).await?;
            }
        }
        Ok(())
    })
}

fn line(name: &str, t: &Value, quota: &Value, weight: &Value) {
    let q = if quota.is_null() {
        "-".to_string()
    } else {
        let mut parts = Vec::new();
        if let Some(c) = quota["cpus"].as_f64() {
            parts.push(format!("{c} cpus"));
        }
        if let Some(m) = quota["mem"].as_u64() {
            parts.push(format!("{m} MiB"));
        }
        parts.join(", ")
    };
    let w = weight.as_f64().map_or("-".to_string(), |w| w.to_string());
    println!(
        "{:<48} {:>5} {:>6} {:>6} {:>8.2} {:>9}  {:<22} {}",
        name,
        t["jobs"].as_u64().unwrap_or(0),
        t["tasks"].as_u64().unwrap_or(0),
        t["agents"].as_u64().unwrap_or(0),
        t["cpus"].as_f64().unwrap_or(0.0),
        t["mem"].as_u64().unwrap_or(0),
        q,
        w
    );
}

/// The agent's `--tags` (`cop.x_owt.y_idc.c3_loc.bj_status.online`) as
/// `KEY=VALUE` attributes, before the `--attr` ones (which win).
pub fn tag_attrs(tags: Option<&str>) -> anyhow::Result<Vec<String>> {
    let Some(tags) = tags else {
        return Ok(Vec::new());
    };
    let pairs = ocean_spec::tag_query::parse_tags(tags, "--tags")
        .map_err(|e| anyhow::anyhow!("{}: {}", e.field, e.reason))?;
    Ok(pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_become_attributes() {
        let a = tag_attrs(Some("cop.x_owt.y_pdl.z_idc.c3_loc.bj_status.online")).unwrap();
        assert_eq!(
            a,
            [
                "cop=x",
                "owt=y",
                "pdl=z",
                "idc=c3",
                "loc=bj",
                "status=online"
            ]
        );
        let e = tag_attrs(Some("idc.c3_rack.r1")).unwrap_err().to_string();
        assert!(e.starts_with("--tags: unknown tag 'rack'"), "{e}");
        assert!(tag_attrs(None).unwrap().is_empty());
    }
}
