//! REST for alert rules and alerts (`service::alerts`). Thin: parse, call
//! the service, answer. Any master answers: rules and alerts are
//! replicated state.
//!
//! | method and path                  | what                                      |
//! |----------------------------------|-------------------------------------------|
//! | `POST /v1/alerts/rules`          | create a rule `{node, kind, for_seconds, ...}` |
//! | `GET /v1/alerts/rules?node=`     | rules (on nodes under `node`)              |
//! | `GET /v1/alerts/rules/{id}`      | one rule                                   |
//! | `DELETE /v1/alerts/rules/{id}`   | delete a rule (its alerts resolve)         |
//! | `GET /v1/alerts?state=`          | firing alerts and the recently resolved    |

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{parse_json, Body, Query};
use super::http::with_version;
use crate::alerts::record::{Rule, RuleRequest};
use crate::master::Master;
use crate::service::alerts::{AlertList, RuleList};
use crate::service::types::WriteResult;
use crate::service::ReadOptions;

type ApiResult<T> = std::result::Result<T, ApiError>;

/// The routes, merged into the REST router.
pub fn routes() -> Router<Master> {
    Router::new()
        .route("/v1/alerts", get(list_alerts))
        .route("/v1/alerts/rules", get(list_rules).post(create_rule))
        .route("/v1/alerts/rules/{id}", get(get_rule).delete(delete_rule))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct RulesQuery {
    /// Only rules on nodes under this one.
    node: Option<String>,
    min_version: Option<u64>,
    consistent: Option<bool>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct AlertsQuery {
    /// `firing` or `resolved`; both when left out.
    #[param(pattern = "^(firing|resolved)?$")]
    state: Option<String>,
    min_version: Option<u64>,
    consistent: Option<bool>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ReadOnly {
    min_version: Option<u64>,
    consistent: Option<bool>,
}

fn options(min_version: Option<u64>, consistent: Option<bool>) -> ReadOptions {
    ReadOptions {
        min_version,
        consistent: consistent == Some(true),
    }
}

/// Creates an alert rule.
#[utoipa::path(post, path = "/v1/alerts/rules", tag = "alerts", request_body = RuleRequest,
    responses((status = 201, description = "created", body = Rule)))]
async fn create_rule(State(m): State<Master>, Body(body): Body) -> ApiResult<Response> {
    let req: RuleRequest = parse_json(&body)?;
    let rule = m.service().alert_rule_create(req).await?;
    Ok((StatusCode::CREATED, Json(rule)).into_response())
}

/// Lists alert rules.
#[utoipa::path(get, path = "/v1/alerts/rules", tag = "alerts", params(RulesQuery),
    responses((status = 200, body = RuleList)))]
async fn list_rules(State(m): State<Master>, Query(q): Query<RulesQuery>) -> ApiResult<Response> {
    let list = m
        .service()
        .alert_rules(
            q.node.as_deref().unwrap_or(""),
            options(q.min_version, q.consistent),
        )
        .await?;
    Ok(with_version(list.version, list))
}

/// One alert rule.
#[utoipa::path(get, path = "/v1/alerts/rules/{id}", tag = "alerts",
    params(("id" = String, Path, description = "rule id"), ReadOnly),
    responses((status = 200, body = Rule)))]
async fn get_rule(
    State(m): State<Master>,
    Path(id): Path<String>,
    Query(q): Query<ReadOnly>,
) -> ApiResult<Response> {
    let rule = m
        .service()
        .alert_rule(&id, options(q.min_version, q.consistent))
        .await?;
    Ok(Json(rule).into_response())
}

/// Deletes an alert rule; its firing alerts resolve.
#[utoipa::path(delete, path = "/v1/alerts/rules/{id}", tag = "alerts",
    params(("id" = String, Path, description = "rule id")),
    responses((status = 200, body = WriteResult)))]
async fn delete_rule(State(m): State<Master>, Path(id): Path<String>) -> ApiResult<Response> {
    let r = m.service().alert_rule_delete(&id).await?;
    Ok(with_version(r.version, r))
}

/// Firing alerts, then the recently resolved.
#[utoipa::path(get, path = "/v1/alerts", tag = "alerts", params(AlertsQuery),
    responses((status = 200, body = AlertList)))]
async fn list_alerts(State(m): State<Master>, Query(q): Query<AlertsQuery>) -> ApiResult<Response> {
    let list = m
        .service()
        .alerts(q.state.as_deref(), options(q.min_version, q.consistent))
        .await?;
    Ok(with_version(list.version, list))
}
