//! The cron framework's decisions, run against a view that a tiny
//! in-memory executor keeps up to date (compare-and-set included).

use super::*;
use ocean_client::api::{Job, KvEntry, Task};

const ID: &str = "cop.c_owt.o_pdl.p_service.s_job.report_cluster.c1";
const MIN: i64 = 60_000;
/// 2026-12-05 14:00:00 UTC.
const T0: i64 = 1_796_479_200_000;

fn spec(schedule: &str, extra: serde_json::Value) -> Vec<u8> {
    let mut v = serde_json::json!({
        "id": ID,
        "schedule": schedule,
        "job": {"cmd": "echo report"},
    });
    if let (Some(o), Some(x)) = (v.as_object_mut(), extra.as_object()) {
        o.extend(x.clone());
    }
    serde_json::to_vec(&v).unwrap()
}

/// Applies a plan as the masters would; a stale compare-and-set stops the
/// plan there, as the runner does.
fn execute(view: &mut View, plan: &Plan) -> usize {
    let mut done = 0;
    for a in &plan.actions {
        view.version += 1;
        let v = view.version;
        match a {
            Action::PutJob {
                spec_json,
                expected_spec_version,
            } => {
                let s: serde_json::Value = serde_json::from_slice(spec_json).unwrap();
                let id = s["id"].as_str().unwrap().to_string();
                if *expected_spec_version == Some(0) && view.jobs.contains_key(&id) {
                    return done;
                }
                assert_eq!(s["type"], "batch");
                view.jobs.insert(
                    id.clone(),
                    Job {
                        id,
                        spec_json: spec_json.clone(),
                        ..Default::default()
                    },
                );
            }
            Action::DeleteJob { id, .. } => {
                view.jobs.remove(id);
            }
            Action::PutKey {
                key,
                value,
                expected_revision,
            } => {
                let actual = view.keys.get(key).map_or(0, |e| e.revision);
                if expected_revision.is_some_and(|e| e != actual) {
                    return done;
                }
                view.keys.insert(
                    key.clone(),
                    KvEntry {
                        namespace: NAME.into(),
                        key: key.clone(),
                        value: value.clone(),
                        revision: v,
                        created_revision: v,
                    },
                );
            }
            Action::DeleteKey { key, .. } => {
                view.keys.remove(key);
            }
        }
        done += 1;
    }
    done
}

fn with_spec(s: Vec<u8>) -> View {
    let mut view = View::new(NAME);
    view.keys.insert(
        format!("{SPECS}{ID}"),
        KvEntry {
            namespace: NAME.into(),
            key: format!("{SPECS}{ID}"),
            value: s,
            revision: 1,
            created_revision: 1,
        },
    );
    view.version = 1;
    view
}

fn state(view: &View) -> CronState {
    serde_json::from_slice(&view.keys[&format!("{STATES}{ID}")].value).unwrap()
}

fn runs(view: &View) -> Vec<String> {
    let mut ids: Vec<String> = view.jobs.keys().cloned().collect();
    ids.sort();
    ids
}

fn step(view: &mut View, now: i64) -> Plan {
    let plan = CronFramework.reconcile(view, now as u64);
    execute(view, &plan);
    plan
}

#[test]
fn each_tick_launches_one_run_once() {
    let mut view = with_spec(spec("*/5 * * * *", serde_json::json!({})));
    let plan = step(&mut view, T0 + MIN);
    assert!(
        view.jobs.is_empty(),
        "a tick before the job was seen is not run"
    );
    assert_eq!(plan.wake_at_ms, Some((T0 + 5 * MIN) as u64));
    step(&mut view, T0 + 5 * MIN + 10);
    assert_eq!(
        runs(&view),
        vec!["cop.c_owt.o_pdl.p_service.s_job.report-202612051405_cluster.c1"]
    );
    // Deciding again at the same time (or a moment later) adds nothing.
    let again = step(&mut view, T0 + 5 * MIN + 500);
    assert!(again.actions.is_empty(), "{:?}", again.actions);
    assert_eq!(state(&view).last_tick_ms, Some(T0 + 5 * MIN));
}

#[test]
fn a_failover_gap_runs_only_the_latest_missed_tick() {
    let mut view = with_spec(spec(
        "*/5 * * * *",
        serde_json::json!({"concurrency": "allow"}),
    ));
    step(&mut view, T0);
    step(&mut view, T0 + 5 * MIN);
    // 17 minutes without a leader: ticks at :10 and :15 and :20 were missed.
    step(&mut view, T0 + 22 * MIN);
    let r = runs(&view);
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(r[1].contains("202612051420"), "{r:?}");
    let s = state(&view);
    assert_eq!((s.last_tick_ms, s.skipped), (Some(T0 + 20 * MIN), 2));
}

#[test]
fn a_lost_state_write_never_runs_a_tick_twice() {
    let mut view = with_spec(spec("*/5 * * * *", serde_json::json!({})));
    step(&mut view, T0);
    let before = view.clone();
    let plan = CronFramework.reconcile(&view, (T0 + 5 * MIN) as u64);
    // Only the run is created; the state write is lost (the leader died).
    let Action::PutJob { .. } = &plan.actions[0] else {
        panic!("expected the run first: {:?}", plan.actions)
    };
    let mut view2 = before;
    execute(
        &mut view2,
        &Plan {
            actions: plan.actions[..1].to_vec(),
            wake_at_ms: None,
        },
    );
    // The next leader sees the run and only records it.
    let plan = step(&mut view2, T0 + 5 * MIN + 900);
    assert!(plan
        .actions
        .iter()
        .all(|a| !matches!(a, Action::PutJob { .. })));
    assert_eq!(runs(&view2).len(), 1);
    assert_eq!(state(&view2).runs.len(), 1);
}

#[test]
fn forbid_skips_while_a_run_runs_and_old_runs_are_pruned() {
    let mut view = with_spec(spec("* * * * *", serde_json::json!({"keep_runs": 2})));
    step(&mut view, T0);
    step(&mut view, T0 + MIN);
    // The run still runs at the next tick: skipped.
    step(&mut view, T0 + 2 * MIN);
    assert_eq!(runs(&view).len(), 1);
    assert_eq!(state(&view).skipped, 1);
    let finish = |view: &mut View| {
        for id in view.jobs.keys().cloned().collect::<Vec<_>>() {
            let tid = format!("{id}.1");
            view.tasks.insert(
                tid.clone(),
                Task {
                    id: tid,
                    job_id: id,
                    state: "FINISHED".into(),
                    exit_code: Some(0),
                    ..Default::default()
                },
            );
        }
    };
    for m in 3..8 {
        finish(&mut view);
        step(&mut view, T0 + m * MIN);
    }
    // Two finished runs kept, plus the one just launched.
    assert_eq!(runs(&view).len(), 3, "{:?}", runs(&view));
    assert_eq!(state(&view).runs.len(), 3);
}

#[test]
fn an_invalid_spec_is_reported_and_a_deleted_one_cleans_up() {
    let mut view = with_spec(spec("75 * * * *", serde_json::json!({})));
    step(&mut view, T0);
    assert!(
        state(&view).error.contains("schedule"),
        "{}",
        state(&view).error
    );
    assert!(view.jobs.is_empty());
    let mut view = with_spec(spec("* * * * *", serde_json::json!({})));
    step(&mut view, T0);
    step(&mut view, T0 + MIN);
    assert_eq!(runs(&view).len(), 1);
    view.keys.remove(&format!("{SPECS}{ID}"));
    step(&mut view, T0 + 2 * MIN);
    assert!(view.jobs.is_empty());
    assert!(view.keys.is_empty());
}
