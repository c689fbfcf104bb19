//! Cron expressions: parsing and "when does it fire next".
//!
//! Five fields, `minute hour day-of-month month day-of-week`, each a list
//! (`a,b`) of `*`, a value, a range `a-b`, or a stepped `*/n`, `a-b/n` or
//! `a/n` (`a` up to the field's maximum). Months take `JAN`-`DEC`, days of
//! the week `SUN`-`SAT` (any case); day-of-week 0 and 7 are both Sunday. The
//! macros `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily`
//! (`@midnight`) and `@hourly` stand for their usual five fields.
//!
//! **Day matching (Vixie cron's rule).** A day-of-month or day-of-week field
//! that contains `*` is *unrestricted*. When both are restricted, a day
//! matches if *either* matches (`0 0 1 * MON` is "the 1st and every
//! Monday"); otherwise both must match, which reduces to the restricted one.
//!
//! **Time zones and daylight saving.** A schedule is read as wall-clock time
//! in the zone it is evaluated in:
//! - a local time that does not exist (spring forward: 02:30 on
//!   2026-03-08 in `America/New_York`) is skipped, not moved;
//! - a local time that occurs twice (fall back: 01:30 on 2026-11-01) fires
//!   once, at its first occurrence. An hourly job therefore does not fire
//!   during the repeated hour.
//!
//! Expressions that can never fire (`0 0 30 2 *`) are rejected by
//! [`Schedule::parse`], so the bounded searches below only give up on
//! instants at the edge of what `chrono` can represent.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Offset, TimeDelta, TimeZone, Timelike};
use chrono_tz::Tz;

/// One problem with a cron job's schedule or spec, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct CronError {
    /// Path of the offending field, e.g. `schedule.minute` or `keep_runs`.
    pub field: String,
    /// What is wrong and, where useful, what is allowed.
    pub reason: String,
}

impl CronError {
    /// Builds an error about `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        CronError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Results of this crate.
pub type Result<T, E = CronError> = std::result::Result<T, E>;

/// Field path of errors about the expression as a whole.
const FIELD: &str = "schedule";
const FIELD_TZ: &str = "time_zone";

/// How many days a search walks before giving up. Nine years: the rarest
/// schedule that parses, February 29th, skips 2100 (2096 to 2104).
const SEARCH_DAYS: u32 = 9 * 366;

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// The longest each month can be (February in a leap year).
const MONTH_DAYS: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/// What one of the five fields accepts.
struct FieldSpec {
    path: &'static str,
    min: u32,
    max: u32,
    /// Names for `min`, `min + 1`, ... (empty: numbers only).
    names: &'static [&'static str],
    what: &'static str,
}

const FIELDS: [FieldSpec; 5] = [
    FieldSpec {
        path: "schedule.minute",
        min: 0,
        max: 59,
        names: &[],
        what: "a number",
    },
    FieldSpec {
        path: "schedule.hour",
        min: 0,
        max: 23,
        names: &[],
        what: "a number",
    },
    FieldSpec {
        path: "schedule.day_of_month",
        min: 1,
        max: 31,
        names: &[],
        what: "a number",
    },
    FieldSpec {
        path: "schedule.month",
        min: 1,
        max: 12,
        names: &MONTHS,
        what: "a number or a month name (JAN-DEC)",
    },
    // 7 is accepted as Sunday and folded onto 0 after parsing.
    FieldSpec {
        path: "schedule.day_of_week",
        min: 0,
        max: 7,
        names: &DAYS,
        what: "a number or a day name (SUN-SAT)",
    },
];

/// A parsed cron expression. Each field is a bit set of the values it allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    expr: String,
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    days_of_week: u64,
    dom_restricted: bool,
    dow_restricted: bool,
}

