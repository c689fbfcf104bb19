//! The mysql framework: [`MysqlFramework`] implements the SDK's pure
//! `reconcile` over the keys of the `mysql` namespace. It keeps each
//! database's job in step with its record and the built-in templates
//! stored; replication and failover inside the job are the operator's
//! work ([`crate::operator`]).
//!
//! ```text
//!  databases/<name>  the database (DatabaseRecord: spec, template, secrets), by the API
//!  topology/<name>   which task is primary (Topology), by the operator
//!  status/<name>     what the operator last observed (DatabaseStatus)
//!  switchover/<name> the newest switchover asked for and its outcome (SwitchoverRequest)
//!  rebuild/<name>    the newest rebuild asked for through the API (RebuildRequest)
//!  seeds/<name>/<task> a seed under way (SeedRecord), by the operator: a batch job each
//!  backups/<name>/<id> a backup (BackupRecord): a batch job while it runs
//!  archive/<name>    its binlog archive (ArchiveRecord): one archiver task
//!  schedule/<name>   its backup schedule (Schedule), by the API; the operator acts on it
//!  templates/<name>  the templates (Template)
//!  jobs              one per database, cop.ocean_owt.<dept>_pdl.<pdl>_servicegroup.rds_...
//! ```

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use ocean_framework::{Action, Framework, Plan, View};

use crate::admin::Secrets;
use crate::archive::{
    archive_job, archive_job_id, keep_from, ArchiveRecord, ARCHIVES, LABEL_ARCHIVE,
};
use crate::backup::{backup_job, BackupRecord, BACKUPS, LABEL_BACKUP};
use crate::jobs::{
    database_job, job_id, labels_of, seed_job, LABEL_DATABASE, LABEL_DIGEST, LABEL_SEED,
};
use crate::seed::{SeedRecord, REBUILDS, SEEDS};
use crate::spec::DatabaseSpec;
use crate::templates::{builtin, Template};

/// The framework's name: its namespace and lease.
pub const NAME: &str = "mysql";
/// Prefix of the databases.
pub const DATABASES: &str = "databases/";
/// Prefix of the operator's observations.
pub const STATUSES: &str = "status/";
/// Prefix of the recorded primaries.
pub const TOPOLOGIES: &str = "topology/";
/// Prefix of the templates.
pub const TEMPLATES: &str = "templates/";
/// Label every database job carries (jobs of other frameworks never do).
const MARK: &str = "_servicegroup.rds_service.";

/// A database as stored (`databases/<name>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseRecord {
    /// What was asked for.
    pub spec: DatabaseSpec,
    /// The template's sizes when it was created.
    pub template: Template,
    /// Its generated passwords.
    pub secrets: Secrets,
    /// When it was created (ms since the epoch, the API's clock).
    pub created_ms: u64,
    /// The backup it was restored from, if any: its instances start from
    /// it instead of an empty datadir.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreSource>,
}

/// Where a restored database comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreSource {
    /// The database backed up.
    pub database: String,
    /// The backup's id.
    pub backup: String,
    /// Its directory (on the agents' hosts).
    pub path: String,
    /// The GTID position it holds.
    #[serde(default)]
    pub gtid: String,
    /// A point in time: replay the archived binlogs up to this GTID
    /// (from `binlogs`) after the backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// The binlog archive to replay from.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub binlogs: String,
    /// A point in time given as a time (ms since the epoch): replay the
    /// archived binlogs from the backup up to the last transaction
    /// committed before it (each instance finds it in the archive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
    /// With `until_ms`: a GTID the archive must hold before it is trusted
    /// to hold everything up to the time (the primary's position observed
    /// at or after it); empty when the archive was turned off.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reach: String,
}

/// Which task is the primary (`topology/<name>`), written by the operator
/// with compare-and-set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// The primary's task id.
    pub primary: String,
    /// Its `ip:port` when chosen.
    pub addr: String,
    /// Failovers so far (0: the first primary).
    pub epoch: u64,
    /// When it was chosen (ms since the epoch).
    pub since_ms: u64,
}

/// The databases of a view with their revisions (records that do not
/// parse are skipped: only the API writes them, after validation).
pub fn databases(view: &View) -> Vec<(DatabaseRecord, u64)> {
    view.keys_under(DATABASES)
        .filter_map(|e| {
            serde_json::from_slice::<DatabaseRecord>(&e.value)
                .ok()
                .map(|r| (r, e.revision))
        })
        .collect()
}

