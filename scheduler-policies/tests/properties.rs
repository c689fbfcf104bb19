//! Property tests: random snapshots (built from a byte tape proptest can
//! shrink) must give plans that never overcommit cpus, mem, disk or ports,
//! satisfy every constraint given running tasks and earlier placements,
//! account for every pending task, and are identical run to run.

mod common;

use common::check_plan;
use ocean_scheduler_policies::synthetic::{workload, WorkloadSpec};
use ocean_scheduler_policies::*;
use proptest::prelude::*;

/// Reads small choices off a byte tape (zeros once exhausted).
struct Tape<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Tape<'_> {
    fn next(&mut self, n: u8) -> u8 {
        let b = self.bytes.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        if n == 0 {
            0
        } else {
            b % n
        }
    }

    fn chance(&mut self, percent: u8) -> bool {
        self.next(100) < percent
    }
}

fn snapshot_from(bytes: &[u8]) -> Snapshot {
    let mut t = Tape { bytes, at: 0 };
    let mut snap = Snapshot::default();
    let n_agents = 1 + t.next(8) as usize;
    for _ in 0..n_agents {
        // Ids may repeat: a later duplicate must be ignored.
        let id = format!("h{}", t.next(n_agents as u8 + 1));
        let mut a = Agent::new(
            id,
            Resources {
                cpus_milli: 500 * u64::from(t.next(9)),
                mem_mib: 256 * u64::from(t.next(9)),
                disk_mib: 100 * u64::from(t.next(4)),
            },
        )
        .with_attr("idc", ["a", "b", "c"][t.next(3) as usize]);
        if !t.chance(10) {
            a = a.with_attr("rack", ["r1", "r2"][t.next(2) as usize]);
        }
        match t.next(10) {
            0 => a = a.with_attr("status", "offline"),
            1 => a = a.with_attr("status", "problem"),
            _ => {}
        }
        let len = t.next(5);
        if len > 0 {
            a = a.with_ports(100, 100 + u16::from(len) - 1);
        }
        if t.chance(10) {
            a.reserved = Resources::new(0.5, 128, 0);
            a.reserved_ports.push(100);
        }
        snap.agents.push(a);
    }
    let jobs = ["j0", "j1", "j2", "j3"];
    for k in 0..t.next(7) {
        let agent = match t.next(10) {
            0 => "unknown".to_string(),
            _ => snap.agents[t.next(snap.agents.len() as u8) as usize]
                .id
                .clone(),
        };
        let mut ports = Vec::new();
        if t.chance(30) {
            ports.push(100 + u16::from(t.next(4)));
        }
        snap.running.push(RunningTask {
            id: format!("r{k}"),
            job: jobs[t.next(4) as usize].to_string(),
            agent,
            resources: Resources {
                cpus_milli: 250 * u64::from(t.next(8)),
                mem_mib: 128 * u64::from(t.next(8)),
                disk_mib: 0,
            },
            ports,
            priority: i32::from(t.next(4)),
            pdl: ["p1", "p2"][t.next(2) as usize].to_string(),
            service_path: format!("cop.x_pdl.{}_job.r", ["p1", "p2"][t.next(2) as usize]),
        });
    }
    let n_jobs = 1 + t.next(4) as usize;
    for (k, name) in jobs.iter().enumerate().take(n_jobs) {
        let mut constraints = Vec::new();
        for _ in 0..t.next(3) {
            let c = match t.next(12) {
                0 => Constraint::new("hostname", Operator::Unique, None),
                1 => Constraint::new("rack", Operator::Unique, None),
                2 => Constraint::new("idc", Operator::Cluster, Some("a")),
                3 => Constraint::new("idc", Operator::Cluster, None),
                4 => Constraint::new("idc", Operator::GroupBy, None),
                5 => Constraint::new("rack", Operator::GroupBy, Some("2")),
                6 => Constraint::new("hostname", Operator::Like, Some("h[0-2]")),
                7 => Constraint::new("idc", Operator::Unlike, Some("c")),
                8 => Constraint::new("rack", Operator::MaxPer, Some("2")),
                9 => Constraint::new("hostname", Operator::MaxPer, Some("1")),
                10 => Constraint::new("idc", Operator::Is, Some("b")),
                _ => Constraint::new("rack", Operator::Unlike, Some("r.")),
            };
            constraints.push(c);
        }
        let mut ports = Vec::new();
        for p in 0..t.next(3) {
            ports.push(if t.chance(30) {
                PortRequest::fixed(format!("p{p}"), 100 + u16::from(t.next(5)))
            } else {
                PortRequest::dynamic(format!("p{p}"))
            });
        }
        let pdl = ["p1", "p2"][t.next(2) as usize];
        snap.pending.push(JobRequest {
            job: name.to_string(),
            tasks: (0..1 + t.next(6)).map(|i| format!("{name}.{i}")).collect(),
            resources: Resources {
                cpus_milli: 250 * u64::from(t.next(10)),
                mem_mib: 128 * u64::from(t.next(8)),
                disk_mib: 50 * u64::from(t.next(3)),
            },
            ports,
            constraints,
            priority: i32::from(t.next(5)),
            preemption: t.chance(40),
            pdl: pdl.to_string(),
            service_path: format!("cop.x_pdl.{pdl}_job.{k}"),
            policy: [None, Some("binpack"), Some("spread")][t.next(3) as usize].map(str::to_string),
            needs: Vec::new(),
            maintenance: false,
        });
    }
    if t.chance(30) {
        snap.quotas.push(Quota {
            node: "cop.x_pdl.p1".into(),
            cpus_milli: Some(1000 * u64::from(t.next(6))),
            mem_mib: None,
        });
    }
    if t.chance(30) {
        snap.pdl_weights.insert("p2".into(), f64::from(t.next(4)));
    }
    snap
}

