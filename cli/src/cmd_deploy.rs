//! Deployments from the command line: `ocean deployment ...`, `ocean job
//! plan FILE`, `ocean job rollback ID [--to N]`, and following a
//! deployment's progress for `ocean job run`.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use clap::Subcommand;
use serde_json::{json, Value};

use crate::client::{Body, Client, Method};
use crate::cmd_client::{print_json, s, spec_body, urlencode};

/// `ocean deployment ...`
#[derive(Debug, Subcommand)]
pub enum DeploymentCommand {
    /// List deployments, newest first per job.
    List {
        /// Only this job's deployments.
        #[arg(long)]
        job: Option<String>,
    },
    /// Show one deployment with each task's progress.
    Status {
        /// The deployment's id (`JOB@SPEC_VERSION`).
        id: String,
    },
    /// Pause a running deployment.
    Pause(ActionArgs),
    /// Resume a paused deployment.
    Resume(ActionArgs),
    /// Promote a deployment's canaries.
    Promote(ActionArgs),
    /// Fail a deployment (with auto_revert, the job rolls back).
    Fail(ActionArgs),
    /// Cancel a deployment, leaving the tasks as they are.
    Cancel(ActionArgs),
}

/// The id and an optional reason of a deployment action.
#[derive(Debug, clap::Args)]
pub struct ActionArgs {
    /// The deployment's id (`JOB@SPEC_VERSION`).
    id: String,
    /// Why, kept in the deployment's reason.
    #[arg(long, default_value = "")]
    reason: String,
}

/// `ocean deployment ...`.
pub async fn deployment(c: &Client, cmd: DeploymentCommand) -> anyhow::Result<()> {
    let (action, args) = match cmd {
        DeploymentCommand::List { job } => {
            let path = match job {
                Some(j) => format!("/v1/deployments?job={}", urlencode(&j)),
                None => "/v1/deployments".into(),
            };
            let v = c.request(Method::GET, &path, Body::None).await?;
            if c.json {
                print_json(&v);
                return Ok(());
            }
            println!(
                "{:<72} {:<22} {:>9} {:>9}  REASON",
                "ID", "STATE", "REPLACED", "HEALTHY"
            );
            for d in v["deployments"].as_array().into_iter().flatten() {
                println!(
                    "{:<72} {:<22} {:>4}/{:<4} {:>4}/{:<4}  {}",
                    s(d, "id"),
                    s(d, "state"),
                    s(d, "replaced"),
                    s(d, "instances"),
                    s(d, "healthy"),
                    s(d, "instances"),
                    s(d, "reason")
                );
            }
            return Ok(());
        }
        DeploymentCommand::Status { id } => {
            let v = get_deployment(c, &id).await?;
            if c.json {
                print_json(&v);
                return Ok(());
            }
            println!("deployment {}", s(&v, "id"));
            println!(
                "job {}  spec version {} (from {})",
                s(&v, "job_id"),
                s(&v, "spec_version"),
                s(&v, "from_spec_version")
            );
            println!("{}", progress_line(&v, now_ms()));
            println!(
                "{:<70} {:<4} {:<10} {:<8} {:<9} HOST",
                "TASK", "VER", "STATE", "HEALTHY", "REPLACED"
            );
            for t in v["tasks"].as_array().into_iter().flatten() {
                println!(
                    "{:<70} {:<4} {:<10} {:<8} {:<9} {}",
                    s(t, "id"),
                    s(t, "version"),
                    s(t, "state"),
                    s(t, "healthy"),
                    s(t, "replaced"),
                    s(t, "host")
                );
            }
            return Ok(());
        }
        DeploymentCommand::Pause(a) => ("pause", a),
        DeploymentCommand::Resume(a) => ("resume", a),
        DeploymentCommand::Promote(a) => ("promote", a),
        DeploymentCommand::Fail(a) => ("fail", a),
        DeploymentCommand::Cancel(a) => ("cancel", a),
    };
    let v = c
        .request(
            Method::POST,
            &format!("/v1/deployments/{}/{action}", urlencode(&args.id)),
            Body::Json(json!({ "reason": args.reason })),
        )
        .await?;
    if c.json {
        print_json(&v);
    } else {
        let d = get_deployment(c, &args.id).await?;
        println!(
            "deployment {}: {action} {} (version {}); now {}",
            args.id,
            s(&v, "outcome"),
            s(&v, "version"),
            s(&d, "state")
        );
    }
    Ok(())
}

