//! `/ui/`: the cluster at a glance — masters, agents by status, capacity,
//! jobs by state, why tasks wait, and the latest changes.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Html;
use ocean_master::kernel::state::AGENT_STATUSES;
use ocean_master::service::members::MemberStatusView;
use ocean_master::service::tasks::TaskFilter;
use ocean_master::service::views::AgentView;
use ocean_master::Master;

use super::{path_segment, Frame, Seen};
use crate::error::{render, Result};
use crate::summary::{instances, job_state, percent, task_views, TaskCounts, JOB_STATES};

/// How many waiting reasons and recent changes the overview lists.
const TOP: usize = 10;

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
    recent: Vec<Recent>,
}

/// `GET /ui/`.
pub async fn page(State(m): State<Master>, Query(q): Query<Seen>) -> Result<Html<String>> {
    let svc = m.service();
    let status = svc.status();
    let jobs = svc.list_jobs(None, q.options()).await?;
    let (agents_v, agents) = svc.list_agents(q.options()).await?;
    let live = TaskFilter {
        ended: Some(false),
        ..Default::default()
    };
    let (tasks_v, tasks) = svc.list_tasks(&live, q.options()).await?;
    let tasks = task_views(&tasks);
    let counts = TaskCounts::of(&tasks);

    let agents: Vec<_> = agents
        .iter()
        .map(|(a, l)| (AgentView::from(a.as_ref()), *l))
        .collect();
    let mut by_status: BTreeMap<String, usize> =
        AGENT_STATUSES.iter().map(|s| (s.to_string(), 0)).collect();
    for (a, _) in &agents {
        *by_status.entry(a.status.clone()).or_default() += 1;
    }
    // Liveness is the leader's knowledge: a follower shows none.
    let agents_unreachable = agents
        .iter()
        .map(|(_, l)| l.map(|l| usize::from(l.unreachable)))
        .sum::<Option<usize>>();
    let (cpus, mem, disk) = agents.iter().fold((0.0, 0.0, 0.0), |(c, m, d), (a, _)| {
        (
            c + a.resources.cpus,
            m + a.resources.mem as f64,
            d + a.resources.disk as f64,
        )
    });
    let capacity = vec![
        Capacity::new("CPU", "cores", cpus, counts.total.cpus),
        Capacity::new("Memory", "MiB", mem, counts.total.mem as f64),
        Capacity::new("Disk", "MiB", disk, counts.total.disk as f64),
    ];

    let mut by_state: BTreeMap<&str, usize> = JOB_STATES.iter().map(|s| (*s, 0)).collect();
    let mut reasons: BTreeMap<String, WaitReason> = BTreeMap::new();
    for j in &jobs.jobs {
        let c = counts.job(&j.id);
        *by_state.entry(job_state(j, c.running)).or_default() += 1;
        if let Some(reason) = &j.waiting {
            let r = reasons.entry(reason.clone()).or_insert_with(|| WaitReason {
                reason: reason.clone(),
                jobs: 0,
                tasks: 0,
                example: j.id.clone(),
            });
            r.jobs += 1;
            r.tasks += instances(j).saturating_sub(c.live as u64);
        }
    }
    let tasks_waiting = reasons.values().map(|r| r.tasks).sum();
    let mut waiting: Vec<WaitReason> = reasons.into_values().collect();
    waiting.sort_by(|a, b| b.tasks.cmp(&a.tasks).then(b.jobs.cmp(&a.jobs)));
    waiting.truncate(TOP);

    let mut recent: Vec<Recent> = jobs
        .jobs
        .iter()
        .map(|j| Recent {
            version: j.updated_version,
            kind: "job",
            id: j.id.clone(),
            href: format!("/ui/jobs/{}", path_segment(&j.id)),
            what: format!("spec version {}", j.spec_version),
        })
        .chain(tasks.iter().map(|t| Recent {
            version: t.updated_version,
            kind: "task",
            id: t.id.clone(),
            href: format!("/ui/tasks/{}", path_segment(&t.id)),
            what: t.state.clone(),
        }))
        .collect();
    recent.sort_by(|a, b| b.version.cmp(&a.version).then(a.id.cmp(&b.id)));
    recent.truncate(TOP);

    let version = jobs.version.min(agents_v).min(tasks_v);
    let page = OverviewPage {
        frame: Frame::new(&m, "overview", version, &q),
        leader: status.leader,
        masters: status.members,
        agents_total: agents.len(),
        agents_by_status: by_status.into_iter().collect(),
        agents_unreachable,
        capacity,
        jobs_total: jobs.jobs.len(),
        jobs_by_state: JOB_STATES.iter().map(|s| (*s, by_state[s])).collect(),
        waiting,
        tasks_waiting,
        recent,
    };
    render("overview", &page)
}
