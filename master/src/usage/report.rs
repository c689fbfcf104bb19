//! `GET /v1/usage`: allocated against used for every tree node, job, task
//! and agent under a node, over a window. Tasks are the leaves; a job sums
//! its tasks, a tree node its jobs and child nodes, an agent the tasks it
//! runs; so every parent is the sum of its children. Tree nodes, jobs, the
//! total and (for the whole tree) agents also carry their own ring over
//! the window (`series`): their total at each instant.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::nodes::ROOT;
use super::{Point, Series, TaskEntry, UsageStore};

/// A live task as the state knows it: what it asked for, where it runs.
#[derive(Debug, Clone)]
pub struct Allocation {
    /// Task id.
    pub task: String,
    /// Its job.
    pub job: String,
    /// Its agent.
    pub agent: String,
    /// Cores asked.
    pub cpus: f64,
    /// Memory asked, MiB.
    pub mem_mib: u64,
    /// Disk asked, MiB.
    pub disk_mib: u64,
}

/// Requested resources.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Allocated {
    pub cpus: f64,
    pub mem_mib: u64,
    pub disk_mib: u64,
}

/// Used resources over the window (means, and the highest point).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Used {
    /// Mean cores over the window.
    pub cpu_cores: f64,
    /// The highest of the window's samples (sum of children's highest).
    pub cpu_cores_peak: f64,
    /// Mean anonymous memory (RSS), bytes.
    pub memory_rss_bytes: u64,
    /// The highest RSS sample in the window.
    pub memory_rss_peak_bytes: u64,
    /// Mean page cache, bytes.
    pub memory_cache_bytes: u64,
    /// From the newest sample: the kernel's highest charge since start.
    pub memory_peak_bytes: u64,
    /// From the newest sample.
    pub pids: u64,
    pub disk_bytes: u64,
    pub oom_kills: u64,
    pub cpu_throttled_ns: u64,
    /// Tasks with at least one sample in the window.
    pub sampled_tasks: u64,
}

impl Used {
    fn add(&mut self, o: &Used) {
        self.cpu_cores += o.cpu_cores;
        self.cpu_cores_peak += o.cpu_cores_peak;
        self.memory_rss_bytes += o.memory_rss_bytes;
        self.memory_rss_peak_bytes += o.memory_rss_peak_bytes;
        self.memory_cache_bytes += o.memory_cache_bytes;
        self.memory_peak_bytes += o.memory_peak_bytes;
        self.pids += o.pids;
        self.disk_bytes += o.disk_bytes;
        self.oom_kills += o.oom_kills;
        self.cpu_throttled_ns += o.cpu_throttled_ns;
        self.sampled_tasks += o.sampled_tasks;
    }
}

impl Allocated {
    fn add(&mut self, o: &Allocated) {
        self.cpus += o.cpus;
        self.mem_mib += o.mem_mib;
        self.disk_mib += o.disk_mib;
    }
}

/// One row of the answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Row {
    /// The node path, job id, task id or agent id.
    pub id: String,
    /// The row this one is summed into (a node or job; empty for the top).
    pub parent: String,
    pub tasks: u64,
    pub allocated: Allocated,
    pub used: Used,
    /// The row's own ring over the window (nodes, jobs, the total; agents
    /// when the whole tree is asked): absent for tasks and for rows the
    /// leader has no ring of yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series: Option<SeriesView>,
}

/// A row's own ring over the window: its total at each snapshot (every
/// 5 s for nodes and jobs; each report for agents). Unlike `used`, whose
/// peaks sum the children's own peaks, `cpu_cores_peak` here is the most
/// the row used at one instant; and it counts tasks that ended within the
/// window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesView {
    /// Points in the window.
    pub points: usize,
    /// Mean of the totals.
    pub cpu_cores: f64,
    /// The highest total.
    pub cpu_cores_peak: f64,
    pub memory_rss_bytes: u64,
    pub memory_rss_peak_bytes: u64,
    pub memory_cache_bytes: u64,
    /// The points themselves, oldest first, with `history=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<HistoryPoint>>,
}

