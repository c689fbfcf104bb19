//! The databases' manual actions behind `POST /v1/databases/{id}/{action}`:
//!
//! ```text
//!  switchover {"to"?: task}  the target chosen from the status (manual.rs) ─► switchover/<db>
//!                            (requested) ─► the operator carries it out ─► waits for done | failed
//!  scale {"instances": n}    1..=9, at most one per online agent; a scale-in that would stop
//!                            the primary's task switches over to a replica that stays first;
//!                            then databases/<db> (CAS) ─► the framework resizes the job
//!  rebuild {"task": id}      a non-primary that answers (manual.rs) ─► rebuild/<db> ─► the
//!                            operator condemns it ─► 202 once it did; the seed follows (seed.rs)
//! ```

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use ocean_client::api::{KvKeyRequest, KvPutRequest, ListAgentsRequest, ListTasksRequest};
use ocean_client::{Client, Error};
use ocean_framework::{ApiError, ApiResult};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::framework::{DatabaseRecord, Topology, DATABASES, NAME, STATUSES, TOPOLOGIES};
use crate::jobs::job_id;
use crate::manual::{
    keeper, rebuild_target, scale_in_victims, switchover_target, JobTask, Refused,
};
use crate::seed::{RebuildRequest, REBUILDS};
use crate::status::DatabaseStatus;
use crate::switchover::{SwitchoverRequest, SWITCHOVERS};

/// How long `POST .../switchover` waits for the operator's outcome: its
/// budget for the target to catch up (10 s), plus rounds on either side.
pub const SWITCHOVER_WAIT: Duration = Duration::from_secs(20);

/// `POST /v1/databases/{id}/switchover`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Switchover {
    /// The replica's task to promote; by default the replicating one
    /// furthest ahead.
    #[serde(default)]
    pub to: Option<String>,
}

/// `POST /v1/databases/{id}/scale`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scale {
    /// The new number of instances, `1..=9`.
    pub instances: u32,
}

impl Scale {
    /// Parses `{"instances": n}`; an error names `body` (not a JSON
    /// object, or another field) or `instances` (missing, or not a whole
    /// number).
    pub fn parse(bytes: &[u8]) -> Result<Scale, Refused> {
        let v: Value =
            serde_json::from_slice(bytes).map_err(|e| Refused::bad("body", e.to_string()))?;
        let Some(o) = v.as_object() else {
            return Err(Refused::bad(
                "body",
                "expected a JSON object {\"instances\": n}",
            ));
        };
        if let Some(k) = o.keys().find(|k| *k != "instances") {
            return Err(Refused::bad(
                "body",
                format!("unknown field `{k}`, expected `instances`"),
            ));
        }
        let n = o
            .get("instances")
            .ok_or_else(|| Refused::bad("instances", "missing: the new number of instances"))?;
        let instances = n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| {
                Refused::bad(
                    "instances",
                    format!("{n} is not a whole number of instances"),
                )
            })?;
        Ok(Scale { instances })
    }
}

pub(crate) async fn key<T: serde::de::DeserializeOwned>(
    c: &Arc<dyn Client>,
    key: String,
) -> ApiResult<Option<(T, u64)>> {
    let got = c
        .kv_get(KvKeyRequest {
            namespace: NAME.into(),
            key,
            read: None,
            expected_revision: None,
        })
        .await;
    match got {
        Ok(e) => Ok(serde_json::from_slice(&e.value)
            .ok()
            .map(|v| (v, e.revision))),
        Err(Error::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The status the operator last wrote, or a 409 while it has not
/// observed the database.
pub(crate) async fn observed(c: &Arc<dyn Client>, id: &str) -> ApiResult<DatabaseStatus> {
    key(c, format!("{STATUSES}{id}"))
        .await?
        .map(|(s, _)| s)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "id",
                format!("database '{id}' has not been observed by the operator yet"),
            )
        })
}

