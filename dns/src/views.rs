//! Answers that depend on who asks: an ELB's views map client networks to
//! some of its VIPs (the seed's lines per ISP).
//!
//! The client is the query's EDNS Client Subnet when a resolver sends one
//! (RFC 7871), else the packet's source address. The longest matching
//! prefix over all views wins, so a narrow subnet carved out of a wide one
//! in another view is served by its own view. A client in no view gets the
//! name's default addresses (every VIP).

use std::net::IpAddr;

use ipnet::IpNet;

/// A name's views: which addresses each client network gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Views {
    /// Every subnet with its view, longest prefix first.
    nets: Vec<(IpNet, u16)>,
    /// The addresses of each view, sorted.
    answers: Vec<Vec<IpAddr>>,
}

/// Which view a client falls in (`None`: none, the default answer).
pub type ViewId = Option<u16>;

impl Views {
    /// Views from `(subnets, addresses)` pairs; a view with no subnet or
    /// no address is left out (the framework validates what it stores).
    /// `None` when no view is left.
    pub fn new(views: impl IntoIterator<Item = (Vec<IpNet>, Vec<IpAddr>)>) -> Option<Self> {
        let mut out = Views {
            nets: Vec::new(),
            answers: Vec::new(),
        };
        for (nets, mut addrs) in views {
            if nets.is_empty() || addrs.is_empty() || out.answers.len() >= usize::from(u16::MAX) {
                continue;
            }
            addrs.sort();
            addrs.dedup();
            let id = out.answers.len() as u16;
            out.answers.push(addrs);
            out.nets.extend(nets.into_iter().map(|n| (n.trunc(), id)));
        }
        // Longest prefix first; among equal subnets the earlier view wins
        // (stable sort), so the answer never depends on hash order.
        out.nets
            .sort_by_key(|(n, _)| std::cmp::Reverse(n.prefix_len()));
        (!out.answers.is_empty()).then_some(out)
    }

    /// The view of a client at `addr` (an IPv4-mapped IPv6 address counts
    /// as the IPv4 address: dual-stack sockets report them).
    pub fn select(&self, addr: IpAddr) -> ViewId {
        let addr = addr.to_canonical();
        self.nets
            .iter()
            .find(|(n, _)| n.contains(&addr))
            .map(|(_, id)| *id)
    }

    /// The addresses of `view`, `None` for the default answer.
    pub fn addrs(&self, view: ViewId) -> Option<&[IpAddr]> {
        view.and_then(|v| self.answers.get(usize::from(v)))
            .map(Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_longest_prefix_wins_and_others_get_the_default() {
        let v = Views::new([
            (
                vec![net("58.32.0.0/11"), net("2001:db8::/32")],
                vec![ip("10.0.0.1")],
            ),
            (
                vec![net("58.32.7.0/24")],
                vec![ip("10.0.0.2"), ip("10.0.0.3")],
            ),
        ])
        .unwrap();
        assert_eq!(v.select(ip("58.33.1.1")), Some(0));
        assert_eq!(v.select(ip("58.32.7.200")), Some(1));
        assert_eq!(v.select(ip("2001:db8::5")), Some(0));
        assert_eq!(v.select(ip("::ffff:58.32.7.1")), Some(1));
        assert_eq!(v.select(ip("8.8.8.8")), None);
        assert_eq!(v.addrs(Some(1)).unwrap().len(), 2);
        assert_eq!(v.addrs(None), None);
    }

    #[test]
    fn empty_views_are_dropped_and_equal_subnets_go_to_the_first_view() {
        assert_eq!(Views::new([(vec![net("1.0.0.0/8")], Vec::new())]), None);
        let v = Views::new([
            (Vec::new(), vec![ip("10.0.0.9")]),
            (vec![net("1.2.0.0/16")], vec![ip("10.0.0.1")]),
            (vec![net("1.2.0.0/16")], vec![ip("10.0.0.2")]),
        ])
        .unwrap();
        assert_eq!(v.addrs(v.select(ip("1.2.3.4"))).unwrap(), &[ip("10.0.0.1")]);
    }
}
