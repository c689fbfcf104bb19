//! The data plane in nftables: one Ocean-owned table with a constant set
//! of chains, sets and maps, and the `nft -f` script that takes the kernel
//! from what it holds to what it should (pure text; [`crate::nft`] runs it).
//!
//! ```text
//!  nat_pre / nat_out:  ip daddr . l4proto . dport  vmap @services ──► goto conn_<size> | source_<size>
//!  conn_<size>:        (from a real server: mark for masquerade)
//!                      daddr := daddr . l4proto . dport  map @ids   (the VS's id, 0.0.0.0/8)
//!                      dnat to  daddr . (numgen inc mod size)                         map @slots
//!  source_<size>:      the same, slot = jhash saddr mod size
//!  nat_post:           marked ──► masquerade (hairpin)
//!  reject_in/_fwd:     daddr . l4proto . dport in @empty ──► TCP RST / ICMP unreachable
//!  stats_pre / _out:   daddr . l4proto . dport in @vs_traffic, new ones in @vs_new (counters)
//!  stats_post:         saddr . l4proto . sport in @vs_traffic (replies, after the un-NAT)
//! ```
//!
//! Per-VS counters: `vs_new` and `vs_traffic` are sets declared with
//! `counter`, holding every VS key (with or without real servers); a
//! lookup that matches counts the packet on the element. `vs_new` counts
//! the first packet of each connection (`ct state new`: new
//! connections), `vs_traffic` every packet and byte of the VS's
//! connections both ways (client to VIP before the DNAT, mangle priority;
//! VIP back to the client after the un-NAT, postrouting priority 150).
//! Two elements per VS, no chain or set per VS. (A verdict map's element
//! counters are not updated by `vmap` lookups, so the counters cannot
//! ride on `services`.)
//!
//! Slot keys: `id . slot`, the id a small number per served VS
//! ([`crate::vs_ids`]), rather than the VS's own `vip . protocol . port`:
//! nft's cost per element grows with its fields, and slots are most of
//! the table. The dispatch rule looks the id up in `ids` and carries it
//! to the slot lookup in the packet's destination address, which the
//! DNAT of the same rule rewrites at once: no packet mark or other
//! state another program could see or use is touched (nft 1.0 can
//! neither combine two looked-up values in one key nor nest lookups, so
//! the id needs a carrier; the destination is the one field the DNAT
//! replaces anyway). A lookup in `ids` that misses leaves the packet
//! alone, as a VS without a service would.
//!
//! Chains exist once per slot-table size (`rr::conn_sizes` for the
//! counter, `maglev::SIZES` for the client hash), so the rules do not grow
//! with the number of virtual servers; VS and real servers are
//! elements of the sets and maps. A change is the elements that differ,
//! deletes before adds, in one script `nft -f` applies as one transaction:
//! the kernel holds the old state or the new, never a mix.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::net::Ipv4Addr;

use crate::maglev::SIZES;
use crate::plane::{DataPlane, Dispatch, RealServer, Service, SlotTable, VsKey};
use crate::plane_state::Delta;
use crate::rr;
use crate::vs_ids::{IdChanges, VsIds};

/// The table's name (family `ip`).
pub const TABLE: &str = "ocean_elb";
/// The packet mark bit of connections to masquerade (hairpin).
pub const MASQ_MARK: u32 = 0x0000_4000;
/// Elements per `add element` statement: nft parses huge statements
/// slowly, and the kernel takes the whole script as one batch anyway.
const CHUNK: usize = 2_000;

/// A script for `nft -f` and how many elements it changes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Script {
    /// The text; empty when nothing changes.
    pub text: String,
    /// Elements added plus deleted (0: nothing to do).
    pub changes: usize,
    /// Whether it (re)creates the table.
    pub full: bool,
    /// The VS ids it gives and takes ([`VsIds::apply`] once it landed).
    pub ids: IdChanges,
    /// The sizes the big sets are declared with, when it (re)creates the
    /// table.
    pub capacity: Option<Capacity>,
}

/// How many elements the two big sets, `slots` and `rs_addrs`, are
/// declared to hold (nft's `size`). A declared size lets the kernel size
/// the set's hash table once instead of growing it insert by insert
/// (measured: the cold apply's kernel time a quarter lower), but it is
/// also a hard limit: a plane that outgrows it is applied by rebuilding
/// the table with room for it ([`crate::programmer::Programmer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// Slot elements.
    pub slots: usize,
    /// Real-server addresses.
    pub rs_addrs: usize,
}

