//! The cron framework: [`CronFramework`] implements the SDK's pure
//! `reconcile` over the keys of the `cron` namespace.
//!
//! ```text
//!  crons/<id>   the cron job's spec (JSON, written by `ocean cron create`)
//!  state/<id>   what the framework has done: first seen, last tick handled,
//!               ticks skipped, its runs, the spec's error if it is invalid
//!  runs         ordinary batch jobs, `<job name>-<yyyymmddhhmm>` (runs::run_job_id)
//! ```
//!
//! A tick's run is created with compare-and-set "create only", so a tick
//! never runs twice even when two instances of the framework race or a
//! state write was lost in a failover; the state is written after the run
//! (a run that exists for the due tick is only recorded). After downtime
//! only the latest missed tick runs ([`crate::due`]).

use serde::{Deserialize, Serialize};

use ocean_framework::{Action, Framework, Plan, View};

use crate::due::{due, DueInput};
use crate::runs::{on_tick, run_job_id, runs_to_delete, Run, TickAction};
use crate::spec::CronJobSpec;

/// The framework's name: its namespace and lease.
pub const NAME: &str = "cron";
/// Prefix of the cron jobs' specs.
pub const SPECS: &str = "crons/";
/// Prefix of the framework's state per cron job.
pub const STATES: &str = "state/";

/// What the framework records per cron job (`state/<id>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronState {
    /// When the framework first saw the spec (leader clock, ms): ticks
    /// before it are not run.
    pub created_ms: i64,
    /// The last tick handled (launched, skipped or expired).
    pub last_tick_ms: Option<i64>,
    /// Ticks not run: superseded after downtime, expired, or forbidden by
    /// a run still running.
    pub skipped: u64,
    /// Runs launched and not yet pruned, oldest first.
    pub runs: Vec<RunRecord>,
    /// Why the spec cannot run, when it cannot.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// One run the framework launched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run's job id.
    pub id: String,
    /// The tick it runs for (ms since the epoch).
    pub tick_ms: i64,
}

/// The cron framework.
#[derive(Debug, Default, Clone, Copy)]
pub struct CronFramework;

/// Whether a run is over: its job is gone, or a task of it finished with
/// exit 0 (runs are batch jobs of one instance unless the template says
/// otherwise, so one success completes it).
fn finished(view: &View, id: &str) -> bool {
    if !view.jobs.contains_key(id) {
        return true;
    }
    view.tasks_of(id)
        .any(|t| t.state == "FINISHED" && t.exit_code.unwrap_or(0) == 0)
}

/// The run's job spec: the template with the run's id, batch type and one
/// instance unless the template asks for more.
fn run_spec(template: &serde_json::Value, id: &str) -> Vec<u8> {
    let mut spec = template.clone();
    if let Some(o) = spec.as_object_mut() {
        o.insert("id".into(), id.into());
        o.insert("type".into(), "batch".into());
        o.entry("instances").or_insert(1.into());
    }
    serde_json::to_vec(&spec).unwrap_or_default()
}

fn state_of(view: &View, id: &str) -> (CronState, Option<u64>) {
    match view.keys.get(&format!("{STATES}{id}")) {
        Some(e) => (
            serde_json::from_slice(&e.value).unwrap_or_default(),
            Some(e.revision),
        ),
        None => (CronState::default(), None),
    }
}

fn put_state(id: &str, state: &CronState, revision: Option<u64>) -> Action {
    Action::PutKey {
        key: format!("{STATES}{id}"),
        value: serde_json::to_vec(state).unwrap_or_default(),
        expected_revision: Some(revision.unwrap_or(0)),
    }
}

