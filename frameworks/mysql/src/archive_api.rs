//! The REST side of the binlog archive (see [`crate::archive`]):
//!
//! ```text
//!  POST   /v1/databases/{id}/archive {"dir"?, "retention_days"?}: archive its binlogs
//!                                    continuously, files past the retention deleted
//!                                    (never one a kept backup needs) -> 200
//!  DELETE /v1/databases/{id}/archive the archiver stops, the files stay -> 200
//! ```
//!
//! and what a restore's `until` means against it ([`until_point`]): a GTID,
//! or a time resolved by each new instance in the archive.

use std::sync::Arc;
use std::time::Duration;

use ocean_client::api::KvPutRequest;
use ocean_client::{Client, Error};
use ocean_framework::{ApiError, ApiResult};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::actions::{key, observed};
use crate::archive::{invalid_retention, parse_until, rfc3339, ArchiveRecord, Until, ARCHIVES};
use crate::backup::{BackupRecord, DEFAULT_DIR};
use crate::backup_api::dir_field;
use crate::framework::NAME;
use crate::gtid::GtidPos;
use crate::manual::Refused;

/// `POST /v1/databases/{id}/archive`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Archive {
    /// Base directory on the agents' hosts (default
    /// `/var/tmp/ocean-mysql-backups`).
    #[serde(default)]
    pub dir: Option<String>,
    /// Days an archived binlog file is kept after its last write
    /// (fractions allowed; none: for ever); never one a kept backup needs.
    #[serde(default)]
    pub retention_days: Option<f64>,
}

/// Turns on (or moves) database `id`'s binlog archive.
pub async fn archive(c: &Arc<dyn Client>, id: &str, a: Archive) -> ApiResult<Value> {
    let dir = dir_field("dir", a.dir, DEFAULT_DIR)?;
    if let Some(reason) = a.retention_days.and_then(invalid_retention) {
        return Err(Refused::bad("retention_days", reason).into());
    }
    let rec = ArchiveRecord {
        dir,
        since_ms: ocean_framework::runner::now_ms(),
        stopped_ms: None,
        retention_days: a.retention_days,
    };
    c.kv_put(KvPutRequest {
        namespace: NAME.into(),
        key: format!("{ARCHIVES}{id}"),
        value: serde_json::to_vec(&rec).unwrap_or_default(),
        expected_revision: None,
    })
    .await?;
    tracing::info!(database = %id, dir = %rec.dir, retention_days = ?rec.retention_days, "binlog archive on");
    Ok(archive_json(id, &rec))
}

fn archive_json(id: &str, rec: &ArchiveRecord) -> Value {
    json!({
        "database": id,
        "dir": rec.dir,
        "path": rec.path(id),
        "since_ms": rec.since_ms,
        "stopped_ms": rec.stopped_ms,
        "retention_days": rec.retention_days,
    })
}

/// Turns database `id`'s binlog archive off (`DELETE .../archive`): its
/// archiver goes, the files stay, and restores to a time before now still
/// work. 404 naming `archive` if it has none; turning off one that is off
/// changes nothing.
pub async fn archive_off(c: &Arc<dyn Client>, id: &str) -> ApiResult<Value> {
    let key_name = format!("{ARCHIVES}{id}");
    let (mut rec, revision) = key::<ArchiveRecord>(c, key_name.clone())
        .await?
        .ok_or_else(|| {
            Refused::missing("archive", format!("database '{id}' has no binlog archive"))
        })?;
    if rec.stopped_ms.is_none() {
        rec.stopped_ms = Some(ocean_framework::runner::now_ms());
        c.kv_put(KvPutRequest {
            namespace: NAME.into(),
            key: key_name,
            value: serde_json::to_vec(&rec).unwrap_or_default(),
            expected_revision: Some(revision),
        })
        .await
        .map_err(|e| match e {
            Error::VersionConflict { .. } => ApiError::from(Refused::conflict(
                "archive",
                "the archive changed meanwhile: ask again",
            )),
            e => e.into(),
        })?;
        tracing::info!(database = %id, "binlog archive off");
    }
    Ok(archive_json(id, &rec))
}

