//! `/ui/caches`: the Redis framework's caches, per product line (instances,
//! memory, owning jobs, creation time, state, running count) with a create
//! form, and `/ui/caches/{id}`: one cache's shards, roles, hosts, memory and
//! replication offsets, with its actions (scale, fail over a shard, rebuild
//! a replica, delete). Reads come from the master's state (the framework's
//! `redis` keys, as `GET /v1/caches` reads them); writes go through the same
//! functions as the REST API, so a form is refused exactly as the API
//! would refuse it, with the reason beside the field.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Form};
use ocean_master::Master;
use ocean_redis::api::{self as caches_api, Api, ApiError};
use ocean_redis::framework::{CACHES, NAME, STATUSES};
use ocean_redis::{CacheRecord, CacheSpec, CacheStatus, NodeStatus, Persistence};
use serde::Deserialize;

use super::framework_forms::{client, done, number, optional_number, refused, utc};
use super::{path_segment, Done, Frame, Seen};
use crate::csrf::{check, CsrfToken};
use crate::error::{render, Result};
use crate::forms::FieldErrors;
use crate::state::CacheBackups;

/// The notices after a form (`?done=`).
const NOTICES: &[(&str, &str)] = &[
    (
        "created",
        "Cache created: the framework is starting its instances.",
    ),
    (
        "scaled",
        "Replicas changed: instances are being added or removed.",
    ),
    ("deleted", "Cache deleted: its instances are being stopped."),
    (
        "failover",
        "Failover done: the replica serves the shard's slots.",
    ),
    (
        "rebuild",
        "Rebuild started: the replica's data was dropped; it resyncs from its primary.",
    ),
    (
        "backup",
        "Backup taken: an RDB snapshot of every shard from a synced replica, checked and listed in its manifest.",
    ),
];

/// One cache in the list.
#[derive(Debug, Clone)]
pub struct CacheRow {
    pub name: String,
    pub product_line: String,
    pub shards: u32,
    pub replicas: u32,
    pub instances: u64,
    pub memory_mb: u64,
    pub total_memory_mb: u64,
    pub owner_job: String,
    pub created: String,
    pub state: String,
    pub running: u32,
    pub persistence: &'static str,
}

/// The caches of one product line.
#[derive(Debug, Clone)]
pub struct Group {
    pub product_line: String,
    pub rows: Vec<CacheRow>,
}

/// The create form as submitted (shown again beside its errors).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub product_line: String,
    #[serde(default)]
    pub shards: String,
    #[serde(default)]
    pub replicas: String,
    #[serde(default)]
    pub memory_mb: String,
    #[serde(default)]
    pub persistence: String,
}

#[derive(Template)]
#[template(path = "caches.html")]
struct ListPage {
    frame: Frame,
    groups: Vec<Group>,
    total: usize,
    notice: Option<&'static str>,
    form: CreateForm,
    errors: FieldErrors,
}

#[derive(Template)]
#[template(path = "cache.html")]
struct DetailPage {
    frame: Frame,
    row: CacheRow,
    status: Option<CacheStatus>,
    shards: Vec<ShardView>,
    /// Its backups on this master, newest first.
    backups: Vec<BackupView>,
    notice: Option<&'static str>,
    /// A refused action: what it was and why.
    error: Option<String>,
    errors: FieldErrors,
}

/// One backup on the detail page.
#[derive(Debug, Clone)]
pub struct BackupView {
    pub id: String,
    pub created: String,
    pub shards: usize,
    pub keys: u64,
}

/// One shard of the detail page.
#[derive(Debug, Clone)]
pub struct ShardView {
    pub index: u32,
    pub nodes: Vec<NodeStatus>,
}

impl DetailPage {
    fn task_href(id: &str) -> String {
        format!("/ui/tasks/{}", path_segment(id))
    }
    fn mib(bytes: &u64) -> String {
        format!("{:.1}", *bytes as f64 / (1024.0 * 1024.0))
    }
    fn short(id: &str) -> &str {
        &id[..id.len().min(10)]
    }
}

