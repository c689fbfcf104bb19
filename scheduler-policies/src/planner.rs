//! The round: compile every job once, then place task by task in
//! priority order, weighted-DRF order between product lines, request order
//! within a product line.

use std::collections::VecDeque;

use crate::cluster::Cluster;
use crate::config::Config;
use crate::explain::WaitReason;
use crate::fairshare::{DrfQueue, FairShare};
use crate::filter::Filters;
use crate::hash::FxHashMap;
use crate::index::Cursor;
use crate::job::{CompileInput, JobState};
use crate::plan::{Placement, Plan, Preemption, Unplaced};
use crate::policy::{Candidates, Policies, ScanOrder};
use crate::preempt::Preemptor;
use crate::quota::Quotas;
use crate::snapshot::Snapshot;

/// Plans every pending task of `snapshot` with the built-in policies.
///
/// Pure and deterministic: the same snapshot and config give the same plan.
pub fn plan<'s>(snapshot: &'s Snapshot, config: &Config) -> Plan<'s> {
    plan_with(snapshot, config, &Policies::builtin())
}

/// Like [`plan`], with a custom set of policies.
pub fn plan_with<'s>(snapshot: &'s Snapshot, config: &Config, policies: &Policies) -> Plan<'s> {
    Round::new(snapshot, config, policies).run()
}

struct Round<'s, 'p> {
    snapshot: &'s Snapshot,
    config: &'p Config,
    policies: &'p Policies,
    cluster: Cluster<'s>,
    filters: Filters,
    quotas: Quotas<'s>,
    fair: FairShare<'s>,
    preemptor: Preemptor<'s>,
    jobs: Vec<JobState<'s>>,
    job_by_name: FxHashMap<&'s str, usize>,
    plan: Plan<'s>,
}

impl<'s, 'p> Round<'s, 'p> {
    fn new(snapshot: &'s Snapshot, config: &'p Config, policies: &'p Policies) -> Self {
        let requests = snapshot.pending.iter().map(|j| j.resources);
        let mut cluster = Cluster::new(&snapshot.agents, &snapshot.running, requests);
        let mut filters = Filters::default();
        let quotas = Quotas::new(&snapshot.quotas, &snapshot.running);
        let fair = FairShare::new(snapshot, cluster.total_online);

        let mut job_by_name: FxHashMap<&'s str, usize> = FxHashMap::default();
        for (j, req) in snapshot.pending.iter().enumerate() {
            job_by_name.entry(req.job.as_str()).or_insert(j);
        }
        let mut running_on: Vec<Vec<usize>> = vec![Vec::new(); snapshot.pending.len()];
        for t in &snapshot.running {
            if let (Some(&j), Some(&i)) = (
                job_by_name.get(t.job.as_str()),
                cluster.by_id.get(t.agent.as_str()),
            ) {
                running_on[j].push(i as usize);
            }
        }
        let default_policy = policies.index_of(&config.default_policy);
        let unknown = |name: &str| {
            let known: Vec<&str> = policies.names().collect();
            format!("unknown policy {name:?}; known: {}", known.join(", "))
        };
        let jobs = snapshot
            .pending
            .iter()
            .zip(&running_on)
            .map(|(req, on)| {
                let policy = match &req.policy {
                    Some(name) => policies.index_of(name).ok_or_else(|| unknown(name)),
                    None => default_policy.ok_or_else(|| unknown(&config.default_policy)),
                };
                let input = CompileInput {
                    policy,
                    pdl: fair.id(&req.pdl),
                    quotas: quotas.covering(&req.service_path),
                    running_on: on,
                };
                JobState::compile(req, &mut cluster, &mut filters, input)
            })
            .collect();
        Self {
            snapshot,
            config,
            policies,
            cluster,
            filters,
            quotas,
            fair,
            preemptor: Preemptor::new(&snapshot.running),
            jobs,
            job_by_name,
            plan: Plan::default(),
        }
    }

