//! The operator's side of rebuilds (see [`crate::seed`]): each round,
//! with a primary that answers, it ends the seeds that are over, starts
//! one for every instance that waits for one, and condemns the replicas
//! that are broken for good or that an operator asked to rebuild.

use std::collections::BTreeSet;

use ocean_client::api::{KvKeyRequest, KvPutRequest};
use ocean_framework::runner::now_ms;
use ocean_framework::View;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{execute_all, Operator};
use crate::admin::AdminCmd;
use crate::decide::Member;
use crate::framework::{DatabaseRecord, NAME};
use crate::seed::{
    broken, plan_seed, seed_fate, seed_key, RebuildRequest, SeedFate, SeedRecord, BROKEN_FOR_MS,
    REBUILDS, SEEDS,
};

impl Operator {
    /// Tends `rec`'s rebuilds; returns the tasks being rebuilt (waiting
    /// for a seed or receiving one).
    pub(super) async fn tend_seeds(
        &mut self,
        view: &View,
        rec: &DatabaseRecord,
        p: &Member,
        members: &[Member],
    ) -> BTreeSet<String> {
        let name = &rec.spec.name;
        let now = now_ms();
        let mut rebuilding = BTreeSet::new();

        // Seeds under way: done once the instance answers.
        let prefix = format!("{SEEDS}{name}/");
        let seeds: Vec<(SeedRecord, u64, String)> = view
            .keys_under(&prefix)
            .filter_map(|e| {
                serde_json::from_slice::<SeedRecord>(&e.value)
                    .ok()
                    .map(|s| (s, e.revision, e.key.clone()))
            })
            .collect();
        for (seed, rev, key) in &seeds {
            let target = members.iter().find(|m| m.task == seed.target);
            match seed_fate(seed, target, now) {
                SeedFate::Going => {
                    rebuilding.insert(seed.target.clone());
                    continue;
                }
                SeedFate::Done => {
                    info!(database = %name, task = %seed.target, source = %seed.source,
                          took_ms = now.saturating_sub(seed.started_ms), "rebuild: seeded");
                }
                SeedFate::Abandon => {
                    warn!(database = %name, task = %seed.target, "rebuild: seed abandoned (the instance went, or it took too long)");
                }
            }
            self.seeding.remove(&seed.target);
            let del = self
                .client
                .kv_delete(KvKeyRequest {
                    namespace: NAME.into(),
                    key: key.clone(),
                    read: None,
                    expected_revision: Some(*rev),
                })
                .await;
            if let Err(e) = del {
                warn!(database = %name, error = %e, "seed not ended");
            }
        }
        // Seeds this operator wrote that the view does not show yet.
        self.seeding.retain(|task, at| {
            members.iter().any(|m| &m.task == task) && at.elapsed().as_secs() < 60
        });
        rebuilding.extend(self.seeding.keys().cloned());

        // Instances waiting for a seed: their mysql port silent, their
        // seed port open.
        for m in members {
            if m.obs.is_some()
                || m.seed_port == 0
                || m.task == p.task
                || rebuilding.contains(&m.task)
            {
                continue;
            }
            let addr = format!("{}:{}", m.ip, m.seed_port);
            if !self.admin.awaits_seed(&addr).await {
                continue;
            }
            rebuilding.insert(m.task.clone());
            let Some(seed) = plan_seed(name, p, members, m, now) else {
                warn!(database = %name, task = %m.task, "rebuild: no healthy instance to seed from");
                continue;
            };
            let put = self
                .client
                .kv_put(KvPutRequest {
                    namespace: NAME.into(),
                    key: seed_key(name, &m.task),
                    value: serde_json::to_vec(&seed).unwrap_or_default(),
                    expected_revision: Some(0),
                })
                .await;
            match put {
                Ok(_) => {
                    info!(database = %name, task = %m.task, source = %seed.source, host = %seed.source_host, "rebuild: seeding");
                    self.seeding.insert(m.task.clone(), Instant::now());
                }
                Err(e) => warn!(database = %name, error = %e, "seed not started"),
            }
        }

        // Replicas broken for good (for BROKEN_FOR_MS), and the one asked
        // for: condemned, so their next task waits for a seed.
        let mut condemn: Vec<(String, String)> = Vec::new();
        for m in members {
            if broken(m, p) {
                let since = *self.broken_since.entry(m.task.clone()).or_insert(now);
                if now.saturating_sub(since) >= BROKEN_FOR_MS {
                    condemn.push((m.task.clone(), "its replication stopped for good".into()));
                    self.broken_since.remove(&m.task);
                }
            } else {
                self.broken_since.remove(&m.task);
            }
        }
        if let Some((req, rev)) = self.rebuild_request(view, name) {
            let target = members.iter().find(|m| m.task == req.task);
            let outcome = match target {
                _ if req.task == p.task => Err("it is the primary now".to_string()),
                None => Err("its task is not running".into()),
                Some(t) if t.obs.is_none() => Err("it does not answer".into()),
                Some(_) => {
                    condemn.push((req.task.clone(), "asked for".into()));
                    Ok("condemned and shut down: its next task waits for a seed".to_string())
                }
            };
            self.finish_rebuild_request(name, req, rev, outcome).await;
        }
        for (task, why) in condemn {
            let Some(m) = members.iter().find(|m| m.task == task) else {
                continue;
            };
            warn!(database = %name, task = %task, reason = %why, "rebuild: condemning the instance's data");
            let cmd = AdminCmd::Condemn { on: m.addr() };
            execute_all(self.admin.as_ref(), name, &[cmd], &rec.secrets).await;
            rebuilding.insert(task);
        }
        rebuilding
    }

    /// The rebuild asked for `name` still to act on, with its revision.
    fn rebuild_request(&mut self, view: &View, name: &str) -> Option<(RebuildRequest, u64)> {
        let e = view.keys.get(&format!("{REBUILDS}{name}"))?;
        let req: RebuildRequest = serde_json::from_slice(&e.value).ok()?;
        if req.state != "requested" || self.handled.contains(&req.id) {
            return None;
        }
        self.handled.insert(req.id.clone());
        Some((req, e.revision))
    }

    async fn finish_rebuild_request(
        &mut self,
        name: &str,
        mut req: RebuildRequest,
        rev: u64,
        outcome: Result<String, String>,
    ) {
        (req.state, req.message) = match outcome {
            Ok(m) => ("started".into(), m),
            Err(m) => {
                warn!(database = %name, task = %req.task, reason = %m, "rebuild refused");
                ("failed".into(), m)
            }
        };
        let put = self
            .client
            .kv_put(KvPutRequest {
                namespace: NAME.into(),
                key: format!("{REBUILDS}{name}"),
                value: serde_json::to_vec(&req).unwrap_or_default(),
                expected_revision: Some(rev),
            })
            .await;
        if let Err(e) = put {
            warn!(database = %name, error = %e, "rebuild outcome not written");
        }
    }
}