/// The least either set is declared with.
const MIN_CAPACITY: usize = 1 << 16;

impl Capacity {
    /// Room for twice what `plane` holds, in powers of two, at least
    /// [`MIN_CAPACITY`] each: growth rebuilds rarely.
    pub fn for_plane(plane: &DataPlane) -> Self {
        let room = |n: usize| (2 * n).next_power_of_two().max(MIN_CAPACITY);
        Capacity {
            slots: room(plane.slot_count()),
            rs_addrs: room(plane.rs_addrs.len()),
        }
    }

    /// Whether `plane` fits.
    pub fn fits(&self, plane: &DataPlane) -> bool {
        plane.slot_count() <= self.slots && plane.rs_addrs.len() <= self.rs_addrs
    }
}

/// The chains of the table, by name: what [`crate::nft_read`] checks an
/// installed table against, with each chain's rule count.
pub fn chain_names() -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for size in rr::conn_sizes() {
        out.push((format!("conn_{size}"), 2));
    }
    for size in SIZES {
        out.push((format!("source_{size}"), 2));
    }
    for (name, rules) in [
        ("nat_pre", 1),
        ("nat_out", 1),
        ("nat_post", 1),
        ("reject_in", 2),
        ("reject_fwd", 2),
        ("stats_pre", 2),
        ("stats_out", 2),
        ("stats_post", 1),
    ] {
        out.push((name.to_string(), rules));
    }
    out
}

/// The table without elements, its big sets declared with `cap`.
pub fn skeleton(cap: Capacity) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "table ip {TABLE} {{");
    s.push_str("  map services { type ipv4_addr . inet_proto . inet_service : verdict; }\n");
    s.push_str("  set empty { type ipv4_addr . inet_proto . inet_service; }\n");
    let _ = writeln!(
        s,
        "  set rs_addrs {{ type ipv4_addr; size {}; }}",
        cap.rs_addrs
    );
    s.push_str("  map ids { type ipv4_addr . inet_proto . inet_service : ipv4_addr; }\n");
    for set in STATS_SETS {
        let _ = writeln!(
            s,
            "  set {set} {{ type ipv4_addr . inet_proto . inet_service; counter; }}"
        );
    }
    let _ = writeln!(
        s,
        "  map slots {{ typeof ip daddr . numgen inc mod 7 : ip daddr . th dport; size {}; }}",
        cap.slots
    );
    let vs = "ip daddr . meta l4proto . th dport";
    let conn =
        rr::conn_sizes().map(|size| (Dispatch::Conn, size, format!("numgen inc mod {size}")));
    let source = SIZES.into_iter().map(|size| {
        (
            Dispatch::Source,
            size,
            format!("jhash ip saddr mod {size} seed 0x0"),
        )
    });
    for (d, size, pick) in conn.chain(source) {
        let _ = writeln!(s, "  chain {}_{size} {{", d.as_str());
        let _ = writeln!(
            s,
            "    ip saddr @rs_addrs meta mark set meta mark or {MASQ_MARK:#x}"
        );
        // The transport match is what nft asks of a DNAT with a port.
        let _ = writeln!(
            s,
            "    meta l4proto {{ tcp, udp }} ip daddr set {vs} map @ids dnat ip to ip daddr . {pick} map @slots"
        );
        s.push_str("  }\n");
    }
    for (name, hook, prio) in [
        ("nat_pre", "prerouting", "dstnat"),
        ("nat_out", "output", "-100"),
    ] {
        let _ = writeln!(
            s,
            "  chain {name} {{\n    type nat hook {hook} priority {prio}; policy accept;\n    {vs} vmap @services\n  }}"
        );
    }
    let _ = writeln!(
        s,
        "  chain nat_post {{\n    type nat hook postrouting priority srcnat; policy accept;\n    meta mark and {MASQ_MARK:#x} == {MASQ_MARK:#x} masquerade\n  }}"
    );
    for (name, hook) in [("reject_in", "input"), ("reject_fwd", "forward")] {
        let _ = writeln!(
            s,
            "  chain {name} {{\n    type filter hook {hook} priority filter; policy accept;\n    {vs} @empty reject with tcp reset\n    {vs} @empty reject\n  }}"
        );
    }
    for (name, hook) in [("stats_pre", "prerouting"), ("stats_out", "output")] {
        let _ = writeln!(
            s,
            "  chain {name} {{\n    type filter hook {hook} priority mangle; policy accept;\n    {vs} @vs_traffic\n    ct state new {vs} @vs_new\n  }}"
        );
    }
    let _ = writeln!(
        s,
        "  chain stats_post {{\n    type filter hook postrouting priority 150; policy accept;\n    ip saddr . meta l4proto . th sport @vs_traffic\n  }}"
    );
    s.push_str("}\n");
    s
}