/// One point of a row's ring.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HistoryPoint {
    /// When (leader clock), ms since the epoch, to the second.
    pub at_ms: u64,
    pub cpu_cores: f64,
    pub memory_rss_bytes: u64,
    pub memory_cache_bytes: u64,
}

impl SeriesView {
    fn new(s: &Series, history: bool) -> Self {
        let w = &s.window;
        SeriesView {
            points: w.points,
            cpu_cores: round3(w.cpu_cores),
            cpu_cores_peak: round3(w.cpu_cores_max),
            memory_rss_bytes: w.rss_bytes as u64,
            memory_rss_peak_bytes: w.rss_bytes_max,
            memory_cache_bytes: w.cache_bytes as u64,
            history: history.then(|| s.points.iter().map(HistoryPoint::from).collect()),
        }
    }
}

impl From<&Point> for HistoryPoint {
    fn from(p: &Point) -> Self {
        HistoryPoint {
            at_ms: u64::from(p.at_s) * 1000,
            cpu_cores: if p.cpu_milli == super::NO_RATE {
                0.0
            } else {
                f64::from(p.cpu_milli) / 1000.0
            },
            memory_rss_bytes: u64::from(p.rss_kib) * 1024,
            memory_cache_bytes: u64::from(p.cache_kib) * 1024,
        }
    }
}

/// The answer of `GET /v1/usage`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageReportView {
    /// The node asked for (empty: the whole tree).
    pub node: String,
    pub window_seconds: u64,
    /// The leader's clock when it was built, ms since the epoch.
    pub at_ms: u64,
    /// The master that built it (the leader, which holds the samples).
    pub leader: u64,
    /// The node asked for, summing everything below.
    pub total: Row,
    /// Tree nodes below it, parents before children.
    pub nodes: Vec<Row>,
    pub jobs: Vec<Row>,
    pub tasks: Vec<Row>,
    /// Agents, summing the tasks above that run on them.
    pub agents: Vec<Row>,
}

/// `usage` on a task's REST answer: its newest sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskUsageView {
    /// When the leader received it, ms since the epoch.
    pub received_ms: u64,
    /// `null` on a task's first sample (no interval yet).
    pub cpu_cores: Option<f64>,
    pub cpu_usage_ns: u64,
    pub cpu_throttled_ns: u64,
    /// Periods in which the cpu quota held it back (cumulative).
    #[serde(default)]
    pub cpu_throttled_periods: u64,
    pub memory_rss_bytes: u64,
    pub memory_cache_bytes: u64,
    pub memory_peak_bytes: u64,
    /// 0 = unlimited.
    pub memory_limit_bytes: u64,
    pub oom_kills: u64,
    pub pids: u64,
    pub disk_bytes: u64,
}

impl TaskUsageView {
    /// The view of a sample received at `received_ms`.
    pub fn new(received_ms: u64, u: &ocean_proto::agent::TaskUsage) -> Self {
        TaskUsageView {
            received_ms,
            cpu_cores: u.cpu_cores.map(round3),
            cpu_usage_ns: u.cpu_usage_ns,
            cpu_throttled_ns: u.cpu_throttled_ns,
            cpu_throttled_periods: u.cpu_throttled_periods,
            memory_rss_bytes: u.memory_rss_bytes,
            memory_cache_bytes: u.memory_cache_bytes,
            memory_peak_bytes: u.memory_peak_bytes,
            memory_limit_bytes: u.memory_limit_bytes,
            oom_kills: u.oom_kills,
            pids: u.pids,
            disk_bytes: u.disk_bytes,
        }
    }
}

/// `usage` on an agent's REST answer: the sums of its newest report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentUsageView {
    pub received_ms: u64,
    /// Tasks in the report.
    pub tasks: usize,
    pub cpu_cores: f64,
    pub memory_rss_bytes: u64,
    pub memory_cache_bytes: u64,
}

impl AgentUsageView {
    /// The view of an agent's newest sums.
    pub fn new(received_ms: u64, tasks: usize, p: &super::Point) -> Self {
        AgentUsageView {
            received_ms,
            tasks,
            cpu_cores: f64::from(p.cpu_milli) / 1000.0,
            memory_rss_bytes: u64::from(p.rss_kib) * 1024,
            memory_cache_bytes: u64::from(p.cache_kib) * 1024,
        }
    }
}

