//! Client subcommands: `status`, `job ...`, `member ...`, over the REST API.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use serde_json::{json, Value};

use crate::client::{Body, Client, Method};

/// `ocean job ...`
#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Create or update a job from a JSON or YAML spec file ('-' for
    /// stdin), then follow what it started: the deployment's progress
    /// until it ends (non-zero exit unless it succeeds), or a new job's
    /// instances until they run.
    Run {
        /// The spec file.
        file: PathBuf,
        /// Return at once after the put, following nothing.
        #[arg(long)]
        detach: bool,
        /// Give up following after this many seconds (the deployment goes on).
        #[arg(long, default_value_t = 900)]
        timeout: u64,
    },
    /// What putting a spec would do, committing nothing: the field-level
    /// diff, which tasks a deployment would replace and in what steps, and
    /// where placement would put the first batch (or why it would wait).
    Plan {
        /// The spec file (JSON or YAML, '-' for stdin).
        file: PathBuf,
    },
    /// Roll a job back to an earlier spec version (a deployment starts).
    Rollback {
        /// The job's service-tree id.
        id: String,
        /// The spec version to return to (default: the previous one).
        #[arg(long = "to")]
        to: Option<u64>,
    },
    /// List jobs.
    List {
        /// Only jobs under this service-tree node (an id prefix such as
        /// `cop.example_owt.dev_pdl.demo`).
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Show one job.
    Status {
        /// The job's service-tree id.
        id: String,
    },
    /// Set a job's number of instances.
    Scale {
        /// The job's service-tree id.
        id: String,
        /// How many instances to run.
        instances: u32,
    },
    /// Clear a job's restart back-off and flapping mark, so its missing
    /// tasks are launched now.
    ResetBackoff {
        /// The job's service-tree id.
        id: String,
    },
    /// Stop a job (deletes it; its tasks are killed).
    Stop {
        /// The job's service-tree id.
        id: String,
    },
}

/// `ocean member ...`
#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// List masters.
    List,
    /// Add a master (then start it with --join).
    Add {
        /// Its raft id.
        id: u64,
        /// Its gRPC address.
        #[arg(long)]
        grpc: String,
        /// Its REST address.
        #[arg(long, default_value = "")]
        http: String,
    },
    /// Remove a master.
    Remove {
        /// Its raft id.
        id: u64,
    },
}

pub fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

pub fn s(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    }
}

/// `ocean status`.
pub async fn status(c: &Client) -> anyhow::Result<()> {
    let v = c.request(Method::GET, "/v1/status", Body::None).await?;
    if c.json {
        print_json(&v);
        return Ok(());
    }
    println!(
        "master {}  role {}  term {}  leader {}",
        s(&v, "id"),
        s(&v, "role"),
        s(&v, "term"),
        s(&v, "leader")
    );
    println!(
        "commit {}  applied {}  version {}  jobs {}",
        s(&v, "commit_index"),
        s(&v, "applied_index"),
        s(&v, "version"),
        s(&v, "jobs")
    );
    println!(
        "{:<4} {:<8} {:<8} {:<22} {:<22}",
        "ID", "VOTER", "HEALTHY", "GRPC", "HTTP"
    );
    for m in v["members"].as_array().into_iter().flatten() {
        println!(
            "{:<4} {:<8} {:<8} {:<22} {:<22}",
            s(m, "id"),
            s(m, "voter"),
            s(m, "healthy"),
            s(m, "grpc_addr"),
            s(m, "http_addr")
        );
    }
    Ok(())
}

