//! The upper tree's usage history in the replicated state: one
//! `RecordUsage` command per finished minute, proposed by the leader,
//! kept as keys of the system namespace [`NAMESPACE`]:
//!
//! ```text
//!  m/<start_s, 12 digits>  one minute's rollups (kept MINUTES_KEPT_S)
//!  h/<start_s, 12 digits>  the hour's minutes folded together (kept HOURS_KEPT_S)
//! ```
//!
//! Applying a minute stores it, folds it into its hour and deletes the
//! minutes and hours past their retention, counted back from the minute's
//! own start: every master does the same from the command alone, so the
//! history is the same everywhere, survives a leader change, goes into
//! RocksDB and raft snapshots with the other keys, and into `ocean
//! operator snapshot` images. A minute already stored is refused
//! (`Unchanged`): a new leader re-sending a minute its predecessor
//! recorded cannot count it twice in the hour.

use std::collections::BTreeMap;
use std::sync::Arc;

use ocean_proto::internal::{KvEntry, RecordUsage, UsagePeriod, UsageRollup};
use prost::Message as _;

use super::kv::kv_map_key;
use super::{Change, ClusterState, Outcome};

/// The namespace holding the history (frameworks' namespaces are DNS
/// labels, so none can name this one).
pub const NAMESPACE: &str = "ocean.usage";
/// A minute's length.
pub const MINUTE_S: u64 = 60;
/// An hour's length.
pub const HOUR_S: u64 = 3600;
/// How long minutes are kept: two days.
pub const MINUTES_KEPT_S: u64 = 2 * 86_400;
/// How long hours are kept: 400 days, a budget year with margin.
pub const HOURS_KEPT_S: u64 = 400 * 86_400;

/// The key of the minute starting at `start_s`.
pub fn minute_key(start_s: u64) -> String {
    format!("m/{start_s:012}")
}

/// The key of the hour starting at `start_s`.
pub fn hour_key(start_s: u64) -> String {
    format!("h/{start_s:012}")
}

/// Folds `add` into `into` (same node): sums add, highest points keep the
/// higher.
pub fn fold(into: &mut UsageRollup, add: &UsageRollup) {
    into.snapshots = into.snapshots.saturating_add(add.snapshots);
    into.cpu_snapshots = into.cpu_snapshots.saturating_add(add.cpu_snapshots);
    into.cpu_milli_sum = into.cpu_milli_sum.saturating_add(add.cpu_milli_sum);
    into.cpu_milli_max = into.cpu_milli_max.max(add.cpu_milli_max);
    into.rss_kib_sum = into.rss_kib_sum.saturating_add(add.rss_kib_sum);
    into.rss_kib_max = into.rss_kib_max.max(add.rss_kib_max);
}

/// `hour` with `minute` folded in, nodes in name order.
fn fold_period(hour: UsagePeriod, minute: &UsagePeriod) -> UsagePeriod {
    let mut nodes: BTreeMap<String, UsageRollup> = hour
        .nodes
        .into_iter()
        .map(|n| (n.node.clone(), n))
        .collect();
    for n in &minute.nodes {
        let e = nodes.entry(n.node.clone()).or_insert_with(|| UsageRollup {
            node: n.node.clone(),
            ..Default::default()
        });
        fold(e, n);
    }
    UsagePeriod {
        nodes: nodes.into_values().collect(),
        ..hour
    }
}

/// Decodes a stored period (a key that does not decode reads as empty:
/// only this module writes the namespace).
pub fn period(entry: &KvEntry) -> Option<UsagePeriod> {
    UsagePeriod::decode(entry.value.as_slice()).ok()
}

/// Why a minute cannot be recorded, if it cannot.
pub fn minute_problem(m: &UsagePeriod) -> Option<String> {
    if m.length_s as u64 != MINUTE_S {
        return Some(format!("record_usage: length_s {} is not 60", m.length_s));
    }
    if !m.start_s.is_multiple_of(MINUTE_S) {
        return Some(format!(
            "record_usage: start_s {} is not a minute boundary",
            m.start_s
        ));
    }
    None
}

