//! One scenario per constraint operator, plus agent status.

mod common;

use common::*;
use ocean_scheduler_policies::*;

fn cluster(ids: &[(&str, &str)]) -> Vec<Agent> {
    ids.iter()
        .map(|(id, idc)| agent(id, 8.0, 8192).with_attr("idc", *idc))
        .collect()
}

fn run(snap: &Snapshot) -> Plan<'_> {
    let plan = plan(snap, &Config::default());
    check_plan(snap, &plan);
    plan
}

#[test]
fn unique_places_one_per_host_and_explains_the_rest() {
    let mut snap = Snapshot {
        agents: cluster(&[("h1", "a"), ("h2", "a"), ("h3", "b")]),
        ..Snapshot::default()
    };
    let mut j = job("web", 4, 1.0, 100);
    j.constraints.push(c("hostname", Operator::Unique, None));
    snap.pending.push(j);
    let plan = run(&snap);
    let mut hosts = agents_of(&plan, "web");
    hosts.sort();
    assert_eq!(hosts, vec!["h1", "h2", "h3"]);
    let u = plan.unplaced_of("web").unwrap();
    assert_eq!(u.tasks, vec!["web.3"]);
    assert_eq!(u.reason.to_string(), "0 of 3 agents fit: 3 hostname:UNIQUE");
}

#[test]
fn unique_counts_running_tasks() {
    let mut snap = Snapshot {
        agents: cluster(&[("h1", "a"), ("h2", "a")]),
        running: vec![running("web.old", "web", "h1", 1.0, 100)],
        ..Snapshot::default()
    };
    let mut j = job("web", 2, 1.0, 100);
    j.constraints.push(c("hostname", Operator::Unique, None));
    snap.pending.push(j);
    let plan = run(&snap);
    assert_eq!(agents_of(&plan, "web"), vec!["h2"]);
    assert_eq!(plan.unplaced_of("web").unwrap().tasks.len(), 1);
}

#[test]
fn cluster_with_value_keeps_to_that_value() {
    let mut snap = Snapshot {
        agents: cluster(&[("h1", "a"), ("h2", "b"), ("h3", "b")]),
        ..Snapshot::default()
    };
    let mut j = job("db", 3, 4.0, 100);
    j.constraints.push(c("idc", Operator::Cluster, Some("b")));
    snap.pending.push(j);
    let plan = run(&snap);
    let placed = agents_of(&plan, "db");
    assert_eq!(placed.len(), 3);
    assert!(placed.iter().all(|h| *h != "h1"));
}

#[test]
fn cluster_without_value_follows_the_first_task() {
    // Running task pins idc b.
    let mut snap = Snapshot {
        agents: cluster(&[("h1", "a"), ("h2", "b"), ("h3", "a")]),
        running: vec![running("db.old", "db", "h2", 1.0, 100)],
        ..Snapshot::default()
    };
    let mut j = job("db", 2, 1.0, 100);
    j.constraints.push(c("idc", Operator::Cluster, None));
    snap.pending.push(j.clone());
    let plan = run(&snap);
    assert_eq!(agents_of(&plan, "db"), vec!["h2", "h2"]);

    // Nothing running: the first placement pins the value.
    snap.running.clear();
    snap.pending[0].tasks = (0..4).map(|i| format!("db.{i}")).collect();
    snap.pending[0].resources = Resources::new(6.0, 100, 0);
    let plan = run(&snap);
    let idcs: Vec<&str> = agents_of(&plan, "db")
        .iter()
        .map(|h| attr_of(&snap, h, "idc").unwrap())
        .collect();
    assert_eq!(idcs, vec!["a", "a"]);
    let u = plan.unplaced_of("db").unwrap();
    assert_eq!(u.tasks.len(), 2);
    assert!(u.reason.to_string().contains("idc:CLUSTER"), "{}", u.reason);
}

