//! The tickets' REST API, built on any [`Client`] (the master mounts it
//! with its in-process client beside its own routes):
//!
//! ```text
//!  GET  /v1/tickets[?host=&node=&state=&open=]   newest first
//!  GET  /v1/tickets/{id}                         one ticket, every transition and action
//!  POST /v1/tickets/{id}/close                   {"message": "why"}: a person closes it
//!  GET  /v1/healing                              the storm alert and the settings in force
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use ocean_client::api::{KvKeyRequest, KvListRequest, KvPutRequest};
use ocean_client::{Client, Error};
use ocean_framework::{ApiError, ApiResult};
use serde_json::{json, Value};

use crate::config::HealingConfig;
use crate::operator::{Alert, ALERT_KEY, CONFIG_KEY};
use crate::ticket::{Ticket, TICKETS};
use crate::NAME;

/// The routes, over `client`.
pub fn router(client: Arc<dyn Client>) -> Router {
    Router::new()
        .route("/v1/tickets", get(list))
        .route("/v1/tickets/{id}", get(show))
        .route("/v1/tickets/{id}/close", post(close))
        .route("/v1/healing", get(status))
        .with_state(client)
}

/// The filters of a ticket list.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Filter {
    pub host: Option<String>,
    pub node: Option<String>,
    pub state: Option<String>,
    pub open: Option<bool>,
}

const STATES: [&str; 6] = [
    "online",
    "suspect",
    "problem",
    "draining",
    "repairing",
    "offline",
];

/// Reads the query, naming a parameter that is unknown or wrong.
pub fn filter(q: &HashMap<String, String>) -> ApiResult<Filter> {
    let mut f = Filter::default();
    for (k, v) in q {
        match k.as_str() {
            "host" => f.host = Some(v.clone()),
            "node" => f.node = Some(v.clone()),
            "state" if STATES.contains(&v.as_str()) => f.state = Some(v.clone()),
            "state" => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "state",
                    format!("'{v}' is not one of {}", STATES.join(", ")),
                ))
            }
            "open" => {
                f.open = Some(v.parse().map_err(|_| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        "open",
                        format!("'{v}' is not true or false"),
                    )
                })?)
            }
            other => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    other,
                    "unknown parameter; expected host, node, state or open",
                ))
            }
        }
    }
    Ok(f)
}

impl Filter {
    /// Whether `t` passes. `host` matches the agent id or the host name.
    pub fn keeps(&self, t: &Ticket) -> bool {
        self.host
            .as_ref()
            .is_none_or(|h| *h == t.host || *h == t.hostname)
            && self.node.as_ref().is_none_or(|n| *n == t.node)
            && self.state.as_ref().is_none_or(|s| s == t.state.as_str())
            && self.open.is_none_or(|o| o == t.is_open())
    }
}

async fn all(c: &dyn Client) -> ApiResult<Vec<(Ticket, u64)>> {
    let list = c
        .kv_list(KvListRequest {
            namespace: NAME.into(),
            prefix: TICKETS.into(),
            read: None,
        })
        .await?;
    Ok(list
        .entries
        .into_iter()
        .filter_map(|e| {
            serde_json::from_slice::<Ticket>(&e.value)
                .ok()
                .map(|t| (t, e.revision))
        })
        .collect())
}

async fn list(
    State(c): State<Arc<dyn Client>>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let f = filter(&q)?;
    let mut tickets: Vec<Ticket> = all(c.as_ref())
        .await?
        .into_iter()
        .map(|(t, _)| t)
        .filter(|t| f.keeps(t))
        .collect();
    tickets.sort_by(|a, b| b.opened_ms.cmp(&a.opened_ms).then(a.id.cmp(&b.id)));
    Ok(Json(json!({ "tickets": tickets })))
}

async fn one(c: &dyn Client, id: &str) -> ApiResult<(Ticket, u64)> {
    let e = c
        .kv_get(KvKeyRequest {
            namespace: NAME.into(),
            key: format!("{TICKETS}{id}"),
            ..Default::default()
        })
        .await
        .map_err(|e| match e {
            Error::NotFound(_) => ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "id",
                format!("no ticket '{id}'"),
            ),
            e => e.into(),
        })?;
    let t = serde_json::from_slice::<Ticket>(&e.value).map_err(|err| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "id",
            format!("ticket '{id}' is unreadable: {err}"),
        )
    })?;
    Ok((t, e.revision))
}

async fn show(State(c): State<Arc<dyn Client>>, Path(id): Path<String>) -> ApiResult<Json<Ticket>> {
    Ok(Json(one(c.as_ref(), &id).await?.0))
}

async fn close(
    State(c): State<Arc<dyn Client>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Ticket>> {
    let message = if body.iter().all(u8::is_ascii_whitespace) {
        String::new()
    } else {
        let v: Value = serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "body",
                e.to_string(),
            )
        })?;
        match v.get("message") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) if s.len() <= 1024 => s.clone(),
            Some(Value::String(_)) => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_request",
                    "message",
                    "at most 1024 bytes",
                ))
            }
            Some(_) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "message",
                    "a string",
                ))
            }
        }
    };
    let (mut t, rev) = one(c.as_ref(), &id).await?;
    if !t.is_open() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "id",
            format!("ticket '{id}' is already closed"),
        ));
    }
    let now = ocean_framework::runner::now_ms();
    let reason = if message.is_empty() {
        "closed by a person".to_string()
    } else {
        format!("closed by a person: {message}")
    };
    t.act("close", now, reason.clone());
    t.close(now, reason);
    c.kv_put(KvPutRequest {
        namespace: NAME.into(),
        key: t.key(),
        value: serde_json::to_vec(&t).unwrap_or_default(),
        expected_revision: Some(rev),
    })
    .await?;
    Ok(Json(t))
}

async fn status(State(c): State<Arc<dyn Client>>) -> ApiResult<Json<Value>> {
    let get = |key: &str| {
        c.kv_get(KvKeyRequest {
            namespace: NAME.into(),
            key: key.into(),
            ..Default::default()
        })
    };
    let alert = match get(ALERT_KEY).await {
        Ok(e) => serde_json::from_slice::<Alert>(&e.value).ok(),
        Err(Error::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let (config, config_error) = match get(CONFIG_KEY).await {
        Ok(e) => match HealingConfig::parse(&e.value) {
            Ok(cfg) => (Some(cfg), None),
            Err(err) => (None, Some(err.to_string())),
        },
        Err(Error::NotFound(_)) => (Some(HealingConfig::default()), None),
        Err(e) => return Err(e.into()),
    };
    let tickets = all(c.as_ref()).await?;
    let open = tickets.iter().filter(|(t, _)| t.is_open()).count();
    Ok(Json(json!({
        "alert": alert,
        "config": config,
        "config_error": config_error,
        "open_tickets": open,
        "tickets": tickets.len(),
    })))
}