/// Where a restore replays the archive to (nothing: the backup as it is).
#[derive(Debug, Default)]
pub(crate) struct Point {
    pub until: Option<String>,
    pub until_ms: Option<u64>,
    pub reach: String,
    pub binlogs: String,
}

/// How long a restore to a time waits for the operator to observe the
/// primary at or after that time (it writes the status every 2 s).
const REACH_WAIT: Duration = Duration::from_secs(6);

/// Checks `until` against backup `b` and database `id`'s archive (every
/// refusal names `until`) and says what to replay.
pub(crate) async fn until_point(
    c: &Arc<dyn Client>,
    id: &str,
    bid: &str,
    b: &BackupRecord,
    u: &str,
) -> ApiResult<Point> {
    let until = parse_until(u).map_err(|reason| Refused::bad("until", reason))?;
    let archive = || async {
        key::<ArchiveRecord>(c, format!("{ARCHIVES}{id}"))
            .await?
            .map(|(a, _)| a)
            .ok_or_else(|| {
                ApiError::from(Refused::conflict(
                    "until",
                    format!("database '{id}' has no binlog archive (POST .../archive)"),
                ))
            })
    };
    let from = GtidPos::parse(&b.gtid);
    match until {
        Until::Gtid(u) => {
            let to = GtidPos::parse(&u);
            if to != from && from.contains(&to) {
                return Err(Refused::bad(
                    "until",
                    format!(
                        "{u} is before backup '{bid}' ({}): restore an older backup",
                        b.gtid
                    ),
                )
                .into());
            }
            let a = archive().await?;
            if to == from {
                return Ok(Point::default());
            }
            Ok(Point {
                binlogs: a.path(id),
                until: Some(u),
                ..Default::default()
            })
        }
        Until::Time(ms) => {
            let now = ocean_framework::runner::now_ms();
            if ms > now {
                return Err(Refused::bad(
                    "until",
                    format!("{u} is in the future (now {})", rfc3339(now)),
                )
                .into());
            }
            if ms < b.finished_ms {
                return Err(Refused::bad(
                    "until",
                    format!(
                        "{u} is before backup '{bid}' finished ({}): restore an older backup",
                        rfc3339(b.finished_ms)
                    ),
                )
                .into());
            }
            let a = archive().await?;
            if let Some(off) = a.stopped_ms.filter(|off| ms > *off) {
                return Err(Refused::bad(
                    "until",
                    format!(
                        "{u} is beyond the binlog archive: it was turned off at {}",
                        rfc3339(off)
                    ),
                )
                .into());
            }
            // What the archive must hold before it is trusted to hold
            // every commit up to `ms`: the primary's position as the
            // operator saw it at or after that time (a stopped archive
            // holds all it ever will).
            let reach = if a.stopped_ms.is_some() {
                String::new()
            } else {
                primary_after(c, id, ms).await?
            };
            let reached = GtidPos::parse(&reach);
            if !reach.is_empty() && from.contains(&reached) {
                // Nothing was committed after the backup up to then.
                return Ok(Point::default());
            }
            // Only the backup's domain is compared in the archive.
            let reach = reached
                .0
                .iter()
                .find(|(d, _)| from.0.is_empty() || from.0.contains_key(d))
                .map(|(d, (srv, n))| format!("{d}-{srv}-{n}"))
                .unwrap_or_default();
            Ok(Point {
                binlogs: a.path(id),
                until_ms: Some(ms),
                reach,
                ..Default::default()
            })
        }
    }
}

/// The primary's GTID position in the first status of database `id`
/// observed at or after `ms` (waiting up to [`REACH_WAIT`]).
async fn primary_after(c: &Arc<dyn Client>, id: &str, ms: u64) -> ApiResult<String> {
    let started = std::time::Instant::now();
    loop {
        let st = observed(c, id).await?;
        if st.observed_ms >= ms {
            if let Some(p) = st
                .nodes
                .iter()
                .find(|n| n.task == st.primary && !st.primary.is_empty())
            {
                return Ok(p.gtid.clone());
            }
        }
        if started.elapsed() >= REACH_WAIT {
            return Err(Refused::conflict(
                "until",
                format!(
                    "the operator has not seen database '{id}''s primary since {}: the archive cannot be shown to reach it",
                    rfc3339(ms)
                ),
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
