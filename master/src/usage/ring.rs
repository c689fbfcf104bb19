//! A bounded ring of compact usage points: 16 bytes each, so 100,000
//! tasks' rings of [`RING`] points take about 100 MB.

use std::collections::VecDeque;

use ocean_proto::agent::TaskUsage;

/// Points kept per task and per agent: at the default 5 s interval, the
/// last 5 minutes and 20 seconds.
pub const RING: usize = 64;

/// `cpu_milli` of a sample without a cpu rate (a task's first).
pub const NO_RATE: u32 = u32::MAX;

/// One sample, or a sum of samples, as the leader keeps it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Point {
    /// When it arrived, seconds since the epoch (leader clock).
    pub at_s: u32,
    /// Thousandths of a core ([`NO_RATE`]: not known).
    pub cpu_milli: u32,
    /// Anonymous memory, KiB.
    pub rss_kib: u32,
    /// Page cache, KiB.
    pub cache_kib: u32,
}

impl Point {
    /// An empty point at `ms`.
    pub fn at(ms: u64) -> Self {
        Point {
            at_s: (ms / 1000) as u32,
            ..Default::default()
        }
    }

    /// A task's sample received at `ms`.
    pub fn from_usage(ms: u64, u: &TaskUsage) -> Self {
        Point {
            at_s: (ms / 1000) as u32,
            cpu_milli: u.cpu_cores.map_or(NO_RATE, |c| {
                (c * 1000.0).round().clamp(0.0, (NO_RATE - 1) as f64) as u32
            }),
            rss_kib: kib(u.memory_rss_bytes),
            cache_kib: kib(u.memory_cache_bytes),
        }
    }

    /// Adds `other`'s values (saturating; an unknown rate adds nothing).
    pub fn add(&mut self, other: &Point) {
        if other.cpu_milli != NO_RATE {
            self.cpu_milli = self
                .cpu_milli
                .saturating_add(other.cpu_milli)
                .min(NO_RATE - 1);
        }
        self.rss_kib = self.rss_kib.saturating_add(other.rss_kib);
        self.cache_kib = self.cache_kib.saturating_add(other.cache_kib);
    }
}

fn kib(bytes: u64) -> u32 {
    (bytes / 1024).min(u32::MAX as u64) as u32
}

/// The newest [`RING`] points, oldest first.
#[derive(Debug, Clone, Default)]
pub struct Ring(VecDeque<Point>);

/// What a window of a ring says.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Window {
    /// Points in the window.
    pub points: usize,
    /// Points with a cpu rate.
    pub cpu_points: usize,
    /// Mean cores of the points with a rate.
    pub cpu_cores: f64,
    /// Highest cores of one point.
    pub cpu_cores_max: f64,
    /// Mean anonymous memory, bytes.
    pub rss_bytes: f64,
    /// Highest anonymous memory of one point, bytes.
    pub rss_bytes_max: u64,
    /// Mean page cache, bytes.
    pub cache_bytes: f64,
}

impl Ring {
    /// Appends `p`, dropping the oldest point past [`RING`].
    pub fn push(&mut self, p: Point) {
        if self.0.len() == RING {
            self.0.pop_front();
        }
        self.0.push_back(p);
    }

    /// The newest point.
    pub fn last(&self) -> Option<&Point> {
        self.0.back()
    }

    /// Points held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when it holds no point.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The points that arrived at or after `since_s`, oldest first.
    pub fn since(&self, since_s: u32) -> Vec<Point> {
        let skip = self.0.iter().take_while(|p| p.at_s < since_s).count();
        self.0.iter().skip(skip).copied().collect()
    }

    /// Means and maxima of the points that arrived at or after `since_s`.
    pub fn window(&self, since_s: u32) -> Window {
        let mut w = Window::default();
        let (mut cpu, mut rss, mut cache) = (0u64, 0u64, 0u64);
        for p in self.0.iter().rev().take_while(|p| p.at_s >= since_s) {
            w.points += 1;
            if p.cpu_milli != NO_RATE {
                w.cpu_points += 1;
                cpu += u64::from(p.cpu_milli);
                w.cpu_cores_max = w.cpu_cores_max.max(f64::from(p.cpu_milli) / 1000.0);
            }
            rss += u64::from(p.rss_kib);
            cache += u64::from(p.cache_kib);
            w.rss_bytes_max = w.rss_bytes_max.max(u64::from(p.rss_kib) * 1024);
        }
        if w.points > 0 {
            let n = w.points as f64;
            if w.cpu_points > 0 {
                w.cpu_cores = cpu as f64 / 1000.0 / w.cpu_points as f64;
            }
            w.rss_bytes = rss as f64 * 1024.0 / n;
            w.cache_bytes = cache as f64 * 1024.0 / n;
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_is_bounded_and_windows_average_recent_points() {
        let mut ring = Ring::default();
        for i in 0..(RING as u32 + 10) {
            ring.push(Point {
                at_s: 1000 + i * 5,
                cpu_milli: if i % 2 == 0 { 1000 } else { 500 },
                rss_kib: 1024 * (i + 1),
                cache_kib: 0,
            });
        }
        assert_eq!(ring.len(), RING);
        let last = ring.last().expect("last").at_s;
        // The last 4 points: 2 at 1.0 and 2 at 0.5 cores.
        let w = ring.window(last - 15);
        assert_eq!(w.points, 4);
        assert!((w.cpu_cores - 0.75).abs() < 1e-9, "{w:?}");
        assert_eq!(w.cpu_cores_max, 1.0);
        assert_eq!(
            w.rss_bytes_max,
            u64::from(ring.last().expect("last").rss_kib) * 1024
        );
        assert_eq!(ring.window(last + 1).points, 0);
        // A point without a rate counts for memory, not for cpu.
        ring.push(Point {
            at_s: last + 5,
            cpu_milli: NO_RATE,
            rss_kib: 0,
            cache_kib: 0,
        });
        let w = ring.window(last + 5);
        assert_eq!((w.points, w.cpu_points, w.cpu_cores), (1, 0, 0.0));
    }
}
