//! GTID positions as MariaDB prints them (`0-1-42,1-7-3`: per replication
//! domain, the server id and sequence number of the last transaction), and
//! the one question failover asks of them: does one contain another?

use std::collections::BTreeMap;

/// A GTID position: per domain, `(server id, seq_no)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidPos(pub BTreeMap<u32, (u32, u64)>);

impl GtidPos {
    /// Parses `d-s-n[,d-s-n...]`; empty is the empty position. Parts that
    /// do not parse are skipped (MariaDB prints no others).
    pub fn parse(s: &str) -> GtidPos {
        let mut m = BTreeMap::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut it = part.splitn(3, '-');
            let (Some(d), Some(srv), Some(n)) = (it.next(), it.next(), it.next()) else {
                continue;
            };
            if let (Ok(d), Ok(srv), Ok(n)) = (d.parse(), srv.parse(), n.parse()) {
                m.insert(d, (srv, n));
            }
        }
        GtidPos(m)
    }

    /// Whether every transaction of `other` is in `self` (in strict mode a
    /// domain's sequence numbers only grow, so per domain: seq at least).
    pub fn contains(&self, other: &GtidPos) -> bool {
        other
            .0
            .iter()
            .all(|(d, (_, n))| self.0.get(d).is_some_and(|(_, m)| m >= n))
    }

    /// Transactions in all domains (the sum of sequence numbers): orders
    /// positions of one history.
    pub fn total(&self) -> u64 {
        self.0.values().map(|(_, n)| n).sum()
    }
}

impl std::fmt::Display for GtidPos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(d, (s, n))| format!("{d}-{s}-{n}"))
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containment_is_per_domain() {
        let a = GtidPos::parse("0-1-10,1-2-5");
        let b = GtidPos::parse("0-3-9");
        assert!(a.contains(&b) && !b.contains(&a));
        assert!(a.contains(&GtidPos::parse("")));
        assert!(!GtidPos::parse("").contains(&b));
        assert!(!a.contains(&GtidPos::parse("2-1-1")));
        assert_eq!(a.to_string(), "0-1-10,1-2-5");
        assert_eq!(a.total(), 15);
        assert_eq!(GtidPos::parse("junk,0-1-2"), GtidPos::parse("0-1-2"));
    }
}
