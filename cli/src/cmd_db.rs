//! `ocean db ...`: MySQL (MariaDB) databases, kept by the mysql framework,
//! over the REST API (`/v1/databases`).

use clap::Subcommand;
use serde_json::{json, Value};

use crate::client::{Body, Client, Method};
use crate::cmd_client::{print_json, urlencode};

/// `ocean db ...`
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Create a database: INSTANCES mariadbd tasks, one primary and
    /// semi-synchronous standbys.
    Create {
        /// The database's name (a lowercase DNS label, at most 40 characters).
        name: String,
        /// The cluster tag (staging, production, ...).
        #[arg(long)]
        cluster: String,
        /// The owning product line.
        #[arg(long)]
        product_line: String,
        /// The owning department.
        #[arg(long)]
        department: String,
        /// The full name, e.g. /miui/browser/key.
        #[arg(long)]
        full_name: String,
        /// A template of `GET /v1/database-templates`.
        #[arg(long, default_value = "mysql-general")]
        template: String,
        /// Instances, 1..=9.
        #[arg(long, default_value_t = 3)]
        instances: u32,
    },
    /// List databases (optionally of one product line).
    List {
        /// Only this product line's databases.
        #[arg(long)]
        product_line: Option<String>,
    },
    /// A database's state, primary, instances and replication.
    Status {
        /// The database's name.
        name: String,
    },
    /// Hand the primary's role to a replica, losslessly: writes stop on
    /// the primary, the replica applies everything, then it is promoted
    /// and DNS follows. Returns once it is done.
    Switchover {
        /// The database's name.
        name: String,
        /// The replica's task (default: the replicating one furthest ahead).
        #[arg(long)]
        to: Option<String>,
    },
    /// Change a database's number of instances (new ones join as
    /// replicas; a scale-in never stops the primary).
    Scale {
        /// The database's name.
        name: String,
        /// Instances, 1..=9, at most one per host.
        #[arg(long)]
        instances: u32,
    },
    /// Rebuild an instance: its data is dropped and streamed again from a
    /// healthy one (mariadb-backup); returns once that started.
    Rebuild {
        /// The database's name.
        name: String,
        /// The instance's task (not the primary).
        #[arg(long)]
        task: String,
    },
    /// Back a database up with mariadb-backup on a replica, with a
    /// checksum-verified second copy; prints the backup once done.
    Backup {
        /// The database's name.
        name: String,
        /// Base directory on the agents' hosts (a shared mount).
        #[arg(long)]
        dir: Option<String>,
        /// Base directory of the second copy (off-site).
        #[arg(long)]
        offsite_dir: Option<String>,
        /// List the database's backups instead.
        #[arg(long)]
        list: bool,
    },
    /// Restore a backup into a new database (its instances start from the
    /// backup, checked against its checksums).
    Restore {
        /// The database the backup was taken of.
        name: String,
        /// The backup's id (`ocean db backup NAME --list`).
        #[arg(long)]
        backup: String,
        /// The new database's name.
        #[arg(long)]
        into: String,
        /// Its full name (default: the original's with the last part replaced).
        #[arg(long)]
        full_name: Option<String>,
        /// Its instances (default: the original's).
        #[arg(long)]
        instances: Option<u32>,
        /// A point in time: replay the archived binlogs up to this GTID
        /// (domain-server-seq) after the backup, or up to the last commit
        /// before this RFC 3339 time (2026-12-08T01:02:03Z).
        #[arg(long)]
        until: Option<String>,
    },
    /// Take backups on a schedule: one every EVERY_HOURS, each kept
    /// RETENTION_DAYS (never the newest); replaces any schedule. With
    /// --off, no more scheduled backups (those taken stay).
    Schedule {
        /// The database's name.
        name: String,
        /// Hours between backups (fractions allowed).
        #[arg(long, required_unless_present = "off")]
        every_hours: Option<f64>,
        /// Days a backup is kept (fractions allowed).
        #[arg(long, required_unless_present = "off")]
        retention_days: Option<f64>,
        /// Turn the schedule off (`DELETE .../schedule`).
        #[arg(long, conflicts_with_all = ["every_hours", "retention_days", "dir", "offsite_dir"])]
        off: bool,
        /// Base directory on the agents' hosts (a shared mount).
        #[arg(long)]
        dir: Option<String>,
        /// Base directory of the second copy (off-site).
        #[arg(long)]
        offsite_dir: Option<String>,
    },
    /// Archive a database's binlogs continuously (for restores to a point
    /// in time).
    Archive {
        /// The database's name.
        name: String,
        /// Base directory on the agents' hosts (a shared mount).
        #[arg(long)]
        dir: Option<String>,
        /// Days an archived binlog file is kept after its last write
        /// (fractions allowed; default: for ever); never one a kept backup
        /// needs for a restore to a point in time.
        #[arg(long)]
        retention_days: Option<f64>,
        /// Turn the archive off (`DELETE .../archive`): the archiver
        /// stops, the files stay.
        #[arg(long, conflicts_with_all = ["dir", "retention_days"])]
        off: bool,
    },
    /// The jobs allowed to use a database, each with its MySQL user and the
    /// hosts it is granted on; with --allow/--deny, change the list first
    /// (`PUT .../grants`: the others stay as they are).
    Grants {
        /// The database's name.
        name: String,
        /// A job (service-tree id) to allow; repeat for more.
        #[arg(long = "allow", value_name = "JOB")]
        allow: Vec<String>,
        /// A job to take off the list (its credential is dropped); repeat for more.
        #[arg(long = "deny", value_name = "JOB")]
        deny: Vec<String>,
    },
    /// Delete a database and its instances (the data on the agents' volumes stays).
    Delete {
        /// The database's name.
        name: String,
    },
    /// The database templates.
    Templates,
}

