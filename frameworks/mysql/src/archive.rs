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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArchiveRecord {
    /// Base directory on the agents' hosts; the archive is
    /// `<dir>/<db>/binlogs/<source ip_port>/`.
    pub dir: String,
    /// When it was turned on (ms since the epoch).
    pub since_ms: u64,
    /// When it was turned off (`DELETE .../archive`): the archiver is
    /// gone, the files stay (under the retention, if any) for restores to
    /// a point before this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_ms: Option<u64>,
    /// Days an archived binlog file is kept after its last write
    /// (fractions allowed); none: for ever. A file a kept backup needs
    /// for a restore to a point after it is never deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<f64>,
}

/// Why `retention_days` is refused, if it is.
pub fn invalid_retention(days: f64) -> Option<String> {
    (!(days.is_finite() && days > 0.0 && days <= 36_500.0))
        .then(|| format!("{days} is not a number of days > 0 (at most 36500)"))
}

/// The GTID from which the archive must stay whole: the oldest of the
/// done backups' (their restores to a point replay the archive from
/// there); none when no backup is kept.
pub fn keep_from(backups: &[crate::backup::BackupRecord]) -> String {
    backups
        .iter()
        .filter(|b| b.state == "done" && !b.gtid.is_empty())
        .min_by_key(|b| crate::gtid::GtidPos::parse(&b.gtid).total())
        .map(|b| b.gtid.clone())
        .unwrap_or_default()
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
# Retention: in each source's directory, the files before the first one a
# kept backup needs (the newest whose GTID list is at or before
# ARCHIVE_KEEP_FROM; none kept: the newest file) go once their last write
# is ARCHIVE_RETENTION_SECS old. The newest file of a directory stays.
if [ -n "${{ARCHIVE_RETENTION_SECS:-}}" ]; then
  (
    set +e
    K="${{ARCHIVE_KEEP_FROM:-}}"
    while :; do
      NOW=$(date +%s)
      for d in "$ARCHIVE_DIR"/*/; do
        set -- $(cd "$d" 2>/dev/null && ls binlog.[0-9]* 2>/dev/null | sort)
        [ "$#" -gt 1 ] || continue
        KEEP=""
        for f in "$@"; do
          if [ -z "$K" ]; then KEEP="$f"; continue; fi
          L=$(mariadb-binlog "$d$f" 2>/dev/null | sed -n '/Gtid list/{{s/.*Gtid list \[\(.*\)\].*/\1/p;q}}')
          if [ -z "$L" ] || [ "${{L##*-}}" -le "${{K##*-}}" ]; then KEEP="$f"; else break; fi
        done
        [ -n "$KEEP" ] || continue
        for f in "$@"; do
          [ "$f" = "$KEEP" ] && break
          M=$(stat -c %Y "$d$f" 2>/dev/null) || continue
          if [ $((NOW - M)) -gt "$ARCHIVE_RETENTION_SECS" ]; then rm -f "$d$f" && echo "pruned $d$f (kept from $KEEP)"; fi
        done
      done
      sleep "$ARCHIVE_PRUNE_EVERY"
    done
  ) &
fi
exec mariadb-binlog --defaults-file="$OCEAN_SANDBOX/my.cnf" --read-from-remote-server --raw --stop-never \
  --stop-never-slave-server-id="$(printf %s "$OCEAN_TASK_ID" | cksum | cut -d' ' -f1)" --result-file="$A/" "$START"
"#
    )
}

/// The archiver's job for the primary at `from` (`ip:port`), with its
/// digest label (the framework puts it again when the primary moves, or
/// `keep` changes: the oldest GTID a kept backup needs, see [`keep_from`]).
pub fn archive_job(
    spec: &DatabaseSpec,
    a: &ArchiveRecord,
    from: &str,
    keep: &str,
    secrets: &Secrets,
) -> Value {
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
    if let Some(days) = a.retention_days {
        let secs = (days * 86_400.0).ceil() as u64;
        job["env"]["ARCHIVE_RETENTION_SECS"] = secs.to_string().into();
        // Looked at four times per retention, at most once a minute.
        job["env"]["ARCHIVE_PRUNE_EVERY"] = (secs / 4).clamp(1, 60).to_string().into();
        job["env"]["ARCHIVE_KEEP_FROM"] = keep.into();
    }
    let digest = format!("{:016x}", fnv1a(job.to_string().as_bytes()));
    job["labels"][LABEL_DIGEST] = digest.into();
    job
}

/// What a restore's `until` names: one GTID, or a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Until {
    /// `domain-server-seq`: replay up to and including this transaction.
    Gtid(String),
    /// An RFC 3339 time (ms since the epoch): replay every transaction
    /// committed before it, to the binlog's whole second (see
    /// [`binlog_second`]).
    Time(u64),
}

