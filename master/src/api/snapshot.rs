//! REST for master backup and restore: thin adapters over
//! [`crate::service::snapshot`]. Both are the leader's: a follower answers
//! 503 naming the leader.
//!
//! | method and path                  | what                                           |
//! |----------------------------------|------------------------------------------------|
//! | `GET /v1/snapshot`               | the state at one applied index, as a file      |
//! | `POST /v1/snapshot/restore`      | body = such a file (`?force=true`: replace a cluster that holds data) |

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{Body, Query};
use super::jobs::versioned;
use crate::master::Master;
use crate::service::snapshot::RestoreResult;

type ApiResult<T> = std::result::Result<T, ApiError>;

/// The largest snapshot file a restore takes.
const MAX_SNAPSHOT: usize = 256 * 1024 * 1024;

/// The snapshot routes, merged into the REST router.
pub fn routes() -> Router<Master> {
    Router::new().route("/v1/snapshot", get(save)).route(
        "/v1/snapshot/restore",
        post(restore).layer(DefaultBodyLimit::max(MAX_SNAPSHOT)),
    )
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct RestoreQuery {
    /// Replace the jobs, tasks and keys of a cluster that holds some.
    force: Option<bool>,
}

/// The leader's state at one applied index, as a snapshot file.
#[utoipa::path(get, path = "/v1/snapshot", tag = "cluster",
    responses((status = 200, description = "a snapshot file (docs/operations.md)",
        content_type = "application/octet-stream", body = Vec<u8>)))]
async fn save(State(m): State<Master>) -> ApiResult<Response> {
    let file = m.service().snapshot_save().await?;
    Ok((
        StatusCode::OK,
        [("content-type", "application/octet-stream")],
        file,
    )
        .into_response())
}

/// Restores a snapshot file onto this cluster.
#[utoipa::path(post, path = "/v1/snapshot/restore", tag = "cluster", params(RestoreQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "a file from GET /v1/snapshot"),
    responses((status = 200, body = RestoreResult)))]
async fn restore(
    State(m): State<Master>,
    Query(q): Query<RestoreQuery>,
    Body(body): Body,
) -> ApiResult<Response> {
    let r = m
        .service()
        .snapshot_restore(&body, q.force == Some(true))
        .await?;
    Ok(versioned(r.version, StatusCode::OK, &r))
}
