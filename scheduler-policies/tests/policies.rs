//! Policies, ports, fair share, quotas, priorities and preemption.

mod common;

use common::*;
use ocean_scheduler_policies::*;

fn run<'s>(snap: &'s Snapshot, config: &Config) -> Plan<'s> {
    let plan = plan(snap, config);
    check_plan(snap, &plan);
    plan
}

#[test]
fn binpack_fills_the_fullest_agent_first() {
    let mut snap = Snapshot {
        agents: vec![
            agent("h1", 8.0, 8192),
            agent("h2", 8.0, 8192),
            agent("h3", 8.0, 8192),
        ],
        running: vec![running("other.0", "other", "h2", 4.0, 4096)],
        ..Snapshot::default()
    };
    snap.pending.push(job("w", 5, 1.0, 1024));
    let plan = run(&snap, &Config::default());
    // h2 is fullest: it takes 4, then the next agent.
    assert_eq!(agents_of(&plan, "w"), vec!["h2", "h2", "h2", "h2", "h1"]);
}

#[test]
fn spread_levels_the_load() {
    let mut snap = Snapshot {
        agents: vec![
            agent("h1", 8.0, 8192),
            agent("h2", 8.0, 8192),
            agent("h3", 8.0, 8192),
        ],
        running: vec![running("other.0", "other", "h2", 4.0, 4096)],
        ..Snapshot::default()
    };
    let mut j = job("w", 4, 1.0, 1024);
    j.policy = Some("spread".into());
    snap.pending.push(j);
    let plan = run(&snap, &Config::default());
    let hosts = agents_of(&plan, "w");
    assert_eq!(hosts.iter().filter(|h| **h == "h2").count(), 0);
    assert_eq!(hosts.iter().filter(|h| **h == "h1").count(), 2);
    assert_eq!(hosts.iter().filter(|h| **h == "h3").count(), 2);

    // Cluster-wide default.
    let mut by_default = snap.clone();
    by_default.pending[0].policy = None;
    let config = Config {
        default_policy: "spread".into(),
        ..Config::default()
    };
    assert_eq!(run(&by_default, &config).placements, plan.placements);
}

#[test]
fn unknown_policy_is_reported() {
    let mut snap = Snapshot {
        agents: vec![agent("h1", 8.0, 8192)],
        ..Snapshot::default()
    };
    let mut j = job("w", 1, 1.0, 1024);
    j.policy = Some("random".into());
    snap.pending.push(j);
    let plan = run(&snap, &Config::default());
    let u = plan.unplaced_of("w").unwrap();
    assert_eq!(
        u.reason.to_string(),
        "invalid request: unknown policy \"random\"; known: binpack, spread"
    );
}

/// A policy without a scan order: called per task with all candidates.
#[derive(Debug)]
struct LastFeasible;

impl Policy for LastFeasible {
    fn name(&self) -> &str {
        "last"
    }

    fn choose(&self, candidates: &Candidates<'_>) -> Option<AgentSlot> {
        candidates
            .most_allocated_first()
            .max_by_key(|v| v.agent.id.clone())
            .map(|v| v.slot())
    }
}

/// Spread through the general (per-task `choose`) path.
#[derive(Debug)]
struct SlowSpread;

impl Policy for SlowSpread {
    fn name(&self) -> &str {
        "spread"
    }

    fn choose(&self, candidates: &Candidates<'_>) -> Option<AgentSlot> {
        candidates.least_allocated_first().next().map(|v| v.slot())
    }
}

#[test]
fn custom_policies_plug_in_by_name() {
    let mut snap = Snapshot {
        agents: vec![
            agent("a", 8.0, 8192),
            agent("c", 8.0, 8192),
            agent("b", 8.0, 8192),
        ],
        ..Snapshot::default()
    };
    let mut j = job("w", 2, 1.0, 1024);
    j.policy = Some("last".into());
    snap.pending.push(j);
    let mut policies = Policies::builtin();
    policies.register(Box::new(LastFeasible));
    assert_eq!(
        policies.names().collect::<Vec<_>>(),
        vec!["binpack", "spread", "last"]
    );
    let plan = plan_with(&snap, &Config::default(), &policies);
    check_plan(&snap, &plan);
    assert_eq!(agents_of(&plan, "w"), vec!["c", "c"]);
}

#[test]
fn spread_fast_path_matches_the_per_task_path() {
    let snap = synthetic::workload(&synthetic::WorkloadSpec {
        agents: 300,
        jobs: 40,
        tasks_per_job: 12,
        spread_percent: 100,
        seed: 7,
    });
    let fast = plan(&snap, &Config::default());
    let mut policies = Policies::builtin();
    policies.register(Box::new(SlowSpread));
    let slow = plan_with(&snap, &Config::default(), &policies);
    check_plan(&snap, &fast);
    assert_eq!(fast.placements, slow.placements);
    assert_eq!(fast.unplaced, slow.unplaced);
}