/// Parses `until`: one GTID or an RFC 3339 time (`2026-12-08T01:02:03Z`,
/// any offset, fractions allowed); the reason otherwise.
pub fn parse_until(u: &str) -> Result<Until, String> {
    if is_gtid(u) {
        return Ok(Until::Gtid(u.to_string()));
    }
    match chrono::DateTime::parse_from_rfc3339(u) {
        Ok(t) if t.timestamp_millis() >= 0 => Ok(Until::Time(t.timestamp_millis() as u64)),
        _ => Err(format!(
            "'{u}' is neither one GTID (domain-server-seq, e.g. 0-123-456) nor an RFC 3339 time (e.g. 2026-12-08T01:02:03Z)"
        )),
    }
}

/// `ms` as RFC 3339 in UTC, to the millisecond (for messages and records).
pub fn rfc3339(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// The whole UTC second of `ms` as `mariadb-binlog` prints event times
/// under `TZ=UTC` (`#YYMMDD HH:MM:SS`), packed into one number
/// `YYMMDDHHMMSS` that the restore script compares with each GTID
/// event's. A binlog keeps commit times in whole seconds, so a restore to
/// a time takes every transaction committed in a second before this one
/// and none from this second on: nothing after the time is replayed
/// (as `mariadb-binlog --stop-datetime`), and commits in the fraction of
/// a second before it are not either.
pub fn binlog_second(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .map(|t| t.format("%y%m%d%H%M%S").to_string())
        .unwrap_or_default()
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
            ..Default::default()
        };
        let j = archive_job(&spec, &a, "10.0.0.1:31000", "", &Secrets::default());
        assert_eq!(j["env"]["ARCHIVE_DIR"], "/srv/a/browser-key/binlogs");
        assert_eq!(j["env"]["ARCHIVE_FROM"], "10.0.0.1:31000");
        let cmd = j["cmd"].as_str().unwrap_or_default();
        assert!(
            cmd.contains("--read-from-remote-server --raw --stop-never"),
            "{cmd}"
        );
        let moved = archive_job(&spec, &a, "10.0.0.2:31000", "", &Secrets::default());
        assert_ne!(j["labels"][LABEL_DIGEST], moved["labels"][LABEL_DIGEST]);
        assert!(
            j["env"].get("ARCHIVE_RETENTION_SECS").is_none(),
            "kept for ever"
        );
        let kept = ArchiveRecord {
            retention_days: Some(0.5),
            ..a.clone()
        };
        let j = archive_job(&spec, &kept, "10.0.0.1:31000", "0-1-7", &Secrets::default());
        assert_eq!(j["env"]["ARCHIVE_RETENTION_SECS"], "43200");
        assert_eq!(j["env"]["ARCHIVE_PRUNE_EVERY"], "60");
        assert_eq!(j["env"]["ARCHIVE_KEEP_FROM"], "0-1-7");
        let other = archive_job(&spec, &kept, "10.0.0.1:31000", "0-1-9", &Secrets::default());
        assert_ne!(j["labels"][LABEL_DIGEST], other["labels"][LABEL_DIGEST]);
        assert!(j["id"]
            .as_str()
            .unwrap_or_default()
            .contains("_job.binlogs_cluster."));
    }

    #[test]
    fn until_is_a_gtid_or_an_rfc3339_time() {
        assert_eq!(parse_until("0-1-5"), Ok(Until::Gtid("0-1-5".into())));
        assert_eq!(
            parse_until("2026-12-08T01:02:03Z"),
            Ok(Until::Time(1_796_691_723_000))
        );
        assert_eq!(
            parse_until("2026-12-08T02:02:03.250+01:00"),
            Ok(Until::Time(1_796_691_723_250))
        );
        // A bare date is three numbers joined by '-': a GTID (domain 2026).
        assert_eq!(
            parse_until("2026-12-08"),
            Ok(Until::Gtid("2026-12-08".into()))
        );
        for bad in ["junk", "2026-12-08 01:02:03", "2026-12-08T01:02:03", "0-1"] {
            let e = parse_until(bad).expect_err(bad);
            assert!(e.contains("RFC 3339"), "{e}");
        }
        assert_eq!(binlog_second(1_796_691_723_999), "261208010203");
        assert_eq!(rfc3339(1_796_691_723_250), "2026-12-08T01:02:03.250Z");
    }

    #[test]
    fn the_archive_stays_whole_from_the_oldest_kept_backup() {
        use crate::backup::BackupRecord;
        let b = |gtid: &str, state: &str| BackupRecord {
            gtid: gtid.into(),
            state: state.into(),
            ..Default::default()
        };
        assert_eq!(keep_from(&[]), "");
        assert_eq!(
            keep_from(&[
                b("0-1-90", "done"),
                b("0-1-5", "failed"),
                b("0-2-40", "done")
            ]),
            "0-2-40"
        );
        assert!(invalid_retention(0.0).is_some());
        assert!(invalid_retention(f64::NAN).is_some());
        assert!(invalid_retention(0.0001).is_none());
    }

    #[test]
    fn until_is_one_gtid() {
        assert!(is_gtid("0-123-456"));
        for bad in ["", "0-1", "0-1-2,1-2-3", "a-b-c", "0--1"] {
            assert!(!is_gtid(bad), "{bad}");
        }
    }
}
