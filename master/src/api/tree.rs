//! REST for the service tree and its replicated quotas and weights.
//!
//! | method and path                  | what                                             |
//! |----------------------------------|--------------------------------------------------|
//! | `GET /v1/tree?node=`             | the node's sums and its children's (`service::tree`) |
//! | `GET /v1/tree/{node}/quota`      | the node's replicated settings and what is in force |
//! | `PUT /v1/tree/{node}/quota`      | `{"cpus": 8, "mem": 16384, "weight": 2}` (any of them) |
//! | `DELETE /v1/tree/{node}/quota`   | clear them (the config's defaults apply again)   |

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{parse_json, Body, Query};
use super::http::with_version;
use crate::kernel::state::tree::NodeSettings;
use crate::master::Master;
use crate::service::ReadOptions;

type ApiResult<T> = std::result::Result<T, ApiError>;

/// The tree routes, merged into the REST router.
pub fn routes() -> Router<Master> {
    Router::new().route("/v1/tree", get(tree)).route(
        "/v1/tree/{node}/quota",
        get(get_quota).put(put_quota).delete(delete_quota),
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TreeQuery {
    #[serde(default)]
    node: String,
    min_version: Option<u64>,
    consistent: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadOnly {
    min_version: Option<u64>,
    consistent: Option<bool>,
}

fn options(min_version: Option<u64>, consistent: Option<bool>) -> ReadOptions {
    ReadOptions {
        min_version,
        consistent: consistent == Some(true),
    }
}

async fn tree(State(m): State<Master>, Query(q): Query<TreeQuery>) -> ApiResult<Response> {
    let v = m
        .service()
        .tree(&q.node, options(q.min_version, q.consistent))
        .await?;
    Ok(with_version(v.version, v))
}

async fn get_quota(
    State(m): State<Master>,
    Path(node): Path<String>,
    Query(q): Query<ReadOnly>,
) -> ApiResult<Response> {
    let (version, v) = m
        .service()
        .get_quota(&node, options(q.min_version, q.consistent))
        .await?;
    Ok(with_version(version, v))
}

async fn put_quota(
    State(m): State<Master>,
    Path(node): Path<String>,
    Body(body): Body,
) -> ApiResult<Response> {
    let settings: NodeSettings = parse_json(&body)?;
    let r = m.service().put_quota(&node, settings).await?;
    Ok(with_version(r.version, r))
}

async fn delete_quota(State(m): State<Master>, Path(node): Path<String>) -> ApiResult<Response> {
    let r = m.service().delete_quota(&node).await?;
    Ok(with_version(r.version, r))
}
