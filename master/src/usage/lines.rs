//! `GET /v1/usage/report`: utilisation per product line over a window,
//! for sizing machines: what the live tasks were allocated, what they used
//! (means over the window), the peak, and the idle share (the part of the
//! allocation not used). Built from the same task rings as `GET /v1/usage`
//! ([`super::report::used`]); the CSV is the JSON's rows, number for number.
//!
//! The peak of a line is the sum of its tasks' own peaks in the window:
//! tasks are sampled at different instants, so their highest points need
//! not coincide, and the sum is an upper bound of the line's true peak.
//! The concurrent peak is the true one: the highest point of the line's
//! own ring (its tasks' fresh samples summed every 5 s, see
//! [`super::nodes`]), over the part of the window that ring holds (64
//! points, about 5 minutes), which `concurrent_peak_seconds` says.
//!
//! A window longer than the rings (up to 400 days) is read from the
//! lines' replicated history ([`super::history`]: minutes for two days,
//! hours before) instead: `used` is the mean of every 5 s total in the
//! window, `peak` and `concurrent_peak` the highest of them, and
//! `concurrent_peak_seconds` how much of the window the history covers.
//! `allocated` is always what the live tasks hold now.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use super::nodes::SNAPSHOT_S;
use super::report::{used, Allocation};
use super::{UsageStore, RING};
use crate::kernel::state::tree::pdl_of;
use crate::kernel::state::ClusterState;

/// Cores and memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Amount {
    pub cpu_cores: f64,
    pub memory_mib: f64,
}

/// The part of the allocation not used (0..1); `null` with no allocation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IdleShare {
    pub cpu: Option<f64>,
    pub memory: Option<f64>,
}

