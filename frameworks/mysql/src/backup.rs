//! Full backups with `mariadb-backup`, taken on a replica as a batch task,
//! copied to a second directory (standing in for off-site) and verified
//! there by checksum; and the restore of one into a new database.
//!
//! ```text
//!  POST .../backup ─► backups/<db>/<id> {state: running, source, dir, offsite_dir}
//!  framework reconcile ─► batch job pinned to the source's host:
//!      mariadb-backup --backup, --prepare (the copy is ready to start from), MANIFEST.sha256
//!      over every file, rename into <dir>/<db>/<id>; copy to <offsite_dir>/<db>/<id>,
//!      sha256sum -c there, rename; prints "ok <gtid> <bytes>"
//!  operator ─► its task FINISHED: state done (gtid, bytes from the task's log) | FAILED: failed
//!  POST .../restore {"backup", "name"} ─► a new database whose instances start from the
//!      backup (sha256sum -c, copy, gtid_slave_pos := the backup's GTID) instead of an empty one
//! ```
//!
//! Directories are paths on the agents' hosts: a restore reads the backup
//! from the host each new instance lands on, so `dir` must be a shared
//! mount (or, as in the tests, every agent on one machine).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::admin::Secrets;
use crate::jobs::{ADMIN_USER, LABEL_DATABASE};
use crate::spec::DatabaseSpec;

/// Prefix of the backups: `backups/<db>/<id>`.
pub const BACKUPS: &str = "backups/";

/// Where backups go unless the request names a place.
pub const DEFAULT_DIR: &str = "/var/tmp/ocean-mysql-backups";
/// Where their second copy goes unless the request names a place.
pub const DEFAULT_OFFSITE_DIR: &str = "/var/tmp/ocean-mysql-backups-offsite";

/// Label naming the backup a job takes.
pub const LABEL_BACKUP: &str = "mysql.backup";

/// A backup as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRecord {
    /// `b-<requested_ms>`.
    pub id: String,
    /// The database backed up.
    pub database: String,
    /// The instance it is taken on, its host and mysql port.
    pub source: String,
    pub source_host: String,
    pub source_port: u16,
    /// The base directories; the backup is `<dir>/<database>/<id>`.
    pub dir: String,
    pub offsite_dir: String,
    /// When it was asked for (ms since the epoch).
    pub requested_ms: u64,
    /// `running`, `done` or `failed`.
    pub state: String,
    /// Why it failed.
    #[serde(default)]
    pub message: String,
    /// The GTID position it holds (`xtrabackup_binlog_info`).
    #[serde(default)]
    pub gtid: String,
    /// Its size on disk.
    #[serde(default)]
    pub bytes: u64,
    /// When it finished (ms since the epoch).
    #[serde(default)]
    pub finished_ms: u64,
    /// Older backups (of the same directories) past their retention that
    /// this backup's task deletes first; their records go once it is done.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prune: Vec<String>,
    /// `schedule` or `request`.
    #[serde(default)]
    pub by: String,
}

/// Prefix of the backup schedules: `schedule/<db>`.
pub const SCHEDULES: &str = "schedule/";

/// A database's backup schedule (`POST .../schedule`): a backup every
/// `every_hours`, each kept `retention_days`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Hours between backups (fractions allowed), at least 0.001 (3.6 s).
    pub every_hours: f64,
    /// Days a done backup is kept (fractions allowed), more than 0.
    pub retention_days: f64,
    /// Base directories, as for a backup asked for.
    #[serde(default)]
    pub dir: Option<String>,
    #[serde(default)]
    pub offsite_dir: Option<String>,
}

