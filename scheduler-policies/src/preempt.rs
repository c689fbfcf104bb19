//! Preemption: when a task of a job allowed to preempt fits nowhere, find
//! the cheapest set of strictly lower-priority running tasks on one agent
//! whose removal makes it fit.
//!
//! Per agent the victims are taken greedily, lowest priority first, then
//! largest first (fewest victims), then by task id. Among agents, the
//! cheapest set wins: lowest highest-victim-priority, then fewest victims,
//! then least freed capacity, then agent order. Only tasks from the
//! snapshot's `running` list are victims, never placements of this plan.
//! This is the slow path (a scan of the eligible agents), taken only for
//! tasks that failed the normal placement.

use crate::cluster::Cluster;
use crate::job::JobState;
use crate::snapshot::RunningTask;

/// Running tasks by agent, and which were preempted in this round.
#[derive(Debug)]
pub(crate) struct Preemptor<'s> {
    running: &'s [RunningTask],
    /// Built on first use: running-task indices per agent.
    by_agent: Option<Vec<Vec<u32>>>,
    gone: Vec<bool>,
}

/// Cost of a victim set, compared lexicographically: highest victim
/// priority, number of victims, freed capacity, agent index.
type Cost = (i32, usize, u64, usize);

/// Chosen agent and victims (indices into the snapshot's `running`).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Choice {
    pub(crate) agent: usize,
    pub(crate) victims: Vec<u32>,
}

impl<'s> Preemptor<'s> {
    pub(crate) fn new(running: &'s [RunningTask]) -> Self {
        Self {
            running,
            by_agent: None,
            gone: Vec::new(),
        }
    }

    fn index(&mut self, cluster: &Cluster<'_>) -> &[Vec<u32>] {
        let running = self.running;
        if self.gone.len() != running.len() {
            self.gone = vec![false; running.len()];
        }
        self.by_agent.get_or_insert_with(|| {
            let mut by_agent = vec![Vec::new(); cluster.agents.len()];
            for (k, t) in running.iter().enumerate() {
                if let (Some(&i), Ok(k)) = (cluster.by_id.get(t.agent.as_str()), u32::try_from(k)) {
                    by_agent[i as usize].push(k);
                }
            }
            by_agent
        })
    }

    /// Finds room for one task of `job`, or `None`.
    pub(crate) fn find(&mut self, cluster: &Cluster<'_>, job: &JobState<'_>) -> Option<Choice> {
        let running = self.running;
        let priority = job.req.priority;
        self.index(cluster);
        let by_agent = self.by_agent.as_deref().unwrap_or(&[]);
        let mut best: Option<(Cost, Vec<u32>)> = None;
        let mut candidates: Vec<u32> = Vec::new();
        for (i, on_agent) in by_agent.iter().enumerate() {
            if on_agent.is_empty() || !job.allowed(cluster, i) {
                continue;
            }
            candidates.clear();
            candidates.extend(on_agent.iter().copied().filter(|&k| {
                let t = &running[k as usize];
                !self.gone[k as usize] && t.priority < priority && t.job != job.req.job
            }));
            if candidates.is_empty() {
                continue;
            }
            candidates.sort_by(|&a, &b| {
                let (ta, tb) = (&running[a as usize], &running[b as usize]);
                ta.priority
                    .cmp(&tb.priority)
                    .then_with(|| {
                        cluster
                            .score_of(&tb.resources)
                            .cmp(&cluster.score_of(&ta.resources))
                    })
                    .then_with(|| ta.id.cmp(&tb.id))
            });
            let mut ports = cluster.ports[i].clone();
            let mut used = cluster.used[i];
            let mut taken = 0usize;
            let mut fits = false;
            for &k in &candidates {
                let t = &running[k as usize];
                used = used.saturating_sub(t.resources);
                let free = cluster.agents[i].capacity.saturating_sub(used);
                for p in &t.ports {
                    ports.release(*p);
                }
                taken += 1;
                if job.fits_in(&free, &ports) {
                    fits = true;
                    break;
                }
            }
            if !fits {
                continue;
            }
            let victims = &candidates[..taken];
            let top = victims
                .iter()
                .map(|&k| running[k as usize].priority)
                .max()
                .unwrap_or(i32::MIN);
            let freed: u64 = victims
                .iter()
                .map(|&k| cluster.score_of(&running[k as usize].resources))
                .sum();
            let cost = (top, taken, freed, i);
            if best.as_ref().is_none_or(|(c, _)| cost < *c) {
                best = Some((cost, victims.to_vec()));
            }
        }
        best.map(|((_, _, _, agent), victims)| Choice { agent, victims })
    }

    /// Marks victims as gone; returns their tasks.
    pub(crate) fn take(&mut self, victims: &[u32]) -> Vec<&'s RunningTask> {
        let running = self.running;
        victims
            .iter()
            .filter_map(|&k| {
                let gone = self.gone.get_mut(k as usize)?;
                if *gone {
                    return None;
                }
                *gone = true;
                running.get(k as usize)
            })
            .collect()
    }
}
