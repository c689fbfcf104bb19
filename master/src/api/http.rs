//! REST+JSON API (axum). Writes sent to a follower are forwarded to the
//! leader over gRPC, so clients may talk to any master.
//!
//! | method and path              | what                                        |
//! |------------------------------|---------------------------------------------|
//! | `GET /v1/leader`             | the leader's id and addresses               |
//! | `GET /v1/status`             | raft status, members and their health       |
//! | `POST /v1/jobs`              | create or replace a job (JSON or YAML)      |
//! | `GET /v1/jobs`               | list jobs (`?prefix=` a service-tree node)  |
//! | `GET /v1/jobs/{id}`          | one job                                     |
//! | `DELETE /v1/jobs/{id}`       | delete a job                                |
//! | `GET /v1/agents`             | agents (liveness as the leader sees it; `?q=` a tag query) |
//! | `GET /v1/agents/{id}`        | one agent                                   |
//! | `POST /v1/agents/{id}/status`, `/drain` | operator status (`agents.rs`)    |
//! | `GET /v1/members`            | masters and their addresses                 |
//! | `POST /v1/members`           | add a master `{id, grpc_addr, http_addr}`   |
//! | `DELETE /v1/members/{id}`    | remove a master                             |
//! | `GET /v1/events?from=N`      | server-sent change events from version N    |
//! | `GET /metrics`               | Prometheus metrics                          |
//! | `GET /v1/usage`              | allocated vs used under a tree node (`usage.rs`) |
//! | `/v1/acl/...`                | tokens, policies, audit (`acl.rs`)          |
//! | `GET /v1/tree`, `/v1/tree/{node}/quota` | the service tree, replicated quotas (`tree.rs`) |
//! | `GET /v1/snapshot`, `POST /v1/snapshot/restore` | backup and restore (`snapshot.rs`) |
//! | `GET /v1/openapi.json`       | this API's OpenAPI document (`openapi.rs`)  |
//!
//! Reads are served from this master's state; every response carries the
//! `X-Ocean-Version` it reflects. `?min_version=N` waits (up to 5 s) until
//! this master has applied version N (read-your-writes anywhere), and
//! `?consistent=true` makes the read linearizable: the master first asks the
//! leader for a read index (raft ReadIndex, confirmed by a quorum) and waits
//! until it has applied that far.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use futures::StreamExt;
use serde::Deserialize;
use tokio::net::TcpListener;

use super::error::ApiError;
use super::extract::{Body, Query};
use super::jobs::ReadQuery;
use super::watch::{watch, WatchFilter, WatchItem};
use crate::error::{Error, Result};
use crate::kernel::state::Change;
use crate::master::Master;
use crate::service::members::{LeaderView, StatusView};
use crate::service::types::{JobView, KvView};
use crate::service::views::{
    AgentDetail, AgentList, AgentView, ChangeEvent, MemberChange, MemberList, SnapshotEvent,
    TaskView,
};

type ApiResult<T> = std::result::Result<T, ApiError>;

/// Builds the router.
pub fn router(master: Master) -> Router {
    Router::new()
        .route("/v1/leader", get(leader))
        .route("/v1/status", get(status))
        .route("/v1/agents", get(list_agents))
        .route("/v1/agents/{id}", get(get_agent))
        .route("/v1/members", get(members).post(add_member))
        .route("/v1/members/{id}", delete(remove_member))
        .route("/v1/events", get(events))
        .route("/v1/openapi.json", get(openapi_json))
        .route("/metrics", get(metrics))
        .merge(super::jobs::routes())
        .merge(super::deployments::routes())
        .merge(super::tasks::routes())
        .merge(super::summary::routes())
        .merge(super::agents::routes())
        .merge(super::frameworks::routes())
        .merge(super::usage::routes())
        .merge(super::alerts::routes())
        .merge(super::acl::routes())
        .merge(super::tree::routes())
        .merge(super::snapshot::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(4 * 1024 * 1024))
        .with_state(master)
}

/// Serves the REST API on `listener` until `shutdown` resolves.
pub async fn serve(
    master: Master,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    serve_with(master, listener, Router::new(), shutdown).await
}

/// [`serve`], with `extra` routes beside the API's (the dashboard at
/// `/ui/`, which lives in a crate above this one). `extra` must not set a
/// fallback: unknown paths get the API's JSON 404.
pub async fn serve_with(
    master: Master,
    listener: TcpListener,
    extra: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    serve_mounted(master, listener, extra, None, shutdown).await
}

/// [`serve_with`], over TLS when `tls` is given (`[tls] http = true`).
pub async fn serve_mounted(
    master: Master,
    listener: TcpListener,
    extra: Router,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    // Authentication wraps the dashboard and frameworks' routes too: the
    // service calls they make act for the request's token.
    let app = extra
        .merge(router(master.clone()))
        .layer(axum::middleware::from_fn_with_state(
            master,
            super::auth::authenticate,
        ));
    if let Some(tls) = tls {
        super::https::serve(listener, app, tls, shutdown).await;
        return Ok(());
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| Error::Io {
            context: "serve REST API".into(),
            source,
        })
}