/// One product line's row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LineRow {
    /// `cop.<c>_owt.<o>_pdl.<p>` (or `(total)`).
    pub pdl: String,
    /// Live tasks.
    pub tasks: u64,
    /// Tasks with a sample in the window.
    pub sampled_tasks: u64,
    pub allocated: Amount,
    /// Means over the window (cpu: cores; memory: RSS).
    pub used: Amount,
    /// The sum of the tasks' highest samples in the window.
    pub peak: Amount,
    pub idle_share: IdleShare,
    /// The most the line used at one instant (its node's ring); `null`
    /// without a ring point in the window.
    pub concurrent_peak: Option<Amount>,
    /// Seconds of the window the concurrent peak covers (the ring's
    /// points in the window times their 5 s spacing).
    pub concurrent_peak_seconds: u64,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LinesReport {
    /// The node asked for (empty: the whole tree).
    pub node: String,
    pub window_seconds: u64,
    pub at_ms: u64,
    /// The master that built it (the leader, which holds the samples).
    pub leader: u64,
    pub lines: Vec<LineRow>,
    /// All lines together.
    pub total: LineRow,
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

const MIB: f64 = 1024.0 * 1024.0;

/// What the rings span: longer windows come from the minutes.
pub const RING_SPAN_S: u64 = RING as u64 * SNAPSHOT_S;

impl LineRow {
    fn finish(&mut self) {
        let concurrent = self.concurrent_peak.as_mut();
        for a in [&mut self.allocated, &mut self.used, &mut self.peak]
            .into_iter()
            .chain(concurrent)
        {
            a.cpu_cores = round3(a.cpu_cores);
            a.memory_mib = round3(a.memory_mib);
        }
        let idle = |used: f64, alloc: f64| {
            (alloc > 0.0).then(|| round3((1.0 - used / alloc).clamp(0.0, 1.0)))
        };
        self.idle_share = IdleShare {
            cpu: idle(self.used.cpu_cores, self.allocated.cpu_cores),
            memory: idle(self.used.memory_mib, self.allocated.memory_mib),
        };
    }

    fn add(&mut self, o: &LineRow) {
        self.tasks += o.tasks;
        self.sampled_tasks += o.sampled_tasks;
        for (a, b) in [
            (&mut self.allocated, &o.allocated),
            (&mut self.used, &o.used),
            (&mut self.peak, &o.peak),
        ] {
            a.cpu_cores += b.cpu_cores;
            a.memory_mib += b.memory_mib;
        }
    }
}

/// Fills `row`'s concurrent peak from the ring of tree node `key`, if
/// the leader keeps one with points in the window.
fn concurrent(store: &UsageStore, key: &str, since_s: u32, window_s: u64, row: &mut LineRow) {
    let Some(s) = store.node_window(key, since_s) else {
        return;
    };
    let w = &s.window;
    if w.points == 0 {
        return;
    }
    row.concurrent_peak = Some(Amount {
        cpu_cores: w.cpu_cores_max,
        memory_mib: w.rss_bytes_max as f64 / MIB,
    });
    row.concurrent_peak_seconds = (w.points as u64 * SNAPSHOT_S).min(window_s);
}

/// Fills `row`'s used, peak and concurrent peak from the history of tree
/// node `key` (a window longer than the rings): the replicated one when
/// `state` is given, else the leader's in-memory minutes. Without history
/// the row keeps what the rings say, and its `concurrent_peak_seconds`
/// shows how little that covers.
fn from_minutes(
    store: &UsageStore,
    state: Option<&ClusterState>,
    key: &str,
    since_s: u32,
    window_s: u64,
    row: &mut LineRow,
) {
    let w = match state {
        Some(st) => Some(super::history::window(st, store, key, u64::from(since_s))),
        None => store.minutes_window(key, since_s),
    };
    match w {
        Some(w) if w.snapshots > 0 => {
            row.used = Amount {
                cpu_cores: w.cpu_cores,
                memory_mib: w.rss_bytes / MIB,
            };
            let peak = Amount {
                cpu_cores: w.cpu_cores_max,
                memory_mib: w.rss_bytes_max as f64 / MIB,
            };
            row.peak = peak;
            row.concurrent_peak = Some(peak);
            row.concurrent_peak_seconds = (w.snapshots * SNAPSHOT_S).min(window_s);
        }
        _ => concurrent(store, key, since_s, window_s, row),
    }
}

/// Builds the report for `node` from the live tasks under it over the last
/// `window_s` seconds before `now_ms`.
pub fn build(
    store: &UsageStore,
    state: Option<&ClusterState>,
    node: &str,
    tasks: &[Allocation],
    window_s: u64,
    now_ms: u64,
    leader: u64,
) -> LinesReport {
    let since_s = (now_ms / 1000).saturating_sub(window_s) as u32;
    let entries = store.tasks(tasks.iter().map(|t| t.task.as_str()));
    let mut lines: BTreeMap<String, LineRow> = BTreeMap::new();
    for t in tasks {
        let pdl = pdl_of(&t.job).unwrap_or_else(|| "(none)".to_string());
        let u = entries
            .get(&t.task)
            .map(|e| used(e, since_s))
            .unwrap_or_default();
        let row = LineRow {
            pdl: pdl.clone(),
            tasks: 1,
            sampled_tasks: u.sampled_tasks,
            allocated: Amount {
                cpu_cores: t.cpus,
                memory_mib: t.mem_mib as f64,
            },
            used: Amount {
                cpu_cores: u.cpu_cores,
                memory_mib: u.memory_rss_bytes as f64 / MIB,
            },
            peak: Amount {
                cpu_cores: u.cpu_cores_peak,
                memory_mib: u.memory_rss_peak_bytes as f64 / MIB,
            },
            ..Default::default()
        };
        lines
            .entry(pdl.clone())
            .or_insert_with(|| LineRow {
                pdl,
                ..Default::default()
            })
            .add(&row);
    }
    let mut total = LineRow {
        pdl: "(total)".into(),
        ..Default::default()
    };
    let long = window_s > RING_SPAN_S;
    let mut lines: Vec<LineRow> = lines.into_values().collect();
    for l in &mut lines {
        let key = l.pdl.clone();
        if long {
            from_minutes(store, state, &key, since_s, window_s, l);
        } else {
            concurrent(store, &key, since_s, window_s, l);
        }
        total.add(l);
        l.finish();
    }
    // The total's ring is the asked node's (the root for the whole tree).
    if long {
        from_minutes(store, state, node, since_s, window_s, &mut total);
    } else {
        concurrent(store, node, since_s, window_s, &mut total);
    }
    total.finish();
    LinesReport {
        node: node.to_string(),
        window_seconds: window_s,
        at_ms: now_ms,
        leader,
        lines,
        total,
    }
}

/// The CSV header.
pub const CSV_HEADER: &str = "pdl,tasks,sampled_tasks,allocated_cpu_cores,used_cpu_cores,peak_cpu_cores,idle_cpu_share,allocated_memory_mib,used_memory_mib,peak_memory_mib,idle_memory_share,concurrent_peak_cpu_cores,concurrent_peak_memory_mib,concurrent_peak_seconds";

/// The report as CSV: the header, one row per line, then the total.
pub fn to_csv(r: &LinesReport) -> String {
    let opt = |x: Option<f64>| x.map(|v| v.to_string()).unwrap_or_default();
    let mut out = String::new();
    out.push_str(CSV_HEADER);
    out.push('\n');
    for l in r.lines.iter().chain([&r.total]) {
        // Product-line ids hold no comma or quote (DNS labels and dots).
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            l.pdl,
            l.tasks,
            l.sampled_tasks,
            l.allocated.cpu_cores,
            l.used.cpu_cores,
            l.peak.cpu_cores,
            opt(l.idle_share.cpu),
            l.allocated.memory_mib,
            l.used.memory_mib,
            l.peak.memory_mib,
            opt(l.idle_share.memory),
            opt(l.concurrent_peak.map(|a| a.cpu_cores)),
            opt(l.concurrent_peak.map(|a| a.memory_mib)),
            l.concurrent_peak_seconds,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocean_proto::agent::{TaskUsage, UsageReport};
    use ocean_proto::internal::{command, Command, RecordUsage};

    const A: &str = "cop.c_owt.o_pdl.p_service.s_job.a_cluster.dev";
    const B: &str = "cop.c_owt.o_pdl.q_service.s_job.b_cluster.dev";

    #[test]
    fn lines_sum_their_tasks_and_csv_matches_json() {
        let store = UsageStore::default();
        let now = 2_000_000_000u64;
        let s = |id: &str, cores: f64, mib: u64| TaskUsage {
            task_id: id.into(),
            cpu_cores: Some(cores),
            memory_rss_bytes: mib << 20,
            ..Default::default()
        };
        let (a1, a2, b1) = (format!("{A}.1"), format!("{A}.2"), format!("{B}.1"));
        for (at, c) in [(now - 3000, 0.5), (now - 1000, 1.5)] {
            store.record(
                "ag",
                &UsageReport {
                    timestamp_ms: 0,
                    interval_ms: 1000,
                    tasks: vec![s(&a1, c, 100), s(&a2, 0.25, 50), s(&b1, 0.0, 10)],
                },
                at,
            );
        }
        let alloc = |task: &str, job: &str| Allocation {
            task: task.into(),
            job: job.into(),
            agent: "ag".into(),
            cpus: 2.0,
            mem_mib: 200,
            disk_mib: 0,
        };
        let tasks = vec![alloc(&a1, A), alloc(&a2, A), alloc(&b1, B)];
        let r = build(&store, None, "", &tasks, 60, now, 1);
        assert_eq!(r.lines.len(), 2);
        let p = &r.lines[0];
        assert_eq!((p.pdl.as_str(), p.tasks), ("cop.c_owt.o_pdl.p", 2));
        assert_eq!(p.allocated.cpu_cores, 4.0);
        // a1: mean 1.0, peak 1.5; a2: 0.25.
        assert_eq!(p.used.cpu_cores, 1.25);
        assert_eq!(p.peak.cpu_cores, 1.75);
        assert_eq!(p.used.memory_mib, 150.0);
        assert_eq!(p.idle_share.cpu, Some(0.688));
        assert_eq!(p.idle_share.memory, Some(0.625));
        assert_eq!(r.total.tasks, 3);
        assert_eq!(r.total.allocated.memory_mib, 600.0);
        let csv = to_csv(&r);
        let rows: Vec<&str> = csv.lines().collect();
        assert_eq!(rows[0], CSV_HEADER);
        assert_eq!(rows.len(), 4);
        // Both reports fell in one 5 s bucket: no ring point yet.
        assert_eq!(
            rows[1],
            "cop.c_owt.o_pdl.p,2,2,4,1.25,1.75,0.688,400,150,150,0.625,,,0"
        );
        assert!(rows[3].starts_with("(total),3,3,6,"));
    }

    #[test]
    fn the_concurrent_peak_is_the_lines_most_at_one_instant() {
        let store = UsageStore::default();
        // On a 5 s boundary, so each report opens a bucket of its own.
        let t0 = 2_000_000_000u64 / 5_000 * 5_000;
        let s = |id: &str, cores: f64| TaskUsage {
            task_id: id.into(),
            cpu_cores: Some(cores),
            memory_rss_bytes: 100 << 20,
            ..Default::default()
        };
        let (a1, a2) = (format!("{A}.1"), format!("{A}.2"));
        // a1 peaks first, a2 later: never both at once.
        for (i, (c1, c2)) in [(2.0, 0.1), (0.1, 2.0), (0.1, 0.1), (0.1, 0.1)]
            .into_iter()
            .enumerate()
        {
            store.record(
                "ag",
                &UsageReport {
                    timestamp_ms: 0,
                    interval_ms: 5000,
                    tasks: vec![s(&a1, c1), s(&a2, c2)],
                },
                t0 + i as u64 * 5_000,
            );
        }
        let alloc = |task: &str| Allocation {
            task: task.into(),
            job: A.into(),
            agent: "ag".into(),
            cpus: 2.0,
            mem_mib: 200,
            disk_mib: 0,
        };
        let now = t0 + 15_000;
        let r = build(&store, None, "", &[alloc(&a1), alloc(&a2)], 60, now, 1);
        let p = &r.lines[0];
        // The sum of the tasks' own peaks counts 2 + 2 cores that never
        // ran together; the line's ring saw 2.1 at most.
        assert_eq!(p.peak.cpu_cores, 4.0);
        let c = p.concurrent_peak.expect("the line's ring has points");
        assert_eq!(c.cpu_cores, 2.1);
        assert_eq!(c.memory_mib, 200.0);
        assert_eq!(p.concurrent_peak_seconds, 15);
        assert_eq!(r.total.concurrent_peak.map(|a| a.cpu_cores), Some(2.1));
        assert!(to_csv(&r).lines().nth(1).unwrap().ends_with(",2.1,200,15"));
    }

    #[test]
    fn windows_longer_than_the_rings_come_from_the_minutes() {
        let store = UsageStore::default();
        // The minutes go through the replicated state as on a leader.
        let mut state = ClusterState::default();
        let t0 = 2_000_000_000u64 / 60_000 * 60_000;
        let s = |id: &str, cores: f64, mib: u64| TaskUsage {
            task_id: id.into(),
            cpu_cores: Some(cores),
            memory_rss_bytes: mib << 20,
            ..Default::default()
        };
        let a1 = format!("{A}.1");
        // Two hours of reports every 5 s: 1 core and 100 MiB, a burst to
        // 3 cores and 300 MiB in the first hour, then 0.5 core.
        let n = 2 * 720;
        for i in 0..n {
            let (c, m) = match i {
                100 => (3.0, 300),
                0..720 => (1.0, 100),
                _ => (0.5, 100),
            };
            store.record(
                "ag",
                &UsageReport {
                    timestamp_ms: 0,
                    interval_ms: 5000,
                    tasks: vec![s(&a1, c, m)],
                },
                t0 + i * 5_000,
            );
            for minute in store.finished_minutes(t0 + i * 5_000) {
                state.apply(&Command {
                    kind: Some(command::Kind::RecordUsage(RecordUsage {
                        minute: Some(minute),
                    })),
                    min_version: 0,
                });
            }
        }
        let history = Some(&state);
        let now = t0 + n * 5_000;
        let alloc = Allocation {
            task: a1.clone(),
            job: A.into(),
            agent: "ag".into(),
            cpus: 4.0,
            mem_mib: 400,
            disk_mib: 0,
        };
        let two_hours = build(
            &store,
            history,
            "",
            std::slice::from_ref(&alloc),
            7200,
            now,
            1,
        );
        let p = &two_hours.lines[0];
        // Each snapshot holds the samples before its report: 1,439
        // snapshots of samples 0..1438 (719 at 1 core, the burst, 719 at
        // 0.5).
        let mean = (719.0 * 1.0 + 3.0 + 719.0 * 0.5) / 1439.0;
        assert!((p.used.cpu_cores - round3(mean)).abs() < 1e-9, "{p:?}");
        assert_eq!(p.peak.cpu_cores, 3.0);
        assert_eq!(p.concurrent_peak.map(|a| a.memory_mib), Some(300.0));
        assert_eq!(p.concurrent_peak_seconds, 1439 * 5);
        assert_eq!(p.idle_share.cpu, Some(round3(1.0 - round3(mean) / 4.0)));
        assert_eq!(two_hours.total.peak.cpu_cores, 3.0);
        // The last hour: the burst is out; its first snapshot still holds
        // the first hour's last sample (1 core), the other 719 hold 0.5.
        let hour = build(
            &store,
            history,
            "",
            std::slice::from_ref(&alloc),
            3600,
            now,
            1,
        );
        let p = &hour.lines[0];
        let mean = round3((1.0 + 719.0 * 0.5) / 720.0);
        assert_eq!((p.used.cpu_cores, p.peak.cpu_cores), (mean, 1.0));
        assert_eq!(p.concurrent_peak_seconds, 3600);
        // Five minutes still come from the rings.
        let short = build(
            &store,
            history,
            "",
            std::slice::from_ref(&alloc),
            300,
            now,
            1,
        );
        assert_eq!(short.lines[0].peak.cpu_cores, 0.5);
        assert_eq!(short.lines[0].concurrent_peak_seconds, 300);
    }
}