impl CronFramework {
    /// Decides for one cron job; pushes actions, returns its next wake-up.
    fn one(
        &self,
        view: &View,
        id: &str,
        spec: &[u8],
        now_ms: i64,
        out: &mut Vec<Action>,
    ) -> Option<i64> {
        let (mut state, revision) = state_of(view, id);
        let before = state.clone();
        let parsed: Result<CronJobSpec, String> =
            serde_json::from_slice(spec).map_err(|e| format!("spec: {e}"));
        let checked = parsed.and_then(|s| s.validate().map(|t| (s, t)).map_err(|e| e.to_string()));
        let (spec, timing) = match checked {
            Ok(x) => x,
            Err(error) => {
                state.error = error;
                if state != before {
                    out.push(put_state(id, &state, revision));
                }
                return None;
            }
        };
        state.error.clear();
        if state.created_ms == 0 {
            state.created_ms = now_ms;
        }
        let runs: Vec<Run> = state
            .runs
            .iter()
            .map(|r| Run {
                id: r.id.clone(),
                tick_ms: r.tick_ms,
                finished: finished(view, &r.id),
            })
            .collect();
        let prune: Vec<String> = runs_to_delete(&runs, spec.keep_runs)
            .into_iter()
            .map(str::to_string)
            .collect();
        for run in &prune {
            if view.jobs.contains_key(run) {
                out.push(Action::DeleteJob {
                    id: run.clone(),
                    expected_spec_version: None,
                });
            }
        }
        state.runs.retain(|r| !prune.contains(&r.id));
        let mut wake = None;
        if !spec.suspended {
            let d = due(
                &timing.schedule,
                timing.time_zone,
                DueInput {
                    last_tick_ms: state.last_tick_ms,
                    created_ms: state.created_ms,
                    now_ms,
                    starting_deadline_seconds: spec.starting_deadline_seconds,
                },
            );
            wake = d.next_tick_ms;
            state.skipped += u64::from(d.skipped);
            if let Some(tick) = d.launch_tick_ms {
                let live: Vec<Run> = runs
                    .into_iter()
                    .filter(|r| !prune.contains(&r.id))
                    .collect();
                match on_tick(spec.concurrency, &live) {
                    TickAction::Skip => state.skipped += 1,
                    action => {
                        if let TickAction::ReplaceThenLaunch(ids) = action {
                            out.extend(ids.into_iter().map(|id| Action::DeleteJob {
                                id: id.to_string(),
                                expected_spec_version: None,
                            }));
                        }
                        match run_job_id(&spec.id, tick) {
                            Ok(run) => {
                                if !view.jobs.contains_key(&run) {
                                    out.push(Action::PutJob {
                                        spec_json: run_spec(&spec.job, &run),
                                        expected_spec_version: Some(0),
                                    });
                                }
                                if !state.runs.iter().any(|r| r.id == run) {
                                    state.runs.push(RunRecord {
                                        id: run,
                                        tick_ms: tick,
                                    });
                                }
                            }
                            Err(e) => state.error = e.to_string(),
                        }
                    }
                }
            }
            if let Some(t) = d.handled_tick_ms() {
                state.last_tick_ms = Some(t);
            }
        }
        if state != before {
            out.push(put_state(id, &state, revision));
        }
        wake
    }
}

impl Framework for CronFramework {
    fn name(&self) -> &str {
        NAME
    }

    fn reconcile(&self, view: &View, now_ms: u64) -> Plan {
        let now = now_ms as i64;
        let mut actions = Vec::new();
        let mut wake: Option<i64> = None;
        for e in view.keys_under(SPECS) {
            let id = &e.key[SPECS.len()..];
            if let Some(w) = self.one(view, id, &e.value, now, &mut actions) {
                wake = Some(wake.map_or(w, |x| x.min(w)));
            }
        }
        // A deleted cron job takes its runs and state with it.
        for e in view.keys_under(STATES) {
            let id = &e.key[STATES.len()..];
            if view.keys.contains_key(&format!("{SPECS}{id}")) {
                continue;
            }
            let state: CronState = serde_json::from_slice(&e.value).unwrap_or_default();
            for r in state.runs.iter().filter(|r| view.jobs.contains_key(&r.id)) {
                actions.push(Action::DeleteJob {
                    id: r.id.clone(),
                    expected_spec_version: None,
                });
            }
            actions.push(Action::DeleteKey {
                key: e.key.clone(),
                expected_revision: Some(e.revision),
            });
        }
        Plan {
            actions,
            wake_at_ms: wake.map(|w| w.max(0) as u64),
        }
    }
}

#[cfg(test)]
#[path = "framework_tests.rs"]
mod tests;