impl Schedule {
    /// The field that is wrong, if any.
    pub fn invalid(&self) -> Option<(&'static str, String)> {
        if !(self.every_hours.is_finite() && self.every_hours >= 0.001) {
            return Some((
                "every_hours",
                format!("{} is not a number of hours >= 0.001", self.every_hours),
            ));
        }
        if !(self.retention_days.is_finite() && self.retention_days > 0.0) {
            return Some((
                "retention_days",
                format!("{} is not a number of days > 0", self.retention_days),
            ));
        }
        for (f, d) in [("dir", &self.dir), ("offsite_dir", &self.offsite_dir)] {
            if let Some(d) = d {
                if !valid_dir(d.trim_end_matches('/')) {
                    return Some((f, format!("'{d}' is not an absolute plain path")));
                }
            }
        }
        None
    }
}

/// Whether a scheduled backup is due: none of `backups` is running, the
/// newest done one was asked for `every_hours` ago or more (or there is
/// none), and no attempt was made in the last `min(every_hours, 5 min)`
/// (a failing backup is retried, not in a tight loop).
pub fn due(s: &Schedule, backups: &[BackupRecord], now_ms: u64) -> bool {
    if backups.iter().any(|b| b.state == "running") {
        return false;
    }
    let every = (s.every_hours * 3_600_000.0) as u64;
    let newest = |done_only: bool| {
        backups
            .iter()
            .filter(|b| !done_only || b.state == "done")
            .map(|b| b.requested_ms)
            .max()
    };
    let retry = every.min(300_000);
    newest(true).is_none_or(|last| now_ms.saturating_sub(last) >= every)
        && newest(false).is_none_or(|last| now_ms.saturating_sub(last) >= retry)
}

/// The done backups in `dir`/`offsite_dir` past their retention, never the
/// newest done one (a schedule that stopped still keeps one backup).
pub fn expired(
    s: &Schedule,
    backups: &[BackupRecord],
    dir: &str,
    offsite_dir: &str,
    now_ms: u64,
) -> Vec<String> {
    let keep = (s.retention_days * 86_400_000.0) as u64;
    let newest = backups
        .iter()
        .filter(|b| b.state == "done")
        .map(|b| b.requested_ms)
        .max()
        .unwrap_or(0);
    backups
        .iter()
        .filter(|b| {
            b.state == "done"
                && b.requested_ms != newest
                && b.dir == dir
                && b.offsite_dir == offsite_dir
                && now_ms.saturating_sub(b.requested_ms) > keep
        })
        .map(|b| b.id.clone())
        .collect()
}

impl BackupRecord {
    /// The backup's directory.
    pub fn path(&self) -> String {
        format!("{}/{}/{}", self.dir, self.database, self.id)
    }

    /// Its off-site copy's directory.
    pub fn offsite_path(&self) -> String {
        format!("{}/{}/{}", self.offsite_dir, self.database, self.id)
    }
}

/// The key of a backup.
pub fn backup_key(database: &str, id: &str) -> String {
    format!("{BACKUPS}{database}/{id}")
}

/// Whether `p` is usable as a base directory: absolute, no `..`, and
/// only characters a shell word needs no quoting for.
pub fn valid_dir(p: &str) -> bool {
    p.starts_with('/')
        && p.len() <= 200
        && !p.split('/').any(|s| s == "..")
        && p.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"/-_.".contains(&c))
}

/// The backup job's id: `..._job.backup-<digest of the id>_cluster.<cluster>`.
pub fn backup_job_id(spec: &DatabaseSpec, id: &str) -> String {
    format!(
        "cop.ocean_owt.{}_pdl.{}_servicegroup.rds_service.{}_job.backup-{:08x}_cluster.{}",
        spec.department,
        spec.product_line,
        spec.name,
        crate::jobs::fnv1a(id.as_bytes()) as u32,
        spec.cluster
    )
}

