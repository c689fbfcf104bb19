use super::*;
use crate::kernel::state::deployments::{deployment_id, FAILED};
use crate::kernel::state::{FAILED as TASK_FAILED, STAGING};
use ocean_proto::internal::Job;
use ocean_spec::JobSpec;

const ID: &str = "cop.c_owt.o_pdl.p_service.s_job.j_cluster.c";
const OLD: u64 = 1;
const NOW: u64 = 1_000_000;

fn job(instances: u32, f: impl FnOnce(&mut JobSpec)) -> JobView {
    let mut spec = JobSpec::new(ID, "new");
    spec.instances = instances;
    f(&mut spec);
    JobView::parse(&Job {
        id: ID.into(),
        spec_json: spec.to_canonical_json().into(),
        created_version: 1,
        updated_version: 10,
        spec_version: 2,
        ..Default::default()
    })
    .unwrap()
}

fn deployment(j: &JobView) -> Deployment {
    Deployment {
        id: deployment_id(ID, 2),
        job_id: ID.into(),
        spec_version: 2,
        from_spec_version: 1,
        config_hash: j.hash,
        state: RUNNING.into(),
        created_version: 10,
        updated_version: 10,
        started_ms: NOW - 1_000,
        progress_ms: NOW - 1_000,
        promoted: j.spec.upgrade_strategy.canary == 0,
        ..Default::default()
    }
}

fn running(id: &str, hash: u64) -> Task {
    Task {
        id: id.into(),
        job_id: ID.into(),
        state: TASK_RUNNING.into(),
        config_hash: hash,
        created_version: 11,
        started_ms: NOW - 60_000,
        ..Default::default()
    }
}

fn olds(n: usize) -> Vec<Task> {
    (0..n).map(|i| running(&format!("o{i}"), OLD)).collect()
}

fn refs(tasks: &[Task]) -> Vec<&Task> {
    tasks.iter().collect()
}

fn record(actions: &[Action]) -> Option<&Deployment> {
    actions.iter().find_map(|a| match a {
        Action::Record(d) => Some(d.as_ref()),
        _ => None,
    })
}

fn moves(actions: &[Action]) -> Vec<Action> {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Start(_) | Action::Stop(_) | Action::Fail(_)))
        .cloned()
        .collect()
}

#[test]
fn a_rolling_update_surges_one_then_replaces_an_old_task_once_the_new_one_is_up() {
    let j = job(3, |_| {});
    let d = deployment(&j);
    let mut tasks = olds(3);
    assert_eq!(
        moves(&step(&d, &j, &refs(&tasks), NOW)),
        vec![Action::Start(1)]
    );
    // The new task is staging: nothing more (the floor is 3, the surge 1).
    tasks.push(Task {
        state: STAGING.into(),
        ..running("n0", j.hash)
    });
    let a = step(&d, &j, &refs(&tasks), NOW);
    assert_eq!(moves(&a), vec![]);
    assert_eq!(record(&a).unwrap().unhealthy_since_ms, NOW, "waits on n0");
    // Up: the oldest old task goes, recorded, and the next new one starts.
    tasks[3].state = TASK_RUNNING.into();
    let a = step(&d, &j, &refs(&tasks), NOW);
    assert_eq!(
        moves(&a),
        vec![Action::Start(1), Action::Stop(vec!["o0".into()])]
    );
    let r = record(&a).unwrap();
    assert_eq!(
        (r.replaced.clone(), r.healthy, r.progress_ms),
        (vec!["o0".to_string()], 1, NOW)
    );
}

#[test]
fn all_new_and_healthy_succeeds() {
    let j = job(2, |_| {});
    let d = deployment(&j);
    let tasks = vec![running("n0", j.hash), running("n1", j.hash)];
    let a = step(&d, &j, &refs(&tasks), NOW);
    assert_eq!(moves(&a), vec![]);
    assert_eq!(record(&a).unwrap().state, SUCCEEDED);
}

#[test]
fn step_pauses_after_that_many_replaced_and_resume_goes_on() {
    let j = job(10, |s| s.upgrade_strategy.step = 3);
    let mut d = deployment(&j);
    d.replaced = vec!["o0".into(), "o1".into(), "o2".into()];
    let mut tasks = olds(10).split_off(3);
    tasks.extend((0..3).map(|i| running(&format!("n{i}"), j.hash)));
    let a = step(&d, &j, &refs(&tasks), NOW);
    assert_eq!(moves(&a), vec![]);
    let r = record(&a).unwrap();
    assert_eq!(r.state, PAUSED);
    assert!(r.reason.contains("paused after 3 of 10"), "{}", r.reason);
    // Paused, nothing moves, not even later.
    let paused = r.clone();
    assert_eq!(
        moves(&step(&paused, &j, &refs(&tasks), NOW + 3_600_000)),
        vec![]
    );
    // Resumed (the state sets step_mark): the next new task starts.
    let mut resumed = paused.clone();
    resumed.state = RUNNING.into();
    resumed.step_mark = 3;
    assert_eq!(
        moves(&step(&resumed, &j, &refs(&tasks), NOW)),
        vec![Action::Start(1)]
    );
}