/// A database's recorded primary and its revision (0: none yet).
pub fn topology(view: &View, name: &str) -> (Option<Topology>, u64) {
    match view.keys.get(&format!("{TOPOLOGIES}{name}")) {
        Some(e) => (serde_json::from_slice(&e.value).ok(), e.revision),
        None => (None, 0),
    }
}

/// The mysql framework.
#[derive(Debug, Default, Clone, Copy)]
pub struct MysqlFramework;

impl Framework for MysqlFramework {
    fn name(&self) -> &str {
        NAME
    }

    fn reconcile(&self, view: &View, _now_ms: u64) -> Plan {
        let mut actions = Vec::new();
        for t in builtin() {
            let key = format!("{TEMPLATES}{}", t.name);
            if !view.keys.contains_key(&key) {
                actions.push(Action::PutKey {
                    key,
                    value: serde_json::to_vec(&t).unwrap_or_default(),
                    expected_revision: Some(0),
                });
            }
        }
        let mut wanted = BTreeSet::new();
        let mut names = BTreeSet::new();
        for (rec, _) in databases(view) {
            if rec.spec.validate().is_err() {
                continue;
            }
            names.insert(rec.spec.name.clone());
            // Its seeds under way: a batch job each, made once (a job
            // that ran to its end stays until the operator ends the seed).
            for e in view.keys_under(&format!("{SEEDS}{}/", rec.spec.name)) {
                let Ok(seed) = serde_json::from_slice::<SeedRecord>(&e.value) else {
                    continue;
                };
                let job = seed_job(&rec.spec, &seed, &rec.secrets);
                let id = job["id"].as_str().unwrap_or_default().to_string();
                if !view.jobs.contains_key(&id) {
                    actions.push(Action::PutJob {
                        spec_json: job.to_string().into_bytes(),
                        expected_spec_version: Some(0),
                    });
                }
                wanted.insert(id);
            }
            // Its binlog archiver, following the recorded primary.
            let archive = view
                .keys
                .get(&format!("{ARCHIVES}{}", rec.spec.name))
                .and_then(|e| serde_json::from_slice::<ArchiveRecord>(&e.value).ok());
            let archive = archive.filter(|a| a.stopped_ms.is_none());
            if let (Some(a), (Some(t), _)) = (archive, topology(view, &rec.spec.name)) {
                let backups: Vec<BackupRecord> = view
                    .keys_under(&format!("{BACKUPS}{}/", rec.spec.name))
                    .filter_map(|e| serde_json::from_slice(&e.value).ok())
                    .collect();
                let job = archive_job(&rec.spec, &a, &t.addr, &keep_from(&backups), &rec.secrets);
                let id = archive_job_id(&rec.spec);
                let current = view
                    .jobs
                    .get(&id)
                    .and_then(|j| labels_of(&j.spec_json))
                    .and_then(|l| l.get(LABEL_DIGEST).cloned());
                match current {
                    Some(d) if d == job["labels"][LABEL_DIGEST] => {}
                    found => actions.push(Action::PutJob {
                        spec_json: job.to_string().into_bytes(),
                        expected_spec_version: found.is_none().then_some(0),
                    }),
                }
                wanted.insert(id);
            }
            // Its backups being taken: a batch job each.
            for e in view.keys_under(&format!("{BACKUPS}{}/", rec.spec.name)) {
                let Ok(b) = serde_json::from_slice::<BackupRecord>(&e.value) else {
                    continue;
                };
                if b.state != "running" {
                    continue;
                }
                let job = backup_job(&rec.spec, &b, &rec.secrets);
                let id = job["id"].as_str().unwrap_or_default().to_string();
                if !view.jobs.contains_key(&id) {
                    actions.push(Action::PutJob {
                        spec_json: job.to_string().into_bytes(),
                        expected_spec_version: Some(0),
                    });
                }
                wanted.insert(id);
            }
            let id = job_id(&rec.spec);
            let job = database_job(
                &rec.spec,
                &rec.template,
                &rec.secrets.admin_password,
                &rec.secrets.repl_password,
                rec.restore.as_ref(),
            );
            let digest = &job["labels"][LABEL_DIGEST];
            let current = view
                .jobs
                .get(&id)
                .and_then(|j| labels_of(&j.spec_json))
                .and_then(|l| l.get(LABEL_DIGEST).cloned());
            match current {
                Some(d) if &d == digest => {}
                found => actions.push(Action::PutJob {
                    spec_json: job.to_string().into_bytes(),
                    expected_spec_version: found.is_none().then_some(0),
                }),
            }
            wanted.insert(id);
        }
        // A deleted database takes its job, topology and status with it.
        for (id, job) in &view.jobs {
            if !id.contains(MARK) || wanted.contains(id) {
                continue;
            }
            let labels = labels_of(&job.spec_json);
            let owner = labels.as_ref().and_then(|l| {
                l.get(LABEL_DATABASE)
                    .and_then(|v| v.as_str().map(String::from))
            });
            // A seed, backup or archiver job whose seed, backup or archive
            // ended goes too.
            let seed = labels.as_ref().is_some_and(|l| {
                l.contains_key(LABEL_SEED)
                    || l.contains_key(LABEL_BACKUP)
                    || l.contains_key(LABEL_ARCHIVE)
            });
            if seed || owner.is_some_and(|o| !names.contains(&o)) {
                actions.push(Action::DeleteJob {
                    id: id.clone(),
                    expected_spec_version: None,
                });
            }
        }
        for prefix in [
            STATUSES,
            TOPOLOGIES,
            crate::switchover::SWITCHOVERS,
            ARCHIVES,
            crate::backup::SCHEDULES,
            REBUILDS,
            SEEDS,
        ] {
            for e in view.keys_under(prefix) {
                // seeds/<db>/<task>: the database is the first part.
                let db = e.key[prefix.len()..].split('/').next().unwrap_or_default();
                if !names.contains(db) {
                    actions.push(Action::DeleteKey {
                        key: e.key.clone(),
                        expected_revision: Some(e.revision),
                    });
                }
            }
        }
        Plan {
            actions,
            wake_at_ms: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocean_client::api::{Job, KvEntry};

    fn key(k: &str, v: Vec<u8>) -> KvEntry {
        KvEntry {
            namespace: NAME.into(),
            key: k.into(),
            value: v,
            revision: 3,
            created_revision: 3,
        }
    }

    fn record() -> DatabaseRecord {
        DatabaseRecord {
            spec: crate::spec::tests::ok(),
            template: builtin()[0].clone(),
            secrets: Secrets::default(),
            created_ms: 1,
            restore: None,
        }
    }

    fn seeded() -> View {
        let mut v = View::new(NAME);
        for t in builtin() {
            let k = format!("{TEMPLATES}{}", t.name);
            v.keys
                .insert(k.clone(), key(&k, serde_json::to_vec(&t).unwrap()));
        }
        v
    }

    #[test]
    fn templates_are_seeded_once() {
        let plan = MysqlFramework.reconcile(&View::new(NAME), 0);
        assert_eq!(plan.actions.len(), 2);
        assert!(
            matches!(&plan.actions[0], Action::PutKey { key, expected_revision: Some(0), .. } if key == "templates/mysql-general")
        );
        assert_eq!(MysqlFramework.reconcile(&seeded(), 0).actions, vec![]);
    }

    #[test]
    fn a_database_gets_its_job_once_and_loses_it_with_its_keys_when_deleted() {
        let rec = record();
        let mut v = seeded();
        let k = format!("{DATABASES}{}", rec.spec.name);
        v.keys
            .insert(k.clone(), key(&k, serde_json::to_vec(&rec).unwrap()));
        let job = database_job(&rec.spec, &rec.template, "", "", None);
        assert_eq!(
            MysqlFramework.reconcile(&v, 0).actions,
            vec![Action::PutJob {
                spec_json: job.to_string().into_bytes(),
                expected_spec_version: Some(0)
            }]
        );
        let id = job_id(&rec.spec);
        v.jobs.insert(
            id.clone(),
            Job {
                id: id.clone(),
                spec_json: job.to_string().into_bytes(),
                ..Default::default()
            },
        );
        assert_eq!(MysqlFramework.reconcile(&v, 0).actions, vec![]);
        v.keys.remove(&k);
        let t = format!("{TOPOLOGIES}{}", rec.spec.name);
        v.keys.insert(t.clone(), key(&t, b"{}".to_vec()));
        assert_eq!(
            MysqlFramework.reconcile(&v, 0).actions,
            vec![
                Action::DeleteJob {
                    id,
                    expected_spec_version: None
                },
                Action::DeleteKey {
                    key: t,
                    expected_revision: Some(3)
                },
            ]
        );
    }
}