#[test]
fn group_by_balances_over_all_values_including_unused_ones() {
    // Two tasks already run in idc a; idc c has never been used.
    let mut snap = Snapshot {
        agents: cluster(&[
            ("a1", "a"),
            ("a2", "a"),
            ("b1", "b"),
            ("b2", "b"),
            ("c1", "c"),
            ("c2", "c"),
        ]),
        running: vec![
            running("w.old1", "w", "a1", 1.0, 100),
            running("w.old2", "w", "a2", 1.0, 100),
        ],
        ..Snapshot::default()
    };
    let mut j = job("w", 4, 1.0, 100);
    j.constraints.push(c("idc", Operator::GroupBy, None));
    snap.pending.push(j);
    let plan = run(&snap);
    let mut per_idc = std::collections::BTreeMap::new();
    for h in agents_of(&plan, "w") {
        *per_idc
            .entry(attr_of(&snap, h, "idc").unwrap())
            .or_insert(0) += 1;
    }
    // 2 + 4 = 6 tasks over 3 idcs: two each.
    assert_eq!(per_idc.get("a"), None);
    assert_eq!(per_idc.get("b"), Some(&2));
    assert_eq!(per_idc.get("c"), Some(&2));
}

#[test]
fn group_by_beats_binpack_and_ignores_values_without_online_agents() {
    let mut agents = cluster(&[("a1", "a"), ("b1", "b"), ("c1", "c")]);
    agents.push(
        agent("d1", 8.0, 8192)
            .with_attr("idc", "d")
            .with_attr("status", "offline"),
    );
    let mut snap = Snapshot {
        agents,
        ..Snapshot::default()
    };
    let mut j = job("w", 6, 1.0, 100);
    j.constraints.push(c("idc", Operator::GroupBy, Some("3")));
    snap.pending.push(j);
    let plan = run(&snap);
    let mut hosts = agents_of(&plan, "w");
    hosts.sort();
    assert_eq!(hosts, vec!["a1", "a1", "b1", "b1", "c1", "c1"]);
}

#[test]
fn group_by_waits_rather_than_unbalance() {
    let mut snap = Snapshot {
        agents: vec![
            agent("a1", 8.0, 8192).with_attr("idc", "a"),
            agent("b1", 1.0, 8192).with_attr("idc", "b"),
        ],
        ..Snapshot::default()
    };
    let mut j = job("w", 4, 1.0, 100);
    j.constraints.push(c("idc", Operator::GroupBy, None));
    snap.pending.push(j);
    let plan = run(&snap);
    // a=1, b=1, then a=2 (both at the minimum, only a has room); a=3 would
    // leave b two behind, so the fourth waits.
    assert_eq!(plan.placements.len(), 3);
    let u = plan.unplaced_of("w").unwrap();
    assert_eq!(
        u.reason.to_string(),
        "0 of 2 agents fit: 1 idc:GROUP_BY, 1 insufficient cpus"
    );
}

#[test]
fn like_is_a_full_match_and_unlike_its_complement() {
    let agents = vec![
        agent("web1", 8.0, 8192),
        agent("web10", 8.0, 8192),
        agent("db1", 8.0, 8192),
    ];
    let mut snap = Snapshot {
        agents,
        ..Snapshot::default()
    };
    let mut like = job("like", 3, 1.0, 100);
    like.constraints
        .push(c("hostname", Operator::Like, Some("web[0-9]")));
    like.policy = Some("spread".into());
    let mut unlike = job("unlike", 2, 1.0, 100);
    unlike
        .constraints
        .push(c("hostname", Operator::Unlike, Some("web.*")));
    snap.pending.extend([like, unlike]);
    let plan = run(&snap);
    assert_eq!(agents_of(&plan, "like"), vec!["web1", "web1", "web1"]);
    assert_eq!(agents_of(&plan, "unlike"), vec!["db1", "db1"]);
}

#[test]
fn missing_attribute_fails_all_but_unlike() {
    let mut snap = Snapshot {
        agents: vec![
            agent("h1", 8.0, 8192),
            agent("h2", 8.0, 8192).with_attr("rack", "r1"),
        ],
        ..Snapshot::default()
    };
    let mut is = job("is", 2, 1.0, 100);
    is.constraints.push(c("rack", Operator::Is, Some("r1")));
    let mut unique = job("unique", 2, 1.0, 100);
    unique.constraints.push(c("rack", Operator::Unique, None));
    let mut unlike = job("unlike", 1, 1.0, 100);
    unlike
        .constraints
        .push(c("rack", Operator::Unlike, Some("r1")));
    snap.pending.extend([is, unique, unlike]);
    let plan = run(&snap);
    assert_eq!(agents_of(&plan, "is"), vec!["h2", "h2"]);
    assert_eq!(agents_of(&plan, "unique"), vec!["h2"]);
    assert_eq!(agents_of(&plan, "unlike"), vec!["h1"]);
}