impl ClusterState {
    /// Records a finished minute (see the module docs).
    pub(super) fn record_usage(&mut self, r: &RecordUsage) -> (Outcome, Vec<Change>) {
        let Some(minute) = &r.minute else {
            return (Outcome::Noop, Vec::new());
        };
        if minute_problem(minute).is_some()
            || self
                .kv_get(NAMESPACE, &minute_key(minute.start_s))
                .is_some()
        {
            return (Outcome::Unchanged, Vec::new());
        }
        let start = minute.start_s;
        let hour_start = start - start % HOUR_S;
        // A minute already past its retention (a leader clock far behind
        // the history) would be pruned at once: it is not stored.
        let newest = self.usage_minute_span().map_or(0, |(_, last)| last);
        if start + MINUTES_KEPT_S <= newest {
            return (Outcome::Unchanged, Vec::new());
        }
        let next = self.version + 1;
        let mut changes = Vec::new();
        let hour = self
            .kv_get(NAMESPACE, &hour_key(hour_start))
            .and_then(|e| period(e))
            .unwrap_or(UsagePeriod {
                start_s: hour_start,
                length_s: HOUR_S as u32,
                nodes: Vec::new(),
            });
        let hour = fold_period(hour, minute);
        for (key, value) in [
            (minute_key(start), minute.encode_to_vec()),
            (hour_key(hour_start), hour.encode_to_vec()),
        ] {
            let map_key = kv_map_key(NAMESPACE, &key);
            let created = self.kv.get(&map_key).map_or(next, |e| e.created_revision);
            let entry = Arc::new(KvEntry {
                namespace: NAMESPACE.to_string(),
                key,
                value,
                revision: next,
                created_revision: created,
            });
            self.kv.insert(map_key, entry.clone());
            changes.push(Change::KvPut(entry));
        }
        // Pruned against the newest minute stored, never the clock.
        let newest = newest.max(start);
        let newest_hour = newest - newest % HOUR_S;
        for (prefix, before) in [
            ("m/", (newest + 1).saturating_sub(MINUTES_KEPT_S)),
            ("h/", (newest_hour + 1).saturating_sub(HOURS_KEPT_S)),
        ] {
            let from = kv_map_key(NAMESPACE, prefix);
            let to = kv_map_key(NAMESPACE, &format!("{prefix}{before:012}"));
            let old: Vec<String> = self.kv.range(from..to).map(|(k, _)| k.clone()).collect();
            for k in old {
                if let Some(e) = self.kv.remove(&k) {
                    changes.push(Change::KvDeleted(e));
                }
            }
        }
        self.version = next;
        (Outcome::Created, changes)
    }

    /// The stored periods under `prefix` (`m/` or `h/`) that start at or
    /// after `from_s` and before `to_s`, oldest first.
    pub fn usage_periods(&self, prefix: &str, from_s: u64, to_s: u64) -> Vec<UsagePeriod> {
        if from_s >= to_s {
            return Vec::new();
        }
        let start = kv_map_key(NAMESPACE, &format!("{prefix}{from_s:012}"));
        let end = kv_map_key(NAMESPACE, &format!("{prefix}{to_s:012}"));
        self.kv
            .range(start..end)
            .filter_map(|(_, e)| period(e))
            .collect()
    }

