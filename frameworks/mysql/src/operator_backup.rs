//! The operator's side of backups (see [`crate::backup`]): a running
//! backup whose batch task ended is marked done (with the GTID and size
//! its task printed) or failed, which also ends its job; a database with
//! a schedule gets a backup when one is due, which first deletes the
//! backups past their retention (and their records go once it is done).

use futures::StreamExt;
use ocean_client::api::{KvPutRequest, TaskLogsRequest};
use ocean_framework::runner::now_ms;
use ocean_framework::View;
use tracing::{info, warn};

use super::Operator;
use crate::backup::{
    backup_fate, backup_job_id, backup_key, due, expired, parse_ok, BackupFate, BackupRecord,
    Schedule, BACKUPS, DEFAULT_DIR, DEFAULT_OFFSITE_DIR, SCHEDULES,
};
use crate::decide::Member;
use crate::framework::{DatabaseRecord, NAME};
use crate::seed::seed_source;

/// A backup still running after this long is given up, ms.
pub const BACKUP_TIMEOUT_MS: u64 = 6 * 3600 * 1000;

impl Operator {
    /// Ends `rec`'s backups whose task ended.
    pub(super) async fn tend_backups(&mut self, view: &View, rec: &DatabaseRecord) {
        let name = &rec.spec.name;
        let running: Vec<(BackupRecord, u64, String)> = view
            .keys_under(&format!("{BACKUPS}{name}/"))
            .filter_map(|e| {
                serde_json::from_slice::<BackupRecord>(&e.value)
                    .ok()
                    .map(|b| (b, e.revision, e.key.clone()))
            })
            .filter(|(b, _, _)| b.state == "running" && !self.handled.contains(&b.id))
            .collect();
        for (mut b, rev, key) in running {
            let job = backup_job_id(&rec.spec, &b.id);
            let tasks: Vec<(String, String, String)> = view
                .tasks_of(&job)
                .map(|t| (t.id.clone(), t.state.clone(), t.message.clone()))
                .collect();
            let now = now_ms();
            match backup_fate(&tasks) {
                BackupFate::Going if now.saturating_sub(b.requested_ms) > BACKUP_TIMEOUT_MS => {
                    b.state = "failed".into();
                    b.message = "it did not finish in time".into();
                }
                BackupFate::Going => continue,
                BackupFate::Done(task) => {
                    b.state = "done".into();
                    match self.last_output(&task).await.as_deref().and_then(parse_ok) {
                        Some((gtid, bytes)) => {
                            b.gtid = gtid;
                            b.bytes = bytes;
                        }
                        None => b.message = "its task's output was not readable".into(),
                    }
                }
                BackupFate::Failed(m) => {
                    b.state = "failed".into();
                    b.message = m;
                }
            }
            b.finished_ms = now;
            self.handled.insert(b.id.clone());
            if b.state == "done" {
                info!(database = %name, backup = %b.id, gtid = %b.gtid, bytes = b.bytes,
                      took_ms = now.saturating_sub(b.requested_ms), "backup done");
            } else {
                warn!(database = %name, backup = %b.id, reason = %b.message, "backup failed");
            }
            let put = self
                .client
                .kv_put(KvPutRequest {
                    namespace: NAME.into(),
                    key,
                    value: serde_json::to_vec(&b).unwrap_or_default(),
                    expected_revision: Some(rev),
                })
                .await;
            if let Err(e) = put {
                warn!(database = %name, error = %e, "backup outcome not written");
                continue;
            }
            if b.state == "done" {
                for old in &b.prune {
                    let del = self
                        .client
                        .kv_delete(ocean_client::api::KvKeyRequest {
                            namespace: NAME.into(),
                            key: backup_key(name, old),
                            read: None,
                            expected_revision: None,
                        })
                        .await;
                    match del {
                        Ok(_) => {
                            info!(database = %name, backup = %old, "backup past its retention deleted")
                        }
                        Err(e) => {
                            warn!(database = %name, backup = %old, error = %e, "expired backup's record not deleted")
                        }
                    }
                }
            }
        }
    }

    /// Starts the scheduled backup of `rec` when one is due, on the
    /// replica furthest ahead (the primary `p` when there is none).
    pub(super) async fn schedule_backups(
        &mut self,
        view: &View,
        rec: &DatabaseRecord,
        p: &Member,
        members: &[Member],
    ) {
        let name = &rec.spec.name;
        let Some(s) = view
            .keys
            .get(&format!("{SCHEDULES}{name}"))
            .and_then(|e| serde_json::from_slice::<Schedule>(&e.value).ok())
        else {
            return;
        };
        let backups: Vec<BackupRecord> = view
            .keys_under(&format!("{BACKUPS}{name}/"))
            .filter_map(|e| serde_json::from_slice(&e.value).ok())
            .collect();
        let now = now_ms();
        // One this operator started that the view does not show yet.
        if let Some(at) = self.scheduled.get(name) {
            if !backups.iter().any(|b| b.requested_ms == *at) && now.saturating_sub(*at) < 10_000 {
                return;
            }
        }
        if !due(&s, &backups, now) {
            return;
        }
        let Some(src) = seed_source(p, members, "") else {
            return;
        };
        let dir = |d: &Option<String>, default: &str| {
            d.as_deref()
                .unwrap_or(default)
                .trim_end_matches('/')
                .to_string()
        };
        let (dir, offsite_dir) = (
            dir(&s.dir, DEFAULT_DIR),
            dir(&s.offsite_dir, DEFAULT_OFFSITE_DIR),
        );
        let b = BackupRecord {
            id: format!("b-{now}"),
            database: name.clone(),
            source: src.task.clone(),
            source_host: src.host.clone(),
            source_port: src.port,
            prune: expired(&s, &backups, &dir, &offsite_dir, now),
            dir,
            offsite_dir,
            requested_ms: now,
            state: "running".into(),
            by: "schedule".into(),
            ..Default::default()
        };
        let put = self
            .client
            .kv_put(KvPutRequest {
                namespace: NAME.into(),
                key: backup_key(name, &b.id),
                value: serde_json::to_vec(&b).unwrap_or_default(),
                expected_revision: Some(0),
            })
            .await;
        match put {
            Ok(_) => {
                info!(database = %name, backup = %b.id, source = %b.source, pruning = b.prune.len(), "scheduled backup");
                self.scheduled.insert(name.clone(), now);
            }
            Err(e) => warn!(database = %name, error = %e, "scheduled backup not started"),
        }
    }

    /// The end of a task's stdout (bounded: a few KiB, 2 s).
    async fn last_output(&self, task: &str) -> Option<String> {
        let read = async {
            let mut s = self
                .client
                .task_logs(TaskLogsRequest {
                    id: task.to_string(),
                    stream: "stdout".into(),
                    tail: Some(4096),
                    follow: false,
                })
                .await
                .ok()?;
            let mut out = Vec::new();
            while let Some(Ok(chunk)) = s.next().await {
                out.extend(chunk.data);
            }
            Some(String::from_utf8_lossy(&out).into_owned())
        };
        tokio::time::timeout(std::time::Duration::from_secs(2), read)
            .await
            .ok()
            .flatten()
    }
}
