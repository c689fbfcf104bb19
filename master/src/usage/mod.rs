//! What tasks use, as their agents push it (`AgentMessage::Usage`, every
//! few seconds): kept by the leader in memory, never through raft, but
//! for one rollup per finished minute of the upper tree (history.rs),
//! which the leader proposes so reports survive a leader change. Losing
//! the rest with the leader loses a few minutes of samples, which the
//! agents refill at their next samples.
//!
//! ```text
//!  agent stream ─► UsageStore::record(agent, report)  (api/agent.rs)
//!                    per task: the newest sample + a ring of RING points
//!                    per agent: a ring of its tasks' sums per report
//!                    per job, tree node and the root: a ring of their
//!                      tasks' totals every SNAPSHOT_S (nodes.rs)
//!                    per node at or above product lines: those totals
//!                      folded per minute (minutes.rs) ──► each finished
//!                      minute proposed as RecordUsage (leader/usage.rs),
//!                      kept two days, hours 400 days (kernel/state/usage.rs)
//!  GET /v1/usage ─► report::build(store, tasks under the node, window)
//!                    task ─► job ─► tree nodes up to the one asked (sums)
//!                    task ─► agent (sums)
//!                    + each row's own ring (`series`)
//! ```
//!
//! A row's `used` is summed from its live tasks' rings when asked: a
//! parent is then the sum of its children by construction, whatever
//! arrived between two agents' samples. The rings of jobs, nodes and
//! agents add what sums cannot say: the row's total at one instant (its
//! true peak) and the part of tasks that ended within the window.

pub mod history;
pub mod lines;
pub mod minutes;
pub mod nodes;
pub mod report;
mod ring;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use ocean_proto::agent::{TaskUsage, UsageReport};
use ocean_proto::internal::{UsagePeriod, UsageRollup};

pub use ring::{Point, Ring, Window, NO_RATE, RING};

/// Tasks not heard of for this long are forgotten (their rings are past
/// any window a query may ask).
pub(crate) const FORGET_AFTER_MS: u64 = 15 * 60 * 1000;

/// How long after its end a minute is handed out to be recorded: a
/// snapshot stamped just before the boundary may still be folding in.
const FINISHED_GRACE_S: u32 = 5;

/// How often `record` looks for forgotten tasks.
const PRUNE_EVERY_MS: u64 = 30 * 1000;

/// The leader's recent usage samples.
#[derive(Debug, Default)]
pub struct UsageStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    tasks: HashMap<Arc<str>, TaskEntry, foldhash::fast::RandomState>,
    agents: HashMap<String, AgentEntry>,
    /// Jobs, tree nodes and the root ([`nodes::ROOT`]), by id or path.
    nodes: HashMap<Arc<str>, nodes::NodeEntry, foldhash::fast::RandomState>,
    /// The root, `cop`, `owt` and product-line nodes' minutes.
    minutes: HashMap<Arc<str>, minutes::Minutes>,
    last_prune_ms: u64,
    /// The [`nodes::SNAPSHOT_S`] bucket of the last node snapshot.
    last_snapshot: u64,
    /// The newest minute handed out to be recorded through raft.
    handed_s: u32,
}

/// A row's own ring over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Means and maxima of its points in the window.
    pub window: Window,
    /// The points, oldest first.
    pub points: Vec<Point>,
}

/// One task's samples.
#[derive(Debug, Clone)]
pub struct TaskEntry {
    /// The agent that sent them.
    pub agent: Arc<str>,
    /// When the newest arrived (leader clock, ms since the epoch).
    pub received_ms: u64,
    /// The newest sample, whole but for its task id (the map's key: ids
    /// are ~100 bytes, and 100,000 tasks' second copies cost 10 MB).
    pub latest: TaskUsage,
    /// Recent points, oldest first.
    pub ring: Ring,
}

/// One agent's sums.
#[derive(Debug, Clone, Default)]
pub struct AgentEntry {
    /// When the newest report arrived.
    pub received_ms: u64,
    /// Tasks in the newest report.
    pub tasks: usize,
    /// The agent's sampling interval, as its newest report says, ms.
    pub interval_ms: u64,
    /// The sums of its tasks' samples, per report.
    pub ring: Ring,
}

/// The leader's clock, ms since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A copy of `t` without its task id.
fn without_id(t: &TaskUsage) -> TaskUsage {
    TaskUsage {
        task_id: String::new(),
        cpu_cores: t.cpu_cores,
        cpu_usage_ns: t.cpu_usage_ns,
        cpu_throttled_ns: t.cpu_throttled_ns,
        cpu_throttled_periods: t.cpu_throttled_periods,
        memory_rss_bytes: t.memory_rss_bytes,
        memory_cache_bytes: t.memory_cache_bytes,
        memory_peak_bytes: t.memory_peak_bytes,
        memory_limit_bytes: t.memory_limit_bytes,
        oom_kills: t.oom_kills,
        pids: t.pids,
        disk_bytes: t.disk_bytes,
        cpus_limit: t.cpus_limit,
    }
}

