//! The cron job spec: what a user writes to get a job run on a schedule.
//!
//! ```yaml
//! id: cop.x_owt.y_pdl.z_service.reports_job.report_cluster.c3
//! schedule: "0 14 * * MON-FRI"
//! time_zone: Asia/Shanghai
//! job: { cmd: "report --daily", resources: { cpus: 0.5, mem: 256 } }
//! ```
//!
//! Parsing is serde's; [`CronJobSpec::validate`] then checks the values and
//! reports every problem at once, each with its field path.

use std::fmt;

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::schedule::{parse_time_zone, CronError, Schedule};

/// The largest `keep_runs`: finished runs are kept as jobs in the master.
pub const MAX_KEEP_RUNS: u32 = 100;

/// A cron job: a job template launched as a new run at each tick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CronJobSpec {
    /// Service-tree id of the cron job; each run's id is derived from it.
    pub id: String,
    /// Cron expression (five fields or a macro such as `@daily`).
    pub schedule: String,
    /// IANA time zone the schedule is read in.
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// The job spec each run is created from (a JSON object).
    pub job: serde_json::Value,
    /// How many finished runs to keep (1..=100); older ones are deleted.
    #[serde(default = "default_keep_runs")]
    pub keep_runs: u32,
    /// What to do at a tick while the previous run still runs.
    #[serde(default)]
    pub concurrency: Concurrency,
    /// How late a missed tick may still start; later ones are skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting_deadline_seconds: Option<u64>,
    /// When true no new runs start; running ones are left alone.
    #[serde(default)]
    pub suspended: bool,
}

/// What a tick does while an earlier run is still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Concurrency {
    /// Start the new run alongside the running ones.
    Allow,
    /// Skip the tick; the running run goes on.
    #[default]
    Forbid,
    /// Stop the running runs, then start the new one.
    Replace,
}

fn default_time_zone() -> String {
    "UTC".to_string()
}

fn default_keep_runs() -> u32 {
    5
}

/// The parsed timing of a valid spec, so runners need not parse again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    /// The parsed `schedule`.
    pub schedule: Schedule,
    /// The parsed `time_zone`.
    pub time_zone: Tz,
}

/// A cron job spec was rejected: every problem found, in field order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cron job: {}", List(.errors))]
pub struct InvalidCronJob {
    /// One entry per problem.
    pub errors: Vec<CronError>,
}

struct List<'a>(&'a [CronError]);

