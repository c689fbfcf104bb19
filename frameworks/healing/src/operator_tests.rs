//! The operator's observations of hosts, from what the master answers.

use ocean_client::api::{Agent, AgentHostCheck, AgentHostChecks, AgentInfo, Task};

use crate::config::HealingConfig;
use crate::machine::{Checks, RepairSeen};
use crate::operator::{observe, repair_seen};

fn info(received_ms: u64, failing: &[&str]) -> AgentInfo {
    let checks = ["disk:/d", "load", "memory"]
        .iter()
        .map(|n| AgentHostCheck {
            name: n.to_string(),
            ok: !failing.contains(n),
            message: format!("{n} says so"),
            ..Default::default()
        })
        .collect();
    AgentInfo {
        agent: Some(Agent {
            id: "a1".into(),
            hostname: "h1".into(),
            attributes: [("idc".to_string(), "x".to_string())].into(),
            ..Default::default()
        }),
        status: "online".into(),
        connected: Some(true),
        host_checks: Some(AgentHostChecks {
            received_ms,
            ok: failing.is_empty(),
            data_dir: "/d".into(),
            checks,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn none() -> std::collections::BTreeSet<String> {
    std::collections::BTreeSet::new()
}

fn task(job: &str, agent: &str, state: &str, exit: Option<i32>) -> Task {
    Task {
        id: format!("{job}.1"),
        job_id: job.into(),
        agent_id: agent.into(),
        state: state.into(),
        exit_code: exit,
        ended_ms: 9,
        ..Default::default()
    }
}

#[test]
fn observations_follow_checks_ignores_and_freshness() {
    let mut cfg = HealingConfig::default();
    let o = observe(
        &info(1_000, &["disk:/d", "load"]),
        &[],
        None,
        &cfg,
        2_000,
        &none(),
    )
    .expect("obs");
    assert_eq!(o.node, "idc.x");
    assert_eq!(o.data_dir, "/d");
    assert!(
        matches!(&o.checks, Checks::Fail { failing, .. } if failing == &["disk:/d: disk:/d says so", "load: load says so"])
    );
    cfg.ignore_checks.insert("*".into(), vec!["load".into()]);
    let o = observe(
        &info(1_000, &["disk:/d", "load"]),
        &[],
        None,
        &cfg,
        2_000,
        &none(),
    )
    .expect("obs");
    assert!(matches!(&o.checks, Checks::Fail { failing, .. } if failing.len() == 1));
    cfg.ignore_checks
        .insert("idc.x".into(), vec!["disk:".into()]);
    let o = observe(
        &info(1_000, &["disk:/d", "load"]),
        &[],
        None,
        &cfg,
        2_000,
        &none(),
    )
    .expect("obs");
    assert_eq!(o.checks, Checks::Pass { received_ms: 1_000 });
    // Older than stale_after: not trusted.
    let o = observe(&info(1_000, &[]), &[], None, &cfg, 1_000 + 31_000, &none()).expect("obs");
    assert_eq!(o.checks, Checks::Unknown);
}

#[test]
fn live_tasks_leave_out_repairs_and_repairs_get_verdicts() {
    let cfg = HealingConfig::default();
    let repair = crate::repair::repair_job_id("t", 1);
    let tasks = vec![
        task("web", "a1", "RUNNING", None),
        task("web2", "a1", "FINISHED", Some(0)),
        task(&repair, "a1", "RUNNING", None),
        task("web3", "a2", "RUNNING", None),
    ];
    let o = observe(&info(1, &[]), &tasks, Some(&repair), &cfg, 1, &none()).expect("obs");
    assert_eq!(o.live_tasks, 1);
    assert_eq!(o.repair, RepairSeen::Running);
    let done = [task(&repair, "a1", "FINISHED", Some(0))];
    assert_eq!(
        repair_seen(done.iter()),
        RepairSeen::Succeeded { ended_ms: 9 }
    );
    let failed = [task(&repair, "a1", "FAILED", Some(3))];
    assert!(
        matches!(repair_seen(failed.iter()), RepairSeen::Failed { why } if why.contains("FAILED exit 3"))
    );
    assert_eq!(repair_seen([].iter()), RepairSeen::Waiting);
}
