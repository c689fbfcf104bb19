//! The data plane as data: from ELB objects and tasks, what the LB host's
//! kernel should hold. Pure: no I/O, tested with exact outputs.
//!
//! ```text
//!  ElbSpec ─┐ per VIP × listener port/protocol: a virtual server (VS)
//!  tasks ───┼─► backends(): RUNNING, not unhealthy, not stopping ─► real servers
//!  rr/wrr: rr::table (exact, one slot per weight unit) ─┐
//!  hash: installed sizes ─► maglev::table_size ─► maglev::table ─► slots (VS, i) → RS
//!                   ▼
//!  DataPlane { services: VS → (dispatch, size), slots, empty, rs_addrs }
//! ```
//!
//! The kernel side ([`crate::nft_script`]) holds this in a constant number
//! of named sets and maps of one table, whatever the number of VS.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;

use crate::backends::{real_server_of, JobTasks};
use crate::maglev::{self, Member};
use crate::rr;
use crate::spec::{Algorithm, ElbSpec, Protocol};

/// A virtual server: VIP, protocol, port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VsKey {
    /// The VIP.
    pub vip: Ipv4Addr,
    /// tcp or udp.
    pub proto: Protocol,
    /// The port on the VIP.
    pub port: u16,
}

impl fmt::Display for VsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.vip, self.port, self.proto)
    }
}

/// A real server's address as the data plane rewrites to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RealServer {
    /// Its IPv4 address.
    pub addr: Ipv4Addr,
    /// Its port.
    pub port: u16,
}

impl fmt::Display for RealServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.addr, self.port)
    }
}

/// What a new connection's slot is chosen by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dispatch {
    /// A counter over the slots: each new connection the next slot
    /// (rr, and wrr through the weighted table).
    Conn,
    /// A hash of the client's address (hash): a client sticks.
    Source,
}

impl Dispatch {
    /// Of an algorithm.
    pub fn of(alg: Algorithm) -> Self {
        match alg {
            Algorithm::Rr | Algorithm::Wrr => Dispatch::Conn,
            Algorithm::Hash => Dispatch::Source,
        }
    }

    /// The prefix of its chains in the table.
    pub fn as_str(self) -> &'static str {
        match self {
            Dispatch::Conn => "conn",
            Dispatch::Source => "source",
        }
    }
}

/// How a VS with real servers dispatches: by what, over how many slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Service {
    /// Counter or client hash.
    pub dispatch: Dispatch,
    /// Its slot-table size (one of [`maglev::SIZES`]).
    pub size: u32,
}

/// One VS's slot table: slot index to real server. Shared (`Arc`) so a
/// plane that keeps most VS as they were copies pointers, not tables, and
/// a diff skips a VS whose table is the very one installed.
#[derive(Debug, Clone, Default)]
pub struct SlotTable {
    /// The slots the kernel holds (or should) for the VS.
    pub slots: Arc<BTreeMap<u32, RealServer>>,
    /// The weighted real servers the table was computed from; `None` for a
    /// table read back from the kernel. A VS whose real servers and size
    /// are unchanged reuses its table instead of recomputing it.
    built_from: Option<Arc<Vec<(RealServer, u32)>>>,
}

impl SlotTable {
    /// A table of exactly `slots` (as read back from the kernel).
    pub fn of(slots: BTreeMap<u32, RealServer>) -> Self {
        SlotTable {
            slots: Arc::new(slots),
            built_from: None,
        }
    }

    /// The table whose slot `i` is `inputs[owners[i]]`.
    fn built(inputs: Vec<(RealServer, u32)>, owners: Vec<usize>) -> Self {
        let slots = owners
            .into_iter()
            .enumerate()
            .map(|(slot, owner)| (slot as u32, inputs[owner].0))
            .collect();
        SlotTable {
            slots: Arc::new(slots),
            built_from: Some(Arc::new(inputs)),
        }
    }

