//! The machine and the guards, driven by numbers.

use std::collections::BTreeMap;

use crate::config::HealingConfig;
use crate::guard;
use crate::machine::{step, Allowed, Checks, Command, Observation, RepairSeen};
use crate::ticket::{HostState, Ticket};

fn obs(checks: Checks) -> Observation {
    Observation {
        agent_id: "a1".into(),
        hostname: "h1".into(),
        node: "-".into(),
        status: "online".into(),
        checks,
        live_tasks: 2,
        repair: RepairSeen::Waiting,
        data_dir: "/data".into(),
    }
}

fn fail(at: u64) -> Checks {
    Checks::Fail {
        received_ms: at,
        failing: vec!["disk:/data: 1.0% free".into()],
    }
}

fn pass(at: u64) -> Checks {
    Checks::Pass { received_ms: at }
}

fn statuses(cmds: &[Command]) -> Vec<&'static str> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::SetStatus { status, .. } => Some(*status),
            _ => None,
        })
        .collect()
}

/// Steps `t` and returns the stored ticket (unchanged if nothing changed).
fn go(
    t: &Ticket,
    o: &Observation,
    a: &Allowed,
    cfg: &HealingConfig,
    now: u64,
) -> (Ticket, Vec<Command>) {
    let (new, cmds) = step(Some(t), o, a, cfg, now);
    (new.unwrap_or_else(|| t.clone()), cmds)
}

#[test]
fn an_ill_host_is_drained_repaired_and_returned() {
    let cfg = HealingConfig::default();
    let ok = Allowed::default();
    // A failing check opens a ticket: suspect, no action yet.
    let (t, cmds) = step(None, &obs(fail(1_000)), &ok, &cfg, 1_000);
    let t = t.expect("a ticket");
    assert_eq!(t.state, HostState::Suspect);
    assert!(cmds.is_empty(), "{cmds:?}");
    // Still failing before problem_after: nothing changes.
    let (t2, cmds) = step(Some(&t), &obs(fail(5_000)), &ok, &cfg, 5_000);
    assert!(t2.is_none() && cmds.is_empty());
    // Past problem_after: problem, no new tasks.
    let (t, cmds) = go(&t, &obs(fail(11_000)), &ok, &cfg, 11_000);
    assert_eq!(t.state, HostState::Problem);
    assert_eq!(statuses(&cmds), ["problem"]);
    // The guards allow: draining through the master's drain.
    let mut o = obs(fail(12_000));
    o.status = "problem".into();
    let (t, cmds) = go(&t, &o, &ok, &cfg, 12_000);
    assert_eq!(t.state, HostState::Draining);
    assert_eq!(statuses(&cmds), ["draining"]);
    // Tasks still there: it waits.
    o.status = "draining".into();
    let (t2, cmds) = step(Some(&t), &o, &ok, &cfg, 13_000);
    assert!(t2.is_none() && cmds.is_empty(), "{cmds:?}");
    // Drained: the first repair starts, a maintenance job the master
    // places on the host while it stays closed to every other task.
    o.live_tasks = 0;
    let (t, cmds) = go(&t, &o, &ok, &cfg, 14_000);
    assert_eq!(t.state, HostState::Repairing);
    assert_eq!(t.repair_attempt, 1);
    let job = t
        .current_repair()
        .and_then(|r| r.job_id.clone())
        .expect("job");
    assert!(
        matches!(&cmds[0], Command::StartRepair { job_id, hostname, .. } if *job_id == job && hostname == "h1")
    );
    assert_eq!(statuses(&cmds), ["problem"]);
    // The repair task is placed: nothing more to ask of the master.
    o.status = "problem".into();
    o.repair = RepairSeen::Running;
    let (t2, cmds) = step(Some(&t), &o, &ok, &cfg, 15_000);
    assert!(t2.is_none());
    assert!(statuses(&cmds).is_empty());
    assert!(!cmds
        .iter()
        .any(|c| matches!(c, Command::StartRepair { .. })));
    // It finished well: verdict recorded, the job deleted.
    o.status = "problem".into();
    o.repair = RepairSeen::Succeeded { ended_ms: 16_000 };
    let (t, cmds) = go(&t, &o, &ok, &cfg, 16_500);
    assert_eq!(t.state, HostState::Repairing);
    assert!(cmds.contains(&Command::DeleteRepair {
        job_id: job.clone()
    }));
    assert_eq!(
        t.actions.last().and_then(|a| a.verdict.as_deref()),
        Some("succeeded")
    );
    // Checks from before the repair ended do not count.
    o.repair = RepairSeen::Waiting;
    o.checks = pass(15_900);
    let (t2, _) = step(Some(&t), &o, &ok, &cfg, 17_000);
    assert!(t2.is_none());
    // Fresh passing checks: online, ticket closed, host back in service.
    o.checks = pass(17_000);
    let (t, cmds) = go(&t, &o, &ok, &cfg, 17_100);
    assert_eq!(t.state, HostState::Online);
    assert!(!t.is_open());
    assert_eq!(statuses(&cmds), ["online"]);
    let path: Vec<_> = t.transitions.iter().map(|x| x.to.as_str()).collect();
    assert_eq!(
        path,
        ["suspect", "problem", "draining", "repairing", "online"]
    );
    assert!(t.transitions.iter().all(|x| !x.cause.is_empty()));
    // A closed ticket is left alone.
    let (t2, cmds) = step(Some(&t), &o, &ok, &cfg, 18_000);
    assert!(t2.is_none() && cmds.is_empty());
}

