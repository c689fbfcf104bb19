//! `GET /v1/usage?node=&window=`: allocated against used for every tree
//! node, job, task and agent under `node` (default: the whole tree) over
//! the last `window` (default `1m`; `30s`, `5m`, `1h`, or seconds), with
//! each row's own ring points when `history=true`. The samples live in the
//! leader's memory, so a follower asks the leader and relays its answer.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use ocean_spec::TreeNode;
use serde::Deserialize;

use super::error::ApiError;
use super::extract::Query;
use crate::error::Error;
use crate::kernel::state::is_terminal;
use crate::master::Master;
use crate::usage::report::{build, Allocation};
use crate::usage::{now_ms, RING};

type ApiResult<T> = std::result::Result<T, ApiError>;

/// The default window.
pub(super) const DEFAULT_WINDOW_S: u64 = 60;
/// The longest window: an hour (the rings hold [`RING`] samples, so a long
/// window at a short interval sees only the newest of them).
const MAX_WINDOW_S: u64 = 3600;

/// The usage routes, merged into the REST router.
pub fn routes() -> axum::Router<Master> {
    Router::new()
        .route("/v1/usage", get(usage))
        .route("/v1/usage/report", get(super::usage_report::report))
        .route(
            "/v1/usage/latest",
            axum::routing::post(super::usage_latest::latest_usage),
        )
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct UsageQuery {
    node: Option<String>,
    /// `30s`, `5m`, `1h` or seconds, from 1 s to an hour.
    #[param(
        pattern = "^(([1-9][0-9]{0,2}|[1-2][0-9]{3}|3[0-5][0-9]{2}|3600)s?|([1-9]|[1-5][0-9]|60)m|1h)$"
    )]
    window: Option<String>,
    /// Each row's ring points too (`series.history`); default false.
    history: Option<bool>,
}

/// `30s`, `5m`, `1h` or a number of seconds, from 1 s to an hour.
pub fn parse_window(s: &str) -> std::result::Result<u64, String> {
    parse_window_up_to(s, MAX_WINDOW_S)
}

/// The longest report window: as long as the replicated hours are kept
/// (400 days).
pub const MAX_REPORT_WINDOW_S: u64 = crate::kernel::state::usage::HOURS_KEPT_S;

/// A report's window: as [`parse_window`], or in days (`30d`), up to 400
/// days.
pub fn parse_report_window(s: &str) -> std::result::Result<u64, String> {
    parse_window_up_to(s, MAX_REPORT_WINDOW_S)
}

fn parse_window_up_to(s: &str, max_s: u64) -> std::result::Result<u64, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration; give e.g. 30s, 5m or 1h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" if max_s == MAX_REPORT_WINDOW_S => n.saturating_mul(86_400),
        _ if max_s == MAX_REPORT_WINDOW_S => {
            return Err(format!("{s:?}: the unit must be s, m, h or d"))
        }
        _ => return Err(format!("{s:?}: the unit must be s, m or h")),
    };
    if secs == 0 || secs > max_s {
        return Err(if max_s == MAX_WINDOW_S {
            format!("{s:?}: must be from 1s to 1h (samples are kept {RING} per task)")
        } else {
            format!("{s:?}: must be from 1s to 400d (product lines' hours are kept 400 days)")
        });
    }
    Ok(secs)
}

/// Allocated against used under a tree node.
#[utoipa::path(get, path = "/v1/usage", tag = "usage", params(UsageQuery),
    responses((status = 200, description = "the usage report", body = Object)))]
async fn usage(
    State(m): State<Master>,
    Query(q): Query<UsageQuery>,
    headers: axum::http::HeaderMap,
) -> ApiResult<Response> {
    let window_s = match q.window.as_deref() {
        Some(w) => parse_window(w).map_err(|reason| ApiError::bad_request("window", reason))?,
        None => DEFAULT_WINDOW_S,
    };
    let node_text = q.node.clone().unwrap_or_default();
    let node = if node_text.is_empty() {
        TreeNode::root()
    } else {
        TreeNode::parse_field(&node_text, "node")
            .map_err(|e| ApiError::bad_request(&e.field, e.reason))?
    };
    m.service()
        .authorize_node(&node, crate::service::acl::Right::Read)?;
    if m.status().leader != m.id() {
        let auth = headers.get(axum::http::header::AUTHORIZATION).cloned();
        let window = format!("{window_s}s");
        let history = q.history.unwrap_or(false).to_string();
        let query = [
            ("node", node_text.as_str()),
            ("window", window.as_str()),
            ("history", history.as_str()),
        ];
        return forward(&m, "/v1/usage", &query, auth).await;
    }
    let tasks = allocations(&m, &node);
    let report = build(
        m.usage(),
        &node_text,
        &tasks,
        window_s,
        now_ms(),
        m.id(),
        q.history.unwrap_or(false),
    );
    Ok(Json(report).into_response())
}