#[test]
fn dynamic_ports_come_from_free_ranges() {
    let mut snap = Snapshot {
        agents: vec![agent("h1", 8.0, 8192)
            .with_ports(31000, 31002)
            .with_ports(32000, 32000)],
        running: vec![RunningTask {
            ports: vec![31001],
            ..running("o.0", "o", "h1", 0.1, 1)
        }],
        ..Snapshot::default()
    };
    let mut j = job("w", 2, 1.0, 100);
    j.ports = vec![PortRequest::dynamic("http"), PortRequest::dynamic("admin")];
    snap.pending.push(j);
    let plan = run(&snap, &Config::default());
    let ports: Vec<(&str, u16)> = plan.placements[0]
        .ports
        .iter()
        .map(|p| (p.name, p.port))
        .collect();
    assert_eq!(ports, vec![("http", 31000), ("admin", 31002)]);
    // One free port left (32000): the second task needs two.
    let u = plan.unplaced_of("w").unwrap();
    assert_eq!(
        u.reason.to_string(),
        "0 of 1 agents fit: 1 insufficient ports"
    );
}

#[test]
fn fixed_ports_conflict_and_must_be_in_range() {
    let mut snap = Snapshot {
        agents: vec![
            agent("h1", 8.0, 8192).with_ports(31000, 31999),
            agent("h2", 8.0, 8192).with_ports(31000, 31999),
            agent("h3", 8.0, 8192).with_ports(20000, 20010),
        ],
        running: vec![RunningTask {
            ports: vec![31500],
            ..running("o.0", "o", "h1", 0.1, 1)
        }],
        ..Snapshot::default()
    };
    let mut j = job("w", 2, 1.0, 100);
    j.ports = vec![
        PortRequest::fixed("http", 31500),
        PortRequest::dynamic("debug"),
    ];
    snap.pending.push(j);
    let plan = run(&snap, &Config::default());
    assert_eq!(agents_of(&plan, "w"), vec!["h2"]);
    assert_eq!(plan.placements[0].ports[0].port, 31500);
    assert_eq!(plan.placements[0].ports[1].port, 31000);
    let u = plan.unplaced_of("w").unwrap();
    assert_eq!(
        u.reason.to_string(),
        "0 of 3 agents fit: 3 fixed port unavailable"
    );

    // The same fixed port twice can never be satisfied.
    snap.pending[0].ports = vec![
        PortRequest::fixed("a", 31600),
        PortRequest::fixed("b", 31600),
    ];
    let plan = run(&snap, &Config::default());
    assert!(matches!(
        plan.unplaced_of("w").unwrap().reason,
        WaitReason::Invalid(_)
    ));
}

#[test]
fn weighted_drf_shares_scarce_capacity() {
    // 12 cpus for two product lines asking 12 each; weights 1 : 2.
    let mut snap = Snapshot {
        agents: vec![agent("h1", 6.0, 65536), agent("h2", 6.0, 65536)],
        ..Snapshot::default()
    };
    for pdl in ["light", "heavy"] {
        let mut j = job(pdl, 12, 1.0, 100);
        j.pdl = pdl.into();
        snap.pending.push(j);
    }
    snap.pdl_weights.insert("heavy".into(), 2.0);
    let plan = run(&snap, &Config::default());
    assert_eq!(plan.placements_of("light").count(), 4);
    assert_eq!(plan.placements_of("heavy").count(), 8);
}

#[test]
fn drf_counts_running_usage() {
    let mut snap = Snapshot {
        agents: vec![agent("h1", 8.0, 65536), agent("h2", 8.0, 65536)],
        running: vec![RunningTask {
            pdl: "a".into(),
            ..running("x.0", "x", "h1", 4.0, 100)
        }],
        ..Snapshot::default()
    };
    for pdl in ["a", "b"] {
        let mut j = job(pdl, 12, 1.0, 100);
        j.pdl = pdl.into();
        snap.pending.push(j);
    }
    let plan = run(&snap, &Config::default());
    // 12 cpus free; a already holds 4: a gets 4 more, b gets 8.
    assert_eq!(plan.placements_of("a").count(), 4);
    assert_eq!(plan.placements_of("b").count(), 8);
}