impl Schedule {
    /// Parses a five-field expression or a macro such as `@hourly`.
    pub fn parse(expr: &str) -> Result<Schedule> {
        let trimmed = expr.trim();
        let expanded = if trimmed.starts_with('@') {
            expand_macro(trimmed)?
        } else {
            trimmed
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.is_empty() {
            return Err(CronError::new(FIELD, "must not be empty; expected 5 fields (minute hour day-of-month month day-of-week) or a macro such as @daily"));
        }
        if fields.len() != 5 {
            return Err(CronError::new(
                FIELD,
                format!(
                    "'{trimmed}' has {} fields; expected 5 (minute hour day-of-month month day-of-week; seconds are not supported)",
                    fields.len()
                ),
            ));
        }
        let mut sets = [0u64; 5];
        for ((set, text), spec) in sets.iter_mut().zip(&fields).zip(&FIELDS) {
            *set = parse_field(text, spec)?;
        }
        let [minutes, hours, days_of_month, months, mut days_of_week] = sets;
        if days_of_week & (1 << 7) != 0 {
            days_of_week = (days_of_week & !(1 << 7)) | 1;
        }
        let schedule = Schedule {
            expr: trimmed.to_string(),
            minutes,
            hours,
            days_of_month,
            months,
            days_of_week,
            dom_restricted: !fields[2].contains('*'),
            dow_restricted: !fields[4].contains('*'),
        };
        if !schedule.can_fire() {
            return Err(CronError::new(
                "schedule.day_of_month",
                format!(
                    "'{}' never occurs in month '{}', so the schedule never fires",
                    fields[2], fields[3]
                ),
            ));
        }
        Ok(schedule)
    }

    /// The expression as written (trimmed).
    pub fn expression(&self) -> &str {
        &self.expr
    }

    /// The first firing strictly after `t`, in `t`'s time zone; `None` only
    /// past the end of what `chrono` represents.
    pub fn next_after<Z: TimeZone>(&self, t: DateTime<Z>) -> Option<DateTime<Z>> {
        let start = t.naive_local();
        self.search(&t.timezone(), start, true, |at| *at > t)
    }

    /// The last firing at or before `t`, in `t`'s time zone.
    pub fn latest_at_or_before<Z: TimeZone>(&self, t: DateTime<Z>) -> Option<DateTime<Z>> {
        // Just after a fall back the wall clock reads earlier than it did an
        // hour ago, and the earlier occurrence of a later wall time may
        // already be past; start from the wall time in the larger of today's
        // and yesterday's offsets so that no such firing is missed.
        let yesterday = t
            .clone()
            .checked_sub_signed(TimeDelta::days(1))
            .unwrap_or(t.clone());
        let offset = t
            .offset()
            .fix()
            .local_minus_utc()
            .max(yesterday.offset().fix().local_minus_utc());
        let start = t
            .naive_utc()
            .checked_add_signed(TimeDelta::seconds(offset.into()))?;
        self.search(&t.timezone(), start, false, |at| *at <= t)
    }

    /// Whether the schedule fires on `date` (any time of day).
    pub fn matches_day(&self, date: NaiveDate) -> bool {
        let dom = has(self.days_of_month, date.day());
        let dow = has(self.days_of_week, date.weekday().num_days_from_sunday());
        let day = if self.dom_restricted && self.dow_restricted {
            dom || dow
        } else {
            dom && dow
        };
        has(self.months, date.month()) && day
    }

    /// Walks wall-clock minutes from `start` (inclusive, to the minute) in
    /// one direction and returns the first firing that `accept`s. Each wall
    /// time maps to its earliest instant, which keeps the instants in the
    /// same order as the wall times, so the first accepted is the closest.
    fn search<Z: TimeZone>(
        &self,
        tz: &Z,
        start: NaiveDateTime,
        forward: bool,
        accept: impl Fn(&DateTime<Z>) -> bool,
    ) -> Option<DateTime<Z>> {
        let start_minute = start.hour() * 60 + start.minute();
        let mut date = start.date();
        let hours = ordered(self.hours, 23, forward);
        let minutes = ordered(self.minutes, 59, forward);
        for day in 0..SEARCH_DAYS {
            if day > 0 {
                date = if forward {
                    date.succ_opt()?
                } else {
                    date.pred_opt()?
                };
            }
            if !self.matches_day(date) {
                continue;
            }
            for &hour in &hours {
                for &minute in &minutes {
                    let of_day = hour * 60 + minute;
                    let before_start = if forward {
                        of_day < start_minute
                    } else {
                        of_day > start_minute
                    };
                    if day == 0 && before_start {
                        continue;
                    }
                    let Some(at) = date
                        .and_hms_opt(hour, minute, 0)
                        .and_then(|wall| tz.from_local_datetime(&wall).earliest())
                    else {
                        continue; // skipped by a spring forward
                    };
                    if accept(&at) {
                        return Some(at);
                    }
                }
            }
        }
        None
    }

    /// Some allowed month has some allowed day. Only a restricted
    /// day-of-month with an unrestricted day-of-week can fail: every weekday
    /// occurs in every month, and with both restricted either one suffices.
    fn can_fire(&self) -> bool {
        if !self.dom_restricted || self.dow_restricted {
            return true;
        }
        (1..=12u32).any(|m| {
            has(self.months, m)
                && (1..=MONTH_DAYS[m as usize - 1]).any(|d| has(self.days_of_month, d))
        })
    }
}

impl FromStr for Schedule {
    type Err = CronError;
    fn from_str(s: &str) -> Result<Schedule> {
        Schedule::parse(s)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expr)
    }
}