/// The counter sets, each holding every VS key (see the module docs).
pub const STATS_SETS: [&str; 2] = ["vs_new", "vs_traffic"];

/// Whether `plane` has VS `k` (with real servers or without).
fn has_vs(plane: &DataPlane, k: &VsKey) -> bool {
    plane.services.contains_key(k) || plane.empty.contains(k)
}

fn vs_elem(k: &VsKey) -> String {
    format!("{} . {} . {}", k.vip, k.proto, k.port)
}

fn service_elem(k: &VsKey, s: &Service) -> String {
    format!("{} : goto {}_{}", vs_elem(k), s.dispatch.as_str(), s.size)
}

fn id_elem(vs: &VsKey, id: u32) -> String {
    // nft takes a number for an address: shorter, and parsed as fast.
    format!("{} : {id}", vs_elem(vs))
}

fn slot_key(id: u32, slot: u32) -> String {
    format!("{id} . {slot}")
}

fn slot_elem(id: u32, slot: u32, rs: &RealServer) -> String {
    format!("{id} . {slot} : {} . {}", rs.addr, rs.port)
}

/// The slots of `vs` to delete (keys) and to add (elements) from `inst`
/// (whose VS hold `ids`) to `want` (after `changes`): a VS whose table is
/// the very one installed under the same id is skipped.
fn slot_diff(
    inst: &DataPlane,
    ids: &VsIds,
    want: &DataPlane,
    changes: &IdChanges,
    vs: &BTreeSet<VsKey>,
) -> (Vec<String>, Vec<String>) {
    let empty = SlotTable::default();
    let (mut del, mut add) = (Vec::new(), Vec::new());
    for vs in vs {
        let old = inst.slots.get(vs).unwrap_or(&empty);
        let new = want.slots.get(vs).unwrap_or(&empty);
        let (old_id, new_id) = (ids.get(vs), ids.after(changes, vs));
        if old_id == new_id {
            let Some(id) = old_id else { continue };
            if old == new {
                continue;
            }
            for (i, rs) in old.slots.iter() {
                if new.slots.get(i) != Some(rs) {
                    del.push(slot_key(id, *i));
                }
            }
            for (i, rs) in new.slots.iter() {
                if old.slots.get(i) != Some(rs) {
                    add.push(slot_elem(id, *i, rs));
                }
            }
            continue;
        }
        // Served on one side only: all its slots go or come.
        if let Some(id) = old_id {
            del.extend(old.slots.keys().map(|i| slot_key(id, *i)));
        }
        if let Some(id) = new_id {
            add.extend(new.slots.iter().map(|(i, rs)| slot_elem(id, *i, rs)));
        }
    }
    (del, add)
}

fn emit(out: &mut String, verb: &str, set: &str, elems: &[String]) {
    for chunk in elems.chunks(CHUNK) {
        let _ = writeln!(
            out,
            "{verb} element ip {TABLE} {set} {{ {} }}",
            chunk.join(", ")
        );
    }
}