async fn get_deployment(c: &Client, id: &str) -> anyhow::Result<Value> {
    c.request(
        Method::GET,
        &format!("/v1/deployments/{}", urlencode(id)),
        Body::None,
    )
    .await
}

/// `ocean job rollback ID [--to N]`.
pub async fn rollback(c: &Client, id: &str, to: Option<u64>) -> anyhow::Result<()> {
    let body = match to {
        Some(n) => json!({ "to_version": n }),
        None => json!({}),
    };
    let v = c
        .request(
            Method::POST,
            &format!("/v1/jobs/{}/rollback", urlencode(id)),
            Body::Json(body),
        )
        .await?;
    if c.json {
        print_json(&v);
    } else {
        println!(
            "job {id} rolled back: now spec version {} ({}, version {}); follow it with `ocean deployment status {id}@{}`",
            s(&v, "spec_version"),
            s(&v, "outcome"),
            s(&v, "version"),
            s(&v, "spec_version"),
        );
    }
    Ok(())
}

/// `ocean job plan FILE`.
pub async fn plan(c: &Client, file: &Path) -> anyhow::Result<()> {
    let body = spec_body(file)?;
    let id = spec_id(&body)?;
    let v = c
        .request(
            Method::POST,
            &format!("/v1/jobs/{}/plan", urlencode(&id)),
            body,
        )
        .await?;
    if c.json {
        print_json(&v);
        return Ok(());
    }
    println!("job {}", s(&v, "job_id"));
    if v["new_job"] == true {
        println!("new job");
    } else {
        println!("running spec version {}", s(&v, "current_spec_version"));
    }
    let changes = v["changes"].as_array().cloned().unwrap_or_default();
    if changes.is_empty() && v["new_job"] != true {
        println!("no field changes");
    } else if !changes.is_empty() {
        println!("changes:");
        for ch in &changes {
            let mark = if ch["replaces_tasks"] == true {
                "*"
            } else {
                " "
            };
            let show = |k| {
                ch.get(k)
                    .map_or("(absent)".into(), |x: &Value| x.to_string())
            };
            println!(
                "  {mark} {}: {} -> {}",
                s(ch, "path"),
                show("old"),
                show("new")
            );
        }
        println!("  (* replaces tasks)");
    }
    println!("{}", s(&v, "summary"));
    if v["replaces_tasks"] == true {
        println!(
            "tasks to replace: {} of {} live; surge {} floor {}",
            s(&v, "tasks_to_replace"),
            s(&v, "live_tasks"),
            s(&v, "surge"),
            s(&v, "floor")
        );
    }
    let steps = v["steps"].as_array().cloned().unwrap_or_default();
    if !steps.is_empty() {
        println!("steps:");
        for (i, st) in steps.iter().enumerate() {
            println!("  {}. {}", i + 1, s(st, "detail"));
        }
    }
    let p = &v["placement"];
    if p["asked"].as_u64().unwrap_or(0) > 0 {
        println!(
            "placement of the first {} task(s): {} placed, {} waiting",
            s(p, "asked"),
            p["placed"].as_array().map_or(0, Vec::len),
            s(p, "waiting")
        );
        for t in p["placed"].as_array().into_iter().flatten() {
            println!(
                "  {} on {} ({})",
                s(t, "task"),
                s(t, "hostname"),
                s(t, "agent")
            );
        }
        if p["waiting"].as_u64().unwrap_or(0) > 0 {
            println!("  waiting: {}", s(p, "waiting_reason"));
        }
        for t in p["preempted"].as_array().into_iter().flatten() {
            println!("  would preempt {}", t.as_str().unwrap_or_default());
        }
    }
    Ok(())
}