/// The backup's command (see the module docs). Nothing is renamed into
/// place until it is whole and its checksums hold, so a directory named
/// by a done record is always complete.
pub fn backup_command() -> String {
    format!(
        r#"set -e
umask 077
W="$OCEAN_SANDBOX/backup"
mkdir -p "$W"
printf '[client]\nuser=%s\npassword=%s\nhost=127.0.0.1\nport=%s\n' "{ADMIN_USER}" "$DB_ADMIN_PASSWORD" "$BACKUP_FROM_PORT" >"$W/my.cnf"
B="$BACKUP_DIR"; O="$OFFSITE_DIR"
rm -rf "$B.partial" "$O.partial"
# Backups past their retention (ids the operator chose, b-<digits>).
for old in $PRUNE; do rm -rf "$(dirname "$B")/$old" "$(dirname "$O")/$old"; done
mkdir -p "$(dirname "$B")" "$(dirname "$O")"
if ! mariadb-backup --defaults-file="$W/my.cnf" --backup --target-dir="$B.partial" 2>"$W/backup.log"; then
  tail -n 20 "$W/backup.log" >&2; exit 1
fi
if ! mariadb-backup --prepare --target-dir="$B.partial" 2>"$W/prepare.log"; then
  tail -n 20 "$W/prepare.log" >&2; exit 1
fi
(cd "$B.partial" && find . -type f ! -name MANIFEST.sha256 -print0 | sort -z | xargs -0 sha256sum >MANIFEST.sha256)
mv "$B.partial" "$B"
cp -a "$B" "$O.partial"
(cd "$O.partial" && sha256sum -c --quiet MANIFEST.sha256)
mv "$O.partial" "$O"
echo "ok $(cut -f3 "$B/xtrabackup_binlog_info") $(du -sb "$B" | cut -f1)"
"#
    )
}

/// The backup's batch job: one task pinned to the source's host.
pub fn backup_job(spec: &DatabaseSpec, b: &BackupRecord, secrets: &Secrets) -> Value {
    json!({
        "id": backup_job_id(spec, &b.id),
        "type": "batch",
        "instances": 1,
        "cmd": backup_command(),
        "resources": {"cpus": 0.1, "mem": 128},
        "constraints": [["hostname", "CLUSTER", b.source_host]],
        "env": {
            "DB_ADMIN_PASSWORD": secrets.admin_password,
            "BACKUP_FROM_PORT": b.source_port.to_string(),
            "BACKUP_DIR": b.path(),
            "OFFSITE_DIR": b.offsite_path(),
            "PRUNE": b.prune.join(" "),
        },
        "labels": { LABEL_DATABASE: spec.name, LABEL_BACKUP: b.id },
    })
}

/// What became of a running backup, from its job's tasks' states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupFate {
    /// Not ended yet.
    Going,
    /// This task finished it.
    Done(String),
    /// A task failed (its message, if any).
    Failed(String),
}

/// See [`BackupFate`]: `tasks` are `(id, state, message)`.
pub fn backup_fate(tasks: &[(String, String, String)]) -> BackupFate {
    if let Some((id, _, _)) = tasks.iter().find(|(_, s, _)| s == "FINISHED") {
        return BackupFate::Done(id.clone());
    }
    match tasks
        .iter()
        .find(|(_, s, _)| matches!(s.as_str(), "FAILED" | "KILLED" | "LOST"))
    {
        Some((id, s, m)) => BackupFate::Failed(format!("task {id} {s}: {m}")),
        None => BackupFate::Going,
    }
}

