//! The REST side of backups (see [`crate::backup`]):
//!
//! ```text
//!  POST /v1/databases/{id}/backup  {"dir"?, "offsite_dir"?}: on the replica furthest ahead
//!                                  (the primary of a one-instance database) -> 201 done,
//!                                  502 failed, 202 still running after 120 s
//!  GET  /v1/databases/{id}/backups the backups, oldest first
//!  POST /v1/databases/{id}/restore {"backup", "name", "full_name"?, "instances"?, "until"?}:
//!                                  a new database started from the backup (and, with
//!                                  `until`, the archived binlogs replayed up to that GTID, or to the
//!                                  last commit before that RFC 3339 time) -> 201
//!  DELETE /v1/databases/{id}/schedule no more scheduled backups -> 200
//!  (the archive's routes: [`crate::archive_api`])
//!  POST /v1/databases/{id}/schedule {"every_hours", "retention_days", "dir"?, "offsite_dir"?}:
//!                                  scheduled backups, older ones deleted -> 200
//! ```

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use ocean_client::api::{KvKeyRequest, KvListRequest, KvPutRequest};
use ocean_client::{Client, Error};
use ocean_framework::{ApiError, ApiResult};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::actions::{key, observed};
use crate::archive_api::{until_point, Point};
use crate::backup::{
    backup_key, valid_dir, BackupRecord, Schedule, BACKUPS, DEFAULT_DIR, DEFAULT_OFFSITE_DIR,
    SCHEDULES,
};
use crate::framework::{DatabaseRecord, RestoreSource, DATABASES, NAME};
use crate::manual::{primary_of, replicas_by_position, Refused};

/// How long `POST .../backup` waits for the backup to finish before it
/// answers 202 (the backup goes on; `GET .../backups` shows it).
pub const BACKUP_WAIT: Duration = Duration::from_secs(120);

/// `POST /v1/databases/{id}/backup`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    /// Base directory on the agents' hosts (default
    /// `/var/tmp/ocean-mysql-backups`).
    #[serde(default)]
    pub dir: Option<String>,
    /// Base directory of the second copy (default
    /// `/var/tmp/ocean-mysql-backups-offsite`).
    #[serde(default)]
    pub offsite_dir: Option<String>,
}

/// `POST /v1/databases/{id}/restore`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restore {
    /// The backup's id (of this database).
    #[serde(default)]
    pub backup: Option<String>,
    /// The new database's name.
    #[serde(default)]
    pub name: Option<String>,
    /// Its full name (default: this one's with the last segment replaced
    /// by the new name).
    #[serde(default)]
    pub full_name: Option<String>,
    /// Its instances (default: this one's).
    #[serde(default)]
    pub instances: Option<u32>,
    /// A point in time: the GTID (`domain-server-seq`) to replay the
    /// archived binlogs up to, at or after the backup's; or an RFC 3339
    /// time (`2026-12-08T01:02:03Z`), after the backup finished and not in
    /// the future: every transaction committed in a second before it.
    #[serde(default)]
    pub until: Option<String>,
}

/// Sets database `id`'s backup schedule (replacing any): the operator
/// takes a backup every `every_hours` and deletes those older than
/// `retention_days` (never the newest).
pub async fn schedule(c: &Arc<dyn Client>, id: &str, bytes: &[u8]) -> ApiResult<Value> {
    let s: Schedule =
        serde_json::from_slice(bytes).map_err(|e| Refused::bad("body", e.to_string()))?;
    if let Some((field, reason)) = s.invalid() {
        return Err(Refused::bad(field, reason).into());
    }
    c.kv_put(KvPutRequest {
        namespace: NAME.into(),
        key: format!("{SCHEDULES}{id}"),
        value: serde_json::to_vec(&s).unwrap_or_default(),
        expected_revision: None,
    })
    .await?;
    tracing::info!(database = %id, every_hours = s.every_hours, retention_days = s.retention_days, "backup schedule set");
    Ok(json!({ "database": id, "schedule": s }))
}

/// Turns database `id`'s backup schedule off (`DELETE .../schedule`): no
/// more scheduled backups, and none deleted by retention; the backups
/// taken stay. 404 naming `schedule` if it has none.
pub async fn schedule_off(c: &Arc<dyn Client>, id: &str) -> ApiResult<Value> {
    let key_name = format!("{SCHEDULES}{id}");
    let (s, revision) = key::<Schedule>(c, key_name.clone()).await?.ok_or_else(|| {
        Refused::missing(
            "schedule",
            format!("database '{id}' has no backup schedule"),
        )
    })?;
    c.kv_delete(KvKeyRequest {
        namespace: NAME.into(),
        key: key_name,
        read: None,
        expected_revision: Some(revision),
    })
    .await?;
    tracing::info!(database = %id, "backup schedule off");
    Ok(json!({ "database": id, "schedule": null, "was": s }))
}

pub(crate) fn dir_field(
    field: &'static str,
    v: Option<String>,
    default: &str,
) -> Result<String, Refused> {
    let d = v.unwrap_or_else(|| default.to_string());
    let d = d.trim_end_matches('/').to_string();
    if valid_dir(&d) {
        Ok(d)
    } else {
        Err(Refused::bad(
            field,
            format!(
                "'{d}' is not an absolute path of letters, digits, '/', '-', '_' and '.' (no '..')"
            ),
        ))
    }
}

