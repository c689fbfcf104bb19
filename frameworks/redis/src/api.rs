//! The caches' REST API, built on any [`Client`] (the master mounts it
//! with its in-process client beside its own routes):
//!
//! ```text
//!  POST   /v1/caches                 create (CacheSpec JSON) -> 201
//!  GET    /v1/caches[?product_line=] list with each cache's state
//!  GET    /v1/caches/{id}            spec, state, shards, roles, hosts, memory, offsets
//!  DELETE /v1/caches/{id}            delete (the framework removes its jobs)
//!  POST   /v1/caches/{id}/scale      {"shards": n, "replicas": n}: shards move slots
//!                                    online, balanced by bytes (status.resharding)
//!  POST   /v1/caches/{id}/failover   {"shard": n[, "task": replica]}: graceful, waits
//!                                    (bounded) until the replica serves the slots
//!  POST   /v1/caches/{id}/rebuild    {"task": replica}: its data dropped and resynced -> 202
//!  POST   /v1/caches/{id}/backup     -> 201 the manifest (an RDB snapshot per shard, taken
//!                                    on a synced replica; see backup_api)
//!  GET    /v1/caches/{id}/backups    the manifests, oldest first
//!  POST   /v1/caches/{id}/restore    {"from": cache, "backup": id}: a NEW cache {id} started
//!                                    from the snapshots, verified against the manifest -> 201
//! ```

use std::sync::Arc;

use axum::extract::{FromRef, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use ocean_client::api::{KvKeyRequest, KvListRequest, KvPutRequest};
use ocean_client::{Client, Error};
pub use ocean_framework::{ApiError, ApiResult};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::admin::{RealAdmin, RedisAdmin};
use crate::decide::AdminCmd;
use crate::framework::{CacheRecord, Resharding, CACHES, HOLDS, NAME, STATUSES};
use crate::jobs::shard_job_id;
use crate::manual::{failover_target, rebuild_target};
use crate::spec::{self, CacheSpec, InvalidCache};
use crate::status::CacheStatus;

pub use crate::backup_api::{backup, restore, Restore};

impl From<InvalidCache> for ApiError {
    fn from(e: InvalidCache) -> Self {
        ApiError::invalid(e.field, e.reason)
    }
}

/// What the routes act through: the masters (state) and the Redis nodes
/// (an operator's manual failover and rebuild).
#[derive(Debug, Clone)]
pub struct Api {
    pub client: Arc<dyn Client>,
    pub admin: Arc<dyn RedisAdmin>,
    /// Where backups are written: `<dir>/<cache>/<backup id>/`.
    pub backups: std::path::PathBuf,
}

/// Where backups go when no directory is named: under the system's
/// temporary directory.
pub fn default_backups() -> std::path::PathBuf {
    std::env::temp_dir().join("ocean-redis-backups")
}

impl Api {
    /// Over `client`, with the real admin; backups under the system's
    /// temporary directory until [`Api::with_backups`] names a place.
    pub fn new(client: Arc<dyn Client>) -> Self {
        Api {
            client,
            admin: Arc::new(RealAdmin::new(crate::ADMIN_TIMEOUT)),
            backups: default_backups(),
        }
    }

    /// Backups under `dir`.
    pub fn with_backups(mut self, dir: std::path::PathBuf) -> Self {
        self.backups = dir;
        self
    }
}

impl FromRef<Api> for Arc<dyn Client> {
    fn from_ref(api: &Api) -> Self {
        api.client.clone()
    }
}

/// The routes, over `client`.
pub fn router(client: Arc<dyn Client>) -> Router {
    router_with(Api::new(client))
}

/// The routes over a given [`Api`] (tests hand in their own admin).
pub fn router_with(api: Api) -> Router {
    Router::new()
        .route("/v1/caches", get(list).post(create))
        .route("/v1/caches/{id}", get(show).delete(remove))
        .route("/v1/caches/{id}/backups", get(backups))
        .route("/v1/caches/{id}/{action}", post(action))
        .with_state(api)
}

fn now_ms() -> u64 {
    ocean_framework::runner::now_ms()
}

async fn create(
    State(c): State<Arc<dyn Client>>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let rec = create_cache(&c, spec::parse(&body)?).await?;
    Ok((StatusCode::CREATED, Json(json!(rec))))
}

/// Stores a new cache (validated); a 409 naming `name` if it exists.
pub async fn create_cache(c: &Arc<dyn Client>, spec: CacheSpec) -> ApiResult<CacheRecord> {
    spec.validate()?;
    let rec = CacheRecord {
        spec,
        created_ms: now_ms(),
        resharding: None,
        restore: None,
    };
    let put = c
        .kv_put(KvPutRequest {
            namespace: NAME.into(),
            key: format!("{CACHES}{}", rec.spec.name),
            value: serde_json::to_vec(&rec).unwrap_or_default(),
            expected_revision: Some(0),
        })
        .await;
    match put {
        Ok(_) => Ok(rec),
        Err(Error::VersionConflict { .. }) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "name",
            format!("a cache named '{}' already exists", rec.spec.name),
        )),
        Err(e) => Err(e.into()),
    }
}

