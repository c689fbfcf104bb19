//! `ocean cache ...`: Redis caches, kept by the redis framework, over the
//! REST API (`/v1/caches`).

use anyhow::bail;
use clap::Subcommand;
use serde_json::{json, Value};

use crate::client::{Body, Client, Method};
use crate::cmd_client::{print_json, urlencode};

/// `ocean cache ...`
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Create a cache: a Redis Cluster of SHARDS primaries with REPLICAS
    /// replicas each.
    Create {
        /// The cache's name (a lowercase DNS label, at most 50 characters).
        name: String,
        /// The owning product line.
        #[arg(long)]
        product_line: String,
        /// Shards (primaries), 1..=64.
        #[arg(long, default_value_t = 3)]
        shards: u32,
        /// Replicas per shard, 0..=5.
        #[arg(long, default_value_t = 1)]
        replicas: u32,
        /// Memory per instance in MiB (maxmemory; the task's limit adds room).
        #[arg(long, default_value_t = 256)]
        memory_mb: u64,
        /// off, rdb or aof.
        #[arg(long, default_value = "off")]
        persistence: String,
    },
    /// List caches (optionally of one product line).
    List {
        /// Only this product line's caches.
        #[arg(long)]
        product_line: Option<String>,
    },
    /// A cache's shards, roles, hosts, memory and offsets.
    Status {
        /// The cache's name.
        name: String,
    },
    /// Change a cache's replicas per shard, or its shards: slots move
    /// online to the new shards (or off the removed ones), balanced by
    /// bytes; `ocean cache status` shows the progress.
    Scale {
        /// The cache's name.
        name: String,
        /// New number of shards.
        #[arg(long)]
        shards: Option<u32>,
        /// New replicas per shard.
        #[arg(long)]
        replicas: Option<u32>,
    },
    /// Hand one shard over to a replica gracefully (no acknowledged write
    /// lost); returns once the replica serves the shard's slots.
    Failover {
        /// The cache's name.
        name: String,
        /// The shard.
        #[arg(long)]
        shard: u32,
        /// The replica's task (default: the synced replica furthest ahead).
        #[arg(long)]
        task: Option<String>,
    },
    /// Rebuild a replica: its data is dropped and resynced from its primary.
    Rebuild {
        /// The cache's name.
        name: String,
        /// The replica's task.
        #[arg(long)]
        task: String,
    },
    /// Back a cache up: an RDB snapshot per shard, taken on a synced
    /// replica, and a manifest of key counts, slots and digests; prints
    /// the manifest.
    Backup {
        /// The cache's name.
        name: String,
        /// List the cache's backups instead.
        #[arg(long)]
        list: bool,
    },
    /// Restore a backup into a new cache of the backed-up shape (one node
    /// per shard starts from its shard's RDB snapshot), verified against
    /// the backup's manifest.
    Restore {
        /// The cache to create (must not exist).
        name: String,
        /// The cache the backup was taken of.
        #[arg(long)]
        from: String,
        /// The backup's id (`ocean cache backup NAME --list`).
        #[arg(long)]
        backup: String,
    },
    /// Delete a cache and its instances.
    Delete {
        /// The cache's name.
        name: String,
    },
}

