//! `/ui/databases`: the mysql framework's databases (RDS) per product line
//! (name, cluster, department, full name, template, instances, running,
//! state, primary, creation time) with the create form. Reads come from
//! the master's state (the framework's `mysql` keys, as `GET /v1/databases`
//! reads them); the form goes through `ocean_mysql::api::create_database`,
//! the function behind `POST /v1/databases`, so it is refused exactly as
//! the API would refuse it, with the reason beside the field it names.
//! One database's page and its actions are in [`super::database`].

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Form};
use ocean_master::Master;
use ocean_mysql::api as db_api;
use ocean_mysql::framework::{DATABASES, NAME, STATUSES, TEMPLATES};
use ocean_mysql::jobs::primary_dns_name;
use ocean_mysql::status::NodeStatus;
use ocean_mysql::{DatabaseRecord, DatabaseSpec, DatabaseStatus};
use serde::Deserialize;

use super::framework_forms::{client, done, number, refused, utc};
use super::{path_segment, Done, Frame, Seen};
use crate::csrf::{check, CsrfToken};
use crate::error::{render, Result};
use crate::forms::FieldErrors;

/// The notices after a form (`?done=`), on this page and the database's.
pub(crate) const NOTICES: &[(&str, &str)] = &[
    (
        "created",
        "Database created: the framework is starting its instances.",
    ),
    (
        "scaled",
        "Instances changed: the framework is adding or stopping instances.",
    ),
    (
        "switchover",
        "Switchover done: the chosen replica is the primary.",
    ),
    (
        "rebuild",
        "Rebuild started: the instance's data was condemned; it is reseeded from a healthy one.",
    ),
    ("backed-up", "Backup done and verified (see Last backup)."),
    (
        "backup-started",
        "Backup started: it was still running after 120 s; Last backup shows how it goes.",
    ),
    (
        "deleted",
        "Database deleted: its instances are being stopped.",
    ),
    (
        "grants",
        "Allowed jobs changed: the operator grants and drops their hosts within a round.",
    ),
];

/// One database in the list (and the facts of its page).
#[derive(Debug, Clone)]
pub struct DatabaseRow {
    pub name: String,
    pub cluster: String,
    pub product_line: String,
    pub department: String,
    pub full_name: String,
    pub template: String,
    pub instances: u32,
    pub running: u32,
    pub state: String,
    /// The primary's task, empty until the operator chose one.
    pub primary: String,
    /// The primary's address as last observed, empty if it does not answer.
    pub primary_addr: String,
    /// `primary.<name>.<pdl>.<cluster>`, relative to the DNS zone.
    pub primary_dns: String,
    pub created: String,
}

/// The databases of one product line.
#[derive(Debug, Clone)]
pub struct Group {
    pub product_line: String,
    pub rows: Vec<DatabaseRow>,
}

/// The create form as submitted (shown again beside its errors).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub cluster: String,
    #[serde(default)]
    pub product_line: String,
    #[serde(default)]
    pub department: String,
    #[serde(default)]
    pub full_name: String,
    #[serde(default)]
    pub template: String,
    #[serde(default)]
    pub instances: String,
}

/// A template the form offers, with its sizes.
#[derive(Debug, Clone)]
pub struct TemplateChoice {
    pub name: String,
    pub label: String,
}

#[derive(Template)]
#[template(path = "databases.html")]
struct ListPage {
    frame: Frame,
    groups: Vec<Group>,
    total: usize,
    notice: Option<&'static str>,
    form: CreateForm,
    templates: Vec<TemplateChoice>,
    errors: FieldErrors,
}

impl ListPage {
    fn href(name: &str) -> String {
        database_href(name)
    }
    fn is(a: &str, b: &str) -> bool {
        a == b
    }
}

/// The page of database `name`.
pub(crate) fn database_href(name: &str) -> String {
    format!("/ui/databases/{}", path_segment(name))
}

/// The primary among `st`'s instances, if one is observed as such.
fn primary_node(st: &DatabaseStatus) -> Option<&NodeStatus> {
    st.nodes
        .iter()
        .find(|n| n.task == st.primary && n.role == "primary")
}

pub(crate) fn row(rec: &DatabaseRecord, st: Option<&DatabaseStatus>) -> DatabaseRow {
    let s = &rec.spec;
    DatabaseRow {
        name: s.name.clone(),
        cluster: s.cluster.clone(),
        product_line: s.product_line.clone(),
        department: s.department.clone(),
        full_name: s.full_name.clone(),
        template: s.template.clone(),
        instances: s.instances,
        running: st.map_or(0, |st| st.running),
        state: db_api::state_of(st).to_string(),
        primary: st.map(|st| st.primary.clone()).unwrap_or_default(),
        primary_addr: st
            .and_then(primary_node)
            .map(|n| n.addr.clone())
            .unwrap_or_default(),
        primary_dns: primary_dns_name(s),
        created: utc(rec.created_ms),
    }
}