#[test]
fn max_per_caps_each_value() {
    let agents: Vec<Agent> = [("h1", "r1"), ("h2", "r1"), ("h3", "r2"), ("h4", "r2")]
        .iter()
        .map(|(h, r)| agent(h, 8.0, 8192).with_attr("rack", *r))
        .collect();
    let mut snap = Snapshot {
        agents,
        ..Snapshot::default()
    };
    let mut j = job("w", 6, 1.0, 100);
    j.constraints.push(c("rack", Operator::MaxPer, Some("2")));
    snap.pending.push(j);
    let plan = run(&snap);
    assert_eq!(plan.placements.len(), 4);
    let u = plan.unplaced_of("w").unwrap();
    assert_eq!(u.tasks.len(), 2);
    assert_eq!(u.reason.to_string(), "0 of 4 agents fit: 4 rack:MAX_PER:2");
}

#[test]
fn is_selects_the_value() {
    let mut snap = Snapshot {
        agents: cluster(&[("h1", "a"), ("h2", "b")]),
        ..Snapshot::default()
    };
    let mut j = job("w", 2, 1.0, 100);
    j.constraints.push(c("idc", Operator::Is, Some("b")));
    snap.pending.push(j);
    assert_eq!(agents_of(&run(&snap), "w"), vec!["h2", "h2"]);
}

#[test]
fn only_online_agents_receive_tasks() {
    let mut no_status = agent("h4", 64.0, 65536);
    no_status.attributes.remove("status");
    let mut snap = Snapshot {
        agents: vec![
            agent("h1", 64.0, 65536).with_attr("status", "offline"),
            agent("h2", 64.0, 65536).with_attr("status", "problem"),
            agent("h3", 1.0, 1024),
            no_status,
        ],
        ..Snapshot::default()
    };
    snap.pending.push(job("w", 2, 1.0, 100));
    let plan = run(&snap);
    assert_eq!(agents_of(&plan, "w"), vec!["h3"]);
    let u = plan.unplaced_of("w").unwrap();
    assert_eq!(
        u.reason.to_string(),
        "0 of 4 agents fit: 3 not online, 1 insufficient cpus"
    );
}

#[test]
fn maintenance_tasks_reach_hosts_out_of_service_but_not_offline_ones() {
    let mut snap = Snapshot {
        agents: vec![
            agent("h1", 8.0, 8192).with_attr("status", "problem"),
            agent("h2", 8.0, 8192).with_attr("status", "draining"),
            agent("h3", 8.0, 8192).with_attr("status", "offline"),
            agent("h4", 8.0, 8192),
        ],
        ..Snapshot::default()
    };
    for (name, host) in [("r1", "h1"), ("r2", "h2"), ("r3", "h3")] {
        let mut j = job(name, 1, 0.1, 32);
        j.maintenance = true;
        j.constraints
            .push(c("hostname", Operator::Cluster, Some(host)));
        snap.pending.push(j);
    }
    // The same pin without the flag: the host being healed stays closed.
    let mut plain = job("plain", 1, 0.1, 32);
    plain
        .constraints
        .push(c("hostname", Operator::Cluster, Some("h1")));
    snap.pending.push(plain);
    let plan = run(&snap);
    assert_eq!(agents_of(&plan, "r1"), vec!["h1"]);
    assert_eq!(agents_of(&plan, "r2"), vec!["h2"]);
    assert!(agents_of(&plan, "r3").is_empty());
    assert_eq!(
        plan.unplaced_of("r3").unwrap().reason.to_string(),
        "0 of 4 agents fit: 3 hostname:CLUSTER:h3, 1 not online"
    );
    assert!(agents_of(&plan, "plain").is_empty());
}

