//! Per-minute history of the upper tree (the root, `cop`, `owt` and
//! product-line nodes), so utilisation reports can cover windows far
//! longer than the 5-second rings (about five minutes).
//!
//! Each minute folds the node's snapshots (one every
//! [`super::nodes::SNAPSHOT_S`]): their sums for means, their highest
//! point for the concurrent peak. Only nodes at or above product lines keep
//! minutes: there are few of them, where the same for every job would not
//! fit. The leader keeps the last [`MINUTES`] in memory: each finished
//! minute is proposed through raft (`RecordUsage`, see
//! `kernel/state/usage.rs` and [`super::history`]), which keeps minutes
//! for two days and hours for 400 on every master; memory only holds the
//! minute being filled and the few not yet recorded.

use std::collections::VecDeque;

use ocean_proto::internal::UsageRollup;

use super::ring::{Point, NO_RATE};

/// Minutes kept per node in the leader's memory: enough to retry
/// recording them through a short loss of quorum.
pub const MINUTES: usize = 15;

/// One minute of a node's snapshots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Minute {
    /// Its first second (a multiple of 60, leader clock).
    pub start_s: u32,
    /// Snapshots folded in.
    pub snapshots: u16,
    /// Snapshots with a cpu rate.
    pub cpu_snapshots: u16,
    /// Sum of their thousandths of a core.
    pub cpu_milli_sum: u64,
    /// The highest snapshot's thousandths of a core.
    pub cpu_milli_max: u32,
    /// Sum of their anonymous memory, KiB.
    pub rss_kib_sum: u64,
    /// The highest snapshot's anonymous memory, KiB.
    pub rss_kib_max: u32,
}

/// What the minutes of a window say.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MinuteWindow {
    /// Snapshots in the window.
    pub snapshots: u64,
    /// Mean cores over the snapshots with a rate.
    pub cpu_cores: f64,
    /// The highest snapshot's cores.
    pub cpu_cores_max: f64,
    /// Mean anonymous memory, bytes.
    pub rss_bytes: f64,
    /// The highest snapshot's anonymous memory, bytes.
    pub rss_bytes_max: u64,
}

impl Minute {
    /// The replicated form of this minute of node `node`.
    pub fn rollup(&self, node: &str) -> UsageRollup {
        UsageRollup {
            node: node.to_string(),
            snapshots: u32::from(self.snapshots),
            cpu_snapshots: u32::from(self.cpu_snapshots),
            cpu_milli_sum: self.cpu_milli_sum,
            cpu_milli_max: self.cpu_milli_max,
            rss_kib_sum: self.rss_kib_sum,
            rss_kib_max: self.rss_kib_max,
        }
    }
}

/// Means and maxima over rollups (minutes or hours) of one node.
pub fn window_of<'a>(rollups: impl Iterator<Item = &'a UsageRollup>) -> MinuteWindow {
    let mut w = MinuteWindow::default();
    let (mut cpu_n, mut cpu, mut rss) = (0u64, 0u64, 0u64);
    for m in rollups {
        w.snapshots += u64::from(m.snapshots);
        cpu_n += u64::from(m.cpu_snapshots);
        cpu += m.cpu_milli_sum;
        rss += m.rss_kib_sum;
        w.cpu_cores_max = w.cpu_cores_max.max(f64::from(m.cpu_milli_max) / 1000.0);
        w.rss_bytes_max = w.rss_bytes_max.max(u64::from(m.rss_kib_max) * 1024);
    }
    if cpu_n > 0 {
        w.cpu_cores = cpu as f64 / 1000.0 / cpu_n as f64;
    }
    if w.snapshots > 0 {
        w.rss_bytes = rss as f64 * 1024.0 / w.snapshots as f64;
    }
    w
}

/// A node's minutes, oldest first, at most [`MINUTES`].
#[derive(Debug, Clone, Default)]
pub struct Minutes(VecDeque<Minute>);

/// Whether tree node `key` keeps minutes: the root (`""`) and nodes whose
/// last tag is `cop`, `owt` or `pdl`.
pub fn keeps_minutes(key: &str) -> bool {
    key.is_empty()
        || key
            .rsplit('_')
            .next()
            .is_some_and(|last| ["cop.", "owt.", "pdl."].iter().any(|t| last.starts_with(t)))
}