/// Hands database `id`'s primary role to `s.to` (or the best replica),
/// losslessly, through the operator; returns once it is done (or a 409
/// naming why it failed, or a 504 after [`SWITCHOVER_WAIT`]).
pub async fn switchover(c: &Arc<dyn Client>, id: &str, s: Switchover) -> ApiResult<Value> {
    let st = observed(c, id).await?;
    let (target, primary) = switchover_target(&st, s.to.as_deref())?;
    let (topo, _) = key::<Topology>(c, format!("{TOPOLOGIES}{id}"))
        .await?
        .ok_or_else(|| Refused::conflict("id", "no primary recorded yet"))?;
    if topo.primary != primary.task {
        return Err(Refused::conflict(
            "id",
            "the primary changed since the operator last looked; try again",
        )
        .into());
    }
    let now = ocean_framework::runner::now_ms();
    let existing = key::<SwitchoverRequest>(c, format!("{SWITCHOVERS}{id}")).await?;
    if let Some((r, _)) = &existing {
        if r.pending() && !r.expired(now) {
            return Err(Refused::conflict(
                "id",
                format!("a switchover to '{}' is under way", r.to),
            )
            .into());
        }
    }
    let req = SwitchoverRequest {
        id: format!("s-{now}"),
        to: target.task.clone(),
        from: primary.task.clone(),
        epoch: topo.epoch,
        requested_ms: now,
        state: "requested".into(),
        ..Default::default()
    };
    let put = c
        .kv_put(KvPutRequest {
            namespace: NAME.into(),
            key: format!("{SWITCHOVERS}{id}"),
            value: serde_json::to_vec(&req).unwrap_or_default(),
            expected_revision: Some(existing.map_or(0, |(_, rev)| rev)),
        })
        .await;
    match put {
        Ok(_) => {}
        Err(Error::VersionConflict { .. }) => {
            return Err(
                Refused::conflict("id", "another switchover was asked for meanwhile").into(),
            )
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(database = %id, from = %req.from, to = %req.to, "switchover asked for");
    let late = format!(
        "the operator did not finish the switchover to '{}' within {} s; GET the database for its state",
        req.to,
        SWITCHOVER_WAIT.as_secs()
    );
    outcome(
        c,
        format!("{SWITCHOVERS}{id}"),
        SWITCHOVER_WAIT,
        "to",
        late,
        |r: SwitchoverRequest| {
            if r.id != req.id {
                return Some(Err(Refused::conflict(
                    "id",
                    "the request was replaced meanwhile",
                )
                .into()));
            }
            match r.state.as_str() {
                "done" => Some(Ok(json!({
                    "database": id,
                    "from": r.from,
                    "to": r.to,
                    "epoch": topo.epoch + 1,
                    "took_ms": r.took_ms,
                    "message": r.message,
                }))),
                "failed" => Some(Err(Refused::conflict("to", r.message).into())),
                _ => None,
            }
        },
    )
    .await
}

/// Polls the request at `key` (every 50 ms, up to `wait`) until `settled`
/// gives the operator's outcome; past `wait`, a 504 on `field` saying
/// `late`.
async fn outcome<T: serde::de::DeserializeOwned>(
    c: &Arc<dyn Client>,
    key_name: String,
    wait: Duration,
    field: &str,
    late: String,
    mut settled: impl FnMut(T) -> Option<ApiResult<Value>>,
) -> ApiResult<Value> {
    let started = std::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Some((r, _)) = key::<T>(c, key_name.clone()).await? {
            if let Some(out) = settled(r) {
                return out;
            }
        }
        if started.elapsed() >= wait {
            return Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                field,
                late,
            ));
        }
    }
}

/// `POST /v1/databases/{id}/rebuild`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rebuild {
    /// The instance's task.
    #[serde(default)]
    pub task: Option<String>,
}

/// How long `POST .../rebuild` waits for the operator to condemn the
/// instance (the seed itself takes as long as the data takes).
pub const REBUILD_WAIT: Duration = Duration::from_secs(5);

/// Rebuilds instance `r.task` of database `id` from a healthy one: the
/// operator condemns its data and shuts it down, its next task waits for
/// a seed. Returns once the operator did (the seed follows).
pub async fn rebuild(c: &Arc<dyn Client>, id: &str, r: Rebuild) -> ApiResult<Value> {
    let task = r
        .task
        .ok_or_else(|| Refused::bad("task", "missing: the instance's task to rebuild"))?;
    let st = observed(c, id).await?;
    let node = rebuild_target(&st, &task)?;
    let now = ocean_framework::runner::now_ms();
    let existing = key::<RebuildRequest>(c, format!("{REBUILDS}{id}")).await?;
    if let Some((r, _)) = &existing {
        if r.state == "requested" && now.saturating_sub(r.requested_ms) < 30_000 {
            return Err(Refused::conflict(
                "id",
                format!("a rebuild of '{}' is being started", r.task),
            )
            .into());
        }
    }
    let req = RebuildRequest {
        id: format!("r-{now}"),
        task: node.task.clone(),
        requested_ms: now,
        state: "requested".into(),
        message: String::new(),
    };
    let put = c
        .kv_put(KvPutRequest {
            namespace: NAME.into(),
            key: format!("{REBUILDS}{id}"),
            value: serde_json::to_vec(&req).unwrap_or_default(),
            expected_revision: Some(existing.map_or(0, |(_, rev)| rev)),
        })
        .await;
    match put {
        Ok(_) => {}
        Err(Error::VersionConflict { .. }) => {
            return Err(Refused::conflict("id", "another rebuild was asked for meanwhile").into())
        }
        Err(e) => return Err(e.into()),
    }
    let late = format!(
        "the operator did not start rebuilding '{}' within {} s",
        req.task,
        REBUILD_WAIT.as_secs()
    );
    outcome(
        c,
        format!("{REBUILDS}{id}"),
        REBUILD_WAIT,
        "task",
        late,
        |r: RebuildRequest| {
            if r.id != req.id {
                return None;
            }
            match r.state.as_str() {
                "started" => {
                    tracing::info!(database = %id, task = %r.task, "rebuild started");
                    Some(Ok(json!({
                        "database": id,
                        "rebuilding": r.task,
                        "addr": node.addr,
                        "message": r.message,
                    })))
                }
                "failed" => Some(Err(Refused::conflict("task", r.message).into())),
                _ => None,
            }
        },
    )
    .await
}