proptest! {
    // 2000 cases by default; PROPTEST_CASES=100000 for a longer soak.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000),
        ..ProptestConfig::default()
    })]

    #[test]
    fn plans_are_sound_complete_and_deterministic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let snap = snapshot_from(&bytes);
        let config = Config::default();
        let first = plan(&snap, &config);
        check_plan(&snap, &first);
        let copy = snap.clone();
        let second = plan(&copy, &config);
        prop_assert_eq!(&first, &second);
    }

    #[test]
    fn scale_down_picks_exactly_the_surplus(bytes in prop::collection::vec(any::<u8>(), 0..300), keep in 0usize..4) {
        let snap = snapshot_from(&bytes);
        for job in ["j0", "j1", "j2", "j3"] {
            let constraints = [Constraint::new("idc", Operator::GroupBy, None)];
            let victims = scale_down(&snap.agents, &snap.running, job, &constraints, keep);
            let running: Vec<&str> = snap.running.iter().filter(|t| t.job == job).map(|t| t.id.as_str()).collect();
            prop_assert_eq!(victims.len(), running.len().saturating_sub(keep));
            let mut unique = victims.clone();
            unique.sort();
            unique.dedup();
            prop_assert_eq!(unique.len(), victims.len());
            prop_assert!(victims.iter().all(|v| running.contains(v)));
            prop_assert_eq!(&victims, &scale_down(&snap.agents, &snap.running, job, &constraints, keep));
        }
    }
}

#[test]
fn synthetic_workload_plans_are_sound() {
    for seed in 0..3 {
        let snap = workload(&WorkloadSpec {
            agents: 400,
            jobs: 60,
            tasks_per_job: 20,
            spread_percent: 20,
            seed,
        });
        let p = plan(&snap, &Config::default());
        check_plan(&snap, &p);
        assert!(p.stats.placed > 0);
        assert_eq!(p, plan(&snap, &Config::default()));
    }
}
