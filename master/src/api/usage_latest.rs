//! `POST /v1/usage/latest`: the newest usage sample of given tasks and
//! agents, as the leader holds them. The samples live in the leader's
//! memory only, so a follower answering a task or agent read (REST or
//! gRPC) asks the leader with this, once per answer, and fills `usage`
//! from it. The caller's token travels with the question; the leader
//! leaves out the tasks it may not read, and the agents without a valid
//! token, as its own reads do.
//!
//! A leader that cannot be reached within [`TIMEOUT`] leaves the
//! follower's answer without `usage`, as a task without a sample has:
//! the read itself never fails for it.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use tracing::debug;

use super::error::ApiError;
use super::extract::Body;
use crate::master::Master;
use crate::usage::report::{AgentUsageView, TaskUsageView};

type ApiResult<T> = std::result::Result<T, ApiError>;

/// How long a follower waits for the leader's samples.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// Most ids one question may name (a list of every task of a large
/// cluster fits).
const MAX_IDS: usize = 200_000;

/// The question.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatestRequest {
    /// Task ids.
    #[serde(default)]
    pub tasks: Vec<String>,
    /// Agent ids.
    #[serde(default)]
    pub agents: Vec<String>,
}

/// The answer: the samples the leader holds, by id (ids without one, or
/// that the caller may not read, are absent).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct LatestUsage {
    pub tasks: BTreeMap<String, TaskUsageView>,
    pub agents: BTreeMap<String, AgentUsageView>,
}

/// The caller's token as an `Authorization` header for the leader,
/// wherever the request carried it (the header, or the dashboard's cookie).
pub fn auth_of(headers: &axum::http::HeaderMap) -> Option<HeaderValue> {
    let token = super::auth::token_of(headers).filter(|t| !t.is_empty())?;
    HeaderValue::from_str(&format!("Bearer {}", token.expose())).ok()
}

/// This master's own samples of `req`'s ids, filtered by what the
/// caller may read.
fn local(m: &Master, req: &LatestRequest) -> LatestUsage {
    let service = m.service();
    let store = m.usage();
    let tasks = req
        .tasks
        .iter()
        .filter(|id| service.may_read(id))
        .filter_map(|id| {
            let (at, u) = store.task(id)?;
            Some((id.clone(), TaskUsageView::new(at, &u)))
        })
        .collect();
    let agents = if service.authenticated().is_ok() {
        req.agents
            .iter()
            .filter_map(|id| {
                let (at, n, p) = store.agent(id)?;
                Some((id.clone(), AgentUsageView::new(at, n, &p)))
            })
            .collect()
    } else {
        BTreeMap::new()
    };
    LatestUsage { tasks, agents }
}

/// The newest samples of `tasks` and `agents`: this master's own when it
/// leads, else the leader's (one request with the caller's `auth`);
/// empty when the leader cannot answer.
pub async fn latest(
    m: &Master,
    tasks: Vec<String>,
    agents: Vec<String>,
    auth: Option<HeaderValue>,
) -> LatestUsage {
    let req = LatestRequest { tasks, agents };
    if req.tasks.is_empty() && req.agents.is_empty() {
        return LatestUsage::default();
    }
    if m.status().leader == m.id() {
        return local(m, &req);
    }
    match ask_leader(m, &req, auth).await {
        Ok(l) => l,
        Err(reason) => {
            debug!(%reason, "no usage from the leader for a follower's answer");
            LatestUsage::default()
        }
    }
}

async fn ask_leader(
    m: &Master,
    req: &LatestRequest,
    auth: Option<HeaderValue>,
) -> std::result::Result<LatestUsage, String> {
    let leader = super::usage::leader_rest(m).map_err(|e| e.to_string())?;
    let url = m.peer_rest_url(&leader.http_addr, "/v1/usage/latest");
    let mut r = m.peer_rest().post(&url).json(req).timeout(TIMEOUT);
    if let Some(a) = auth {
        r = r.header(reqwest::header::AUTHORIZATION, a.as_bytes());
    }
    let answer = r.send().await.map_err(|e| e.to_string())?;
    if !answer.status().is_success() {
        return Err(format!("the leader answered {}", answer.status()));
    }
    answer.json().await.map_err(|e| e.to_string())
}

/// The newest samples of the tasks and agents named, as the leader holds
/// them (a follower asks its leader).
#[utoipa::path(post, path = "/v1/usage/latest", tag = "usage",
    request_body(content = Object, description = "`{\"tasks\": [ids], \"agents\": [ids]}`"),
    responses((status = 200, description = "the samples held, by id", body = Object)))]
pub(super) async fn latest_usage(
    State(m): State<Master>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let req: LatestRequest = super::extract::parse_json(&body.0)?;
    for (field, n) in [("tasks", req.tasks.len()), ("agents", req.agents.len())] {
        if n > MAX_IDS {
            return Err(ApiError::bad_request(
                field,
                format!("{n} ids: at most {MAX_IDS} in one question"),
            ));
        }
    }
    if m.status().leader != m.id() {
        let auth = auth_of(&headers);
        let l = ask_leader(&m, &req, auth).await.map_err(|reason| {
            ApiError::from(crate::error::Error::NoLeader(format!(
                "usage from the leader: {reason}"
            )))
        })?;
        return Ok(Json(l).into_response());
    }
    Ok(Json(local(&m, &req)).into_response())
}