#[test]
fn a_suspect_that_recovers_closes_its_ticket() {
    let cfg = HealingConfig::default();
    let ok = Allowed::default();
    let (t, _) = step(None, &obs(fail(1_000)), &ok, &cfg, 1_000);
    let t = t.expect("ticket");
    let (t, cmds) = go(&t, &obs(pass(2_000)), &ok, &cfg, 2_000);
    assert_eq!((t.state, t.is_open()), (HostState::Online, false));
    // The host never left service: nothing to set.
    assert!(cmds.is_empty(), "{cmds:?}");
}

#[test]
fn hosts_a_person_took_out_get_no_ticket() {
    let cfg = HealingConfig::default();
    let mut o = obs(fail(1_000));
    o.status = "offline".into();
    let (t, cmds) = step(None, &o, &Allowed::default(), &cfg, 1_000);
    assert!(t.is_none() && cmds.is_empty());
    // Passing or unknown checks open nothing either.
    assert!(step(None, &obs(pass(1)), &Allowed::default(), &cfg, 1)
        .0
        .is_none());
    assert!(
        step(None, &obs(Checks::Unknown), &Allowed::default(), &cfg, 1)
            .0
            .is_none()
    );
}

#[test]
fn dry_run_only_records() {
    let cfg = HealingConfig {
        dry_run: true,
        ..Default::default()
    };
    let ok = Allowed::default();
    let (t, _) = step(None, &obs(fail(0)), &ok, &cfg, 0);
    let t = t.expect("ticket");
    assert!(t.dry_run);
    let (t, cmds) = go(&t, &obs(fail(10_000)), &ok, &cfg, 10_000);
    assert_eq!(t.state, HostState::Problem);
    assert!(cmds.is_empty(), "{cmds:?}");
    let (t, cmds) = go(&t, &obs(fail(11_000)), &ok, &cfg, 11_000);
    assert_eq!(t.state, HostState::Problem);
    assert!(cmds.is_empty());
    assert_eq!(t.actions.iter().filter(|a| a.kind == "dry_run").count(), 1);
    // Recorded once, not every round.
    let (t2, _) = step(Some(&t), &obs(fail(12_000)), &ok, &cfg, 12_000);
    assert!(t2.is_none());
}