#[test]
fn a_paused_job_below_its_instances_is_still_filled() {
    let j = job(3, |_| {});
    let mut d = deployment(&j);
    d.state = PAUSED.into();
    let tasks = olds(2);
    assert_eq!(
        moves(&step(&d, &j, &refs(&tasks), NOW)),
        vec![Action::Start(1)]
    );
}

#[test]
fn sleep_replaces_one_at_a_time_and_waits_between() {
    let j = job(4, |s| {
        s.upgrade_strategy.sleep_seconds = 1;
        s.upgrade_strategy.max_surge = Some(ocean_spec::Amount::Count(4));
    });
    let d = deployment(&j);
    let mut tasks = olds(4);
    // Even with a surge of 4, one at a time.
    assert_eq!(
        moves(&step(&d, &j, &refs(&tasks), NOW)),
        vec![Action::Start(1)]
    );
    tasks.push(running("n0", j.hash));
    let a = step(&d, &j, &refs(&tasks), NOW);
    assert_eq!(moves(&a), vec![Action::Stop(vec!["o0".into()])]);
    let r = record(&a).unwrap().clone();
    assert_eq!(r.next_at_ms, NOW + 1_000);
    assert!(a.contains(&Action::WakeAt(NOW + 1_000)));
    tasks.remove(0);
    // Asleep: nothing; awake: the next one.
    assert_eq!(moves(&step(&r, &j, &refs(&tasks), NOW + 500)), vec![]);
    assert_eq!(
        moves(&step(&r, &j, &refs(&tasks), NOW + 1_000)),
        vec![Action::Start(1)]
    );
}

#[test]
fn unavailability_stops_old_tasks_before_new_ones_are_up() {
    let j = job(4, |s| {
        s.upgrade_strategy.max_unavailable = Some(ocean_spec::Amount::Count(2));
        s.upgrade_strategy.max_surge = Some(ocean_spec::Amount::Count(0));
    });
    let d = deployment(&j);
    let tasks = olds(4);
    assert_eq!(
        moves(&step(&d, &j, &refs(&tasks), NOW)),
        vec![
            Action::Start(2),
            Action::Stop(vec!["o0".into(), "o1".into()])
        ]
    );
}

#[test]
fn an_old_task_that_serves_nobody_goes_first() {
    let j = job(2, |_| {});
    let d = deployment(&j);
    let mut tasks = olds(2);
    tasks[1].state = STAGING.into();
    tasks.push(running("n0", j.hash));
    let a = step(&d, &j, &refs(&tasks), NOW);
    // o1 is not up: it goes although the floor (2) leaves room for none.
    assert_eq!(
        moves(&a),
        vec![Action::Start(1), Action::Stop(vec!["o1".into()])]
    );
}

#[test]
fn canaries_start_beside_the_old_tasks_and_wait_for_promotion() {
    let j = job(10, |s| s.upgrade_strategy.canary = 2);
    let d = deployment(&j);
    assert!(!d.promoted);
    let mut tasks = olds(10);
    assert_eq!(
        moves(&step(&d, &j, &refs(&tasks), NOW)),
        vec![Action::Start(2)]
    );
    tasks.push(running("n0", j.hash));
    tasks.push(running("n1", j.hash));
    let a = step(&d, &j, &refs(&tasks), NOW);
    assert_eq!(moves(&a), vec![], "no old task goes before the promotion");
    let waiting = record(&a).unwrap().clone();
    assert_eq!(waiting.state, WAITING);
    assert_eq!(
        moves(&step(&waiting, &j, &refs(&tasks), NOW + 86_400_000)),
        vec![]
    );
    // Promoted: the two extra up tasks let two old ones go, and the
    // surge of one lets the next new task start.
    let mut promoted = waiting;
    promoted.state = RUNNING.into();
    promoted.promoted = true;
    assert_eq!(
        moves(&step(&promoted, &j, &refs(&tasks), NOW)),
        vec![
            Action::Start(1),
            Action::Stop(vec!["o0".into(), "o1".into()])
        ]
    );
}

