//! What is due now: which tick of a schedule to launch, if any.
//!
//! ```text
//!   created / last tick        missed ticks        latest tick <= now      now   next tick
//!   ───────┼──────────────────────x────x────x─────────────X─────────────────┼───────o──►
//!          floor          superseded (skipped)   launched, or skipped if
//!                                                now > tick + starting deadline
//! ```
//!
//! The rule is Kubernetes' CronJob with a starting deadline:
//! - **No tick runs twice.** Only ticks strictly after the *floor* count: the
//!   later of the cron job's creation and the last tick already handled
//!   (launched or recorded as skipped). The caller stores [`Due::handled_tick_ms`]
//!   as its new last tick, in the same write that launches the run.
//! - **After downtime, at most one catch-up.** When a leader failover or an
//!   outage missed several ticks, only the most recent one is launched; the
//!   older ones are counted in [`Due::skipped`] and never run.
//! - **Starting deadline.** With `starting_deadline_seconds`, the most recent
//!   missed tick is launched only while `now <= tick + deadline`; past that it
//!   is skipped too (and counted). Without it, a missed tick is launched
//!   however late.
//!
//! Times cross this API as `i64` milliseconds since the Unix epoch so that
//! callers need not depend on `chrono`. Suspension is the caller's business:
//! a suspended cron job is simply not asked; when it is resumed the most
//! recent tick missed meanwhile is due, unless the deadline has passed, as in
//! Kubernetes.

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::schedule::Schedule;

/// [`Due::skipped`] stops counting here; a longer outage reports this many.
pub const MAX_COUNTED_SKIPS: u32 = 1000;

/// The state a decision is made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueInput {
    /// The latest tick already handled (launched or recorded as skipped), as
    /// the scheduled tick time, not the wall time the run started.
    pub last_tick_ms: Option<i64>,
    /// When the cron job was created; ticks at or before it never run.
    pub created_ms: i64,
    /// The current time.
    pub now_ms: i64,
    /// How late a tick may still be launched; `None` means any lateness.
    pub starting_deadline_seconds: Option<u64>,
}

/// The decision: what to launch now, what was given up, when to wake next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Due {
    /// The tick to launch a run for now.
    pub launch_tick_ms: Option<i64>,
    /// The most recent missed tick, skipped because its starting deadline
    /// has passed (`launch_tick_ms` is then `None`).
    pub expired_tick_ms: Option<i64>,
    /// Ticks after the floor that will never run: older missed ticks
    /// superseded by the most recent one, plus an expired one. Saturates at
    /// [`MAX_COUNTED_SKIPS`].
    pub skipped: u32,
    /// The first tick after both `now` and the floor: when to decide again.
    pub next_tick_ms: Option<i64>,
}

impl Due {
    /// The tick the caller records as its new `last_tick_ms`: the launched
    /// or expired tick, or `None` when nothing was handled.
    pub fn handled_tick_ms(&self) -> Option<i64> {
        self.launch_tick_ms.or(self.expired_tick_ms)
    }
}

/// Decides which tick of `schedule`, read in `tz`, is due at `input.now_ms`.
pub fn due(schedule: &Schedule, tz: Tz, input: DueInput) -> Due {
    let floor = input
        .last_tick_ms
        .map_or(input.created_ms, |last| last.max(input.created_ms));
    let next_tick_ms = at(tz, floor.max(input.now_ms))
        .and_then(|t| schedule.next_after(t))
        .map(|t| t.timestamp_millis());
    let latest = at(tz, input.now_ms)
        .and_then(|now| schedule.latest_at_or_before(now))
        .map(|t| t.timestamp_millis())
        .filter(|&tick| tick > floor);
    let Some(latest) = latest else {
        return Due {
            next_tick_ms,
            ..Due::default()
        };
    };
    let superseded = count_between(schedule, tz, floor, latest);
    let too_late = input.starting_deadline_seconds.is_some_and(|deadline| {
        let deadline_ms = i64::try_from(deadline.saturating_mul(1000)).unwrap_or(i64::MAX);
        input.now_ms > latest.saturating_add(deadline_ms)
    });
    if too_late {
        Due {
            launch_tick_ms: None,
            expired_tick_ms: Some(latest),
            skipped: superseded.saturating_add(1).min(MAX_COUNTED_SKIPS),
            next_tick_ms,
        }
    } else {
        Due {
            launch_tick_ms: Some(latest),
            expired_tick_ms: None,
            skipped: superseded,
            next_tick_ms,
        }
    }
}

