//! REST for jobs: thin adapters over [`crate::service`].
//!
//! | method and path                      | what                                        |
//! |--------------------------------------|---------------------------------------------|
//! | `POST /v1/jobs`                      | create or replace (`?expected_version=N`)   |
//! | `GET /v1/jobs`                       | list (`?prefix=` a service-tree node)       |
//! | `GET /v1/jobs/{id}`                  | one job with task counts and DNS name       |
//! | `DELETE /v1/jobs/{id}`               | delete (`?expected_version=N`)              |
//! | `POST /v1/jobs/{id}/scale`           | `{"instances": N}` (`?expected_version=N`)  |
//! | `POST /v1/jobs/{id}/reset-backoff`   | clear restart back-off and flapping         |
//! | `GET /v1/jobs/{id}/versions`         | the kept specs, newest first                |

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ocean_spec::Format;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::{parse_json, Body, Query};
use crate::master::Master;
use crate::service::jobs::PutJob;
use crate::service::ReadOptions;

type ApiResult<T> = std::result::Result<T, ApiError>;

/// The job routes, merged into the REST router.
pub fn routes() -> Router<Master> {
    Router::new()
        .route("/v1/jobs", get(list_jobs).post(put_job))
        .route("/v1/jobs/{id}", get(get_job).delete(delete_job))
        .route("/v1/jobs/{id}/scale", post(scale_job))
        .route("/v1/jobs/{id}/reset-backoff", post(reset_backoff))
        .route("/v1/jobs/{id}/versions", get(job_versions))
}

/// A typed answer with the state version it reflects in `X-Ocean-Version`.
pub fn versioned<T: Serialize>(version: u64, status: StatusCode, body: &T) -> Response {
    let mut resp = (status, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&version.to_string()) {
        resp.headers_mut().insert("x-ocean-version", v);
    }
    resp
}

/// How a read waits, from its query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadQuery {
    pub min_version: Option<u64>,
    pub consistent: Option<bool>,
    pub prefix: Option<String>,
}

impl ReadQuery {
    pub fn options(&self) -> ReadOptions {
        ReadOptions {
            min_version: self.min_version,
            consistent: self.consistent == Some(true),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PutQuery {
    format: Option<String>,
    expected_version: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CasQuery {
    expected_version: Option<u64>,
}

/// A spec body's format: `?format=` when given, else its content type.
pub fn spec_format(asked: Option<&str>, headers: &HeaderMap) -> ApiResult<Format> {
    let ctype = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Ok(match asked {
        Some("json") => Format::Json,
        Some("yaml") => Format::Yaml,
        Some(other) => {
            return Err(ApiError::bad_request(
                "format",
                format!("'{other}' is not one of json, yaml"),
            ))
        }
        None if ctype.contains("yaml") => Format::Yaml,
        None if ctype.contains("json") => Format::Json,
        None => Format::Auto,
    })
}

async fn put_job(
    State(m): State<Master>,
    Query(q): Query<PutQuery>,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<Response> {
    let format = spec_format(q.format.as_deref(), &headers)?;
    let r = m
        .service()
        .put_job(PutJob {
            spec: body.to_vec(),
            format,
            expected_spec_version: q.expected_version,
        })
        .await?;
    let status = if r.outcome == "created" {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(versioned(r.version, status, &r))
}

async fn list_jobs(State(m): State<Master>, Query(q): Query<ReadQuery>) -> ApiResult<Response> {
    let list = m
        .service()
        .list_jobs(q.prefix.as_deref(), q.options())
        .await?;
    Ok(versioned(list.version, StatusCode::OK, &list))
}

async fn get_job(
    State(m): State<Master>,
    Path(id): Path<String>,
    Query(q): Query<ReadQuery>,
) -> ApiResult<Response> {
    let (version, job) = m.service().get_job(&id, q.options()).await?;
    Ok(versioned(version, StatusCode::OK, &job))
}

async fn delete_job(
    State(m): State<Master>,
    Path(id): Path<String>,
    Query(q): Query<CasQuery>,
) -> ApiResult<Response> {
    let r = m.service().delete_job(&id, q.expected_version).await?;
    Ok(versioned(r.version, StatusCode::OK, &r))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScaleBody {
    instances: u32,
    /// May come in the body instead of the query.
    expected_version: Option<u64>,
}

async fn scale_job(
    State(m): State<Master>,
    Path(id): Path<String>,
    Query(q): Query<CasQuery>,
    Body(body): Body,
) -> ApiResult<Response> {
    let req: ScaleBody = parse_json(&body)?;
    let expected = q.expected_version.or(req.expected_version);
    let r = m.service().scale_job(&id, req.instances, expected).await?;
    Ok(versioned(r.version, StatusCode::OK, &r))
}

async fn reset_backoff(State(m): State<Master>, Path(id): Path<String>) -> ApiResult<Response> {
    let r = m.service().reset_backoff(&id).await?;
    Ok(versioned(r.version, StatusCode::OK, &r))
}

async fn job_versions(
    State(m): State<Master>,
    Path(id): Path<String>,
    Query(q): Query<ReadQuery>,
) -> ApiResult<Response> {
    let v = m.service().job_versions(&id, q.options()).await?;
    Ok(versioned(v.version, StatusCode::OK, &v))
}
