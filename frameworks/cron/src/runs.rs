//! A cron job's runs: their job ids, which old ones to delete, and what a
//! tick does while an earlier run still runs.
//!
//! A run is an ordinary job whose id is the cron job's id with the `job`
//! tag's value stamped with the tick in UTC, so runs sort by time and a
//! tick's run is found again by name after a failover:
//!
//! ```text
//! cop.x_owt.y_pdl.z_service.reports_job.report_cluster.c3        cron job
//! cop.x_owt.y_pdl.z_service.reports_job.report-202612051400_cluster.c3   its 14:00 run
//! ```

use chrono::{Datelike, TimeZone, Timelike, Utc};

use crate::schedule::CronError;
use crate::spec::Concurrency;

/// Longest DNS label: the `job` value becomes one in the run's DNS names.
const MAX_LABEL: usize = 63;
/// `-` and `yyyymmddhhmm`.
const STAMP_LEN: usize = 13;

/// One run of a cron job, as the runner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The run's job id.
    pub id: String,
    /// The tick it was launched for, in ms since the Unix epoch.
    pub tick_ms: i64,
    /// Whether it has finished (succeeded, failed or was stopped).
    pub finished: bool,
}

/// The finished runs to delete so that at most `keep_runs` finished runs
/// remain, oldest first. Running runs are never deleted and do not count.
pub fn runs_to_delete(runs: &[Run], keep_runs: u32) -> Vec<&str> {
    let mut finished: Vec<&Run> = runs.iter().filter(|r| r.finished).collect();
    // Ties on the tick (a replayed launch) break by id, so the answer does
    // not depend on the order the runs were listed in.
    finished.sort_by(|a, b| (a.tick_ms, &a.id).cmp(&(b.tick_ms, &b.id)));
    let excess = finished.len().saturating_sub(keep_runs as usize);
    finished[..excess].iter().map(|r| r.id.as_str()).collect()
}

/// What a tick does, given the runs still running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TickAction<'a> {
    /// Start the tick's run.
    Launch,
    /// Do not start it: the previous run still runs (`forbid`). The tick
    /// counts as handled all the same, so it is not retried.
    Skip,
    /// Stop these running runs, then start the tick's run (`replace`).
    ReplaceThenLaunch(Vec<&'a str>),
}

/// Applies the cron job's [`Concurrency`] to a due tick.
pub fn on_tick(concurrency: Concurrency, runs: &[Run]) -> TickAction<'_> {
    let running: Vec<&str> = runs
        .iter()
        .filter(|r| !r.finished)
        .map(|r| r.id.as_str())
        .collect();
    match concurrency {
        _ if running.is_empty() => TickAction::Launch,
        Concurrency::Allow => TickAction::Launch,
        Concurrency::Forbid => TickAction::Skip,
        Concurrency::Replace => TickAction::ReplaceThenLaunch(running),
    }
}

/// The job id of the run for `tick_ms`: the `job.<name>` tag becomes
/// `job.<name>-<yyyymmddhhmm in UTC>`, the name cut so the value stays a
/// DNS label of at most 63 characters.
pub fn run_job_id(cron_job_id: &str, tick_ms: i64) -> Result<String, CronError> {
    let start = cron_job_id
        .find("_job.")
        .map(|i| i + "_job.".len())
        .ok_or_else(|| CronError::new("id", format!("'{cron_job_id}' has no '_job.<name>' tag")))?;
    let end = cron_job_id[start..]
        .find('_')
        .map_or(cron_job_id.len(), |i| start + i);
    let name = &cron_job_id[start..end];
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(CronError::new(
            "id",
            format!("job name '{name}' must be lowercase letters, digits and '-'"),
        ));
    }
    let stamp = stamp(tick_ms)?;
    // All ASCII, so cutting at a byte index is safe.
    let cut = &name[..name.len().min(MAX_LABEL - STAMP_LEN)];
    let cut = cut.trim_end_matches('-');
    if cut.is_empty() || cut.starts_with('-') {
        return Err(CronError::new(
            "id",
            format!("job name '{name}' must start with a letter or digit"),
        ));
    }
    Ok(format!(
        "{}{cut}-{stamp}{}",
        &cron_job_id[..start],
        &cron_job_id[end..]
    ))
}

