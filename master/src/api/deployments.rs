//! REST for deployments and rollback: thin adapters over
//! [`crate::service::deployments`].
//!
//! | method and path                               | what                                   |
//! |-----------------------------------------------|----------------------------------------|
//! | `GET /v1/deployments`                         | list (`?job=` one job's, newest first) |
//! | `GET /v1/deployments/{id}`                    | one, with each task's progress         |
//! | `POST /v1/deployments/{id}/{action}`          | pause, resume, promote, fail, cancel (`{"reason": ...}` optional) |
//! | `POST /v1/jobs/{id}/rollback`                 | `{"to_version": N}` (default: previous)|
//! | `POST /v1/jobs/{id}/plan`                     | a spec (as `POST /v1/jobs`): what putting it would do, committing nothing |

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{parse_json, Body, Query};
use super::jobs::{spec_format, versioned};
use crate::master::Master;
use crate::service::deployments::{DeploymentList, DeploymentView};
use crate::service::types::WriteResult;
use crate::service::ReadOptions;

type ApiResult<T> = std::result::Result<T, ApiError>;

/// The deployment routes, merged into the REST router.
pub fn routes() -> Router<Master> {
    Router::new()
        .route("/v1/deployments", get(list))
        .route("/v1/deployments/{id}", get(one))
        .route("/v1/deployments/{id}/{action}", post(act))
        .route("/v1/jobs/{id}/rollback", post(rollback))
        .route("/v1/jobs/{id}/plan", post(plan))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    job: Option<String>,
    min_version: Option<u64>,
    consistent: Option<bool>,
}

impl ListQuery {
    fn options(&self) -> ReadOptions {
        ReadOptions {
            min_version: self.min_version,
            consistent: self.consistent == Some(true),
        }
    }
}

/// Deployments, newest first.
#[utoipa::path(get, path = "/v1/deployments", tag = "deployments", params(ListQuery),
    responses((status = 200, body = DeploymentList)))]
async fn list(State(m): State<Master>, Query(q): Query<ListQuery>) -> ApiResult<Response> {
    let list = m
        .service()
        .list_deployments(q.job.as_deref(), q.options())
        .await?;
    Ok(versioned(list.version, StatusCode::OK, &list))
}

/// One deployment, with each task's progress.
#[utoipa::path(get, path = "/v1/deployments/{id}", tag = "deployments",
    params(("id" = String, Path, description = "deployment id"), ListQuery),
    responses((status = 200, body = DeploymentView)))]
async fn one(
    State(m): State<Master>,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Response> {
    let (version, d) = m.service().get_deployment(&id, q.options()).await?;
    Ok(versioned(version, StatusCode::OK, &d))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ActionBody {
    #[serde(default)]
    reason: String,
}

/// Pauses, resumes, promotes, fails or cancels a deployment.
#[utoipa::path(post, path = "/v1/deployments/{id}/{action}", tag = "deployments",
    params(("id" = String, Path, description = "deployment id"),
        ("action" = String, Path, description = "pause, resume, promote, fail or cancel",
            pattern = "^(pause|resume|promote|fail|cancel)$")),
    request_body(content = Option<ActionBody>, description = "optional"),
    responses((status = 200, body = WriteResult)))]
async fn act(
    State(m): State<Master>,
    Path((id, action)): Path<(String, String)>,
    Body(body): Body,
) -> ApiResult<Response> {
    let req: ActionBody = if super::extract::is_empty_body(&body) {
        ActionBody::default()
    } else {
        parse_json(&body)?
    };
    let r = m
        .service()
        .deployment_action(&id, &action, &req.reason)
        .await?;
    Ok(versioned(r.version, StatusCode::OK, &r))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RollbackBody {
    to_version: Option<u64>,
}

/// Rolls a job back to a kept spec (default: the previous one).
#[utoipa::path(post, path = "/v1/jobs/{id}/rollback", tag = "deployments",
    params(("id" = String, Path, description = "job id")),
    request_body(content = Option<RollbackBody>, description = "optional"),
    responses((status = 200, body = WriteResult)))]
async fn rollback(
    State(m): State<Master>,
    Path(id): Path<String>,
    Body(body): Body,
) -> ApiResult<Response> {
    let req: RollbackBody = if super::extract::is_empty_body(&body) {
        RollbackBody::default()
    } else {
        parse_json(&body)?
    };
    let r = m.service().rollback_job(&id, req.to_version).await?;
    Ok(versioned(r.version, StatusCode::OK, &r))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct PlanQuery {
    /// `json` or `yaml` (default: from the content type, else either).
    #[param(pattern = "^(json|yaml)$")]
    format: Option<String>,
}

/// What putting this spec would do, committing nothing.
#[utoipa::path(post, path = "/v1/jobs/{id}/plan", tag = "deployments",
    params(("id" = String, Path, description = "job id"), PlanQuery),
    responses((status = 200, description = "the plan", body = Object)))]
async fn plan(
    State(m): State<Master>,
    Path(id): Path<String>,
    Query(q): Query<PlanQuery>,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<Response> {
    // A plan shows where the job would run: reading it is enough.
    m.service()
        .authorize(&id, crate::service::acl::Right::Read)?;
    let format = spec_format(q.format.as_deref(), &headers)?;
    let spec = m.service().parse_spec(&body, format)?;
    if spec.id != id {
        return Err(ApiError::bad_request(
            "id",
            format!("the spec's id {} is not the job {id} of the path", spec.id),
        ));
    }
    let connected = m.sessions().connected();
    let plan = m.read(|st| crate::reconcile::plan::plan_job(st, &connected, &spec));
    Ok(versioned(plan.version, StatusCode::OK, &plan))
}