/// A task's usage over the window from its entry.
pub fn used(entry: &TaskEntry, since_s: u32) -> Used {
    let w = entry.ring.window(since_s);
    if w.points == 0 {
        return Used::default();
    }
    let l = &entry.latest;
    Used {
        cpu_cores: round3(w.cpu_cores),
        cpu_cores_peak: round3(w.cpu_cores_max),
        memory_rss_bytes: w.rss_bytes as u64,
        memory_rss_peak_bytes: w.rss_bytes_max,
        memory_cache_bytes: w.cache_bytes as u64,
        memory_peak_bytes: l.memory_peak_bytes,
        pids: l.pids,
        disk_bytes: l.disk_bytes,
        oom_kills: l.oom_kills,
        cpu_throttled_ns: l.cpu_throttled_ns,
        sampled_tasks: 1,
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The tree nodes of a job id, top first: each prefix of its `tag.value`
/// pieces before `job.` (for `cop.c_owt.o_pdl.p_service.s_job.j_cluster.x`:
/// `cop.c`, `cop.c_owt.o`, `cop.c_owt.o_pdl.p`, `cop.c_owt.o_pdl.p_service.s`).
pub fn ancestors(job: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut end = 0;
    for piece in job.split('_') {
        if piece.starts_with("job.") {
            break;
        }
        end += piece.len();
        out.push(&job[..end]);
        end += 1;
    }
    out
}

/// The tree nodes of `job` strictly below `node` (which covers the job),
/// top first. `node` may be any tags of the tree (`pdl.p` alone): its last
/// tag places it among the job's pieces.
fn below<'a>(job: &'a str, node: &str) -> Vec<&'a str> {
    let all = ancestors(job);
    let Some(last) = node.rsplit('_').next().filter(|l| !l.is_empty()) else {
        return all;
    };
    let suffix = format!("_{last}");
    match all.iter().position(|a| *a == last || a.ends_with(&suffix)) {
        Some(i) => all[i + 1..].to_vec(),
        // The node names the job itself (job or cluster tags).
        None => Vec::new(),
    }
}

/// The key of the ring of `node` (as asked: a full path or any of its
/// tags), found through a job under it; `None` when the node names jobs
/// (`job.` or `cluster.` tags), which have no one tree node.
fn ring_key(node: &str, job: Option<&str>) -> Option<String> {
    if node.is_empty() {
        return Some(ROOT.to_string());
    }
    let Some(job) = job else {
        return Some(node.to_string());
    };
    let last = node.rsplit('_').next()?;
    let suffix = format!("_{last}");
    ancestors(job)
        .into_iter()
        .find(|a| *a == last || a.ends_with(&suffix))
        .map(str::to_string)
        .or_else(|| (job == node).then(|| job.to_string()))
}

