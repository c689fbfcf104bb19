//! `/ui/jobs/{id}`: one job — its spec and kept versions, its tasks (kept
//! current by `live.js`), and the scale and stop forms.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Form;
use ocean_master::service::tasks::TaskFilter;
use ocean_master::service::types::{JobDetail, JobVersions};
use ocean_master::service::views::TaskView;
use ocean_master::Master;
use serde::Deserialize;

use super::{path_segment, see_other, Frame, Seen};
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
}

impl JobPage {
    fn ports(t: &TaskView) -> String {
        t.ports
            .iter()
            .map(|p| format!("{}:{}", p.name, p.port))
            .collect::<Vec<_>>()
            .join(" ")
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
async fn render_page(
    m: &Master,
    id: &str,
    seen: &Seen,
    scale_value: Option<String>,
    errors: FieldErrors,
) -> Result<Response> {
    let svc = m.service();
    let opts = seen.options();
    let (job_v, job) = svc.get_job(id, opts).await?;
    let versions: JobVersions = svc.job_versions(id, opts).await?;
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
    let instances = instances(&job.job);
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page = JobPage {
        // live.js resumes after the oldest of the reads: a change between
        // them arrives twice, and applying a row again changes nothing.
        frame: Frame::new(m, "jobs", job_v.min(versions.version).min(tasks_v), seen),
        state: job_state(&job.job, running),
        instances,
        spec: serde_json::to_string_pretty(&job.job.spec).unwrap_or_default(),
        versions: versions
            .versions
            .iter()
            .map(|v| VersionRow {
                spec_version: v.spec_version,
                version: v.version,
                current: v.current,
                spec: serde_json::to_string_pretty(&v.spec).unwrap_or_default(),
            })
            .collect(),
        tasks,
        scale_value: scale_value.unwrap_or_else(|| instances.to_string()),
        errors,
        job,
    };
    Ok((status, render("job", &page)?).into_response())
}

/// `GET /ui/jobs/{id}`.
pub async fn page(
    State(m): State<Master>,
    Path(id): Path<String>,
    Query(seen): Query<Seen>,
) -> Result<Response> {
    render_page(&m, &id, &seen, None, FieldErrors::none()).await
}

/// The scale form.
#[derive(Debug, Deserialize)]
pub struct ScaleForm {
    #[serde(default)]
    pub instances: String,
}

/// `POST /ui/jobs/{id}/scale`: `instances` through `Service::scale_job`.
pub async fn scale(
    State(m): State<Master>,
    Path(id): Path<String>,
    Form(f): Form<ScaleForm>,
) -> Result<Response> {
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
            render_page(&m, &id, &Seen::default(), Some(value.to_string()), errors).await
        }
        Err(Err(e)) => Err(e.into()),
    }
}

/// The stop form: a checkbox confirms it.
#[derive(Debug, Deserialize)]
pub struct StopForm {
    #[serde(default)]
    pub confirm: String,
}

/// `POST /ui/jobs/{id}/stop`: stops the job's tasks and deletes it
/// (`Service::delete_job`, as `DELETE /v1/jobs/{id}`).
pub async fn stop(
    State(m): State<Master>,
    Path(id): Path<String>,
    Form(f): Form<StopForm>,
) -> Result<Response> {
    if f.confirm != "yes" {
        let errors = FieldErrors::one("confirm", "tick the box to confirm stopping this job");
        return render_page(&m, &id, &Seen::default(), None, errors).await;
    }
    let w = m.service().delete_job(&id, None).await?;
    tracing::info!(job = %id, version = w.version, "stopped from the dashboard");
    Ok(see_other("/ui/jobs", w.version).into_response())
}
