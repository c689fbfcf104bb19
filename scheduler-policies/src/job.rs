//! Per-job planning state: the job's constraints compiled against the
//! cluster once, the O(1) fit check the policies call, the bookkeeping of a
//! placement, and the explanation when nothing fits.

use std::collections::BTreeSet;
use std::rc::Rc;

use crate::cluster::Cluster;
use crate::dynamic::DynConstraint;
use crate::explain::{FitExplanation, Reason, WaitReason};
use crate::filter::{bit, Filters};
use crate::index::{Cursor, Levels};
use crate::plan::AssignedPort;
use crate::ports::PortState;
use crate::resources::Resources;
use crate::snapshot::JobRequest;

/// How one of the job's constraints is checked.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Check {
    /// Index of a static table in [`Filters`].
    Static(usize),
    /// Index into [`JobState::dyns`].
    Dynamic(usize),
}

/// One job during a round.
#[derive(Debug)]
pub(crate) struct JobState<'s> {
    pub(crate) req: &'s JobRequest,
    pub(crate) policy: usize,
    pub(crate) pdl: usize,
    pub(crate) quotas: Vec<usize>,
    /// Online agents passing the static constraints.
    pub(crate) eligible: Rc<[u64]>,
    checks: Vec<Check>,
    pub(crate) dyns: Vec<DynConstraint>,
    fixed: Vec<u16>,
    dynamic_ports: u32,
    /// Index cells that can hold one task start here.
    pub(crate) levels: Levels,
    /// Where the job's last incremental scan stopped.
    pub(crate) cursor: Option<Cursor>,
    /// The agent of the job's last placement (it moved in the index).
    pub(crate) last: Option<u32>,
    /// Index of the next pending task.
    pub(crate) next: usize,
    /// Set once a task failed: the job's remaining tasks share the reason.
    pub(crate) blocked: Option<WaitReason>,
}

/// What [`JobState::compile`] needs besides the job.
#[derive(Debug)]
pub(crate) struct CompileInput<'a> {
    /// Resolved policy, or the error message when its name is unknown.
    pub(crate) policy: Result<usize, String>,
    pub(crate) pdl: usize,
    pub(crate) quotas: Vec<usize>,
    /// Agents (indices) of the job's running tasks.
    pub(crate) running_on: &'a [usize],
}

impl<'s> JobState<'s> {
    /// Compiles a job; an invalid request comes back already blocked.
    pub(crate) fn compile(
        req: &'s JobRequest,
        cluster: &mut Cluster<'_>,
        filters: &mut Filters,
        input: CompileInput<'_>,
    ) -> Self {
        let mut job = Self {
            req,
            policy: 0,
            pdl: input.pdl,
            quotas: input.quotas,
            eligible: Rc::from(Vec::new()),
            checks: Vec::with_capacity(req.constraints.len()),
            dyns: Vec::new(),
            fixed: req.ports.iter().filter_map(|p| p.fixed).collect(),
            dynamic_ports: u32::try_from(req.ports.iter().filter(|p| p.fixed.is_none()).count())
                .unwrap_or(u32::MAX),
            levels: cluster.index.levels(&req.resources),
            cursor: None,
            last: None,
            next: 0,
            blocked: None,
        };
        if let Err(msg) = job.compile_inner(cluster, filters, input.policy, input.running_on) {
            job.blocked = Some(WaitReason::Invalid(msg));
        }
        job
    }

    fn compile_inner(
        &mut self,
        cluster: &mut Cluster<'_>,
        filters: &mut Filters,
        policy: Result<usize, String>,
        running_on: &[usize],
    ) -> Result<(), String> {
        self.policy = policy?;
        let distinct: BTreeSet<u16> = self.fixed.iter().copied().collect();
        if distinct.len() != self.fixed.len() {
            return Err("the same fixed host port is requested twice".to_string());
        }
        let mut tables = Vec::new();
        for c in &self.req.constraints {
            c.validate_shape().map_err(|e| e.to_string())?;
            if !c.is_dynamic() {
                let t = filters
                    .static_table(cluster, c)
                    .map_err(|e| e.to_string())?;
                tables.push(t);
                self.checks.push(Check::Static(t));
            } else {
                self.checks.push(Check::Dynamic(usize::MAX)); // set below
            }
        }
        let eligible = filters.eligible(cluster, &tables, &self.req.needs, self.req.maintenance);
        self.eligible = Rc::clone(&eligible.bits);
        for (k, c) in self.req.constraints.iter().enumerate() {
            if let Check::Dynamic(_) = self.checks[k] {
                let d =
                    DynConstraint::new(cluster, filters, c, &eligible, running_on.iter().copied())
                        .map_err(|e| e.to_string())?;
                self.checks[k] = Check::Dynamic(self.dyns.len());
                self.dyns.push(d);
            }
        }
        Ok(())
    }

    /// Pending tasks not yet decided.
    pub(crate) fn remaining(&self) -> usize {
        self.req.tasks.len().saturating_sub(self.next)
    }

