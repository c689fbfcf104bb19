//! `/ui/databases/{id}`: one database's topology (each instance's task,
//! host, address, role, GTID position and replication lag, from the
//! operator's last observation), the primary's DNS name, its last backup,
//! backup schedule and binlog archive, the jobs allowed to use it (each
//! with its MySQL user and the hosts it is granted on), and its actions:
//! switch over to a chosen replica, rebuild a replica, scale, back up now,
//! edit the allowed jobs, delete. Every action calls the function behind
//! its REST route (`POST /v1/databases/{id}/...`, `PUT .../grants`), so a
//! refusal is the API's: the page comes back with its status, its reason,
//! and the field it names marked.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Form};
use ocean_master::Master;
use ocean_mysql::actions::{self, Rebuild, Scale, Switchover};
use ocean_mysql::api::{self as db_api, ApiError};
use ocean_mysql::archive::{ArchiveRecord, ARCHIVES};
use ocean_mysql::backup::{BackupRecord, Schedule, BACKUPS, SCHEDULES};
use ocean_mysql::backup_api::{self, Backup};
use ocean_mysql::grants_api::{self, Grants};
use ocean_mysql::{DatabaseStatus, NodeStatus};
use serde::Deserialize;

use super::databases::{database_href, read_all, read_keys, row, DatabaseRow, NOTICES};
use super::framework_forms::{client, done, number, refused, utc};
use super::{path_segment, Done, Frame};
use crate::csrf::{check, CsrfToken};
use crate::error::{render, Result};
use crate::forms::FieldErrors;

/// One instance of the topology.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub task: String,
    pub host: String,
    pub addr: String,
    pub role: String,
    pub gtid: String,
    /// Replication lag as the status has it: seconds behind for a
    /// replica, else what the role says (the primary is not behind).
    pub lag: String,
    pub last_error: String,
    /// A rebuild applies (the API refuses the primary and instances that
    /// do not answer; the form is not offered for them).
    pub rebuildable: bool,
}

impl NodeView {
    fn of(n: &NodeStatus) -> Self {
        let lag = match (n.role.as_str(), n.lag_seconds) {
            ("primary", _) => "— (primary)".to_string(),
            (_, Some(s)) => format!("{s} s"),
            ("replica", None) => "unknown".to_string(),
            (role, None) => format!("— ({role})"),
        };
        NodeView {
            task: n.task.clone(),
            host: n.host.clone(),
            addr: n.addr.clone(),
            role: n.role.clone(),
            gtid: n.gtid.clone(),
            lag,
            last_error: n.last_error.clone(),
            rebuildable: !matches!(n.role.as_str(), "primary" | "unreachable" | "rebuilding"),
        }
    }
}

/// A backup as the page shows it.
#[derive(Debug, Clone)]
pub struct BackupView {
    pub id: String,
    pub state: String,
    pub message: String,
    pub source: String,
    pub source_host: String,
    pub requested: String,
    pub finished: String,
    pub gtid: String,
    pub mib: String,
    pub by: String,
    pub path: String,
    pub offsite_path: String,
}

impl BackupView {
    fn of(b: &BackupRecord) -> Self {
        BackupView {
            id: b.id.clone(),
            state: b.state.clone(),
            message: b.message.clone(),
            source: b.source.clone(),
            source_host: b.source_host.clone(),
            requested: utc(b.requested_ms),
            finished: if b.finished_ms == 0 {
                "—".to_string()
            } else {
                utc(b.finished_ms)
            },
            gtid: b.gtid.clone(),
            mib: format!("{:.1}", b.bytes as f64 / (1024.0 * 1024.0)),
            by: b.by.clone(),
            path: b.path(),
            offsite_path: b.offsite_path(),
        }
    }
}

/// One allowed job: its user (none until the record has its credential)
/// and the host addresses the operator last saw it granted on.
#[derive(Debug, Clone)]
pub struct GrantView {
    pub job: String,
    pub user: String,
    pub hosts: String,
}

