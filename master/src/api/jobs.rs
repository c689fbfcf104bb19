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
use crate::service::types::{JobDetail, JobList, JobVersions, WriteResult};
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
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReadQuery {
    /// Wait (up to 5 s) until this master has applied this state version.
    pub min_version: Option<u64>,
    /// A linearizable read (through the leader's read index).
    pub consistent: Option<bool>,
    /// Only objects under this service-tree node (lists).
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

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct PutQuery {
    /// `json` or `yaml` (default: from the content type, else either).
    #[param(pattern = "^(json|yaml)$")]
    format: Option<String>,
    /// Write only if the job's spec version is this (0: only if absent).
    expected_version: Option<u64>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct CasQuery {
    /// Write only if the job's spec version is this.
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

/// Creates or replaces a job.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", params(PutQuery),
    responses((status = 201, description = "created", body = WriteResult),
        (status = 200, description = "updated or unchanged", body = WriteResult)))]
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

/// Jobs, optionally under a service-tree node.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(ReadQuery),
    responses((status = 200, body = JobList)))]
async fn list_jobs(State(m): State<Master>, Query(q): Query<ReadQuery>) -> ApiResult<Response> {
    let list = m
        .service()
        .list_jobs(q.prefix.as_deref(), q.options())
        .await?;
    Ok(versioned(list.version, StatusCode::OK, &list))
}

/// One job with its tasks' counts and DNS name.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "job id (service-tree id)"), ReadQuery),
    responses((status = 200, body = JobDetail)))]
async fn get_job(
    State(m): State<Master>,
    Path(id): Path<String>,
    Query(q): Query<ReadQuery>,
) -> ApiResult<Response> {
    let (version, job) = m.service().get_job(&id, q.options()).await?;
    Ok(versioned(version, StatusCode::OK, &job))
}

/// Deletes a job.
#[utoipa::path(delete, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "job id"), CasQuery),
    responses((status = 200, body = WriteResult)))]
async fn delete_job(
    State(m): State<Master>,
    Path(id): Path<String>,
    Query(q): Query<CasQuery>,
) -> ApiResult<Response> {
    let r = m.service().delete_job(&id, q.expected_version).await?;
    Ok(versioned(r.version, StatusCode::OK, &r))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ScaleBody {
    #[schema(maximum = 100000)]
    instances: u32,
    /// May come in the body instead of the query.
    expected_version: Option<u64>,
}

/// Sets a job's instance count.
#[utoipa::path(post, path = "/v1/jobs/{id}/scale", tag = "jobs",
    params(("id" = String, Path, description = "job id"), CasQuery), request_body = ScaleBody,
    responses((status = 200, body = WriteResult)))]
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

/// Clears a job's restart back-off and flapping.
#[utoipa::path(post, path = "/v1/jobs/{id}/reset-backoff", tag = "jobs",
    params(("id" = String, Path, description = "job id")),
    responses((status = 200, body = WriteResult)))]
async fn reset_backoff(State(m): State<Master>, Path(id): Path<String>) -> ApiResult<Response> {
    let r = m.service().reset_backoff(&id).await?;
    Ok(versioned(r.version, StatusCode::OK, &r))
}

/// A job's kept specs, newest first.
#[utoipa::path(get, path = "/v1/jobs/{id}/versions", tag = "jobs",
    params(("id" = String, Path, description = "job id"), ReadQuery),
    responses((status = 200, body = JobVersions)))]
async fn job_versions(
    State(m): State<Master>,
    Path(id): Path<String>,
    Query(q): Query<ReadQuery>,
) -> ApiResult<Response> {
    let v = m.service().job_versions(&id, q.options()).await?;
    Ok(versioned(v.version, StatusCode::OK, &v))
}
