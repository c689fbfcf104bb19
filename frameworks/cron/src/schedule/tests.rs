use chrono::{NaiveDateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

use super::*;

const NEW_YORK: Tz = chrono_tz::America::New_York;

fn sched(expr: &str) -> Schedule {
    Schedule::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"))
}

fn wall(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
}

/// A wall-clock time in `tz`, at its first occurrence.
fn local(tz: Tz, s: &str) -> DateTime<Tz> {
    tz.from_local_datetime(&wall(s)).earliest().unwrap()
}

/// An instant given in UTC, seen in `tz`.
fn utc(tz: Tz, s: &str) -> DateTime<Tz> {
    Utc.from_utc_datetime(&wall(s)).with_timezone(&tz)
}

fn next(expr: &str, tz: Tz, after: &str) -> String {
    let at = sched(expr).next_after(local(tz, after)).unwrap();
    at.format("%Y-%m-%d %H:%M %Z").to_string()
}

fn field_of(expr: &str) -> String {
    match Schedule::parse(expr) {
        Ok(_) => panic!("'{expr}' parsed"),
        Err(e) => e.field,
    }
}

#[test]
fn every_five_minutes_fires_on_the_next_multiple_strictly_after() {
    assert_eq!(
        next("*/5 * * * *", Tz::UTC, "2026-12-05 14:03"),
        "2026-12-05 14:05 UTC"
    );
    assert_eq!(
        next("*/5 * * * *", Tz::UTC, "2026-12-05 14:05"),
        "2026-12-05 14:10 UTC"
    );
    assert_eq!(
        next("*/5 * * * *", Tz::UTC, "2026-12-31 23:58"),
        "2027-01-01 00:00 UTC"
    );
}

#[test]
fn weekdays_skip_the_weekend() {
    // 2026-03-06 is a Friday.
    let s = "0 9 * * MON-FRI";
    assert_eq!(next(s, Tz::UTC, "2026-03-06 08:59"), "2026-03-06 09:00 UTC");
    assert_eq!(next(s, Tz::UTC, "2026-03-06 09:00"), "2026-03-09 09:00 UTC");
    assert_eq!(
        next("0 9 * * 1-5", Tz::UTC, "2026-03-06 09:00"),
        "2026-03-09 09:00 UTC"
    );
}

#[test]
fn both_day_fields_restricted_match_either_one() {
    // The 1st of the month OR any Monday; 2026-03-01 is a Sunday.
    let s = "0 0 1 * MON";
    assert_eq!(next(s, Tz::UTC, "2026-03-01 00:00"), "2026-03-02 00:00 UTC");
    assert_eq!(next(s, Tz::UTC, "2026-03-30 00:00"), "2026-04-01 00:00 UTC");
    assert_eq!(next(s, Tz::UTC, "2026-04-01 00:00"), "2026-04-06 00:00 UTC");
    // A '*' in day-of-month (even stepped) leaves it unrestricted: AND.
    let odd_mondays = "0 0 */2 * MON";
    assert_eq!(
        next(odd_mondays, Tz::UTC, "2026-03-01 00:00"),
        "2026-03-09 00:00 UTC"
    );
    // Unrestricted day-of-week: only the day of month counts.
    assert_eq!(
        next("0 0 15 * *", Tz::UTC, "2026-03-01 00:00"),
        "2026-03-15 00:00 UTC"
    );
}

#[test]
fn macros_expand_to_their_five_fields() {
    assert_eq!(
        next("@hourly", Tz::UTC, "2026-12-05 14:03"),
        "2026-12-05 15:00 UTC"
    );
    assert_eq!(
        next("@HOURLY", Tz::UTC, "2026-12-05 14:00"),
        "2026-12-05 15:00 UTC"
    );
    assert_eq!(
        next("@daily", Tz::UTC, "2026-12-05 14:03"),
        "2026-12-06 00:00 UTC"
    );
    assert_eq!(
        next("@midnight", Tz::UTC, "2026-12-05 14:03"),
        "2026-12-06 00:00 UTC"
    );
    // 2026-12-05 is a Saturday.
    assert_eq!(
        next("@weekly", Tz::UTC, "2026-12-05 14:03"),
        "2026-12-06 00:00 UTC"
    );
    assert_eq!(
        next("@monthly", Tz::UTC, "2026-12-05 14:03"),
        "2027-01-01 00:00 UTC"
    );
    assert_eq!(
        next("@yearly", Tz::UTC, "2026-12-05 14:03"),
        "2027-01-01 00:00 UTC"
    );
    assert_eq!(
        next("@annually", Tz::UTC, "2027-01-01 00:00"),
        "2028-01-01 00:00 UTC"
    );
    assert_eq!(sched("@weekly").expression(), "@weekly");
}

#[test]
fn names_ranges_lists_and_steps() {
    assert_eq!(
        next("0 0 1 jan,Jul *", Tz::UTC, "2026-02-01 00:00"),
        "2026-07-01 00:00 UTC"
    );
    assert_eq!(
        next("0 0 1 JUN-aug *", Tz::UTC, "2026-08-01 00:00"),
        "2027-06-01 00:00 UTC"
    );
    // Sunday three ways; 2026-12-05 is a Saturday.
    for s in ["0 0 * * 0", "0 0 * * 7", "0 0 * * sun"] {
        assert_eq!(
            next(s, Tz::UTC, "2026-12-05 00:00"),
            "2026-12-06 00:00 UTC",
            "{s}"
        );
    }
    // 5-7 is Friday to Sunday.
    assert_eq!(
        next("0 0 * * 5-7", Tz::UTC, "2026-12-06 00:00"),
        "2026-12-11 00:00 UTC"
    );
    assert_eq!(
        next("10-30/10 * * * *", Tz::UTC, "2026-12-05 14:20"),
        "2026-12-05 14:30 UTC"
    );
    assert_eq!(
        next("10-30/10 * * * *", Tz::UTC, "2026-12-05 14:30"),
        "2026-12-05 15:10 UTC"
    );
    assert_eq!(
        next("50/5 * * * *", Tz::UTC, "2026-12-05 14:51"),
        "2026-12-05 14:55 UTC"
    );
    assert_eq!(
        next("50/5 * * * *", Tz::UTC, "2026-12-05 14:55"),
        "2026-12-05 15:50 UTC"
    );
    assert_eq!(
        next("0 8,20 * * *", Tz::UTC, "2026-12-05 08:00"),
        "2026-12-05 20:00 UTC"
    );
}

#[test]
fn leap_day_is_found_even_across_a_skipped_leap_year() {
    assert_eq!(
        next("0 0 29 2 *", Tz::UTC, "2026-03-01 00:00"),
        "2028-02-29 00:00 UTC"
    );
    // 2100 is not a leap year.
    assert_eq!(
        next("0 0 29 2 *", Tz::UTC, "2096-03-01 00:00"),
        "2104-02-29 00:00 UTC"
    );
}

#[test]
fn spring_forward_skips_the_missing_wall_time() {
    // 2026-03-08 02:00 EST jumps to 03:00 EDT: 02:30 does not exist that day.
    let s = "30 2 * * *";
    assert_eq!(
        next(s, NEW_YORK, "2026-03-07 03:00"),
        "2026-03-09 02:30 EDT"
    );
    let half_hourly = sched("*/30 * * * *");
    let at = half_hourly
        .next_after(local(NEW_YORK, "2026-03-08 01:45"))
        .unwrap();
    assert_eq!(
        at,
        utc(NEW_YORK, "2026-03-08 07:00"),
        "03:00 EDT follows 01:30 EST"
    );
}

#[test]
fn fall_back_fires_once_at_the_first_occurrence() {
    // 2026-11-01 02:00 EDT falls back to 01:00 EST: 01:30 happens twice.
    let s = sched("30 1 * * *");
    let first = s.next_after(utc(NEW_YORK, "2026-10-31 16:00")).unwrap();
    assert_eq!(first, utc(NEW_YORK, "2026-11-01 05:30"), "01:30 EDT");
    let second = s.next_after(first).unwrap();
    assert_eq!(
        second,
        utc(NEW_YORK, "2026-11-02 06:30"),
        "not 01:30 EST the same day"
    );
    // From inside the repeated hour, the past first occurrence is not re-run.
    let inside = utc(NEW_YORK, "2026-11-01 06:10"); // 01:10 EST
    assert_eq!(s.next_after(inside).unwrap(), second);
    // An hourly job skips the repeated 01:00 EST.
    let hourly = sched("0 * * * *");
    let one_edt = utc(NEW_YORK, "2026-11-01 05:00");
    assert_eq!(
        hourly.next_after(one_edt).unwrap(),
        utc(NEW_YORK, "2026-11-01 07:00")
    );
}

#[test]
fn shanghai_is_eight_hours_ahead_of_utc() {
    let s = sched("0 9 * * *");
    let at = s
        .next_after(utc(chrono_tz::Asia::Shanghai, "2026-06-01 00:00"))
        .unwrap();
    assert_eq!(at, utc(chrono_tz::Asia::Shanghai, "2026-06-01 01:00"));
    assert_eq!(at.format("%H:%M %z").to_string(), "09:00 +0800");
}

#[test]
fn latest_at_or_before_is_inclusive_and_sees_the_repeated_hour() {
    let s = sched("*/5 * * * *");
    let t = local(Tz::UTC, "2026-12-05 14:03");
    assert_eq!(
        s.latest_at_or_before(t).unwrap(),
        local(Tz::UTC, "2026-12-05 14:00")
    );
    let on_tick = local(Tz::UTC, "2026-12-05 14:05");
    assert_eq!(s.latest_at_or_before(on_tick).unwrap(), on_tick);
    // At 01:10 EST the wall clock is behind 01:30 EDT, which already fired.
    let daily = sched("30 1 * * *");
    let inside = utc(NEW_YORK, "2026-11-01 06:10");
    assert_eq!(
        daily.latest_at_or_before(inside).unwrap(),
        utc(NEW_YORK, "2026-11-01 05:30")
    );
}

/// Checks `next_after` and `latest_at_or_before` against a minute-by-minute
/// scan that applies the documented rules directly.
#[test]
fn searches_agree_with_a_brute_force_scan_across_both_dst_changes() {
    let fires = |s: &Schedule, at: &DateTime<Tz>| {
        let w = at.naive_local();
        s.matches_day(w.date())
            && has(s.hours, w.hour())
            && has(s.minutes, w.minute())
            && NEW_YORK.from_local_datetime(&w).earliest().as_ref() == Some(at)
    };
    for expr in [
        "*/20 * * * *",
        "30 1,2 * * *",
        "0 0-3 * * SUN",
        "45 */2 * * SUN,MON",
    ] {
        let s = sched(expr);
        for start in ["2026-03-07 20:00", "2026-10-31 20:00"] {
            let mut t = utc(NEW_YORK, start);
            let end = t + TimeDelta::days(2);
            while t < end {
                let mut ahead = t + TimeDelta::minutes(1);
                while !fires(&s, &ahead) {
                    ahead += TimeDelta::minutes(1);
                }
                assert_eq!(s.next_after(t), Some(ahead), "{expr} after {t}");
                let mut back = t;
                while !fires(&s, &back) {
                    back -= TimeDelta::minutes(1);
                }
                assert_eq!(s.latest_at_or_before(t), Some(back), "{expr} at {t}");
                t += TimeDelta::minutes(7);
            }
        }
    }
}

#[test]
fn errors_name_the_field_and_the_reason() {
    let err = Schedule::parse("75 * * * *").unwrap_err();
    assert_eq!(
        err.to_string(),
        "schedule.minute: '75' is out of range 0..=59"
    );
    assert_eq!(field_of("0 24 * * *"), "schedule.hour");
    assert_eq!(field_of("0 0 0 * *"), "schedule.day_of_month");
    assert_eq!(field_of("0 0 32 * *"), "schedule.day_of_month");
    assert_eq!(field_of("0 0 * 13 *"), "schedule.month");
    assert_eq!(field_of("0 0 * * 8"), "schedule.day_of_week");
    assert_eq!(field_of("JAN * * * *"), "schedule.minute");
    assert_eq!(field_of("0 0 * FOO *"), "schedule.month");
    assert_eq!(field_of("0 0 * * MON-SUN"), "schedule.day_of_week");
    assert_eq!(field_of("*/0 * * * *"), "schedule.minute");
    assert_eq!(field_of("0 */x * * *"), "schedule.hour");
    assert_eq!(field_of("0 1,,2 * * *"), "schedule.hour");
    assert_eq!(field_of("0 -1 * * *"), "schedule.hour");
    assert_eq!(field_of("* * * *"), "schedule");
    assert_eq!(field_of("0 * * * * *"), "schedule");
    assert_eq!(field_of("   "), "schedule");
    assert_eq!(field_of("@every_minute"), "schedule");
    assert_eq!(field_of("@reboot"), "schedule");

    let reason = |expr: &str| Schedule::parse(expr).unwrap_err().reason;
    assert_eq!(reason("0 0 * * 5-2"), "range '5-2' runs backwards (5 > 2)");
    assert_eq!(
        reason("0 0 * FOO *"),
        "'FOO' is not a number or a month name (JAN-DEC)"
    );
    assert_eq!(reason("*/0 * * * *"), "step in '*/0' must be at least 1");
    assert!(reason("0 * * * * *").contains("has 6 fields; expected 5"));
}

#[test]
fn schedules_that_can_never_fire_are_rejected_at_parse_time() {
    let err = Schedule::parse("0 0 30 2 *").unwrap_err();
    assert_eq!(err.field, "schedule.day_of_month");
    assert_eq!(
        err.reason,
        "'30' never occurs in month '2', so the schedule never fires"
    );
    assert!(Schedule::parse("0 0 31 4,6,9,11 *").is_err());
    assert!(Schedule::parse("0 0 31 APR,MAY *").is_ok());
    // With day-of-week restricted too, the weekday alone can fire.
    assert!(Schedule::parse("0 0 30 2 MON").is_ok());
}

#[test]
fn time_zones_are_iana_names() {
    assert_eq!(parse_time_zone("UTC").unwrap(), Tz::UTC);
    assert_eq!(
        parse_time_zone("Asia/Shanghai").unwrap(),
        chrono_tz::Asia::Shanghai
    );
    let err = parse_time_zone("Mars/Base").unwrap_err();
    assert_eq!(err.field, "time_zone");
    assert!(
        err.reason
            .starts_with("'Mars/Base' is not an IANA time zone"),
        "{err}"
    );
}

#[test]
fn display_and_from_str_round_trip() {
    let s: Schedule = " 0 9 * * MON-FRI ".parse().unwrap();
    assert_eq!(s.to_string(), "0 9 * * MON-FRI");
    assert_eq!(sched("0 9 * * 1-5").days_of_week, s.days_of_week);
}