    /// Whether both are the same shared table (cheap; equal tables may
    /// still be different allocations).
    pub fn same(&self, other: &SlotTable) -> bool {
        Arc::ptr_eq(&self.slots, &other.slots)
    }
}

impl PartialEq for SlotTable {
    fn eq(&self, other: &Self) -> bool {
        self.same(other) || self.slots == other.slots
    }
}

impl Eq for SlotTable {}

/// What the LB host's kernel should hold (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataPlane {
    /// VS with at least one real server.
    pub services: BTreeMap<VsKey, Service>,
    /// Each such VS's slot table.
    pub slots: BTreeMap<VsKey, SlotTable>,
    /// VS without any real server: new connections are refused (TCP RST,
    /// ICMP port unreachable for UDP) rather than black-holed.
    pub empty: BTreeSet<VsKey>,
    /// Addresses of every real server: a connection from one of them
    /// through a VIP is masqueraded so the reply comes back (hairpin).
    pub rs_addrs: BTreeSet<Ipv4Addr>,
}

impl DataPlane {
    /// Elements in the kernel's sets and maps (the apply's size): each
    /// VS is also an element of the two counter sets, and each served VS
    /// of `ids`.
    pub fn elements(&self) -> usize {
        3 * (self.services.len() + self.empty.len())
            + self.services.len()
            + self.slot_count()
            + self.rs_addrs.len()
    }

    /// Every VS, with real servers or without (the counter sets' keys).
    pub fn vs_keys(&self) -> impl Iterator<Item = &VsKey> {
        self.services.keys().chain(self.empty.iter())
    }

    /// Slots over every VS.
    pub fn slot_count(&self) -> usize {
        self.slots.values().map(|t| t.slots.len()).sum()
    }

    /// How `vs` serves, if it has real servers.
    pub fn serving(&self, vs: &VsKey) -> Option<(&Service, &SlotTable)> {
        Some((self.services.get(vs)?, self.slots.get(vs)?))
    }

    /// The real server behind one slot of a VS.
    pub fn slot(&self, vs: &VsKey, slot: u32) -> Option<RealServer> {
        self.slots.get(vs)?.slots.get(&slot).copied()
    }
}

/// One VS as the ELBs define it, with its weighted real servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualServer {
    /// VIP:port/protocol.
    pub key: VsKey,
    /// The ELB it belongs to.
    pub elb: String,
    /// Its algorithm.
    pub algorithm: Algorithm,
    /// Its real servers in order of address, each with its weight (wrr).
    pub real_servers: Vec<(RealServer, u32)>,
}

/// The virtual servers of `elbs`, each with the backends among `tasks`
/// (tasks indexed by job id). A job behind two listeners of one port
/// counts once.
pub fn virtual_servers<'a>(
    elbs: impl IntoIterator<Item = &'a ElbSpec>,
    tasks_of: &dyn Fn(&str) -> JobTasks<'a>,
) -> Vec<VirtualServer> {
    let mut out = Vec::new();
    for elb in elbs {
        // Listeners sharing a port and protocol form one VS.
        let mut groups: BTreeMap<(Protocol, u16), Vec<&crate::spec::Listener>> = BTreeMap::new();
        for l in &elb.listeners {
            if let Ok(port) = u16::try_from(l.port) {
                groups.entry((l.protocol, port)).or_default().push(l);
            }
        }
        for ((proto, port), listeners) in &groups {
            let algorithm = listeners[0].algorithm;
            let mut rs: Vec<(RealServer, u32)> = Vec::new();
            for l in listeners {
                let weight = if algorithm == Algorithm::Wrr {
                    l.weight
                } else {
                    1
                };
                let job = tasks_of(&l.backend_job);
                for t in job.tasks {
                    if let Some(r) = real_server_of(t, &l.backend_port_name, job.checked) {
                        rs.push((r, weight));
                    }
                }
            }
            // In address order, each once (the first listener's weight:
            // the sort is stable).
            rs.sort_by_key(|(r, _)| *r);
            rs.dedup_by_key(|(r, _)| *r);
            for vip in elb.vip_addrs() {
                out.push(VirtualServer {
                    key: VsKey {
                        vip,
                        proto: *proto,
                        port: *port,
                    },
                    elb: elb.name.clone(),
                    algorithm,
                    real_servers: rs.clone(),
                });
            }
        }
    }
    out
}

