//! Reading the upper tree's replicated usage history for a report window:
//! the hours (`h/`) for the part older than the minutes kept, the minutes
//! (`m/`) for the rest, and the leader's in-memory minutes newer than the
//! newest one recorded (the minute being filled, and any not yet through
//! raft). Each stored minute is counted once: hours are only read before
//! the first whole hour the stored minutes cover.
//!
//! A window reaching past the minutes kept starts at an hour boundary
//! (the hour holding its start is read whole), so such a window may cover
//! up to 59 minutes more than asked; `concurrent_peak_seconds` says how
//! much history it found.

use ocean_proto::internal::UsageRollup;

use super::minutes::{window_of, MinuteWindow};
use super::UsageStore;
use crate::kernel::state::usage::{HOUR_S, MINUTE_S};
use crate::kernel::state::ClusterState;

/// Node `key`'s history since `since_s`, from the state's stored periods
/// and `store`'s unrecorded minutes.
pub fn window(state: &ClusterState, store: &UsageStore, key: &str, since_s: u64) -> MinuteWindow {
    let rollups = rollups(state, store, key, since_s);
    window_of(rollups.iter())
}

fn rollups(state: &ClusterState, store: &UsageStore, key: &str, since_s: u64) -> Vec<UsageRollup> {
    let since_m = since_s - since_s % MINUTE_S;
    let mut out = Vec::new();
    let mut take = |periods: Vec<ocean_proto::internal::UsagePeriod>| {
        for p in periods {
            out.extend(p.nodes.into_iter().filter(|n| n.node == key));
        }
    };
    let newest = match state.usage_minute_span() {
        Some((oldest, newest)) => {
            let minutes_from = if since_m >= oldest {
                since_m
            } else {
                // Hours up to the first whole hour the minutes cover.
                let cut = oldest.div_ceil(HOUR_S) * HOUR_S;
                take(state.usage_periods("h/", since_s - since_s % HOUR_S, cut));
                cut
            };
            take(state.usage_periods("m/", minutes_from, newest + 1));
            Some(newest)
        }
        None => None,
    };
    out.extend(store.unrecorded(key, newest, since_m));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::state::usage::MINUTES_KEPT_S;
    use ocean_proto::internal::{command, Command, RecordUsage, UsagePeriod};

    const T0: u64 = 1_800_000_000;

    fn record(st: &mut ClusterState, start_s: u64, cpu_milli: u32) {
        st.apply(&Command {
            kind: Some(command::Kind::RecordUsage(RecordUsage {
                minute: Some(UsagePeriod {
                    start_s,
                    length_s: 60,
                    nodes: vec![UsageRollup {
                        node: "cop.c".into(),
                        snapshots: 12,
                        cpu_snapshots: 12,
                        cpu_milli_sum: 12 * u64::from(cpu_milli),
                        cpu_milli_max: cpu_milli,
                        rss_kib_sum: 12,
                        rss_kib_max: 1,
                    }],
                }),
            })),
            min_version: 0,
        });
    }

    #[test]
    fn hours_then_minutes_each_minute_counted_once() {
        let mut st = ClusterState::default();
        let store = UsageStore::default();
        // Three days of minutes: 1 core the first day, 2 after.
        let days = 3 * 86_400 / MINUTE_S;
        for i in 0..days {
            let start = T0 + i * MINUTE_S;
            record(&mut st, start, if i < 1440 { 1000 } else { 2000 });
        }
        let newest = T0 + (days - 1) * MINUTE_S;
        assert_eq!(
            st.usage_minute_span(),
            Some((newest - MINUTES_KEPT_S + MINUTE_S, newest))
        );
        // The whole history: every minute once, from hours and minutes.
        let all = window(&st, &store, "cop.c", T0);
        assert_eq!(all.snapshots, days * 12);
        let mean = (1440.0 * 1.0 + (days - 1440) as f64 * 2.0) / days as f64;
        assert!((all.cpu_cores - mean).abs() < 1e-9, "{all:?}");
        assert_eq!(all.cpu_cores_max, 2.0);
        // From mid-way through the first day's second hour: that hour is
        // read whole, the first is not.
        let later = window(&st, &store, "cop.c", T0 + HOUR_S + 1800);
        assert_eq!(later.snapshots, (days - 60) * 12);
        let mean = ((1440.0 - 60.0) + (days - 1440) as f64 * 2.0) / (days - 60) as f64;
        assert!((later.cpu_cores - mean).abs() < 1e-9, "{later:?}");
        // The last hour: minutes only.
        let last = window(&st, &store, "cop.c", newest + MINUTE_S - HOUR_S);
        assert_eq!(last.snapshots, 60 * 12);
        assert_eq!(last.cpu_cores, 2.0);
        // A history younger than an hour, not starting on one (a fresh
        // cluster): its hour holds it all, and no minute comes twice.
        let mut young = ClusterState::default();
        for i in 2..10 {
            record(&mut young, T0 + i * MINUTE_S, 1000);
        }
        let w = window(&young, &store, "cop.c", T0 + 30);
        assert_eq!(w.snapshots, 8 * 12);
        let w = window(&young, &store, "cop.c", T0 + 5 * MINUTE_S);
        assert_eq!(w.snapshots, 5 * 12);
        // Another node: nothing.
        assert_eq!(window(&st, &store, "cop.d", T0).snapshots, 0);
    }
}
