//! A small, fast, deterministic hasher for the planner's internal maps
//! (keys are our own ids and snapshot strings; no untrusted-input DoS
//! concern inside one pure call). Iteration order of these maps is never
//! observable in a plan.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The FxHash mixing step (as used by rustc), 64-bit.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // The multiply leaves the low bits depending only on the low bits
        // of the input, and `HashMap` picks buckets by the low bits: agent
        // ids like `h00042` share their first bytes, so without this turn
        // 10,000 of them landed in 32 buckets. Bring the well-mixed high
        // bits down (as rustc-hash 2 does).
        self.hash.rotate_left(26)
    }
}

/// A `HashMap` with [`FxHasher`].
pub(crate) type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_work_with_strings_and_ints() {
        let mut m: FxHashMap<&str, u32> = FxHashMap::default();
        m.insert("h00001", 1);
        m.insert("h00002", 2);
        m.insert("a-much-longer-host-name.example.com", 3);
        assert_eq!(m.get("h00002"), Some(&2));
        assert_eq!(m.get("a-much-longer-host-name.example.com"), Some(&3));
        let s: FxHashMap<u32, u32> = (0..100).map(|i| (i, i)).collect();
        assert_eq!(s.get(&42), Some(&42));
    }

    /// Keys that differ only in their later bytes still spread over the
    /// low bits (the ones a hash table picks buckets by).
    #[test]
    fn similar_strings_spread_over_the_low_bits() {
        use std::hash::BuildHasher;
        let build = BuildHasherDefault::<FxHasher>::default();
        let low: std::collections::HashSet<u64> = (0..10_000)
            .map(|i| build.hash_one(format!("h{i:05}").as_str()) & 0x3fff)
            .collect();
        assert!(low.len() > 5_000, "{} distinct low bit patterns", low.len());
    }
}
