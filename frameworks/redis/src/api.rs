//! The caches' REST API, built on any [`Client`] (the master mounts it
//! with its in-process client beside its own routes):
//!
//! ```text
//!  POST   /v1/caches                 create (CacheSpec JSON) -> 201
//!  GET    /v1/caches[?product_line=] list with each cache's state
//!  GET    /v1/caches/{id}            spec, state, shards, roles, hosts, memory, offsets
//!  DELETE /v1/caches/{id}            delete (the framework removes its jobs)
//!  POST   /v1/caches/{id}/scale      {"replicas": n} (shards: not yet, 501)
//!  POST   /v1/caches/{id}/{backup,restore,rebuild,failover}   not yet: 501
//! ```

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ocean_client::api::{KvKeyRequest, KvListRequest, KvPutRequest};
use ocean_client::{Client, Error};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::framework::{CacheRecord, CACHES, NAME, STATUSES};
use crate::jobs::shard_job_id;
use crate::spec::{self, CacheSpec, InvalidCache};
use crate::status::CacheStatus;

/// An error as the API answers it: `{"error", "code", "errors": [{field, reason}]}`,
/// the shape of the master's own errors.
#[derive(Debug)]
pub struct ApiError(StatusCode, Value);

impl ApiError {
    fn new(status: StatusCode, code: &str, field: &str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        ApiError(
            status,
            json!({
                "error": format!("{field}: {reason}"),
                "code": code,
                "errors": [{"field": field, "reason": reason}],
            }),
        )
    }
}

impl From<InvalidCache> for ApiError {
    fn from(e: InvalidCache) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            e.field,
            e.reason,
        )
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let (status, code) = match &e {
            Error::Invalid { .. } => (StatusCode::BAD_REQUEST, "invalid_request"),
            Error::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Error::VersionConflict { .. } | Error::Conflict(_) => {
                (StatusCode::CONFLICT, "conflict")
            }
            Error::Unavailable(_) | Error::NotCommitted(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            _ => (StatusCode::BAD_GATEWAY, "master_error"),
        };
        ApiError::new(status, code, "master", e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The routes, over `client`.
pub fn router(client: Arc<dyn Client>) -> Router {
    Router::new()
        .route("/v1/caches", get(list).post(create))
        .route("/v1/caches/{id}", get(show).delete(remove))
        .route("/v1/caches/{id}/{action}", post(action))
        .with_state(client)
}

fn now_ms() -> u64 {
    ocean_framework::runner::now_ms()
}

async fn create(
    State(c): State<Arc<dyn Client>>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let spec = spec::parse(&body)?;
    let rec = CacheRecord {
        spec,
        created_ms: now_ms(),
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
        Ok(_) => Ok((StatusCode::CREATED, Json(json!(rec)))),
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
async fn record(c: &Arc<dyn Client>, id: &str) -> ApiResult<(CacheRecord, u64)> {
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

async fn status_of(c: &Arc<dyn Client>, id: &str) -> Option<CacheStatus> {
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
        "owner_job": shard_job_id(s, 0).replace("_job.shard-0", "_job.shard-*"),
        "created_ms": rec.created_ms,
        "state": st.map_or("pending", |st| st.state.as_str()),
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
    let jobs: Vec<String> = (0..rec.spec.shards)
        .map(|i| shard_job_id(&rec.spec, i))
        .collect();
    v["jobs"] = json!(jobs);
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
    let (_, revision) = record(&c, &id).await?;
    c.kv_delete(KvKeyRequest {
        namespace: NAME.into(),
        key: format!("{CACHES}{id}"),
        read: None,
        expected_revision: Some(revision),
    })
    .await?;
    Ok(Json(json!({"deleted": id})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Scale {
    shards: Option<u32>,
    replicas: Option<u32>,
}

async fn action(
    State(c): State<Arc<dyn Client>>,
    Path((id, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let (rec, revision) = record(&c, &id).await?;
    match action.as_str() {
        "scale" => {
            let s: Scale = serde_json::from_slice(&body).map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "body",
                    e.to_string(),
                )
            })?;
            let mut spec: CacheSpec = rec.spec.clone();
            if let Some(shards) = s.shards.filter(|n| *n != spec.shards) {
                return Err(ApiError::new(
                    StatusCode::NOT_IMPLEMENTED,
                    "not_implemented",
                    "shards",
                    format!(
                        "changing shards ({} -> {shards}) needs slot migration, which is not built yet; replicas can be scaled",
                        spec.shards
                    ),
                ));
            }
            if let Some(r) = s.replicas {
                spec.replicas = r;
            }
            spec.validate()?;
            let rec = CacheRecord { spec, ..rec };
            c.kv_put(KvPutRequest {
                namespace: NAME.into(),
                key: format!("{CACHES}{id}"),
                value: serde_json::to_vec(&rec).unwrap_or_default(),
                expected_revision: Some(revision),
            })
            .await?;
            Ok(Json(json!(rec)))
        }
        "backup" | "restore" | "rebuild" | "failover" => Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "not_implemented",
            "action",
            format!("'{action}' is not built yet"),
        )),
        other => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "action",
            format!("'{other}' is not one of scale, backup, restore, rebuild, failover"),
        )),
    }
}