impl Minutes {
    /// Folds one snapshot into its minute.
    pub fn add(&mut self, p: &Point) {
        let start_s = p.at_s - p.at_s % 60;
        let m = match self.0.back_mut() {
            Some(m) if m.start_s == start_s => m,
            // A point older than the newest minute (a leader clock step
            // back) is dropped: history stays in order.
            Some(m) if m.start_s > start_s => return,
            _ => {
                if self.0.len() == MINUTES {
                    self.0.pop_front();
                }
                self.0.push_back(Minute {
                    start_s,
                    ..Default::default()
                });
                self.0.back_mut().expect("just pushed")
            }
        };
        m.snapshots = m.snapshots.saturating_add(1);
        if p.cpu_milli != NO_RATE {
            m.cpu_snapshots = m.cpu_snapshots.saturating_add(1);
            m.cpu_milli_sum += u64::from(p.cpu_milli);
            m.cpu_milli_max = m.cpu_milli_max.max(p.cpu_milli);
        }
        m.rss_kib_sum += u64::from(p.rss_kib);
        m.rss_kib_max = m.rss_kib_max.max(p.rss_kib);
    }

    /// The newest minute's start.
    pub fn newest_s(&self) -> Option<u32> {
        self.0.back().map(|m| m.start_s)
    }

    /// Minutes held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when it holds no minute.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Means and maxima of the minutes that end after `since_s` (a window
    /// is covered to the minute).
    pub fn window(&self, since_s: u32) -> MinuteWindow {
        let rollups: Vec<UsageRollup> = self
            .0
            .iter()
            .filter(|m| m.start_s + 60 > since_s)
            .map(|m| m.rollup(""))
            .collect();
        window_of(rollups.iter())
    }

    /// The minutes, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Minute> {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(at_s: u32, cpu_milli: u32, rss_kib: u32) -> Point {
        Point {
            at_s,
            cpu_milli,
            rss_kib,
            cache_kib: 0,
        }
    }

    #[test]
    fn snapshots_fold_into_minutes_and_windows_cover_whole_minutes() {
        let mut m = Minutes::default();
        // A minute boundary (1,800,000,000 is one: 30,000,000 minutes).
        let t0 = 1_800_000_000u32;
        // Twelve minutes of snapshots every 5 s: 1 core and 1 GiB in the
        // first six, 3 cores and 2 GiB for one snapshot, then 0.5 core.
        for i in 0..(2 * 72) {
            let at = t0 + i * 5;
            let (cpu, rss) = match i {
                0..72 => (1000, 1 << 20),
                72 => (3000, 2 << 20),
                _ => (500, 1 << 20),
            };
            m.add(&point(at, cpu, rss));
        }
        assert_eq!(m.len(), 12);
        let all = m.window(t0);
        assert_eq!(all.snapshots, 144);
        assert_eq!(all.cpu_cores_max, 3.0);
        assert_eq!(all.rss_bytes_max, 2 << 30);
        let mean = (72.0 * 1.0 + 3.0 + 71.0 * 0.5) / 144.0;
        assert!((all.cpu_cores - mean).abs() < 1e-9, "{all:?}");
        // The last six minutes alone: the peak snapshot is their first.
        let last = m.window(t0 + 360);
        assert_eq!(last.snapshots, 72);
        assert_eq!(last.cpu_cores_max, 3.0);
        // A window starting mid-minute covers that whole minute.
        assert_eq!(m.window(t0 + 690).snapshots, 12);
        assert_eq!(m.window(t0 + 720).snapshots, 0);
    }

    #[test]
    fn the_last_minutes_are_kept_unknown_rates_count_for_memory_only_and_old_points_are_dropped() {
        let mut m = Minutes::default();
        for i in 0..(MINUTES as u32 + 5) {
            m.add(&point(i * 60, 1000, 10));
        }
        assert_eq!(m.len(), MINUTES);
        let newest = m.newest_s().expect("newest");
        m.add(&point(newest + 5, NO_RATE, 30));
        let w = m.window(newest);
        assert_eq!(w.snapshots, 2);
        assert_eq!(w.cpu_cores, 1.0);
        assert_eq!(w.rss_bytes, 20.0 * 1024.0);
        // A clock step back changes nothing.
        m.add(&point(newest - 600, 9000, 9000));
        assert_eq!(m.window(0).cpu_cores_max, 1.0);
    }

    #[test]
    fn only_the_upper_tree_keeps_minutes() {
        assert!(keeps_minutes(""));
        assert!(keeps_minutes("cop.c"));
        assert!(keeps_minutes("cop.c_owt.o"));
        assert!(keeps_minutes("cop.c_owt.o_pdl.p"));
        assert!(!keeps_minutes("cop.c_owt.o_pdl.p_servicegroup.g"));
        assert!(!keeps_minutes(
            "cop.c_owt.o_pdl.p_service.s_job.a_cluster.dev"
        ));
    }
}
