//! The databases' REST API, built on any [`Client`] (the master mounts it
//! with its in-process client beside its own routes):
//!
//! ```text
//!  POST   /v1/databases                  create (DatabaseSpec JSON) -> 201
//!  GET    /v1/databases[?product_line=]  list with each database's state
//!  GET    /v1/databases/{id}             spec, template, state, topology, DNS name, credentials
//!  DELETE /v1/databases/{id}             delete (the framework removes its job)
//!  POST   /v1/databases/{id}/switchover  {"to"?: task}: planned, lossless; waits for the operator
//!  POST   /v1/databases/{id}/scale       {"instances": n}: the primary is never stopped
//!  POST   /v1/databases/{id}/rebuild     {"task": id}: its data condemned, reseeded from a
//!                                        healthy instance (mariadb-backup stream) -> 202
//!  POST   /v1/databases/{id}/backup      {"dir"?, "offsite_dir"?}: mariadb-backup on a replica,
//!                                        a verified second copy -> 201 (202 still running)
//!  GET    /v1/databases/{id}/backups     its backups
//!  POST   /v1/databases/{id}/restore     {"backup", "name", "until"?, ...}: a new database
//!                                        from it (to a point in time with `until`: a GTID or
//!                                        an RFC 3339 time) -> 201
//!  POST   /v1/databases/{id}/archive     {"dir"?, "retention_days"?}: archive its binlogs
//!                                        continuously (files past the retention go, never
//!                                        one a kept backup needs)
//!  DELETE /v1/databases/{id}/archive     turn the archive off (the files stay)
//!  POST   /v1/databases/{id}/schedule    {"every_hours", "retention_days", ...}: scheduled backups
//!  DELETE /v1/databases/{id}/schedule    turn scheduled backups off
//!  GET    /v1/databases/{id}/grants      the allowed jobs and the hosts each is granted on
//!  PUT    /v1/databases/{id}/grants      {"allowed_jobs": [job id, ...]}: replaces the list
//!  GET    /v1/databases/{id}/credentials?job=  that allowed job's user and password (who
//!                                        may read the job may read them)
//!  GET    /v1/database-templates         the templates
//! ```
//!
//! The dashboard's forms call the same functions as these routes, not
//! HTTP ([`create_database`], [`delete`], [`scale`], and
//! `actions::{switchover, rebuild}`, `backup_api::backup`), so a form is
//! refused exactly as the API refuses the request, naming the same field.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use ocean_client::api::{KvKeyRequest, KvListRequest, KvPutRequest};
use ocean_client::{Client, Error};
pub use ocean_framework::{ApiError, ApiResult};
use rand::Rng;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::actions;
use crate::admin::Secrets;
use crate::archive_api;
use crate::backup_api;
use crate::framework::{DatabaseRecord, DATABASES, NAME, STATUSES, TEMPLATES};
use crate::grants_api;
use crate::jobs::{job_id, primary_dns_name, APP_SCHEMA, APP_USER};
use crate::spec::{self, DatabaseSpec, InvalidDatabase};
use crate::status::DatabaseStatus;
use crate::templates::{builtin, Template};

impl From<InvalidDatabase> for ApiError {
    fn from(e: InvalidDatabase) -> Self {
        ApiError::invalid(e.field, e.reason)
    }
}

/// The routes, over `client`.
pub fn router(client: Arc<dyn Client>) -> Router {
    Router::new()
        .route("/v1/databases", get(list).post(create))
        .route("/v1/databases/{id}", get(show).delete(remove))
        .route("/v1/databases/{id}/backups", get(backups))
        .route(
            "/v1/databases/{id}/grants",
            get(grants_api::show).put(grants_api::put),
        )
        .route(
            "/v1/databases/{id}/credentials",
            get(grants_api::credentials),
        )
        .route(
            "/v1/databases/{id}/{action}",
            post(action).delete(action_off),
        )
        .route("/v1/database-templates", get(templates))
        .with_state(client)
}