/// Builds the answer for `node` (its string form; empty for the whole
/// tree) from the live tasks under it, over the last `window_s` seconds
/// before `now_ms`; with `history`, each row's ring points too.
pub fn build(
    store: &UsageStore,
    node: &str,
    tasks: &[Allocation],
    window_s: u64,
    now_ms: u64,
    leader: u64,
    history: bool,
) -> UsageReportView {
    let since_s = (now_ms / 1000).saturating_sub(window_s) as u32;
    let entries = store.tasks(tasks.iter().map(|t| t.task.as_str()));
    let mut nodes: BTreeMap<String, Row> = BTreeMap::new();
    let mut jobs: BTreeMap<String, Row> = BTreeMap::new();
    let mut agents: BTreeMap<String, Row> = BTreeMap::new();
    let mut rows = Vec::with_capacity(tasks.len());
    let mut total = Row {
        id: node.to_string(),
        ..Default::default()
    };
    for t in tasks {
        let allocated = Allocated {
            cpus: t.cpus,
            mem_mib: t.mem_mib,
            disk_mib: t.disk_mib,
        };
        let used = entries
            .get(&t.task)
            .map(|e| used(e, since_s))
            .unwrap_or_default();
        let row = Row {
            id: t.task.clone(),
            parent: t.job.clone(),
            tasks: 1,
            allocated,
            used,
            series: None,
        };
        let listed = below(&t.job, node);
        let job_parent = listed.last().map_or(node, |p| *p);
        let job = jobs.entry(t.job.clone()).or_insert_with(|| Row {
            id: t.job.clone(),
            parent: job_parent.to_string(),
            ..Default::default()
        });
        sum_into(job, &row);
        for (i, n) in listed.iter().enumerate() {
            let parent = if i == 0 { node } else { listed[i - 1] };
            let r = nodes.entry(n.to_string()).or_insert_with(|| Row {
                id: n.to_string(),
                parent: parent.to_string(),
                ..Default::default()
            });
            sum_into(r, &row);
        }
        let agent = agents.entry(t.agent.clone()).or_insert_with(|| Row {
            id: t.agent.clone(),
            ..Default::default()
        });
        sum_into(agent, &row);
        sum_into(&mut total, &row);
        rows.push(row);
    }
    let mut nodes: Vec<Row> = nodes.into_values().collect();
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    let mut jobs: Vec<Row> = jobs.into_values().collect();
    let mut agents: Vec<Row> = agents.into_values().collect();
    // The rows' own rings. Agents' cover all their tasks, so only a
    // reader of the whole tree sees them.
    let total_key = ring_key(node, tasks.first().map(|t| t.job.as_str()));
    let agent_ids = agents
        .iter()
        .filter(|_| node.is_empty())
        .map(|a| a.id.as_str());
    let node_keys = nodes
        .iter()
        .chain(jobs.iter())
        .map(|r| r.id.as_str())
        .chain(total_key.as_deref());
    let (node_series, agent_series) = store.windows(node_keys, agent_ids, since_s);
    for r in nodes.iter_mut().chain(jobs.iter_mut()) {
        r.series = node_series.get(&r.id).map(|s| SeriesView::new(s, history));
    }
    if let Some(k) = &total_key {
        total.series = node_series.get(k).map(|s| SeriesView::new(s, history));
    }
    for a in &mut agents {
        a.series = agent_series.get(&a.id).map(|s| SeriesView::new(s, history));
    }
    UsageReportView {
        node: node.to_string(),
        window_seconds: window_s,
        at_ms: now_ms,
        leader,
        total,
        nodes,
        jobs,
        tasks: rows,
        agents,
    }
}