/// The `id` of a spec body, read enough to name the plan's path.
fn spec_id(body: &Body) -> anyhow::Result<String> {
    let Body::Raw { bytes, .. } = body else {
        bail!("spec: not a file's bytes");
    };
    // YAML is a superset of JSON: one parser reads both.
    let v: serde_yaml::Value =
        serde_yaml::from_slice(bytes).map_err(|e| anyhow!("spec: does not parse: {e}"))?;
    v.get("id")
        .and_then(|i| i.as_str())
        .map(str::to_string)
        .ok_or_else(|| anyhow!("id: missing from the spec"))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One line of a deployment's progress: a bar of replaced tasks, the new
/// healthy ones, the state and its reason, and the current wait.
pub fn progress_line(d: &Value, now: u64) -> String {
    let total = d["instances"].as_u64().unwrap_or(0);
    let replaced = d["replaced"].as_u64().unwrap_or(0);
    let healthy = d["healthy"].as_u64().unwrap_or(0);
    const WIDTH: u64 = 20;
    // A deployment of no tasks is complete.
    let filled = (replaced.min(total) * WIDTH)
        .checked_div(total)
        .unwrap_or(WIDTH);
    let bar: String = (0..WIDTH)
        .map(|i| if i < filled { '#' } else { '-' })
        .collect();
    let mut line = format!(
        "[{bar}] replaced {replaced}/{total}  new healthy {healthy}/{total}  new {} old {}  {}",
        s(d, "new_tasks"),
        s(d, "old_tasks"),
        s(d, "state")
    );
    let id = s(d, "id");
    match d["state"].as_str().unwrap_or_default() {
        "paused" => line.push_str(&format!(" (resume: ocean deployment resume {id})")),
        "waiting_for_promotion" => {
            line.push_str(&format!(" (promote: ocean deployment promote {id})"))
        }
        _ => {}
    }
    let next = d["next_at_ms"].as_u64().unwrap_or(0);
    if d["state"] == "running" && next > now {
        line.push_str(&format!("  sleeping {:.1}s", (next - now) as f64 / 1000.0));
    }
    let reason = s(d, "reason");
    if !reason.is_empty() && reason != "-" {
        line.push_str(&format!("  reason: {reason}"));
    }
    line
}

/// What the follow of `ocean job run` ends with.
const ENDED_OK: &str = "succeeded";
const ENDED_BAD: [&str; 3] = ["failed", "cancelled", "rolled_back"];

/// Follows what a put started: the deployment it created until it ends
/// (an error unless it succeeded), else the job's instances until they
/// run. Progress goes to stdout, or stderr under `--json` (whose stdout is
/// the put's answer). Gives up after `timeout`.
pub async fn follow_run(c: &Client, put: &Value, timeout: Duration) -> anyhow::Result<()> {
    let job = s(put, "id");
    let version = put["version"].as_u64().unwrap_or(0);
    let spec_version = put["spec_version"].as_u64().unwrap_or(0);
    let deadline = Instant::now() + timeout;
    let mut out: Box<dyn Write> = if c.json {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::stdout())
    };
    let mut last = String::new();
    let mut say = |line: String| {
        if line != last {
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
            last = line;
        }
    };
    let mut dep_id: Option<String> = None;
    loop {
        if Instant::now() > deadline {
            bail!(
                "timed out after {}s following job {job} (it goes on; see `ocean deployment list --job {job}`)",
                timeout.as_secs()
            );
        }
        let status = c
            .request(
                Method::GET,
                &format!("/v1/jobs/{}?min_version={version}", urlencode(&job)),
                Body::None,
            )
            .await?;
        if dep_id.is_none() {
            let list = c
                .request(
                    Method::GET,
                    &format!(
                        "/v1/deployments?job={}&min_version={version}",
                        urlencode(&job)
                    ),
                    Body::None,
                )
                .await?;
            dep_id = list["deployments"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|d| {
                    d["spec_version"].as_u64() == Some(spec_version)
                        && d["created_version"].as_u64().unwrap_or(0) >= version
                })
                .map(|d| s(d, "id"));
        }
        let waiting = match &status["waiting"] {
            Value::String(w) => format!("  waiting: {w}"),
            _ => String::new(),
        };
        match &dep_id {
            Some(id) => {
                let d = get_deployment(c, id).await?;
                say(format!("{}{waiting}", progress_line(&d, now_ms())));
                let state = d["state"].as_str().unwrap_or_default();
                if state == ENDED_OK {
                    say(format!("deployment {id} succeeded"));
                    return Ok(());
                }
                if ENDED_BAD.contains(&state) {
                    bail!("deployment {id} {state}: {}", s(&d, "reason"));
                }
            }
            None => {
                let want = status["spec"]["instances"].as_u64().unwrap_or(0);
                let running = status["running"].as_u64().unwrap_or(0);
                say(format!("job {job}: {running}/{want} running{waiting}"));
                if running >= want {
                    return Ok(());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
