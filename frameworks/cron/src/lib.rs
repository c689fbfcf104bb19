//! The pure core of Ocean's cron framework: jobs that launch a run of a job
//! template at each tick of a schedule, like the old supervisor's cron
//! entries or Kubernetes' CronJob.
//!
//! This crate decides; it does no I/O, reads no clock and spawns nothing.
//! A runner (wired to the master through a client library) feeds it the
//! cron job's spec, its runs and the time, and executes what comes back:
//!
//! ```text
//!  CronJobSpec ──validate()──► Timing { Schedule, Tz }      (spec, schedule)
//!                                   │
//!  last tick, created, now ──► due() ──► launch tick? skipped? next wake-up   (due)
//!                                   │
//!  runs still running ──────► on_tick(concurrency) ──► launch / skip / replace (runs)
//!                                   │
//!                             run_job_id(id, tick) ──► the run's job id        (runs)
//!  finished runs ───────────► runs_to_delete(keep_runs) ──► ids to delete      (runs)
//! ```
//!
//! - [`schedule`]: cron expressions, evaluated in an IANA time zone with a
//!   documented rule for daylight-saving gaps and overlaps.
//! - [`due`](mod@due): which tick is due now; no tick twice, at most one catch-up
//!   after downtime, an optional starting deadline.
//! - [`spec`]: the serde spec and its `validate()`, every error with its
//!   field path.
//! - [`runs`]: run naming, pruning of finished runs, concurrency.
//! - [`framework`]: [`CronFramework`], the SDK's pure `reconcile` over the
//!   `cron` namespace (specs, state, runs as batch jobs).
//!
//! Times cross the API as `i64` milliseconds since the Unix epoch.

pub mod due;
pub mod framework;
pub mod runs;
pub mod schedule;
pub mod spec;

pub use due::{due, next_tick_after, Due, DueInput};
pub use framework::{CronFramework, CronState, RunRecord};
pub use runs::{on_tick, run_job_id, runs_to_delete, Run, TickAction};
pub use schedule::{parse_time_zone, CronError, Schedule};
pub use spec::{Concurrency, CronJobSpec, InvalidCronJob, Timing};