    /// The oldest and newest stored minute starts.
    pub fn usage_minute_span(&self) -> Option<(u64, u64)> {
        let from = kv_map_key(NAMESPACE, "m/");
        let to = kv_map_key(NAMESPACE, "m0");
        let mut it = self.kv.range(from..to).filter_map(|(_, e)| period(e));
        let first = it.next()?.start_s;
        let last = it.next_back().map_or(first, |p| p.start_s);
        Some((first, last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocean_proto::internal::{command, Command};

    fn minute(start_s: u64, nodes: &[(&str, u32, u32)]) -> Command {
        Command {
            kind: Some(command::Kind::RecordUsage(RecordUsage {
                minute: Some(UsagePeriod {
                    start_s,
                    length_s: 60,
                    nodes: nodes
                        .iter()
                        .map(|(n, cpu, rss)| UsageRollup {
                            node: n.to_string(),
                            snapshots: 12,
                            cpu_snapshots: 12,
                            cpu_milli_sum: 12 * u64::from(*cpu),
                            cpu_milli_max: *cpu,
                            rss_kib_sum: 12 * u64::from(*rss),
                            rss_kib_max: *rss,
                        })
                        .collect(),
                }),
            })),
            min_version: 0,
        }
    }

    const T0: u64 = 1_800_000_000; // a multiple of 3600

    #[test]
    fn minutes_fold_into_their_hour_once_each() {
        let mut st = ClusterState::default();
        let a = st.apply(&minute(
            T0,
            &[("", 1000, 10), ("cop.c_owt.o_pdl.p", 1000, 10)],
        ));
        assert_eq!(a.outcome, Outcome::Created);
        assert_eq!(a.changes.len(), 2);
        st.apply(&minute(T0 + 60, &[("", 3000, 30)]));
        // The same minute again (a new leader re-sending it) changes nothing.
        let again = st.apply(&minute(T0 + 60, &[("", 9000, 90)]));
        assert_eq!(again.outcome, Outcome::Unchanged);
        assert!(again.changes.is_empty());
        let hours = st.usage_periods("h/", 0, u64::MAX / 10);
        assert_eq!(hours.len(), 1);
        let root = &hours[0].nodes[0];
        assert_eq!(root.node, "");
        assert_eq!(root.snapshots, 24);
        assert_eq!(root.cpu_milli_sum, 12 * 1000 + 12 * 3000);
        assert_eq!(root.cpu_milli_max, 3000);
        assert_eq!(root.rss_kib_max, 30);
        assert_eq!(hours[0].nodes[1].snapshots, 12);
        assert_eq!(st.usage_periods("m/", T0, T0 + 120).len(), 2);
        assert_eq!(st.usage_minute_span(), Some((T0, T0 + 60)));
        // Not a minute: refused, nothing stored.
        let bad = st.apply(&minute(T0 + 61, &[("", 1, 1)]));
        assert_eq!(bad.outcome, Outcome::Unchanged);
    }

    #[test]
    fn old_minutes_and_hours_are_pruned_from_the_newest_minute() {
        let mut st = ClusterState::default();
        st.apply(&minute(T0, &[("", 1000, 10)]));
        st.apply(&minute(T0 + HOUR_S, &[("", 1000, 10)]));
        // Two days after the first: it goes, its hour stays.
        let a = st.apply(&minute(T0 + MINUTES_KEPT_S, &[("", 1000, 10)]));
        let deleted: Vec<_> = a
            .changes
            .iter()
            .filter_map(|c| match c {
                Change::KvDeleted(e) => Some(e.key.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(deleted, vec![minute_key(T0)]);
        assert_eq!(
            st.usage_minute_span(),
            Some((T0 + HOUR_S, T0 + MINUTES_KEPT_S))
        );
        assert_eq!(st.usage_periods("h/", 0, u64::MAX / 10).len(), 3);
        // A minute older than the minutes kept is not stored.
        let late = st.apply(&minute(T0, &[("", 1000, 10)]));
        assert_eq!(late.outcome, Outcome::Unchanged);
        // 400 days and an hour on: the first two hours go (the second
        // is exactly 400 days old), later ones stay.
        st.apply(&minute(T0 + HOURS_KEPT_S + HOUR_S, &[("", 1000, 10)]));
        let hours: Vec<u64> = st
            .usage_periods("h/", 0, u64::MAX / 10)
            .iter()
            .map(|p| p.start_s)
            .collect();
        assert_eq!(hours, vec![T0 + MINUTES_KEPT_S, T0 + HOURS_KEPT_S + HOUR_S]);
        assert_eq!(
            st.usage_minute_span(),
            Some((T0 + HOURS_KEPT_S + HOUR_S, T0 + HOURS_KEPT_S + HOUR_S))
        );
    }

    #[test]
    fn the_history_is_the_same_on_every_master_and_survives_an_image() {
        let cmds: Vec<Command> = (0..130)
            .map(|i| minute(T0 + i * 60, &[("", 1000 + i as u32, 10), ("cop.c", 5, 5)]))
            .collect();
        let (mut a, mut b) = (ClusterState::default(), ClusterState::default());
        for c in &cmds {
            a.apply(c);
            b.apply(c);
        }
        assert_eq!(a.to_image(), b.to_image());
        let restored = ClusterState::from_image(&a.to_image()).expect("image");
        assert_eq!(
            restored.usage_periods("h/", 0, u64::MAX / 10),
            a.usage_periods("h/", 0, u64::MAX / 10)
        );
        assert_eq!(restored.usage_periods("h/", 0, u64::MAX / 10).len(), 3);
    }
}