fn sum_into(into: &mut Row, task: &Row) {
    into.tasks += 1;
    into.allocated.add(&task.allocated);
    into.used.add(&task.used);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocean_proto::agent::{TaskUsage, UsageReport};

    const JOB_A: &str = "cop.c_owt.o_pdl.p_service.s_job.a_cluster.dev";
    const JOB_B: &str = "cop.c_owt.o_pdl.q_service.s_job.b_cluster.dev";

    fn alloc(task: &str, job: &str, agent: &str) -> Allocation {
        Allocation {
            task: task.into(),
            job: job.into(),
            agent: agent.into(),
            cpus: 1.0,
            mem_mib: 128,
            disk_mib: 10,
        }
    }

    #[test]
    fn ancestors_are_the_prefixes_before_the_job() {
        assert_eq!(
            ancestors(JOB_A),
            vec![
                "cop.c",
                "cop.c_owt.o",
                "cop.c_owt.o_pdl.p",
                "cop.c_owt.o_pdl.p_service.s"
            ]
        );
    }

    #[test]
    fn the_ring_of_a_node_asked_by_its_tags_is_found_through_a_job() {
        assert_eq!(ring_key("", Some(JOB_A)).as_deref(), Some(ROOT));
        assert_eq!(
            ring_key("pdl.p", Some(JOB_A)).as_deref(),
            Some("cop.c_owt.o_pdl.p")
        );
        assert_eq!(
            ring_key("cop.c_owt.o", Some(JOB_A)).as_deref(),
            Some("cop.c_owt.o")
        );
        assert_eq!(ring_key(JOB_A, Some(JOB_A)).as_deref(), Some(JOB_A));
        // `job.a` names jobs wherever they sit: no one ring.
        assert_eq!(ring_key("job.a", Some(JOB_A)), None);
        // Without a task under it, the node as given.
        assert_eq!(
            ring_key("cop.c_owt.o_pdl.p", None).as_deref(),
            Some("cop.c_owt.o_pdl.p")
        );
    }

    #[test]
    fn nodes_below_a_node_given_by_any_of_its_tags() {
        assert_eq!(below(JOB_A, "pdl.p"), vec!["cop.c_owt.o_pdl.p_service.s"]);
        assert_eq!(below(JOB_A, "").len(), 4);
        assert!(below(JOB_A, "job.a").is_empty());
    }

    #[test]
    fn every_parent_is_the_sum_of_its_children() {
        let store = UsageStore::default();
        let now = 2_000_000_000u64;
        let sample = |id: &str, cores: f64| TaskUsage {
            task_id: id.into(),
            cpu_cores: Some(cores),
            memory_rss_bytes: 10 << 20,
            pids: 2,
            ..Default::default()
        };
        let ta1 = format!("{JOB_A}.1");
        let ta2 = format!("{JOB_A}.2");
        let tb1 = format!("{JOB_B}.1");
        store.record(
            "ag1",
            &UsageReport {
                timestamp_ms: 0,
                interval_ms: 5000,
                tasks: vec![sample(&ta1, 1.0), sample(&tb1, 0.25)],
            },
            now - 1000,
        );
        store.record(
            "ag2",
            &UsageReport {
                timestamp_ms: 0,
                interval_ms: 5000,
                tasks: vec![sample(&ta2, 0.5)],
            },
            now - 1000,
        );
        let tasks = vec![
            alloc(&ta1, JOB_A, "ag1"),
            alloc(&ta2, JOB_A, "ag2"),
            alloc(&tb1, JOB_B, "ag1"),
        ];
        let r = build(&store, "cop.c_owt.o", &tasks, 60, now, 1, false);
        assert_eq!(r.total.tasks, 3);
        assert!((r.total.used.cpu_cores - 1.75).abs() < 1e-9);
        assert_eq!(r.total.allocated.cpus, 3.0);
        assert_eq!(r.total.used.memory_rss_bytes, 30 << 20);
        let ids: Vec<&str> = r.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(
            ids,
            vec![
                "cop.c_owt.o_pdl.p",
                "cop.c_owt.o_pdl.p_service.s",
                "cop.c_owt.o_pdl.q",
                "cop.c_owt.o_pdl.q_service.s"
            ]
        );
        assert_eq!(r.nodes[0].parent, "cop.c_owt.o");
        // Each parent (nodes, the total) sums its direct children.
        for parent in r.nodes.iter().chain([&r.total]) {
            let mut cpu = 0.0;
            let mut n = 0;
            for child in r
                .nodes
                .iter()
                .chain(&r.jobs)
                .filter(|c| c.parent == parent.id)
            {
                cpu += child.used.cpu_cores;
                n += child.tasks;
            }
            assert!((cpu - parent.used.cpu_cores).abs() < 1e-9, "{}", parent.id);
            assert_eq!(n, parent.tasks, "{}", parent.id);
        }
        let job_a = r.jobs.iter().find(|j| j.id == JOB_A).expect("job a");
        assert_eq!(job_a.parent, "cop.c_owt.o_pdl.p_service.s");
        assert!((job_a.used.cpu_cores - 1.5).abs() < 1e-9);
        let ag1 = r.agents.iter().find(|a| a.id == "ag1").expect("ag1");
        assert!((ag1.used.cpu_cores - 1.25).abs() < 1e-9);
        assert_eq!(ag1.used.pids, 4);
        // A window that ends before the samples sees none of them.
        let stale = build(&store, "", &tasks, 1, now + 10_000, 1, false);
        assert_eq!(stale.total.used.sampled_tasks, 0);
        assert_eq!(stale.nodes[0].id, "cop.c");
        assert_eq!(stale.nodes[0].parent, "");
    }
}
