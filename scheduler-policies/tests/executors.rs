//! Jobs that need an executor (Docker) go only to agents that offer it, and
//! say so when none does.

mod common;

use common::*;
use ocean_scheduler_policies::*;

fn run(snap: &Snapshot) -> Plan<'_> {
    let plan = plan(snap, &Config::default());
    check_plan(snap, &plan);
    plan
}

fn docker_job(name: &str, tasks: usize) -> JobRequest {
    let mut j = job(name, tasks, 1.0, 100);
    j.needs = vec!["docker".into()];
    j
}

#[test]
fn container_jobs_go_only_to_agents_with_docker() {
    let mut snap = Snapshot {
        agents: vec![
            agent("plain", 8.0, 8192),
            agent("docker", 8.0, 8192).with_executor("docker"),
        ],
        ..Snapshot::default()
    };
    snap.pending.push(docker_job("web", 3));
    snap.pending.push(job("batch", 2, 1.0, 100));
    let plan = run(&snap);
    assert_eq!(agents_of(&plan, "web"), vec!["docker"; 3]);
    assert_eq!(
        plan.placements_of("batch").count(),
        2,
        "plain jobs go anywhere"
    );
}

#[test]
fn without_docker_anywhere_the_reason_says_so() {
    let mut snap = Snapshot {
        agents: vec![
            agent("a", 8.0, 8192),
            agent("b", 8.0, 8192),
            agent("c", 8.0, 8192).with_attr("status", "offline"),
        ],
        ..Snapshot::default()
    };
    snap.pending.push(docker_job("web", 1));
    let plan = run(&snap);
    let u = plan.unplaced_of("web").expect("waits");
    assert_eq!(
        u.reason.to_string(),
        "0 of 3 agents fit: 2 docker unavailable, 1 not online"
    );
}

#[test]
fn privileged_containers_need_the_feature_too() {
    let mut snap = Snapshot {
        agents: vec![
            agent("strict", 8.0, 8192).with_executor("docker"),
            agent("lenient", 8.0, 8192)
                .with_executor("docker")
                .with_executor("docker-privileged"),
        ],
        ..Snapshot::default()
    };
    let mut j = docker_job("root", 2);
    j.needs.push("docker-privileged".into());
    snap.pending.push(j);
    let plan = run(&snap);
    assert_eq!(agents_of(&plan, "root"), vec!["lenient"; 2]);

    snap.agents.truncate(1);
    let plan = run(&snap);
    assert_eq!(
        plan.unplaced_of("root").expect("waits").reason.to_string(),
        "0 of 1 agents fit: 1 docker-privileged unavailable"
    );
}