/// Looks up an IANA time zone such as `Asia/Shanghai` or `UTC` (exact case).
pub fn parse_time_zone(name: &str) -> Result<Tz> {
    name.parse::<Tz>().map_err(|_| {
        CronError::new(
            FIELD_TZ,
            format!("'{name}' is not an IANA time zone (e.g. 'UTC', 'Asia/Shanghai', 'America/New_York')"),
        )
    })
}

fn has(set: u64, value: u32) -> bool {
    set & (1u64 << value) != 0
}

fn ordered(set: u64, max: u32, ascending: bool) -> Vec<u32> {
    let mut values: Vec<u32> = (0..=max).filter(|&v| has(set, v)).collect();
    if !ascending {
        values.reverse();
    }
    values
}

fn expand_macro(name: &str) -> Result<&'static str> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        "@reboot" => {
            return Err(CronError::new(FIELD, "'@reboot' is not supported: a cron job runs on a schedule, not at start-up"))
        }
        _ => {
            return Err(CronError::new(
                FIELD,
                format!("unknown macro '{name}'; expected one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly"),
            ))
        }
    })
}

/// Parses one field into a bit set of allowed values.
fn parse_field(text: &str, spec: &FieldSpec) -> Result<u64> {
    let err = |reason: String| CronError::new(spec.path, reason);
    let mut set = 0u64;
    for item in text.split(',') {
        if item.is_empty() {
            return Err(err(format!("'{text}' has an empty list item")));
        }
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (item, None),
        };
        let (start, end) = if range == "*" {
            (spec.min, spec.max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (start, end) = (value(a, spec)?, value(b, spec)?);
            if start > end {
                return Err(err(format!(
                    "range '{range}' runs backwards ({start} > {end})"
                )));
            }
            (start, end)
        } else {
            let start = value(range, spec)?;
            // `a/n` means `a-max/n`, as in most crons that accept it.
            (start, if step.is_some() { spec.max } else { start })
        };
        let step = match step {
            None => 1,
            Some(s) => match s.parse::<u32>() {
                Ok(0) => return Err(err(format!("step in '{item}' must be at least 1"))),
                Ok(n) => n,
                Err(_) => return Err(err(format!("step '{s}' in '{item}' is not a number"))),
            },
        };
        for v in (start..=end).step_by(step as usize) {
            set |= 1 << v;
        }
    }
    Ok(set)
}

fn value(text: &str, spec: &FieldSpec) -> Result<u32> {
    let err = |reason: String| CronError::new(spec.path, reason);
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u32>() {
            Ok(v) if (spec.min..=spec.max).contains(&v) => Ok(v),
            _ => Err(err(format!(
                "'{text}' is out of range {}..={}",
                spec.min, spec.max
            ))),
        };
    }
    spec.names
        .iter()
        .position(|name| name.eq_ignore_ascii_case(text))
        .map(|i| spec.min + i as u32)
        .ok_or_else(|| err(format!("'{text}' is not {}", spec.what)))
}

#[cfg(test)]
mod tests;
