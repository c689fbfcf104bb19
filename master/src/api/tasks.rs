//! REST for tasks: list, one task, and its logs (proxied from its agent).
//!
//! | method and path                     | what                                      |
//! |-------------------------------------|-------------------------------------------|
//! | `GET /v1/tasks?job=&agent=&state=`  | tasks, filtered                           |
//! | `GET /v1/tasks/{id}`                | one task                                  |
//! | `GET /v1/tasks/{id}/logs`           | `?stream=stdout\|stderr&tail=N&follow=true` |

use super::extract::Query;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::error::ApiError;
use super::http::with_version;
use crate::master::Master;
use crate::service::tasks::TaskFilter;
use crate::service::views::{TaskList, TaskView};
use crate::service::ReadOptions;

type ApiResult<T> = std::result::Result<T, ApiError>;

/// The task routes, merged into the REST router.
pub fn routes() -> Router<Master> {
    Router::new()
        .route("/v1/tasks", get(list_tasks))
        .route("/v1/tasks/{id}", get(get_task))
        .route("/v1/tasks/{id}/logs", get(task_logs))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct TasksQuery {
    job: Option<String>,
    agent: Option<String>,
    #[param(pattern = "^(STAGING|STARTING|RUNNING|FINISHED|FAILED|KILLED|LOST)$")]
    state: Option<String>,
    /// Include ended tasks (default true).
    ended: Option<bool>,
    /// A tag query (`pdl.im idc.c3 !status.offline`).
    q: Option<String>,
    min_version: Option<u64>,
    consistent: Option<bool>,
}

/// Tasks, filtered.
#[utoipa::path(get, path = "/v1/tasks", tag = "tasks", params(TasksQuery),
    responses((status = 200, body = TaskList)))]
async fn list_tasks(
    State(m): State<Master>,
    Query(q): Query<TasksQuery>,
    headers: axum::http::HeaderMap,
) -> ApiResult<Response> {
    let filter = TaskFilter {
        job: q.job,
        agent: q.agent,
        state: q.state,
        ended: q.ended,
        q: q.q,
    };
    let opts = ReadOptions {
        min_version: q.min_version,
        consistent: q.consistent == Some(true),
    };
    let (version, tasks) = m.service().list_tasks(&filter, opts).await?;
    let tasks = tasks.iter().map(|t| TaskView::from(t.as_ref())).collect();
    let tasks = with_usage(&m, tasks, &headers).await;
    Ok(with_version(version, TaskList { version, tasks }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ReadOnly {
    min_version: Option<u64>,
    consistent: Option<bool>,
}

/// One task.
#[utoipa::path(get, path = "/v1/tasks/{id}", tag = "tasks",
    params(("id" = String, Path, description = "task id"), ReadOnly),
    responses((status = 200, body = TaskView)))]
async fn get_task(
    State(m): State<Master>,
    Path(id): Path<String>,
    Query(q): Query<ReadOnly>,
    headers: axum::http::HeaderMap,
) -> ApiResult<Response> {
    let opts = ReadOptions {
        min_version: q.min_version,
        consistent: q.consistent == Some(true),
    };
    let (version, t) = m.service().get_task(&id, opts).await?;
    let mut views = with_usage(&m, vec![TaskView::from(t.as_ref())], &headers).await;
    Ok(with_version(version, views.remove(0)))
}

/// The tasks' newest usage samples, as the leader holds them (a follower
/// asks it: `usage_latest.rs`).
async fn with_usage(
    m: &Master,
    mut views: Vec<TaskView>,
    headers: &axum::http::HeaderMap,
) -> Vec<TaskView> {
    let ids = views.iter().map(|v| v.id.clone()).collect();
    let auth = super::usage_latest::auth_of(headers);
    let mut latest = super::usage_latest::latest(m, ids, Vec::new(), auth).await;
    for v in &mut views {
        v.usage = latest.tasks.remove(&v.id).map(Box::new);
    }
    views
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct LogsQuery {
    #[param(pattern = "^(stdout|stderr)$")]
    stream: Option<String>,
    /// Lines from the end.
    #[param(pattern = "^[0-9]{1,19}$")]
    tail: Option<String>,
    follow: Option<bool>,
}

/// Streams a task's log from its agent, which keeps the sandbox.
#[utoipa::path(get, path = "/v1/tasks/{id}/logs", tag = "tasks",
    params(("id" = String, Path, description = "task id"), LogsQuery),
    responses((status = 200, description = "the log, as its agent answers it",
        content_type = "text/plain", body = String)))]
async fn task_logs(
    State(m): State<Master>,
    Path(id): Path<String>,
    Query(q): Query<LogsQuery>,
) -> ApiResult<Response> {
    let stream = q.stream.as_deref().unwrap_or("stdout");
    let tail = match &q.tail {
        Some(t) => Some(t.parse::<u64>().map_err(|_| {
            ApiError::bad_request("tail", format!("'{t}' is not a number of lines"))
        })?),
        None => None,
    };
    let resp = m
        .service()
        .task_logs(&id, stream, tail, q.follow == Some(true))
        .await?;
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("text/plain; charset=utf-8")
        .to_string();
    let body = Body::from_stream(resp.bytes_stream());
    Ok((status, [("content-type", ctype)], body).into_response())
}
