//! Maglev consistent hashing (Eisenbud et al., NSDI 2016): a virtual
//! server's slot table, where each real server fills slots in the order of
//! its own permutation. Adding or removing one real server moves few slots
//! (roughly 1/N of them), so few new connections change real server, and
//! weights give a real server proportionally more slots.
//!
//! The table size is one of a few primes ([`SIZES`]) so the data plane
//! needs one rule per size, not one per virtual server; [`table_size`]
//! keeps a virtual server's current size while it still fits, so a
//! backend change does not resize (and reshuffle) the table.

/// The slot-table sizes: primes, each about twice the one before.
pub const SIZES: [u32; 10] = [7, 13, 31, 61, 127, 251, 509, 1021, 2039, 4093];

/// Slots per unit of weight the table aims at; fewer makes the shares
/// coarse, more makes the tables (and the kernel's maps) larger.
pub const SLOTS_PER_BACKEND: u32 = 3;

/// A real server's claim on the table: its identity (what its permutation
/// is derived from, e.g. `10.0.0.5:8080`) and its weight (>= 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member<'a> {
    /// Stable identity: the same real server gets the same permutation.
    pub key: &'a str,
    /// Relative share of the slots.
    pub weight: u32,
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The slot count a virtual server needs for `weights`: at least
/// [`SLOTS_PER_BACKEND`] per real server and one per unit of the reduced
/// weights. `current` (its installed size) is kept while it is at least
/// that and at most four times it, so small changes never resize.
pub fn table_size(weights: &[u32], current: Option<u32>) -> u32 {
    let g = weights.iter().copied().fold(0, gcd).max(1);
    let units: u64 = weights.iter().map(|w| u64::from(w / g)).sum();
    let need = (u64::from(SLOTS_PER_BACKEND) * weights.len() as u64).max(units);
    if let Some(c) = current {
        if SIZES.contains(&c) && u64::from(c) >= need && u64::from(c) <= need.saturating_mul(4) {
            return c;
        }
    }
    SIZES
        .iter()
        .copied()
        .find(|&s| u64::from(s) >= need)
        .unwrap_or(SIZES[SIZES.len() - 1])
}

/// FNV-1a, 64 bits: stable across processes and versions (std's hasher is
/// randomised), which the table must be so every LB host agrees.
fn fnv1a(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // A final mix: FNV's low bits are weak for short keys.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// The slot table of size `size` (a prime): entry `i` is the index in
/// `members` of the real server owning slot `i`. Empty when `members` is.
/// Members are taken in the order given; callers sort them so every host
/// computes the same table.
pub fn table(members: &[Member<'_>], size: u32) -> Vec<usize> {
    if members.is_empty() || size == 0 {
        return Vec::new();
    }
    let m = u64::from(size);
    let perms: Vec<(u64, u64)> = members
        .iter()
        .map(|b| {
            let offset = fnv1a(0x5bd1_e995, b.key.as_bytes()) % m;
            let skip = fnv1a(0x1b87_3593, b.key.as_bytes()) % (m - 1).max(1) + 1;
            (offset, skip)
        })
        .collect();
    let max_w = members.iter().map(|b| b.weight.max(1)).max().unwrap_or(1);
    let mut next = vec![0u64; members.len()];
    let mut owner = vec![usize::MAX; size as usize];
    let mut filled = 0u32;
    let mut round = 0u64;
    while filled < size {
        for (i, b) in members.iter().enumerate() {
            // Weighted rounds: member i takes a turn in round r when
            // floor((r+1)·w/max) grows, i.e. w turns every max rounds.
            let w = u64::from(b.weight.max(1));
            let mw = u64::from(max_w);
            if (round + 1) * w / mw == round * w / mw {
                continue;
            }
            let (offset, skip) = perms[i];
            loop {
                let slot = ((offset + next[i] * skip) % m) as usize;
                next[i] += 1;
                if owner[slot] == usize::MAX {
                    owner[slot] = i;
                    filled += 1;
                    break;
                }
            }
            if filled == size {
                break;
            }
        }
        round += 1;
    }
    owner
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(keys: &[String]) -> Vec<Member<'_>> {
        keys.iter().map(|k| Member { key: k, weight: 1 }).collect()
    }

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10.1.0.{i}:8080")).collect()
    }

    #[test]
    fn sizes_follow_the_backends_and_stick_while_they_fit() {
        assert_eq!(table_size(&[1, 1], None), 7);
        assert_eq!(table_size(&[1; 20], None), 61);
        assert_eq!(table_size(&[1; 21], Some(61)), 127);
        assert_eq!(table_size(&[1; 16], Some(127)), 127);
        assert_eq!(table_size(&[1; 16], None), 61);
        // Too small, or far too big, for what is needed: resized.
        assert_eq!(table_size(&[1; 30], Some(61)), 127);
        assert_eq!(table_size(&[1; 2], Some(61)), 7);
        // Weights 1:9 need ten units; 10:90 is the same share.
        assert_eq!(table_size(&[1, 9], None), 13);
        assert_eq!(table_size(&[10, 90], None), 13);
        assert_eq!(table_size(&[1; 5000], None), 4093);
    }

    #[test]
    fn a_small_table_exactly() {
        let k = keys(3);
        assert_eq!(table(&members(&k), 7), vec![2, 0, 0, 2, 1, 1, 0]);
    }

    #[test]
    fn every_slot_is_owned_and_shares_are_even() {
        let k = keys(20);
        let t = table(&members(&k), 61);
        assert_eq!(t.len(), 61);
        let mut count = [0u32; 20];
        for &o in &t {
            count[o] += 1;
        }
        // 61 slots over 20: three each, one gets a fourth.
        assert_eq!(count.iter().min(), Some(&3));
        assert_eq!(count.iter().max(), Some(&4));
    }

    #[test]
    fn removing_one_backend_moves_only_its_slots_and_few_others() {
        let k = keys(20);
        let before = table(&members(&k), 251);
        let fewer: Vec<String> = k.iter().filter(|s| *s != &k[7]).cloned().collect();
        let after = table(&members(&fewer), 251);
        let moved = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| k[**b] != fewer[**a])
            .count();
        let owned_by_7 = before.iter().filter(|&&o| o == 7).count();
        // Its own slots must move; Maglev moves some others too (at about
        // 12 slots per backend, up to ~3x what the leaver owned; the
        // paper's near-minimal figures are for M >> 100·N).
        assert!(moved >= owned_by_7, "moved {moved} < {owned_by_7}");
        assert!(
            moved <= owned_by_7 * 3,
            "moved {moved} of 251 (owned {owned_by_7})"
        );
        assert!(moved * 100 / 251 <= 15, "moved {moved} of 251");
    }

    #[test]
    fn weights_give_proportional_slots() {
        let k = keys(2);
        let m = vec![
            Member {
                key: &k[0],
                weight: 1,
            },
            Member {
                key: &k[1],
                weight: 3,
            },
        ];
        let t = table(&m, 251);
        let heavy = t.iter().filter(|&&o| o == 1).count();
        assert_eq!(heavy, 188, "3/4 of 251 is 188.25");
    }

    #[test]
    fn no_members_no_table() {
        assert!(table(&[], 7).is_empty());
    }
}
