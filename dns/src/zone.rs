//! The zone: every name the server answers for, with its records, kept as
//! plain data (names in lowercase presentation form without the final dot)
//! so that a change replaces exactly the names of one [`Owner`].
//!
//! Names that exist only because names below them exist (`agents.ocean`,
//! `_tcp.<job>`) are empty non-terminals: they answer NODATA, never
//! NXDOMAIN (RFC 8020).

use std::collections::HashMap;
use std::net::IpAddr;

use crate::model::{Node, Owner};

/// What a name is in the zone.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// The zone's apex (SOA, NS).
    Apex,
    /// A name with records.
    Node(&'a Node),
    /// A name that exists without records of its own.
    Empty,
    /// No such name in the zone.
    NxDomain,
    /// Not in the zone at all.
    OutOfZone,
}

/// Every record of the zone.
#[derive(Debug)]
pub struct Zone {
    origin: String,
    /// TTL of every record.
    pub ttl: u32,
    /// SOA serial (the state version it reflects, truncated).
    pub serial: u32,
    nodes: HashMap<String, Node>,
    /// Names with names below them, and how many.
    below: HashMap<String, u32>,
    owned: HashMap<Owner, Vec<(String, Node)>>,
}

/// The name server's own name in the zone.
pub fn ns_name(origin: &str) -> String {
    format!("ns.{origin}")
}

impl Zone {
    /// An empty zone `origin` whose name server `ns.<origin>` has `ns_addr`
    /// (when known).
    pub fn new(origin: &str, ttl: u32, ns_addr: Option<IpAddr>) -> Self {
        let mut z = Zone {
            origin: origin.to_string(),
            ttl,
            serial: 0,
            nodes: HashMap::new(),
            below: HashMap::new(),
            owned: HashMap::new(),
        };
        if let Some(addr) = ns_addr {
            z.insert(
                ns_name(origin),
                Node {
                    addrs: vec![addr],
                    srv: Vec::new(),
                    views: None,
                },
            );
        }
        z
    }

    /// The zone's name.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Finds `name` (lowercase, no final dot).
    pub fn lookup(&self, name: &str) -> Lookup<'_> {
        if name == self.origin {
            return Lookup::Apex;
        }
        let in_zone = name
            .strip_suffix(self.origin.as_str())
            .is_some_and(|rest| rest.ends_with('.'));
        if !in_zone {
            return Lookup::OutOfZone;
        }
        match self.nodes.get(name) {
            Some(node) => Lookup::Node(node),
            None if self.below.contains_key(name) => Lookup::Empty,
            None => Lookup::NxDomain,
        }
    }

    /// The node at `name`, if it has records.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.get(name)
    }

    /// Number of names with records.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the zone holds no names with records.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Replaces every record of `owner` with `records`; returns the names
    /// whose answers changed (including parents that started or stopped
    /// existing), for the answer cache to forget.
    pub fn replace(&mut self, owner: Owner, records: Vec<(String, Node)>) -> Vec<String> {
        let old = self.owned.remove(&owner).unwrap_or_default();
        if old == records {
            if !records.is_empty() {
                self.owned.insert(owner, old);
            }
            return Vec::new();
        }
        let mut dirty = Vec::new();
        for (name, _) in &old {
            self.nodes.remove(name);
            dirty.push(name.clone());
            self.for_parents(name, |count| {
                *count -= 1;
            });
        }
        for (name, node) in &records {
            dirty.push(name.clone());
            self.insert(name.clone(), node.clone());
        }
        self.below.retain(|_, c| *c > 0);
        // Parents may have changed between NXDOMAIN and NODATA.
        let parents: Vec<String> = dirty.iter().flat_map(|n| self.parents(n)).collect();
        dirty.extend(parents);
        dirty.sort();
        dirty.dedup();
        if !records.is_empty() {
            self.owned.insert(owner, records);
        }
        dirty
    }

    fn insert(&mut self, name: String, node: Node) {
        self.for_parents(&name, |count| *count += 1);
        self.nodes.insert(name, node);
    }

    /// Names strictly between `name` and the apex.
    fn parents(&self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = name;
        while let Some((_, parent)) = rest.split_once('.') {
            if parent.len() <= self.origin.len() {
                break;
            }
            out.push(parent.to_string());
            rest = parent;
        }
        out
    }

    fn for_parents(&mut self, name: &str, mut f: impl FnMut(&mut u32)) {
        for p in self.parents(name) {
            f(self.below.entry(p).or_insert(0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(ip: &str) -> Node {
        Node {
            addrs: vec![ip.parse().unwrap()],
            srv: Vec::new(),
            views: None,
        }
    }

    #[test]
    fn nxdomain_nodata_and_out_of_zone() {
        let mut z = Zone::new("ocean", 5, Some("127.0.0.1".parse().unwrap()));
        let dirty = z.replace(
            Owner::Agent("a".into()),
            vec![("a.agents.ocean".into(), node("10.0.0.1"))],
        );
        assert_eq!(dirty, vec!["a.agents.ocean", "agents.ocean"]);
        assert_eq!(z.lookup("ocean"), Lookup::Apex);
        assert!(matches!(z.lookup("a.agents.ocean"), Lookup::Node(_)));
        assert!(matches!(z.lookup("ns.ocean"), Lookup::Node(_)));
        assert_eq!(z.lookup("agents.ocean"), Lookup::Empty);
        assert_eq!(z.lookup("b.agents.ocean"), Lookup::NxDomain);
        assert_eq!(z.lookup("example.com"), Lookup::OutOfZone);
        assert_eq!(z.lookup("xocean"), Lookup::OutOfZone);
        // Removing the last name below `agents` makes it NXDOMAIN again.
        let dirty = z.replace(Owner::Agent("a".into()), Vec::new());
        assert_eq!(dirty, vec!["a.agents.ocean", "agents.ocean"]);
        assert_eq!(z.lookup("agents.ocean"), Lookup::NxDomain);
    }

    #[test]
    fn unchanged_records_dirty_nothing() {
        let mut z = Zone::new("ocean", 5, None);
        let recs = vec![("x.y.ocean".to_string(), node("10.0.0.1"))];
        assert!(!z.replace(Owner::Masters, recs.clone()).is_empty());
        assert!(z.replace(Owner::Masters, recs).is_empty());
        assert_eq!(z.len(), 1);
        assert_eq!(z.lookup("y.ocean"), Lookup::Empty);
    }
}