#[test]
fn invalid_constraints_are_reported_not_placed() {
    let mut snap = Snapshot {
        agents: cluster(&[("h1", "a")]),
        ..Snapshot::default()
    };
    let mut j = job("bad", 2, 1.0, 100);
    j.constraints.push(c("hostname", Operator::Like, Some("(")));
    let mut k = job("bad2", 1, 1.0, 100);
    k.constraints
        .push(c("rack", Operator::MaxPer, Some("zero")));
    snap.pending.extend([j, k]);
    let plan = run(&snap);
    assert!(plan.placements.is_empty());
    let u = plan.unplaced_of("bad").unwrap();
    assert_eq!(u.tasks.len(), 2);
    assert!(matches!(u.reason, WaitReason::Invalid(_)));
    assert!(
        u.reason.to_string().contains("invalid regular expression"),
        "{}",
        u.reason
    );
    assert!(plan
        .unplaced_of("bad2")
        .unwrap()
        .reason
        .to_string()
        .contains("positive integer"));
}

#[test]
fn explanation_example_from_the_issue() {
    // 10 agents: 6 without enough memory, 3 already hosting the job, 1 offline.
    let mut agents = Vec::new();
    for i in 0..10 {
        let mem = if i < 6 { 512 } else { 8192 };
        let mut a = agent(&format!("h{i}"), 8.0, mem);
        if i >= 9 {
            a = a.with_attr("status", "offline");
        }
        agents.push(a);
    }
    let mut snap = Snapshot {
        agents,
        running: vec![
            running("w.0", "w", "h6", 1.0, 1024),
            running("w.1", "w", "h7", 1.0, 1024),
            running("w.2", "w", "h8", 1.0, 1024),
        ],
        ..Snapshot::default()
    };
    let mut j = job("w", 1, 1.0, 1024);
    j.constraints.push(c("hostname", Operator::Unique, None));
    snap.pending.push(j);
    let plan = run(&snap);
    let u = plan.unplaced_of("w").unwrap();
    assert_eq!(
        u.reason.to_string(),
        "0 of 10 agents fit: 6 insufficient mem, 3 hostname:UNIQUE, 1 not online"
    );
    let WaitReason::NoFit(e) = &u.reason else {
        panic!()
    };
    assert_eq!(e.count(&Reason::InsufficientMem), 6);
    assert_eq!(e.count(&Reason::Constraint("hostname:UNIQUE".into())), 3);
}

#[test]
fn match_selects_agents_by_several_tags_at_once() {
    let snap_agents = vec![
        agent("a1", 8.0, 8192)
            .with_attr("idc", "c3")
            .with_attr("pdl", "im"),
        agent("a2", 8.0, 8192)
            .with_attr("idc", "c4")
            .with_attr("pdl", "im"),
        agent("a3", 8.0, 8192)
            .with_attr("idc", "c3")
            .with_attr("pdl", "web"),
        agent("a4", 8.0, 8192).with_attr("pdl", "im"),
    ];
    let mut snap = Snapshot {
        agents: snap_agents,
        ..Snapshot::default()
    };
    let mut im = job("im", 4, 1.0, 100);
    im.constraints
        .push(c("tags", Operator::Match, Some("pdl.im idc.c3,c4")));
    im.policy = Some("spread".into());
    let mut not_c3 = job("elsewhere", 2, 1.0, 100);
    not_c3
        .constraints
        .push(c("tags", Operator::Match, Some("!idc.c3 hostname.a4")));
    let mut none = job("none", 1, 1.0, 100);
    none.constraints
        .push(c("tags", Operator::Match, Some("idc.c9")));
    snap.pending.extend([im, not_c3, none]);
    let plan = run(&snap);
    let mut got = agents_of(&plan, "im");
    got.sort_unstable();
    assert_eq!(got, vec!["a1", "a1", "a2", "a2"]);
    assert_eq!(agents_of(&plan, "elsewhere"), vec!["a4", "a4"]);
    let u = plan.unplaced_of("none").unwrap();
    assert!(u.reason.to_string().contains("tags:MATCH"), "{}", u.reason);
}
