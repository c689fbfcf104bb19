//! The pure half of health checking: what one check's results mean, and a
//! task's health from all its checks. No clock and no I/O: the time since
//! the task started comes in with each result.

use std::time::Duration;

use super::HealthCheckSpec;

/// One check's verdicts so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckState {
    /// Failures in a row (those ignored during the grace period excluded).
    pub consecutive_failures: u32,
    /// `None` until a result counted.
    pub healthy: Option<bool>,
    /// Passed at least once: the grace period no longer applies.
    pub ever_healthy: bool,
    /// Why the last counted result failed (empty after a pass).
    pub message: String,
}

impl CheckState {
    /// Takes one result, `since_start` after the task started. Failures
    /// within the grace period are ignored until the check first passes
    /// (Marathon's rule: a slow start is not a failure).
    pub fn record(
        &mut self,
        spec: &HealthCheckSpec,
        result: Result<(), String>,
        since_start: Duration,
    ) {
        match result {
            Ok(()) => {
                self.consecutive_failures = 0;
                self.healthy = Some(true);
                self.ever_healthy = true;
                self.message.clear();
            }
            Err(_) if !self.ever_healthy && since_start < spec.grace_period => {}
            Err(message) => {
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                self.healthy = Some(false);
                self.message = message;
            }
        }
    }

    /// Failed `max_consecutive_failures` times in a row (never, when 0).
    pub fn exhausted(&self, spec: &HealthCheckSpec) -> bool {
        spec.max_consecutive_failures > 0
            && self.consecutive_failures >= spec.max_consecutive_failures
    }
}

/// A task's health as the master sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskHealth {
    /// Unhealthy if any check fails, healthy once every check passed,
    /// `None` before that.
    pub healthy: Option<bool>,
    /// The failing checks' reasons.
    pub message: String,
    /// A check exhausted its failures: replace the task. Sticky.
    pub failed: bool,
}

impl TaskHealth {
    /// Combines the checks' states; `failed` stays set once set.
    pub fn combine(&self, specs: &[HealthCheckSpec], states: &[CheckState]) -> TaskHealth {
        let healthy = if states.iter().any(|s| s.healthy == Some(false)) {
            Some(false)
        } else if !states.is_empty() && states.iter().all(|s| s.healthy == Some(true)) {
            Some(true)
        } else {
            None
        };
        let message = specs
            .iter()
            .zip(states)
            .filter(|(_, s)| s.healthy == Some(false))
            // No failure count here: a message that changed with every
            // failed probe would be a report (and a raft entry) per probe.
            .map(|(spec, s)| format!("{} check failed: {}", spec.protocol.as_str(), s.message))
            .collect::<Vec<_>>()
            .join("; ");
        let failed = self.failed || specs.iter().zip(states).any(|(spec, s)| s.exhausted(spec));
        TaskHealth {
            healthy,
            message,
            failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Protocol;

    fn spec(max: u32) -> HealthCheckSpec {
        HealthCheckSpec {
            protocol: Protocol::Tcp,
            port_index: 0,
            path: "/".into(),
            status_min: 200,
            status_max: 399,
            command: String::new(),
            grace_period: Duration::from_secs(10),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            max_consecutive_failures: max,
        }
    }

    fn fail() -> Result<(), String> {
        Err("refused".into())
    }

    #[test]
    fn failures_in_the_grace_period_are_ignored_until_the_first_pass() {
        let s = spec(3);
        let mut c = CheckState::default();
        c.record(&s, fail(), Duration::from_secs(1));
        assert_eq!((c.healthy, c.consecutive_failures), (None, 0));
        c.record(&s, Ok(()), Duration::from_secs(2));
        assert_eq!(c.healthy, Some(true));
        // Once healthy, a failure counts even within the grace period.
        c.record(&s, fail(), Duration::from_secs(3));
        assert_eq!((c.healthy, c.consecutive_failures), (Some(false), 1));
        // After the grace period, failures count from the start.
        let mut late = CheckState::default();
        late.record(&s, fail(), Duration::from_secs(11));
        assert_eq!(late.consecutive_failures, 1);
    }

    #[test]
    fn a_task_is_replaced_after_max_consecutive_failures_and_stays_so() {
        let s = [spec(3)];
        let mut c = [CheckState::default()];
        let mut h = TaskHealth::default();
        let later = Duration::from_secs(60);
        for n in 1..=3 {
            c[0].record(&s[0], fail(), later);
            h = h.combine(&s, &c);
            assert_eq!(h.healthy, Some(false));
            assert_eq!(h.failed, n == 3, "after {n} failures");
        }
        assert_eq!(h.message, "tcp check failed: refused");
        c[0].record(&s[0], Ok(()), later);
        h = h.combine(&s, &c);
        assert_eq!((h.healthy, h.failed), (Some(true), true));
        // A pass in between resets the count.
        let mut c = [CheckState::default()];
        for r in [fail(), fail(), Ok(()), fail(), fail()] {
            c[0].record(&s[0], r, later);
        }
        assert!(!TaskHealth::default().combine(&s, &c).failed);
        // 0 = only report.
        let s0 = [spec(0)];
        let mut c = [CheckState::default()];
        for _ in 0..10 {
            c[0].record(&s0[0], fail(), later);
        }
        let h = TaskHealth::default().combine(&s0, &c);
        assert_eq!((h.healthy, h.failed), (Some(false), false));
    }

    #[test]
    fn every_check_must_pass() {
        let s = [spec(3), spec(3)];
        let mut c = [CheckState::default(), CheckState::default()];
        c[0].record(&s[0], Ok(()), Duration::ZERO);
        assert_eq!(TaskHealth::default().combine(&s, &c).healthy, None);
        c[1].record(&s[1], Ok(()), Duration::ZERO);
        assert_eq!(TaskHealth::default().combine(&s, &c).healthy, Some(true));
        c[1].record(&s[1], fail(), Duration::from_secs(60));
        assert_eq!(TaskHealth::default().combine(&s, &c).healthy, Some(false));
    }
}
