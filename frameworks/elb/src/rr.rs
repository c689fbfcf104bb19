//! Slot tables of counter-dispatched VS (rr, wrr): exactly one slot per
//! unit of weight, in smooth weighted round-robin order.
//!
//! A counter (`numgen inc`) picks a new connection's slot whatever the
//! connection is, so consistent hashing buys such a VS nothing: a
//! connection has no identity that should keep its real server, and
//! established connections keep theirs through conntrack. An exact table
//! shares the connections exactly by weight (a Maglev table of 61 slots
//! over 20 real servers gives one of them a third more), and has a third
//! of the elements, which is most of the kernel's cold apply.
//!
//! The table size is the unit count, so the data plane has one chain per
//! size up to [`MAX_EXACT`]; beyond it (or for wrr weights whose units
//! exceed it) the VS takes a Maglev table of one of [`maglev::SIZES`].

use crate::maglev;

/// The largest exact table; a chain exists for every size up to it.
pub const MAX_EXACT: u32 = 64;

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The weights divided by their greatest common divisor.
fn units(weights: &[u32]) -> Vec<u64> {
    let g = weights.iter().copied().fold(0, gcd).max(1);
    weights.iter().map(|w| u64::from((*w).max(1) / g)).collect()
}

/// The exact table size for `weights` (their reduced sum), if it is at
/// most [`MAX_EXACT`].
pub fn exact_size(weights: &[u32]) -> Option<u32> {
    if weights.is_empty() {
        return None;
    }
    let n: u64 = units(weights).iter().sum();
    u32::try_from(n).ok().filter(|n| *n <= MAX_EXACT)
}

/// The sizes a counter-dispatched VS can have: every exact size, then the
/// Maglev sizes above them.
pub fn conn_sizes() -> impl Iterator<Item = u32> {
    (1..=MAX_EXACT).chain(maglev::SIZES.into_iter().filter(|s| *s > MAX_EXACT))
}

/// The exact table for `weights` (entry `i`: the index of the real server
/// of slot `i`), in smooth weighted round-robin order so a heavy real
/// server's slots are spread, not consecutive. Empty when it would exceed
/// [`MAX_EXACT`].
pub fn table(weights: &[u32]) -> Vec<usize> {
    let Some(size) = exact_size(weights) else {
        return Vec::new();
    };
    let units = units(weights);
    let total: i64 = units.iter().map(|u| *u as i64).sum();
    let mut current = vec![0i64; units.len()];
    (0..size)
        .map(|_| {
            for (c, u) in current.iter_mut().zip(&units) {
                *c += *u as i64;
            }
            // The largest current weight, the first on ties: deterministic.
            let mut best = 0;
            for i in 1..current.len() {
                if current[i] > current[best] {
                    best = i;
                }
            }
            current[best] -= total;
            best
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_weights_give_one_slot_each_in_order() {
        assert_eq!(table(&[1; 5]), vec![0, 1, 2, 3, 4]);
        assert_eq!(exact_size(&[1; 20]), Some(20));
        assert_eq!(exact_size(&[7, 7, 7]), Some(3));
    }

    #[test]
    fn weights_are_exact_and_spread() {
        // 1:9 over ten slots, the light one not at either end.
        let t = table(&[1, 9]);
        assert_eq!(t.len(), 10);
        assert_eq!(t.iter().filter(|&&o| o == 0).count(), 1);
        assert_eq!(t, vec![1, 1, 1, 1, 0, 1, 1, 1, 1, 1]);
        // 2:1 interleaves.
        assert_eq!(table(&[2, 1]), vec![0, 1, 0]);
        assert_eq!(table(&[20, 10]), vec![0, 1, 0]);
    }

    #[test]
    fn beyond_the_largest_exact_size_there_is_none() {
        assert_eq!(exact_size(&[1; 64]), Some(64));
        assert_eq!(exact_size(&[1; 65]), None);
        assert_eq!(exact_size(&[1, 64]), None);
        assert_eq!(exact_size(&[]), None);
        assert!(table(&[1; 65]).is_empty());
        let sizes: Vec<u32> = conn_sizes().collect();
        assert_eq!(sizes.len(), 64 + 6);
        assert_eq!(sizes[63..], [64, 127, 251, 509, 1021, 2039, 4093]);
    }
}