fn password() -> String {
    rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
}

/// The stored templates, the built-in ones written first where absent.
pub async fn stored_templates(c: &Arc<dyn Client>) -> Result<Vec<Template>, Error> {
    let req = || KvListRequest {
        namespace: NAME.into(),
        prefix: TEMPLATES.into(),
        read: None,
    };
    let mut entries = c.kv_list(req()).await?.entries;
    let missing: Vec<Template> = builtin()
        .into_iter()
        .filter(|t| {
            !entries
                .iter()
                .any(|e| e.key == format!("{TEMPLATES}{}", t.name))
        })
        .collect();
    if !missing.is_empty() {
        for t in missing {
            let put = c
                .kv_put(KvPutRequest {
                    namespace: NAME.into(),
                    key: format!("{TEMPLATES}{}", t.name),
                    value: serde_json::to_vec(&t).unwrap_or_default(),
                    expected_revision: Some(0),
                })
                .await;
            // Someone (the framework) wrote it first: fine.
            if let Err(e) = put {
                if !matches!(e, Error::VersionConflict { .. }) {
                    return Err(e);
                }
            }
        }
        entries = c.kv_list(req()).await?.entries;
    }
    Ok(entries
        .iter()
        .filter_map(|e| serde_json::from_slice(&e.value).ok())
        .collect())
}

async fn templates(State(c): State<Arc<dyn Client>>) -> ApiResult<Json<Value>> {
    Ok(Json(json!({ "templates": stored_templates(&c).await? })))
}

async fn create(
    State(c): State<Arc<dyn Client>>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let spec = spec::parse(&body)?;
    let rec = create_database(&c, spec).await?;
    Ok((StatusCode::CREATED, Json(detail(&rec, None))))
}

/// Stores a new database (`POST /v1/databases` without the JSON, for the
/// dashboard's form): the spec validated, its template looked up among
/// the stored ones, the secrets made; refusals name their field
/// (`template` unknown, `name` taken: 409).
pub async fn create_database(c: &Arc<dyn Client>, spec: DatabaseSpec) -> ApiResult<DatabaseRecord> {
    spec.validate()?;
    let templates = stored_templates(c).await?;
    let Some(template) = templates.iter().find(|t| t.name == spec.template).cloned() else {
        let names: Vec<&str> = templates.iter().map(|t| t.name.as_str()).collect();
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "template",
            format!(
                "no template '{}'; known: {}",
                spec.template,
                names.join(", ")
            ),
        ));
    };
    let secrets = Secrets {
        admin_password: password(),
        repl_password: password(),
        app_password: password(),
        ..Default::default()
    };
    let rec = DatabaseRecord {
        secrets: crate::grants::credentials_for(&spec.allowed_jobs, &secrets),
        spec,
        template,
        created_ms: ocean_framework::runner::now_ms(),
        restore: None,
    };
    let put = c
        .kv_put(KvPutRequest {
            namespace: NAME.into(),
            key: format!("{DATABASES}{}", rec.spec.name),
            value: serde_json::to_vec(&rec).unwrap_or_default(),
            expected_revision: Some(0),
        })
        .await;
    match put {
        Ok(_) => Ok(rec),
        Err(Error::VersionConflict { .. }) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "name",
            format!("a database named '{}' already exists", rec.spec.name),
        )),
        Err(e) => Err(e.into()),
    }
}

/// A database's record and revision, or a 404 naming it.
pub async fn record(c: &Arc<dyn Client>, id: &str) -> ApiResult<(DatabaseRecord, u64)> {
    let e = c
        .kv_get(KvKeyRequest {
            namespace: NAME.into(),
            key: format!("{DATABASES}{id}"),
            read: None,
            expected_revision: None,
        })
        .await
        .map_err(|e| match e {
            Error::NotFound(_) => ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "id",
                format!("no database '{id}'"),
            ),
            e => e.into(),
        })?;
    let rec = serde_json::from_slice(&e.value).map_err(|err| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "corrupt",
            "id",
            format!("database '{id}' is stored unreadably: {err}"),
        )
    })?;
    Ok((rec, e.revision))
}