/// The values of the `mysql` keys under `prefix` that parse as `T`, by
/// key without the prefix, and the state version read.
pub(crate) async fn read_keys<T: serde::de::DeserializeOwned>(
    m: &Master,
    prefix: &str,
    seen: &Seen,
) -> Result<(Vec<(String, T)>, u64)> {
    let list = m.service().kv_list(NAME, prefix, seen.options()).await?;
    let parsed = list
        .keys
        .iter()
        .filter_map(|k| {
            let v = serde_json::from_value(k.value.clone()?).ok()?;
            Some((k.key[prefix.len()..].to_string(), v))
        })
        .collect();
    Ok((parsed, list.version))
}

/// Every database and status as this master holds them, and the state
/// version read.
pub(crate) async fn read_all(
    m: &Master,
    seen: &Seen,
) -> Result<(Vec<DatabaseRecord>, BTreeMap<String, DatabaseStatus>, u64)> {
    let (recs, v1) = read_keys::<DatabaseRecord>(m, DATABASES, seen).await?;
    let (sts, v2) = read_keys::<DatabaseStatus>(m, STATUSES, seen).await?;
    Ok((
        recs.into_iter().map(|(_, r)| r).collect(),
        sts.into_iter().collect(),
        v1.min(v2),
    ))
}

/// The templates the form offers: the stored ones and the built-in ones
/// not stored yet (the same list `GET /v1/database-templates` answers,
/// read without writing).
async fn templates(m: &Master) -> Result<Vec<TemplateChoice>> {
    let (stored, _) = read_keys::<ocean_mysql::Template>(m, TEMPLATES, &Seen::default()).await?;
    Ok(
        db_api::known_templates(stored.into_iter().map(|(_, t)| t).collect())
            .into_iter()
            .map(|t| TemplateChoice {
                label: format!(
                    "{} ({} MiB memory, {} MiB buffer pool, {} connections, {} MiB disk)",
                    t.name, t.memory_mb, t.buffer_pool_mb, t.max_connections, t.disk_mb
                ),
                name: t.name,
            })
            .collect(),
    )
}

async fn list_page(
    m: &Master,
    csrf: &CsrfToken,
    q: &Done,
    form: CreateForm,
    errors: FieldErrors,
) -> Result<Html<String>> {
    let (recs, statuses, version) = read_all(m, &q.seen()).await?;
    let mut groups: BTreeMap<String, Vec<DatabaseRow>> = BTreeMap::new();
    for rec in &recs {
        groups
            .entry(rec.spec.product_line.clone())
            .or_default()
            .push(row(rec, statuses.get(&rec.spec.name)));
    }
    let page = ListPage {
        frame: Frame::new(m, "databases", version, &q.seen()).with_csrf(csrf),
        total: recs.len(),
        groups: groups
            .into_iter()
            .map(|(product_line, rows)| Group { product_line, rows })
            .collect(),
        notice: q.notice(NOTICES),
        templates: templates(m).await?,
        form,
        errors,
    };
    render("databases", &page)
}

/// `GET /ui/databases`.
pub async fn page(
    State(m): State<Master>,
    Extension(csrf): Extension<CsrfToken>,
    Query(q): Query<Done>,
) -> Result<Html<String>> {
    let form = CreateForm {
        cluster: "staging".into(),
        template: "mysql-general".into(),
        instances: "3".into(),
        ..Default::default()
    };
    list_page(&m, &csrf, &q, form, FieldErrors::none()).await
}

/// `POST /ui/databases`: the create form.
pub async fn create(
    State(m): State<Master>,
    Extension(csrf): Extension<CsrfToken>,
    Form(f): Form<CreateForm>,
) -> Result<Response> {
    check(&csrf, &f.csrf)?;
    let mut errors = FieldErrors::none();
    let Some(instances) = number(&mut errors, "instances", &f.instances) else {
        return bad_form(&m, &csrf, f, errors, StatusCode::BAD_REQUEST).await;
    };
    let spec = DatabaseSpec {
        name: f.name.trim().to_string(),
        cluster: f.cluster.trim().to_string(),
        product_line: f.product_line.trim().to_string(),
        department: f.department.trim().to_string(),
        full_name: f.full_name.trim().to_string(),
        template: f.template.trim().to_string(),
        instances,
        allowed_jobs: Vec::new(),
    };
    match db_api::create_database(&client(&m), spec).await {
        Ok(rec) => {
            tracing::info!(database = %rec.spec.name, "database created from the dashboard");
            Ok(done(&database_href(&rec.spec.name), "created").into_response())
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
