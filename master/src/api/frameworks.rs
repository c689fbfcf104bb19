//! REST for frameworks' stores and leases: thin adapters over
//! [`crate::service::kv`].
//!
//! | method and path                              | what                                         |
//! |----------------------------------------------|----------------------------------------------|
//! | `PUT /v1/frameworks/{name}/kv/{key}`         | body = the value (`?expected_revision=N`)    |
//! | `GET /v1/frameworks/{name}/kv/{key}`         | one key                                      |
//! | `GET /v1/frameworks/{name}/kv?prefix=P`      | keys starting with P                         |
//! | `DELETE /v1/frameworks/{name}/kv/{key}`      | delete (`?expected_revision=N`)              |
//! | `POST /v1/frameworks/{name}/lease`           | `{"holder", "ttl_ms", "name"?}`: take/renew  |
//! | `GET /v1/frameworks/{name}/lease?name=`      | the lease as it stands                       |
//! | `DELETE /v1/frameworks/{name}/lease?holder=` | release it                                   |

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{parse_json, Body, Query};
use super::jobs::versioned;
use crate::master::Master;
use crate::service::types::{KvList, KvView, LeaseView, WriteResult};
use crate::service::ReadOptions;

type ApiResult<T> = std::result::Result<T, ApiError>;

/// The framework routes, merged into the REST router.
pub fn routes() -> Router<Master> {
    Router::new()
        .route("/v1/frameworks/{name}/kv", get(list_keys))
        .route(
            "/v1/frameworks/{name}/kv/{*key}",
            get(get_key).put(put_key).delete(delete_key),
        )
        .route(
            "/v1/frameworks/{name}/lease",
            get(get_lease).post(take_lease).delete(release_lease),
        )
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct KeyQuery {
    expected_revision: Option<u64>,
    min_version: Option<u64>,
    consistent: Option<bool>,
    prefix: Option<String>,
}

impl KeyQuery {
    fn options(&self) -> ReadOptions {
        ReadOptions {
            min_version: self.min_version,
            consistent: self.consistent == Some(true),
        }
    }
}

/// Writes a key (the body is the value).
#[utoipa::path(put, path = "/v1/frameworks/{framework}/kv/{key}", tag = "frameworks",
    params(("framework" = String, Path, description = "framework namespace", pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"), ("key" = String, Path, description = "key (may hold slashes)", max_length = 512, pattern = "^[A-Za-z0-9_:-][A-Za-z0-9._/:-]*$"), KeyQuery),
    request_body(content = Object, description = "the value: JSON, or any bytes"),
    responses((status = 201, description = "created", body = WriteResult),
        (status = 200, description = "updated", body = WriteResult)))]
async fn put_key(
    State(m): State<Master>,
    Path((name, key)): Path<(String, String)>,
    Query(q): Query<KeyQuery>,
    Body(body): Body,
) -> ApiResult<Response> {
    let r = m
        .service()
        .kv_put(&name, &key, body.to_vec(), q.expected_revision)
        .await?;
    let status = if r.outcome == "created" {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(versioned(r.version, status, &r))
}

/// One key.
#[utoipa::path(get, path = "/v1/frameworks/{framework}/kv/{key}", tag = "frameworks",
    params(("framework" = String, Path, description = "framework namespace", pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"), ("key" = String, Path, description = "key (may hold slashes)", max_length = 512, pattern = "^[A-Za-z0-9_:-][A-Za-z0-9._/:-]*$"), KeyQuery),
    responses((status = 200, body = KvView)))]
async fn get_key(
    State(m): State<Master>,
    Path((name, key)): Path<(String, String)>,
    Query(q): Query<KeyQuery>,
) -> ApiResult<Response> {
    let v = m.service().kv_get(&name, &key, q.options()).await?;
    Ok(versioned(v.revision, StatusCode::OK, &v))
}

/// Keys starting with `prefix`.
#[utoipa::path(get, path = "/v1/frameworks/{framework}/kv", tag = "frameworks",
    params(("framework" = String, Path, description = "framework namespace", pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"), KeyQuery),
    responses((status = 200, body = KvList)))]
async fn list_keys(
    State(m): State<Master>,
    Path(name): Path<String>,
    Query(q): Query<KeyQuery>,
) -> ApiResult<Response> {
    let prefix = q.prefix.clone().unwrap_or_default();
    let list = m.service().kv_list(&name, &prefix, q.options()).await?;
    Ok(versioned(list.version, StatusCode::OK, &list))
}

/// Deletes a key.
#[utoipa::path(delete, path = "/v1/frameworks/{framework}/kv/{key}", tag = "frameworks",
    params(("framework" = String, Path, description = "framework namespace", pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"), ("key" = String, Path, description = "key (may hold slashes)", max_length = 512, pattern = "^[A-Za-z0-9_:-][A-Za-z0-9._/:-]*$"), KeyQuery),
    responses((status = 200, body = WriteResult)))]
async fn delete_key(
    State(m): State<Master>,
    Path((name, key)): Path<(String, String)>,
    Query(q): Query<KeyQuery>,
) -> ApiResult<Response> {
    let r = m
        .service()
        .kv_delete(&name, &key, q.expected_revision)
        .await?;
    Ok(versioned(r.version, StatusCode::OK, &r))
}

fn default_lease() -> String {
    "leader".into()
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct LeaseBody {
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
    )]
    holder: String,
    #[schema(minimum = 500, maximum = 600000)]
    ttl_ms: u64,
    #[serde(default = "default_lease")]
    #[schema(pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    name: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct LeaseQuery {
    /// The lease's name (default `leader`).
    #[serde(default = "default_lease")]
    #[param(required = false, pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    name: String,
    /// The holder releasing it (required to release; ignored by a read).
    holder: Option<String>,
    min_version: Option<u64>,
    consistent: Option<bool>,
}

/// Takes or renews a lease.
#[utoipa::path(post, path = "/v1/frameworks/{framework}/lease", tag = "frameworks",
    params(("framework" = String, Path, description = "framework namespace", pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")), request_body = LeaseBody,
    responses((status = 200, body = LeaseView)))]
async fn take_lease(
    State(m): State<Master>,
    Path(ns): Path<String>,
    Body(body): Body,
) -> ApiResult<Response> {
    let req: LeaseBody = parse_json(&body)?;
    let l = m
        .service()
        .lease_acquire(&ns, &req.name, &req.holder, req.ttl_ms)
        .await?;
    Ok(versioned(l.revision, StatusCode::OK, &l))
}

/// A lease as it stands.
#[utoipa::path(get, path = "/v1/frameworks/{framework}/lease", tag = "frameworks",
    params(("framework" = String, Path, description = "framework namespace", pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"), LeaseQuery),
    responses((status = 200, body = LeaseView)))]
async fn get_lease(
    State(m): State<Master>,
    Path(ns): Path<String>,
    Query(q): Query<LeaseQuery>,
) -> ApiResult<Response> {
    let opts = ReadOptions {
        min_version: q.min_version,
        consistent: q.consistent == Some(true),
    };
    let l = m.service().lease_get(&ns, &q.name, opts).await?;
    Ok(versioned(l.revision, StatusCode::OK, &l))
}

/// Releases a lease.
#[utoipa::path(delete, path = "/v1/frameworks/{framework}/lease", tag = "frameworks",
    params(("framework" = String, Path, description = "framework namespace", pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"), LeaseQuery),
    responses((status = 200, body = LeaseView)))]
async fn release_lease(
    State(m): State<Master>,
    Path(ns): Path<String>,
    Query(q): Query<LeaseQuery>,
) -> ApiResult<Response> {
    let holder = q
        .holder
        .ok_or_else(|| ApiError::bad_request("holder", "required: the holder releasing it"))?;
    m.service().lease_release(&ns, &q.name, &holder).await?;
    let l = m
        .service()
        .lease_get(&ns, &q.name, ReadOptions::default())
        .await?;
    Ok(versioned(l.revision, StatusCode::OK, &l))
}