impl fmt::Display for List<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl CronJobSpec {
    /// Checks every field and returns the parsed timing, or every problem.
    pub fn validate(&self) -> Result<Timing, InvalidCronJob> {
        let mut errors = Vec::new();
        if self.id.is_empty() {
            errors.push(CronError::new("id", "must not be empty"));
        } else if !self.id.contains("_job.") {
            errors.push(CronError::new(
                "id",
                format!(
                    "'{}' has no '_job.<name>' tag; runs are named after it",
                    self.id
                ),
            ));
        }
        let schedule = Schedule::parse(&self.schedule)
            .map_err(|e| errors.push(e))
            .ok();
        let time_zone = parse_time_zone(&self.time_zone)
            .map_err(|e| errors.push(e))
            .ok();
        if !self.job.is_object() {
            errors.push(CronError::new(
                "job",
                format!(
                    "must be an object (a job spec); got {}",
                    json_kind(&self.job)
                ),
            ));
        }
        if !(1..=MAX_KEEP_RUNS).contains(&self.keep_runs) {
            errors.push(CronError::new(
                "keep_runs",
                format!("must be 1..={MAX_KEEP_RUNS}; got {}", self.keep_runs),
            ));
        }
        // A deadline of 0 would skip every tick the runner is a moment late for.
        if self.starting_deadline_seconds == Some(0) {
            errors.push(CronError::new(
                "starting_deadline_seconds",
                "must be at least 1; got 0",
            ));
        }
        match (schedule, time_zone) {
            (Some(schedule), Some(time_zone)) if errors.is_empty() => Ok(Timing {
                schedule,
                time_zone,
            }),
            _ => Err(InvalidCronJob { errors }),
        }
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ID: &str = "cop.x_owt.y_pdl.z_service.reports_job.report_cluster.c3";

    fn parse(v: serde_json::Value) -> Result<CronJobSpec, serde_json::Error> {
        serde_json::from_value(v)
    }

    fn minimal() -> CronJobSpec {
        parse(json!({"id": ID, "schedule": "*/5 * * * *", "job": {"cmd": "true"}})).unwrap()
    }

    fn problems(spec: &CronJobSpec) -> Vec<String> {
        spec.validate()
            .unwrap_err()
            .errors
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn defaults_fill_the_optional_fields() {
        let spec = minimal();
        assert_eq!(spec.time_zone, "UTC");
        assert_eq!(spec.keep_runs, 5);
        assert_eq!(spec.concurrency, Concurrency::Forbid);
        assert_eq!(spec.starting_deadline_seconds, None);
        assert!(!spec.suspended);
        let timing = spec.validate().unwrap();
        assert_eq!(timing.time_zone, Tz::UTC);
        assert_eq!(timing.schedule.expression(), "*/5 * * * *");
    }

    #[test]
    fn every_field_round_trips() {
        let v = json!({
            "id": ID, "schedule": "@daily", "time_zone": "Asia/Shanghai",
            "job": {"cmd": "report"}, "keep_runs": 10, "concurrency": "replace",
            "starting_deadline_seconds": 300, "suspended": true,
        });
        let spec = parse(v.clone()).unwrap();
        assert_eq!(spec.concurrency, Concurrency::Replace);
        assert_eq!(spec.starting_deadline_seconds, Some(300));
        assert_eq!(serde_json::to_value(&spec).unwrap(), v);
        assert_eq!(
            spec.validate().unwrap().time_zone,
            chrono_tz::Asia::Shanghai
        );
    }

    #[test]
    fn unknown_fields_and_bad_enums_are_rejected_by_serde() {
        let e =
            parse(json!({"id": ID, "schedule": "* * * * *", "job": {}, "keep": 3})).unwrap_err();
        assert!(e.to_string().contains("unknown field `keep`"), "{e}");
        let e =
            parse(json!({"id": ID, "schedule": "* * * * *", "job": {}, "concurrency": "queue"}))
                .unwrap_err();
        assert!(e.to_string().contains("unknown variant `queue`"), "{e}");
    }

    #[test]
    fn validate_reports_every_problem_with_its_field() {
        let mut spec = minimal();
        spec.id = "cop.x_owt.y_pdl.z_service.reports_cluster.c3".into();
        spec.schedule = "75 * * * *".into();
        spec.time_zone = "Mars/Base".into();
        spec.job = json!(["not", "an", "object"]);
        spec.keep_runs = 0;
        spec.starting_deadline_seconds = Some(0);
        let got = problems(&spec);
        assert_eq!(got.len(), 6, "{got:#?}");
        assert!(got[0].starts_with("id: '"), "{}", got[0]);
        assert_eq!(got[1], "schedule.minute: '75' is out of range 0..=59");
        assert!(
            got[2].starts_with("time_zone: 'Mars/Base' is not an IANA time zone"),
            "{}",
            got[2]
        );
        assert_eq!(got[3], "job: must be an object (a job spec); got an array");
        assert_eq!(got[4], "keep_runs: must be 1..=100; got 0");
        assert_eq!(
            got[5],
            "starting_deadline_seconds: must be at least 1; got 0"
        );
        let all = spec.validate().unwrap_err().to_string();
        assert!(all.starts_with("invalid cron job: id: "), "{all}");
        assert!(
            all.contains("; keep_runs: must be 1..=100; got 0;"),
            "{all}"
        );
    }

    #[test]
    fn boundaries_of_keep_runs_and_an_empty_id() {
        let mut spec = minimal();
        spec.keep_runs = 100;
        assert!(spec.validate().is_ok());
        spec.keep_runs = 101;
        assert_eq!(problems(&spec), ["keep_runs: must be 1..=100; got 101"]);
        let mut spec = minimal();
        spec.id = String::new();
        assert_eq!(problems(&spec), ["id: must not be empty"]);
    }
}