async fn not_found() -> ApiError {
    ApiError::from(Error::NotFound {
        kind: "route",
        id: "no such API path; see docs/api.md".into(),
    })
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::with_status(
        StatusCode::METHOD_NOT_ALLOWED,
        "method",
        format!("{method} is not allowed on {}; see docs/api.md", uri.path()),
    )
}

pub(super) fn with_version(version: u64, body: impl serde::Serialize) -> Response {
    let mut resp = Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&version.to_string()) {
        resp.headers_mut().insert("x-ocean-version", v);
    }
    resp
}

/// The leader and its addresses.
#[utoipa::path(get, path = "/v1/leader", tag = "cluster",
    responses((status = 200, body = LeaderView)))]
async fn leader(State(m): State<Master>) -> ApiResult<Json<LeaderView>> {
    Ok(Json(m.service().leader()?))
}

/// This master's raft status, members and their health.
#[utoipa::path(get, path = "/v1/status", tag = "cluster",
    responses((status = 200, body = StatusView)))]
async fn status(State(m): State<Master>) -> Json<StatusView> {
    Json(m.service().status())
}

/// `GET /v1/agents?q=`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct AgentsQuery {
    /// A tag query (`idc.c3 !status.offline`, docs/api.md "Tag queries").
    q: Option<String>,
    /// Wait until this master has applied this version.
    min_version: Option<u64>,
    /// A linearizable read through the leader.
    consistent: Option<bool>,
}

/// Agents, with liveness as the leader sees it; `q` selects by tags.
#[utoipa::path(get, path = "/v1/agents", tag = "agents", params(AgentsQuery),
    responses((status = 200, body = AgentList)))]
async fn list_agents(
    State(m): State<Master>,
    Query(q): Query<AgentsQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let opts = crate::service::ReadOptions {
        min_version: q.min_version,
        consistent: q.consistent == Some(true),
    };
    let (version, agents) = m.service().select_agents(q.q.as_deref(), opts).await?;
    let agents = agents
        .iter()
        .map(|(a, l)| {
            let mut d = AgentDetail::new(a, *l);
            d.host_checks = crate::api::host_checks_of(&m, &a.id).map(|h| (*h).clone());
            d
        })
        .collect();
    let agents = agent_usage(&m, agents, &headers).await;
    Ok(with_version(version, AgentList { version, agents }))
}

/// One agent.
#[utoipa::path(get, path = "/v1/agents/{id}", tag = "agents",
    params(("id" = String, Path, description = "agent id"), ReadQuery),
    responses((status = 200, body = AgentDetail)))]
async fn get_agent(
    State(m): State<Master>,
    Path(id): Path<String>,
    Query(q): Query<ReadQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (version, a, l) = m.service().get_agent(&id, q.options()).await?;
    let mut d = AgentDetail::new(&a, l);
    d.host_checks = crate::api::host_checks_of(&m, &a.id).map(|h| (*h).clone());
    let mut d = agent_usage(&m, vec![d], &headers).await;
    Ok(with_version(version, d.remove(0)))
}

/// The sums of the agents' newest usage reports, as the leader holds them
/// (a follower asks it: `usage_latest.rs`).
async fn agent_usage(
    m: &Master,
    mut details: Vec<AgentDetail>,
    headers: &HeaderMap,
) -> Vec<AgentDetail> {
    let ids = details.iter().map(|d| d.agent.id.clone()).collect();
    let auth = super::usage_latest::auth_of(headers);
    let mut latest = super::usage_latest::latest(m, Vec::new(), ids, auth).await;
    for d in &mut details {
        d.usage = latest.agents.remove(&d.agent.id);
    }
    details
}

/// The masters and whether each votes.
#[utoipa::path(get, path = "/v1/members", tag = "cluster",
    responses((status = 200, body = MemberList)))]
async fn members(State(m): State<Master>) -> Json<MemberList> {
    Json(MemberList {
        members: m.service().members(),
    })
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AddMemberBody {
    id: u64,
    grpc_addr: String,
    #[serde(default)]
    http_addr: String,
}

/// Adds a master.
#[utoipa::path(post, path = "/v1/members", tag = "cluster", request_body = AddMemberBody,
    responses((status = 201, body = MemberChange)))]
async fn add_member(State(m): State<Master>, Body(body): Body) -> ApiResult<Response> {
    let req: AddMemberBody = super::extract::parse_json(&body)?;
    let index = m
        .service()
        .add_member(req.id, &req.grpc_addr, &req.http_addr)
        .await?;
    let mut resp = Json(MemberChange {
        id: req.id,
        index,
        outcome: "added",
    })
    .into_response();
    *resp.status_mut() = StatusCode::CREATED;
    Ok(resp)
}

/// Removes a master.
#[utoipa::path(delete, path = "/v1/members/{id}", tag = "cluster",
    params(("id" = u64, Path, description = "master id")),
    responses((status = 200, body = MemberChange)))]