/// A cache's record and revision, or a 404 naming it.
pub async fn record(c: &Arc<dyn Client>, id: &str) -> ApiResult<(CacheRecord, u64)> {
    let e = c
        .kv_get(KvKeyRequest {
            namespace: NAME.into(),
            key: format!("{CACHES}{id}"),
            read: None,
            expected_revision: None,
        })
        .await
        .map_err(|e| match e {
            Error::NotFound(_) => ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "id",
                format!("no cache '{id}'"),
            ),
            e => e.into(),
        })?;
    let rec = serde_json::from_slice(&e.value).map_err(|err| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "corrupt",
            "id",
            format!("cache '{id}' is stored unreadably: {err}"),
        )
    })?;
    Ok((rec, e.revision))
}

pub async fn status_of(c: &Arc<dyn Client>, id: &str) -> Option<CacheStatus> {
    let e = c
        .kv_get(KvKeyRequest {
            namespace: NAME.into(),
            key: format!("{STATUSES}{id}"),
            read: None,
            expected_revision: None,
        })
        .await
        .ok()?;
    serde_json::from_slice(&e.value).ok()
}

/// The cache's shard jobs as one pattern (`..._job.shard-*_...`).
pub fn owner_jobs(spec: &CacheSpec) -> String {
    shard_job_id(spec, 0).replace("_job.shard-0", "_job.shard-*")
}

/// A cache's state in one word: the operator's last observation, or
/// `pending` before it has looked.
pub fn state_of(st: Option<&CacheStatus>) -> &str {
    st.map_or("pending", |st| st.state.as_str())
}

/// One row of the list (the dashboard's too).
pub fn summary(rec: &CacheRecord, st: Option<&CacheStatus>) -> Value {
    let s = &rec.spec;
    json!({
        "name": s.name,
        "product_line": s.product_line,
        "shards": s.shards,
        "replicas": s.replicas,
        "memory_mb": s.memory_mb,
        "persistence": s.persistence,
        "instances": s.instances(),
        "total_memory_mb": s.instances() * s.memory_mb,
        "owner_job": owner_jobs(s),
        "created_ms": rec.created_ms,
        "state": state_of(st),
        "running": st.map_or(0, |st| st.running),
    })
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    product_line: Option<String>,
}

async fn list(
    State(c): State<Arc<dyn Client>>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let (recs, statuses) = list_all(&c).await?;
    let rows: Vec<Value> = recs
        .iter()
        .filter(|r| {
            q.product_line
                .as_ref()
                .is_none_or(|p| &r.spec.product_line == p)
        })
        .map(|r| {
            summary(
                r,
                statuses
                    .iter()
                    .find(|(n, _)| *n == r.spec.name)
                    .map(|(_, s)| s),
            )
        })
        .collect();
    Ok(Json(json!({ "caches": rows })))
}

/// Every cache and every status the masters hold.
pub async fn list_all(
    c: &Arc<dyn Client>,
) -> Result<(Vec<CacheRecord>, Vec<(String, CacheStatus)>), Error> {
    let keys = |prefix: &str| KvListRequest {
        namespace: NAME.into(),
        prefix: prefix.into(),
        read: None,
    };
    let recs = c
        .kv_list(keys(CACHES))
        .await?
        .entries
        .iter()
        .filter_map(|e| serde_json::from_slice(&e.value).ok())
        .collect();
    let statuses = c
        .kv_list(keys(STATUSES))
        .await?
        .entries
        .iter()
        .filter_map(|e| {
            let st = serde_json::from_slice(&e.value).ok()?;
            Some((e.key[STATUSES.len()..].to_string(), st))
        })
        .collect();
    Ok((recs, statuses))
}