/// Folds the snapshot just taken at `now_ms` into the minutes of the
/// nodes that keep them, and forgets nodes silent for [`minutes::MINUTES`].
fn fold_minutes(
    nodes: &HashMap<Arc<str>, nodes::NodeEntry, foldhash::fast::RandomState>,
    minutes: &mut HashMap<Arc<str>, minutes::Minutes>,
    now_ms: u64,
) {
    let now_s = (now_ms / 1000) as u32;
    for (key, n) in nodes {
        let Some(p) = n.ring.last().filter(|p| p.at_s == now_s) else {
            continue;
        };
        if minutes::keeps_minutes(key) {
            minutes.entry(Arc::clone(key)).or_default().add(p);
        }
    }
    let kept = (minutes::MINUTES * 60) as u32;
    minutes.retain(|_, m| {
        m.newest_s()
            .is_some_and(|s| s.saturating_add(kept) >= now_s)
    });
}

impl UsageStore {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `report` from `agent`, received at `now_ms` (the leader's
    /// clock: agents' clocks may disagree, windows are the leader's).
    pub fn record(&self, agent: &str, report: &UsageReport, now_ms: u64) {
        let mut sum = Point::at(now_ms);
        let points: Vec<Point> = report
            .tasks
            .iter()
            .map(|t| {
                let p = Point::from_usage(now_ms, t);
                sum.add(&p);
                p
            })
            .collect();
        let agent_id: Arc<str> = Arc::from(agent);
        let mut inner = self.lock();
        let bucket = now_ms / 1000 / nodes::SNAPSHOT_S;
        if bucket != inner.last_snapshot {
            // Before this report: the point closes the bucket that ended.
            inner.last_snapshot = bucket;
            let Inner {
                tasks,
                agents,
                nodes,
                minutes,
                ..
            } = &mut *inner;
            nodes::snapshot(nodes, tasks, agents, now_ms, FORGET_AFTER_MS);
            fold_minutes(nodes, minutes, now_ms);
        }
        for (t, p) in report.tasks.iter().zip(points) {
            match inner.tasks.get_mut(t.task_id.as_str()) {
                Some(e) => {
                    if *e.agent != *agent {
                        e.agent = Arc::clone(&agent_id);
                        e.ring = Ring::default();
                    }
                    e.received_ms = now_ms;
                    e.latest = without_id(t);
                    e.ring.push(p);
                }
                None => {
                    let mut ring = Ring::default();
                    ring.push(p);
                    inner.tasks.insert(
                        Arc::from(t.task_id.as_str()),
                        TaskEntry {
                            agent: Arc::clone(&agent_id),
                            received_ms: now_ms,
                            latest: without_id(t),
                            ring,
                        },
                    );
                }
            }
        }
        let entry = inner.agents.entry(agent.to_string()).or_default();
        entry.received_ms = now_ms;
        entry.tasks = report.tasks.len();
        entry.interval_ms = report.interval_ms;
        entry.ring.push(sum);
        if now_ms.saturating_sub(inner.last_prune_ms) >= PRUNE_EVERY_MS {
            inner.last_prune_ms = now_ms;
            let horizon = now_ms.saturating_sub(FORGET_AFTER_MS);
            inner.tasks.retain(|_, e| e.received_ms >= horizon);
            inner.agents.retain(|_, e| e.received_ms >= horizon);
        }
    }

    /// The newest sample of a task.
    pub fn task(&self, id: &str) -> Option<(u64, TaskUsage)> {
        self.lock()
            .tasks
            .get(id)
            .map(|e| (e.received_ms, e.latest.clone()))
    }

    /// An agent's newest sums.
    pub fn agent(&self, id: &str) -> Option<(u64, usize, Point)> {
        let inner = self.lock();
        let e = inner.agents.get(id)?;
        Some((e.received_ms, e.tasks, *e.ring.last()?))
    }

    /// The ring of a job, tree node (its full path) or the root
    /// ([`nodes::ROOT`]) since `since_s`.
    pub fn node_window(&self, key: &str, since_s: u32) -> Option<Series> {
        let inner = self.lock();
        inner.nodes.get(key).map(|n| series(&n.ring, since_s))
    }

    /// The minutes of a node at or above product lines (or the root) since
    /// `since_s`, when the leader has any.
    pub fn minutes_window(&self, key: &str, since_s: u32) -> Option<minutes::MinuteWindow> {
        let inner = self.lock();
        inner
            .minutes
            .get(key)
            .filter(|m| !m.is_empty())
            .map(|m| m.window(since_s))
    }

    /// The minutes finished by `now_ms` (with a few seconds' grace for
    /// a snapshot in flight) not handed out before, each as the period
    /// to record, nodes in name order, oldest first.
    pub fn finished_minutes(&self, now_ms: u64) -> Vec<UsagePeriod> {
        let now_s = (now_ms / 1000) as u32;
        let mut inner = self.lock();
        let handed = inner.handed_s;
        let mut periods: BTreeMap<u32, Vec<UsageRollup>> = BTreeMap::new();
        for (key, m) in &inner.minutes {
            for minute in m.iter() {
                let done = minute.start_s + 60 + FINISHED_GRACE_S <= now_s;
                if done && minute.start_s > handed {
                    periods
                        .entry(minute.start_s)
                        .or_default()
                        .push(minute.rollup(key));
                }
            }
        }
        if let Some(newest) = periods.keys().next_back() {
            inner.handed_s = *newest;
        }
        periods
            .into_iter()
            .map(|(start_s, mut nodes)| {
                nodes.sort_by(|a, b| a.node.cmp(&b.node));
                UsagePeriod {
                    start_s: u64::from(start_s),
                    length_s: 60,
                    nodes,
                }
            })
            .collect()
    }

    /// The in-memory minutes of node `key` starting after `after_s` and
    /// at or after `since_s` (those the replicated history lacks yet).
    pub fn unrecorded(&self, key: &str, after_s: Option<u64>, since_s: u64) -> Vec<UsageRollup> {
        let inner = self.lock();
        inner.minutes.get(key).map_or_else(Vec::new, |m| {
            m.iter()
                .filter(|x| after_s.is_none_or(|a| u64::from(x.start_s) > a))
                .filter(|x| u64::from(x.start_s) + 60 > since_s)
                .map(|x| x.rollup(key))
                .collect()
        })
    }

    /// The ring of an agent (the sums of its reports) since `since_s`.
    pub fn agent_window(&self, id: &str, since_s: u32) -> Option<Series> {
        let inner = self.lock();
        inner.agents.get(id).map(|a| series(&a.ring, since_s))
    }

    /// The rings of many rows at once (one lock): nodes and jobs by key,
    /// then agents by id.
    pub fn windows<'a>(
        &self,
        nodes: impl Iterator<Item = &'a str>,
        agents: impl Iterator<Item = &'a str>,
        since_s: u32,
    ) -> (HashMap<String, Series>, HashMap<String, Series>) {
        let inner = self.lock();
        let n = nodes
            .filter_map(|k| Some((k.to_string(), series(&inner.nodes.get(k)?.ring, since_s))))
            .collect();
        let a = agents
            .filter_map(|k| Some((k.to_string(), series(&inner.agents.get(k)?.ring, since_s))))
            .collect();
        (n, a)
    }