/// The script from `installed` (`None`: no table, or not ours as expected),
/// whose served VS hold `ids`, to `desired`.
pub fn script(installed: Option<(&DataPlane, &VsIds)>, desired: &DataPlane) -> Script {
    let mut out = String::new();
    let Some((inst, ids)) = installed else {
        // Declaring the table first makes the delete succeed when there is
        // none; all of it is still one transaction.
        let _ = writeln!(out, "table ip {TABLE}\ndelete table ip {TABLE}");
        let capacity = Capacity::for_plane(desired);
        out.push_str(&skeleton(capacity));
        let services: Vec<String> = desired
            .services
            .iter()
            .map(|(k, s)| service_elem(k, s))
            .collect();
        let given = VsIds::default().plan(desired, desired.services.keys());
        let id_elems: Vec<String> = given.given.iter().map(|(k, id)| id_elem(k, *id)).collect();
        let slots: Vec<String> = desired
            .slots
            .iter()
            .filter_map(|(vs, t)| Some((given.given.get(vs)?, t)))
            .flat_map(|(id, t)| t.slots.iter().map(move |(i, rs)| slot_elem(*id, *i, rs)))
            .collect();
        let empty: Vec<String> = desired.empty.iter().map(vs_elem).collect();
        let rs: Vec<String> = desired.rs_addrs.iter().map(|a| a.to_string()).collect();
        // Real servers and slots first: a service is only reachable once
        // its slots exist (within the transaction the order does not
        // matter to traffic, but nft checks references in order).
        emit(&mut out, "add", "rs_addrs", &rs);
        emit(&mut out, "add", "ids", &id_elems);
        emit(&mut out, "add", "slots", &slots);
        emit(&mut out, "add", "services", &services);
        emit(&mut out, "add", "empty", &empty);
        let stats: Vec<String> = desired.vs_keys().map(vs_elem).collect();
        for set in STATS_SETS {
            emit(&mut out, "add", set, &stats);
        }
        return Script {
            text: out,
            changes: desired.elements(),
            full: true,
            ids: given,
            capacity: Some(capacity),
        };
    };
    // Every VS either side has, and the addresses on one side only.
    let vs: BTreeSet<VsKey> = [&inst.services, &desired.services]
        .into_iter()
        .flat_map(|m| m.keys())
        .chain(inst.slots.keys())
        .chain(desired.slots.keys())
        .chain(inst.empty.iter())
        .chain(desired.empty.iter())
        .copied()
        .collect();
    let addrs: BTreeSet<Ipv4Addr> = inst
        .rs_addrs
        .symmetric_difference(&desired.rs_addrs)
        .copied()
        .collect();
    diff(inst, ids, desired, &vs, &addrs)
}

/// The script from `installed` to `desired` when they can differ only in
/// the keys `delta` names (what [`crate::plane_state::PlaneState`]
/// reports): a change costs its VS, not a walk of the whole plane.
pub fn script_delta(
    installed: &DataPlane,
    ids: &VsIds,
    desired: &DataPlane,
    delta: &Delta,
) -> Script {
    diff(installed, ids, desired, &delta.vs, &delta.addrs)
}

