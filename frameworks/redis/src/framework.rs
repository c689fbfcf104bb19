//! The redis framework: [`RedisFramework`] implements the SDK's pure
//! `reconcile` over the keys of the `redis` namespace. It only keeps the
//! shards' jobs in step with the caches; forming and healing the Redis
//! Cluster inside them is the operator's work ([`crate::operator`]).
//!
//! ```text
//!  caches/<name>   the cache (CacheRecord: spec + created_ms), written by the API
//!  status/<name>   what the operator last observed (CacheStatus)
//!  jobs            one per shard, cop.ocean_owt.redis_pdl.<pdl>_..._job.shard-<i>_...
//! ```

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use ocean_framework::{Action, Framework, Plan, View};

use crate::jobs::{labels_of, shard_job_id, shard_job_restoring, LABEL_CACHE, LABEL_DIGEST};
use crate::spec::CacheSpec;

/// The framework's name: its namespace and lease.
pub const NAME: &str = "redis";
/// Prefix of the caches.
pub const CACHES: &str = "caches/";
/// Prefix of the operator's observations.
pub const STATUSES: &str = "status/";
/// Every shard job's id starts so (see [`shard_job_id`]).
pub const JOB_PREFIX: &str = "cop.ocean_owt.redis_";

/// A cache as stored (`caches/<name>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// What was asked for.
    pub spec: CacheSpec,
    /// When it was created (ms since the epoch, the API's clock).
    pub created_ms: u64,
    /// A change of shard count in progress: set by the API, cleared by the
    /// operator once the slots are where they belong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resharding: Option<Resharding>,
    /// The backup it was restored from, if any: one node of each shard
    /// starts from that shard's RDB file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreSource>,
}

/// Where a restored cache comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreSource {
    /// The cache backed up.
    pub cache: String,
    /// The backup's id.
    pub backup: String,
    /// The backup's directory: a path on the agents' hosts as well (a
    /// shared mount, or every agent on the master's machine).
    pub dir: String,
    /// Where each shard's one loading node claims the file (`mkdir`
    /// `<claims>/shard-<i>`): the first node to start loads it, the others
    /// and every later replacement start empty and sync as replicas.
    pub claims: String,
    /// Per shard, in order.
    pub shards: Vec<RestoreShard>,
}

/// One shard of a restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreShard {
    /// The RDB file, relative to `dir`.
    pub file: String,
    /// Its SHA-256, checked by the node before it loads it.
    pub sha256: String,
    /// The slots the shard serves (those of the backed-up shard).
    pub slots: Vec<(u16, u16)>,
    /// Keys in the file: a shard with keys waits for its loading node
    /// before any slot is assigned.
    pub keys: u64,
}

/// A change of shard count in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resharding {
    /// Shards that had jobs when it started (with `spec.shards`, the
    /// jobs kept until it ends: a shard being removed keeps its instances
    /// until its slots have moved).
    pub from_shards: u32,
    /// When it was asked for (ms since the epoch, the API's clock).
    pub started_ms: u64,
}

impl CacheRecord {
    /// Shards that have jobs: the spec's, plus those being drained.
    pub fn job_shards(&self) -> u32 {
        self.resharding
            .as_ref()
            .map_or(self.spec.shards, |r| r.from_shards.max(self.spec.shards))
    }
}

/// The caches of a view, by name (records that do not parse are skipped:
/// only the API writes them, after validation).
/// Key prefix of a cache's hold on spreading its primaries: `holds/<name>`
/// = `{"until_ms", "reason"}`, written by an operator's manual failover so
/// the operator's own spreading does not undo it.
pub const HOLDS: &str = "holds/";

/// Until when (ms since the epoch) cache `name`'s primaries stay where an
/// operator put them (0: no hold).
pub fn held_until(view: &View, name: &str) -> u64 {
    let key = format!("{HOLDS}{name}");
    let value = view
        .keys_under(&key)
        .find(|e| e.key == key)
        .and_then(|e| serde_json::from_slice::<serde_json::Value>(&e.value).ok());
    value.and_then(|v| v["until_ms"].as_u64()).unwrap_or(0)
}

pub fn caches(view: &View) -> Vec<(CacheRecord, u64)> {
    view.keys_under(CACHES)
        .filter_map(|e| {
            serde_json::from_slice::<CacheRecord>(&e.value)
                .ok()
                .map(|r| (r, e.revision))
        })
        .collect()
}

/// The redis framework.
#[derive(Debug, Default, Clone, Copy)]
pub struct RedisFramework;

impl Framework for RedisFramework {
    fn name(&self) -> &str {
        NAME
    }