/// The data plane for `vss`. `installed` (what the kernel holds now)
/// lends each VS its current table size, so a backend change keeps the
/// table and moves few slots, and its table itself when the VS's real
/// servers are unchanged, so a change costs the VS it touches, not all.
pub fn desired(vss: &[VirtualServer], installed: Option<&DataPlane>) -> DataPlane {
    let mut plane = DataPlane::default();
    let mut addrs = Vec::new();
    for vs in vss {
        let current = installed.and_then(|p| p.serving(&vs.key));
        match serving(vs, current) {
            None => {
                plane.empty.insert(vs.key);
            }
            Some((service, table)) => {
                plane.slots.insert(vs.key, table);
                plane.services.insert(vs.key, service);
                addrs.extend(vs.real_servers.iter().map(|(rs, _)| rs.addr));
            }
        }
    }
    // Built in bulk from sorted addresses: far cheaper than inserting
    // each of tens of thousands one by one on every change.
    addrs.sort_unstable();
    addrs.dedup();
    plane.rs_addrs = addrs.into_iter().collect();
    plane
}

/// How `vs` serves (`None`: it has no real server and refuses), given how
/// it serves now (`current`, from the installed plane): the current table
/// size is kept while it fits, and the current table itself when the
/// real servers are the ones it was built from.
pub(crate) fn serving(
    vs: &VirtualServer,
    current: Option<(&Service, &SlotTable)>,
) -> Option<(Service, SlotTable)> {
    if vs.real_servers.is_empty() {
        return None;
    }
    let weights: Vec<u32> = vs.real_servers.iter().map(|(_, w)| *w).collect();
    let dispatch = Dispatch::of(vs.algorithm);
    // A counter needs no consistent hashing: an exact table (see rr).
    let exact = match dispatch {
        Dispatch::Conn => rr::exact_size(&weights),
        Dispatch::Source => None,
    };
    let size = exact.unwrap_or_else(|| maglev::table_size(&weights, current.map(|(s, _)| s.size)));
    let inputs = &vs.real_servers;
    let kept = current
        .filter(|(s, t)| s.size == size && t.built_from.as_deref() == Some(inputs))
        .map(|(_, t)| t.clone());
    let table = kept.unwrap_or_else(|| match exact {
        Some(_) => SlotTable::built(inputs.clone(), rr::table(&weights)),
        None => slot_table(inputs.clone(), size),
    });
    Some((Service { dispatch, size }, table))
}

