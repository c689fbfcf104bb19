//! Resharding, pure: which slots move between shards so that, after a
//! change of shard count, every shard holds about the same number of
//! **bytes** (not slots), and shards being removed hold nothing.
//!
//! ```text
//!  owner (slot -> shard), bytes per slot, target shards ──► plan() ──► [SlotMove]
//!    1. drain    every slot of a shard >= target goes to the lightest shard,
//!                biggest slots first
//!    2. bytes    the heaviest shard gives the lightest the slot closest to half
//!                their gap, while that narrows it (to within BYTES_TOLERANCE)
//!    3. counts   empty slots even out slot counts (where future keys land)
//! ```
//!
//! Slot sizes come from sampling on a replica ([`crate::admin::RedisAdmin::slot_loads`]);
//! the plan is recomputed from what is observed whenever it no longer fits.

use std::collections::{BTreeMap, BTreeSet};

use crate::topology::SLOTS;

/// A slot's keys and estimated bytes, as sampled on one node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlotLoad {
    /// The hash slot.
    pub slot: u16,
    /// Keys in it.
    pub keys: u64,
    /// Estimated bytes (sampled `MEMORY USAGE` times keys).
    pub bytes: u64,
}

/// One slot to move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotMove {
    /// The hash slot.
    pub slot: u16,
    /// The shard serving it now.
    pub from: u32,
    /// The shard that will serve it.
    pub to: u32,
    /// Its estimated bytes.
    pub bytes: u64,
}

/// The plan stops balancing bytes once the heaviest and lightest shard
/// differ by at most this share of a shard's fair share (2%): closer is
/// not worth the moves.
pub const BYTES_TOLERANCE: f64 = 0.02;

/// Bytes per shard (index = shard) for `owner` and `bytes`.
pub fn bytes_per_shard(
    owner: &BTreeMap<u16, u32>,
    bytes: &BTreeMap<u16, u64>,
    shards: u32,
) -> Vec<u64> {
    let mut out = vec![0u64; shards as usize];
    for (slot, shard) in owner {
        if let Some(b) = out.get_mut(*shard as usize) {
            *b += bytes.get(slot).copied().unwrap_or(0);
        }
    }
    out
}

/// The moves that take `owner` (every served slot and its shard) to
/// `shards` shards balanced by bytes (`bytes`: estimated bytes per slot,
/// missing = 0), in slot order. Shards numbered `shards` and above lose
/// every slot.
pub fn plan(owner: &BTreeMap<u16, u32>, bytes: &BTreeMap<u16, u64>, shards: u32) -> Vec<SlotMove> {
    if shards == 0 {
        return Vec::new();
    }
    let size = |slot: u16| bytes.get(&slot).copied().unwrap_or(0);
    let mut now: BTreeMap<u16, u32> = owner.clone();
    // Per target shard: its slots by (bytes, slot), and its load.
    let mut held: Vec<BTreeSet<(u64, u16)>> = vec![BTreeSet::new(); shards as usize];
    let mut load = vec![0u64; shards as usize];
    let mut drained: Vec<(u64, u16)> = Vec::new();
    for (&slot, &shard) in owner {
        match held.get_mut(shard as usize) {
            Some(h) => {
                h.insert((size(slot), slot));
                load[shard as usize] += size(slot);
            }
            None => drained.push((size(slot), slot)),
        }
    }
    let lightest = |load: &[u64]| -> usize {
        (0..load.len())
            .min_by_key(|&i| (load[i], i))
            .unwrap_or_default()
    };

    // 1. Drain: biggest first onto the lightest (longest processing time
    // first keeps the result close to even).
    drained.sort_by(|a, b| b.cmp(a));
    for (b, slot) in drained {
        let to = lightest(&load);
        held[to].insert((b, slot));
        load[to] += b;
        now.insert(slot, to as u32);
    }

    // 2. Bytes: each move strictly narrows the heaviest-lightest gap, so
    // this ends; the cap is a guard, not the stop.
    let total: u64 = load.iter().sum();
    let fair = total as f64 / f64::from(shards);
    let good_enough = (fair * BYTES_TOLERANCE) as u64;
    for _ in 0..SLOTS * 2 {
        let heavy = (0..load.len())
            .max_by_key(|&i| (load[i], std::cmp::Reverse(i)))
            .unwrap_or_default();
        let light = lightest(&load);
        let gap = load[heavy] - load[light];
        if gap <= good_enough.max(1) {
            break;
        }
        // The slot closest to half the gap from below; else the smallest
        // one that still narrows it.
        let pick = held[heavy]
            .range(..=(gap / 2, u16::MAX))
            .next_back()
            .filter(|(b, _)| *b > 0)
            .or_else(|| held[heavy].iter().find(|(b, _)| *b > 0 && *b < gap))
            .copied();
        let Some((b, slot)) = pick else { break };
        held[heavy].remove(&(b, slot));
        held[light].insert((b, slot));
        load[heavy] -= b;
        load[light] += b;
        now.insert(slot, light as u32);
    }

    // 3. Counts: empty slots from the shards with the most slots to those
    // with the fewest, so new keys spread too.
    for _ in 0..SLOTS {
        let count = |i: usize| held[i].len();
        let most = (0..held.len())
            .max_by_key(|&i| (count(i), std::cmp::Reverse(i)))
            .unwrap_or_default();
        let fewest = (0..held.len())
            .min_by_key(|&i| (count(i), i))
            .unwrap_or_default();
        if count(most) <= count(fewest) + 1 {
            break;
        }
        let Some(&(b, slot)) = held[most].iter().find(|(b, _)| *b == 0) else {
            break;
        };
        held[most].remove(&(b, slot));
        held[fewest].insert((b, slot));
        now.insert(slot, fewest as u32);
    }

    owner
        .iter()
        .filter_map(|(&slot, &from)| {
            let to = now[&slot];
            (to != from).then(|| SlotMove {
                slot,
                from,
                to,
                bytes: size(slot),
            })
        })
        .collect()
}

