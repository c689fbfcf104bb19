//! The job page's deployments: each rollout's progress as the deployment
//! record says it (state, replaced and healthy counts, a pause or the sleep
//! before the next step, each task's version and state), the actions that
//! apply to it now, and the rollback form. The part is rendered into the
//! job page and served alone at `/ui/jobs/{id}/deployments`, which
//! `live.js` fetches again when the job or its tasks change.
//!
//! ```text
//!  POST /ui/jobs/{id}/deployments/action ─► Service::deployment_action ─► 303 /ui/jobs/{id}?v=W
//!  POST /ui/jobs/{id}/rollback          ─► Service::rollback_job      ─► 303 /ui/jobs/{id}?v=W
//!            └─ no confirmation, or refused ─► the job page, 422, the error beside its field
//! ```

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Form};
use ocean_master::service::deployments::DeploymentView;
use ocean_master::service::ReadOptions;
use ocean_master::Master;
use serde::Deserialize;

use super::job::{render_page, JobQuery};
use super::{path_segment, see_other};
use crate::csrf::{check, CsrfToken};
use crate::error::{render, Result};
use crate::forms::FieldErrors;

/// The deployments part of a job page.
#[derive(Debug, Template)]
#[template(path = "deployments.html")]
pub struct DeploymentsPart {
    pub job_id: String,
    pub csrf: String,
    /// Newest first; the first carries each task's progress.
    pub deployments: Vec<DeploymentView>,
    /// Spec versions a rollback may return to (kept, not current).
    pub rollback_to: Vec<u64>,
    /// The one the form selects: the user's, else the previous version.
    pub rollback_selected: Option<u64>,
    pub errors: FieldErrors,
    /// The serving master's clock, for "next step in N s".
    pub now_ms: u64,
}

impl DeploymentsPart {
    /// Reads the part for job `id` through the service.
    pub async fn load(
        m: &Master,
        id: &str,
        opts: ReadOptions,
        csrf: &CsrfToken,
        errors: FieldErrors,
        rollback_selected: Option<u64>,
    ) -> Result<(u64, DeploymentsPart)> {
        let svc = m.service();
        let list = svc.list_deployments(Some(id), opts).await?;
        let mut deployments = list.deployments;
        let mut version = list.version;
        if let Some(first) = deployments.first_mut() {
            // The newest with its tasks' progress (a read of its own).
            let (v, detail) = svc.get_deployment(&first.id, opts).await?;
            version = version.min(v);
            *first = detail;
        }
        let versions = svc.job_versions(id, opts).await?;
        let rollback_to: Vec<u64> = versions
            .versions
            .iter()
            .filter(|v| !v.current)
            .map(|v| v.spec_version)
            .collect();
        let rollback_selected = rollback_selected.or_else(|| rollback_to.first().copied());
        Ok((
            version.min(versions.version),
            DeploymentsPart {
                job_id: id.to_string(),
                csrf: csrf.0.clone(),
                deployments,
                rollback_to,
                rollback_selected,
                errors,
                now_ms: now_ms(),
            },
        ))
    }

    /// What holds the deployment before its next step, in words (empty
    /// when nothing does).
    fn holding(&self, d: &DeploymentView) -> String {
        match d.state.as_str() {
            "paused" => format!(
                "paused{}",
                if d.reason.is_empty() {
                    String::new()
                } else {
                    format!(": {}", d.reason)
                }
            ),
            "waiting_for_promotion" => "canaries wait to be promoted".to_string(),
            "running" if d.next_at_ms > self.now_ms => format!(
                "sleeping {:.1} s before the next step",
                (d.next_at_ms - self.now_ms) as f64 / 1000.0
            ),
            _ => String::new(),
        }
    }

    /// `replaced of instances` as a percentage for the meter.
    fn percent(d: &DeploymentView) -> u32 {
        crate::summary::percent(d.replaced as f64, f64::from(d.instances))
    }