/// `ocean job ...`.
pub async fn job(c: &Client, cmd: JobCommand) -> anyhow::Result<()> {
    match cmd {
        JobCommand::Run {
            file,
            detach,
            timeout,
        } => {
            let v = c
                .request(Method::POST, "/v1/jobs", spec_body(&file)?)
                .await?;
            if c.json {
                print_json(&v);
            } else {
                println!(
                    "job {} {} (version {})",
                    s(&v, "id"),
                    s(&v, "outcome"),
                    s(&v, "version")
                );
            }
            if !detach {
                crate::cmd_deploy::follow_run(c, &v, std::time::Duration::from_secs(timeout))
                    .await?;
            }
        }
        JobCommand::Plan { file } => crate::cmd_deploy::plan(c, &file).await?,
        JobCommand::Rollback { id, to } => crate::cmd_deploy::rollback(c, &id, to).await?,
        JobCommand::List { prefix } => {
            let path = match prefix {
                Some(p) => format!("/v1/jobs?prefix={}", urlencode(&p)),
                None => "/v1/jobs".into(),
            };
            let v = c.request(Method::GET, &path, Body::None).await?;
            if c.json {
                print_json(&v);
                return Ok(());
            }
            println!("{:<90} {:>9} {:>8}", "ID", "INSTANCES", "VERSION");
            for j in v["jobs"].as_array().into_iter().flatten() {
                println!(
                    "{:<90} {:>9} {:>8}",
                    s(j, "id"),
                    s(&j["spec"], "instances"),
                    s(j, "updated_version")
                );
            }
        }
        JobCommand::Status { id } => {
            let v = c
                .request(
                    Method::GET,
                    &format!("/v1/jobs/{}", urlencode(&id)),
                    Body::None,
                )
                .await?;
            print_json(&v);
        }
        JobCommand::Scale { id, instances } => {
            let v = c
                .request(
                    Method::POST,
                    &format!("/v1/jobs/{}/scale", urlencode(&id)),
                    Body::Json(json!({ "instances": instances })),
                )
                .await?;
            if c.json {
                print_json(&v);
            } else {
                println!(
                    "job {} scaled to {} ({}, version {})",
                    id,
                    instances,
                    s(&v, "outcome"),
                    s(&v, "version")
                );
            }
        }
        JobCommand::ResetBackoff { id } => {
            let v = c
                .request(
                    Method::POST,
                    &format!("/v1/jobs/{}/reset-backoff", urlencode(&id)),
                    Body::None,
                )
                .await?;
            if c.json {
                print_json(&v);
            } else {
                println!(
                    "job {}: back-off reset ({}, version {})",
                    id,
                    s(&v, "outcome"),
                    s(&v, "version")
                );
            }
        }
        JobCommand::Stop { id } => {
            let v = c
                .request(
                    Method::DELETE,
                    &format!("/v1/jobs/{}", urlencode(&id)),
                    Body::None,
                )
                .await?;
            if c.json {
                print_json(&v);
            } else {
                println!("job {} stopped (version {})", id, s(&v, "version"));
            }
        }
    }
    Ok(())
}

/// `ocean member ...`.
pub async fn member(c: &Client, cmd: MemberCommand) -> anyhow::Result<()> {
    let v = match cmd {
        MemberCommand::List => c.request(Method::GET, "/v1/members", Body::None).await?,
        MemberCommand::Add { id, grpc, http } => {
            c.request(
                Method::POST,
                "/v1/members",
                Body::Json(json!({"id": id, "grpc_addr": grpc, "http_addr": http})),
            )
            .await?
        }
        MemberCommand::Remove { id } => {
            c.request(Method::DELETE, &format!("/v1/members/{id}"), Body::None)
                .await?
        }
    };
    print_json(&v);
    Ok(())
}

/// A spec file ('-': stdin) as a request body, typed by its extension.
pub fn spec_body(file: &std::path::Path) -> anyhow::Result<Body> {
    let bytes = if file.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf).context("reading stdin")?;
        buf
    } else {
        std::fs::read(file).with_context(|| format!("reading {}", file.display()))?
    };
    let content_type = match file.extension().and_then(|e| e.to_str()) {
        Some("yaml" | "yml") => "application/yaml",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    };
    Ok(Body::Raw {
        bytes,
        content_type: content_type.into(),
    })
}

/// Percent-encodes what may appear in an id or prefix.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
