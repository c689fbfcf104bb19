//! `/ui/pdl/{pdl}`: one product line (`cop.<c>_owt.<o>_pdl.<p>`) — its
//! jobs, what its tasks hold against its quota over time (the sampler's
//! history drawn as SVG on the server), and its failures and restarts
//! (ended tasks kept by the state, and each job's back-off).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Html;
use ocean_master::kernel::state::{FAILED, LOST};
use ocean_master::service::tasks::TaskFilter;
use ocean_master::service::types::JobView;
use ocean_master::Master;
use ocean_spec::TreeNode;

use super::{path_segment, Frame, Seen};
use crate::chart::{chart, Chart};
use crate::error::{render, Result};
use crate::state::UiState;
use crate::summary::{instances, job_state, task_views, TaskCounts};
use crate::tree::{pdl_of, NodeView};

/// The charts' size in SVG units.
const CHART_W: u32 = 480;
const CHART_H: u32 = 120;

/// One job of the product line.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: String,
    pub state: &'static str,
    pub running: usize,
    pub instances: u64,
    /// Ended tasks kept that failed or were lost.
    pub failed: usize,
    /// Failures counted by the back-off (each one a restart).
    pub restarts: u32,
    pub flapping: bool,
    pub last_failure: String,
}

#[derive(Template)]
#[template(path = "pdl.html")]
struct PdlPage {
    frame: Frame,
    pdl: String,
    view: NodeView,
    cpu: Chart,
    mem: Chart,
    jobs: Vec<JobRow>,
    failed: usize,
    restarts: u32,
    flapping: usize,
    interval_s: u64,
}

fn bad_pdl(pdl: &str, why: &str) -> crate::error::UiError {
    ocean_master::Error::Invalid {
        field: "pdl".into(),
        reason: format!(
            "'{pdl}' {why}: expected cop.<company>_owt.<department>_pdl.<product line>"
        ),
    }
    .into()
}

fn job_row(
    j: &JobView,
    counts: &TaskCounts,
    ended: &[&ocean_master::service::views::TaskView],
) -> JobRow {
    let mine: Vec<_> = ended.iter().filter(|t| t.job == j.id).collect();
    let last = mine.iter().max_by_key(|t| t.ended_ms);
    JobRow {
        id: j.id.clone(),
        state: job_state(j, counts.job(&j.id).running),
        running: counts.job(&j.id).running,
        instances: instances(j),
        failed: mine.len(),
        restarts: j.backoff.as_ref().map_or(0, |b| b.failures),
        flapping: j.flapping,
        last_failure: last
            .map(|t| {
                let why = if t.message.is_empty() {
                    &t.reason
                } else {
                    &t.message
                };
                format!("{} {}: {why}", t.state, t.id)
            })
            .unwrap_or_default(),
    }
}

/// `GET /ui/pdl/{pdl}`.
pub async fn page(
    State(s): State<UiState>,
    Path(pdl): Path<String>,
    Query(seen): Query<Seen>,
) -> Result<Html<String>> {
    let node = TreeNode::parse_field(&pdl, "pdl").map_err(|e| bad_pdl(&pdl, &e.reason))?;
    if pdl_of(&format!("{node}_")).as_deref() != Some(node.to_string().as_str()) {
        return Err(bad_pdl(&pdl, "is not a product line"));
    }
    let pdl = node.to_string();
    let m: &Master = &s.master;
    let svc = m.service();
    let jobs = svc.list_jobs(Some(&pdl), seen.options()).await?;
    let (tasks_v, tasks) = svc
        .list_tasks(&TaskFilter::default(), seen.options())
        .await?;
    let tasks: Vec<_> = task_views(&tasks)
        .into_iter()
        .filter(|t| pdl_of(&t.job).as_deref() == Some(pdl.as_str()))
        .collect();
    let counts = TaskCounts::of(&tasks);
    let failed: Vec<_> = tasks
        .iter()
        .filter(|t| t.ended_ms.is_some() && (t.state == FAILED || t.state == LOST))
        .collect();
    let view = svc.tree_over(&pdl, &s.scheduler, seen.options()).await?;
    let rows: Vec<JobRow> = jobs
        .jobs
        .iter()
        .map(|j| job_row(j, &counts, &failed))
        .collect();
    let series = s.history.series(&pdl);
    let quota = view.quota;
    let cpu = chart(
        &series.iter().map(|(_, u)| u.cpus).collect::<Vec<_>>(),
        quota.and_then(|q| q.cpus),
        CHART_W,
        CHART_H,
    );
    let mem = chart(
        &series.iter().map(|(_, u)| u.mem as f64).collect::<Vec<_>>(),
        quota.and_then(|q| q.mem).map(|m| m as f64),
        CHART_W,
        CHART_H,
    );
    let page = PdlPage {
        frame: Frame::new(m, "tree", jobs.version.min(tasks_v), &seen),
        failed: failed.len(),
        restarts: rows.iter().map(|r| r.restarts).sum(),
        flapping: rows.iter().filter(|r| r.flapping).count(),
        jobs: rows,
        interval_s: s.history.interval.as_secs(),
        pdl,
        view,
        cpu,
        mem,
    };
    render("pdl", &page)
}

impl PdlPage {
    fn href(id: &str) -> String {
        format!("/ui/jobs/{}", path_segment(id))
    }
}
