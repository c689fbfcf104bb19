//! `/ui/hosts`: every agent with its tags, status, capacity and tasks, and
//! a form per host to drain it or set its status (confirmed by a checkbox).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use ocean_master::kernel::state::AGENT_STATUSES;
use ocean_master::service::tasks::TaskFilter;
use ocean_master::service::views::AgentView;
use ocean_master::Master;
use serde::Deserialize;

use super::{see_other, Frame, Paging, Seen};
use crate::csrf::{check, CsrfToken};
use crate::error::{render, Result};
use crate::forms::FieldErrors;
use crate::summary::{percent, task_views, TaskCounts};

/// Hosts per page.
pub const PER_PAGE: usize = 100;

/// One host's row.
#[derive(Debug, Clone)]
pub struct HostRow {
    pub agent: AgentView,
    /// `None` on a follower (liveness is the leader's knowledge).
    pub connected: Option<bool>,
    pub unreachable: Option<bool>,
    pub tasks: usize,
    pub cpus_used: f64,
    pub cpus_percent: u32,
    pub mem_used: u64,
    pub mem_percent: u32,
    /// The refused form of this host, if it is the one just submitted.
    pub errors: FieldErrors,
}

#[derive(Template)]
#[template(path = "hosts.html")]
struct HostsPage {
    frame: Frame,
    rows: Vec<HostRow>,
    statuses: [&'static str; 4],
    paging: Paging,
    /// Hosts per status, for the map's legend (and without JavaScript).
    by_status: Vec<(&'static str, usize)>,
}

impl HostsPage {
    /// The link to another page of the list (`pager.html`).
    fn page_href(&self, page: usize) -> String {
        format!("/ui/hosts?page={page}")
    }

    fn is(&self, a: &str, b: &str) -> bool {
        a == b
    }
}

/// `?page=` and `?v=`.
#[derive(Debug, Default, Deserialize)]
pub struct HostsQuery {
    pub page: Option<usize>,
    pub v: Option<u64>,
}

/// Renders the page; `refused` is a host whose form came back with errors.
async fn render_page(
    m: &Master,
    csrf: &CsrfToken,
    page_no: usize,
    seen: &Seen,
    refused: Option<(&str, FieldErrors)>,
) -> Result<Response> {
    let svc = m.service();
    let (agents_v, agents) = svc.list_agents(seen.options()).await?;
    let live = TaskFilter {
        ended: Some(false),
        ..Default::default()
    };
    let (tasks_v, tasks) = svc.list_tasks(&live, seen.options()).await?;
    let counts = TaskCounts::of(&task_views(&tasks));
    let mut agents: Vec<_> = agents
        .iter()
        .map(|(a, l)| (AgentView::from(a.as_ref()), *l))
        .collect();
    agents.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    let by_status = AGENT_STATUSES
        .iter()
        .map(|s| (*s, agents.iter().filter(|(a, _)| a.status == *s).count()))
        .collect();
    // The refused host's page, so its error is on screen.
    let page_no = refused
        .as_ref()
        .and_then(|(id, _)| agents.iter().position(|(a, _)| a.id == *id))
        .map_or(page_no, |i| i / PER_PAGE + 1);
    let paging = Paging::new(agents.len(), PER_PAGE, page_no);
    let rows = agents[paging.range()]
        .iter()
        .map(|(a, l)| {
            let c = counts.agent(&a.id);
            let errors = match &refused {
                Some((id, e)) if *id == a.id => e.clone(),
                _ => FieldErrors::none(),
            };
            HostRow {
                connected: l.map(|l| l.connected),
                unreachable: l.map(|l| l.unreachable),
                tasks: c.live,
                cpus_used: c.cpus,
                cpus_percent: percent(c.cpus, a.resources.cpus),
                mem_used: c.mem,
                mem_percent: percent(c.mem as f64, a.resources.mem as f64),
                agent: a.clone(),
                errors,
            }
        })
        .collect();
    let status = if refused.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = HostsPage {
        frame: Frame::new(m, "hosts", agents_v.min(tasks_v), seen).with_csrf(csrf),
        by_status,
        rows,
        statuses: AGENT_STATUSES,
        paging,
    };
    Ok((status, render("hosts", &page)?).into_response())
}

/// `GET /ui/hosts`.
pub async fn page(
    State(m): State<Master>,
    Extension(csrf): Extension<CsrfToken>,
    Query(q): Query<HostsQuery>,
) -> Result<Response> {
    render_page(&m, &csrf, q.page.unwrap_or(1), &Seen { v: q.v }, None).await
}

/// The set-status form.
#[derive(Debug, Deserialize)]
pub struct StatusForm {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub confirm: String,
    #[serde(default)]
    pub csrf: String,
}

/// `POST /ui/hosts/{id}/status`: through `Service::set_agent_status`, as
/// `POST /v1/agents/{id}/status`; `draining` moves the host's tasks off.
pub async fn set_status(
    State(m): State<Master>,
    Extension(csrf): Extension<CsrfToken>,
    Path(id): Path<String>,
    Form(f): Form<StatusForm>,
) -> Result<Response> {
    check(&csrf, &f.csrf)?;
    if f.confirm != "yes" {
        let errors = FieldErrors::one("confirm", "tick the box to confirm the new status");
        return render_page(&m, &csrf, 1, &Seen::default(), Some((&id, errors))).await;
    }
    match m
        .service()
        .set_agent_status(&id, &f.status, &f.message)
        .await
    {
        Ok(w) => {
            tracing::info!(agent = %id, status = %f.status, version = w.version, "agent status set from the dashboard");
            Ok(see_other("/ui/hosts", w.version).into_response())
        }
        Err(e) => match FieldErrors::from_service(e, &[]) {
            Ok(errors) => render_page(&m, &csrf, 1, &Seen::default(), Some((&id, errors))).await,
            Err(e) => Err(e.into()),
        },
    }
}
