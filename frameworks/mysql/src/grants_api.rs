//! The REST side of automatic grants ([`crate::grants`]):
//!
//! ```text
//!  GET /v1/databases/{id}/grants               allowed jobs, each with its user and granted hosts
//!  PUT /v1/databases/{id}/grants               {"allowed_jobs": [...]}: the new list (CAS on the record)
//!  GET /v1/databases/{id}/credentials?job=J    J's user, password, schema and the primary's DNS name
//! ```
//!
//! How a job learns its credentials: it (or its deploy tooling) asks
//! `credentials` with a token that may read the job: the route reads the
//! job through the caller's own client, so the masters' access control
//! decides (`403` without read right on the job's service-tree node);
//! only then does it read the database's record, as the framework (a
//! token scoped to the job's node may not read the cluster-wide mysql
//! keys itself).
//! Passwords are never logged and never in the database's detail.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use ocean_client::api::{JobRef, KvPutRequest};
use ocean_client::{Client, Error};
use ocean_framework::{ApiError, ApiResult};
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::info;

use crate::api::{record, status_of};
use crate::framework::{DATABASES, NAME};
use crate::grants::credentials_for;
use crate::jobs::{primary_dns_name, APP_SCHEMA};
use crate::spec::validate_allowed_jobs;

/// The body of `PUT .../grants`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// The jobs allowed from now on (replaces the list).
    pub allowed_jobs: Vec<String>,
}

/// What `GET .../grants` answers for database `id`: each allowed job with
/// its user and the hosts its user is granted on as the operator last saw.
pub async fn grants_of(c: &Arc<dyn Client>, id: &str) -> ApiResult<Value> {
    let (rec, _) = record(c, id).await?;
    let st = status_of(c, id).await;
    let seen = st.map(|s| s.grants).unwrap_or_default();
    let jobs: Vec<Value> = rec
        .spec
        .allowed_jobs
        .iter()
        .map(|job| {
            let user = rec.secrets.jobs.get(job).map(|c| c.user.clone());
            let hosts = seen
                .iter()
                .find(|g| &g.job == job)
                .map(|g| g.hosts.clone())
                .unwrap_or_default();
            json!({"job": job, "user": user, "hosts": hosts})
        })
        .collect();
    Ok(json!({"database": id, "allowed_jobs": rec.spec.allowed_jobs, "grants": jobs}))
}

/// `GET /v1/databases/{id}/grants`.
pub async fn show(
    State(c): State<Arc<dyn Client>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(grants_of(&c, &id).await?))
}

/// Replaces the jobs allowed to use database `id`: validated, credentials
/// made for the new ones and dropped for the removed ones, stored with
/// compare-and-set on the record read. The operator then creates and
/// drops the accounts.
pub async fn set_allowed_jobs(c: &Arc<dyn Client>, id: &str, g: Grants) -> ApiResult<Value> {
    validate_allowed_jobs(&g.allowed_jobs)?;
    let (mut rec, revision) = record(c, id).await?;
    rec.secrets = credentials_for(&g.allowed_jobs, &rec.secrets);
    rec.spec.allowed_jobs = g.allowed_jobs;
    c.kv_put(KvPutRequest {
        namespace: NAME.into(),
        key: format!("{DATABASES}{id}"),
        value: serde_json::to_vec(&rec).unwrap_or_default(),
        expected_revision: Some(revision),
    })
    .await
    .map_err(|e| match e {
        Error::VersionConflict { .. } => ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "id",
            format!("database '{id}' changed meanwhile; read it and try again"),
        ),
        e => e.into(),
    })?;
    info!(database = %id, allowed = rec.spec.allowed_jobs.len(), "allowed jobs changed");
    grants_of(c, id).await
}

/// `PUT /v1/databases/{id}/grants`.
pub async fn put(
    State(c): State<Arc<dyn Client>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let g: Grants =
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid("body", e.to_string()))?;
    Ok(Json(set_allowed_jobs(&c, &id, g).await?))
}

/// The query of `GET .../credentials`.
#[derive(Debug, Deserialize)]
pub struct CredentialsQuery {
    /// The job asking.
    pub job: Option<String>,
}

/// `GET /v1/databases/{id}/credentials?job=J`: J must be allowed, exist,
/// and be readable by the caller (the masters decide, through the
/// caller's client).
pub async fn credentials(
    State(c): State<Arc<dyn Client>>,
    Path(id): Path<String>,
    Query(q): Query<CredentialsQuery>,
) -> ApiResult<Json<Value>> {
    let Some(job) = q.job.filter(|j| !j.is_empty()) else {
        return Err(ApiError::invalid(
            "job",
            "required: the id of an allowed job",
        ));
    };
    // The caller's right: reading the job, through the caller's own
    // client (the masters' access control, with its token).
    c.get_job(JobRef {
        id: job.clone(),
        ..Default::default()
    })
    .await
    .map_err(|e| job_error(&job, e))?;
    // The record then, as the framework: a token scoped to the job's node
    // may not read the mysql keys (cluster-wide), and the right checked
    // above is the one this route grants on. A spawned task runs outside
    // the request's caller scope, so the masters see the system caller
    // (ARCHITECTURE.md, "Access control").
    let (rec, _) = {
        let (c, db) = (c.clone(), id.clone());
        tokio::spawn(async move { record(&c, &db).await })
            .await
            .map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "id",
                    format!("reading database '{id}' failed: {e}"),
                )
            })??
    };
    let cred = rec
        .spec
        .allowed_jobs
        .contains(&job)
        .then(|| rec.secrets.jobs.get(&job))
        .flatten()
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "job",
                format!("job '{job}' is not allowed to use database '{id}'"),
            )
        })?;
    Ok(Json(json!({
        "database": id,
        "job": job,
        "user": cred.user,
        "password": cred.password,
        "schema": APP_SCHEMA,
        "primary_dns": primary_dns_name(&rec.spec),
    })))
}

/// The masters' answer to reading `job` as the caller, naming the field.
fn job_error(job: &str, e: Error) -> ApiError {
    let denied = |status, code| {
        ApiError::new(
            status,
            code,
            "job",
            format!("may not read job '{job}': {e}"),
        )
    };
    match &e {
        Error::NotFound(_) => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "job",
            format!("no job '{job}'"),
        ),
        Error::Other { code, .. } if *code == tonic::Code::PermissionDenied => {
            denied(StatusCode::FORBIDDEN, "forbidden")
        }
        Error::Other { code, .. } if *code == tonic::Code::Unauthenticated => {
            denied(StatusCode::UNAUTHORIZED, "unauthenticated")
        }
        _ => e.into(),
    }
}
