//! `/ui/jobs/{id}`: one job — its spec and kept versions, its tasks (kept
//! current by `live.js`), and the scale and stop forms.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use ocean_master::service::tasks::TaskFilter;
use ocean_master::service::types::{JobDetail, JobVersions};
use ocean_master::service::views::TaskView;
use ocean_master::Master;
use serde::Deserialize;

use super::deployments::DeploymentsPart;
use super::job_waiting::WaitingPart;
use super::{path_segment, see_other, Frame, Seen};
use crate::csrf::{check, CsrfToken};
use crate::diff;
use crate::error::{render, Result};
use crate::forms::FieldErrors;
use crate::summary::{instances, job_state, task_views, TaskCounts};

/// One kept spec, pretty-printed.
#[derive(Debug, Clone)]
pub struct VersionRow {
    pub spec_version: u64,
    pub version: u64,
    pub current: bool,
    pub spec: String,
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    frame: Frame,
    job: JobDetail,
    state: &'static str,
    instances: u64,
    spec: String,
    versions: Vec<VersionRow>,
    tasks: Vec<TaskView>,
    /// The instance count the scale form shows (the user's on an error).
    scale_value: String,
    errors: FieldErrors,
    /// The "why tasks wait" part, rendered (see [`super::job_waiting`]).
    waiting: String,
    /// The two spec versions compared, and their line diff.
    diff: Option<SpecDiff>,
    /// The deployments part, rendered (see [`super::deployments`]).
    deployments: String,
}

/// A diff between two kept spec versions.
#[derive(Debug, Clone)]
pub struct SpecDiff {
    pub from: u64,
    pub to: u64,
    pub lines: Vec<diff::Line>,
}

/// `?v=`, and the versions to compare (`diff_from`, `diff_to`).
#[derive(Debug, Default, Deserialize)]
pub struct JobQuery {
    pub v: Option<u64>,
    pub diff_from: Option<u64>,
    pub diff_to: Option<u64>,
}

impl JobPage {
    fn ports(t: &TaskView) -> String {
        t.ports
            .iter()
            .map(|p| format!("{}:{}", p.name, p.port))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn selected_from(&self, v: &u64) -> bool {
        self.diff.as_ref().is_some_and(|d| d.from == *v)
            || (self.diff.is_none() && self.versions.get(1).is_some_and(|r| r.spec_version == *v))
    }

    fn selected_to(&self, v: &u64) -> bool {
        self.diff.as_ref().is_some_and(|d| d.to == *v)
            || (self.diff.is_none() && self.versions.first().is_some_and(|r| r.spec_version == *v))
    }

    fn health(t: &TaskView) -> &'static str {
        match t.healthy {
            Some(true) => "healthy",
            Some(false) => "unhealthy",
            None => "unknown",
        }
    }
}

/// Renders the page, with the user's input and its errors after a refused form.
pub(crate) async fn render_page(
    m: &Master,
    id: &str,
    q: &JobQuery,
    csrf: &CsrfToken,
    scale_value: Option<String>,
    mut errors: FieldErrors,
    rollback_selected: Option<u64>,
) -> Result<Response> {
    let seen = &Seen { v: q.v };
    let svc = m.service();
    let opts = seen.options();
    let (job_v, job) = svc.get_job(id, opts).await?;
    let versions: JobVersions = svc.job_versions(id, opts).await?;
    let versions_v = versions.version;
    let filter = TaskFilter {
        job: Some(id.to_string()),
        ..Default::default()
    };
    let (tasks_v, tasks) = svc.list_tasks(&filter, opts).await?;
    let mut tasks = task_views(&tasks);
    // Live tasks first, then by id: the rows a user acts on on top.
    tasks.sort_by(|a, b| {
        a.ended_ms
            .is_some()
            .cmp(&b.ended_ms.is_some())
            .then(a.id.cmp(&b.id))
    });
    let running = TaskCounts::of(&tasks).job(id).running;
    let (deployments_v, deployments) =
        DeploymentsPart::load(m, id, opts, csrf, errors.clone(), rollback_selected).await?;
    let deployments = render("deployments", &deployments)?.0;
    let instances = instances(&job.job);
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let versions: Vec<VersionRow> = versions
        .versions
        .iter()
        .map(|v| VersionRow {
            spec_version: v.spec_version,
            version: v.version,
            current: v.current,
            spec: serde_json::to_string_pretty(&v.spec).unwrap_or_default(),
        })
        .collect();
    let diff = match (q.diff_from, q.diff_to) {
        (Some(from), Some(to)) => {
            let find = |n: u64| versions.iter().find(|r| r.spec_version == n);
            match (find(from), find(to)) {
                (Some(a), Some(b)) => Some(SpecDiff {
                    from,
                    to,
                    lines: diff::lines(&a.spec, &b.spec),
                }),
                (a, _) => {
                    let (field, n) = if a.is_none() {
                        ("diff_from", from)
                    } else {
                        ("diff_to", to)
                    };
                    errors.add(
                        field,
                        format!("spec version {n} is not one of the kept versions"),
                    );
                    None
                }
            }
        }
        _ => None,
    };
    let page = JobPage {
        // live.js resumes after the oldest of the reads: a change between
        // them arrives twice, and applying a row again changes nothing.
        frame: Frame::new(
            m,
            "jobs",
            job_v.min(versions_v).min(tasks_v).min(deployments_v),
            seen,
        )
        .with_csrf(csrf),
        waiting: render(
            "job_waiting",
            &WaitingPart::of(id, job.job.waiting.as_deref()),
        )?
        .0,
        diff,
        state: job_state(&job.job, running),
        instances,
        spec: serde_json::to_string_pretty(&job.job.spec).unwrap_or_default(),
        versions,
        tasks,
        scale_value: scale_value.unwrap_or_else(|| instances.to_string()),
        errors,
        job,
        deployments,
    };
    Ok((status, render("job", &page)?).into_response())
}

