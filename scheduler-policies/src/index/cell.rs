//! One cell of the agent index: an ordered set of packed
//! `score << 32 | agent` keys.
//!
//! Every placement re-keys its agent (the free score drops), so inserts and
//! removes dominate, with short in-order walks from a key in between. A
//! `BTreeSet` spent about 250 instructions per insert or remove walking
//! nodes; here the keys live in sorted chunks of at most [`MAX`]:
//!
//! ```text
//!   last:    [  40,        97,          250 ]     binary search: which chunk
//!   chunks:  [3 9 17 40] [41 60 97] [112 ... 250] binary search + one short
//!                                                 memmove inside it
//! ```
//!
//! A walk is a slice iterator. A re-key that stays inside its chunk (the
//! common case: bin-pack takes the tightest agent and makes it tighter, so
//! it barely moves) is one rotate of the keys between its two positions.
//! Chunks that empty are dropped and full ones split in two, so no chunk is
//! empty and a cell never holds more chunks than it saw splits plus one.

use std::slice::Iter;

/// Keys per chunk before it splits (memmoves stay within a few cache lines).
const MAX: usize = 64;

/// An ordered set of `u64` keys.
#[derive(Debug, Default)]
pub(crate) struct Cell {
    /// Sorted, non-empty; every key of a chunk is below those of the next.
    chunks: Vec<Vec<u64>>,
    /// The largest key of each chunk.
    last: Vec<u64>,
}

impl Cell {
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// The chunk holding `key`, or where it would go: the first whose last
    /// key is not below it (the last chunk for keys above all). The cell
    /// must not be empty.
    #[inline]
    fn chunk_of(&self, key: u64) -> usize {
        let c = self.last.partition_point(|&l| l < key);
        c.min(self.chunks.len() - 1)
    }

    /// Adds `key`; false if it was there.
    pub(crate) fn insert(&mut self, key: u64) -> bool {
        if self.chunks.is_empty() {
            let mut chunk = Vec::with_capacity(MAX + 1);
            chunk.push(key);
            self.chunks.push(chunk);
            self.last.push(key);
            return true;
        }
        let c = self.chunk_of(key);
        let chunk = &mut self.chunks[c];
        let Err(at) = chunk.binary_search(&key) else {
            return false;
        };
        chunk.insert(at, key);
        if at + 1 == chunk.len() {
            self.last[c] = key;
        }
        if chunk.len() > MAX {
            // Appending (the index is built in agent order, and agents
            // that start alike tie on score) leaves full chunks behind
            // rather than half-empty ones: fewer chunks to search.
            let appended = c + 1 == self.chunks.len() && at == MAX;
            self.split(c, if appended { MAX } else { MAX.div_ceil(2) });
        }
        true
    }

    /// Splits chunk `c`: keys from `at` on move to a new chunk after it.
    fn split(&mut self, c: usize, at: usize) {
        let chunk = &mut self.chunks[c];
        let mut tail = Vec::with_capacity(MAX + 1);
        tail.extend_from_slice(&chunk[at..]);
        chunk.truncate(at);
        let low_last = chunk[chunk.len() - 1];
        let high_last = self.last[c];
        self.last[c] = low_last;
        self.chunks.insert(c + 1, tail);
        self.last.insert(c + 1, high_last);
    }

    /// Removes `key`; false if it was not there.
    pub(crate) fn remove(&mut self, key: u64) -> bool {
        if self.chunks.is_empty() {
            return false;
        }
        let c = self.chunk_of(key);
        let Ok(at) = self.chunks[c].binary_search(&key) else {
            return false;
        };
        self.remove_at(c, at);
        true
    }

    fn remove_at(&mut self, c: usize, at: usize) {
        let chunk = &mut self.chunks[c];
        chunk.remove(at);
        if chunk.is_empty() {
            self.chunks.remove(c);
            self.last.remove(c);
        } else if at == chunk.len() {
            self.last[c] = chunk[at - 1];
        }
    }

    /// Replaces `old` by `new` (not in the set); false if `old` was not
    /// there (then nothing changes).
    pub(crate) fn replace(&mut self, old: u64, new: u64) -> bool {
        if self.chunks.is_empty() {
            return false;
        }
        let c = self.chunk_of(old);
        let Ok(at) = self.chunks[c].binary_search(&old) else {
            return false;
        };
        let above_previous = c == 0 || self.last[c - 1] < new;
        let below_next = self.chunks.get(c + 1).is_none_or(|next| new < next[0]);
        if !(above_previous && below_next) {
            self.remove_at(c, at);
            self.insert(new);
            return true;
        }
        let chunk = &mut self.chunks[c];
        let to = insertion_near(chunk, at, new);
        if to <= at {
            chunk.copy_within(to..at, to + 1);
            chunk[to] = new;
        } else {
            chunk.copy_within(at + 1..to, at);
            chunk[to - 1] = new;
        }
        self.last[c] = chunk[chunk.len() - 1];
        true
    }