    /// Copies of the entries of `ids` (those that have any), for a report.
    pub fn tasks<'a>(&self, ids: impl Iterator<Item = &'a str>) -> HashMap<String, TaskEntry> {
        let inner = self.lock();
        ids.filter_map(|id| inner.tasks.get(id).map(|e| (id.to_string(), e.clone())))
            .collect()
    }

    /// Tasks and agents held (for the benchmark and the metrics).
    pub fn len(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.tasks.len(), inner.agents.len())
    }

    /// Jobs, tree nodes and the root held, with a ring each.
    pub fn nodes_len(&self) -> usize {
        self.lock().nodes.len()
    }
}

fn series(ring: &Ring, since_s: u32) -> Series {
    Series {
        window: ring.window(since_s),
        points: ring.since(since_s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(id: &str, cores: f64, rss: u64) -> TaskUsage {
        TaskUsage {
            task_id: id.into(),
            cpu_cores: Some(cores),
            memory_rss_bytes: rss,
            ..Default::default()
        }
    }

    #[test]
    fn records_tasks_and_agent_sums_and_forgets_old_tasks() {
        let store = UsageStore::default();
        let report = UsageReport {
            timestamp_ms: 0,
            interval_ms: 5000,
            tasks: vec![usage("j.a", 1.0, 100 << 20), usage("j.b", 0.5, 50 << 20)],
        };
        store.record("agent-1", &report, 1_000_000);
        let (at, t) = store.task("j.a").expect("task a");
        assert_eq!((at, t.cpu_cores), (1_000_000, Some(1.0)));
        let (_, n, sum) = store.agent("agent-1").expect("agent");
        assert_eq!(n, 2);
        assert_eq!(sum.cpu_milli, 1500);
        assert_eq!(sum.rss_kib, 150 << 10);
        // Much later, only b reports: a is forgotten at the next prune.
        let later = UsageReport {
            tasks: vec![usage("j.b", 0.5, 50 << 20)],
            ..report
        };
        store.record(
            "agent-1",
            &later,
            1_000_000 + FORGET_AFTER_MS + PRUNE_EVERY_MS,
        );
        assert!(store.task("j.a").is_none());
        assert!(store.task("j.b").is_some());
        assert_eq!(store.len(), (1, 1));
    }
}