#[derive(Template)]
#[template(path = "database.html")]
struct DetailPage {
    frame: Frame,
    row: DatabaseRow,
    status: Option<DatabaseStatus>,
    observed: String,
    nodes: Vec<NodeView>,
    /// The replicas a switchover may hand the primary's role to.
    replicas: Vec<String>,
    template_sizes: String,
    backups: usize,
    last_backup: Option<BackupView>,
    /// The newest backup that is done, when the last one is not.
    last_done: Option<BackupView>,
    schedule: Option<Schedule>,
    archive: Option<ArchiveRecord>,
    grants: Vec<GrantView>,
    /// The allowed jobs' form: one job id a line (what was sent, after a
    /// refusal).
    allowed_text: String,
    notice: Option<&'static str>,
    /// A refused action: what it was, the status and why.
    error: Option<String>,
    /// Which action's form shows the field errors, and (rebuild) which
    /// instance's.
    refused_action: String,
    refused_task: String,
    errors: FieldErrors,
}

impl DetailPage {
    fn task_href(id: &str) -> String {
        format!("/ui/tasks/{}", path_segment(id))
    }
    fn is(a: &str, b: &str) -> bool {
        a == b
    }
    fn archive_path(a: &ArchiveRecord, db: &str) -> String {
        a.path(db)
    }
    fn when(ms: &u64) -> String {
        utc(*ms)
    }
    fn days(d: &f64) -> String {
        format!("{d}")
    }
}

/// An action the page shows as refused.
struct Refusal {
    action: String,
    task: String,
    message: String,
    errors: FieldErrors,
    status: StatusCode,
    /// The allowed jobs' text as sent, to show it again.
    allowed_text: Option<String>,
}

impl Refusal {
    fn api(e: &ApiError, action: &str, task: &str) -> Self {
        Refusal {
            action: action.to_string(),
            task: task.to_string(),
            message: format!("{action} refused ({}): {}", e.status(), e.message()),
            errors: refused(e),
            status: e.status(),
            allowed_text: None,
        }
    }

    fn form(errors: FieldErrors, action: &str, task: &str) -> Self {
        let why = errors
            .fields()
            .map(|f| format!("{f}: {}", errors.get(f).unwrap_or_default()))
            .collect::<Vec<_>>()
            .join("; ");
        let status = StatusCode::BAD_REQUEST;
        Refusal {
            action: action.to_string(),
            task: task.to_string(),
            message: format!("{action} refused ({status}): {why}"),
            errors,
            status,
            allowed_text: None,
        }
    }
}

