//! `ocean cron ...`: periodic jobs, kept by the cron framework in its
//! namespace of the masters' store (`crons/<id>` the spec, `state/<id>`
//! what it did). Over the REST API like the other client commands.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Subcommand;
use serde_json::Value;

use crate::client::{Body, Client, Method};
use crate::cmd_client::{print_json, urlencode};

const BASE: &str = "/v1/frameworks/cron/kv";

/// `ocean cron ...`
#[derive(Debug, Subcommand)]
pub enum CronCommand {
    /// Create a cron job from a JSON or YAML spec ('-' for stdin):
    /// `{"id", "schedule": "*/5 * * * *", "time_zone": "UTC", "job": {job
    /// spec without id}, "keep_runs": 5, "concurrency": "forbid"}`.
    Create {
        /// The spec file.
        file: PathBuf,
        /// Replace an existing cron job of the same id.
        #[arg(long)]
        replace: bool,
    },
    /// List cron jobs with their last tick and runs.
    List,
    /// Show one cron job: its spec and what the framework did.
    Status {
        /// The cron job's service-tree id.
        id: String,
    },
    /// Delete a cron job (its runs are deleted by the framework).
    Delete {
        /// The cron job's service-tree id.
        id: String,
    },
}

fn read(file: &PathBuf) -> anyhow::Result<Vec<u8>> {
    if file.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf).context("reading stdin")?;
        Ok(buf)
    } else {
        std::fs::read(file).with_context(|| format!("reading {}", file.display()))
    }
}

/// Parses and checks a cron spec as the framework will: the schedule, the
/// time zone, and the job template as a job spec (with a run's id).
fn check(bytes: &[u8]) -> anyhow::Result<ocean_cron::CronJobSpec> {
    let spec: ocean_cron::CronJobSpec =
        serde_yaml::from_slice(bytes).map_err(|e| anyhow::anyhow!("invalid cron spec: {e}"))?;
    spec.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let run = ocean_cron::run_job_id(&spec.id, 0).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut job = spec.job.clone();
    if let Some(o) = job.as_object_mut() {
        o.insert("id".into(), run.into());
        o.insert("type".into(), "batch".into());
    }
    let json = serde_json::to_vec(&job)?;
    if let Err(e) = ocean_spec::parse_job_spec(&json, ocean_spec::Format::Json) {
        let errors: Vec<String> = e
            .errors
            .iter()
            .filter(|f| f.field != "id")
            .map(|f| format!("job.{}: {}", f.field, f.reason))
            .collect();
        if !errors.is_empty() {
            bail!("invalid cron spec\n  {}", errors.join("\n  "));
        }
    }
    Ok(spec)
}

/// Runs `ocean cron ...`.
pub async fn cron(c: &Client, cmd: CronCommand) -> anyhow::Result<()> {
    match cmd {
        CronCommand::Create { file, replace } => {
            let spec = check(&read(&file)?)?;
            let mut path = format!("{BASE}/crons/{}", urlencode(&spec.id));
            if !replace {
                path.push_str("?expected_revision=0");
            }
            let body = Body::Raw {
                bytes: serde_json::to_vec(&spec)?,
                content_type: "application/json".into(),
            };
            let v = c.request(Method::PUT, &path, body).await?;
            if c.json {
                print_json(&v);
            } else {
                println!("{} {}", spec.id, v["outcome"].as_str().unwrap_or(""));
            }
        }
        CronCommand::List => {
            let specs = c
                .request(Method::GET, &format!("{BASE}?prefix=crons/"), Body::None)
                .await?;
            let states = c
                .request(Method::GET, &format!("{BASE}?prefix=state/"), Body::None)
                .await?;
            if c.json {
                print_json(&serde_json::json!({"crons": specs["keys"], "states": states["keys"]}));
                return Ok(());
            }
            let state_of = |id: &str| -> Value {
                states["keys"]
                    .as_array()
                    .and_then(|a| a.iter().find(|k| k["key"] == format!("state/{id}")))
                    .map(|k| k["value"].clone())
                    .unwrap_or(Value::Null)
            };
            println!(
                "{:<70} {:<16} {:>5} {:>7}  LAST TICK",
                "ID", "SCHEDULE", "RUNS", "SKIPPED"
            );
            for k in specs["keys"].as_array().into_iter().flatten() {
                let spec = &k["value"];
                let id = spec["id"].as_str().unwrap_or("");
                let st = state_of(id);
                let last = st["last_tick_ms"].as_i64().map_or("-".to_string(), |ms| {
                    let secs = ms / 1000;
                    format!("{secs} s since epoch")
                });
                println!(
                    "{:<70} {:<16} {:>5} {:>7}  {}{}",
                    id,
                    spec["schedule"].as_str().unwrap_or(""),
                    st["runs"].as_array().map_or(0, |r| r.len()),
                    st["skipped"].as_u64().unwrap_or(0),
                    last,
                    st["error"]
                        .as_str()
                        .map(|e| format!("  error: {e}"))
                        .unwrap_or_default(),
                );
            }
        }
        CronCommand::Status { id } => {
            let spec = c
                .request(
                    Method::GET,
                    &format!("{BASE}/crons/{}", urlencode(&id)),
                    Body::None,
                )
                .await?;
            let state = c
                .request(
                    Method::GET,
                    &format!("{BASE}/state/{}", urlencode(&id)),
                    Body::None,
                )
                .await
                .map(|v| v["value"].clone())
                .unwrap_or(Value::Null);
            print_json(&serde_json::json!({"spec": spec["value"], "state": state}));
        }
        CronCommand::Delete { id } => {
            let v = c
                .request(
                    Method::DELETE,
                    &format!("{BASE}/crons/{}", urlencode(&id)),
                    Body::None,
                )
                .await?;
            if c.json {
                print_json(&v);
            } else {
                println!("{id} deleted");
            }
        }
    }
    Ok(())
}