/// The status the operator last stored for database `id`, if any.
pub async fn status_of(c: &Arc<dyn Client>, id: &str) -> Option<DatabaseStatus> {
    let e = c
        .kv_get(KvKeyRequest {
            namespace: NAME.into(),
            key: format!("{STATUSES}{id}"),
            read: None,
            expected_revision: None,
        })
        .await
        .ok()?;
    serde_json::from_slice(&e.value).ok()
}

/// A database's state in one word: the status's, `creating` until the
/// operator has observed it.
pub fn state_of(st: Option<&DatabaseStatus>) -> &str {
    st.map_or("creating", |st| st.state.as_str())
}

/// The templates a request may name, from those `stored` without writing:
/// the stored ones, then the built-in ones not stored yet (the first
/// create or `GET /v1/database-templates` stores those).
pub fn known_templates(mut stored: Vec<Template>) -> Vec<Template> {
    for t in builtin() {
        if !stored.iter().any(|s| s.name == t.name) {
            stored.push(t);
        }
    }
    stored
}

/// One row of the list.
pub fn summary(rec: &DatabaseRecord, st: Option<&DatabaseStatus>) -> Value {
    let s = &rec.spec;
    json!({
        "name": s.name,
        "cluster": s.cluster,
        "product_line": s.product_line,
        "department": s.department,
        "full_name": s.full_name,
        "template": s.template,
        "instances": s.instances,
        "job": job_id(s),
        "primary_dns": primary_dns_name(s),
        "created_ms": rec.created_ms,
        "state": state_of(st),
        "running": st.map_or(0, |st| st.running),
    })
}

/// The detail of one database: its summary, template, status and the
/// application's credentials (the API is the masters' own: who may read
/// it may use the database).
pub fn detail(rec: &DatabaseRecord, st: Option<&DatabaseStatus>) -> Value {
    let mut v = summary(rec, st);
    v["template_sizes"] = json!(rec.template);
    v["status"] = json!(st);
    v["allowed_jobs"] = json!(rec.spec.allowed_jobs);
    v["credentials"] = json!({
        "user": APP_USER,
        "password": rec.secrets.app_password,
        "schema": APP_SCHEMA,
    });
    v
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    product_line: Option<String>,
}

async fn list(
    State(c): State<Arc<dyn Client>>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let keys = |prefix: &str| KvListRequest {
        namespace: NAME.into(),
        prefix: prefix.into(),
        read: None,
    };
    let recs: Vec<DatabaseRecord> = c
        .kv_list(keys(DATABASES))
        .await?
        .entries
        .iter()
        .filter_map(|e| serde_json::from_slice(&e.value).ok())
        .collect();
    let statuses: Vec<(String, DatabaseStatus)> = c
        .kv_list(keys(STATUSES))
        .await?
        .entries
        .iter()
        .filter_map(|e| {
            let st = serde_json::from_slice(&e.value).ok()?;
            Some((e.key[STATUSES.len()..].to_string(), st))
        })
        .collect();
    let rows: Vec<Value> = recs
        .iter()
        .filter(|r| {
            q.product_line
                .as_ref()
                .is_none_or(|p| &r.spec.product_line == p)
        })
        .map(|r| {
            let st = statuses
                .iter()
                .find(|(n, _)| *n == r.spec.name)
                .map(|(_, s)| s);
            summary(r, st)
        })
        .collect();
    Ok(Json(json!({ "databases": rows })))
}

async fn show(State(c): State<Arc<dyn Client>>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let (rec, _) = record(&c, &id).await?;
    let st = status_of(&c, &id).await;
    Ok(Json(detail(&rec, st.as_ref())))
}

