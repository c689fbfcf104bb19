//! REST for the cluster in numbers: thin adapters over
//! [`crate::service::summary`].
//!
//! | method and path          | what                                                        |
//! |--------------------------|-------------------------------------------------------------|
//! | `GET /v1/summary`        | jobs by state, waiting reasons, agents by status, capacity  |
//! | `GET /v1/summary/jobs`   | a page of jobs with counts (`?prefix=&sort=&page=&per_page=`) |

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::error::ApiError;
use super::extract::Query;
use super::jobs::versioned;
use crate::master::Master;
use crate::service::summary::{JobPage, JobPageQuery, SummaryView};
use crate::service::ReadOptions;

type ApiResult<T> = std::result::Result<T, ApiError>;

/// The summary routes, merged into the REST router.
pub fn routes() -> Router<Master> {
    Router::new()
        .route("/v1/summary", get(summary))
        .route("/v1/summary/jobs", get(job_page))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct SummaryQuery {
    min_version: Option<u64>,
    consistent: Option<bool>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct PageQuery {
    min_version: Option<u64>,
    consistent: Option<bool>,
    prefix: Option<String>,
    #[param(pattern = "^(id|updated|state)$")]
    sort: Option<String>,
    #[param(minimum = 1)]
    page: Option<usize>,
    #[param(minimum = 1, maximum = 500)]
    per_page: Option<usize>,
}

fn options(min_version: Option<u64>, consistent: Option<bool>) -> ReadOptions {
    ReadOptions {
        min_version,
        consistent: consistent == Some(true),
    }
}

/// The cluster in numbers.
#[utoipa::path(get, path = "/v1/summary", tag = "summary", params(SummaryQuery),
    responses((status = 200, body = SummaryView)))]
async fn summary(State(m): State<Master>, Query(q): Query<SummaryQuery>) -> ApiResult<Response> {
    let s = m
        .service()
        .summary(options(q.min_version, q.consistent))
        .await?;
    Ok(versioned(s.version, StatusCode::OK, &s))
}

/// A page of jobs with their counts.
#[utoipa::path(get, path = "/v1/summary/jobs", tag = "summary", params(PageQuery),
    responses((status = 200, body = JobPage)))]
async fn job_page(State(m): State<Master>, Query(q): Query<PageQuery>) -> ApiResult<Response> {
    let page = JobPageQuery {
        prefix: q.prefix,
        sort: q.sort,
        page: q.page,
        per_page: q.per_page,
    };
    let p = m
        .service()
        .job_page(&page, options(q.min_version, q.consistent))
        .await?;
    Ok(versioned(p.version, StatusCode::OK, &p))
}
