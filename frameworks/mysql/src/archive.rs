//! Continuous binlog archiving, for restores to a point in time.
//!
//! ```text
//!  POST .../archive {"dir"?} ─► archive/<db> {dir}
//!  framework reconcile: archive/<db> + topology/<db> ─► one service task (the `binlogs` job)
//!      mariadb-binlog --read-from-remote-server --raw --stop-never from the recorded primary
//!      into <dir>/<db>/binlogs/<primary ip_port>/ (resuming at its newest file)
//!      the primary's address is in the job's environment: a failover changes the job,
//!      and the masters replace the task, which then follows the new primary
//!  restore {"until": GTID} ─► after copying the backup, each instance replays the archived
//!      binlogs from the backup's GTID to `until` on a private server (no network, no
//!      binlog), then starts at `until`
//! ```
//!
//! One replication domain (Ocean's databases write domain 0 only): `until`
//! is one GTID.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::admin::Secrets;
use crate::jobs::{fnv1a, LABEL_DATABASE, LABEL_DIGEST, REPL_USER};
use crate::spec::DatabaseSpec;

/// Prefix of the archive settings: `archive/<db>`.
pub const ARCHIVES: &str = "archive/";

/// Label marking a database's archiver job.
pub const LABEL_ARCHIVE: &str = "mysql.archive";

/// A database's binlog archive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveRecord {
    /// Base directory on the agents' hosts; the archive is
    /// `<dir>/<db>/binlogs/<source ip_port>/`.
    pub dir: String,
    /// When it was turned on (ms since the epoch).
    pub since_ms: u64,
}

impl ArchiveRecord {
    /// The database's archive directory.
    pub fn path(&self, database: &str) -> String {
        format!("{}/{database}/binlogs", self.dir)
    }
}

/// The archiver's job id: `..._job.binlogs_cluster.<cluster>`.
pub fn archive_job_id(spec: &DatabaseSpec) -> String {
    format!(
        "cop.ocean_owt.{}_pdl.{}_servicegroup.rds_service.{}_job.binlogs_cluster.{}",
        spec.department, spec.product_line, spec.name, spec.cluster
    )
}

/// The archiver's command (see the module docs).
pub fn archive_command() -> String {
    format!(
        r#"set -e
umask 077
A="$ARCHIVE_DIR/$(printf %s "$ARCHIVE_FROM" | tr : _)"
mkdir -p "$A"
H="${{ARCHIVE_FROM%:*}}"; P="${{ARCHIVE_FROM##*:}}"
printf '[client]\nuser=%s\npassword=%s\nhost=%s\nport=%s\n' "{REPL_USER}" "$DB_REPL_PASSWORD" "$H" "$P" >"$OCEAN_SANDBOX/my.cnf"
# Resume at the newest file archived (fetched again whole), else the
# source's first binlog (Ocean never purges them).
START=$(cd "$A" && ls binlog.[0-9]* 2>/dev/null | sort | tail -n 1)
if [ -z "$START" ]; then
  START=$(mariadb --defaults-file="$OCEAN_SANDBOX/my.cnf" -N -B -e 'SHOW BINARY LOGS' | head -n 1 | cut -f1)
fi
exec mariadb-binlog --defaults-file="$OCEAN_SANDBOX/my.cnf" --read-from-remote-server --raw --stop-never \
  --stop-never-slave-server-id="$(printf %s "$OCEAN_TASK_ID" | cksum | cut -d' ' -f1)" --result-file="$A/" "$START"
"#
    )
}

/// The archiver's job for the primary at `from` (`ip:port`), with its
/// digest label (the framework puts it again when the primary moves).
pub fn archive_job(spec: &DatabaseSpec, a: &ArchiveRecord, from: &str, secrets: &Secrets) -> Value {
    let mut job = json!({
        "id": archive_job_id(spec),
        "cmd": archive_command(),
        "instances": 1,
        "resources": {"cpus": 0.05, "mem": 64},
        "env": {
            "DB_REPL_PASSWORD": secrets.repl_password,
            "ARCHIVE_FROM": from,
            "ARCHIVE_DIR": a.path(&spec.name),
        },
        "backoff": {"backoff_seconds": 0.5, "backoff_factor": 1.5, "max_launch_delay_seconds": 10.0},
        "flapping": {"max_failures": 1000, "window_seconds": 60},
        "labels": { LABEL_DATABASE: spec.name, LABEL_ARCHIVE: "1" },
    });
    let digest = format!("{:016x}", fnv1a(job.to_string().as_bytes()));
    job["labels"][LABEL_DIGEST] = digest.into();
    job
}

/// Whether `g` is one GTID (`domain-server-seq`).
pub fn is_gtid(g: &str) -> bool {
    let parts: Vec<&str> = g.split('-').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.parse::<u64>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archiver_follows_the_primary_it_is_given() {
        let spec = crate::spec::tests::ok();
        let a = ArchiveRecord {
            dir: "/srv/a".into(),
            since_ms: 1,
        };
        let j = archive_job(&spec, &a, "10.0.0.1:31000", &Secrets::default());
        assert_eq!(j["env"]["ARCHIVE_DIR"], "/srv/a/browser-key/binlogs");
        assert_eq!(j["env"]["ARCHIVE_FROM"], "10.0.0.1:31000");
        let cmd = j["cmd"].as_str().unwrap_or_default();
        assert!(
            cmd.contains("--read-from-remote-server --raw --stop-never"),
            "{cmd}"
        );
        let moved = archive_job(&spec, &a, "10.0.0.2:31000", &Secrets::default());
        assert_ne!(j["labels"][LABEL_DIGEST], moved["labels"][LABEL_DIGEST]);
        assert!(j["id"]
            .as_str()
            .unwrap_or_default()
            .contains("_job.binlogs_cluster."));
    }

    #[test]
    fn until_is_one_gtid() {
        assert!(is_gtid("0-123-456"));
        for bad in ["", "0-1", "0-1-2,1-2-3", "a-b-c", "0--1"] {
            assert!(!is_gtid(bad), "{bad}");
        }
    }
}
