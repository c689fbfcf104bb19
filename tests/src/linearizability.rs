//! A linearizability checker for histories of single registers (one per
//! key), in the manner of Wing & Gong's search with Lowe's memoisation (as
//! Knossos and Porcupine do it): the operations of one key are ordered by
//! their real-time intervals, and a depth-first search looks for one
//! sequential order that respects those intervals and a register's
//! semantics. Clients record [`Op`]s as they run; [`check`] returns the
//! keys (with their history) that no such order explains.
//!
//! What an outcome means:
//! - `Ok`: it took effect between its invoke and its return (a read
//!   returned that value);
//! - `Fail`: it certainly did not take effect (a 4xx answer): dropped;
//! - `Info`: unknown (a timeout, a 503 `not_committed`, a lost
//!   connection): a write may have taken effect at any time after its
//!   invoke, or never; an unknown read tells nothing and is dropped.

use std::collections::{BTreeMap, HashSet};

/// What a client asked of one key's register.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Call {
    /// Set the value.
    Write(String),
    /// Read the value: `None` while the key does not exist.
    Read(Option<String>),
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Took effect (a read's value is what it returned).
    Ok,
    /// Certainly took no effect.
    Fail,
    /// Unknown.
    Info,
}

/// One operation of a history: times are from any common clock
/// (microseconds since the run started).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// The register.
    pub key: String,
    /// The client that ran it (for reports).
    pub client: usize,
    /// What it did.
    pub call: Call,
    /// When it was sent.
    pub invoke: u64,
    /// When its answer came (for `Info`, when the client gave up).
    pub complete: u64,
    /// How it ended.
    pub outcome: Outcome,
}

/// A key whose history has no linearization.
#[derive(Debug, Clone)]
pub struct Anomaly {
    /// The register.
    pub key: String,
    /// Its operations (those the check considered), by invoke time.
    pub ops: Vec<Op>,
}

impl std::fmt::Display for Anomaly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "key {} is not linearizable:", self.key)?;
        for op in &self.ops {
            writeln!(
                f,
                "  client {} {:?} [{}, {}] {:?}",
                op.client, op.call, op.invoke, op.complete, op.outcome
            )?;
        }
        Ok(())
    }
}

/// The searches tried before a key is given up on as too costly (it is
/// then reported as an anomaly, so a check never passes by giving up).
const BUDGET: usize = 2_000_000;

/// Checks every key's history; an empty answer means all are linearizable.
/// The registers start absent (a read of `None`).
pub fn check(history: &[Op]) -> Vec<Anomaly> {
    // An unknown write whose value no read returned can be left out: in
    // any order that holds it, only writes (or the end) follow it, so the
    // order without it holds too. Leaving such writes out keeps the search
    // from trying every subset of them (a full restart makes dozens).
    let read: HashSet<(&str, &str)> = history
        .iter()
        .filter(|o| o.outcome == Outcome::Ok)
        .filter_map(|o| match &o.call {
            Call::Read(Some(v)) => Some((o.key.as_str(), v.as_str())),
            _ => None,
        })
        .collect();
    let mut by_key: BTreeMap<&str, Vec<Op>> = BTreeMap::new();
    for op in history {
        let keep = match (&op.call, op.outcome) {
            (_, Outcome::Fail) => false,
            (Call::Read(_), Outcome::Info) => false,
            (Call::Write(v), Outcome::Info) => read.contains(&(op.key.as_str(), v.as_str())),
            _ => true,
        };
        if keep {
            by_key.entry(&op.key).or_default().push(op.clone());
        }
    }
    let mut out = Vec::new();
    for (key, mut ops) in by_key {
        ops.sort_by_key(|o| o.invoke);
        if !linearizable(&ops) {
            out.push(Anomaly {
                key: key.to_string(),
                ops,
            });
        }
    }
    out
}

