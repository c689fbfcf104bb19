//! REST for operators' agent maintenance: set an agent's status, drain it.
//!
//! | method and path                 | what                                               |
//! |---------------------------------|----------------------------------------------------|
//! | `POST /v1/agents/{id}/status`   | `{"status": "online\|draining\|offline\|problem", "message": "..."}` |
//! | `POST /v1/agents/{id}/drain`    | status `draining` (`{"message": "..."}` optional)  |
//!
//! Only `online` agents receive new tasks; the tasks of `draining` and
//! `offline` agents are moved elsewhere, each replacement running before
//! the task it replaces is stopped (`reconcile::drain`).

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde::Deserialize;

use super::error::ApiError;
use super::http::with_version;
use crate::master::Master;
use crate::service::views::AgentStatusChange;

type ApiResult<T> = std::result::Result<T, ApiError>;

/// The agent maintenance routes, merged into the REST router.
pub fn routes() -> Router<Master> {
    Router::new()
        .route("/v1/agents/{id}/status", post(set_status))
        .route("/v1/agents/{id}/drain", post(drain))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct StatusBody {
    #[schema(pattern = "^(online|draining|offline|problem)$")]
    status: String,
    #[serde(default)]
    #[schema(max_length = 1024)]
    message: String,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DrainBody {
    #[serde(default)]
    #[schema(max_length = 1024)]
    message: String,
}

/// Parses a JSON body, naming the field a problem is in.
fn body<T: serde::de::DeserializeOwned>(bytes: &[u8], shape: &str) -> ApiResult<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        let text = e.to_string();
        let field = ["status", "message"]
            .into_iter()
            .find(|f| text.contains(&format!("`{f}`")))
            .unwrap_or("body");
        ApiError::unprocessable(field, format!("expected {shape}: {text}"))
    })
}

/// Sets an agent's operator status.
#[utoipa::path(post, path = "/v1/agents/{id}/status", tag = "agents",
    params(("id" = String, Path, description = "agent id")), request_body = StatusBody,
    responses((status = 200, body = AgentStatusChange)))]
async fn set_status(
    State(m): State<Master>,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult<Response> {
    let b: StatusBody = body(&bytes, r#"{"status": "...", "message": "..."}"#)?;
    apply(&m, id, b.status, b.message).await
}

/// Drains an agent: its tasks move elsewhere.
#[utoipa::path(post, path = "/v1/agents/{id}/drain", tag = "agents",
    params(("id" = String, Path, description = "agent id")),
    request_body(content = Option<DrainBody>, description = "optional"),
    responses((status = 200, body = AgentStatusChange)))]
async fn drain(
    State(m): State<Master>,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult<Response> {
    let b: DrainBody = if super::extract::is_empty_body(&bytes) {
        DrainBody::default()
    } else {
        body(&bytes, r#"{"message": "..."} or nothing"#)?
    };
    apply(&m, id, "draining".into(), b.message).await
}

async fn apply(m: &Master, id: String, status: String, message: String) -> ApiResult<Response> {
    // A bad status or message is a well-formed request with a bad value:
    // 422, as this route has always answered.
    let r = m
        .service()
        .set_agent_status(&id, &status, &message)
        .await
        .map_err(|e| match e {
            crate::error::Error::Invalid { field, reason } => {
                ApiError::unprocessable(&field, reason)
            }
            e => e.into(),
        })?;
    Ok(with_version(
        r.version,
        AgentStatusChange {
            id,
            status,
            version: r.version,
            outcome: r.outcome,
        },
    ))
}