#[test]
fn higher_priority_goes_first() {
    let mut snap = Snapshot {
        agents: vec![agent("h1", 4.0, 65536)],
        ..Snapshot::default()
    };
    snap.pending.push(job("low", 4, 1.0, 100));
    let mut high = job("high", 3, 1.0, 100);
    high.priority = 10;
    snap.pending.push(high);
    let plan = run(&snap, &Config::default());
    assert_eq!(plan.placements_of("high").count(), 3);
    assert_eq!(plan.placements_of("low").count(), 1);
    assert_eq!(plan.placements[0].job, "high");
}

#[test]
fn quotas_hold_tasks_with_the_node_as_reason() {
    let mut snap = Snapshot {
        agents: vec![agent("h1", 64.0, 65536)],
        running: vec![RunningTask {
            service_path: "cop.x_owt.y_pdl.z_job.old".into(),
            ..running("old.0", "old", "h1", 2.0, 100)
        }],
        quotas: vec![Quota {
            node: "cop.x_owt.y_pdl.z".into(),
            cpus_milli: Some(5000),
            mem_mib: None,
        }],
        ..Snapshot::default()
    };
    let mut j = job("w", 5, 1.0, 100);
    j.service_path = "cop.x_owt.y_pdl.z_job.w".into();
    let mut free = job("free", 5, 1.0, 100);
    free.service_path = "cop.x_owt.y_pdl.zz_job.free".into();
    snap.pending.extend([j, free]);
    let plan = run(&snap, &Config::default());
    assert_eq!(plan.placements_of("w").count(), 3);
    assert_eq!(plan.placements_of("free").count(), 5);
    let u = plan.unplaced_of("w").unwrap();
    assert_eq!(u.tasks.len(), 2);
    assert_eq!(
        u.reason.to_string(),
        "over quota cop.x_owt.y_pdl.z: cpus used 5 + requested 1 > limit 5"
    );
}

fn preemption_snapshot() -> Snapshot {
    let mut snap = Snapshot {
        agents: vec![agent("h1", 4.0, 8192), agent("h2", 4.0, 8192)],
        running: vec![
            RunningTask {
                priority: 0,
                ..running("batch.0", "batch", "h1", 2.0, 100)
            },
            RunningTask {
                priority: 0,
                ..running("batch.1", "batch", "h1", 2.0, 100)
            },
            RunningTask {
                priority: 5,
                ..running("svc.0", "svc", "h2", 3.0, 100)
            },
        ],
        ..Snapshot::default()
    };
    let mut sys = job("sys", 1, 3.0, 100);
    sys.priority = 100;
    sys.preemption = true;
    snap.pending.push(sys);
    snap
}

#[test]
fn preemption_evicts_the_cheapest_lower_priority_set() {
    let snap = preemption_snapshot();
    let plan = run(&snap, &Config::default());
    assert_eq!(agents_of(&plan, "sys"), vec!["h1"]);
    // Lowest priority first: both batch tasks on h1 rather than svc.0 (prio 5).
    let victims: Vec<&str> = plan.preemptions.iter().map(|p| p.victim).collect();
    assert_eq!(victims.len(), 2);
    assert!(victims.iter().all(|v| v.starts_with("batch")));
    assert!(plan
        .preemptions
        .iter()
        .all(|p| p.for_task == "sys.0" && p.agent == "h1"));
}

#[test]
fn preemption_is_off_by_default_and_never_hits_equal_priority() {
    let mut snap = preemption_snapshot();
    snap.pending[0].preemption = false;
    let plan = run(&snap, &Config::default());
    assert!(plan.preemptions.is_empty());
    assert_eq!(
        plan.unplaced_of("sys").unwrap().reason.to_string(),
        "0 of 2 agents fit: 2 insufficient cpus"
    );

    let mut snap = preemption_snapshot();
    let config = Config {
        preemption: false,
        ..Config::default()
    };
    assert!(run(&snap, &config).preemptions.is_empty());

    for t in &mut snap.running {
        t.priority = 100;
    }
    let plan = run(&snap, &Config::default());
    assert!(plan.preemptions.is_empty());
    assert!(plan
        .unplaced_of("sys")
        .unwrap()
        .reason
        .to_string()
        .ends_with("; no lower-priority tasks to preempt"));
}

#[test]
fn preempted_tasks_free_constraint_slots_of_their_jobs() {
    // batch has UNIQUE tasks pending too; its preempted task on h1 no longer
    // counts for its constraints, but h1 is now full anyway: nothing breaks.
    let mut snap = preemption_snapshot();
    let mut batch = job("batch", 1, 2.0, 100);
    batch
        .constraints
        .push(c("hostname", Operator::Unique, None));
    snap.pending.push(batch);
    let plan = run(&snap, &Config::default());
    assert_eq!(agents_of(&plan, "sys"), vec!["h1"]);
}