async fn detail_page(
    m: &Master,
    csrf: &CsrfToken,
    id: &str,
    q: &Done,
    refusal: Option<Refusal>,
) -> Result<(StatusCode, Html<String>)> {
    let seen = q.seen();
    let (recs, statuses, v1) = read_all(m, &seen).await?;
    let Some(rec) = recs.iter().find(|r| r.spec.name == id) else {
        return Err(ocean_master::Error::NotFound {
            kind: "database",
            id: id.to_string(),
        }
        .into());
    };
    let st = statuses.get(id).cloned();
    let (mut backups, v2) = read_keys::<BackupRecord>(m, &format!("{BACKUPS}{id}/"), &seen).await?;
    backups.sort_by_key(|(_, b)| b.requested_ms);
    let last = backups.last().map(|(_, b)| b);
    let last_done = backups
        .iter()
        .rev()
        .map(|(_, b)| b)
        .find(|b| b.state == "done")
        .filter(|b| last.is_some_and(|l| l.id != b.id));
    let (schedules, v3) = read_keys::<Schedule>(m, SCHEDULES, &seen).await?;
    let (archives, v4) = read_keys::<ArchiveRecord>(m, ARCHIVES, &seen).await?;
    let t = &rec.template;
    let seen_grants = st.as_ref().map(|s| s.grants.as_slice()).unwrap_or_default();
    let grants: Vec<GrantView> = rec
        .spec
        .allowed_jobs
        .iter()
        .map(|job| GrantView {
            job: job.clone(),
            user: rec
                .secrets
                .jobs
                .get(job)
                .map(|c| c.user.clone())
                .unwrap_or_default(),
            hosts: seen_grants
                .iter()
                .find(|g| &g.job == job)
                .map(|g| g.hosts.join(", "))
                .unwrap_or_default(),
        })
        .collect();
    let allowed_text = refusal
        .as_ref()
        .and_then(|r| r.allowed_text.clone())
        .unwrap_or_else(|| rec.spec.allowed_jobs.join("\n"));
    let page = DetailPage {
        frame: Frame::new(m, "databases", v1.min(v2).min(v3).min(v4), &seen).with_csrf(csrf),
        row: row(rec, st.as_ref()),
        observed: st.as_ref().map(|s| utc(s.observed_ms)).unwrap_or_default(),
        nodes: st
            .iter()
            .flat_map(|s| s.nodes.iter())
            .map(NodeView::of)
            .collect(),
        replicas: st
            .iter()
            .flat_map(|s| s.nodes.iter())
            .filter(|n| n.role == "replica")
            .map(|n| n.task.clone())
            .collect(),
        status: st,
        template_sizes: format!(
            "{} MiB memory, {} MiB buffer pool, {} connections, {} MiB disk",
            t.memory_mb, t.buffer_pool_mb, t.max_connections, t.disk_mb
        ),
        backups: backups.len(),
        last_backup: last.map(BackupView::of),
        last_done: last_done.map(BackupView::of),
        schedule: schedules.into_iter().find(|(k, _)| k == id).map(|(_, s)| s),
        archive: archives.into_iter().find(|(k, _)| k == id).map(|(_, a)| a),
        grants,
        allowed_text,
        notice: q.notice(NOTICES),
        error: refusal.as_ref().map(|r| r.message.clone()),
        refused_action: refusal
            .as_ref()
            .map(|r| r.action.clone())
            .unwrap_or_default(),
        refused_task: refusal.as_ref().map(|r| r.task.clone()).unwrap_or_default(),
        errors: refusal
            .as_ref()
            .map_or_else(FieldErrors::none, |r| r.errors.clone()),
    };
    let code = refusal.map_or(StatusCode::OK, |r| r.status);
    Ok((code, render("database", &page)?))
}

/// `GET /ui/databases/{id}`.
pub async fn detail(
    State(m): State<Master>,
    Extension(csrf): Extension<CsrfToken>,
    Path(id): Path<String>,
    Query(q): Query<Done>,
) -> Result<(StatusCode, Html<String>)> {
    detail_page(&m, &csrf, &id, &q, None).await
}

/// Every action form: the token, the confirmation box, and what it acts on.
#[derive(Debug, Default, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub confirm: String,
    /// Switchover: the replica's task (empty: the one furthest ahead).
    #[serde(default)]
    pub to: String,
    /// Rebuild: the instance's task.
    #[serde(default)]
    pub task: String,
    /// Scale: the new number of instances.
    #[serde(default)]
    pub instances: String,
    /// Grants: the allowed jobs, one job id a line (blank lines skipped).
    #[serde(default)]
    pub allowed_jobs: String,
}

/// The actions that change who serves or lose data: they need the box.
const NEEDS_CONFIRM: &[&str] = &["switchover", "rebuild", "delete"];

