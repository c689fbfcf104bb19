//! What several pages count from the service's typed views: a job's state
//! in one word, live tasks per job and per agent, capacity sums.

use std::collections::HashMap;
use std::sync::Arc;

use ocean_master::kernel::state::{is_terminal, RUNNING};
use ocean_master::service::types::JobView;
use ocean_master::service::views::TaskView as Task;

pub use ocean_master::kernel::state::summary::JOB_STATES;

/// A job's state in one word, from what the API says of it:
/// `flapping` (relaunching stopped until a reset), `waiting` (some task
/// cannot be placed: see its reason), `idle` (0 instances), `running` (as
/// many tasks running as asked), else `starting`.
pub fn job_state(job: &JobView, running: usize) -> &'static str {
    // The master's own rule, so a page that counts a job's tasks itself
    // names the state the summary counts it under.
    ocean_master::kernel::state::summary::job_state(
        instances(job),
        running as u64,
        job.waiting.is_some(),
        job.flapping,
    )
}

/// The job's `instances` (0 when the spec has none).
pub fn instances(job: &JobView) -> u64 {
    job.spec
        .get("instances")
        .and_then(|v| v.as_u64())
        .unwrap_or(0)
}

/// Live (not ended) and serving (RUNNING, not being stopped) tasks of one
/// job or agent.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    pub live: usize,
    pub running: usize,
    pub cpus: f64,
    pub mem: u64,
    pub disk: u64,
}

impl Counts {
    fn add(&mut self, t: &Task) {
        if is_terminal(&t.state) {
            return;
        }
        self.live += 1;
        self.running += usize::from(t.state == RUNNING && !t.kill_requested);
        self.cpus += t.resources.cpus;
        self.mem += t.resources.mem;
        self.disk += t.resources.disk;
    }
}

/// Counts of tasks by job and by agent.
#[derive(Debug, Default)]
pub struct TaskCounts {
    pub by_job: HashMap<String, Counts>,
    pub by_agent: HashMap<String, Counts>,
    pub total: Counts,
}

impl TaskCounts {
    /// Counts `tasks` (ended ones are skipped).
    pub fn of(tasks: &[Task]) -> Self {
        let mut c = TaskCounts::default();
        for t in tasks {
            c.by_job.entry(t.job.clone()).or_default().add(t);
            if !t.agent.is_empty() {
                c.by_agent.entry(t.agent.clone()).or_default().add(t);
            }
            c.total.add(t);
        }
        c
    }

    /// A job's counts (zero when it has no task).
    pub fn job(&self, id: &str) -> Counts {
        self.by_job.get(id).copied().unwrap_or_default()
    }

    /// An agent's counts (zero when it runs nothing).
    pub fn agent(&self, id: &str) -> Counts {
        self.by_agent.get(id).copied().unwrap_or_default()
    }
}

/// Task records as the API shows them.
pub fn task_views(tasks: &[Arc<ocean_proto::internal::Task>]) -> Vec<Task> {
    tasks.iter().map(|t| Task::from(t.as_ref())).collect()
}

/// `a / b` as a percentage for a meter's label (0 when `b` is 0).
pub fn percent(a: f64, b: f64) -> u32 {
    if b <= 0.0 {
        0
    } else {
        ((a / b) * 100.0).round().clamp(0.0, 999.0) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(instances: u64, waiting: Option<&str>, flapping: bool) -> JobView {
        JobView {
            id: "cop.a_owt.b_pdl.c_service.d_job.e_cluster.f".into(),
            spec: json!({ "instances": instances }),
            created_version: 1,
            updated_version: 1,
            spec_version: 1,
            waiting: waiting.map(str::to_string),
            backoff: None,
            flapping,
        }
    }

    #[test]
    fn a_job_state_names_what_needs_attention_first() {
        assert_eq!(job_state(&job(2, None, false), 2), "running");
        assert_eq!(job_state(&job(2, None, false), 1), "starting");
        assert_eq!(job_state(&job(0, None, false), 0), "idle");
        assert_eq!(job_state(&job(2, Some("no cpu"), false), 1), "waiting");
        assert_eq!(job_state(&job(2, Some("no cpu"), true), 2), "flapping");
    }

    #[test]
    fn percent_of_nothing_is_zero() {
        assert_eq!(percent(1.0, 0.0), 0);
        assert_eq!(percent(1.0, 4.0), 25);
    }
}