#[test]
fn auto_promote_goes_on_by_itself() {
    let j = job(3, |s| {
        s.upgrade_strategy.canary = 1;
        s.upgrade_strategy.auto_promote = true;
    });
    let d = deployment(&j);
    let mut tasks = olds(3);
    tasks.push(running("n0", j.hash));
    let a = step(&d, &j, &refs(&tasks), NOW);
    assert!(record(&a).unwrap().promoted);
    assert_eq!(record(&a).unwrap().state, RUNNING);
}

#[test]
fn a_new_version_that_never_turns_healthy_fails_at_the_deadline_keeping_the_old_ones() {
    let j = job(3, |s| {
        s.health_checks
            .push(serde_json::from_str(r#"{"protocol": "command", "command": "false"}"#).unwrap());
        s.upgrade_strategy.healthy_deadline_seconds = Some(10);
    });
    let d = deployment(&j);
    let mut tasks: Vec<Task> = olds(3)
        .into_iter()
        .map(|t| Task {
            healthy: Some(true),
            ..t
        })
        .collect();
    tasks.push(Task {
        healthy: Some(false),
        health_message: "exit 1".into(),
        ..running("n0", j.hash)
    });
    let a = step(&d, &j, &refs(&tasks), NOW);
    assert_eq!(moves(&a), vec![], "the floor keeps all three old ones");
    let r = record(&a).unwrap().clone();
    assert_eq!(r.unhealthy_since_ms, NOW);
    assert!(a.contains(&Action::WakeAt(NOW + 10_000)));
    assert_eq!(moves(&step(&r, &j, &refs(&tasks), NOW + 9_999)), vec![]);
    let a = step(&r, &j, &refs(&tasks), NOW + 10_000);
    assert_eq!(
        a,
        vec![Action::Fail(
            "no new task became healthy within healthy_deadline_seconds (10): task n0 is RUNNING (health: exit 1)"
                .into()
        )]
    );
}

#[test]
fn a_crash_looping_new_version_counts_as_unhealthy_between_tries() {
    let j = job(2, |s| s.upgrade_strategy.healthy_deadline_seconds = Some(5));
    let d = deployment(&j);
    let mut tasks = olds(2);
    tasks.push(Task {
        state: TASK_FAILED.into(),
        ended_ms: NOW - 10,
        message: "exit 1".into(),
        ..running("n0", j.hash)
    });
    let a = step(&d, &j, &refs(&tasks), NOW);
    let r = record(&a).unwrap().clone();
    assert_eq!(r.unhealthy_since_ms, NOW);
    assert!(
        matches!(&step(&r, &j, &refs(&tasks), NOW + 5_000)[..], [Action::Fail(why)] if why.contains("n0 is FAILED (exit 1)"))
    );
}

#[test]
fn min_healthy_seconds_delays_counting_a_new_task() {
    let j = job(1, |s| s.upgrade_strategy.min_healthy_seconds = 30);
    let d = deployment(&j);
    let mut tasks = olds(1);
    tasks.push(Task {
        started_ms: NOW - 10_000,
        ..running("n0", j.hash)
    });
    let a = step(&d, &j, &refs(&tasks), NOW);
    assert_eq!(moves(&a), vec![]);
    assert!(a.contains(&Action::WakeAt(NOW + 20_000)));
    let a = step(&d, &j, &refs(&tasks), NOW + 20_000);
    assert_eq!(moves(&a), vec![Action::Stop(vec!["o0".into()])]);
}

#[test]
fn no_progress_fails_at_the_progress_deadline() {
    let j = job(2, |s| {
        s.upgrade_strategy.progress_deadline_seconds = Some(60)
    });
    let mut d = deployment(&j);
    d.progress_ms = NOW - 60_000;
    let tasks = olds(2);
    assert!(
        matches!(&step(&d, &j, &refs(&tasks), NOW)[..], [Action::Fail(why)] if why.contains("progress_deadline_seconds (60)"))
    );
    // A paused one does not fail.
    d.state = PAUSED.into();
    assert_eq!(moves(&step(&d, &j, &refs(&tasks), NOW)), vec![]);
    let _ = FAILED;
}

#[test]
fn a_replaced_task_is_never_replaced_twice() {
    // The stop was committed (kill requested) with the record: whatever
    // leader reads it next sees one replaced and the task not live.
    let j = job(2, |_| {});
    let mut d = deployment(&j);
    d.replaced = vec!["o0".into()];
    let mut tasks = olds(2);
    tasks[0].kill_requested = true;
    tasks.push(running("n0", j.hash));
    tasks.push(running("n1", j.hash));
    let a = step(&d, &j, &refs(&tasks), NOW);
    assert_eq!(moves(&a), vec![Action::Stop(vec!["o1".into()])]);
    assert_eq!(
        record(&a).unwrap().replaced,
        vec!["o0".to_string(), "o1".to_string()]
    );
}