/// `yyyymmddhhmm` of the tick in UTC.
fn stamp(tick_ms: i64) -> Result<String, CronError> {
    let t = Utc
        .timestamp_millis_opt(tick_ms)
        .single()
        .filter(|t| (0..=9999).contains(&t.year()))
        .ok_or_else(|| CronError::new("tick", format!("{tick_ms} ms is outside years 0..=9999")))?;
    Ok(format!(
        "{:04}{:02}{:02}{:02}{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-05 14:00:00 UTC.
    const T0: i64 = 1_796_479_200_000;

    fn run(id: &str, tick_ms: i64, finished: bool) -> Run {
        Run {
            id: id.to_string(),
            tick_ms,
            finished,
        }
    }

    #[test]
    fn run_ids_stamp_the_job_name_with_the_tick_in_utc() {
        let id = "cop.x_owt.y_pdl.z_service.reports_job.report_cluster.c3";
        assert_eq!(
            run_job_id(id, T0).unwrap(),
            "cop.x_owt.y_pdl.z_service.reports_job.report-202612051400_cluster.c3"
        );
        // Seconds do not show; the jobgroup tag is not mistaken for job.
        let grouped = "cop.x_owt.y_pdl.z_service.s_jobgroup.g_job.nightly-db_cluster.c3";
        assert_eq!(
            run_job_id(grouped, T0 + 59_999).unwrap(),
            "cop.x_owt.y_pdl.z_service.s_jobgroup.g_job.nightly-db-202612051400_cluster.c3"
        );
        // A job tag at the end of the id.
        assert_eq!(run_job_id("a_job.b", 0).unwrap(), "a_job.b-197001010000");
    }

    #[test]
    fn long_names_are_cut_to_keep_a_dns_label() {
        let job_value = |name: &str| {
            let id = format!("cop.x_owt.y_pdl.z_service.s_job.{name}_cluster.c3");
            let run_id = run_job_id(&id, T0).unwrap();
            assert!(run_id.ends_with("_cluster.c3"), "{run_id}");
            run_id
                .split('_')
                .find_map(|t| t.strip_prefix("job."))
                .unwrap()
                .to_string()
        };
        let long = "a".repeat(63);
        assert_eq!(job_value(&long), format!("{}-202612051400", "a".repeat(50)));
        assert_eq!(job_value(&long).len(), 63);
        // Cut at 50 the name would end in '-': that '-' goes too.
        let dashed = format!("{}-{}", "a".repeat(49), "b".repeat(13));
        assert_eq!(
            job_value(&dashed),
            format!("{}-202612051400", "a".repeat(49))
        );
        // Names that fit are kept whole.
        let fits = "b".repeat(50);
        assert_eq!(job_value(&fits), format!("{fits}-202612051400"));
    }

    #[test]
    fn ids_without_a_usable_job_tag_are_errors() {
        for bad in [
            "cop.x_service.y_cluster.c3",
            "a_job._cluster.c",
            "a_job.Big_cluster.c",
            "a_job.-x_cluster.c",
        ] {
            let e = run_job_id(bad, T0).unwrap_err();
            assert_eq!(e.field, "id", "{bad}: {e}");
        }
        assert_eq!(run_job_id("a_job.b", i64::MAX).unwrap_err().field, "tick");
    }

    #[test]
    fn pruning_deletes_the_oldest_finished_runs_only() {
        let runs = vec![
            run("r5", T0 + 5, true),
            run("r1", T0 + 1, false), // oldest, but still running
            run("r2", T0 + 2, true),
            run("r4", T0 + 4, true),
            run("r3", T0 + 3, true),
            run("r6", T0 + 6, false),
        ];
        assert_eq!(runs_to_delete(&runs, 2), ["r2", "r3"]);
        assert_eq!(runs_to_delete(&runs, 4), Vec::<&str>::new());
        assert_eq!(runs_to_delete(&runs, 0), ["r2", "r3", "r4", "r5"]);
        let all_running: Vec<Run> = (0..10)
            .map(|i| run(&format!("r{i}"), T0 + i, false))
            .collect();
        assert!(runs_to_delete(&all_running, 1).is_empty());
    }

    #[test]
    fn ties_on_the_tick_break_by_id() {
        let runs = vec![
            run("b", T0, true),
            run("a", T0, true),
            run("c", T0 + 1, true),
        ];
        assert_eq!(runs_to_delete(&runs, 1), ["a", "b"]);
    }

    #[test]
    fn concurrency_decides_what_a_tick_does_while_a_run_runs() {
        let runs = vec![run("old", T0, true), run("busy", T0 + 1, false)];
        assert_eq!(on_tick(Concurrency::Allow, &runs), TickAction::Launch);
        assert_eq!(on_tick(Concurrency::Forbid, &runs), TickAction::Skip);
        assert_eq!(
            on_tick(Concurrency::Replace, &runs),
            TickAction::ReplaceThenLaunch(vec!["busy"])
        );
        let idle = &runs[..1];
        for c in [
            Concurrency::Allow,
            Concurrency::Forbid,
            Concurrency::Replace,
        ] {
            assert_eq!(on_tick(c, idle), TickAction::Launch, "{c:?}");
        }
    }
}
