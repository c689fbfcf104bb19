//! The REST API of ELB objects, merged into the master's HTTP server:
//!
//! | method | path              | what                                        |
//! |--------|-------------------|---------------------------------------------|
//! | POST   | /v1/elbs          | create (JSON or YAML body)                  |
//! | GET    | /v1/elbs          | list                                        |
//! | GET    | /v1/elbs/{name}   | one, with each VS and its real servers      |
//! | DELETE | /v1/elbs/{name}   | delete                                      |
//!
//! Errors are JSON `{"error", "code", "errors": [{"field", "reason"}]}` as
//! the rest of the API answers them.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::backends::JobTasks;
use crate::spec::parse;
use crate::status::status;
use crate::store::{Store, StoreError};

/// The routes over a client of the masters (the in-process one on a
/// master).
pub fn router(client: Arc<dyn ocean_client::Client>) -> Router {
    Router::new()
        .route("/v1/elbs", get(list).post(create))
        .route("/v1/elbs/{name}", get(show).delete(remove))
        .with_state(Store::new(client))
}

struct ApiError(StoreError);

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, errors) = match &self.0 {
            StoreError::Invalid(inv) => (
                StatusCode::BAD_REQUEST,
                "invalid_elb",
                inv.errors
                    .iter()
                    .map(|f| json!({"field": f.field, "reason": f.reason}))
                    .collect(),
            ),
            StoreError::Exists(_) => (
                StatusCode::CONFLICT,
                "exists",
                vec![json!({"field": "name", "reason": self.0.to_string()})],
            ),
            StoreError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", Vec::new()),
            StoreError::Client(ocean_client::Error::Unavailable(_)) => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable", Vec::new())
            }
            StoreError::Client(ocean_client::Error::VersionConflict { .. }) => {
                (StatusCode::CONFLICT, "version_conflict", Vec::new())
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal", Vec::new()),
        };
        let mut body = json!({"error": self.0.to_string(), "code": code});
        if !errors.is_empty() {
            body["errors"] = serde_json::Value::Array(errors);
        }
        (status, Json(body)).into_response()
    }
}

async fn create(State(store): State<Store>, body: Bytes) -> Result<Response, ApiError> {
    let spec = parse(&body).map_err(StoreError::from)?;
    let version = store.create(&spec).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"elb": spec, "version": version})),
    )
        .into_response())
}

async fn list(State(store): State<Store>) -> Result<Json<serde_json::Value>, ApiError> {
    let elbs: Vec<_> = store
        .list()
        .await?
        .into_iter()
        .map(|(spec, revision)| json!({"elb": spec, "revision": revision}))
        .collect();
    Ok(Json(json!({"elbs": elbs})))
}

async fn show(
    State(store): State<Store>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (spec, revision) = store.get(&name).await?;
    let mut tasks = BTreeMap::new();
    for l in &spec.listeners {
        if !tasks.contains_key(&l.backend_job) {
            let checked = store.has_health_checks(&l.backend_job).await?;
            tasks.insert(
                l.backend_job.clone(),
                (store.tasks(&l.backend_job).await?, checked),
            );
        }
    }
    let vss = status(&spec, &|job| match tasks.get(job) {
        Some((tasks, checked)) => JobTasks {
            tasks: tasks.iter().collect(),
            checked: *checked,
        },
        None => JobTasks::default(),
    });
    Ok(Json(
        json!({"elb": spec, "revision": revision, "virtual_servers": vss}),
    ))
}

async fn remove(
    State(store): State<Store>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let version = store.delete(&name).await?;
    Ok(Json(json!({"deleted": name, "version": version})))
}