#[test]
fn a_storm_or_a_guard_holds_the_drain() {
    let cfg = HealingConfig::default();
    let (t, _) = step(None, &obs(fail(0)), &Allowed::default(), &cfg, 0);
    let storm = Allowed {
        storm: Some("3 of 4 hosts are ill".into()),
        drain_held: None,
    };
    // In a storm the ticket records the problem but no status is set.
    let (t, cmds) = go(&t.expect("t"), &obs(fail(10_000)), &storm, &cfg, 10_000);
    assert_eq!(t.state, HostState::Problem);
    assert!(cmds.is_empty(), "{cmds:?}");
    let mut o = obs(fail(11_000));
    o.status = "problem".into();
    let (t, cmds) = go(&t, &o, &storm, &cfg, 11_000);
    assert_eq!(t.state, HostState::Problem);
    assert!(cmds.is_empty(), "{cmds:?}");
    assert_eq!(
        t.last_action("hold").map(|a| a.detail.as_str()),
        Some("3 of 4 hosts are ill")
    );
    // The same hold is not recorded twice.
    assert!(step(Some(&t), &o, &storm, &cfg, 12_000).0.is_none());
    let held = Allowed {
        storm: None,
        drain_held: Some("node -: 1 of its 4 host(s) already out".into()),
    };
    let (t, cmds) = go(&t, &o, &held, &cfg, 13_000);
    assert_eq!(t.state, HostState::Problem);
    assert!(cmds.is_empty());
    // Once allowed, it drains.
    let (t, _) = go(&t, &o, &Allowed::default(), &cfg, 14_000);
    assert_eq!(t.state, HostState::Draining);
}

#[test]
fn failed_repairs_take_turns_then_the_host_goes_offline_with_its_ticket_open() {
    let mut cfg = HealingConfig {
        max_repairs: 2,
        ..Default::default()
    };
    cfg.actions.push(crate::config::RepairAction {
        name: "restart-agent".into(),
        cmd: "systemctl restart ocean-agent".into(),
        timeout_seconds: 30,
    });
    let ok = Allowed::default();
    let (t, _) = step(None, &obs(fail(0)), &ok, &cfg, 0);
    let (t, _) = go(&t.expect("t"), &obs(fail(10_000)), &ok, &cfg, 10_000);
    let mut o = obs(fail(10_000));
    o.status = "problem".into();
    let (t, _) = go(&t, &o, &ok, &cfg, 10_000);
    o.status = "draining".into();
    o.live_tasks = 0;
    let (t, _) = go(&t, &o, &ok, &cfg, 10_000);
    assert_eq!(t.state, HostState::Repairing);
    // The first repair's task fails: the second action starts.
    o.repair = RepairSeen::Failed {
        why: "exit 1".into(),
    };
    let (t, cmds) = go(&t, &o, &ok, &cfg, 20_000);
    assert_eq!((t.repairs_failed, t.repair_attempt), (1, 2));
    assert!(t
        .actions
        .iter()
        .any(|a| a.kind == "repair:clean" && a.verdict.as_deref() == Some("failed: exit 1")));
    assert!(cmds
        .iter()
        .any(|c| matches!(c, Command::DeleteRepair { .. })));
    assert_eq!(
        t.current_repair().map(|a| a.kind.as_str()),
        Some("repair:restart-agent")
    );
    // The second one times out: offline, ticket open, status offline.
    o.repair = RepairSeen::Running;
    let (t, cmds) = go(&t, &o, &ok, &cfg, 20_000 + 30_000);
    assert_eq!(t.state, HostState::Offline);
    assert!(t.is_open());
    assert_eq!(t.repairs_failed, 2);
    assert_eq!(statuses(&cmds), ["offline"]);
    assert!(t
        .transitions
        .last()
        .is_some_and(|x| x.cause.contains("for a person")));
}

#[test]
fn a_repair_that_leaves_checks_failing_counts_as_failed() {
    let cfg = HealingConfig {
        verify_seconds: 5,
        ..Default::default()
    };
    let ok = Allowed::default();
    let (t, _) = step(None, &obs(fail(0)), &ok, &cfg, 0);
    let (t, _) = go(&t.expect("t"), &obs(fail(10_000)), &ok, &cfg, 10_000);
    let mut o = obs(fail(10_000));
    o.status = "problem".into();
    let (t, _) = go(&t, &o, &ok, &cfg, 10_000);
    o.status = "draining".into();
    o.live_tasks = 0;
    let (t, _) = go(&t, &o, &ok, &cfg, 10_000);
    o.repair = RepairSeen::Succeeded { ended_ms: 12_000 };
    let (t, _) = go(&t, &o, &ok, &cfg, 12_000);
    o.repair = RepairSeen::Waiting;
    o.checks = fail(16_000);
    let (t, _) = go(&t, &o, &ok, &cfg, 17_000);
    assert_eq!((t.repairs_failed, t.repair_attempt), (1, 2));
    assert_eq!(t.state, HostState::Repairing);
}