/// The `ok <gtid> <bytes>` line of a finished backup's output.
pub fn parse_ok(log: &str) -> Option<(String, u64)> {
    let line = log.lines().rev().find(|l| l.starts_with("ok "))?;
    let mut it = line.split_whitespace().skip(1);
    let gtid = it.next()?.to_string();
    let bytes = it.next()?.parse().ok()?;
    Some((gtid, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_is_a_batch_job_on_its_source_s_host_writing_where_it_was_told() {
        let spec = crate::spec::tests::ok();
        let b = BackupRecord {
            id: "b-1".into(),
            database: spec.name.clone(),
            source: "t.2".into(),
            source_host: "host-b".into(),
            source_port: 31000,
            dir: "/srv/b".into(),
            offsite_dir: "/mnt/far".into(),
            state: "running".into(),
            ..Default::default()
        };
        let j = backup_job(&spec, &b, &Secrets::default());
        assert_eq!(j["type"], "batch");
        assert_eq!(j["constraints"], json!([["hostname", "CLUSTER", "host-b"]]));
        assert_eq!(j["env"]["BACKUP_DIR"], "/srv/b/browser-key/b-1");
        assert_eq!(j["env"]["OFFSITE_DIR"], "/mnt/far/browser-key/b-1");
        let cmd = j["cmd"].as_str().unwrap_or_default();
        for step in [
            "--backup --target-dir",
            "--prepare",
            "sha256sum -c",
            "MANIFEST.sha256",
        ] {
            assert!(cmd.contains(step), "{step} missing");
        }
        assert!(!cmd.contains("--password="));
    }

    #[test]
    fn a_schedule_is_due_after_its_interval_and_prunes_all_but_the_newest_past_retention() {
        let s = Schedule {
            every_hours: 1.0,
            retention_days: 1.0,
            ..Default::default()
        };
        let b = |id: &str, at: u64, state: &str| BackupRecord {
            id: id.into(),
            requested_ms: at,
            state: state.into(),
            dir: "/d".into(),
            offsite_dir: "/o".into(),
            ..Default::default()
        };
        let h = 3_600_000;
        assert!(due(&s, &[], 0));
        assert!(!due(&s, &[b("b-1", 0, "done")], h - 1));
        assert!(due(&s, &[b("b-1", 0, "done")], h));
        assert!(!due(
            &s,
            &[b("b-1", 0, "done"), b("b-2", h, "running")],
            3 * h
        ));
        let all = [
            b("b-1", 0, "done"),
            b("b-2", h, "done"),
            b("b-3", 30 * h, "failed"),
        ];
        assert_eq!(
            expired(&s, &all, "/d", "/o", 26 * h),
            vec!["b-1".to_string()]
        );
        // The newest done backup stays, however old.
        assert_eq!(
            expired(&s, &all, "/d", "/o", 100 * h),
            vec!["b-1".to_string()]
        );
        assert_eq!(
            expired(&s, &all, "/elsewhere", "/o", 100 * h),
            Vec::<String>::new()
        );
        let bad = Schedule {
            every_hours: 0.0,
            ..s.clone()
        };
        assert_eq!(bad.invalid().map(|(f, _)| f), Some("every_hours"));
        let bad = Schedule {
            retention_days: -1.0,
            ..s.clone()
        };
        assert_eq!(bad.invalid().map(|(f, _)| f), Some("retention_days"));
        let bad = Schedule {
            dir: Some("rel".into()),
            ..s
        };
        assert_eq!(bad.invalid().map(|(f, _)| f), Some("dir"));
    }

    #[test]
    fn directories_are_absolute_plain_paths() {
        assert!(valid_dir("/var/tmp/x-1_2.b"));
        for bad in ["rel/dir", "/a/../b", "/a b", "/a;rm", "/$HOME", ""] {
            assert!(!valid_dir(bad), "{bad}");
        }
    }

    #[test]
    fn the_fate_comes_from_the_tasks_and_the_figures_from_the_last_line() {
        let t = |id: &str, s: &str| (id.to_string(), s.to_string(), "exit 1".to_string());
        assert_eq!(backup_fate(&[]), BackupFate::Going);
        assert_eq!(backup_fate(&[t("a", "RUNNING")]), BackupFate::Going);
        assert_eq!(
            backup_fate(&[t("a", "FAILED"), t("b", "FINISHED")]),
            BackupFate::Done("b".into())
        );
        assert!(
            matches!(backup_fate(&[t("a", "FAILED")]), BackupFate::Failed(m) if m.contains("exit 1"))
        );
        assert_eq!(
            parse_ok("[00] done\nok 0-1-42 1234\n"),
            Some(("0-1-42".into(), 1234))
        );
        assert_eq!(parse_ok("nothing"), None);
    }
}
