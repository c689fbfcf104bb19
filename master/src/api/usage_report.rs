//! `GET /v1/usage/report?node=&window=&format=json|csv`: utilisation per
//! product line under `node` over `window` (`usage::lines`). The recent
//! samples live in the leader's memory, so a follower relays the leader's
//! answer; longer windows read the replicated history (`usage::history`).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ocean_spec::TreeNode;
use serde::Deserialize;

use super::error::ApiError;
use super::extract::Query;
use super::usage::{allocations, forward, parse_report_window, DEFAULT_WINDOW_S};
use crate::master::Master;
use crate::usage::lines::{build, to_csv, LinesReport};
use crate::usage::now_ms;

type ApiResult<T> = std::result::Result<T, ApiError>;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ReportQuery {
    node: Option<String>,
    /// `30s`, `5m`, `6h`, `30d` or seconds, from 1 s to 400 days.
    #[param(
        pattern = "^(([1-9][0-9]{0,6}|[12][0-9]{7}|3[0-3][0-9]{6}|34[0-4][0-9]{5}|345[0-5][0-9]{4}|34560000)s?|([1-9][0-9]{0,4}|[1-4][0-9]{5}|5[0-6][0-9]{4}|57[0-5][0-9]{3}|576000)m|([1-9][0-9]{0,2}|[1-8][0-9]{3}|9[0-5][0-9]{2}|9600)h|([1-9][0-9]?|[1-3][0-9]{2}|400)d)$"
    )]
    window: Option<String>,
    /// `json` (default) or `csv`.
    #[param(pattern = "^(json|csv)$")]
    format: Option<String>,
}

/// Utilisation per product line: allocated, used, peak, idle share.
#[utoipa::path(get, path = "/v1/usage/report", tag = "usage", params(ReportQuery),
    responses((status = 200, description = "the report (JSON, or CSV with format=csv)",
        content((LinesReport = "application/json"), (String = "text/csv")))))]
pub(super) async fn report(
    State(m): State<Master>,
    Query(q): Query<ReportQuery>,
    headers: axum::http::HeaderMap,
) -> ApiResult<Response> {
    let window_s = match q.window.as_deref() {
        Some(w) => {
            parse_report_window(w).map_err(|reason| ApiError::bad_request("window", reason))?
        }
        None => DEFAULT_WINDOW_S,
    };
    let csv = match q.format.as_deref().unwrap_or("json") {
        "json" => false,
        "csv" => true,
        other => {
            return Err(ApiError::bad_request(
                "format",
                format!("'{other}' is not one of json, csv"),
            ))
        }
    };
    let node_text = q.node.clone().unwrap_or_default();
    let node = TreeNode::parse_field(&node_text, "node")
        .map_err(|e| ApiError::bad_request(&e.field, e.reason))?;
    m.service()
        .authorize_node(&node, crate::service::acl::Right::Read)?;
    if m.status().leader != m.id() {
        let auth = headers.get(axum::http::header::AUTHORIZATION).cloned();
        let window = format!("{window_s}s");
        let format = if csv { "csv" } else { "json" };
        let query = [
            ("node", node_text.as_str()),
            ("window", window.as_str()),
            ("format", format),
        ];
        return forward(&m, "/v1/usage/report", &query, auth).await;
    }
    let tasks = allocations(&m, &node);
    let r = {
        let state = m.state().read().unwrap_or_else(|p| p.into_inner());
        build(
            m.usage(),
            Some(&state),
            &node_text,
            &tasks,
            window_s,
            now_ms(),
            m.id(),
        )
    };
    if csv {
        Ok((
            [(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            to_csv(&r),
        )
            .into_response())
    } else {
        Ok(Json(r).into_response())
    }
}
