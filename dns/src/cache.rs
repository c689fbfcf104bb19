//! Encoded answers, made once per (name, type, EDNS or not) and reused
//! until the name changes: a hit copies the bytes and patches the message
//! id, the RD and CD flags and the question's letter case.
//!
//! A name with views (answers by client network) keeps one answer per
//! view and its views beside them, so a hit first picks the asker's view.
//! Answers to questions carrying an EDNS client subnet for such a name
//! echo that subnet, so they are made for each query and never kept.
//!
//! A generation counter guards against a race: an answer computed from
//! the zone before a change must not be stored after that change
//! invalidated the name, so it is stored only if no invalidation happened
//! since the computation began.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::views::{ViewId, Views};

/// At most this many names are kept; past it the cache starts over, so
/// floods of random names cannot grow it without bound.
const MAX_NAMES: usize = 200_000;

#[derive(Debug)]
struct Entry {
    qtype: u16,
    edns: bool,
    view: ViewId,
    /// The whole answer, id 0, flags RD and CD clear, question lowercase.
    full: Arc<[u8]>,
    /// The same with no records and TC set, for UDP when `full` is too big.
    truncated: Option<Arc<[u8]>>,
}

/// The answers kept for one name.
#[derive(Debug, Default)]
struct Named {
    /// The name's views, when its answers depend on the asker.
    views: Option<Arc<Views>>,
    entries: Vec<Entry>,
}

/// Who asks, as far as the cache cares.
#[derive(Debug, Clone, Copy, Default)]
pub struct Asker {
    /// The client's address (the EDNS client subnet's when it sent one).
    pub addr: Option<IpAddr>,
    /// It sent an EDNS client subnet: answers chosen by views echo it.
    pub subnet: bool,
}

/// One answer to store.
#[derive(Debug)]
pub struct Answer {
    /// The question's type.
    pub qtype: u16,
    /// The question had EDNS.
    pub edns: bool,
    /// The name's views and the view the answer is for.
    pub views: Option<(Arc<Views>, ViewId)>,
    /// The whole answer.
    pub full: Vec<u8>,
    /// The same truncated, for UDP when `full` is too big.
    pub truncated: Option<Vec<u8>>,
}

/// The cached answers, keyed by the question name's wire form in lowercase.
#[derive(Debug, Default)]
pub struct Cache {
    map: RwLock<HashMap<Box<[u8]>, Named>>,
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

    /// Calls `f` with the answer for `key` (lowercase wire name) if cached
    /// for `asker`: the full answer when it is at most `limit` bytes, else
    /// the truncated one.
    pub fn with<R>(
        &self,
        key: &[u8],
        qtype: u16,
        edns: bool,
        limit: usize,
        asker: Asker,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Option<R> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        let named = map.get(key)?;
        let view = match &named.views {
            None => None,
            Some(_) if asker.subnet => return None,
            Some(v) => asker.addr.and_then(|a| v.select(a)),
        };
        let e = named
            .entries
            .iter()
            .find(|e| e.qtype == qtype && e.edns == edns && e.view == view)?;
        if e.full.len() <= limit {
            Some(f(&e.full))
        } else {
            e.truncated.as_deref().map(f)
        }
    }

    /// Stores an answer computed at `generation`, unless the cache was
    /// invalidated since.
    pub fn insert(&self, generation: u64, key: Vec<u8>, answer: Answer) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if map.len() >= MAX_NAMES {
            map.clear();
        }
        let named = map.entry(key.into_boxed_slice()).or_default();
        let (views, view) = match answer.views {
            Some((v, id)) => (Some(v), id),
            None => (None, None),
        };
        if named.views != views {
            // The name's views are those of the zone the answer was made
            // from; answers by older views are gone with them.
            named.entries.clear();
            named.views = views;
        }
        let (qtype, edns) = (answer.qtype, answer.edns);
        named
            .entries
            .retain(|e| !(e.qtype == qtype && e.edns == edns && e.view == view));
        named.entries.push(Entry {
            qtype,
            edns,
            view,
            full: answer.full.into(),
            truncated: answer.truncated.map(Into::into),
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
        let any = Asker::default();
        c.insert(g, key.clone(), answer(1, None, 600, Some(20)));
        assert_eq!(c.with(&key, 1, false, 4096, any, |b| b.len()), Some(600));
        assert_eq!(c.with(&key, 1, false, 512, any, |b| b.len()), Some(20));
        assert_eq!(c.with(&key, 1, true, 4096, any, |b| b.len()), None);
        assert_eq!(c.with(&key, 28, false, 4096, any, |b| b.len()), None);
        c.invalidate(&["a.ocean".to_string()]);
        assert_eq!(c.with(&key, 1, false, 4096, any, |b| b.len()), None);
        // An answer computed before the invalidation is not stored.
        c.insert(g, key.clone(), answer(1, None, 10, None));
        assert!(c.is_empty());
    }

    fn answer(
        qtype: u16,
        views: Option<(Arc<Views>, ViewId)>,
        len: usize,
        tc: Option<usize>,
    ) -> Answer {
        Answer {
            qtype,
            edns: false,
            views,
            full: vec![1; len],
            truncated: tc.map(|n| vec![2; n]),
        }
    }

    #[test]
    fn a_name_with_views_keeps_an_answer_per_view() {
        let c = Cache::default();
        let key = wire_name("front.ocean");
        let views = Arc::new(
            Views::new([(
                vec!["58.32.0.0/11".parse().unwrap()],
                vec!["10.9.0.1".parse().unwrap()],
            )])
            .unwrap(),
        );
        let from = |a: &str| Asker {
            addr: Some(a.parse().unwrap()),
            subnet: false,
        };
        let g = c.generation();
        c.insert(
            g,
            key.clone(),
            answer(1, Some((views.clone(), Some(0))), 40, None),
        );
        let len = |asker| c.with(&key, 1, false, 4096, asker, |b| b.len());
        assert_eq!(len(from("58.33.0.1")), Some(40));
        // Another network's view is not cached yet: a miss, never the
        // other view's answer.
        assert_eq!(len(from("192.0.2.1")), None);
        c.insert(
            g,
            key.clone(),
            answer(1, Some((views.clone(), None)), 50, None),
        );
        assert_eq!(len(from("192.0.2.1")), Some(50));
        assert_eq!(len(from("58.33.0.1")), Some(40));
        // A client subnet option is echoed in such answers: never cached.
        let subnet = Asker {
            subnet: true,
            ..from("58.33.0.1")
        };
        assert_eq!(len(subnet), None);
        // New views replace the answers made by the old ones.
        let other = Arc::new(
            Views::new([(
                vec!["1.0.0.0/8".parse().unwrap()],
                vec!["10.9.0.2".parse().unwrap()],
            )])
            .unwrap(),
        );
        c.insert(g, key.clone(), answer(1, Some((other, None)), 60, None));
        assert_eq!(len(from("58.33.0.1")), Some(60));
    }
}
