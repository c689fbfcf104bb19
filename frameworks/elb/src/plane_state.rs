//! [`PlaneState`]: the desired data plane kept up to date one VS at a
//! time, so a change costs the VS it touches (not a walk of all of them),
//! and the [`Delta`] it leaves for the programmer to diff.
//!
//! ```text
//!  set(vs) / remove(key) ─► services, slots, empty of that key replaced
//!                       └─► real-server address counts ─► rs_addrs (an address
//!                           stays while any VS uses it)
//!  each call adds to a Delta: the VS keys and addresses that may differ
//! ```
//!
//! Fed every VS in order, it holds exactly what [`crate::plane::desired`]
//! computes (the tests check it); fed changes, it holds what `desired`
//! would compute over the changed set, without the walk.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

use crate::plane::{serving, DataPlane, VirtualServer, VsKey};

/// What may differ between the plane before some calls and after them:
/// the only keys a diff has to look at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    /// VS whose service, slots or emptiness may have changed.
    pub vs: BTreeSet<VsKey>,
    /// Real-server addresses that joined or left `rs_addrs`.
    pub addrs: BTreeSet<Ipv4Addr>,
}

impl Delta {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.vs.is_empty() && self.addrs.is_empty()
    }
}

/// The desired plane and what it was built from (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct PlaneState {
    plane: DataPlane,
    /// Each VS as last set: a VS set again unchanged costs a comparison.
    vss: HashMap<VsKey, VirtualServer>,
    /// How many real servers of the VS held use each address.
    addr_refs: HashMap<Ipv4Addr, u32>,
}

impl PlaneState {
    /// The plane as it stands.
    pub fn plane(&self) -> &DataPlane {
        &self.plane
    }

    /// Every VS held, in no order.
    pub fn virtual_servers(&self) -> impl Iterator<Item = &VirtualServer> {
        self.vss.values()
    }

    /// The VS set under `key`, if any.
    pub fn get(&self, key: &VsKey) -> Option<&VirtualServer> {
        self.vss.get(key)
    }

    /// Makes the plane hold `vs` (replacing what its key held). Its table
    /// keeps the size (and the table itself, when its real servers are
    /// unchanged) of the VS as this state holds it, else as `installed`
    /// does, so a new state over a running kernel does not reshuffle.
    pub fn set(&mut self, vs: &VirtualServer, installed: Option<&DataPlane>, delta: &mut Delta) {
        if self.vss.get(&vs.key) == Some(vs) {
            return;
        }
        let current = match self.plane.serving(&vs.key) {
            Some(c) => Some(c),
            None => installed.and_then(|p| p.serving(&vs.key)),
        };
        let next = serving(vs, current);
        // The new addresses are counted before the old ones are let go, so
        // an address the VS keeps never leaves rs_addrs (nor the delta).
        self.count(vs, delta);
        if let Some(old) = self.vss.insert(vs.key, vs.clone()) {
            self.uncount(&old, delta);
        }
        match next {
            None => {
                self.plane.services.remove(&vs.key);
                self.plane.slots.remove(&vs.key);
                self.plane.empty.insert(vs.key);
            }
            Some((service, table)) => {
                self.plane.empty.remove(&vs.key);
                self.plane.services.insert(vs.key, service);
                self.plane.slots.insert(vs.key, table);
            }
        }
        delta.vs.insert(vs.key);
    }

    /// Takes `key` out of the plane (nothing when it is not in).
    pub fn remove(&mut self, key: &VsKey, delta: &mut Delta) {
        let Some(old) = self.vss.remove(key) else {
            return;
        };
        self.uncount(&old, delta);
        self.plane.empty.remove(key);
        self.plane.services.remove(key);
        self.plane.slots.remove(key);
        delta.vs.insert(*key);
    }

    fn count(&mut self, vs: &VirtualServer, delta: &mut Delta) {
        for (rs, _) in &vs.real_servers {
            let n = self.addr_refs.entry(rs.addr).or_insert(0);
            *n += 1;
            if *n == 1 {
                self.plane.rs_addrs.insert(rs.addr);
                delta.addrs.insert(rs.addr);
            }
        }
    }

