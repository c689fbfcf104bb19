//! The operator's side of a switchover (see [`crate::switchover`]): it
//! picks up the request from the view, steps it to the end within its
//! budget, records the new primary the way a failover does, and writes
//! the outcome back for the API.

use std::time::Duration;

use ocean_client::api::KvPutRequest;
use ocean_framework::runner::now_ms;
use ocean_framework::View;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{execute_all, observe_all, Operator};
use crate::decide::{steady, Member};
use crate::framework::{DatabaseRecord, Topology, NAME};
use crate::switchover::{self, SwitchStep, SwitchoverRequest, SWITCHOVERS};

impl Operator {
    /// The switchover asked for `name` that this operator has still to
    /// carry out, with its revision. One that waited too long is marked
    /// failed here.
    pub(super) async fn switchover_request(
        &mut self,
        view: &View,
        name: &str,
    ) -> Option<(SwitchoverRequest, u64)> {
        let e = view.keys.get(&format!("{SWITCHOVERS}{name}"))?;
        let req: SwitchoverRequest = serde_json::from_slice(&e.value).ok()?;
        if !req.pending() || self.handled.contains(&req.id) {
            return None;
        }
        if req.expired(now_ms()) {
            self.handled.insert(req.id.clone());
            let msg = "no operator picked it up in time".to_string();
            self.finish_switchover(name, req, e.revision, Err(msg), 0)
                .await;
            return None;
        }
        Some((req, e.revision))
    }

    async fn finish_switchover(
        &mut self,
        name: &str,
        mut req: SwitchoverRequest,
        rev: u64,
        outcome: std::result::Result<String, String>,
        took_ms: u64,
    ) {
        match outcome {
            Ok(m) => {
                req.state = "done".into();
                req.message = m;
            }
            Err(m) => {
                warn!(database = %name, to = %req.to, reason = %m, "switchover failed");
                req.state = "failed".into();
                req.message = m;
            }
        }
        req.took_ms = took_ms;
        let put = self
            .client
            .kv_put(KvPutRequest {
                namespace: NAME.into(),
                key: format!("{SWITCHOVERS}{name}"),
                value: serde_json::to_vec(&req).unwrap_or_default(),
                expected_revision: Some(rev),
            })
            .await;
        if let Err(e) = put {
            warn!(database = %name, error = %e, "switchover outcome not written");
        }
    }

    /// Carries out a switchover from the recorded primary `old` to
    /// `req.to` (see [`crate::switchover`]): the new topology when done.
    /// Whatever happens, the request is finished (done or failed).
    pub(super) async fn switch_over(
        &mut self,
        rec: &DatabaseRecord,
        old: &Topology,
        rev: u64,
        members: &[Member],
        req: SwitchoverRequest,
        req_rev: u64,
    ) -> Option<Topology> {
        let name = &rec.spec.name;
        let secrets = &rec.secrets;
        let admin = self.admin.clone();
        self.handled.insert(req.id.clone());
        let started = Instant::now();
        info!(database = %name, from = %old.primary, to = %req.to, "switchover");
        let mut members = members.to_vec();
        let outcome = loop {
            if req.epoch != old.epoch || req.from != old.primary {
                break Err(format!(
                    "the primary changed since it was asked for (now {}, epoch {})",
                    old.primary, old.epoch
                ));
            }
            observe_all(admin.as_ref(), &mut members, secrets).await;
            let p = members.iter().find(|m| m.task == old.primary);
            let target = members.iter().find(|m| m.task == req.to);
            let (Some(p), Some(target)) = (p, target) else {
                break Err(format!("{} is no longer running", req.to));
            };
            let why = match switchover::step(p, target) {
                SwitchStep::Refuse(why) => break Err(why),
                SwitchStep::Demote(cmd) => {
                    execute_all(admin.as_ref(), name, &[cmd], secrets).await;
                    format!("stopping writes on the primary {}", old.primary)
                }
                SwitchStep::Wait(why) => why,
                SwitchStep::Promote => {
                    let target = target.clone();
                    let t = Topology {
                        primary: target.task.clone(),
                        addr: target.addr(),
                        epoch: old.epoch + 1,
                        since_ms: now_ms(),
                    };
                    if !self.put_topology(name, t.clone(), rev).await {
                        break Err("the topology changed meanwhile".into());
                    }
                    self.record_failover(rec, &old.primary, &t, "switchover")
                        .await;
                    let cmds = steady(rec.spec.instances, &target, &members);
                    execute_all(admin.as_ref(), name, &cmds, secrets).await;
                    break Ok(t);
                }
            };
            if started.elapsed() >= self.opts.switchover_budget {
                break Err(format!(
                    "{} did not catch up within {} ms: {why}",
                    req.to,
                    self.opts.switchover_budget.as_millis()
                ));
            }
            debug!(database = %name, %why, "switchover: the target is applying");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let took = started.elapsed().as_millis() as u64;
        match outcome {
            Ok(t) => {
                info!(database = %name, primary = %t.primary, took_ms = took, "switchover done");
                let msg = format!("{} is primary (epoch {})", t.primary, t.epoch);
                self.finish_switchover(name, req, req_rev, Ok(msg), took)
                    .await;
                Some(t)
            }
            Err(why) => {
                self.finish_switchover(name, req, req_rev, Err(why), took)
                    .await;
                None
            }
        }
    }
}