/// Resizes database `id` to `s.instances`. A scale-in never stops the
/// primary: when the masters would stop its task, the primary's role goes
/// to a replica that stays first (a switchover).
pub async fn scale(
    c: &Arc<dyn Client>,
    id: &str,
    rec: DatabaseRecord,
    revision: u64,
    s: Scale,
) -> ApiResult<Value> {
    let mut spec = rec.spec.clone();
    spec.instances = s.instances;
    spec.validate()?;
    let was = rec.spec.instances;
    if s.instances > was {
        let agents = c
            .list_agents(ListAgentsRequest::default())
            .await?
            .agents
            .iter()
            .filter(|a| a.status == "online")
            .count() as u32;
        if s.instances > agents {
            return Err(Refused::bad(
                "instances",
                format!(
                    "{} instances need {} hosts (one each), and {agents} agents are online",
                    s.instances, s.instances
                ),
            )
            .into());
        }
    }
    let mut switched = Value::Null;
    if s.instances < was {
        let tasks: Vec<JobTask> = c
            .list_tasks(ListTasksRequest {
                job: job_id(&rec.spec),
                ended: Some(false),
                ..Default::default()
            })
            .await?
            .tasks
            .iter()
            .map(|t| JobTask {
                id: t.id.clone(),
                running: t.state == "RUNNING",
            })
            .collect();
        let victims = scale_in_victims(&tasks, s.instances);
        let primary = key::<Topology>(c, format!("{TOPOLOGIES}{id}"))
            .await?
            .map(|(t, _)| t.primary);
        if let Some(p) = primary.filter(|p| victims.contains(p)) {
            let st = observed(c, id).await?;
            let to = keeper(&st, &victims).ok_or_else(|| {
                Refused::conflict(
                    "instances",
                    format!(
                        "scaling to {} would stop the primary {p}, and no replica that stays can take over",
                        s.instances
                    ),
                )
            })?;
            switched = switchover(
                c,
                id,
                Switchover {
                    to: Some(to.task.clone()),
                },
            )
            .await?;
        }
    }
    let rec = DatabaseRecord { spec, ..rec };
    let put = c
        .kv_put(KvPutRequest {
            namespace: NAME.into(),
            key: format!("{DATABASES}{id}"),
            value: serde_json::to_vec(&rec).unwrap_or_default(),
            expected_revision: Some(revision),
        })
        .await;
    match put {
        Ok(_) => {}
        Err(Error::VersionConflict { .. }) => {
            return Err(Refused::conflict("id", "the database changed meanwhile; try again").into())
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(database = %id, was, instances = s.instances, "database scaled");
    Ok(json!({
        "database": id,
        "instances": s.instances,
        "was": was,
        "switchover": switched,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scale_request_names_the_field_that_is_wrong() {
        assert_eq!(
            Scale::parse(br#"{"instances": 4}"#),
            Ok(Scale { instances: 4 })
        );
        for (body, field) in [
            (&br#"{"instances": "two"}"#[..], "instances"),
            (br#"{"instances": -1}"#, "instances"),
            (br#"{}"#, "instances"),
            (br#"{"size": 2}"#, "body"),
            (br#"[2]"#, "body"),
            (br#"{"#, "body"),
        ] {
            let e = Scale::parse(body).unwrap_err();
            assert_eq!(e.field, field, "{}: {e}", String::from_utf8_lossy(body));
        }
    }
}