#[test]
fn a_step_repeated_by_a_new_instance_repeats_nothing() {
    // The stored ticket mid-repair, seen by an instance that just took
    // over: the repair job is asked for create-only, and the ticket is
    // not rewritten.
    let cfg = HealingConfig::default();
    let ok = Allowed::default();
    let (t, _) = step(None, &obs(fail(0)), &ok, &cfg, 0);
    let (t, _) = go(&t.expect("t"), &obs(fail(10_000)), &ok, &cfg, 10_000);
    let mut o = obs(fail(10_000));
    o.status = "problem".into();
    let (t, _) = go(&t, &o, &ok, &cfg, 10_000);
    o.status = "draining".into();
    o.live_tasks = 0;
    let (stored, first) = go(&t, &o, &ok, &cfg, 11_000);
    o.status = "problem".into();
    let (again, cmds) = step(Some(&stored), &o, &ok, &cfg, 11_500);
    assert!(again.is_none(), "nothing new to record");
    let starts = |c: &[Command]| -> Vec<String> {
        c.iter()
            .filter_map(|c| match c {
                Command::StartRepair { job_id, .. } => Some(job_id.clone()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(starts(&first), starts(&cmds));
    assert_eq!(stored.repair_attempt, 1);
}

fn host(id: &str, node: &str, checks: Checks) -> Observation {
    Observation {
        agent_id: id.into(),
        hostname: id.into(),
        node: node.into(),
        ..obs(checks)
    }
}

#[test]
fn storms_need_a_share_and_a_count() {
    let cfg = HealingConfig::default();
    let hosts = vec![
        host("a", "-", fail(1)),
        host("b", "-", fail(1)),
        host("c", "-", fail(1)),
        host("d", "-", pass(1)),
    ];
    let s = guard::storm(&hosts, &cfg).expect("3 of 4 is a storm");
    assert!(s.starts_with("3 of 4 hosts"), "{s}");
    assert!(guard::storm(&hosts[2..], &cfg).is_none(), "1 of 2 is not");
    assert!(
        guard::storm(&hosts[..1], &cfg).is_none(),
        "one host alone is not"
    );
}

#[test]
fn node_and_job_shares_hold_drains() {
    let cfg = HealingConfig::default();
    let hosts: Vec<Observation> = ["a", "b", "c", "d"]
        .iter()
        .map(|h| host(h, "idc.x", fail(1)))
        .collect();
    let mut open = BTreeMap::new();
    let mut tasks = guard::TasksByJob::new();
    let a = guard::allowed(&hosts[0], &hosts, &open, &tasks, &None, &cfg);
    assert_eq!(a.drain_held, None);
    // b is draining: a quarter of four hosts is one, so a must wait.
    let mut tb = Ticket {
        id: "t".into(),
        host: "b".into(),
        hostname: "b".into(),
        node: "idc.x".into(),
        opened_ms: 0,
        state: HostState::Draining,
        failing_since_ms: 0,
        failing: vec![],
        transitions: vec![],
        actions: vec![],
        repairs_failed: 0,
        repair_attempt: 0,
        dry_run: false,
        closed_ms: None,
        closed_reason: None,
    };
    open.insert("b".to_string(), tb.clone());
    let a = guard::allowed(&hosts[0], &hosts, &open, &tasks, &None, &cfg);
    assert!(
        a.drain_held
            .as_deref()
            .is_some_and(|w| w.contains("1 of its 4")),
        "{a:?}"
    );
    // Another node is not held by it.
    let other = host("e", "idc.y", fail(1));
    let mut all = hosts.clone();
    all.push(other.clone());
    all.push(host("f", "idc.y", pass(1)));
    assert_eq!(
        guard::allowed(&other, &all, &open, &tasks, &None, &cfg).drain_held,
        None
    );
    // A job with its two tasks on e and b (draining): e is held by the job.
    tasks.insert("j".into(), vec!["e".into(), "b".into()]);
    let held = guard::allowed(&other, &all, &open, &tasks, &None, &cfg).drain_held;
    assert!(held.is_some_and(|w| w.starts_with("job j")));
    // Once b is back, e may go.
    tb.state = HostState::Online;
    open.insert("b".to_string(), tb);
    assert_eq!(
        guard::allowed(&other, &all, &open, &tasks, &None, &cfg).drain_held,
        None
    );
}
