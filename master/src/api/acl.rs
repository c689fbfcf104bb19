//! REST routes of access control (`service::acl`): bootstrap, tokens and
//! policies. Thin: parse, call the service, answer.
//!
//! | method and path                   | what                                  |
//! |-----------------------------------|---------------------------------------|
//! | `POST /v1/acl/bootstrap`          | the first admin token (once)          |
//! | `POST /v1/acl/tokens`             | a token `{name, policies}`; secret shown once |
//! | `GET /v1/acl/tokens`              | tokens, without secrets               |
//! | `DELETE /v1/acl/tokens/{accessor}`| delete a token                        |
//! | `POST /v1/acl/policies`           | create or replace `{name, rules}`     |
//! | `GET /v1/acl/policies`            | policies                              |
//! | `DELETE /v1/acl/policies/{name}`  | delete a policy                       |
//! | `GET /v1/acl/audit?limit=N`       | this master's latest audited writes   |

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::{Json, Router};
use serde_json::json;

use super::error::ApiError;
use super::extract::{parse_json, Body};
use crate::master::Master;
use crate::service::acl::store::{PolicyRequest, TokenRequest};

type ApiResult<T> = std::result::Result<T, ApiError>;

/// The routes.
pub fn routes() -> Router<Master> {
    Router::new()
        .route("/v1/acl/bootstrap", post(bootstrap))
        .route("/v1/acl/tokens", post(create_token).get(list_tokens))
        .route("/v1/acl/tokens/{accessor}", delete(delete_token))
        .route("/v1/acl/policies", post(put_policy).get(list_policies))
        .route("/v1/acl/policies/{name}", delete(delete_policy))
        .route("/v1/acl/audit", axum::routing::get(audit))
}

fn created(body: impl serde::Serialize) -> Response {
    (StatusCode::CREATED, Json(body)).into_response()
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    limit: Option<usize>,
}

async fn audit(
    State(m): State<Master>,
    super::extract::Query(q): super::extract::Query<AuditQuery>,
) -> ApiResult<Response> {
    let entries = m.service().acl_audit(q.limit.unwrap_or(100))?;
    Ok(Json(json!({ "master": m.id(), "entries": entries })).into_response())
}

async fn bootstrap(State(m): State<Master>) -> ApiResult<Response> {
    Ok(created(m.service().acl_bootstrap().await?))
}

async fn create_token(State(m): State<Master>, Body(body): Body) -> ApiResult<Response> {
    let req: TokenRequest = parse_json(&body)?;
    Ok(created(m.service().acl_create_token(req).await?))
}

async fn list_tokens(State(m): State<Master>) -> ApiResult<Response> {
    let tokens = m.service().acl_tokens()?;
    Ok(Json(json!({ "tokens": tokens })).into_response())
}

async fn delete_token(
    State(m): State<Master>,
    Path(accessor): Path<String>,
) -> ApiResult<Response> {
    m.service().acl_delete_token(&accessor).await?;
    Ok(Json(json!({ "accessor": accessor, "outcome": "deleted" })).into_response())
}

async fn put_policy(State(m): State<Master>, Body(body): Body) -> ApiResult<Response> {
    let req: PolicyRequest = parse_json(&body)?;
    Ok(created(m.service().acl_put_policy(req).await?))
}

async fn list_policies(State(m): State<Master>) -> ApiResult<Response> {
    let policies = m.service().acl_policies()?;
    Ok(Json(json!({ "policies": policies })).into_response())
}

async fn delete_policy(State(m): State<Master>, Path(name): Path<String>) -> ApiResult<Response> {
    m.service().acl_delete_policy(&name).await?;
    Ok(Json(json!({ "name": name, "outcome": "deleted" })).into_response())
}
