//! A deterministic synthetic workload: the benchmark's 100,000 tasks
//! (1,000 jobs of 100, mixed constraints and sizes) onto 10,000 agents,
//! scalable down for tests. Also used by end-to-end benchmarks that need a
//! realistic cluster without real machines.
//!
//! Agents: 32 cpus, 128 GiB, 1 TiB, ports 31000-31999; 4 idcs, 2 locs,
//! racks of 40; 98% online, 1% offline, 1% problem.
//! Jobs (by a seeded generator): sizes from 0.25 cpu / 512 MiB to
//! 4 cpus / 8 GiB; constraints ~30% `hostname:UNIQUE`, 15% `idc:GROUP_BY`,
//! 10% `idc:CLUSTER:<idc>`, 10% `rack:MAX_PER:2`, 5% `hostname:LIKE`,
//! 5% `idc:UNLIKE`, 5% UNIQUE + GROUP_BY, the rest none; half the jobs ask a
//! dynamic port, UNIQUE jobs sometimes a fixed one; 10 product lines with
//! weights and quotas; 10% of jobs at a higher priority.

use std::collections::{BTreeSet, HashSet};

use crate::constraint::{Constraint, Operator};
use crate::plan::Plan;
use crate::resources::{PortRequest, Resources};
use crate::snapshot::{Agent, JobRequest, Quota, Snapshot};

/// Shape of a synthetic workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadSpec {
    /// Number of agents.
    pub agents: usize,
    /// Number of jobs.
    pub jobs: usize,
    /// Pending tasks per job.
    pub tasks_per_job: usize,
    /// Percentage of jobs using the `spread` policy (the rest use the
    /// default, `binpack`).
    pub spread_percent: u64,
    /// Seed of the generator.
    pub seed: u64,
}

impl Default for WorkloadSpec {
    /// The benchmark: 10,000 agents, 1,000 jobs of 100 tasks, 10% spread.
    fn default() -> Self {
        Self {
            agents: 10_000,
            jobs: 1_000,
            tasks_per_job: 100,
            spread_percent: 10,
            seed: 42,
        }
    }
}

/// SplitMix64: tiny, deterministic, good enough for workloads.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when n is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

const IDCS: [&str; 4] = ["c3", "c4", "lg", "zw"];
/// (cpus, mem MiB) of the task sizes.
const SIZES: [(f64, u64); 7] = [
    (0.25, 512),
    (0.5, 1024),
    (1.0, 2048),
    (2.0, 4096),
    (4.0, 8192),
    (1.0, 8192),
    (4.0, 4096),
];

/// Capacity of every synthetic agent.
pub fn agent_capacity() -> Resources {
    Resources::new(32.0, 128 * 1024, 1024 * 1024)
}

