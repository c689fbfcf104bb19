//! decide(): exact commands for formation, failover, rejoin and forget.

use super::*;

/// A node line: `id` at 10.0.0.1:`port`, `role` "m" (primary) or the id
/// of its primary, with `slots`.
fn line(id: &str, port: u16, role: &str, slots: &[(u16, u16)]) -> NodeLine {
    NodeLine {
        id: id.into(),
        ip: "10.0.0.1".into(),
        port,
        bus: port + 1000,
        myself: false,
        primary: role == "m",
        failing: false,
        failed: false,
        handshake: false,
        primary_id: (role != "m").then(|| role.to_string()),
        slots: slots.to_vec(),
        ..Default::default()
    }
}

fn member(shard: u32, task: &str, port: u16, obs: Option<Observed>) -> Member {
    Member {
        shard,
        task: task.into(),
        host: format!("h-{task}"),
        ip: "10.0.0.1".into(),
        port,
        bus: port + 1000,
        obs,
        silent_ms: 0,
    }
}

/// The observation of the node `me` (an index into `lines`), which knows
/// every one of `lines`.
fn obs(lines: &[NodeLine], me: usize, offset: u64) -> Option<Observed> {
    let mut nodes = lines.to_vec();
    nodes[me].myself = true;
    Some(Observed {
        nodes,
        offset,
        ..Default::default()
    })
}

fn addr(port: u16) -> String {
    format!("10.0.0.1:{port}")
}

#[test]
fn fresh_nodes_meet_through_the_first_one() {
    let a = line("a", 1, "m", &[]);
    let b = line("b", 2, "m", &[]);
    let ms = vec![
        member(0, "t0", 1, obs(std::slice::from_ref(&a), 0, 0)),
        member(1, "t1", 2, obs(std::slice::from_ref(&b), 0, 0)),
        // Not answering yet: neither met nor waited for.
        member(1, "t2", 3, None),
    ];
    assert_eq!(
        decide(2, &ms, &BTreeMap::new(), 0),
        vec![AdminCmd::Meet {
            on: addr(1),
            ip: "10.0.0.1".into(),
            port: 2,
            bus: 1002
        }]
    );
}

#[test]
fn once_all_know_each_other_each_shard_takes_its_range() {
    let l = vec![
        line("a", 1, "m", &[]),
        line("b", 2, "m", &[]),
        line("c", 3, "m", &[]),
    ];
    let ms = vec![
        member(0, "t0", 1, obs(&l, 0, 0)),
        member(0, "t1", 2, obs(&l, 1, 0)),
        member(1, "t2", 3, obs(&l, 2, 0)),
    ];
    assert_eq!(
        decide(2, &ms, &BTreeMap::new(), 0),
        vec![
            AdminCmd::AddSlots {
                on: addr(1),
                ranges: vec![(0, 8191)]
            },
            AdminCmd::AddSlots {
                on: addr(3),
                ranges: vec![(8192, 16383)]
            },
        ]
    );
    // A shard without a node yet: nothing is assigned.
    assert_eq!(decide(3, &ms, &BTreeMap::new(), 0), vec![]);
}

#[test]
fn empty_nodes_replicate_their_shards_primary() {
    let l = vec![
        line("a", 1, "m", &[(0, 8191)]),
        line("b", 2, "m", &[]),
        line("c", 3, "m", &[(8192, 16383)]),
        line("d", 4, "c", &[]),
    ];
    let ms = vec![
        member(0, "t0", 1, obs(&l, 0, 0)),
        member(0, "t1", 2, obs(&l, 1, 0)),
        member(1, "t2", 3, obs(&l, 2, 0)),
        member(1, "t3", 4, obs(&l, 3, 0)),
    ];
    assert_eq!(
        decide(2, &ms, &BTreeMap::new(), 0),
        vec![AdminCmd::Replicate {
            on: addr(2),
            primary: "a".into()
        }]
    );
}