    fn run(mut self) -> Plan<'s> {
        self.plan.placements.reserve(self.snapshot.pending_tasks());
        let mut order: Vec<usize> = (0..self.jobs.len()).collect();
        order.sort_by_key(|&j| std::cmp::Reverse(self.jobs[j].req.priority));
        let priorities: Vec<i32> = self.jobs.iter().map(|j| j.req.priority).collect();
        for tier in order.chunk_by(|&a, &b| priorities[a] == priorities[b]) {
            self.run_tier(tier);
        }
        self.finish()
    }

    /// One priority level: product lines take turns by weighted DRF.
    fn run_tier(&mut self, tier: &[usize]) {
        let mut queues: Vec<VecDeque<usize>> = vec![VecDeque::new(); self.fair.len()];
        for &j in tier {
            if let Some(q) = queues.get_mut(self.jobs[j].pdl) {
                q.push_back(j);
            }
        }
        let mut drf = DrfQueue::default();
        for (p, q) in queues.iter().enumerate() {
            if !q.is_empty() {
                drf.push(&self.fair, p);
            }
        }
        // The product line with the lowest share places one task, then
        // goes back in the queue at its new share.
        while let Some(p) = drf.first() {
            let queue = &mut queues[p];
            while let Some(&j) = queue.front() {
                if self.jobs[j].blocked.is_some() || self.jobs[j].remaining() == 0 {
                    queue.pop_front();
                } else {
                    break;
                }
            }
            let Some(&j) = queue.front() else {
                drf.pop(); // product line done for this level
                continue;
            };
            if self.place_one(j) {
                let r = self.jobs[j].req.resources;
                self.fair.charge(p, &r);
            }
            // Even a failed attempt may have preempted (released) tasks.
            drf.requeue_first(&self.fair);
        }
    }

    /// Places the next task of job `j`, or blocks the job with a reason.
    fn place_one(&mut self, j: usize) -> bool {
        let job = &self.jobs[j];
        if let Err(over) = self.quotas.check(&job.quotas, &job.req.resources) {
            self.jobs[j].blocked = Some(WaitReason::OverQuota(over));
            return false;
        }
        let chosen = match self.policies.by_index(job.policy) {
            // Rare, and pinned to one host: the agent index holds online
            // agents only, so the eligible set is walked instead.
            Some(_) if job.req.maintenance => {
                (0..self.cluster.agents.len()).find(|&i| job.fits(&self.cluster, i))
            }
            Some(policy) => match policy.scan_order() {
                Some(order) => self.scan_for(j, order),
                None => {
                    let candidates = Candidates::new(&self.cluster, job);
                    let slot = policy.choose(&candidates);
                    self.plan.stats.agents_examined += candidates.examined();
                    slot.map(|s| s.0 as usize)
                        .filter(|&i| i < self.cluster.agents.len() && job.fits(&self.cluster, i))
                }
            },
            None => None,
        };
        let job = &self.jobs[j];
        let preempt = self.config.preemption && job.req.preemption;
        let agent = match chosen {
            Some(i) => Some(i),
            None if preempt => self.preempt_for(j),
            None => None,
        };
        let Some(i) = agent else {
            let mut why = self.jobs[j].explain(&self.cluster, &self.filters);
            why.preemption_failed = preempt;
            self.jobs[j].blocked = Some(WaitReason::NoFit(why));
            return false;
        };
        let job = &mut self.jobs[j];
        let ports = job.bind(&mut self.cluster, i);
        self.quotas.charge(&job.quotas, &job.req.resources);
        let task = job.req.tasks.get(job.next).map_or("", String::as_str);
        job.next += 1;
        self.plan.placements.push(Placement {
            job: job.req.job.as_str(),
            task,
            agent: self.cluster.agents[i].id.as_str(),
            ports,
        });
        true
    }

    /// The fast path of policies with a [`ScanOrder`]: the first feasible
    /// agent after the job's cursor, or the job's last agent if it is still
    /// feasible and comes first; from the top once when both fail.
    fn scan_for(&mut self, j: usize, order: ScanOrder) -> Option<usize> {
        let cluster = &self.cluster;
        let job = &self.jobs[j];
        let mut examined = 0u64;
        let mut first_fit = |after: Option<Cursor>| {
            cluster.index.scan(job.levels, order, after).find(|&a| {
                examined += 1;
                job.fits(cluster, a as usize)
            })
        };
        let last = job.last.filter(|&a| job.fits(cluster, a as usize));
        if let (Some(a), Some(k)) = (last, job.cursor) {
            // The scan resumes strictly after the cursor, so it could only
            // find agents behind `a`: keep `a` without scanning. (Bin-pack
            // lands here on every task that stays on its last agent, which
            // has moved before the cursor by getting fuller.)
            if cluster.index.resumes_at(job.levels, &k)
                && !k.precedes(&cluster.cursor(a as usize), order)
            {
                self.plan.stats.agents_examined += examined;
                return Some(a as usize);
            }
        }
        let ahead = first_fit(job.cursor);
        let (pick, advance) = match (last, ahead) {
            (Some(a), Some(b))
                if cluster
                    .cursor(a as usize)
                    .precedes(&cluster.cursor(b as usize), order) =>
            {
                (a, false)
            }
            (_, Some(b)) => (b, true),
            (Some(a), None) => (a, false),
            (None, None) => match job.cursor.and_then(|_| first_fit(None)) {
                Some(b) => (b, true),
                None => {
                    self.plan.stats.agents_examined += examined;
                    return None;
                }
            },
        };
        self.plan.stats.agents_examined += examined;
        let pick = pick as usize;
        if advance {
            self.jobs[j].cursor = Some(self.cluster.cursor(pick));
        }
        Some(pick)
    }

    /// Frees room for job `j` by preempting lower-priority tasks; returns
    /// the agent where its task now fits.
    fn preempt_for(&mut self, j: usize) -> Option<usize> {
        let choice = self.preemptor.find(&self.cluster, &self.jobs[j])?;
        let i = choice.agent;
        let for_job = self.jobs[j].req;
        let for_task = for_job
            .tasks
            .get(self.jobs[j].next)
            .map_or("", String::as_str);
        for victim in self.preemptor.take(&choice.victims) {
            self.cluster.release(i, &victim.resources);
            for p in &victim.ports {
                self.cluster.ports[i].release(*p);
            }
            self.quotas.release(&victim.service_path, &victim.resources);
            self.fair.release(&victim.pdl, &victim.resources);
            if let Some(&vj) = self.job_by_name.get(victim.job.as_str()) {
                for d in &mut self.jobs[vj].dyns {
                    d.remove(self.cluster.value(d.column, i));
                }
            }
            self.plan.preemptions.push(Preemption {
                victim: victim.id.as_str(),
                victim_job: victim.job.as_str(),
                agent: self.cluster.agents[i].id.as_str(),
                for_task,
                for_job: for_job.job.as_str(),
            });
        }
        self.jobs[j].cursor = None;
        self.jobs[j].fits(&self.cluster, i).then_some(i)
    }

    fn finish(mut self) -> Plan<'s> {
        for (j, job) in self.jobs.iter().enumerate() {
            if job.remaining() == 0 {
                continue;
            }
            let reason = match &job.blocked {
                Some(r) => r.clone(),
                None => WaitReason::NoFit(job.explain(&self.cluster, &self.filters)),
            };
            let req = &self.snapshot.pending[j];
            self.plan.unplaced.push(Unplaced {
                job: req.job.as_str(),
                tasks: req.tasks[job.next.min(req.tasks.len())..]
                    .iter()
                    .map(String::as_str)
                    .collect(),
                reason,
            });
        }
        self.plan.stats.placed = self.plan.placements.len();
        self.plan.stats.unplaced = self.plan.unplaced.iter().map(|u| u.tasks.len()).sum();
        self.plan.stats.preempted = self.plan.preemptions.len();
        self.plan
    }
}
