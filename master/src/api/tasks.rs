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
use ocean_proto::internal::Task;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::http::with_version;
use crate::master::Master;
use crate::service::tasks::TaskFilter;
use crate::service::ReadOptions;
use crate::state::is_terminal;

type ApiResult<T> = std::result::Result<T, ApiError>;

/// The task routes, merged into the REST router.
pub fn routes() -> Router<Master> {
    Router::new()
        .route("/v1/tasks", get(list_tasks))
        .route("/v1/tasks/{id}", get(get_task))
        .route("/v1/tasks/{id}/logs", get(task_logs))
}

/// A task as the API shows it.
pub fn task_json(t: &Task) -> Value {
    let ports: Vec<Value> = t
        .ports
        .iter()
        .map(|p| json!({"name": p.name, "port": p.port}))
        .collect();
    let mut v = json!({
        "id": t.id,
        "job": t.job_id,
        "agent": t.agent_id,
        "host": t.host,
        "address": t.address,
        "state": t.state,
        "ports": ports,
        "resources": {"cpus": t.cpus, "mem": t.mem_mib, "disk": t.disk_mib},
        "kill_requested": t.kill_requested,
        "created_ms": t.created_ms,
        "started_ms": if t.started_ms == 0 { Value::Null } else { json!(t.started_ms) },
        "pid": if t.pid == 0 { Value::Null } else { json!(t.pid) },
        "created_version": t.created_version,
        "updated_version": t.updated_version,
        "healthy": t.healthy,
    });
    if !t.health_message.is_empty() {
        v["health_message"] = json!(t.health_message);
    }
    if t.health_failed {
        v["health_failed"] = json!(true);
    }
    if !t.reason.is_empty() {
        v["reason"] = json!(t.reason);
    }
    if !t.message.is_empty() {
        v["message"] = json!(t.message);
    }
    if t.unreachable_since_ms != 0 {
        v["unreachable_since_ms"] = json!(t.unreachable_since_ms);
    }
    if is_terminal(&t.state) {
        v["ended_ms"] = json!(t.ended_ms);
        v["exit_code"] = json!(t.exit_code);
        v["signal"] = json!(t.signal);
    }
    v
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TasksQuery {
    job: Option<String>,
    agent: Option<String>,
    state: Option<String>,
    /// Include ended tasks (default true).
    ended: Option<bool>,
    min_version: Option<u64>,
    consistent: Option<bool>,
}

async fn list_tasks(State(m): State<Master>, Query(q): Query<TasksQuery>) -> ApiResult<Response> {
    let filter = TaskFilter {
        job: q.job,
        agent: q.agent,
        state: q.state,
        ended: q.ended,
    };
    let opts = ReadOptions {
        min_version: q.min_version,
        consistent: q.consistent == Some(true),
    };
    let (version, tasks) = m.service().list_tasks(&filter, opts).await?;
    let tasks: Vec<Value> = tasks.iter().map(|t| task_json(t)).collect();
    Ok(with_version(
        version,
        json!({"version": version, "tasks": tasks}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadOnly {
    min_version: Option<u64>,
    consistent: Option<bool>,
}

async fn get_task(
    State(m): State<Master>,
    Path(id): Path<String>,
    Query(q): Query<ReadOnly>,
) -> ApiResult<Response> {
    let opts = ReadOptions {
        min_version: q.min_version,
        consistent: q.consistent == Some(true),
    };
    let (version, t) = m.service().get_task(&id, opts).await?;
    Ok(with_version(version, task_json(&t)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsQuery {
    stream: Option<String>,
    tail: Option<String>,
    follow: Option<bool>,
}

/// Streams a task's log from its agent, which keeps the sandbox.
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