fn slot_table(inputs: Vec<(RealServer, u32)>, size: u32) -> SlotTable {
    let keys: Vec<String> = inputs.iter().map(|(rs, _)| rs.to_string()).collect();
    let members: Vec<Member<'_>> = keys
        .iter()
        .zip(&inputs)
        .map(|(key, (_, weight))| Member {
            key,
            weight: *weight,
        })
        .collect();
    let owners = maglev::table(&members, size);
    SlotTable::built(inputs, owners)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Listener, Network};
    use ocean_client::api::{Task, TaskPort};

    const JOB: &str = "cop.x_owt.y_pdl.web_servicegroup.g_service.front_job.api_cluster.c3";

    fn elb(vips: &[&str], algorithm: Algorithm) -> ElbSpec {
        ElbSpec {
            name: "pdl.web_service.front".into(),
            idc: "c3".into(),
            network: Network::Internal,
            vips: vips.iter().map(|s| s.to_string()).collect(),
            listeners: vec![Listener {
                port: 80,
                protocol: Protocol::Tcp,
                backend_job: JOB.into(),
                backend_port_name: "http".into(),
                algorithm,
                weight: 1,
            }],
            domain: None,
            views: Vec::new(),
        }
    }

    pub(crate) fn task(n: u32, addr: &str, state: &str, healthy: Option<bool>) -> Task {
        Task {
            id: format!("{JOB}.{n}"),
            job_id: JOB.into(),
            state: state.into(),
            address: addr.into(),
            healthy,
            ports: vec![TaskPort {
                name: "http".into(),
                port: 8080,
            }],
            ..Default::default()
        }
    }

    fn vip(s: &str) -> VsKey {
        VsKey {
            vip: s.parse().unwrap(),
            proto: Protocol::Tcp,
            port: 80,
        }
    }

    #[test]
    fn two_healthy_backends_fill_one_exact_slot_each_and_the_rest_stay_out() {
        let tasks = [
            task(1, "10.1.0.2", "RUNNING", Some(true)),
            task(2, "10.1.0.3", "RUNNING", None),
            task(3, "10.1.0.4", "RUNNING", Some(false)),
            task(4, "10.1.0.5", "STARTING", None),
        ];
        let e = [elb(&["10.0.0.1"], Algorithm::Rr)];
        let vss = virtual_servers(&e, &|_| tasks.iter().collect());
        let plane = desired(&vss, None);
        let a = RealServer {
            addr: "10.1.0.2".parse().unwrap(),
            port: 8080,
        };
        let b = RealServer {
            addr: "10.1.0.3".parse().unwrap(),
            port: 8080,
        };
        assert_eq!(
            plane.services,
            BTreeMap::from([(
                vip("10.0.0.1"),
                Service {
                    dispatch: Dispatch::Conn,
                    size: 2
                }
            )])
        );
        let slots: Vec<RealServer> = plane.slots[&vip("10.0.0.1")]
            .slots
            .values()
            .copied()
            .collect();
        // rr: a counter picks the slot, so one slot each, in order.
        assert_eq!(slots, vec![a, b]);
        assert_eq!(plane.rs_addrs, BTreeSet::from([a.addr, b.addr]));
        assert!(plane.empty.is_empty());
        // The service, its id, its slots, the addresses, its two counters.
        assert_eq!(plane.elements(), 1 + 1 + 2 + 2 + 2);
    }

    #[test]
    fn a_vs_without_backends_is_listed_as_empty_per_vip() {
        let e = [elb(&["10.0.0.1", "10.0.0.2"], Algorithm::Hash)];
        let vss = virtual_servers(&e, &|_| JobTasks::default());
        let plane = desired(&vss, None);
        assert_eq!(
            plane.empty,
            BTreeSet::from([vip("10.0.0.1"), vip("10.0.0.2")])
        );
        // Each in `empty` and in the two counter sets.
        assert_eq!(plane.elements(), 2 * 3);
    }

    #[test]
    fn the_installed_size_is_kept_so_one_less_backend_moves_few_slots() {
        let mut tasks: Vec<Task> = (0..21)
            .map(|i| task(i, &format!("10.1.0.{}", i + 10), "RUNNING", Some(true)))
            .collect();
        let e = [elb(&["10.0.0.1"], Algorithm::Hash)];
        let before = desired(&virtual_servers(&e, &|_| tasks.iter().collect()), None);
        assert_eq!(before.services[&vip("10.0.0.1")].size, 127);
        tasks.remove(5);
        let after = desired(
            &virtual_servers(&e, &|_| tasks.iter().collect()),
            Some(&before),
        );
        assert_eq!(
            after.services[&vip("10.0.0.1")],
            Service {
                dispatch: Dispatch::Source,
                size: 127
            }
        );
        let v = vip("10.0.0.1");
        let moved = (0..127)
            .filter(|&i| before.slot(&v, i) != after.slot(&v, i))
            .count();
        // The leaver's ~6 slots, and Maglev's extra moves (up to ~3x at
        // this slots-per-backend ratio): far from a reshuffle.
        assert!((4..=20).contains(&moved), "moved {moved} of 127");
        // Without the installed size the table shrinks and reshuffles.
        let fresh = desired(&virtual_servers(&e, &|_| tasks.iter().collect()), None);
        assert_eq!(fresh.services[&vip("10.0.0.1")].size, 61);
    }

    #[test]
    fn a_vs_whose_real_servers_are_unchanged_keeps_its_very_table() {
        // Exact rr tables and Maglev ones alike.
        for alg in [Algorithm::Rr, Algorithm::Hash] {
            unchanged_real_servers_keep_their_table(alg);
        }
    }

    fn unchanged_real_servers_keep_their_table(alg: Algorithm) {
        let mut tasks: Vec<Task> = (0..4)
            .map(|i| task(i, &format!("10.1.0.{}", i + 10), "RUNNING", Some(true)))
            .collect();
        let e = [elb(&["10.0.0.1", "10.0.0.2"], alg)];
        let before = desired(&virtual_servers(&e, &|_| tasks.iter().collect()), None);
        let again = desired(
            &virtual_servers(&e, &|_| tasks.iter().collect()),
            Some(&before),
        );
        for v in ["10.0.0.1", "10.0.0.2"] {
            assert!(again.slots[&vip(v)].same(&before.slots[&vip(v)]));
        }
        tasks[1].healthy = Some(false);
        let after = desired(
            &virtual_servers(&e, &|_| tasks.iter().collect()),
            Some(&again),
        );
        let t = &after.slots[&vip("10.0.0.1")];
        assert!(!t.same(&before.slots[&vip("10.0.0.1")]));
        // Recomputed from the remaining three: none points at the leaver.
        assert_eq!(
            t,
            &desired(
                &virtual_servers(&e, &|_| tasks.iter().collect()),
                Some(&before)
            )
            .slots[&vip("10.0.0.1")]
        );
        assert!(t.slots.values().all(|r| r.addr.to_string() != "10.1.0.11"));
        // A table read back from the kernel has no inputs: recomputed,
        // equal, not shared.
        let mut read = before.clone();
        read.slots = before
            .slots
            .iter()
            .map(|(k, t)| (*k, SlotTable::of((*t.slots).clone())))
            .collect();
        let fresh = desired(
            &virtual_servers(&e, &|_| tasks.iter().collect()),
            Some(&read),
        );
        assert_eq!(fresh, after);
    }

    #[test]
    fn wrr_weights_split_the_slots_between_jobs() {
        let canary = "cop.x_owt.y_pdl.web_servicegroup.g_service.front_job.canary_cluster.c3";
        let mut e = elb(&["10.0.0.1"], Algorithm::Wrr);
        e.listeners[0].weight = 9;
        let mut l = e.listeners[0].clone();
        l.backend_job = canary.into();
        l.weight = 1;
        e.listeners.push(l);
        let main = task(1, "10.1.0.2", "RUNNING", Some(true));
        let mut c = task(2, "10.1.0.3", "RUNNING", Some(true));
        c.job_id = canary.into();
        let elbs = [e];
        let vss = virtual_servers(&elbs, &|job| {
            if job == JOB {
                [&main].into_iter().collect()
            } else {
                [&c].into_iter().collect()
            }
        });
        assert_eq!(vss.len(), 1);
        let plane = desired(&vss, None);
        assert_eq!(plane.services[&vip("10.0.0.1")].size, 10);
        let to_canary = plane.slots[&vip("10.0.0.1")]
            .slots
            .values()
            .filter(|r| r.addr.to_string() == "10.1.0.3")
            .count();
        assert_eq!(to_canary, 1, "1 of 10 slots at weight 1:9");
    }
}
