//! The cluster in numbers, and jobs a page at a time, read from counts the
//! state keeps as it changes ([`crate::kernel::state::summary`]), so their
//! cost does not grow with the number of tasks: `GET /v1/summary` and
//! `GET /v1/summary/jobs`, and what the dashboard's overview and jobs list
//! show.

use ocean_spec::tree::TreeNode;
use serde::Serialize;

use super::types::JobView;
use super::{invalid, Kernel, ReadOptions, Service};
use crate::error::Result;
use crate::kernel::state::summary::{Held, JOB_STATES};
use crate::kernel::state::{Change, AGENT_STATUSES};

/// How many waiting reasons and recent changes a summary lists.
pub const TOP: usize = 10;

/// The orders a page of jobs can be sorted in.
pub const JOB_SORTS: [&str; 3] = ["id", "updated", "state"];

/// The most jobs one page may ask for.
pub const MAX_PER_PAGE: usize = 500;

/// Jobs waiting for one reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct WaitingReason {
    pub reason: String,
    pub jobs: u64,
    /// Instances asked for but not live.
    pub tasks: u64,
    /// The first of its jobs by id, to link to.
    pub example: String,
}

/// Live tasks and what they hold.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct HeldView {
    pub live: u64,
    pub running: u64,
    pub cpus: f64,
    pub mem_mib: u64,
    pub disk_mib: u64,
}

impl From<Held> for HeldView {
    fn from(h: Held) -> Self {
        HeldView {
            live: h.live,
            running: h.running,
            cpus: h.millicores as f64 / 1000.0,
            mem_mib: h.mem_mib,
            disk_mib: h.disk_mib,
        }
    }
}

/// One resource over the cluster: offered by agents, held by live tasks,
/// free, and used (`None`: agents do not report usage yet).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CapacityView {
    pub resource: &'static str,
    pub unit: &'static str,
    pub total: f64,
    pub allocated: f64,
    pub free: f64,
    pub used: Option<f64>,
}

impl CapacityView {
    fn new(resource: &'static str, unit: &'static str, total: f64, allocated: f64) -> Self {
        CapacityView {
            resource,
            unit,
            total,
            allocated,
            free: (total - allocated).max(0.0),
            used: None,
        }
    }
}

/// A recent change to a job or task, from the serving master's feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RecentChange {
    pub version: u64,
    /// `job`, `job_deleted` or `task`.
    pub kind: &'static str,
    pub id: String,
    /// A job's spec version, or a task's state.
    pub what: String,
}

/// `GET /v1/summary`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SummaryView {
    pub version: u64,
    pub jobs: u64,
    /// Every state of [`JOB_STATES`], in that order, with its jobs.
    #[schema(value_type = Vec<Vec<Value>>)]
    pub jobs_by_state: Vec<(&'static str, u64)>,
    pub tasks: HeldView,
    /// Tasks asked for but not live, over every waiting job.
    pub tasks_waiting: u64,
    /// The reasons with the most tasks waiting, at most [`TOP`].
    pub waiting: Vec<WaitingReason>,
    /// How many distinct reasons there are.
    pub waiting_reasons: u64,
    pub agents: u64,
    /// Every status of [`AGENT_STATUSES`] (and any other an agent
    /// reports), with its agents.
    #[schema(value_type = Vec<Vec<Value>>)]
    pub agents_by_status: Vec<(String, u64)>,
    /// Agents whose stream the leader finds unreachable; `None` on a
    /// follower, which does not see agents' streams.
    pub agents_unreachable: Option<u64>,
    pub capacity: Vec<CapacityView>,
    /// The latest changes to jobs and tasks this master has applied, newest
    /// first, at most [`TOP`] (none yet after it started).
    pub recent: Vec<RecentChange>,
}

/// What a page of jobs asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobPageQuery {
    /// A service-tree node (as `GET /v1/jobs?prefix=`); none: every job.
    pub prefix: Option<String>,
    /// One of [`JOB_SORTS`]; none: `id`.
    pub sort: Option<String>,
    /// From 1; none: 1.
    pub page: Option<usize>,
    /// At most [`MAX_PER_PAGE`]; none: 50.
    pub per_page: Option<usize>,
}

/// One job of a page, with its counts.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct JobRow {
    #[serde(flatten)]
    pub job: JobView,
    /// In one word (see [`crate::kernel::state::summary::job_state`]).
    pub state: &'static str,
    pub instances: u64,
    pub tasks: HeldView,
}

/// `GET /v1/summary/jobs`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct JobPage {
    pub version: u64,
    /// Jobs that match, over every page.
    pub total: usize,
    pub page: usize,
    pub per_page: usize,
    pub sort: String,
    pub jobs: Vec<JobRow>,
}

