//! Restart back-off and flapping, kept on the job in the replicated state
//! (`Job.backoff`) so a new leader honours the delay its predecessor set.
//!
//! ```text
//!  task ends (FAILED, FINISHED, or killed for failing its health checks)
//!    ─► failures += 1 (back to 1 if the task ran healthy reset_after_seconds)
//!    ─► next_launch_ms = received_ms + backoff_seconds * factor^(failures-1), capped
//!    ─► recent_failures_ms within flapping.window_seconds >= max_failures ─► flapping
//!  ResetBackoff, or a new spec ─► back-off cleared
//! ```
//! Times are the leader's clock as written in the log (`TaskUpdate.received_ms`),
//! so every master computes the same state.

use std::sync::Arc;

use ocean_proto::internal::{JobBackoff, Task};
use ocean_spec::JobSpec;

use super::tasks::{FAILED, FINISHED, KILLED};
use super::{Change, ClusterState, Outcome};

/// Whether a task that just ended counts as a failure of its job: it ended
/// on its own (FAILED, or FINISHED: a service is not meant to exit), or it
/// was stopped because its health checks failed. Tasks stopped on request,
/// and LOST ones (their agent went away), are not the job's fault.
pub fn counts_as_failure(task: &Task) -> bool {
    match task.state.as_str() {
        FAILED | FINISHED => !task.kill_requested || task.health_failed,
        KILLED => task.health_failed,
        _ => false,
    }
}

/// The job's back-off after `task` failed, the report received at `now_ms`
/// (leader clock). Pure.
pub fn after_failure(
    prev: Option<&JobBackoff>,
    spec: &JobSpec,
    task: &Task,
    now_ms: u64,
) -> JobBackoff {
    let mut b = prev.cloned().unwrap_or_default();
    let ran_ms = task.ended_ms.saturating_sub(task.started_ms);
    let ran_well = task.started_ms > 0
        && ran_ms >= u64::from(spec.backoff.reset_after_seconds) * 1000
        && task.healthy != Some(false);
    if ran_well {
        b.failures = 0;
    }
    b.failures = b.failures.saturating_add(1);
    let delay_s = spec.backoff.delay_seconds(b.failures);
    b.delay_ms = (delay_s * 1000.0).round() as u64;
    b.next_launch_ms = now_ms.saturating_add(b.delay_ms);
    let window_ms = u64::from(spec.flapping.window_seconds) * 1000;
    b.recent_failures_ms
        .retain(|t| now_ms.saturating_sub(*t) < window_ms);
    b.recent_failures_ms.push(now_ms);
    let what = describe(task);
    let recent = b.recent_failures_ms.len();
    if !b.flapping && recent >= spec.flapping.max_failures as usize {
        b.flapping = true;
        b.message = format!(
            "flapping: {recent} failures within {} s (flapping.max_failures {}); relaunching \
             stopped until the back-off is reset (ocean job reset-backoff); last: {what}",
            spec.flapping.window_seconds, spec.flapping.max_failures
        );
    } else if !b.flapping {
        b.message = format!(
            "{} failure(s); next launch {:.1} s after the last ({what})",
            b.failures, delay_s
        );
    }
    b
}

impl ClusterState {
    /// Counts a failure of `task` against its job's back-off.
    pub(super) fn job_failed(&mut self, task: &Task, at_ms: u64, version: u64) -> Option<Change> {
        let job = self.jobs.get(&task.job_id)?;
        let spec = serde_json::from_slice::<ocean_spec::JobSpec>(&job.spec_json).ok()?;
        let mut j = ocean_proto::internal::Job::clone(job);
        j.backoff = Some(after_failure(job.backoff.as_ref(), &spec, task, at_ms));
        j.updated_version = version;
        let j = Arc::new(j);
        self.jobs.insert(j.id.clone(), j.clone());
        Some(Change::JobPut(j))
    }