impl ListPage {
    fn href(name: &str) -> String {
        format!("/ui/caches/{}", path_segment(name))
    }
    fn is(a: &str, b: &str) -> bool {
        a == b
    }
}

fn persistence(p: Persistence) -> &'static str {
    match p {
        Persistence::Off => "off",
        Persistence::Rdb => "rdb",
        Persistence::Aof => "aof",
    }
}

fn row(rec: &CacheRecord, st: Option<&CacheStatus>) -> CacheRow {
    CacheRow {
        name: rec.spec.name.clone(),
        product_line: rec.spec.product_line.clone(),
        shards: rec.spec.shards,
        replicas: rec.spec.replicas,
        instances: rec.spec.instances(),
        memory_mb: rec.spec.memory_mb,
        total_memory_mb: rec.spec.instances() * rec.spec.memory_mb,
        owner_job: caches_api::owner_jobs(&rec.spec),
        created: utc(rec.created_ms),
        state: caches_api::state_of(st).to_string(),
        running: st.map_or(0, |st| st.running),
        persistence: persistence(rec.spec.persistence),
    }
}

/// Every cache and status as this master holds them, and the state
/// version read.
async fn read_all(
    m: &Master,
    seen: &Seen,
) -> Result<(Vec<CacheRecord>, BTreeMap<String, CacheStatus>, u64)> {
    let svc = m.service();
    let recs = svc.kv_list(NAME, CACHES, seen.options()).await?;
    let sts = svc.kv_list(NAME, STATUSES, seen.options()).await?;
    let parsed = recs
        .keys
        .iter()
        .filter_map(|k| serde_json::from_value(k.value.clone()?).ok())
        .collect();
    let statuses = sts
        .keys
        .iter()
        .filter_map(|k| {
            let st = serde_json::from_value(k.value.clone()?).ok()?;
            Some((k.key[STATUSES.len()..].to_string(), st))
        })
        .collect();
    Ok((parsed, statuses, recs.version.min(sts.version)))
}

fn api(m: &Master, backups: &CacheBackups) -> Api {
    Api::new(client(m)).with_backups(backups.0.as_ref().clone())
}

async fn list_page(
    m: &Master,
    csrf: &CsrfToken,
    q: &Done,
    form: CreateForm,
    errors: FieldErrors,
) -> Result<Html<String>> {
    let (recs, statuses, version) = read_all(m, &q.seen()).await?;
    let mut groups: BTreeMap<String, Vec<CacheRow>> = BTreeMap::new();
    for rec in &recs {
        groups
            .entry(rec.spec.product_line.clone())
            .or_default()
            .push(row(rec, statuses.get(&rec.spec.name)));
    }
    let page = ListPage {
        frame: Frame::new(m, "caches", version, &q.seen()).with_csrf(csrf),
        total: recs.len(),
        groups: groups
            .into_iter()
            .map(|(product_line, rows)| Group { product_line, rows })
            .collect(),
        notice: q.notice(NOTICES),
        form,
        errors,
    };
    render("caches", &page)
}

/// `GET /ui/caches`.
pub async fn page(
    State(m): State<Master>,
    Extension(csrf): Extension<CsrfToken>,
    Query(q): Query<Done>,
) -> Result<Html<String>> {
    let form = CreateForm {
        shards: "3".into(),
        replicas: "1".into(),
        memory_mb: "256".into(),
        persistence: "off".into(),
        ..Default::default()
    };
    list_page(&m, &csrf, &q, form, FieldErrors::none()).await
}