/// Backs database `id` up (see the module docs).
pub async fn backup(c: &Arc<dyn Client>, id: &str, b: Backup) -> ApiResult<(StatusCode, Value)> {
    let dir = dir_field("dir", b.dir, DEFAULT_DIR)?;
    let offsite_dir = dir_field("offsite_dir", b.offsite_dir, DEFAULT_OFFSITE_DIR)?;
    if dir == offsite_dir {
        return Err(Refused::bad(
            "offsite_dir",
            "must differ from dir: it stands for another place",
        )
        .into());
    }
    let st = observed(c, id).await?;
    let source = replicas_by_position(&st)
        .into_iter()
        .next()
        .or_else(|| primary_of(&st))
        .ok_or_else(|| Refused::conflict("id", "no instance serves: nothing to back up"))?;
    let port = source
        .addr
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(0);
    let now = ocean_framework::runner::now_ms();
    let rec = BackupRecord {
        id: format!("b-{now}"),
        database: id.to_string(),
        source: source.task.clone(),
        source_host: source.host.clone(),
        source_port: port,
        dir,
        offsite_dir,
        requested_ms: now,
        state: "running".into(),
        by: "request".into(),
        ..Default::default()
    };
    let put = c
        .kv_put(KvPutRequest {
            namespace: NAME.into(),
            key: backup_key(id, &rec.id),
            value: serde_json::to_vec(&rec).unwrap_or_default(),
            expected_revision: Some(0),
        })
        .await;
    match put {
        Ok(_) => {}
        Err(Error::VersionConflict { .. }) => {
            return Err(
                Refused::conflict("id", "a backup was asked for in the same millisecond").into(),
            )
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(database = %id, backup = %rec.id, source = %rec.source, "backup asked for");
    let started = std::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Some((b, _)) = key::<BackupRecord>(c, backup_key(id, &rec.id)).await? {
            match b.state.as_str() {
                "done" => return Ok((StatusCode::CREATED, json!(b))),
                "failed" => {
                    return Err(ApiError::new(
                        StatusCode::BAD_GATEWAY,
                        "backup_failed",
                        "id",
                        format!("backup {} on {}: {}", b.id, b.source, b.message),
                    ))
                }
                _ => {}
            }
        }
        if started.elapsed() >= BACKUP_WAIT {
            return Ok((StatusCode::ACCEPTED, json!(rec)));
        }
    }
}

/// Database `id`'s backups, oldest first.
pub async fn list(c: &Arc<dyn Client>, id: &str) -> ApiResult<Value> {
    let mut all: Vec<BackupRecord> = c
        .kv_list(KvListRequest {
            namespace: NAME.into(),
            prefix: format!("{BACKUPS}{id}/"),
            read: None,
        })
        .await?
        .entries
        .iter()
        .filter_map(|e| serde_json::from_slice(&e.value).ok())
        .collect();
    all.sort_by_key(|b| b.requested_ms);
    Ok(json!({ "backups": all }))
}

/// Restores backup `r.backup` of database `id` into a new database
/// `r.name` (see the module docs). It keeps `id`'s template and secrets:
/// the backup holds `id`'s users and their passwords.
pub async fn restore(
    c: &Arc<dyn Client>,
    id: &str,
    src: DatabaseRecord,
    r: Restore,
) -> ApiResult<DatabaseRecord> {
    let bid = r
        .backup
        .ok_or_else(|| Refused::bad("backup", "missing: the backup's id (GET .../backups)"))?;
    let name = r
        .name
        .ok_or_else(|| Refused::bad("name", "missing: the new database's name"))?;
    let (b, _) = key::<BackupRecord>(c, backup_key(id, &bid))
        .await?
        .ok_or_else(|| {
            Refused::missing("backup", format!("no backup '{bid}' of database '{id}'"))
        })?;
    if b.state != "done" {
        return Err(Refused::conflict(
            "backup",
            format!("backup '{bid}' is {} {}", b.state, b.message),
        )
        .into());
    }
    let point = match r.until {
        None => Point::default(),
        Some(u) => until_point(c, id, &bid, &b, &u).await?,
    };
    let mut spec = src.spec.clone();
    spec.full_name = r.full_name.unwrap_or_else(|| {
        let parent = spec.full_name.rsplit_once('/').map_or("", |(p, _)| p);
        format!("{parent}/{name}")
    });
    spec.name = name;
    if let Some(n) = r.instances {
        spec.instances = n;
    }
    spec.validate()?;
    let rec = DatabaseRecord {
        spec,
        template: src.template,
        secrets: src.secrets,
        created_ms: ocean_framework::runner::now_ms(),
        restore: Some(RestoreSource {
            database: id.to_string(),
            backup: bid,
            path: b.path(),
            gtid: b.gtid,
            until: point.until,
            binlogs: point.binlogs,
            until_ms: point.until_ms,
            reach: point.reach,
        }),
    };
    let put = c
        .kv_put(KvPutRequest {
            namespace: NAME.into(),
            key: format!("{DATABASES}{}", rec.spec.name),
            value: serde_json::to_vec(&rec).unwrap_or_default(),
            expected_revision: Some(0),
        })
        .await;
    match put {
        Ok(_) => {
            tracing::info!(database = %rec.spec.name, from = %id, "restore asked for");
            Ok(rec)
        }
        Err(Error::VersionConflict { .. }) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "name",
            format!("a database named '{}' already exists", rec.spec.name),
        )),
        Err(e) => Err(e.into()),
    }
}