#[test]
fn a_primary_whose_task_ended_is_replaced_by_its_most_advanced_replica() {
    // Shard 0: primary a (port 1) ended; replicas b (offset 90) and e
    // (offset 100). Shard 1 is healthy.
    let l = vec![
        line("a", 1, "m", &[(0, 8191)]),
        line("b", 2, "a", &[]),
        line("c", 3, "m", &[(8192, 16383)]),
        line("d", 4, "c", &[]),
        line("e", 5, "a", &[]),
    ];
    let ms = vec![
        member(0, "t1", 2, obs(&l, 1, 90)),
        member(1, "t2", 3, obs(&l, 2, 0)),
        member(1, "t3", 4, obs(&l, 3, 0)),
        member(0, "t4", 5, obs(&l, 4, 100)),
    ];
    assert_eq!(
        decide(2, &ms, &BTreeMap::new(), 0),
        vec![AdminCmd::FailoverForce {
            on: addr(5),
            replaces: "a".into()
        }]
    );
}

#[test]
fn a_primary_still_running_but_silent_is_left_to_redis() {
    let l = vec![line("a", 1, "m", &[(0, 16383)]), line("b", 2, "a", &[])];
    let ms = vec![member(0, "t0", 1, None), member(0, "t1", 2, obs(&l, 1, 5))];
    assert_eq!(decide(1, &ms, &BTreeMap::new(), 0), vec![]);
}

#[test]
fn a_silent_primary_the_cluster_agreed_is_down_is_replaced_at_once() {
    // a's task still RUNNING (its host lost), unreachable; b sees it `fail`.
    let mut l = vec![line("a", 1, "m", &[(0, 16383)]), line("b", 2, "a", &[])];
    l[0].failing = true;
    l[0].failed = true;
    let ms = vec![member(0, "t0", 1, None), member(0, "t1", 2, obs(&l, 1, 5))];
    assert_eq!(
        decide(1, &ms, &BTreeMap::new(), 0),
        vec![AdminCmd::FailoverForce {
            on: addr(2),
            replaces: "a".into()
        }]
    );
    // Only suspected (`fail?`): still Redis' business.
    l[0].failed = false;
    let ms = vec![member(0, "t0", 1, None), member(0, "t1", 2, obs(&l, 1, 5))];
    assert_eq!(decide(1, &ms, &BTreeMap::new(), 0), vec![]);
}

#[test]
fn a_replacement_on_the_dead_primarys_port_does_not_hide_its_death() {
    // The new task got port 1 again but is a new node, "n".
    let l = vec![line("a", 1, "m", &[(0, 16383)]), line("b", 2, "a", &[])];
    let fresh = vec![line("n", 1, "m", &[])];
    let ms = vec![
        member(0, "t9", 1, obs(&fresh, 0, 0)),
        member(0, "t1", 2, obs(&l, 1, 5)),
    ];
    assert_eq!(
        decide(1, &ms, &BTreeMap::new(), 0),
        vec![
            AdminCmd::FailoverForce {
                on: addr(2),
                replaces: "a".into()
            },
            // It is not a slot owner, so the anchor is simply the first node.
            AdminCmd::Meet {
                on: addr(1),
                ip: "10.0.0.1".into(),
                port: 2,
                bus: 1002
            },
        ]
    );
}

#[test]
fn after_a_failover_the_replacement_rejoins_as_a_replica_and_the_dead_node_is_forgotten() {
    // b was promoted; a (port 1) is gone, flagged failing with no slots;
    // n is the replacement task, known to b.
    let mut dead = line("a", 1, "b", &[]);
    dead.failing = true;
    let l = vec![
        dead,
        line("b", 2, "m", &[(0, 16383)]),
        line("n", 6, "m", &[]),
    ];
    let ms = vec![
        member(0, "t1", 2, obs(&l, 1, 5)),
        member(0, "t9", 6, obs(&l, 2, 0)),
    ];
    assert_eq!(
        decide(1, &ms, &BTreeMap::new(), 0),
        vec![
            AdminCmd::Replicate {
                on: addr(6),
                primary: "b".into()
            },
            AdminCmd::Forget {
                on: addr(2),
                id: "a".into()
            },
            AdminCmd::Forget {
                on: addr(6),
                id: "a".into()
            },
        ]
    );
}