/// The next tick strictly after `after_ms`, for a runner that only needs
/// the wake-up time.
pub fn next_tick_after(schedule: &Schedule, tz: Tz, after_ms: i64) -> Option<i64> {
    at(tz, after_ms)
        .and_then(|t| schedule.next_after(t))
        .map(|t| t.timestamp_millis())
}

/// Ticks strictly between `from_ms` and `to_ms`, counted up to the cap.
fn count_between(schedule: &Schedule, tz: Tz, from_ms: i64, to_ms: i64) -> u32 {
    let mut count = 0;
    let mut cursor = at(tz, from_ms);
    while let Some(tick) = cursor.and_then(|t| schedule.next_after(t)) {
        if tick.timestamp_millis() >= to_ms || count == MAX_COUNTED_SKIPS {
            break;
        }
        count += 1;
        cursor = Some(tick);
    }
    count
}

fn at(tz: Tz, ms: i64) -> Option<DateTime<Tz>> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.with_timezone(&tz))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;
    /// 2026-12-05 14:00:00 UTC.
    const T0: i64 = 1_796_479_200_000;

    fn every_5() -> Schedule {
        Schedule::parse("*/5 * * * *").unwrap()
    }

    fn input(last: Option<i64>, now: i64) -> DueInput {
        DueInput {
            last_tick_ms: last,
            created_ms: T0 - 60 * MINUTE,
            now_ms: now,
            starting_deadline_seconds: None,
        }
    }

    #[test]
    fn t0_is_the_documented_instant() {
        let t0 = Utc.timestamp_millis_opt(T0).unwrap();
        assert_eq!(t0.to_rfc3339(), "2026-12-05T14:00:00+00:00");
    }

    #[test]
    fn a_tick_is_launched_once_then_waits_for_the_next() {
        let s = every_5();
        let d = due(&s, Tz::UTC, input(Some(T0), T0 + 5 * MINUTE + 300));
        assert_eq!(d.launch_tick_ms, Some(T0 + 5 * MINUTE));
        assert_eq!(d.skipped, 0);
        assert_eq!(d.next_tick_ms, Some(T0 + 10 * MINUTE));
        // Asked again after recording it: nothing, same wake-up.
        let again = due(&s, Tz::UTC, input(d.handled_tick_ms(), T0 + 6 * MINUTE));
        assert_eq!(
            again,
            Due {
                next_tick_ms: Some(T0 + 10 * MINUTE),
                ..Due::default()
            }
        );
    }

    #[test]
    fn a_failover_gap_launches_only_the_latest_missed_tick() {
        // Last launched 14:00; the new leader looks at 14:17.
        let d = due(&every_5(), Tz::UTC, input(Some(T0), T0 + 17 * MINUTE));
        assert_eq!(d.launch_tick_ms, Some(T0 + 15 * MINUTE));
        assert_eq!(d.skipped, 2, "14:05 and 14:10 never run");
        assert_eq!(d.expired_tick_ms, None);
        assert_eq!(d.next_tick_ms, Some(T0 + 20 * MINUTE));
    }

    #[test]
    fn no_tick_at_or_before_the_last_one_is_ever_launched() {
        let s = every_5();
        let mut last = Some(T0);
        let mut launched = vec![];
        // Wake at irregular times, some before the last tick (clock skew).
        let mut now = T0 - 3 * MINUTE;
        while now < T0 + 120 * MINUTE {
            let d = due(&s, Tz::UTC, input(last, now));
            if let Some(tick) = d.launch_tick_ms {
                assert!(tick > last.unwrap(), "{tick} after {last:?}");
                assert!(tick <= now);
                launched.push(tick);
            }
            last = d.handled_tick_ms().or(last);
            assert!(d.next_tick_ms.unwrap() > now.max(last.unwrap()));
            now += 7 * MINUTE + 13_000;
        }
        let mut dedup = launched.clone();
        dedup.dedup();
        assert_eq!(dedup, launched);
        assert!(launched.len() >= 15, "{launched:?}");
    }

    #[test]
    fn a_clock_behind_the_last_tick_waits_for_the_tick_after_it() {
        let d = due(
            &every_5(),
            Tz::UTC,
            input(Some(T0 + 10 * MINUTE), T0 + 2 * MINUTE),
        );
        assert_eq!(d.launch_tick_ms, None);
        assert_eq!(d.next_tick_ms, Some(T0 + 15 * MINUTE));
    }

    #[test]
    fn ticks_before_creation_never_run() {
        let s = every_5();
        let created = T0 + 5 * MINUTE; // exactly on a tick: that tick is not run
        let mut i = input(None, T0 + 7 * MINUTE);
        i.created_ms = created;
        let d = due(&s, Tz::UTC, i);
        assert_eq!(d.launch_tick_ms, None);
        assert_eq!(d.next_tick_ms, Some(T0 + 10 * MINUTE));
        i.now_ms = T0 + 10 * MINUTE;
        assert_eq!(due(&s, Tz::UTC, i).launch_tick_ms, Some(T0 + 10 * MINUTE));
    }

    #[test]
    fn a_missed_tick_past_its_starting_deadline_is_skipped_and_counted() {
        let s = every_5();
        let mut i = input(Some(T0), T0 + 17 * MINUTE);
        i.starting_deadline_seconds = Some(60);
        let d = due(&s, Tz::UTC, i);
        assert_eq!(d.launch_tick_ms, None);
        assert_eq!(d.expired_tick_ms, Some(T0 + 15 * MINUTE));
        assert_eq!(d.skipped, 3);
        assert_eq!(d.handled_tick_ms(), Some(T0 + 15 * MINUTE));
        assert_eq!(d.next_tick_ms, Some(T0 + 20 * MINUTE));
        // Within the deadline (exactly at it) the tick still launches.
        i.now_ms = T0 + 16 * MINUTE;
        let d = due(&s, Tz::UTC, i);
        assert_eq!(d.launch_tick_ms, Some(T0 + 15 * MINUTE));
        assert_eq!(d.skipped, 2);
    }

    #[test]
    fn a_long_outage_counts_up_to_the_cap() {
        let s = Schedule::parse("* * * * *").unwrap();
        let d = due(&s, Tz::UTC, input(Some(T0), T0 + 3 * 24 * 60 * MINUTE));
        assert_eq!(d.launch_tick_ms, Some(T0 + 3 * 24 * 60 * MINUTE));
        assert_eq!(d.skipped, MAX_COUNTED_SKIPS);
    }

    #[test]
    fn ticks_follow_the_time_zone() {
        // 09:00 in Shanghai is 01:00 UTC.
        let s = Schedule::parse("0 9 * * *").unwrap();
        let shanghai = chrono_tz::Asia::Shanghai;
        let one_utc = T0 + (24 - 14 + 1) * 60 * MINUTE; // 2026-12-06 01:00 UTC
        assert_eq!(next_tick_after(&s, shanghai, T0), Some(one_utc));
        let d = due(&s, shanghai, input(None, one_utc + MINUTE));
        assert_eq!(d.launch_tick_ms, Some(one_utc));
        assert_eq!(d.next_tick_ms, Some(one_utc + 24 * 60 * MINUTE));
    }
}