/// One key: is there an order of `ops` (an `Info` write may be left out)
/// in which each op lies within its interval and every read returns the
/// last write before it?
fn linearizable(ops: &[Op]) -> bool {
    let n = ops.len();
    // An unknown op may take effect at any time after its invoke.
    let ret: Vec<u64> = ops
        .iter()
        .map(|o| match o.outcome {
            Outcome::Info => u64::MAX,
            _ => o.complete,
        })
        .collect();
    let required = ops.iter().filter(|o| o.outcome == Outcome::Ok).count();
    let words = n.div_ceil(64).max(1);
    let mut seen: HashSet<(Vec<u64>, Option<String>)> = HashSet::new();
    // Depth-first: each frame is (done set, value, ops done that were
    // required).
    let mut stack: Vec<(Vec<u64>, Option<String>, usize)> = vec![(vec![0; words], None, 0)];
    let mut tried = 0usize;
    while let Some((done, value, ok_done)) = stack.pop() {
        if ok_done == required {
            return true;
        }
        tried += 1;
        if tried > BUDGET {
            return false;
        }
        let is_done = |i: usize| done[i / 64] & (1 << (i % 64)) != 0;
        // Whatever comes next must start before every op not yet done has
        // returned (else that op would have had to come first).
        let horizon = (0..n)
            .filter(|&i| !is_done(i))
            .map(|i| ret[i])
            .min()
            .unwrap_or(u64::MAX);
        for i in (0..n).filter(|&i| !is_done(i)) {
            if ops[i].invoke > horizon {
                // Sorted by invoke: no later op can come next either.
                break;
            }
            let next = match &ops[i].call {
                Call::Write(v) => Some(v.clone()),
                Call::Read(r) if *r == value => value.clone(),
                Call::Read(_) => continue,
            };
            let mut d = done.clone();
            d[i / 64] |= 1 << (i % 64);
            let ok = ok_done + usize::from(ops[i].outcome == Outcome::Ok);
            if seen.insert((d.clone(), next.clone())) {
                stack.push((d, next, ok));
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: usize, call: Call, invoke: u64, complete: u64, outcome: Outcome) -> Op {
        Op {
            key: "k".into(),
            client,
            call,
            invoke,
            complete,
            outcome,
        }
    }
    fn w(v: &str) -> Call {
        Call::Write(v.into())
    }
    fn r(v: Option<&str>) -> Call {
        Call::Read(v.map(Into::into))
    }
    use Outcome::{Fail, Info, Ok as Done};

    #[test]
    fn sequential_and_concurrent_histories_that_linearize_are_accepted() {
        let h = vec![
            op(0, r(None), 0, 5, Done),
            op(0, w("a"), 10, 20, Done),
            op(1, r(Some("a")), 25, 30, Done),
            // Concurrent writes: either order, and the reads pick one.
            op(0, w("b"), 40, 60, Done),
            op(1, w("c"), 45, 55, Done),
            op(2, r(Some("c")), 50, 58, Done),
            op(2, r(Some("b")), 61, 70, Done),
            // A read concurrent with a write may see either value.
            op(1, w("d"), 80, 100, Done),
            op(0, r(Some("b")), 82, 90, Done),
            op(2, r(Some("d")), 85, 95, Done),
        ];
        assert!(check(&h).is_empty(), "{:?}", check(&h));
    }

    #[test]
    fn unknown_writes_may_apply_late_or_never_and_failed_ones_never() {
        let late = vec![
            op(0, w("a"), 0, 10, Done),
            op(1, w("b"), 20, 30, Info),
            op(2, r(Some("a")), 40, 50, Done),
            // The unknown write took effect long after its client gave up.
            op(2, r(Some("b")), 60, 70, Done),
        ];
        assert!(check(&late).is_empty());
        let never = vec![
            op(0, w("a"), 0, 10, Done),
            op(1, w("b"), 20, 30, Info),
            op(2, r(Some("a")), 40, 50, Done),
        ];
        assert!(check(&never).is_empty());
        let failed = vec![
            op(0, w("a"), 0, 10, Done),
            op(1, w("b"), 20, 30, Fail),
            op(2, r(Some("b")), 40, 50, Done),
        ];
        assert_eq!(check(&failed).len(), 1, "a failed write was read");
    }

    #[test]
    fn a_stale_read_after_a_completed_write_is_rejected() {
        let h = vec![
            op(0, w("a"), 0, 10, Done),
            op(0, w("b"), 20, 30, Done),
            // Began after "b" was acknowledged, still saw "a".
            op(1, r(Some("a")), 40, 50, Done),
        ];
        let bad = check(&h);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].key, "k");
        assert!(bad[0].to_string().contains("not linearizable"));
    }

    #[test]
    fn reads_that_flip_back_and_a_lost_acknowledged_write_are_rejected() {
        // Two reads after both writes completed disagree in an order no
        // single sequence allows: b, then a, then b again.
        let flip = vec![
            op(0, w("a"), 0, 100, Done),
            op(1, w("b"), 0, 100, Done),
            op(2, r(Some("b")), 110, 120, Done),
            op(2, r(Some("a")), 130, 140, Done),
        ];
        assert_eq!(check(&flip).len(), 1);
        // A created key read back as absent after the create returned.
        let lost = vec![op(0, w("a"), 0, 10, Done), op(1, r(None), 20, 30, Done)];
        assert_eq!(check(&lost).len(), 1);
        // A value nobody wrote.
        let invented = vec![
            op(0, w("a"), 0, 10, Done),
            op(1, r(Some("z")), 20, 30, Done),
        ];
        assert_eq!(check(&invented).len(), 1);
    }

    #[test]
    fn many_unknown_writes_nobody_read_cost_nothing() {
        // 200 unknown writes (a cluster down), then the one value read.
        let mut h = vec![op(0, w("a"), 0, 10, Done)];
        for i in 0..200u64 {
            h.push(op(1, Call::Write(format!("x{i}")), 20 + i, 21 + i, Info));
        }
        h.push(op(2, w("b"), 300, 310, Info));
        h.push(op(0, r(Some("b")), 400, 410, Done));
        assert!(check(&h).is_empty());
        // And the same with a read that only an unread write could explain.
        h.push(op(0, r(Some("a")), 420, 430, Done));
        assert_eq!(
            check(&h).len(),
            1,
            "a after b, with nothing writing a again"
        );
    }

    #[test]
    fn keys_are_checked_apart() {
        let mut h = vec![op(0, w("a"), 0, 10, Done)];
        let mut other = op(1, r(None), 20, 30, Done);
        other.key = "other".into();
        h.push(other);
        assert!(check(&h).is_empty(), "an absent other key is fine");
    }

    #[test]
    fn a_long_overlapping_history_fits_the_search_budget() {
        // 3 clients, 300 ops, heavy overlap, all consistent with writes
        // taking effect at their completion.
        let mut h = Vec::new();
        let mut value: Option<String> = None;
        let mut t = 0u64;
        for i in 0..300u64 {
            let client = (i % 3) as usize;
            if i % 2 == 0 {
                let v = format!("v{i}");
                h.push(op(client, w(&v), t, t + 15, Done));
                value = Some(v);
            } else {
                h.push(op(client, Call::Read(value.clone()), t + 1, t + 16, Done));
            }
            t += 16;
        }
        // Within the search budget (a key over it would be reported).
        assert!(check(&h).is_empty());
    }
}