/// Builds the workload described by `spec`.
pub fn workload(spec: &WorkloadSpec) -> Snapshot {
    let mut rng = Rng::new(spec.seed);
    let mut snap = Snapshot::default();
    for i in 0..spec.agents {
        let idc = IDCS[rng.below(4) as usize];
        let loc = if idc == "c3" || idc == "c4" {
            "bj"
        } else {
            "sh"
        };
        let status = match rng.below(100) {
            0 => "offline",
            1 => "problem",
            _ => "online",
        };
        let agent = Agent::new(format!("h{i:05}"), agent_capacity())
            .with_ports(31000, 31999)
            .with_attr("idc", idc)
            .with_attr("loc", loc)
            .with_attr("rack", format!("r{:03}", i / 40))
            .with_attr("status", status);
        snap.agents.push(agent);
    }
    let pdls: Vec<String> = (0..10).map(|p| format!("pdl{p}")).collect();
    for (p, name) in pdls.iter().enumerate() {
        snap.pdl_weights.insert(name.clone(), 1.0 + (p % 3) as f64);
        snap.quotas.push(Quota {
            node: format!("cop.xiaomi_owt.inf_pdl.{name}"),
            cpus_milli: Some(1_000_000_000),
            mem_mib: Some(u64::MAX / 2),
        });
    }
    for j in 0..spec.jobs {
        let pdl = &pdls[rng.below(pdls.len() as u64) as usize];
        let (cpus, mem) = SIZES[rng.below(SIZES.len() as u64) as usize];
        let mut constraints = Vec::new();
        let mut unique = false;
        match rng.below(100) {
            0..=29 => {
                constraints.push(Constraint::new("hostname", Operator::Unique, None));
                unique = true;
            }
            30..=44 => constraints.push(Constraint::new("idc", Operator::GroupBy, None)),
            45..=54 => {
                let idc = IDCS[rng.below(4) as usize];
                constraints.push(Constraint::new("idc", Operator::Cluster, Some(idc)));
            }
            55..=64 => constraints.push(Constraint::new("rack", Operator::MaxPer, Some("2"))),
            65..=69 => constraints.push(Constraint::new(
                "hostname",
                Operator::Like,
                Some("h0[0-4].*"),
            )),
            70..=74 => constraints.push(Constraint::new("idc", Operator::Unlike, Some("zw"))),
            75..=79 => {
                constraints.push(Constraint::new("hostname", Operator::Unique, None));
                constraints.push(Constraint::new("idc", Operator::GroupBy, None));
                unique = true;
            }
            _ => {}
        }
        let mut ports = Vec::new();
        if rng.below(2) == 0 {
            ports.push(PortRequest::dynamic("http"));
        }
        if unique && rng.below(4) == 0 {
            ports.push(PortRequest::fixed("admin", 31500 + (j % 400) as u16));
        }
        let policy = (rng.below(100) < spec.spread_percent).then(|| "spread".to_string());
        let priority = if rng.below(10) == 0 { 10 } else { 0 };
        snap.pending.push(JobRequest {
            job: format!("job{j:04}"),
            tasks: (0..spec.tasks_per_job)
                .map(|t| format!("job{j:04}.{t:03}"))
                .collect(),
            resources: Resources::new(cpus, mem, 1024),
            ports,
            constraints,
            priority,
            preemption: false,
            pdl: pdl.clone(),
            service_path: format!(
                "cop.xiaomi_owt.inf_pdl.{pdl}_servicegroup.g_service.s{j}_job.job{j:04}_cluster.c3"
            ),
            policy,
            needs: Vec::new(),
            maintenance: false,
        });
    }
    snap
}

/// Packing quality of a plan on a fresh homogeneous workload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Packing {
    /// Agents that received at least one placement.
    pub agents_used: usize,
    /// `max over cpus, mem, disk of ceil(placed demand / agent capacity)`.
    pub lower_bound: u64,
    /// `agents_used / lower_bound`.
    pub ratio: f64,
}

/// Measures how tightly `plan` packed the placed tasks (meaningful when
/// every agent has [`agent_capacity`] and nothing was running before).
pub fn packing(snapshot: &Snapshot, plan: &Plan<'_>) -> Packing {
    let used: HashSet<&str> = plan.placements.iter().map(|p| p.agent).collect();
    let mut demand = [0u128; 3];
    let jobs: std::collections::HashMap<&str, &JobRequest> = snapshot
        .pending
        .iter()
        .map(|j| (j.job.as_str(), j))
        .collect();
    for p in &plan.placements {
        if let Some(j) = jobs.get(p.job) {
            demand[0] += u128::from(j.resources.cpus_milli);
            demand[1] += u128::from(j.resources.mem_mib);
            demand[2] += u128::from(j.resources.disk_mib);
        }
    }
    let cap = agent_capacity();
    let caps = [cap.cpus_milli, cap.mem_mib, cap.disk_mib].map(|c| u128::from(c.max(1)));
    let lower_bound = demand
        .iter()
        .zip(caps)
        .map(|(d, c)| d.div_ceil(c))
        .max()
        .unwrap_or(0);
    let lower_bound = u64::try_from(lower_bound).unwrap_or(u64::MAX);
    Packing {
        agents_used: used.len(),
        lower_bound,
        ratio: if lower_bound == 0 {
            1.0
        } else {
            used.len() as f64 / lower_bound as f64
        },
    }
}

/// Distinct agents used by the placements, sorted (handy in tests).
pub fn agents_used<'s>(plan: &Plan<'s>) -> BTreeSet<&'s str> {
    plan.placements.iter().map(|p| p.agent).collect()
}