#[test]
fn a_forced_failover_without_votes_becomes_a_takeover() {
    let l = vec![line("a", 1, "m", &[(0, 16383)]), line("b", 2, "a", &[])];
    let ms = vec![member(0, "t1", 2, obs(&l, 1, 5))];
    let forced = BTreeMap::from([("a".to_string(), 1_000)]);
    assert_eq!(
        decide(1, &ms, &forced, 2_000),
        vec![AdminCmd::FailoverForce {
            on: addr(2),
            replaces: "a".into()
        }]
    );
    assert_eq!(
        decide(1, &ms, &forced, 2_500),
        vec![AdminCmd::FailoverTakeover {
            on: addr(2),
            replaces: "a".into()
        }]
    );
}

#[test]
fn primaries_go_to_distinct_hosts_when_they_can() {
    // Shard 0's first node is on host x, so is shard 1's first: shard 1's
    // primary is its node on host y.
    let l = vec![
        line("a", 1, "m", &[]),
        line("b", 2, "m", &[]),
        line("c", 3, "m", &[]),
    ];
    let mut ms = vec![
        member(0, "t0", 1, obs(&l, 0, 0)),
        member(1, "t1", 2, obs(&l, 1, 0)),
        member(1, "t2", 3, obs(&l, 2, 0)),
    ];
    ms[0].host = "x".into();
    ms[1].host = "x".into();
    ms[2].host = "y".into();
    assert_eq!(
        decide(2, &ms, &BTreeMap::new(), 0),
        vec![
            AdminCmd::AddSlots {
                on: addr(1),
                ranges: vec![(0, 8191)]
            },
            AdminCmd::AddSlots {
                on: addr(3),
                ranges: vec![(8192, 16383)]
            },
        ]
    );
}

fn layout(shards: &[(&[(u16, u16)], u64)]) -> Vec<RestoreShard> {
    shards
        .iter()
        .map(|(slots, keys)| RestoreShard {
            file: String::new(),
            sha256: String::new(),
            slots: slots.to_vec(),
            keys: *keys,
        })
        .collect()
}

#[test]
fn a_restored_shard_waits_for_its_loading_node_then_gets_its_unserved_slots() {
    // Shard 0's file has keys; its loading node ("a") has not loaded yet
    // (no slots). Shard 1's file has none.
    let plan = layout(&[(&[(0, 9999)], 40), (&[(10000, 16383)], 0)]);
    let l = vec![
        line("a", 1, "m", &[]),
        line("b", 2, "m", &[]),
        line("c", 3, "m", &[]),
    ];
    let ms = vec![
        member(0, "t0", 1, obs(&l, 0, 0)),
        member(0, "t1", 2, obs(&l, 1, 0)),
        member(1, "t2", 3, obs(&l, 2, 0)),
    ];
    // No even split (step 3), nothing for shard 0's empty node: only
    // shard 1, whose file is empty, takes its slots.
    assert_eq!(
        decide_restored(2, Some(&plan), &ms, &BTreeMap::new(), 0),
        vec![AdminCmd::AddSlots {
            on: addr(3),
            ranges: vec![(10000, 16383)]
        }]
    );

    // "a" loaded its file: it took the slots its keys are in; the rest of
    // its shard's range goes to it, not to "b".
    let l = vec![
        line("a", 1, "m", &[(5, 5), (700, 701)]),
        line("b", 2, "m", &[]),
        line("c", 3, "m", &[(10000, 16383)]),
    ];
    let ms = vec![
        member(0, "t0", 1, obs(&l, 0, 0)),
        member(0, "t1", 2, obs(&l, 1, 0)),
        member(1, "t2", 3, obs(&l, 2, 0)),
    ];
    assert_eq!(
        decide_restored(2, Some(&plan), &ms, &BTreeMap::new(), 0),
        vec![AdminCmd::AddSlots {
            on: addr(1),
            ranges: vec![(0, 4), (6, 699), (702, 9999)]
        }]
    );

    // Every slot served: the ordinary steps (here, "b" follows "a").
    let l = vec![
        line("a", 1, "m", &[(0, 9999)]),
        line("b", 2, "m", &[]),
        line("c", 3, "m", &[(10000, 16383)]),
    ];
    let ms = vec![
        member(0, "t0", 1, obs(&l, 0, 0)),
        member(0, "t1", 2, obs(&l, 1, 0)),
        member(1, "t2", 3, obs(&l, 2, 0)),
    ];
    assert_eq!(
        decide_restored(2, Some(&plan), &ms, &BTreeMap::new(), 0),
        vec![AdminCmd::Replicate {
            on: addr(2),
            primary: "a".into()
        }]
    );
}