/// Runs `ocean cache ...`.
pub async fn cache(c: &Client, cmd: CacheCommand) -> anyhow::Result<()> {
    let path = |name: &str, rest: &str| format!("/v1/caches/{}{rest}", urlencode(name));
    let out = match cmd {
        CacheCommand::Create {
            name,
            product_line,
            shards,
            replicas,
            memory_mb,
            persistence,
        } => {
            let body = json!({
                "name": name, "product_line": product_line, "shards": shards,
                "replicas": replicas, "memory_mb": memory_mb, "persistence": persistence,
            });
            c.request(Method::POST, "/v1/caches", Body::Json(body))
                .await?
        }
        CacheCommand::List { product_line } => {
            let q = product_line
                .map(|p| format!("?product_line={}", urlencode(&p)))
                .unwrap_or_default();
            let v = c
                .request(Method::GET, &format!("/v1/caches{q}"), Body::None)
                .await?;
            if !c.json {
                print_list(&v);
                return Ok(());
            }
            v
        }
        CacheCommand::Status { name } => {
            let v = c.request(Method::GET, &path(&name, ""), Body::None).await?;
            if !c.json {
                print_status(&v);
                return Ok(());
            }
            v
        }
        CacheCommand::Scale {
            name,
            shards,
            replicas,
        } => {
            if shards.is_none() && replicas.is_none() {
                bail!("scale: give --shards or --replicas");
            }
            let mut body = json!({});
            if let Some(s) = shards {
                body["shards"] = s.into();
            }
            if let Some(r) = replicas {
                body["replicas"] = r.into();
            }
            c.request(Method::POST, &path(&name, "/scale"), Body::Json(body))
                .await?
        }
        CacheCommand::Failover { name, shard, task } => {
            let mut body = json!({ "shard": shard });
            if let Some(t) = task {
                body["task"] = t.into();
            }
            c.request(Method::POST, &path(&name, "/failover"), Body::Json(body))
                .await?
        }
        CacheCommand::Rebuild { name, task } => {
            c.request(
                Method::POST,
                &path(&name, "/rebuild"),
                Body::Json(json!({ "task": task })),
            )
            .await?
        }
        CacheCommand::Backup { name, list: true } => {
            c.request(Method::GET, &path(&name, "/backups"), Body::None)
                .await?
        }
        CacheCommand::Backup { name, list: false } => {
            c.request(Method::POST, &path(&name, "/backup"), Body::Json(json!({})))
                .await?
        }
        CacheCommand::Restore { name, from, backup } => {
            c.request(
                Method::POST,
                &path(&name, "/restore"),
                Body::Json(json!({ "from": from, "backup": backup })),
            )
            .await?
        }
        CacheCommand::Delete { name } => {
            c.request(Method::DELETE, &path(&name, ""), Body::None)
                .await?
        }
    };
    print_json(&out);
    Ok(())
}

fn print_list(v: &Value) {
    println!(
        "{:<24} {:<14} {:>6} {:>8} {:>9} {:>7}  {:<9} CREATED(ms)",
        "NAME", "PRODUCT LINE", "SHARDS", "REPLICAS", "INSTANCES", "RUNNING", "STATE"
    );
    for c in v["caches"].as_array().into_iter().flatten() {
        println!(
            "{:<24} {:<14} {:>6} {:>8} {:>9} {:>7}  {:<9} {}",
            c["name"].as_str().unwrap_or(""),
            c["product_line"].as_str().unwrap_or(""),
            c["shards"],
            c["replicas"],
            c["instances"],
            c["running"],
            c["state"].as_str().unwrap_or(""),
            c["created_ms"],
        );
    }
}

fn print_status(v: &Value) {
    println!(
        "{} ({}): {} — {} of {} running, {} slots served",
        v["name"].as_str().unwrap_or(""),
        v["product_line"].as_str().unwrap_or(""),
        v["state"].as_str().unwrap_or(""),
        v["status"]["running"],
        v["instances"],
        v["status"]["slots_served"],
    );
    let r = &v["status"]["resharding"];
    if r.is_object() {
        println!(
            "resharding {} -> {} shards: {} of {} slots moved, {} keys{}",
            r["from_shards"],
            r["to_shards"],
            r["slots_moved"],
            r["slots_planned"],
            r["keys_moved"],
            r["waiting"]
                .as_str()
                .map(|w| format!(" (waiting: {w})"))
                .unwrap_or_default(),
        );
    }
    println!(
        "{:>5} {:<8} {:<12} {:<22} {:>6} {:>12} {:>10} {:>8}",
        "SHARD", "ROLE", "HOST", "ADDRESS", "SLOTS", "OFFSET", "MEMORY", "KEYS"
    );
    for n in v["status"]["nodes"].as_array().into_iter().flatten() {
        println!(
            "{:>5} {:<8} {:<12} {:<22} {:>6} {:>12} {:>10} {:>8}",
            n["shard"],
            n["role"].as_str().unwrap_or(""),
            n["host"].as_str().unwrap_or(""),
            n["addr"].as_str().unwrap_or(""),
            n["slots"],
            n["offset"],
            n["used_memory"],
            n["keys"],
        );
    }
}