/// The live tasks under `node` as the state knows them.
pub(super) fn allocations(m: &Master, node: &TreeNode) -> Vec<Allocation> {
    m.read(|st| {
        let mut out = Vec::new();
        for job in st.jobs.keys().filter(|j| node.covers_id(j)) {
            let Some(ids) = st.job_tasks.get(job) else {
                continue;
            };
            for id in ids {
                let Some(t) = st.tasks.get(id.as_ref()) else {
                    continue;
                };
                if is_terminal(&t.state) {
                    continue;
                }
                out.push(Allocation {
                    task: t.id.clone(),
                    job: t.job_id.clone(),
                    agent: t.agent_id.clone(),
                    cpus: t.cpus,
                    mem_mib: t.mem_mib,
                    disk_mib: t.disk_mib,
                });
            }
        }
        out
    })
}

/// The leader, once its REST address is known. Each master announces that
/// address through the log just after an election, so for a moment a
/// follower may know who leads but not where: a retryable 503, not a
/// request to an empty address.
pub(super) fn leader_rest(m: &Master) -> Result<crate::service::members::LeaderView, Error> {
    let leader = m.service().leader()?;
    if leader.http_addr.is_empty() {
        return Err(Error::NoLeader(format!(
            "master {} knows master {} leads but not yet its REST address (announced through the log after an election); retry",
            m.id(),
            leader.id
        )));
    }
    Ok(leader)
}

/// Asks the leader, which holds the samples, for `path` with `query`, and
/// relays its answer (status, content type and body).
pub(super) async fn forward(
    m: &Master,
    path: &str,
    query: &[(&str, &str)],
    auth: Option<axum::http::HeaderValue>,
) -> ApiResult<Response> {
    let leader = leader_rest(m)?;
    let url = m.peer_rest_url(&leader.http_addr, path);
    let mut req = m.peer_rest().get(&url);
    if let Some(a) = auth {
        // The leader checks the same token.
        req = req.header(reqwest::header::AUTHORIZATION, a.as_bytes());
    }
    let answer = req
        .query(query)
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| Error::Peer {
            peer: leader.id,
            reason: format!("usage from the leader at {}: {e}", leader.http_addr),
        })?;
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = answer
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let body = answer.bytes().await.map_err(|e| Error::Peer {
        peer: leader.id,
        reason: format!("usage from the leader at {}: {e}", leader.http_addr),
    })?;
    Ok((
        status,
        [(axum::http::header::CONTENT_TYPE, content_type)],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_take_units_and_refuse_zero_and_too_long() {
        assert_eq!(parse_window("30s"), Ok(30));
        assert_eq!(parse_window("5m"), Ok(300));
        assert_eq!(parse_window("1h"), Ok(3600));
        assert_eq!(parse_window("45"), Ok(45));
        assert!(parse_window("0s").is_err());
        assert!(parse_window("2h").is_err());
        assert!(parse_window("5d").is_err());
        assert!(parse_window("abc").is_err());
        assert_eq!(parse_report_window("24h"), Ok(86_400));
        assert_eq!(parse_report_window("90m"), Ok(5_400));
        assert_eq!(parse_report_window("25h"), Ok(90_000));
        assert_eq!(parse_report_window("1d"), Ok(86_400));
        assert_eq!(parse_report_window("400d"), Ok(400 * 86_400));
        assert!(parse_report_window("401d")
            .unwrap_err()
            .contains("from 1s to 400d"));
        assert!(parse_report_window("9601h").is_err());
        assert!(parse_report_window("1w")
            .unwrap_err()
            .contains("s, m, h or d"));
        assert!(parse_window("1d").is_err());
    }
}
