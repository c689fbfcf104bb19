//! [`VsIds`]: a small number per served VS, the first half of its slot
//! keys in the kernel.
//!
//! nft parses and allocates per field of an element, and the slot map
//! holds most of the table (20 slots per VS at 20 real servers): keying a
//! slot by `id . slot` instead of `vip . protocol . port . slot` makes
//! the cold apply of 2,000 VS / 40,000 real servers about a fifth
//! cheaper (docs/benchmarks.md, "ELB"). The `ids` map gives the dispatch
//! rule the id of the VS a packet is for.
//!
//! The ids belong to what the kernel holds, not to the desired state:
//! they are read back from the `ids` map at start, a VS keeps its id as
//! long as it has real servers (so re-applying the same state changes
//! nothing, and a diff stays the elements that differ), a VS that gains
//! real servers takes the smallest id no installed VS holds (never one
//! freed in the same transaction), and one that loses them gives its id
//! back.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use crate::plane::{DataPlane, VsKey};

/// The id of each served VS, as installed (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VsIds {
    by_vs: BTreeMap<VsKey, u32>,
}

/// What a transaction does to the ids: given to VS that gain real
/// servers, taken from VS that lose them (with the id they had).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdChanges {
    /// New VS and their ids.
    pub given: BTreeMap<VsKey, u32>,
    /// VS losing their id, and the id.
    pub taken: BTreeMap<VsKey, u32>,
}

impl IdChanges {
    /// No id given or taken.
    pub fn is_empty(&self) -> bool {
        self.given.is_empty() && self.taken.is_empty()
    }
}

/// An id as the kernel holds it: an address in 0.0.0.0/8 ("this
/// network", never a packet's real destination), which is what the
/// dispatch rule writes into the packet's destination before the DNAT
/// rewrites it (see [`crate::nft_script`]).
pub fn id_addr(id: u32) -> Ipv4Addr {
    Ipv4Addr::from(id)
}

impl VsIds {
    /// Ids as read back from the kernel.
    pub fn from_map(by_vs: BTreeMap<VsKey, u32>) -> Self {
        VsIds { by_vs }
    }

    /// The id of `vs`, if it has one.
    pub fn get(&self, vs: &VsKey) -> Option<u32> {
        self.by_vs.get(vs).copied()
    }

    /// Every VS with its id.
    pub fn iter(&self) -> impl Iterator<Item = (&VsKey, &u32)> {
        self.by_vs.iter()
    }

    /// How many VS hold an id.
    pub fn len(&self) -> usize {
        self.by_vs.len()
    }

    /// No VS holds an id.
    pub fn is_empty(&self) -> bool {
        self.by_vs.is_empty()
    }

    /// The ids `desired` needs among the VS `keys`, from these: a VS
    /// served on both sides keeps its id, one served only in `desired`
    /// is given the smallest id none of these holds, one holding an id
    /// but no longer served gives it back.
    pub fn plan<'a>(
        &self,
        desired: &DataPlane,
        keys: impl IntoIterator<Item = &'a VsKey>,
    ) -> IdChanges {
        let mut changes = IdChanges::default();
        let mut fresh = Fresh::new(self);
        for vs in keys {
            let served = desired.services.contains_key(vs);
            match (self.get(vs), served) {
                (Some(id), false) => {
                    changes.taken.insert(*vs, id);
                }
                (None, true) => {
                    changes.given.insert(*vs, fresh.next());
                }
                _ => {}
            }
        }
        changes
    }

    /// Records a transaction that landed.
    pub fn apply(&mut self, changes: &IdChanges) {
        for vs in changes.taken.keys() {
            self.by_vs.remove(vs);
        }
        for (vs, id) in &changes.given {
            self.by_vs.insert(*vs, *id);
        }
    }

    /// The id `vs` has after `changes` (`None`: not served).
    pub fn after(&self, changes: &IdChanges, vs: &VsKey) -> Option<u32> {
        if let Some(id) = changes.given.get(vs) {
            return Some(*id);
        }
        if changes.taken.contains_key(vs) {
            return None;
        }
        self.get(vs)
    }
}

/// Hands out the smallest ids not held, in order.
struct Fresh<'a> {
    ids: &'a VsIds,
    /// The ids held, collected on first use: most diffs give none.
    held: Option<BTreeSet<u32>>,
    next: u32,
}

impl<'a> Fresh<'a> {
    fn new(ids: &'a VsIds) -> Self {
        Fresh {
            ids,
            held: None,
            next: 1,
        }
    }

    fn next(&mut self) -> u32 {
        let ids = self.ids;
        let held = self
            .held
            .get_or_insert_with(|| ids.by_vs.values().copied().collect());
        while held.contains(&self.next) {
            self.next += 1;
        }
        let id = self.next;
        self.next += 1;
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plane::{Dispatch, Service};
    use crate::spec::Protocol;

    fn vs(n: u8) -> VsKey {
        VsKey {
            vip: Ipv4Addr::new(10, 0, 0, n),
            proto: Protocol::Tcp,
            port: 80,
        }
    }

    fn served(ns: &[u8]) -> DataPlane {
        let mut p = DataPlane::default();
        for n in ns {
            p.services.insert(
                vs(*n),
                Service {
                    dispatch: Dispatch::Conn,
                    size: 2,
                },
            );
        }
        p
    }

    #[test]
    fn a_cold_table_numbers_from_one_in_key_order() {
        let want = served(&[3, 1, 2]);
        let c = VsIds::default().plan(&want, want.services.keys());
        assert_eq!(
            c.given,
            BTreeMap::from([(vs(1), 1), (vs(2), 2), (vs(3), 3)])
        );
        assert!(c.taken.is_empty());
    }

    #[test]
    fn kept_vs_keep_their_ids_and_a_freed_id_waits_for_the_next_transaction() {
        // Installed: 1 → 7, 2 → 1 (ids need not follow key order).
        let mut ids = VsIds::from_map(BTreeMap::from([(vs(1), 7), (vs(2), 1)]));
        // VS 2 loses its real servers, VS 3 gains some: 3 takes 2 (the
        // smallest id nobody installed holds), not the 1 freed beside it.
        let want = served(&[1, 3]);
        let keys = [vs(1), vs(2), vs(3)];
        let c = ids.plan(&want, &keys);
        assert_eq!(c.given, BTreeMap::from([(vs(3), 2)]));
        assert_eq!(c.taken, BTreeMap::from([(vs(2), 1)]));
        assert_eq!(ids.after(&c, &vs(1)), Some(7));
        assert_eq!(ids.after(&c, &vs(2)), None);
        ids.apply(&c);
        assert_eq!(
            ids,
            VsIds::from_map(BTreeMap::from([(vs(1), 7), (vs(3), 2)]))
        );
        // The same state again: nothing given or taken.
        assert!(ids.plan(&want, &keys).is_empty());
        // Now 1 is free again.
        let c = ids.plan(&served(&[1, 3, 4]), &[vs(4)]);
        assert_eq!(c.given, BTreeMap::from([(vs(4), 1)]));
    }

    #[test]
    fn an_id_is_an_address_of_this_network() {
        assert_eq!(id_addr(5), Ipv4Addr::new(0, 0, 0, 5));
        assert_eq!(id_addr(0x00ff_ffff), Ipv4Addr::new(0, 255, 255, 255));
    }
}