/// `POST /ui/databases/{id}/{action}`: switchover, rebuild, scale,
/// backup, grants, delete.
pub async fn action(
    State(m): State<Master>,
    Extension(csrf): Extension<CsrfToken>,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<ActionForm>,
) -> Result<Response> {
    check(&csrf, &f.csrf)?;
    if !matches!(
        action.as_str(),
        "switchover" | "rebuild" | "scale" | "backup" | "grants" | "delete"
    ) {
        return Err(ocean_master::Error::NotFound {
            kind: "database action",
            id: action,
        }
        .into());
    }
    let c = client(&m);
    let here = database_href(&id);
    let mut errors = FieldErrors::none();
    if NEEDS_CONFIRM.contains(&action.as_str()) && f.confirm != "yes" {
        errors.add("confirm", "tick the box to confirm");
    }
    let instances = if action == "scale" {
        number(&mut errors, "instances", &f.instances)
    } else {
        None
    };
    let sent = (action == "grants").then(|| f.allowed_jobs.clone());
    let refuse = |mut r: Refusal| async {
        r.allowed_text = sent.clone();
        Ok::<_, crate::error::UiError>(
            detail_page(&m, &csrf, &id, &Done::default(), Some(r))
                .await?
                .into_response(),
        )
    };
    if !errors.is_empty() {
        // The form's own errors (a box not ticked, not a number): nothing
        // is asked of the API.
        return refuse(Refusal::form(errors, &action, &f.task)).await;
    }
    // Every route reads the record first: an unknown database is a 404.
    if let Err(e) = db_api::record(&c, &id).await {
        return refuse(Refusal::api(&e, &action, &f.task)).await;
    }
    let outcome = match action.as_str() {
        "switchover" => {
            let s = Switchover {
                to: Some(f.to.trim().to_string()).filter(|t| !t.is_empty()),
            };
            actions::switchover(&c, &id, s).await.map(|_| "switchover")
        }
        "rebuild" => {
            let r = Rebuild {
                task: Some(f.task.trim().to_string()).filter(|t| !t.is_empty()),
            };
            actions::rebuild(&c, &id, r).await.map(|_| "rebuild")
        }
        "scale" => {
            let s = Scale {
                instances: instances.unwrap_or_default(),
            };
            db_api::scale(&c, &id, s).await.map(|_| "scaled")
        }
        "backup" => backup_api::backup(&c, &id, Backup::default())
            .await
            .map(|(status, _)| {
                if status == StatusCode::ACCEPTED {
                    "backup-started"
                } else {
                    "backed-up"
                }
            }),
        "grants" => {
            let g = Grants {
                allowed_jobs: allowed_lines(&f.allowed_jobs),
            };
            grants_api::set_allowed_jobs(&c, &id, g)
                .await
                .map(|_| "grants")
        }
        _ => db_api::delete(&c, &id).await.map(|_| "deleted"),
    };
    match outcome {
        Ok(what) => {
            tracing::info!(database = %id, action = %action, "database action from the dashboard");
            let to = if what == "deleted" {
                "/ui/databases".to_string()
            } else {
                here
            };
            Ok(done(&to, what).into_response())
        }
        Err(e) => refuse(Refusal::api(&e, &action, &f.task)).await,
    }
}

/// The form's allowed jobs: one a line, trimmed, blank lines skipped.
fn allowed_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowed_jobs_are_one_a_line() {
        assert_eq!(
            allowed_lines(" a \r\n\n b\n"),
            vec!["a".to_string(), "b".to_string()]
        );
        assert!(allowed_lines("\n  \n").is_empty());
    }

    fn node(role: &str, lag: Option<u64>) -> NodeStatus {
        NodeStatus {
            task: "t".into(),
            role: role.into(),
            lag_seconds: lag,
            ..Default::default()
        }
    }

    #[test]
    fn lag_is_the_status_seconds_or_what_the_role_says() {
        let lag = |role, l| NodeView::of(&node(role, l)).lag;
        assert_eq!(lag("replica", Some(4)), "4 s");
        assert_eq!(lag("replica", None), "unknown");
        assert_eq!(lag("primary", None), "— (primary)");
        assert_eq!(lag("diverged", None), "— (diverged)");
        // Only instances that answer and are not the primary are offered a rebuild.
        let rebuildable = |role| NodeView::of(&node(role, None)).rebuildable;
        assert!(rebuildable("replica") && rebuildable("diverged") && rebuildable("fenced"));
        assert!(
            !rebuildable("primary") && !rebuildable("unreachable") && !rebuildable("rebuilding")
        );
    }
}