/// A cache in full (the detail page's too).
pub fn detail(rec: &CacheRecord, st: Option<&CacheStatus>) -> Value {
    let mut v = summary(rec, st);
    let jobs: Vec<String> = (0..rec.job_shards())
        .map(|i| shard_job_id(&rec.spec, i))
        .collect();
    v["jobs"] = json!(jobs);
    v["resharding"] = json!(rec.resharding);
    v["spec"] = json!(rec.spec);
    v["status"] = json!(st);
    v
}

async fn show(State(c): State<Arc<dyn Client>>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let (rec, _) = record(&c, &id).await?;
    let st = status_of(&c, &id).await;
    Ok(Json(detail(&rec, st.as_ref())))
}

async fn remove(
    State(c): State<Arc<dyn Client>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    delete(&c, &id).await.map(Json)
}

/// Deletes cache `id` (the framework then removes its jobs).
pub async fn delete(c: &Arc<dyn Client>, id: &str) -> ApiResult<Value> {
    let (_, revision) = record(c, id).await?;
    c.kv_delete(KvKeyRequest {
        namespace: NAME.into(),
        key: format!("{CACHES}{id}"),
        read: None,
        expected_revision: Some(revision),
    })
    .await?;
    let _ = c
        .kv_delete(KvKeyRequest {
            namespace: NAME.into(),
            key: format!("{HOLDS}{id}"),
            read: None,
            expected_revision: None,
        })
        .await;
    Ok(json!({"deleted": id}))
}

/// `POST /v1/caches/{id}/scale`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scale {
    pub shards: Option<u32>,
    pub replicas: Option<u32>,
}

/// `POST /v1/caches/{id}/failover`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Failover {
    pub shard: u32,
    /// The replica to promote; by default the synced one furthest ahead.
    #[serde(default)]
    pub task: Option<String>,
}

/// `POST /v1/caches/{id}/rebuild`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rebuild {
    pub task: String,
}

/// How long the operator leaves primaries where a manual failover put
/// them before it spreads them over hosts again.
pub const MANUAL_HOLD: std::time::Duration = std::time::Duration::from_secs(3600);

/// How long a manual failover may take before the call gives up waiting
/// (Redis itself aborts a manual failover after 5 s).
pub const FAILOVER_WAIT: std::time::Duration = std::time::Duration::from_secs(6);

fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::invalid("body", e.to_string()))
}

async fn action(
    State(api): State<Api>,
    Path((id, action)): Path<(String, String)>,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let ok = |v| Ok((StatusCode::OK, Json(v)));
    match action.as_str() {
        "scale" => ok(scale(&api.client, &id, body(&bytes)?).await?),
        "failover" => ok(failover(&api, &id, body(&bytes)?).await?),
        "rebuild" => Ok((
            StatusCode::ACCEPTED,
            Json(rebuild(&api, &id, body(&bytes)?).await?),
        )),
        "backup" => Ok((StatusCode::CREATED, Json(backup(&api, &id).await?))),
        "restore" => Ok((
            StatusCode::CREATED,
            Json(restore(&api, &id, body(&bytes)?).await?),
        )),
        other => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "action",
            format!("'{other}' is not one of scale, backup, restore, rebuild, failover"),
        )),
    }
}

/// Scales cache `id`: replicas per shard, and shards. A new shard count
/// starts a resharding (the record says so until the operator has moved
/// the slots); it is refused while the cache cannot serve every slot.
pub async fn scale(c: &Arc<dyn Client>, id: &str, s: Scale) -> ApiResult<Value> {
    let (rec, revision) = record(c, id).await?;
    let mut spec: CacheSpec = rec.spec.clone();
    let mut resharding = rec.resharding.clone();
    if let Some(shards) = s.shards.filter(|n| *n != spec.shards) {
        spec.shards = shards;
        spec.validate()?;
        let st = observed_status(c, id).await?;
        if st.state == "failing" || st.state == "creating" {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "shards",
                format!(
                    "the cache is {}: slots move only while every slot is served",
                    st.state
                ),
            ));
        }
        // A shard count changed again mid-way keeps every shard that
        // still has jobs until the slots have settled.
        resharding = Some(Resharding {
            from_shards: rec.job_shards(),
            started_ms: now_ms(),
        });
    }
    if let Some(r) = s.replicas {
        spec.replicas = r;
    }
    spec.validate()?;
    let rec = CacheRecord {
        spec,
        resharding,
        ..rec
    };
    c.kv_put(KvPutRequest {
        namespace: NAME.into(),
        key: format!("{CACHES}{id}"),
        value: serde_json::to_vec(&rec).unwrap_or_default(),
        expected_revision: Some(revision),
    })
    .await?;
    Ok(json!(rec))
}