    /// Can one task of this job go to agent `i` right now?
    #[inline(always)]
    pub(crate) fn fits(&self, cluster: &Cluster<'_>, i: usize) -> bool {
        bit(&self.eligible, i)
            && cluster.free[i].covers(&self.req.resources)
            && self
                .dyns
                .iter()
                .all(|d| d.allows(cluster.value(d.column, i)))
            && (self.req.ports.is_empty()
                || cluster.ports[i].can_host(&self.fixed, self.dynamic_ports))
    }

    /// True when constraints alone allow agent `i` (resources ignored).
    pub(crate) fn allowed(&self, cluster: &Cluster<'_>, i: usize) -> bool {
        bit(&self.eligible, i)
            && self
                .dyns
                .iter()
                .all(|d| d.allows(cluster.value(d.column, i)))
    }

    /// Would one task fit in `free` resources and `ports` (a copy of an
    /// agent's state with preemption victims released)?
    pub(crate) fn fits_in(&self, free: &Resources, ports: &PortState) -> bool {
        free.covers(&self.req.resources)
            && (self.req.ports.is_empty() || ports.can_host(&self.fixed, self.dynamic_ports))
    }

    /// Binds one task to agent `i`: takes its resources and ports and
    /// updates the dynamic constraints. The caller has checked [`Self::fits`].
    pub(crate) fn bind(&mut self, cluster: &mut Cluster<'_>, i: usize) -> Vec<AssignedPort<'s>> {
        cluster.allocate(i, &self.req.resources);
        let mut assigned = Vec::with_capacity(self.req.ports.len());
        if !self.req.ports.is_empty() {
            let ports = &mut cluster.ports[i];
            for p in &self.fixed {
                ports.take(*p);
            }
            for p in &self.req.ports {
                let port = match p.fixed {
                    Some(port) => port,
                    None => ports.take_lowest().unwrap_or(0),
                };
                assigned.push(AssignedPort {
                    name: p.name.as_str(),
                    port,
                });
            }
        }
        let mut grew = false;
        for d in &mut self.dyns {
            grew |= d.add(cluster.value(d.column, i));
        }
        if grew {
            self.cursor = None; // agents behind the cursor may be allowed now
        }
        self.last = u32::try_from(i).ok();
        assigned
    }

    /// Why no agent takes a task of this job: each agent is charged to the
    /// first check it fails.
    pub(crate) fn explain(&self, cluster: &Cluster<'_>, filters: &Filters) -> FitExplanation {
        let n_constraints = self.req.constraints.len();
        let mut per_constraint = vec![0u32; n_constraints];
        let mut counts = [0u32; 6]; // not online, cpus, mem, disk, port, ports
        let mut fit = 0u32;
        let mut unavailable: std::collections::BTreeMap<&str, u32> = Default::default();
        let r = &self.req.resources;
        'agents: for i in 0..cluster.agents.len() {
            let maintainable = self.req.maintenance && cluster.agents[i].is_maintainable();
            if !cluster.online[i] && !maintainable {
                counts[0] += 1;
                continue;
            }
            if let Some(missing) = self
                .req
                .needs
                .iter()
                .find(|n| !cluster.agents[i].executors.contains(*n))
            {
                *unavailable.entry(missing.as_str()).or_insert(0) += 1;
                continue;
            }
            for (k, check) in self.checks.iter().enumerate() {
                let ok = match *check {
                    Check::Static(t) => {
                        let table = filters.table(t);
                        table.allows(cluster.value(table.column, i))
                    }
                    Check::Dynamic(d) => self
                        .dyns
                        .get(d)
                        .is_some_and(|d| d.allows(cluster.value(d.column, i))),
                };
                if !ok {
                    per_constraint[k] += 1;
                    continue 'agents;
                }
            }
            let free = &cluster.free[i];
            let ports = &cluster.ports[i];
            let slot = if free.cpus_milli < r.cpus_milli {
                1
            } else if free.mem_mib < r.mem_mib {
                2
            } else if free.disk_mib < r.disk_mib {
                3
            } else if !self.fixed.iter().all(|p| ports.is_free(*p)) {
                4
            } else if !ports.can_host(&self.fixed, self.dynamic_ports) {
                5
            } else {
                fit += 1;
                continue;
            };
            counts[slot] += 1;
        }
        let mut reasons: Vec<(Reason, u32)> = vec![
            (Reason::NotOnline, counts[0]),
            (Reason::InsufficientCpus, counts[1]),
            (Reason::InsufficientMem, counts[2]),
            (Reason::InsufficientDisk, counts[3]),
            (Reason::PortUnavailable, counts[4]),
            (Reason::InsufficientPorts, counts[5]),
        ];
        reasons.extend(
            unavailable
                .into_iter()
                .map(|(name, n)| (Reason::Unavailable(name.to_string()), n)),
        );
        for (c, n) in self.req.constraints.iter().zip(per_constraint) {
            let reason = Reason::Constraint(c.label());
            match reasons.iter_mut().find(|(r, _)| *r == reason) {
                Some(entry) => entry.1 += n,
                None => reasons.push((reason, n)),
            }
        }
        let total = u32::try_from(cluster.agents.len()).unwrap_or(u32::MAX);
        FitExplanation::from_counts(total, fit, reasons)
    }
}