/// Runs `ocean db ...`.
pub async fn db(c: &Client, cmd: DbCommand) -> anyhow::Result<()> {
    let out = match cmd {
        DbCommand::Create {
            name,
            cluster,
            product_line,
            department,
            full_name,
            template,
            instances,
        } => {
            let body = json!({
                "name": name, "cluster": cluster, "product_line": product_line,
                "department": department, "full_name": full_name,
                "template": template, "instances": instances,
            });
            c.request(Method::POST, "/v1/databases", Body::Json(body))
                .await?
        }
        DbCommand::List { product_line } => {
            let q = product_line
                .map(|p| format!("?product_line={}", urlencode(&p)))
                .unwrap_or_default();
            let v = c
                .request(Method::GET, &format!("/v1/databases{q}"), Body::None)
                .await?;
            if !c.json {
                print_list(&v);
                return Ok(());
            }
            v
        }
        DbCommand::Status { name } => {
            let v = c.request(Method::GET, &path(&name), Body::None).await?;
            if !c.json {
                print_status(&v);
                return Ok(());
            }
            v
        }
        // Optional fields go as null, which the API reads as absent.
        DbCommand::Switchover { name, to } => {
            act(c, &name, "switchover", json!({ "to": to })).await?
        }
        DbCommand::Scale { name, instances } => {
            act(c, &name, "scale", json!({ "instances": instances })).await?
        }
        DbCommand::Rebuild { name, task } => {
            act(c, &name, "rebuild", json!({ "task": task })).await?
        }
        DbCommand::Backup {
            name, list: true, ..
        } => {
            c.request(Method::GET, &format!("{}/backups", path(&name)), Body::None)
                .await?
        }
        DbCommand::Backup {
            name,
            dir,
            offsite_dir,
            list: false,
        } => {
            let body = json!({ "dir": dir, "offsite_dir": offsite_dir });
            act(c, &name, "backup", body).await?
        }
        DbCommand::Restore {
            name,
            backup,
            into,
            full_name,
            instances,
            until,
        } => {
            let body = json!({
                "backup": backup, "name": into, "until": until,
                "full_name": full_name, "instances": instances,
            });
            act(c, &name, "restore", body).await?
        }
        DbCommand::Schedule {
            name, off: true, ..
        } => turn_off(c, &name, "schedule").await?,
        DbCommand::Schedule {
            name,
            every_hours,
            retention_days,
            dir,
            offsite_dir,
            off: false,
        } => {
            let body = json!({
                "every_hours": every_hours, "retention_days": retention_days,
                "dir": dir, "offsite_dir": offsite_dir,
            });
            act(c, &name, "schedule", body).await?
        }
        DbCommand::Archive {
            name, off: true, ..
        } => turn_off(c, &name, "archive").await?,
        DbCommand::Archive {
            name,
            dir,
            retention_days,
            off: false,
        } => {
            let body = json!({ "dir": dir, "retention_days": retention_days });
            act(c, &name, "archive", body).await?
        }
        DbCommand::Grants { name, allow, deny } => {
            let p = format!("{}/grants", path(&name));
            let now = c.request(Method::GET, &p, Body::None).await?;
            if allow.is_empty() && deny.is_empty() {
                now
            } else {
                let jobs = allowed_after(&now, &allow, &deny)?;
                let body = json!({ "allowed_jobs": jobs });
                c.request(Method::PUT, &p, Body::Json(body)).await?
            }
        }
        DbCommand::Delete { name } => c.request(Method::DELETE, &path(&name), Body::None).await?,
        DbCommand::Templates => {
            c.request(Method::GET, "/v1/database-templates", Body::None)
                .await?
        }
    };
    print_json(&out);
    Ok(())
}