/// The cache's status, or a 409 while the operator has not observed it.
pub(crate) async fn observed_status(c: &Arc<dyn Client>, id: &str) -> ApiResult<CacheStatus> {
    status_of(c, id).await.ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "id",
            format!("cache '{id}' has not been observed by the operator yet"),
        )
    })
}

fn node_error(e: crate::admin::AdminError) -> ApiError {
    ApiError::new(StatusCode::BAD_GATEWAY, "node_error", "task", e.to_string())
}

fn moved_on(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "conflict",
        "task",
        format!("{what} changed since the operator last looked; try again"),
    )
}

/// A graceful failover of one shard of cache `id`: returns once the
/// replica serves the shard's slots (or a 504 after [`FAILOVER_WAIT`]).
pub async fn failover(api: &Api, id: &str, f: Failover) -> ApiResult<Value> {
    let (rec, _) = record(&api.client, id).await?;
    let st = observed_status(&api.client, id).await?;
    let (replica, primary) = failover_target(&st, rec.spec.shards, f.shard, f.task.as_deref())?;
    // The status may be a couple of seconds old: ask the replica itself.
    let now = api.admin.observe(&replica.addr).await.map_err(node_error)?;
    if now.id() != replica.node_id || now.replicates() != Some(primary.node_id.as_str()) {
        return Err(moved_on(&format!("'{}'", replica.task)));
    }
    let started = std::time::Instant::now();
    api.admin
        .execute(&AdminCmd::Failover {
            on: replica.addr.clone(),
        })
        .await
        .map_err(node_error)?;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if let Ok(o) = api.admin.observe(&replica.addr).await {
            if o.serves_slots() {
                break;
            }
        }
        if started.elapsed() >= FAILOVER_WAIT {
            return Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                "shard",
                format!(
                    "'{}' did not take over shard {} within {} s (Redis aborts a manual failover the primary does not answer)",
                    replica.task,
                    f.shard,
                    FAILOVER_WAIT.as_secs()
                ),
            ));
        }
    }
    tracing::info!(cache = %id, shard = f.shard, promoted = %replica.task, replaced = %primary.task, "redis manual failover");
    // The operator spreads primaries over hosts by itself; an operator's
    // choice stands for MANUAL_HOLD (the host may be going into repair).
    let hold = json!({
        "until_ms": now_ms() + MANUAL_HOLD.as_millis() as u64,
        "reason": format!("manual failover of shard {} to {}", f.shard, replica.task),
    });
    let held = api
        .client
        .kv_put(KvPutRequest {
            namespace: NAME.into(),
            key: format!("{HOLDS}{id}"),
            value: serde_json::to_vec(&hold).unwrap_or_default(),
            expected_revision: None,
        })
        .await;
    if let Err(e) = held {
        tracing::warn!(cache = %id, error = %e, "the hold on spreading primaries was not written");
    }
    Ok(json!({
        "shard": f.shard,
        "promoted": {"task": replica.task, "addr": replica.addr, "node_id": replica.node_id},
        "replaced": {"task": primary.task, "addr": primary.addr, "node_id": primary.node_id},
        "took_ms": started.elapsed().as_millis() as u64,
    }))
}

/// Rebuilds replica `r.task` of cache `id`: its data and node id are
/// dropped now; the operator makes it a replica again (a full resync).
pub async fn rebuild(api: &Api, id: &str, r: Rebuild) -> ApiResult<Value> {
    record(&api.client, id).await?;
    let st = observed_status(&api.client, id).await?;
    let node = rebuild_target(&st, &r.task)?;
    let now = api.admin.observe(&node.addr).await.map_err(node_error)?;
    if now.id() != node.node_id || now.replicates().is_none() {
        return Err(moved_on(&format!("'{}'", node.task)));
    }
    api.admin
        .execute(&AdminCmd::ResetHard {
            on: node.addr.clone(),
        })
        .await
        .map_err(node_error)?;
    tracing::info!(cache = %id, task = %node.task, old_id = %node.node_id, "redis replica rebuild");
    Ok(json!({
        "rebuilding": node.task,
        "shard": node.shard,
        "addr": node.addr,
        "old_node_id": node.node_id,
    }))
}

async fn backups(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    record(&api.client, &id).await?;
    let list = crate::backup::list(&api.backups, &id);
    Ok(Json(json!({ "backups": list })))
}