/// The elements of `vs` and `addrs` that differ, deletes (including the
/// old value of a changed key) before adds.
fn diff(
    inst: &DataPlane,
    ids: &VsIds,
    desired: &DataPlane,
    vs: &BTreeSet<VsKey>,
    addrs: &BTreeSet<Ipv4Addr>,
) -> Script {
    let id_changes = ids.plan(desired, vs);
    let mut out = String::new();
    let mut changes = 0;
    let mut del = |set: &str, elems: Vec<String>, out: &mut String| {
        changes += elems.len();
        emit(out, "delete", set, &elems);
    };
    let services: Vec<String> = vs
        .iter()
        .filter(|&k| {
            inst.services
                .get(k)
                .is_some_and(|s| desired.services.get(k) != Some(s))
        })
        .map(vs_elem)
        .collect();
    del("services", services, &mut out);
    let (slot_dels, slot_adds) = slot_diff(inst, ids, desired, &id_changes, vs);
    del("slots", slot_dels, &mut out);
    let taken: Vec<String> = id_changes.taken.keys().map(vs_elem).collect();
    del("ids", taken, &mut out);
    let empty: Vec<String> = vs
        .iter()
        .filter(|&k| inst.empty.contains(k) && !desired.empty.contains(k))
        .map(vs_elem)
        .collect();
    del("empty", empty, &mut out);
    let rs: Vec<String> = addrs
        .iter()
        .filter(|&a| inst.rs_addrs.contains(a) && !desired.rs_addrs.contains(a))
        .map(|a| a.to_string())
        .collect();
    del("rs_addrs", rs, &mut out);
    // A VS keeps its counters while it exists, with or without real servers.
    let gone: Vec<String> = vs
        .iter()
        .filter(|&k| has_vs(inst, k) && !has_vs(desired, k))
        .map(vs_elem)
        .collect();
    for set in STATS_SETS {
        del(set, gone.clone(), &mut out);
    }
    let mut add = |set: &str, elems: Vec<String>, out: &mut String| {
        changes += elems.len();
        emit(out, "add", set, &elems);
    };
    let rs: Vec<String> = addrs
        .iter()
        .filter(|&a| desired.rs_addrs.contains(a) && !inst.rs_addrs.contains(a))
        .map(|a| a.to_string())
        .collect();
    add("rs_addrs", rs, &mut out);
    let given: Vec<String> = id_changes
        .given
        .iter()
        .map(|(k, id)| id_elem(k, *id))
        .collect();
    add("ids", given, &mut out);
    add("slots", slot_adds, &mut out);
    let services: Vec<String> = vs
        .iter()
        .filter_map(|k| {
            let s = desired.services.get(k)?;
            (inst.services.get(k) != Some(s)).then(|| service_elem(k, s))
        })
        .collect();
    add("services", services, &mut out);
    let empty: Vec<String> = vs
        .iter()
        .filter(|&k| desired.empty.contains(k) && !inst.empty.contains(k))
        .map(vs_elem)
        .collect();
    add("empty", empty, &mut out);
    let new: Vec<String> = vs
        .iter()
        .filter(|&k| has_vs(desired, k) && !has_vs(inst, k))
        .map(vs_elem)
        .collect();
    for set in STATS_SETS {
        add(set, new.clone(), &mut out);
    }
    Script {
        text: out,
        changes,
        full: false,
        ids: id_changes,
        capacity: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Protocol;
    use std::collections::BTreeMap;

    fn vs(vip: &str) -> VsKey {
        VsKey {
            vip: vip.parse().unwrap(),
            proto: Protocol::Tcp,
            port: 80,
        }
    }

    fn rs(addr: &str) -> RealServer {
        RealServer {
            addr: addr.parse().unwrap(),
            port: 8080,
        }
    }

    fn plane(backends: &[&str]) -> DataPlane {
        let mut p = DataPlane::default();
        p.services.insert(
            vs("10.0.0.1"),
            Service {
                dispatch: Dispatch::Conn,
                size: 7,
            },
        );
        let slots: BTreeMap<u32, RealServer> = (0..7u32)
            .map(|slot| (slot, rs(backends[slot as usize % backends.len()])))
            .collect();
        p.slots.insert(vs("10.0.0.1"), SlotTable::of(slots));
        p.rs_addrs = backends.iter().map(|b| b.parse().unwrap()).collect();
        p.empty.insert(vs("10.0.0.2"));
        p
    }

    /// The ids `plane` installed with: 10.0.0.1 holds 1.
    fn ids() -> VsIds {
        VsIds::from_map(BTreeMap::from([(vs("10.0.0.1"), 1)]))
    }

    #[test]
    fn the_same_state_twice_is_no_change() {
        let p = plane(&["10.1.0.2", "10.1.0.3"]);
        assert_eq!(script(Some((&p, &ids())), &p), Script::default());
    }

    #[test]
    fn a_removed_backend_is_exactly_its_slots_and_address() {
        let before = plane(&["10.1.0.2", "10.1.0.3"]);
        let after = plane(&["10.1.0.2"]);
        let s = script(Some((&before, &ids())), &after);
        assert_eq!(
            s.text,
            "delete element ip ocean_elb slots { 1 . 1, 1 . 3, 1 . 5 }\n\
             delete element ip ocean_elb rs_addrs { 10.1.0.3 }\n\
             add element ip ocean_elb slots { 1 . 1 : 10.1.0.2 . 8080, 1 . 3 : 10.1.0.2 . 8080, 1 . 5 : 10.1.0.2 . 8080 }\n"
        );
        assert_eq!(s.changes, 7);
        assert!(!s.full);
        assert!(s.ids.is_empty());
    }

    #[test]
    fn a_vs_losing_its_last_backend_moves_to_empty() {
        let before = plane(&["10.1.0.2"]);
        let mut after = DataPlane::default();
        after.empty.insert(vs("10.0.0.1"));
        after.empty.insert(vs("10.0.0.2"));
        let s = script(Some((&before, &ids())), &after);
        assert!(s
            .text
            .starts_with("delete element ip ocean_elb services { 10.0.0.1 . tcp . 80 }\n"));
        assert!(s
            .text
            .contains("delete element ip ocean_elb ids { 10.0.0.1 . tcp . 80 }\n"));
        assert!(s
            .text
            .ends_with("add element ip ocean_elb empty { 10.0.0.1 . tcp . 80 }\n"));
        // Service, slots, id, address; the empty entry.
        assert_eq!(s.changes, 1 + 7 + 1 + 1 + 1);
        assert_eq!(s.ids.taken, BTreeMap::from([(vs("10.0.0.1"), 1)]));
    }

    #[test]
    fn a_vs_gaining_real_servers_takes_a_free_id_and_its_slots_are_under_it() {
        let before = plane(&["10.1.0.2"]);
        let mut after = before.clone();
        after.empty.remove(&vs("10.0.0.2"));
        after.services.insert(
            vs("10.0.0.2"),
            Service {
                dispatch: Dispatch::Conn,
                size: 2,
            },
        );
        let table = (0..2u32).map(|i| (i, rs("10.1.0.9"))).collect();
        after.slots.insert(vs("10.0.0.2"), SlotTable::of(table));
        after.rs_addrs.insert("10.1.0.9".parse().unwrap());
        let s = script(Some((&before, &ids())), &after);
        assert_eq!(
            s.text,
            "delete element ip ocean_elb empty { 10.0.0.2 . tcp . 80 }\n\
             add element ip ocean_elb rs_addrs { 10.1.0.9 }\n\
             add element ip ocean_elb ids { 10.0.0.2 . tcp . 80 : 2 }\n\
             add element ip ocean_elb slots { 2 . 0 : 10.1.0.9 . 8080, 2 . 1 : 10.1.0.9 . 8080 }\n\
             add element ip ocean_elb services { 10.0.0.2 . tcp . 80 : goto conn_2 }\n"
        );
        assert_eq!(s.ids.given, BTreeMap::from([(vs("10.0.0.2"), 2)]));
    }

    #[test]
    fn a_vs_keeps_its_counters_while_it_exists() {
        let before = plane(&["10.1.0.2"]);
        // 10.0.0.2 goes away, 10.0.0.3 arrives; 10.0.0.1 changes nothing.
        let mut after = before.clone();
        after.empty.remove(&vs("10.0.0.2"));
        after.empty.insert(vs("10.0.0.3"));
        let s = script(Some((&before, &ids())), &after);
        assert_eq!(
            s.text,
            "delete element ip ocean_elb empty { 10.0.0.2 . tcp . 80 }\n\
             delete element ip ocean_elb vs_new { 10.0.0.2 . tcp . 80 }\n\
             delete element ip ocean_elb vs_traffic { 10.0.0.2 . tcp . 80 }\n\
             add element ip ocean_elb empty { 10.0.0.3 . tcp . 80 }\n\
             add element ip ocean_elb vs_new { 10.0.0.3 . tcp . 80 }\n\
             add element ip ocean_elb vs_traffic { 10.0.0.3 . tcp . 80 }\n"
        );
        assert_eq!(s.changes, 6);
    }

    #[test]
    fn without_a_table_the_script_builds_it_whole() {
        let p = plane(&["10.1.0.2"]);
        let s = script(None, &p);
        assert!(s.full);
        assert!(s
            .text
            .starts_with("table ip ocean_elb\ndelete table ip ocean_elb\ntable ip ocean_elb {\n"));
        assert!(s.text.contains("  chain conn_61 {\n    ip saddr @rs_addrs meta mark set meta mark or 0x4000\n    meta l4proto { tcp, udp } ip daddr set ip daddr . meta l4proto . th dport map @ids dnat ip to ip daddr . numgen inc mod 61 map @slots\n  }\n"));
        assert!(s
            .text
            .contains("add element ip ocean_elb ids { 10.0.0.1 . tcp . 80 : 1 }\nadd element ip ocean_elb slots { 1 . 0 : 10.1.0.2 . 8080, 1 . 1 : 10.1.0.2 . 8080, "));
        assert_eq!(s.ids.given, ids().iter().map(|(k, v)| (*k, *v)).collect());
        assert!(s
            .text
            .contains("add element ip ocean_elb services { 10.0.0.1 . tcp . 80 : goto conn_7 }\n"));
        assert!(s
            .text
            .contains("add element ip ocean_elb empty { 10.0.0.2 . tcp . 80 }\n"));
        // Every VS, served or empty, has its counters.
        assert!(s.text.ends_with(
            "add element ip ocean_elb vs_new { 10.0.0.1 . tcp . 80, 10.0.0.2 . tcp . 80 }\n\
             add element ip ocean_elb vs_traffic { 10.0.0.1 . tcp . 80, 10.0.0.2 . tcp . 80 }\n"
        ));
        // Service, id, slots, address, empty, two counters each.
        assert_eq!(s.changes, 1 + 1 + 7 + 1 + 1 + 2 * 2);
        // 70 counter and 10 hash dispatch chains, 8 hooks: constant
        // whatever the VS count.
        assert_eq!(s.text.matches("  chain ").count(), 88);
        assert_eq!(chain_names().len(), 88);
    }
}