impl<K: Kernel> Service<K> {
    /// The cluster in numbers; its cost grows with the number of distinct
    /// waiting reasons and agents' liveness checks, never with tasks.
    pub async fn summary(&self, opts: ReadOptions) -> Result<SummaryView> {
        // Its recent events name jobs anywhere in the tree.
        self.authorize("", super::acl::Right::Read)?;
        self.kernel.wait_read(opts).await?;
        let (feed, _) = self.kernel.watch_source();
        // Liveness is the leader's knowledge (its agents' streams): a
        // follower answers None. Only the unreachable few are looked up,
        // in the same read as the rest.
        let unreachable = self.kernel.unreachable_agents();
        let mut view = self.kernel.read(|st| {
            let s = &st.summary;
            let mut waiting: Vec<WaitingReason> = s
                .waiting
                .iter()
                .map(|(reason, w)| WaitingReason {
                    reason: reason.to_string(),
                    jobs: w.jobs(),
                    tasks: w.tasks,
                    example: w.example().to_string(),
                })
                .collect();
            waiting.sort_by(|a, b| {
                b.tasks
                    .cmp(&a.tasks)
                    .then(b.jobs.cmp(&a.jobs))
                    .then(a.reason.cmp(&b.reason))
            });
            let waiting_reasons = waiting.len() as u64;
            waiting.truncate(TOP);
            let mut by_status: Vec<(String, u64)> = AGENT_STATUSES
                .iter()
                .map(|st| {
                    (
                        st.to_string(),
                        s.agents_by_status.get(*st).copied().unwrap_or(0),
                    )
                })
                .collect();
            for (status, n) in &s.agents_by_status {
                if !AGENT_STATUSES.contains(&status.as_str()) {
                    by_status.push((status.clone(), *n));
                }
            }
            let alloc = s.allocated;
            SummaryView {
                version: st.version,
                jobs: st.jobs.len() as u64,
                jobs_by_state: JOB_STATES
                    .iter()
                    .map(|j| (*j, s.jobs_by_state.get(j).copied().unwrap_or(0)))
                    .collect(),
                tasks: alloc.into(),
                tasks_waiting: s.waiting.values().map(|w| w.tasks).sum(),
                waiting,
                waiting_reasons,
                agents: st.agents.len() as u64,
                agents_by_status: by_status,
                agents_unreachable: unreachable.as_ref().map(|ids| {
                    ids.iter()
                        .filter(|id| st.agents.contains_key(id.as_str()))
                        .count() as u64
                }),
                capacity: vec![
                    CapacityView::new(
                        "cpu",
                        "cores",
                        s.capacity.millicores as f64 / 1000.0,
                        alloc.millicores as f64 / 1000.0,
                    ),
                    CapacityView::new(
                        "mem",
                        "MiB",
                        s.capacity.mem_mib as f64,
                        alloc.mem_mib as f64,
                    ),
                    CapacityView::new(
                        "disk",
                        "MiB",
                        s.capacity.disk_mib as f64,
                        alloc.disk_mib as f64,
                    ),
                ],
                recent: Vec::new(),
            }
        });
        view.recent = feed
            .recent(TOP, view.version)
            .into_iter()
            .filter_map(|(v, c)| recent_change(v, &c))
            .collect();
        Ok(view)
    }

    /// One page of jobs under a node, sorted over the state's indexes
    /// (by id, by last change, by state): the page's rows are built for
    /// its jobs alone, and no task is read.
    pub async fn job_page(&self, q: &JobPageQuery, opts: ReadOptions) -> Result<JobPage> {
        let node = match q.prefix.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
            Some(p) => {
                TreeNode::parse_field(p, "prefix").map_err(|e| invalid(e.field, e.reason))?
            }
            None => TreeNode::root(),
        };
        // A page's total counts every job under the node: the whole node
        // must be readable, not only some jobs in it.
        self.authorize_node(&node, super::acl::Right::Read)?;
        let sort = q.sort.clone().unwrap_or_else(|| "id".to_string());
        if !JOB_SORTS.contains(&sort.as_str()) {
            return Err(invalid(
                "sort",
                format!("'{sort}' is not one of {}", JOB_SORTS.join(", ")),
            ));
        }
        let page = q.page.unwrap_or(1);
        if page == 0 {
            return Err(invalid("page", "pages count from 1"));
        }
        let per_page = q.per_page.unwrap_or(50);
        if per_page == 0 || per_page > MAX_PER_PAGE {
            return Err(invalid(
                "per_page",
                format!("{per_page} is not between 1 and {MAX_PER_PAGE}"),
            ));
        }
        self.kernel.wait_read(opts).await?;
        Ok(self.kernel.read(|st| {
            let s = &st.summary;
            let ids: Box<dyn Iterator<Item = &str>> = match sort.as_str() {
                "updated" => Box::new(s.ids_by_update()),
                "state" => Box::new(s.ids_by_state()),
                _ => Box::new(st.jobs.keys().map(String::as_str)),
            };
            let skip = (page - 1).saturating_mul(per_page);
            let mut total = 0;
            let mut jobs = Vec::new();
            for id in ids.filter(|id| node.covers_id(id)) {
                if total >= skip && jobs.len() < per_page {
                    if let (Some(job), Some(c)) = (st.jobs.get(id), s.job(id)) {
                        jobs.push(JobRow {
                            job: JobView::from(job.as_ref()),
                            state: c.state,
                            instances: c.instances,
                            tasks: c.held.into(),
                        });
                    }
                }
                total += 1;
            }
            JobPage {
                version: st.version,
                total,
                page,
                per_page,
                sort,
                jobs,
            }
        }))
    }
}

fn recent_change(version: u64, c: &Change) -> Option<RecentChange> {
    let (kind, id, what) = match c {
        Change::JobPut(j) => (
            "job",
            j.id.clone(),
            format!("spec version {}", j.spec_version),
        ),
        Change::JobDeleted(id) => ("job_deleted", id.clone(), "deleted".to_string()),
        Change::TaskPut(t) => ("task", t.id.clone(), t.state.clone()),
        _ => return None,
    };
    Some(RecentChange {
        version,
        kind,
        id,
        what,
    })
}