    fn is_selected(&self, v: &u64) -> bool {
        self.rollback_selected == Some(*v)
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `GET /ui/jobs/{id}/deployments`: the part alone, for `live.js`.
pub async fn fragment(
    State(m): State<Master>,
    Extension(csrf): Extension<CsrfToken>,
    Path(id): Path<String>,
) -> Result<Html<String>> {
    let (_, part) = DeploymentsPart::load(
        &m,
        &id,
        ReadOptions::default(),
        &csrf,
        FieldErrors::none(),
        None,
    )
    .await?;
    render("deployments", &part)
}

/// The action form: which deployment, which action (the button pressed),
/// and the confirmation box.
#[derive(Debug, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    pub deployment: String,
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub confirm: String,
    #[serde(default)]
    pub csrf: String,
}

/// `POST /ui/jobs/{id}/deployments/action`: `Service::deployment_action`
/// (as `POST /v1/deployments/{id}/{action}`).
pub async fn action(
    State(m): State<Master>,
    Extension(csrf): Extension<CsrfToken>,
    Path(id): Path<String>,
    Form(f): Form<ActionForm>,
) -> Result<Response> {
    check(&csrf, &f.csrf)?;
    let errors = if f.confirm != "yes" {
        FieldErrors::one(
            "deployment_confirm",
            format!("tick the box to confirm: {} this deployment", f.action),
        )
    } else {
        match m
            .service()
            .deployment_action(&f.deployment, &f.action, "from the dashboard")
            .await
        {
            Ok(w) => {
                tracing::info!(job = %id, deployment = %f.deployment, action = %f.action,
                    version = w.version, "deployment action from the dashboard");
                return Ok(
                    see_other(&format!("/ui/jobs/{}", path_segment(&id)), w.version)
                        .into_response(),
                );
            }
            // Another action won, or it no longer applies: say why there.
            Err(ocean_master::Error::Conflict(why)) => FieldErrors::one("action", why),
            Err(e) => FieldErrors::from_service(e, &[])?,
        }
    };
    render_page(&m, &id, &JobQuery::default(), &csrf, None, errors, None).await
}

/// The rollback form: the spec version to return to, and the box.
#[derive(Debug, Deserialize)]
pub struct RollbackForm {
    #[serde(default)]
    pub to_version: String,
    #[serde(default)]
    pub confirm: String,
    #[serde(default)]
    pub csrf: String,
}

/// `POST /ui/jobs/{id}/rollback`: `Service::rollback_job` (as
/// `POST /v1/jobs/{id}/rollback`): a deployment back to `to_version`
/// (empty: the previous one), keeping the current instances.
pub async fn rollback(
    State(m): State<Master>,
    Extension(csrf): Extension<CsrfToken>,
    Path(id): Path<String>,
    Form(f): Form<RollbackForm>,
) -> Result<Response> {
    check(&csrf, &f.csrf)?;
    let typed = f.to_version.trim();
    let to = if typed.is_empty() {
        Ok(None)
    } else {
        typed.parse::<u64>().map(Some).map_err(|_| {
            FieldErrors::one(
                "to_version",
                format!("'{typed}' is not a spec version (1, 2, ...)"),
            )
        })
    };
    let errors = match (to, f.confirm == "yes") {
        (Err(errors), _) => errors,
        (Ok(_), false) => FieldErrors::one(
            "rollback_confirm",
            "tick the box to confirm rolling this job back",
        ),
        (Ok(to), true) => match m.service().rollback_job(&id, to).await {
            Ok(w) => {
                tracing::info!(job = %id, to = ?to, version = w.version, "rolled back from the dashboard");
                return Ok(
                    see_other(&format!("/ui/jobs/{}", path_segment(&id)), w.version)
                        .into_response(),
                );
            }
            Err(ocean_master::Error::Conflict(why)) => FieldErrors::one("to_version", why),
            Err(e) => FieldErrors::from_service(e, &[])?,
        },
    };
    let selected = typed.parse().ok();
    render_page(&m, &id, &JobQuery::default(), &csrf, None, errors, selected).await
}