    fn uncount(&mut self, vs: &VirtualServer, delta: &mut Delta) {
        for (rs, _) in &vs.real_servers {
            if let Some(n) = self.addr_refs.get_mut(&rs.addr) {
                *n -= 1;
                if *n == 0 {
                    self.addr_refs.remove(&rs.addr);
                    self.plane.rs_addrs.remove(&rs.addr);
                    delta.addrs.insert(rs.addr);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plane::{desired, RealServer};
    use crate::spec::{Algorithm, Protocol};

    fn vs(vip: u8, backends: &[u8]) -> VirtualServer {
        VirtualServer {
            key: VsKey {
                vip: Ipv4Addr::new(10, 0, 0, vip),
                proto: Protocol::Tcp,
                port: 80,
            },
            elb: format!("pdl.x_service.s{vip}"),
            algorithm: Algorithm::Rr,
            real_servers: backends
                .iter()
                .map(|b| {
                    (
                        RealServer {
                            addr: Ipv4Addr::new(10, 1, 0, *b),
                            port: 8080,
                        },
                        1,
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn set_one_by_one_equals_the_whole_computation() {
        let vss = [vs(1, &[2, 3]), vs(2, &[3, 4, 5]), vs(3, &[])];
        let mut s = PlaneState::default();
        let mut d = Delta::default();
        for v in &vss {
            s.set(v, None, &mut d);
        }
        assert_eq!(s.plane(), &desired(&vss, None));
        assert_eq!(d.vs.len(), 3);
        assert_eq!(d.addrs.len(), 4);
    }

    #[test]
    fn a_change_touches_its_vs_and_only_the_addresses_that_come_or_go() {
        let mut vss = vec![vs(1, &[2, 3]), vs(2, &[3, 4]), vs(3, &[9])];
        let mut s = PlaneState::default();
        for v in &vss {
            s.set(v, None, &mut Delta::default());
        }
        let before = s.plane().clone();
        // 10.1.0.3 leaves VS 1 but VS 2 still uses it; 10.1.0.4 leaves
        // its only VS; VS 3 loses its last backend.
        vss[0] = vs(1, &[2]);
        vss[1] = vs(2, &[3]);
        vss[2] = vs(3, &[]);
        let mut d = Delta::default();
        for v in &vss {
            s.set(v, Some(&before), &mut d);
        }
        assert_eq!(s.plane(), &desired(&vss, Some(&before)));
        assert_eq!(
            d.addrs,
            BTreeSet::from([Ipv4Addr::new(10, 1, 0, 4), Ipv4Addr::new(10, 1, 0, 9)])
        );
        assert_eq!(d.vs.len(), 3);
        assert!(s.plane().empty.contains(&vss[2].key));
        // Setting them again unchanged is no change at all.
        let mut again = Delta::default();
        for v in &vss {
            s.set(v, None, &mut again);
        }
        assert!(again.is_empty());
        // Removing VS 1 frees 10.1.0.2, not 10.1.0.3.
        let mut gone = Delta::default();
        s.remove(&vss[0].key, &mut gone);
        assert_eq!(gone.addrs, BTreeSet::from([Ipv4Addr::new(10, 1, 0, 2)]));
        assert_eq!(s.plane(), &desired(&vss[1..], Some(&before)));
    }

    #[test]
    fn a_new_state_keeps_the_installed_table_size() {
        // 20 backends need 61 slots; installed at 127 (it had more), the
        // table stays at 127 rather than reshuffling to 61.
        // (A client-hash VS: a counter's table is exact, any size.)
        let hashed = |b: &[u8]| VirtualServer {
            algorithm: Algorithm::Hash,
            ..vs(1, b)
        };
        let backends: Vec<u8> = (10..30).collect();
        let many: Vec<u8> = (10..40).collect();
        let installed = desired(&[hashed(&many)], None);
        assert_eq!(installed.services[&hashed(&many).key].size, 127);
        let mut s = PlaneState::default();
        s.set(&hashed(&backends), Some(&installed), &mut Delta::default());
        assert_eq!(s.plane().services[&hashed(&backends).key].size, 127);
        assert_eq!(s.plane(), &desired(&[hashed(&backends)], Some(&installed)));
    }
}