    /// Clears a job's back-off and flapping mark.
    pub(super) fn reset_backoff(&mut self, id: &str) -> (Outcome, Vec<Change>) {
        let Some(job) = self.jobs.get(id) else {
            return (Outcome::NotFound, Vec::new());
        };
        if job.backoff.is_none() {
            return (Outcome::Unchanged, Vec::new());
        }
        let mut j = ocean_proto::internal::Job::clone(job);
        j.backoff = None;
        j.updated_version = self.version + 1;
        let j = Arc::new(j);
        self.jobs.insert(j.id.clone(), j.clone());
        self.finish(vec![Change::JobPut(j)])
    }
}

/// One line on how a task ended, for the job's back-off message.
fn describe(task: &Task) -> String {
    let mut s = format!("task {} ended {}", task.id, task.state);
    if task.health_failed {
        s.push_str(" after failing its health checks");
        if !task.health_message.is_empty() {
            s.push_str(&format!(" ({})", task.health_message));
        }
        return s;
    }
    if let Some(code) = task.exit_code {
        s.push_str(&format!(", exit code {code}"));
    }
    if let Some(sig) = task.signal {
        s.push_str(&format!(", signal {sig}"));
    }
    if !task.reason.is_empty() {
        s.push_str(&format!(" ({})", task.reason));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> JobSpec {
        let mut s = JobSpec::new("cop.c_owt.o_pdl.p_service.s_job.j_cluster.c", "x");
        s.backoff.backoff_seconds = 1.0;
        s.backoff.backoff_factor = 2.0;
        s.backoff.max_launch_delay_seconds = 3.0;
        s.backoff.reset_after_seconds = 10;
        s.flapping.max_failures = 4;
        s.flapping.window_seconds = 60;
        s
    }

    fn failed(started_ms: u64, ended_ms: u64) -> Task {
        Task {
            id: "t".into(),
            state: FAILED.into(),
            started_ms,
            ended_ms,
            exit_code: Some(1),
            ..Default::default()
        }
    }

    #[test]
    fn delays_grow_cap_and_reset_after_a_good_run() {
        let s = spec();
        let mut b = None;
        let mut delays = Vec::new();
        for i in 0..3u64 {
            let next = after_failure(b.as_ref(), &s, &failed(1, 500), 1_000 * i);
            delays.push(next.delay_ms);
            b = Some(next);
        }
        assert_eq!(delays, vec![1_000, 2_000, 3_000]);
        let b3 = b.clone().unwrap_or_default();
        assert_eq!(b3.next_launch_ms, 2_000 + 3_000);
        assert!(!b3.flapping);
        // Ran 10 s: counting starts over.
        let again = after_failure(b.as_ref(), &s, &failed(1_000, 11_000), 20_000);
        assert_eq!((again.failures, again.delay_ms), (1, 1_000));
        // ... but not when it was unhealthy at the end.
        let mut sick = failed(1_000, 11_000);
        sick.healthy = Some(false);
        assert_eq!(after_failure(b.as_ref(), &s, &sick, 20_000).failures, 4);
    }

    #[test]
    fn failures_within_the_window_mark_the_job_flapping() {
        let s = spec();
        let mut b = None;
        for at in [0, 10_000, 20_000] {
            b = Some(after_failure(b.as_ref(), &s, &failed(1, 2), at));
        }
        // The first failure left the 60 s window: 3 recent, not flapping.
        let b4 = after_failure(b.as_ref(), &s, &failed(1, 2), 65_000);
        assert_eq!((b4.recent_failures_ms.len(), b4.flapping), (3, false));
        let b5 = after_failure(Some(&b4), &s, &failed(1, 2), 66_000);
        assert!(b5.flapping, "{b5:?}");
        assert!(
            b5.message.contains("4 failures within 60 s"),
            "{}",
            b5.message
        );
        assert!(b5.message.contains("exit code 1"), "{}", b5.message);
    }

    #[test]
    fn only_the_jobs_own_failures_count() {
        let mut t = failed(1, 2);
        assert!(counts_as_failure(&t));
        t.state = FINISHED.into();
        assert!(counts_as_failure(&t));
        t.kill_requested = true;
        assert!(!counts_as_failure(&t));
        t.state = KILLED.into();
        assert!(!counts_as_failure(&t));
        t.health_failed = true;
        assert!(counts_as_failure(&t));
        t.state = "LOST".into();
        assert!(!counts_as_failure(&t));
    }
}
