//! `ocean operator ...`: the masters' own maintenance. `snapshot save FILE`
//! writes the leader's state at one applied index (with its index, term
//! and a checksum) to FILE; `snapshot restore FILE` puts it onto a fresh
//! cluster (`--force` replaces a cluster that holds jobs, tasks or keys).
//! Both talk to the leader, found through any master of `--addr`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use futures::StreamExt;
use serde_json::Value;

use crate::client::{Body, Client, Method};
use crate::cmd_client::print_json;

/// `ocean operator ...`
#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Save or restore the masters' state.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
}

/// `ocean operator snapshot ...`
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Write the leader's state (jobs, tasks, agents, frameworks' keys) at
    /// one applied index to FILE.
    Save {
        /// Where to write it (replaced only once the whole file is read).
        file: PathBuf,
    },
    /// Restore FILE onto this cluster, which must hold no job, task or
    /// key unless --force.
    Restore {
        /// A file written by `ocean operator snapshot save`.
        file: PathBuf,
        /// Replace the jobs, tasks and keys the cluster holds.
        #[arg(long)]
        force: bool,
    },
}

/// Runs `ocean operator ...`.
pub async fn operator(client: &Client, cmd: OperatorCommand) -> anyhow::Result<()> {
    let OperatorCommand::Snapshot(cmd) = cmd;
    let leader = leader(client).await?;
    match cmd {
        SnapshotCommand::Save { file } => save(&leader, &file, client.json).await,
        SnapshotCommand::Restore { file, force } => {
            let bytes = std::fs::read(&file)
                .with_context(|| format!("read snapshot {}", file.display()))?;
            let path = format!("/v1/snapshot/restore?force={force}");
            let body = Body::Raw {
                bytes,
                content_type: "application/octet-stream".into(),
            };
            let r = leader.request(Method::POST, &path, body).await?;
            if client.json {
                print_json(&r);
            } else {
                let s = &r["snapshot"];
                println!(
                    "restored {} (index {}, term {}): {} jobs, {} agents, {} tasks, {} keys; cluster version {}",
                    file.display(),
                    s["index"],
                    s["term"],
                    s["jobs"],
                    s["agents"],
                    s["tasks"],
                    s["keys"],
                    r["version"]
                );
            }
            Ok(())
        }
    }
}

/// A client for the leader's REST address.
async fn leader(client: &Client) -> anyhow::Result<Client> {
    let l: Value = client
        .request(Method::GET, "/v1/leader", Body::None)
        .await
        .context("find the leader")?;
    let addr = l["http_addr"]
        .as_str()
        .filter(|a| !a.is_empty())
        .context("the leader has no REST address")?;
    Client::new(addr, client.json, client.token.clone(), &client.tls)
}

async fn save(leader: &Client, file: &Path, json: bool) -> anyhow::Result<()> {
    let mut body = leader.stream("/v1/snapshot").await?;
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        bytes.extend_from_slice(&chunk?);
    }
    // Written beside the target, then renamed: a failed save never leaves
    // a half file under the name a restore would read.
    let tmp = file.with_extension("partial");
    std::fs::write(&tmp, &bytes).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, file).with_context(|| format!("rename to {}", file.display()))?;
    let header = header_of(&bytes);
    if json {
        print_json(&header);
    } else {
        println!(
            "saved {} (index {}, term {}, version {}): {} jobs, {} agents, {} tasks, {} keys, sha256 {}",
            file.display(),
            header["index"],
            header["term"],
            header["version"],
            header["jobs"],
            header["agents"],
            header["tasks"],
            header["keys"],
            header["sha256"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

/// The JSON header line of a snapshot file (its second line).
fn header_of(file: &[u8]) -> Value {
    file.split(|b| *b == b'\n')
        .nth(1)
        .and_then(|line| serde_json::from_slice(line).ok())
        .unwrap_or(Value::Null)
}
