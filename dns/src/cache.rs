//! Encoded answers, made once per (name, type, EDNS or not) and reused
//! until the name changes: a hit copies the bytes and patches the message
//! id, the RD and CD flags and the question's letter case.
//!
//! A generation counter guards against a race: an answer computed from
//! the zone before a change must not be stored after that change
//! invalidated the name, so it is stored only if no invalidation happened
//! since the computation began.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// At most this many names are kept; past it the cache starts over, so
/// floods of random names cannot grow it without bound.
const MAX_NAMES: usize = 200_000;

#[derive(Debug)]
struct Entry {
    qtype: u16,
    edns: bool,
    /// The whole answer, id 0, flags RD and CD clear, question lowercase.
    full: Arc<[u8]>,
    /// The same with no records and TC set, for UDP when `full` is too big.
    truncated: Option<Arc<[u8]>>,
}

/// The cached answers, keyed by the question name's wire form in lowercase.
#[derive(Debug, Default)]
pub struct Cache {
    map: RwLock<HashMap<Box<[u8]>, Vec<Entry>>>,
    generation: AtomicU64,
}

/// `name` (lowercase presentation, no final dot) in wire form.
pub fn wire_name(name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    }
    out.push(0);
    out
}

impl Cache {
    /// The generation to pass to [`Cache::insert`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Calls `f` with the answer for `key` (lowercase wire name) if cached:
    /// the full answer when it is at most `limit` bytes, else the truncated
    /// one.
    pub fn with<R>(
        &self,
        key: &[u8],
        qtype: u16,
        edns: bool,
        limit: usize,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Option<R> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        let e = map
            .get(key)?
            .iter()
            .find(|e| e.qtype == qtype && e.edns == edns)?;
        if e.full.len() <= limit {
            Some(f(&e.full))
        } else {
            e.truncated.as_deref().map(f)
        }
    }

    /// Stores an answer computed at `generation`, unless the cache was
    /// invalidated since.
    pub fn insert(
        &self,
        generation: u64,
        key: Vec<u8>,
        qtype: u16,
        edns: bool,
        full: Vec<u8>,
        truncated: Option<Vec<u8>>,
    ) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if map.len() >= MAX_NAMES {
            map.clear();
        }
        let list = map.entry(key.into_boxed_slice()).or_default();
        list.retain(|e| !(e.qtype == qtype && e.edns == edns));
        list.push(Entry {
            qtype,
            edns,
            full: full.into(),
            truncated: truncated.map(Into::into),
        });
    }

    /// Forgets every answer about `names`.
    pub fn invalidate(&self, names: &[String]) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        for n in names {
            map.remove(wire_name(n).as_slice());
        }
    }

    /// Forgets everything (the zone's apex changed: every negative answer
    /// carries its SOA).
    pub fn clear(&self) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.clear();
    }

    /// Names cached.
    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_misses_and_invalidation() {
        let c = Cache::default();
        let key = wire_name("a.ocean");
        assert_eq!(key, b"\x01a\x05ocean\x00");
        let g = c.generation();
        c.insert(g, key.clone(), 1, false, vec![1; 600], Some(vec![2; 20]));
        assert_eq!(c.with(&key, 1, false, 4096, |b| b.len()), Some(600));
        assert_eq!(c.with(&key, 1, false, 512, |b| b.len()), Some(20));
        assert_eq!(c.with(&key, 1, true, 4096, |b| b.len()), None);
        assert_eq!(c.with(&key, 28, false, 4096, |b| b.len()), None);
        c.invalidate(&["a.ocean".to_string()]);
        assert_eq!(c.with(&key, 1, false, 4096, |b| b.len()), None);
        // An answer computed before the invalidation is not stored.
        c.insert(g, key.clone(), 1, false, vec![1; 10], None);
        assert!(c.is_empty());
    }
}