/// `POST /ui/caches`: the create form.
pub async fn create(
    State(m): State<Master>,
    Extension(csrf): Extension<CsrfToken>,
    Form(f): Form<CreateForm>,
) -> Result<Response> {
    check(&csrf, &f.csrf)?;
    let mut errors = FieldErrors::none();
    let shards = number::<u32>(&mut errors, "shards", &f.shards);
    let replicas = number::<u32>(&mut errors, "replicas", &f.replicas);
    let memory = number::<u64>(&mut errors, "memory_mb", &f.memory_mb);
    let persistence = match f.persistence.as_str() {
        "off" => Some(Persistence::Off),
        "rdb" => Some(Persistence::Rdb),
        "aof" => Some(Persistence::Aof),
        other => {
            errors.add("persistence", format!("'{other}' is not off, rdb or aof"));
            None
        }
    };
    let (Some(shards), Some(replicas), Some(memory_mb), Some(persistence)) =
        (shards, replicas, memory, persistence)
    else {
        return bad_form(&m, &csrf, f, errors, StatusCode::BAD_REQUEST).await;
    };
    let spec = CacheSpec {
        name: f.name.trim().to_string(),
        product_line: f.product_line.trim().to_string(),
        shards,
        replicas,
        memory_mb,
        persistence,
    };
    match caches_api::create_cache(&client(&m), spec).await {
        Ok(rec) => {
            tracing::info!(cache = %rec.spec.name, "cache created from the dashboard");
            Ok(done(
                &format!("/ui/caches/{}", path_segment(&rec.spec.name)),
                "created",
            )
            .into_response())
        }
        Err(e) => {
            let status = e.status();
            bad_form(&m, &csrf, f, refused(&e), status).await
        }
    }
}

async fn bad_form(
    m: &Master,
    csrf: &CsrfToken,
    f: CreateForm,
    errors: FieldErrors,
    status: StatusCode,
) -> Result<Response> {
    let page = list_page(m, csrf, &Done::default(), f, errors).await?;
    Ok((status, page).into_response())
}

async fn detail_page(
    m: &Master,
    backups: &CacheBackups,
    csrf: &CsrfToken,
    id: &str,
    q: &Done,
    refusal: Option<Refusal>,
) -> Result<(StatusCode, Html<String>)> {
    let (recs, statuses, version) = read_all(m, &q.seen()).await?;
    let Some(rec) = recs.iter().find(|r| r.spec.name == id) else {
        return Err(ocean_master::Error::NotFound {
            kind: "cache",
            id: id.to_string(),
        }
        .into());
    };
    let st = statuses.get(id).cloned();
    let shards = (0..rec.spec.shards)
        .map(|index| ShardView {
            index,
            nodes: st
                .iter()
                .flat_map(|s| s.nodes.iter())
                .filter(|n| n.shard == index)
                .cloned()
                .collect(),
        })
        .collect();
    let backups = ocean_redis::backup::list(&backups.0, id)
        .into_iter()
        .rev()
        .map(|b| BackupView {
            created: utc(b.created_ms),
            shards: b.shards.len(),
            keys: b.keys,
            id: b.id,
        })
        .collect();
    let page = DetailPage {
        frame: Frame::new(m, "caches", version, &q.seen()).with_csrf(csrf),
        row: row(rec, st.as_ref()),
        status: st,
        shards,
        backups,
        notice: q.notice(NOTICES),
        error: refusal.as_ref().map(|r| r.message.clone()),
        errors: refusal
            .as_ref()
            .map_or_else(FieldErrors::none, |r| r.errors.clone()),
    };
    let code = refusal.map_or(StatusCode::OK, |r| r.status);
    Ok((code, render("cache", &page)?))
}

/// An action the detail page shows as refused.
struct Refusal {
    message: String,
    errors: FieldErrors,
    status: StatusCode,
}

impl Refusal {
    fn api(e: &ApiError, action: &str) -> Self {
        Refusal {
            message: format!("{action} refused: {}", e.message()),
            errors: refused(e),
            status: e.status(),
        }
    }

    fn form(errors: FieldErrors, action: &str) -> Self {
        let why = errors
            .fields()
            .map(|f| format!("{f}: {}", errors.get(f).unwrap_or_default()))
            .collect::<Vec<_>>()
            .join("; ");
        Refusal {
            message: format!("{action} refused: {why}"),
            errors,
            status: StatusCode::BAD_REQUEST,
        }
    }
}