/// The allowed jobs of `GET .../grants` (`now`) with `allow` added (at
/// the end, each once) and `deny` taken off; a job in both is refused.
fn allowed_after(now: &Value, allow: &[String], deny: &[String]) -> anyhow::Result<Vec<String>> {
    if let Some(j) = allow.iter().find(|j| deny.contains(j)) {
        anyhow::bail!("--allow and --deny both name {j}");
    }
    let mut jobs: Vec<String> = now["allowed_jobs"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|j| j.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    jobs.retain(|j| !deny.contains(j));
    for j in allow {
        if !jobs.contains(j) {
            jobs.push(j.clone());
        }
    }
    Ok(jobs)
}

/// `/v1/databases/{name}`.
fn path(name: &str) -> String {
    format!("/v1/databases/{}", urlencode(name))
}

/// `POST /v1/databases/{name}/{action}` with `body`.
async fn act(c: &Client, name: &str, action: &str, body: Value) -> anyhow::Result<Value> {
    c.request(
        Method::POST,
        &format!("{}/{action}", path(name)),
        Body::Json(body),
    )
    .await
}

/// `DELETE /v1/databases/{name}/{what}`: a schedule or an archive off.
async fn turn_off(c: &Client, name: &str, what: &str) -> anyhow::Result<Value> {
    c.request(
        Method::DELETE,
        &format!("{}/{what}", path(name)),
        Body::None,
    )
    .await
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn print_list(v: &Value) {
    println!(
        "{:<20} {:<12} {:<14} {:<22} {:<14} {:>9} {:>7}  STATE",
        "NAME", "CLUSTER", "PRODUCT LINE", "FULL NAME", "TEMPLATE", "INSTANCES", "RUNNING"
    );
    for d in v["databases"].as_array().into_iter().flatten() {
        println!(
            "{:<20} {:<12} {:<14} {:<22} {:<14} {:>9} {:>7}  {}",
            s(&d["name"]),
            s(&d["cluster"]),
            s(&d["product_line"]),
            s(&d["full_name"]),
            s(&d["template"]),
            d["instances"],
            d["running"],
            s(&d["state"]),
        );
    }
}

fn print_status(v: &Value) {
    println!(
        "{} ({}, {}): {} {}— primary {} (epoch {}), {} of {} running, DNS {}",
        s(&v["name"]),
        s(&v["full_name"]),
        s(&v["cluster"]),
        s(&v["state"]),
        match s(&v["status"]["message"]) {
            "" => String::new(),
            m => format!("({m}) "),
        },
        s(&v["status"]["primary"]),
        v["status"]["epoch"],
        v["status"]["running"],
        v["instances"],
        s(&v["primary_dns"]),
    );
    println!(
        "{:<10} {:<14} {:<22} {:<24} {:>5}  ERROR",
        "ROLE", "HOST", "ADDRESS", "GTID", "LAG"
    );
    for n in v["status"]["nodes"].as_array().into_iter().flatten() {
        println!(
            "{:<10} {:<14} {:<22} {:<24} {:>5}  {}",
            s(&n["role"]),
            s(&n["host"]),
            s(&n["addr"]),
            s(&n["gtid"]),
            n["lag_seconds"],
            s(&n["last_error"]),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_adds_once_at_the_end_and_deny_takes_off() {
        let now = json!({"allowed_jobs": ["a", "b"]});
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            allowed_after(&now, &s(&["c", "a"]), &s(&["b"])).unwrap_or_default(),
            s(&["a", "c"])
        );
        assert_eq!(
            allowed_after(&json!({}), &s(&["x"]), &[]).unwrap_or_default(),
            s(&["x"])
        );
        assert!(allowed_after(&now, &s(&["a"]), &s(&["a"])).is_err());
    }
}
