//! A round's placements as raft entries: grouped by job in the compact
//! form ([`JobPlacements`]: what a job's tasks share is written once, and
//! every master completes the task records on apply), then split into
//! entries of bounded size.
//!
//! Whole task records (id, job id, host, address, port names) made about
//! 270 bytes per placement; every master writes each entry to its log,
//! and the follower decodes it, so at 100,000 placements those bytes were
//! a large part of what the three raft threads spent.

use std::collections::HashMap;

use ocean_proto::internal::{JobPlacements, Placement, PlanTasks};
use ocean_scheduler_policies as sp;
use tracing::warn;

use super::job::JobView;

/// A round's placements, by job.
#[derive(Debug, Default)]
pub struct Placements {
    groups: Vec<JobPlacements>,
    /// Index into `groups` by job id.
    by_job: HashMap<String, usize>,
    count: usize,
}

impl Placements {
    /// Adds one placement of `job`'s task.
    pub fn add(&mut self, job: &JobView, p: &sp::Placement<'_>, created_ms: u64) {
        // Task ids are made by `job::task_id` within their job's; anything
        // else would not survive the compact form.
        let Some(suffix) = crate::kernel::state::id_suffix(p.task, &job.id) else {
            warn!(task = p.task, job = %job.id, "placement dropped: task id outside its job's");
            return;
        };
        let i = match self.by_job.get(p.job) {
            Some(&i) => i,
            None => {
                let r = &job.spec.resources;
                self.groups.push(JobPlacements {
                    job_id: job.id.clone(),
                    config_hash: job.hash,
                    cpus: r.cpus,
                    mem_mib: r.mem,
                    disk_mib: r.disk,
                    // The planner assigns ports in the job request's
                    // order, the same for every task of the job.
                    port_names: p.ports.iter().map(|a| a.name.to_string()).collect(),
                    created_ms,
                    tasks: Vec::new(),
                });
                self.by_job.insert(job.id.clone(), self.groups.len() - 1);
                self.groups.len() - 1
            }
        };
        self.groups[i].tasks.push(Placement {
            id_suffix: suffix.to_string(),
            agent_id: p.agent.to_string(),
            ports: p.ports.iter().map(|a| u32::from(a.port)).collect(),
        });
        self.count += 1;
    }

    /// How many placements.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The placed tasks' ids.
    pub fn ids(&self) -> impl Iterator<Item = String> + '_ {
        self.groups.iter().flat_map(|g| {
            g.tasks
                .iter()
                .map(move |t| crate::kernel::state::task_id_in(&g.job_id, &t.id_suffix))
        })
    }

    /// The entries to commit: `first` (kills, reasons, preemptions) with
    /// the first placements, then as many more as needed, each with at
    /// most `max` placements. A job's placements may span entries.
    pub fn into_entries(self, first: PlanTasks, max: usize) -> Vec<PlanTasks> {
        let max = max.max(1);
        let mut entries = vec![first];
        let mut room = max;
        for mut g in self.groups {
            // `g` keeps the job's shared part; its tasks go out in parts.
            let mut rest = std::mem::take(&mut g.tasks);
            while !rest.is_empty() {
                if room == 0 {
                    entries.push(PlanTasks::default());
                    room = max;
                }
                let tail = if rest.len() > room {
                    rest.split_off(room)
                } else {
                    Vec::new()
                };
                room -= rest.len();
                let part = JobPlacements {
                    tasks: rest,
                    ..g.clone()
                };
                if let Some(e) = entries.last_mut() {
                    e.placed.push(part);
                }
                rest = tail;
            }
        }
        entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::job::{task_id, test_view};

    fn placement<'s>(job: &'s str, task: &'s str, agent: &'s str, port: u16) -> sp::Placement<'s> {
        sp::Placement {
            job,
            task,
            agent,
            ports: vec![sp::AssignedPort { name: "http", port }],
        }
    }

    #[test]
    fn placements_are_grouped_by_job_and_split_into_bounded_entries() {
        let a = test_view("team.a", 5, "sleep 1");
        let b = test_view("team.b", 2, "sleep 1");
        let ids_a: Vec<String> = (0..5).map(|n| task_id(&a.id, 7, n)).collect();
        let ids_b: Vec<String> = (0..2).map(|n| task_id(&b.id, 7, n)).collect();
        let mut p = Placements::default();
        // Interleaved, as fair share places them.
        p.add(&a, &placement(&a.id, &ids_a[0], "h1", 31000), 42);
        p.add(&b, &placement(&b.id, &ids_b[0], "h2", 31001), 42);
        for (n, id) in ids_a.iter().enumerate().skip(1) {
            p.add(&a, &placement(&a.id, id, "h3", 31002 + n as u16), 42);
        }
        p.add(&b, &placement(&b.id, &ids_b[1], "h1", 31009), 42);
        // Not a task id of its job: refused rather than mangled.
        p.add(&a, &placement(&a.id, "other.x", "h1", 31010), 42);
        assert_eq!(p.len(), 7);
        let mut ids: Vec<String> = p.ids().collect();
        ids.sort();
        let mut want: Vec<String> = ids_a.iter().chain(&ids_b).cloned().collect();
        want.sort();
        assert_eq!(ids, want);

        let first = PlanTasks {
            kill: vec!["old".into()],
            ..Default::default()
        };
        let entries = p.into_entries(first, 3);
        let sizes: Vec<usize> = entries
            .iter()
            .map(|e| e.placed.iter().map(|g| g.tasks.len()).sum())
            .collect();
        assert_eq!(sizes, vec![3, 3, 1]);
        assert_eq!(entries[0].kill, vec!["old".to_string()]);
        assert!(entries[1..].iter().all(|e| e.kill.is_empty()));
        // Job a's five tasks span the first two entries, each part with
        // the job's shared fields.
        let parts: Vec<&JobPlacements> = entries
            .iter()
            .flat_map(|e| &e.placed)
            .filter(|g| g.job_id == "team.a")
            .collect();
        assert_eq!(parts.len(), 2);
        for g in &parts {
            assert_eq!(g.port_names, vec!["http".to_string()]);
            assert_eq!(g.created_ms, 42);
            assert_eq!(g.config_hash, a.hash);
        }
        assert_eq!(parts[0].tasks[0].id_suffix, ids_a[0]["team.a.".len()..]);
        assert_eq!(parts[0].tasks[0].ports, vec![31000]);
    }
}