async fn remove_member(
    State(m): State<Master>,
    Path(id): Path<String>,
) -> ApiResult<Json<MemberChange>> {
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::bad_request("id", format!("'{id}' is not a master id")))?;
    let index = m.service().remove_member(id).await?;
    Ok(Json(MemberChange {
        id,
        index,
        outcome: "removed",
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsQuery {
    /// Resume after this state version (else `Last-Event-ID`, else 0: a snapshot first).
    from: Option<u64>,
    /// Only jobs and tasks under this service-tree node.
    node: Option<String>,
    /// Comma-separated kinds: job, task, agent, kv.
    kinds: Option<String>,
    /// Comma-separated framework namespaces (kv events).
    namespaces: Option<String>,
    /// Also this master's audit entries as `audit` events, from now on
    /// (needs admin on the root).
    audit: Option<bool>,
}

/// Server-sent change events (`snapshot`, `job_put`, `task_put`, ...).
#[utoipa::path(get, path = "/v1/events", tag = "cluster", params(EventsQuery),
    responses((status = 200, description = "an endless event stream",
        content_type = "text/event-stream", body = String)))]
async fn events(
    State(m): State<Master>,
    Query(q): Query<EventsQuery>,
    headers: HeaderMap,
) -> ApiResult<Sse<impl futures::Stream<Item = std::result::Result<SseEvent, Infallible>>>> {
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let from = q.from.or(last_id).unwrap_or(0);
    let grants = m.service().watch_grants()?;
    let filter = WatchFilter::parse(
        q.node.as_deref().unwrap_or(""),
        &q.kinds.into_iter().collect::<Vec<_>>(),
        &q.namespaces.into_iter().collect::<Vec<_>>(),
    )?
    .with_grants(grants);
    let audit = if q.audit == Some(true) {
        m.service()
            .authorize("", crate::service::acl::Right::Admin)?;
        tokio_stream::wrappers::BroadcastStream::new(m.audit().subscribe())
            .filter_map(|e| async move { e.ok() })
            .map(|e| Ok(SseEvent::default().event("audit").data(to_json(&e))))
            .boxed()
    } else {
        futures::stream::empty().boxed()
    };
    let stream = watch(m.feed().clone(), m.state().clone(), from, filter).map(|item| {
        let ev = match item {
            WatchItem::Snapshot {
                version,
                jobs,
                agents,
                tasks,
                kv,
            } => SseEvent::default()
                .id(version.to_string())
                .event("snapshot")
                .data(to_json(&SnapshotEvent {
                    version,
                    jobs: jobs.iter().map(|j| JobView::from(j.as_ref())).collect(),
                    agents: agents.iter().map(|a| AgentView::from(a.as_ref())).collect(),
                    tasks: tasks.iter().map(|t| TaskView::from(t.as_ref())).collect(),
                    kv: kv.iter().map(|e| KvView::from(e.as_ref())).collect(),
                })),
            WatchItem::Change {
                version: v,
                change,
                last,
            } => {
                let (name, data) = match change {
                    Change::JobPut(job) => ("job_put", ChangeEvent::job(v, &job)),
                    Change::JobDeleted(id) => {
                        ("job_deleted", ChangeEvent::Removed { version: v, id })
                    }
                    Change::AgentPut(a) => (
                        "agent_put",
                        ChangeEvent::Agent {
                            version: v,
                            agent: AgentView::from(a.as_ref()),
                        },
                    ),
                    Change::TaskPut(t) => (
                        "task_put",
                        ChangeEvent::Task {
                            version: v,
                            task: TaskView::from(t.as_ref()),
                        },
                    ),
                    Change::TaskRemoved(id) => {
                        ("task_removed", ChangeEvent::Removed { version: v, id })
                    }
                    Change::KvPut(e) => (
                        "kv_put",
                        ChangeEvent::Kv {
                            version: v,
                            kv: KvView::from(e.as_ref()),
                        },
                    ),
                    Change::KvDeleted(e) => ("kv_deleted", ChangeEvent::kv_deleted(v, &e)),
                };
                let data = to_json(&data);
                // Only the last event of a version carries the id, so a
                // client resuming with Last-Event-ID never skips the rest
                // of a version it saw only part of.
                let ev = SseEvent::default().event(name).data(data);
                if last {
                    ev.id(v.to_string())
                } else {
                    ev
                }
            }
        };
        Ok(ev)
    });
    let stream = futures::stream::select(stream, audit);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// This API's OpenAPI document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "cluster",
    responses((status = 200, description = "the OpenAPI 3.1 document", body = Object)))]
async fn openapi_json() -> Json<serde_json::Value> {
    Json(super::openapi::document())
}

fn to_json(v: &impl serde::Serialize) -> String {
    // The views hold only strings, numbers and maps with string keys.
    serde_json::to_string(v).unwrap_or_default()
}

async fn metrics(State(m): State<Master>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        m.metrics().render(),
    )
}