    fn reconcile(&self, view: &View, _now_ms: u64) -> Plan {
        let mut actions = Vec::new();
        let mut wanted = BTreeSet::new();
        let mut names = BTreeSet::new();
        for (rec, _) in caches(view) {
            if rec.spec.validate().is_err() {
                continue;
            }
            names.insert(rec.spec.name.clone());
            for shard in 0..rec.job_shards() {
                let id = shard_job_id(&rec.spec, shard);
                let job = shard_job_restoring(&rec.spec, shard, rec.restore.as_ref());
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
                        // Create only when absent: two racing instances
                        // never both create it.
                        expected_spec_version: found.is_none().then_some(0),
                    }),
                }
                wanted.insert(id);
            }
        }
        // A deleted cache takes its jobs and its status with it; a cache
        // whose resharding ended, the jobs of the shards it removed.
        for (id, job) in &view.jobs {
            if !id.starts_with(JOB_PREFIX) || wanted.contains(id) {
                continue;
            }
            let owned = labels_of(&job.spec_json).is_some_and(|l| l.contains_key(LABEL_CACHE));
            if owned {
                actions.push(Action::DeleteJob {
                    id: id.clone(),
                    expected_spec_version: None,
                });
            }
        }
        for e in view.keys_under(STATUSES) {
            if !names.contains(&e.key[STATUSES.len()..]) {
                actions.push(Action::DeleteKey {
                    key: e.key.clone(),
                    expected_revision: Some(e.revision),
                });
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
    use crate::jobs::shard_job;
    use crate::spec::Persistence;
    use ocean_client::api::{Job, KvEntry};

    fn spec(shards: u32) -> CacheSpec {
        CacheSpec {
            name: "c".into(),
            product_line: "p".into(),
            shards,
            replicas: 1,
            memory_mb: 32,
            persistence: Persistence::Off,
        }
    }

    fn key(k: &str, v: Vec<u8>) -> KvEntry {
        KvEntry {
            namespace: NAME.into(),
            key: k.into(),
            value: v,
            revision: 3,
            created_revision: 3,
        }
    }

    fn with_cache(s: CacheSpec) -> View {
        let mut v = View::new(NAME);
        let rec = CacheRecord {
            spec: s,
            created_ms: 1,
            resharding: None,
            restore: None,
        };
        v.keys.insert(
            "caches/c".into(),
            key("caches/c", serde_json::to_vec(&rec).unwrap()),
        );
        v
    }

    fn job_of(s: &CacheSpec, shard: u32) -> Job {
        Job {
            id: shard_job_id(s, shard),
            spec_json: shard_job(s, shard).to_string().into_bytes(),
            ..Default::default()
        }
    }

    #[test]
    fn a_new_cache_gets_one_job_per_shard_created_only_if_absent() {
        let s = spec(2);
        let plan = RedisFramework.reconcile(&with_cache(s.clone()), 0);
        assert_eq!(
            plan.actions,
            vec![
                Action::PutJob {
                    spec_json: shard_job(&s, 0).to_string().into_bytes(),
                    expected_spec_version: Some(0)
                },
                Action::PutJob {
                    spec_json: shard_job(&s, 1).to_string().into_bytes(),
                    expected_spec_version: Some(0)
                },
            ]
        );
    }

    #[test]
    fn jobs_in_step_need_nothing_and_a_changed_spec_is_put_again() {
        let s = spec(2);
        let mut v = with_cache(s.clone());
        for i in 0..2 {
            let j = job_of(&s, i);
            v.jobs.insert(j.id.clone(), j);
        }
        assert_eq!(RedisFramework.reconcile(&v, 0).actions, vec![]);
        let more = CacheSpec {
            replicas: 2,
            ..s.clone()
        };
        let rec = CacheRecord {
            spec: more.clone(),
            created_ms: 1,
            resharding: None,
            restore: None,
        };
        v.keys.insert(
            "caches/c".into(),
            key("caches/c", serde_json::to_vec(&rec).unwrap()),
        );
        assert_eq!(
            RedisFramework.reconcile(&v, 0).actions,
            (0..2)
                .map(|i| Action::PutJob {
                    spec_json: shard_job(&more, i).to_string().into_bytes(),
                    expected_spec_version: None
                })
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_deleted_cache_loses_its_jobs_and_status_and_other_jobs_are_left_alone() {
        let s = spec(1);
        let mut v = View::new(NAME);
        let j = job_of(&s, 0);
        v.jobs.insert(j.id.clone(), j.clone());
        let other = Job {
            id: "cop.a_owt.b_pdl.c_service.d_job.e_cluster.f".into(),
            ..Default::default()
        };
        v.jobs.insert(other.id.clone(), other);
        v.keys
            .insert("status/c".into(), key("status/c", b"{}".to_vec()));
        assert_eq!(
            RedisFramework.reconcile(&v, 0).actions,
            vec![
                Action::DeleteJob {
                    id: j.id,
                    expected_spec_version: None
                },
                Action::DeleteKey {
                    key: "status/c".into(),
                    expected_revision: Some(3)
                },
            ]
        );
    }
}