async fn remove(
    State(c): State<Arc<dyn Client>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(delete(&c, &id).await?))
}

/// Deletes database `id` (`DELETE /v1/databases/{id}`): its record goes,
/// compare-and-set on the revision read; the framework removes its job.
pub async fn delete(c: &Arc<dyn Client>, id: &str) -> ApiResult<Value> {
    let (_, revision) = record(c, id).await?;
    c.kv_delete(KvKeyRequest {
        namespace: NAME.into(),
        key: format!("{DATABASES}{id}"),
        read: None,
        expected_revision: Some(revision),
    })
    .await?;
    Ok(json!({"deleted": id}))
}

/// Resizes database `id` (`POST .../scale`, its record read first).
pub async fn scale(c: &Arc<dyn Client>, id: &str, s: actions::Scale) -> ApiResult<Value> {
    let (rec, revision) = record(c, id).await?;
    actions::scale(c, id, rec, revision, s).await
}

async fn backups(
    State(c): State<Arc<dyn Client>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    record(&c, &id).await?;
    Ok(Json(backup_api::list(&c, &id).await?))
}

/// `DELETE /v1/databases/{id}/{archive,schedule}`: turns it off.
async fn action_off(
    State(c): State<Arc<dyn Client>>,
    Path((id, action)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    record(&c, &id).await?;
    match action.as_str() {
        "archive" => Ok(Json(archive_api::archive_off(&c, &id).await?)),
        "schedule" => Ok(Json(backup_api::schedule_off(&c, &id).await?)),
        other => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "action",
            format!("'{other}' is not one of archive, schedule (what DELETE turns off)"),
        )),
    }
}

fn body<T: serde::de::DeserializeOwned + Default>(bytes: &[u8]) -> ApiResult<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::invalid("body", e.to_string()))
}

async fn action(
    State(c): State<Arc<dyn Client>>,
    Path((id, action)): Path<(String, String)>,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (rec, revision) = record(&c, &id).await?;
    let ok = |v| Ok((StatusCode::OK, Json(v)));
    match action.as_str() {
        "switchover" => {
            ok(actions::switchover(&c, &id, body::<actions::Switchover>(&bytes)?).await?)
        }
        "scale" => {
            let s = actions::Scale::parse(&bytes)?;
            ok(actions::scale(&c, &id, rec, revision, s).await?)
        }
        "rebuild" => Ok((
            StatusCode::ACCEPTED,
            Json(actions::rebuild(&c, &id, body::<actions::Rebuild>(&bytes)?).await?),
        )),
        "backup" => {
            let (status, v) = backup_api::backup(&c, &id, body(&bytes)?).await?;
            Ok((status, Json(v)))
        }
        "archive" => ok(archive_api::archive(&c, &id, body(&bytes)?).await?),
        "schedule" => ok(backup_api::schedule(&c, &id, &bytes).await?),
        "restore" => {
            let new = backup_api::restore(&c, &id, rec, body(&bytes)?).await?;
            Ok((StatusCode::CREATED, Json(detail(&new, None))))
        }
        other => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "action",
            format!("'{other}' is not one of scale, switchover, backup, restore, rebuild, archive, schedule"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_templates_are_the_stored_then_the_builtin_ones_not_stored() {
        let names = |ts: Vec<Template>| ts.into_iter().map(|t| t.name).collect::<Vec<_>>();
        assert_eq!(
            names(known_templates(Vec::new())),
            ["mysql-general", "mysql-large"]
        );
        // A stored template of a built-in name replaces it (a DBA resized it).
        let mut general = builtin().remove(0);
        general.memory_mb *= 2;
        let tiny = Template {
            name: "mysql-tiny".into(),
            ..general.clone()
        };
        let known = known_templates(vec![general.clone(), tiny]);
        assert_eq!(
            names(known.clone()),
            ["mysql-general", "mysql-tiny", "mysql-large"]
        );
        assert_eq!(known[0], general);
    }
}