/// `GET /ui/jobs/{id}`.
pub async fn page(
    State(m): State<Master>,
    Extension(csrf): Extension<CsrfToken>,
    Path(id): Path<String>,
    Query(q): Query<JobQuery>,
) -> Result<Response> {
    render_page(&m, &id, &q, &csrf, None, FieldErrors::none(), None).await
}

/// The scale form.
#[derive(Debug, Deserialize)]
pub struct ScaleForm {
    #[serde(default)]
    pub instances: String,
    #[serde(default)]
    pub csrf: String,
}

/// `POST /ui/jobs/{id}/scale`: `instances` through `Service::scale_job`.
pub async fn scale(
    State(m): State<Master>,
    Extension(csrf): Extension<CsrfToken>,
    Path(id): Path<String>,
    Form(f): Form<ScaleForm>,
) -> Result<Response> {
    check(&csrf, &f.csrf)?;
    let value = f.instances.trim();
    let result = match value.parse::<u32>() {
        Ok(n) => m
            .service()
            .scale_job(&id, n, None)
            .await
            .map_err(|e| FieldErrors::from_service(e, &[]).map_or_else(Err, Ok)),
        Err(_) => Err(Ok(FieldErrors::one(
            "instances",
            format!("'{value}' is not a whole number of instances (0 or more)"),
        ))),
    };
    match result {
        Ok(w) => {
            tracing::info!(job = %id, instances = value, version = w.version, "scaled from the dashboard");
            Ok(see_other(&format!("/ui/jobs/{}", path_segment(&id)), w.version).into_response())
        }
        Err(Ok(errors)) => {
            render_page(
                &m,
                &id,
                &JobQuery::default(),
                &csrf,
                Some(value.to_string()),
                errors,
                None,
            )
            .await
        }
        Err(Err(e)) => Err(e.into()),
    }
}

/// The stop form: a checkbox confirms it.
#[derive(Debug, Deserialize)]
pub struct StopForm {
    #[serde(default)]
    pub confirm: String,
    #[serde(default)]
    pub csrf: String,
}

/// `POST /ui/jobs/{id}/stop`: stops the job's tasks and deletes it
/// (`Service::delete_job`, as `DELETE /v1/jobs/{id}`).
pub async fn stop(
    State(m): State<Master>,
    Extension(csrf): Extension<CsrfToken>,
    Path(id): Path<String>,
    Form(f): Form<StopForm>,
) -> Result<Response> {
    check(&csrf, &f.csrf)?;
    if f.confirm != "yes" {
        let errors = FieldErrors::one("confirm", "tick the box to confirm stopping this job");
        return render_page(&m, &id, &JobQuery::default(), &csrf, None, errors, None).await;
    }
    let w = m.service().delete_job(&id, None).await?;
    tracing::info!(job = %id, version = w.version, "stopped from the dashboard");
    Ok(see_other("/ui/jobs", w.version).into_response())
}

/// The reset form: only the token.
#[derive(Debug, Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    pub csrf: String,
}

/// `POST /ui/jobs/{id}/reset`: clears the job's back-off and flapping
/// mark (`Service::reset_backoff`, as `POST /v1/jobs/{id}/reset-backoff`),
/// so the reconciler relaunches its tasks at once.
pub async fn reset(
    State(m): State<Master>,
    Extension(csrf): Extension<CsrfToken>,
    Path(id): Path<String>,
    Form(f): Form<ResetForm>,
) -> Result<Response> {
    check(&csrf, &f.csrf)?;
    let w = m.service().reset_backoff(&id).await?;
    tracing::info!(job = %id, version = w.version, "back-off reset from the dashboard");
    Ok(see_other(&format!("/ui/jobs/{}", path_segment(&id)), w.version).into_response())
}
