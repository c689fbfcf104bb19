//! Cumulative cpu counters into cores used over the interval, and what is
//! worth reading only now and then (a task's quota, its sandbox's size).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a sandbox's measured size is reused: walking 300 sandboxes
/// every 5 s was a good part of the agent's sampling cost, and disk use
/// moves slowly next to cpu and memory.
pub const DISK_EVERY: Duration = Duration::from_secs(30);

/// The previous cpu reading of every task, for rates, and the readings
/// kept between samples.
#[derive(Debug, Default)]
pub struct Sampler {
    previous: HashMap<String, (u64, Instant)>,
    /// Each task's cpu quota in cores (0: none): set at launch, never changed.
    quota: HashMap<String, f64>,
    /// Each task's sandbox size and when it was measured.
    disk: HashMap<String, (u64, Instant)>,
    last: Option<Instant>,
    interval_ms: u64,
}

impl Sampler {
    /// Cores `task` used since its previous reading: cpu ns over wall ns.
    /// `None` on the first reading (no interval yet), without a counter,
    /// and when the counter went backwards (a new cgroup under the same name).
    pub fn cores(&mut self, task: &str, cpu_ns: Option<u64>, now: Instant) -> Option<f64> {
        if self.last != Some(now) {
            self.interval_ms = self
                .last
                .map_or(0, |l| now.saturating_duration_since(l).as_millis() as u64);
            self.last = Some(now);
        }
        let cpu_ns = cpu_ns?;
        let before = self.previous.insert(task.to_string(), (cpu_ns, now));
        match before {
            Some((was, at)) if cpu_ns >= was => {
                let wall = now.saturating_duration_since(at).as_nanos() as f64;
                (wall > 0.0).then(|| (cpu_ns - was) as f64 / wall)
            }
            _ => None,
        }
    }

    /// Drops the readings of tasks that are gone.
    pub fn forget_except(&mut self, keep: impl Fn(&str) -> bool) {
        self.previous.retain(|id, _| keep(id));
        self.quota.retain(|id, _| keep(id));
        self.disk.retain(|id, _| keep(id));
    }

    /// The task's cpu quota, read once.
    pub fn quota(&mut self, task: &str, read: impl FnOnce() -> Option<f64>) -> f64 {
        if let Some(q) = self.quota.get(task) {
            return *q;
        }
        match read() {
            Some(q) => *self.quota.entry(task.to_string()).or_insert(q),
            // Not readable now: try again next time.
            None => 0.0,
        }
    }

    /// The task's sandbox size, measured again once [`DISK_EVERY`] passed.
    pub fn disk(&mut self, task: &str, now: Instant, measure: impl FnOnce() -> u64) -> u64 {
        match self.disk.get(task) {
            Some((bytes, at)) if now.saturating_duration_since(*at) < DISK_EVERY => *bytes,
            _ => {
                let bytes = measure();
                self.disk.insert(task.to_string(), (bytes, now));
                bytes
            }
        }
    }

    /// Milliseconds between the last two samples (0 before the second).
    pub fn interval_ms(&self) -> u64 {
        self.interval_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn cores_are_cpu_time_over_wall_time() {
        let mut s = Sampler::default();
        let t0 = Instant::now();
        assert_eq!(s.cores("a", Some(1_000_000_000), t0), None);
        let t1 = t0 + Duration::from_secs(5);
        // 5 s of cpu in 5 s of wall time: one core.
        let cores = s.cores("a", Some(6_000_000_000), t1).expect("a rate");
        assert!((cores - 1.0).abs() < 1e-9, "{cores}");
        assert_eq!(s.interval_ms(), 5000);
        // Half a core over the next 2 s.
        let cores = s
            .cores("a", Some(7_000_000_000), t1 + Duration::from_secs(2))
            .expect("a rate");
        assert!((cores - 0.5).abs() < 1e-9, "{cores}");
    }

    #[test]
    fn quota_is_read_once_and_disk_again_after_a_while() {
        let mut s = Sampler::default();
        let t0 = Instant::now();
        assert_eq!(s.quota("a", || Some(0.5)), 0.5);
        assert_eq!(s.quota("a", || Some(9.0)), 0.5);
        assert_eq!(s.disk("a", t0, || 10), 10);
        assert_eq!(s.disk("a", t0 + Duration::from_secs(5), || 20), 10);
        assert_eq!(s.disk("a", t0 + DISK_EVERY, || 30), 30);
        s.forget_except(|_| false);
        assert_eq!(s.quota("a", || Some(2.0)), 2.0);
    }

    #[test]
    fn a_counter_that_goes_back_or_is_missing_gives_no_rate() {
        let mut s = Sampler::default();
        let t0 = Instant::now();
        s.cores("a", Some(5_000), t0);
        assert_eq!(s.cores("a", Some(10), t0 + Duration::from_secs(1)), None);
        assert_eq!(s.cores("b", None, t0 + Duration::from_secs(1)), None);
        s.forget_except(|id| id != "a");
        assert_eq!(s.cores("a", Some(20), t0 + Duration::from_secs(2)), None);
    }
}
