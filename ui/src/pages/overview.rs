//! `/ui/`: the cluster at a glance — masters, agents by status, capacity,
//! jobs by state, why tasks wait, and the latest changes.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Html;
use ocean_master::service::members::MemberStatusView;
use ocean_master::Master;

use super::{path_segment, Frame, Seen};
use crate::error::{render, Result};
use crate::summary::percent;

/// How many waiting reasons and recent changes the overview lists (the
/// summary's own limit).
pub const TOP: usize = ocean_master::service::summary::TOP;

/// One resource's total, allocated and free.
#[derive(Debug, Clone)]
pub struct Capacity {
    pub name: &'static str,
    pub unit: &'static str,
    pub total: f64,
    pub allocated: f64,
    pub free: f64,
    pub percent: u32,
}

impl Capacity {
    /// An amount in this resource's unit: cores to a tenth, MiB whole.
    pub fn show(&self, v: &f64) -> String {
        if self.unit == "cores" {
            format!("{v:.1} {}", self.unit)
        } else {
            format!("{v:.0} {}", self.unit)
        }
    }

    fn new(name: &'static str, unit: &'static str, total: f64, allocated: f64) -> Self {
        Capacity {
            name,
            unit,
            total,
            allocated,
            free: (total - allocated).max(0.0),
            percent: percent(allocated, total),
        }
    }
}

/// Jobs waiting for the same reason.
#[derive(Debug, Clone)]
pub struct WaitReason {
    pub reason: String,
    pub jobs: usize,
    /// Instances asked for but not live.
    pub tasks: u64,
    /// One of the jobs, to link to.
    pub example: String,
}

/// A recent change: a job or task and the version it last changed at.
#[derive(Debug, Clone)]
pub struct Recent {
    pub version: u64,
    pub kind: &'static str,
    pub id: String,
    pub href: String,
    pub what: String,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    frame: Frame,
    leader: Option<u64>,
    masters: Vec<MemberStatusView>,
    agents_total: usize,
    agents_by_status: Vec<(String, usize)>,
    agents_unreachable: Option<usize>,
    capacity: Vec<Capacity>,
    jobs_total: usize,
    jobs_by_state: Vec<(&'static str, usize)>,
    waiting: Vec<WaitReason>,
    tasks_waiting: u64,
    /// Distinct reasons (the table lists the first [`TOP`]).
    waiting_reasons: usize,
    recent: Vec<Recent>,
}

/// `GET /ui/`: every number comes from the service's summary (counts the
/// master keeps as the state changes), so the page costs the same at
/// 1,000 tasks as at 100,000.
pub async fn page(State(m): State<Master>, Query(q): Query<Seen>) -> Result<Html<String>> {
    let svc = m.service();
    let status = svc.status();
    let s = svc.summary(q.options()).await?;
    let capacity = s
        .capacity
        .iter()
        .map(|c| {
            let (name, unit) = match c.resource {
                "cpu" => ("CPU", "cores"),
                "mem" => ("Memory", "MiB"),
                _ => ("Disk", "MiB"),
            };
            Capacity::new(name, unit, c.total, c.allocated)
        })
        .collect();
    let waiting = s
        .waiting
        .iter()
        .map(|w| WaitReason {
            reason: w.reason.clone(),
            jobs: w.jobs as usize,
            tasks: w.tasks,
            example: w.example.clone(),
        })
        .collect();
    let recent = s
        .recent
        .iter()
        .map(|r| Recent {
            version: r.version,
            kind: if r.kind == "task" { "task" } else { "job" },
            id: r.id.clone(),
            href: if r.kind == "task" {
                format!("/ui/tasks/{}", path_segment(&r.id))
            } else {
                format!("/ui/jobs/{}", path_segment(&r.id))
            },
            what: r.what.clone(),
        })
        .collect();
    let page = OverviewPage {
        frame: Frame::new(&m, "overview", s.version, &q),
        leader: status.leader,
        masters: status.members,
        agents_total: s.agents as usize,
        agents_by_status: s
            .agents_by_status
            .iter()
            .map(|(st, n)| (st.clone(), *n as usize))
            .collect(),
        agents_unreachable: s.agents_unreachable.map(|n| n as usize),
        capacity,
        jobs_total: s.jobs as usize,
        jobs_by_state: s
            .jobs_by_state
            .iter()
            .map(|(st, n)| (*st, *n as usize))
            .collect(),
        waiting,
        tasks_waiting: s.tasks_waiting,
        waiting_reasons: s.waiting_reasons as usize,
        recent,
    };
    render("overview", &page)
}