/// `GET /ui/caches/{id}`.
pub async fn detail(
    State(m): State<Master>,
    State(backups): State<CacheBackups>,
    Extension(csrf): Extension<CsrfToken>,
    Path(id): Path<String>,
    Query(q): Query<Done>,
) -> Result<(StatusCode, Html<String>)> {
    detail_page(&m, &backups, &csrf, &id, &q, None).await
}

/// Every action form: the token, the confirmation box, and what it acts on.
#[derive(Debug, Default, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub confirm: String,
    #[serde(default)]
    pub replicas: String,
    /// The scale form's new shard count (empty: unchanged).
    #[serde(default)]
    pub shards: String,
    #[serde(default)]
    pub shard: String,
    #[serde(default)]
    pub task: String,
}

/// `POST /ui/caches/{id}/{action}`: scale, failover, rebuild, delete.
pub async fn action(
    State(m): State<Master>,
    State(backups): State<CacheBackups>,
    Extension(csrf): Extension<CsrfToken>,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<ActionForm>,
) -> Result<Response> {
    check(&csrf, &f.csrf)?;
    let here = format!("/ui/caches/{}", path_segment(&id));
    let api = api(&m, &backups);
    let mut errors = FieldErrors::none();
    // Scaling and backing up lose nothing: no confirmation box.
    if action != "scale" && action != "backup" && f.confirm != "yes" {
        errors.add("confirm", "tick the box to confirm");
    }
    let outcome = match action.as_str() {
        "scale" => match (
            number::<u32>(&mut errors, "replicas", &f.replicas),
            optional_number(&mut errors, "shards", &f.shards),
        ) {
            (Some(replicas), shards) if errors.is_empty() => {
                let s = caches_api::Scale {
                    replicas: Some(replicas),
                    shards,
                };
                Some(
                    caches_api::scale(&api.client, &id, s)
                        .await
                        .map(|_| "scaled"),
                )
            }
            _ => None,
        },
        "failover" => match number::<u32>(&mut errors, "shard", &f.shard) {
            Some(shard) if errors.is_empty() => {
                let req = caches_api::Failover {
                    shard,
                    task: Some(f.task.clone()).filter(|t| !t.is_empty()),
                };
                Some(
                    caches_api::failover(&api, &id, req)
                        .await
                        .map(|_| "failover"),
                )
            }
            _ => None,
        },
        "backup" => Some(caches_api::backup(&api, &id).await.map(|_| "backup")),
        "rebuild" if errors.is_empty() => {
            let req = caches_api::Rebuild {
                task: f.task.clone(),
            };
            Some(caches_api::rebuild(&api, &id, req).await.map(|_| "rebuild"))
        }
        "delete" if errors.is_empty() => {
            return match caches_api::delete(&api.client, &id).await {
                Ok(_) => {
                    tracing::info!(cache = %id, "cache deleted from the dashboard");
                    Ok(done("/ui/caches", "deleted").into_response())
                }
                Err(e) => Ok(detail_page(
                    &m,
                    &backups,
                    &csrf,
                    &id,
                    &Done::default(),
                    Some(Refusal::api(&e, "delete")),
                )
                .await?
                .into_response()),
            };
        }
        "rebuild" | "delete" => None,
        other => {
            return Err(ocean_master::Error::NotFound {
                kind: "cache action",
                id: other.to_string(),
            }
            .into())
        }
    };
    match outcome {
        Some(Ok(what)) => {
            tracing::info!(cache = %id, action = %action, "cache action from the dashboard");
            Ok(done(&here, what).into_response())
        }
        Some(Err(e)) => Ok(detail_page(
            &m,
            &backups,
            &csrf,
            &id,
            &Done::default(),
            Some(Refusal::api(&e, &action)),
        )
        .await?
        .into_response()),
        // The form's own errors (a box not ticked, not a number).
        None => Ok(detail_page(
            &m,
            &backups,
            &csrf,
            &id,
            &Done::default(),
            Some(Refusal::form(errors, &action)),
        )
        .await?
        .into_response()),
    }
}