#[test]
fn a_restored_cluster_assigns_nothing_until_its_nodes_have_met() {
    let plan = layout(&[(&[(0, 16383)], 0)]);
    let a = line("a", 1, "m", &[]);
    let b = line("b", 2, "m", &[]);
    let ms = vec![
        member(0, "t0", 1, obs(std::slice::from_ref(&a), 0, 0)),
        member(0, "t1", 2, obs(std::slice::from_ref(&b), 0, 0)),
    ];
    let cmds = decide_restored(1, Some(&plan), &ms, &BTreeMap::new(), 0);
    assert!(
        cmds.iter().all(|c| matches!(c, AdminCmd::Meet { .. })),
        "{cmds:?}"
    );
}

#[test]
fn a_silent_primary_most_primaries_suspect_is_replaced_before_the_gossip_agrees() {
    // a (shard 0) is on a lost host: unreachable; its replica r, and the
    // primaries b and c of the other shards answer.
    let base = vec![
        line("a", 1, "m", &[(0, 5460)]),
        line("b", 2, "m", &[(5461, 10922)]),
        line("c", 3, "m", &[(10923, 16383)]),
        line("r", 4, "a", &[]),
    ];
    let view = |suspects: &[usize]| {
        // Each of `suspects` (indices of b, c) flags a `fail?` in its own view.
        let mut ms = vec![member(0, "t0", 1, None)];
        for (i, port) in [(1usize, 2u16), (2, 3), (3, 4)] {
            let mut l = base.clone();
            l[0].failing = suspects.contains(&i);
            ms.push(member(
                i.min(2) as u32,
                &format!("t{i}"),
                port,
                obs(&l, i, 5),
            ));
        }
        ms[3].shard = 0;
        ms
    };
    // Both other primaries suspect it (2 of 3): promote now.
    assert_eq!(
        decide(3, &view(&[1, 2]), &BTreeMap::new(), 0),
        vec![AdminCmd::FailoverForce {
            on: addr(4),
            replaces: "a".into()
        }]
    );
    // One primary's suspicion (and the replica's) is not a majority.
    assert_eq!(decide(3, &view(&[1, 3]), &BTreeMap::new(), 0), vec![]);
    // A primary that answers the operator is not replaced, whatever the
    // others suspect (a slow bus, not a lost host).
    let mut ms = view(&[1, 2]);
    ms[0].obs = obs(&base, 0, 9);
    assert_eq!(decide(3, &ms, &BTreeMap::new(), 0), vec![]);
}

#[test]
fn a_primary_silent_for_the_node_timeout_is_replaced_on_one_nodes_suspicion() {
    // a (shard 0) is on a lost host; only its replica r flags it `fail?`
    // so far (b and c have not missed its pongs long enough yet).
    let mut l = vec![
        line("a", 1, "m", &[(0, 5460)]),
        line("b", 2, "m", &[(5461, 10922)]),
        line("c", 3, "m", &[(10923, 16383)]),
        line("r", 4, "a", &[]),
    ];
    let clean = l.clone();
    l[0].failing = true;
    let ms = |silent_ms: u64, r_view: &[NodeLine]| {
        let mut a = member(0, "t0", 1, None);
        a.silent_ms = silent_ms;
        vec![
            a,
            member(1, "t1", 2, obs(&clean, 1, 5)),
            member(2, "t2", 3, obs(&clean, 2, 5)),
            member(0, "t3", 4, obs(r_view, 3, 5)),
        ]
    };
    let force = vec![AdminCmd::FailoverForce {
        on: addr(4),
        replaces: "a".into(),
    }];
    assert_eq!(
        decide(3, &ms(SILENT_FOR_MS, &l), &BTreeMap::new(), 0),
        force
    );
    // Silent to the operator for less than the node timeout: one node's
    // suspicion is not enough yet.
    assert_eq!(
        decide(3, &ms(SILENT_FOR_MS - 1, &l), &BTreeMap::new(), 0),
        vec![]
    );
    // Silent for long, but no node of the cluster misses it: the operator
    // alone does not decide (its own link may be what failed).
    assert_eq!(
        decide(3, &ms(10 * SILENT_FOR_MS, &clean), &BTreeMap::new(), 0),
        vec![]
    );
}