    /// All keys (walk forward with `next`, backward with `next_back`).
    #[inline]
    pub(crate) fn all(&self) -> Walk<'_> {
        Walk {
            head: [].iter(),
            rest: self.chunks.iter(),
        }
    }

    /// Keys above `key`, for a forward walk.
    pub(crate) fn above(&self, key: u64) -> Walk<'_> {
        if self.chunks.is_empty() {
            return self.all();
        }
        let c = self.chunk_of(key);
        let chunk = &self.chunks[c];
        let at = chunk.partition_point(|&k| k <= key);
        Walk {
            head: chunk[at..].iter(),
            rest: self.chunks[c + 1..].iter(),
        }
    }

    /// Keys below `key`, for a backward walk.
    pub(crate) fn below(&self, key: u64) -> Walk<'_> {
        if self.chunks.is_empty() {
            return self.all();
        }
        let c = self.chunk_of(key);
        let chunk = &self.chunks[c];
        let at = chunk.partition_point(|&k| k < key);
        Walk {
            head: chunk[..at].iter(),
            rest: self.chunks[..c].iter(),
        }
    }
}

/// Keys [`insertion_near`] compares one by one before it falls back to a
/// binary search.
const NEAR: usize = 4;

/// Where `new` goes in `chunk` (as it is, `chunk[at]` included): the index
/// of the first key above it. A re-key usually moves a key by a place or
/// two, so the neighbours of `at` are looked at first.
#[inline]
fn insertion_near(chunk: &[u64], at: usize, new: u64) -> usize {
    if new < chunk[at] {
        let stop = at.saturating_sub(NEAR);
        let mut to = at;
        while to > stop && chunk[to - 1] > new {
            to -= 1;
        }
        if to == stop && to > 0 && chunk[to - 1] > new {
            chunk[..to].partition_point(|&k| k < new)
        } else {
            to
        }
    } else {
        let stop = (at + 1 + NEAR).min(chunk.len());
        let mut to = at + 1;
        while to < stop && chunk[to] < new {
            to += 1;
        }
        if to == stop && to < chunk.len() && chunk[to] < new {
            to + chunk[to..].partition_point(|&k| k < new)
        } else {
            to
        }
    }
}

/// Keys of a cell from some position: `next` walks up, `next_back` down.
/// (A walk goes one way only: `head` is the partial chunk at the start.)
#[derive(Debug, Clone)]
pub(crate) struct Walk<'a> {
    head: Iter<'a, u64>,
    rest: Iter<'a, Vec<u64>>,
}

impl Default for Walk<'_> {
    fn default() -> Self {
        Self {
            head: [].iter(),
            rest: [].iter(),
        }
    }
}

impl Walk<'_> {
    #[inline]
    pub(crate) fn next(&mut self) -> Option<u64> {
        loop {
            if let Some(&k) = self.head.next() {
                return Some(k);
            }
            self.head = self.rest.next()?.iter();
        }
    }

    #[inline]
    pub(crate) fn next_back(&mut self) -> Option<u64> {
        loop {
            if let Some(&k) = self.head.next_back() {
                return Some(k);
            }
            self.head = self.rest.next_back()?.iter();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::synthetic::Rng;

    fn forward(mut w: Walk<'_>) -> Vec<u64> {
        std::iter::from_fn(|| w.next()).collect()
    }

    fn backward(mut w: Walk<'_>) -> Vec<u64> {
        std::iter::from_fn(|| w.next_back()).collect()
    }

    /// Random inserts, removes, replaces and walks, checked against a
    /// `BTreeSet`; small key ranges force duplicates, misses, splits and
    /// emptied chunks.
    #[test]
    fn behaves_like_a_btreeset() {
        for (seed, range) in [(1, 50), (2, 400), (3, 5000)] {
            let mut rng = Rng::new(seed);
            let mut cell = Cell::default();
            let mut model = BTreeSet::new();
            for step in 0..20_000 {
                let key = rng.below(range);
                match rng.below(10) {
                    0..=3 => assert_eq!(cell.insert(key), model.insert(key)),
                    4..=5 => assert_eq!(cell.remove(key), model.remove(&key)),
                    _ => {
                        let new = rng.below(range);
                        if !model.contains(&new) {
                            let had = model.remove(&key);
                            if had {
                                model.insert(new);
                            }
                            assert_eq!(cell.replace(key, new), had);
                        }
                    }
                }
                assert_eq!(cell.is_empty(), model.is_empty());
                if step % 97 == 0 {
                    let all: Vec<u64> = model.iter().copied().collect();
                    assert_eq!(forward(cell.all()), all);
                    let mut rev = all.clone();
                    rev.reverse();
                    assert_eq!(backward(cell.all()), rev);
                    let k = rng.below(range);
                    let above: Vec<u64> = model.range(k + 1..).copied().collect();
                    assert_eq!(forward(cell.above(k)), above);
                    let below: Vec<u64> = model.range(..k).rev().copied().collect();
                    assert_eq!(backward(cell.below(k)), below);
                    assert!(cell.chunks.iter().all(|c| !c.is_empty() && c.len() <= MAX));
                    let lasts: Vec<u64> = cell.chunks.iter().map(|c| c[c.len() - 1]).collect();
                    assert_eq!(cell.last, lasts);
                }
            }
        }
    }
}