/// `ranges` as single slots.
pub fn slots_of(ranges: &[(u16, u16)]) -> impl Iterator<Item = u16> + '_ {
    ranges.iter().flat_map(|&(lo, hi)| lo..=hi)
}

/// Sorted slots as inclusive ranges.
pub fn ranges_of(slots: &BTreeSet<u16>) -> Vec<(u16, u16)> {
    let mut out: Vec<(u16, u16)> = Vec::new();
    for &s in slots {
        match out.last_mut() {
            Some((_, hi)) if u32::from(*hi) + 1 == u32::from(s) => *hi = s,
            _ => out.push((s, s)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owners(ranges: &[(u32, u16, u16)]) -> BTreeMap<u16, u32> {
        ranges
            .iter()
            .flat_map(|&(shard, lo, hi)| (lo..=hi).map(move |s| (s, shard)))
            .collect()
    }

    fn apply(owner: &BTreeMap<u16, u32>, moves: &[SlotMove]) -> BTreeMap<u16, u32> {
        let mut o = owner.clone();
        for m in moves {
            assert_eq!(o[&m.slot], m.from, "{m:?}");
            o.insert(m.slot, m.to);
        }
        o
    }

    fn counts(owner: &BTreeMap<u16, u32>, shards: u32) -> Vec<usize> {
        (0..shards)
            .map(|s| owner.values().filter(|o| **o == s).count())
            .collect()
    }

    #[test]
    fn skewed_data_is_split_by_bytes_not_by_slot_count() {
        // One shard: the lower half of the slots holds 4,000-byte values,
        // the upper half 100-byte ones.
        let owner = owners(&[(0, 0, 16383)]);
        let bytes: BTreeMap<u16, u64> = (0..16384u16)
            .map(|s| (s, if s < 8192 { 4_000 } else { 100 }))
            .collect();
        let moves = plan(&owner, &bytes, 2);
        let after = apply(&owner, &moves);
        let load = bytes_per_shard(&after, &bytes, 2);
        let fair = (load[0] + load[1]) / 2;
        for l in &load {
            assert!(l.abs_diff(fair) <= fair / 50, "{load:?}");
        }
        // Far from an even slot split: bytes decided.
        let c = counts(&after, 2);
        assert!(c[0].abs_diff(c[1]) > 4_000, "{c:?}");
        // Only slots that had to move moved: all of them to the new shard.
        assert!(moves.iter().all(|m| m.from == 0 && m.to == 1));
    }

    #[test]
    fn an_empty_cache_spreads_its_slots_evenly() {
        let owner = owners(&[(0, 0, 8191), (1, 8192, 16383)]);
        let moves = plan(&owner, &BTreeMap::new(), 3);
        let after = apply(&owner, &moves);
        let c = counts(&after, 3);
        assert!(c.iter().all(|n| n.abs_diff(16384 / 3) <= 1), "{c:?}");
        // Each old shard gives up about a third of what it had, no more.
        assert!(moves.len() <= 16384 / 3 + 2, "{}", moves.len());
    }

    #[test]
    fn scale_in_drains_the_removed_shards_and_keeps_bytes_even() {
        let owner = owners(&[(0, 0, 5460), (1, 5461, 10922), (2, 10923, 16383)]);
        let bytes: BTreeMap<u16, u64> = (0..16384u16)
            .map(|s| (s, 10 + u64::from(s % 7) * 50))
            .collect();
        let moves = plan(&owner, &bytes, 2);
        let after = apply(&owner, &moves);
        assert!(after.values().all(|s| *s < 2), "shard 2 keeps slots");
        let load = bytes_per_shard(&after, &bytes, 2);
        let fair = (load[0] + load[1]) / 2;
        assert!(load[0].abs_diff(load[1]) <= fair / 25, "{load:?}");
    }

    #[test]
    fn a_balanced_cache_needs_no_moves() {
        let owner = owners(&[(0, 0, 8191), (1, 8192, 16383)]);
        let bytes: BTreeMap<u16, u64> = (0..16384u16).map(|s| (s, 100)).collect();
        assert_eq!(plan(&owner, &bytes, 2), vec![]);
        assert_eq!(plan(&owner, &BTreeMap::new(), 2), vec![]);
    }

    #[test]
    fn one_huge_slot_is_not_moved_back_and_forth() {
        // A slot bigger than the rest together cannot be balanced away:
        // the plan stops instead of swapping it.
        let owner = owners(&[(0, 0, 16383)]);
        let mut bytes: BTreeMap<u16, u64> = (0..16384u16).map(|s| (s, 1)).collect();
        bytes.insert(7, 1_000_000);
        let moves = plan(&owner, &bytes, 2);
        let after = apply(&owner, &moves);
        let load = bytes_per_shard(&after, &bytes, 2);
        // The big slot stays; the other gets the small ones.
        assert_eq!(after[&7], 0);
        assert!(load[1] >= 16_000, "{load:?}");
    }

    #[test]
    fn ranges_round_trip() {
        let set: BTreeSet<u16> = [0, 1, 2, 5, 7, 8, 16383].into_iter().collect();
        let r = ranges_of(&set);
        assert_eq!(r, vec![(0, 2), (5, 5), (7, 8), (16383, 16383)]);
        assert_eq!(slots_of(&r).collect::<BTreeSet<_>>(), set);
    }
}
