//! A network of namespaces whose links a test can cut: every node (a
//! master, an agent, the clients) has its own namespace, linked by a veth
//! pair to a hub namespace that routes between them on 10.250.0.0/16, so
//! no address outside the test's own namespaces is ever a target. Cuts are
//! nftables drops in the *sender's* namespace (table `inet ocean_chaos`,
//! rewritten whole at each change): a cut from A to B drops (all or a
//! share of) A's packets to B, so one-way loss is a cut in one direction
//! only. Everything goes with the namespaces when the [`PartNet`] drops,
//! also on a panic.

use std::collections::BTreeMap;

use crate::netns::Netns;

/// The namespaces of one partitionable network.
#[derive(Debug)]
pub struct PartNet {
    /// One namespace per node, in the order the roles were given.
    pub nodes: Vec<Netns>,
    /// What each node was made for (`m1`, `a0`, `cl`, ...).
    pub roles: Vec<String>,
    /// Dropped shares in percent (100 = cut), by (from, to) node index.
    drops: BTreeMap<(usize, usize), u8>,
    // Dropped last: its veth ends go with it.
    hub: Netns,
}

/// Node `i`'s address.
pub fn addr(i: usize) -> String {
    format!("10.250.{}.2", i + 1)
}

impl PartNet {
    /// A hub and one namespace per role (short names: they end the
    /// namespaces' names), each node at [`addr`] with its default route
    /// through the hub.
    pub fn new(roles: &[&str]) -> anyhow::Result<Self> {
        anyhow::ensure!(roles.len() < 250, "at most 249 nodes");
        // A run killed by its time limit never ran its drop guards: its
        // namespaces (and their processes) go now.
        crate::netns::reap_orphans();
        let hub = Netns::new("hub")?;
        hub.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        let mut nodes = Vec::new();
        for (i, role) in roles.iter().enumerate() {
            let ns = Netns::new(role)?;
            hub.link(
                &format!("n{i}"),
                &format!("10.250.{}.1", i + 1),
                &ns,
                "eth0",
                &addr(i),
            )?;
            ns.ip(&[
                "route",
                "add",
                "10.250.0.0/16",
                "via",
                &format!("10.250.{}.1", i + 1),
            ])?;
            nodes.push(ns);
        }
        Ok(PartNet {
            nodes,
            roles: roles.iter().map(|r| r.to_string()).collect(),
            drops: BTreeMap::new(),
            hub,
        })
    }

    /// Node `i`'s namespace name.
    pub fn ns(&self, i: usize) -> &str {
        &self.nodes[i].name
    }

    /// Drops `percent` of the packets `from` sends to `to` (100: all; 0:
    /// none, the same as [`PartNet::heal_one`]).
    pub fn drop_share(&mut self, from: usize, to: usize, percent: u8) -> anyhow::Result<()> {
        if percent == 0 {
            self.drops.remove(&(from, to));
        } else {
            self.drops.insert((from, to), percent.min(100));
        }
        self.apply(from)
    }

    /// Cuts both directions between `a` and every node of `others`.
    pub fn isolate(&mut self, a: usize, others: &[usize]) -> anyhow::Result<()> {
        for &o in others {
            self.drops.insert((a, o), 100);
            self.drops.insert((o, a), 100);
        }
        self.apply(a)?;
        for &o in others {
            self.apply(o)?;
        }
        Ok(())
    }

    /// Removes the drops from `from` to `to`.
    pub fn heal_one(&mut self, from: usize, to: usize) -> anyhow::Result<()> {
        self.drop_share(from, to, 0)
    }

    /// Removes every drop.
    pub fn heal(&mut self) -> anyhow::Result<()> {
        let senders: std::collections::BTreeSet<usize> =
            self.drops.keys().map(|(f, _)| *f).collect();
        self.drops.clear();
        for f in senders {
            self.apply(f)?;
        }
        Ok(())
    }

    /// The drops in force, as (from, to, percent).
    pub fn drops(&self) -> Vec<(usize, usize, u8)> {
        self.drops.iter().map(|((f, t), p)| (*f, *t, *p)).collect()
    }

    /// Rewrites node `from`'s table from the drops it sends (one nft
    /// transaction, so no packet sees half a change).
    fn apply(&self, from: usize) -> anyhow::Result<()> {
        let mut rules = String::new();
        for ((f, to), p) in &self.drops {
            if *f != from {
                continue;
            }
            if *p >= 100 {
                rules.push_str(&format!("    ip daddr {} drop\n", addr(*to)));
            } else {
                rules.push_str(&format!(
                    "    ip daddr {} numgen random mod 100 < {p} drop\n",
                    addr(*to)
                ));
            }
        }
        let script = format!(
            "table inet ocean_chaos {{}}\ndelete table inet ocean_chaos\n\
             table inet ocean_chaos {{\n  chain out {{\n    type filter hook output priority 0; policy accept;\n{rules}  }}\n}}\n"
        );
        self.nodes[from].nft(&script)
    }

    /// The hub's namespace name (for diagnostics).
    pub fn hub(&self) -> &str {
        &self.hub.name
    }
}
