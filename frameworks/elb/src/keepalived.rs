//! keepalived configuration rendered from the ELB state: VRRP instances
//! that move the VIPs between LB hosts (keepalived in VRRP-only mode,
//! `-P`), and, for sites whose kernels have IPVS, an LVS export of the
//! same virtual and real servers. Pure text; validated by the real
//! `keepalived -t -e -f` in the tests.

use std::fmt::Write;
use std::net::Ipv4Addr;

use crate::plane::VirtualServer;
use crate::spec::{Algorithm, Protocol};

/// One VRRP instance: a group of VIPs that moves as one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpInstance {
    /// Its name (letters, digits, '_').
    pub name: String,
    /// The interface it advertises on and puts the VIPs on.
    pub interface: String,
    /// 1..=255, the same on every LB host of the group.
    pub virtual_router_id: u8,
    /// Higher wins; the preferred master gets the highest.
    pub priority: u8,
    /// Advertisement interval in milliseconds (VRRPv3 allows < 1 s).
    pub advert_int_ms: u32,
    /// The VIPs with their prefix length (advertised: at most 20).
    pub vips: Vec<(Ipv4Addr, u8)>,
    /// More VIPs moved with the instance but not advertised.
    pub excluded_vips: Vec<(Ipv4Addr, u8)>,
    /// The address label put on every VIP (`<interface>:<tag>`), if any.
    pub label: Option<String>,
}

/// keepalived.conf for VRRP only (run with `-P`). Every host of a group
/// starts as BACKUP with `nopreempt` off: the highest priority takes the
/// VIPs, and a host coming back does not flap them before it has heard
/// the others.
pub fn render_vrrp(router_id: &str, instances: &[VrrpInstance]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "global_defs {{\n  router_id {router_id}\n  vrrp_version 3\n}}"
    );
    for i in instances {
        let _ = writeln!(s, "vrrp_instance {} {{", i.name);
        let _ = writeln!(s, "  state BACKUP");
        let _ = writeln!(s, "  interface {}", i.interface);
        let _ = writeln!(s, "  virtual_router_id {}", i.virtual_router_id);
        let _ = writeln!(s, "  priority {}", i.priority);
        let _ = writeln!(s, "  advert_int {:.2}", f64::from(i.advert_int_ms) / 1000.0);
        let label = i
            .label
            .as_ref()
            .map(|l| format!(" label {l}"))
            .unwrap_or_default();
        for (block, vips) in [
            ("virtual_ipaddress", &i.vips),
            ("virtual_ipaddress_excluded", &i.excluded_vips),
        ] {
            if vips.is_empty() && block != "virtual_ipaddress" {
                continue;
            }
            let _ = writeln!(s, "  {block} {{");
            for (vip, len) in vips {
                let _ = writeln!(s, "    {vip}/{len} dev {}{label}", i.interface);
            }
            s.push_str("  }\n");
        }
        s.push_str("}\n");
    }
    s
}

/// How IPVS forwards to the real servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbKind {
    /// Rewrites the destination; replies return through the LB.
    Nat,
    /// Rewrites the MAC; real servers answer clients directly.
    Dr,
}

fn lb_algo(a: Algorithm) -> &'static str {
    match a {
        Algorithm::Rr => "rr",
        Algorithm::Wrr => "wrr",
        // Source hashing: IPVS's counterpart of the client-hash dispatch.
        Algorithm::Hash => "sh",
    }
}

/// A VS cannot be exported as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{vs}: real server {rs} listens on another port; lb_kind DR cannot rewrite ports (use NAT)"
)]
pub struct ExportError {
    /// The VS.
    pub vs: String,
    /// The real server.
    pub rs: String,
}

/// `virtual_server` blocks for every VS, each real server with its
/// weight and a connect check (TCP_CHECK for tcp, UDP_CHECK for udp).
/// Direct routing only rewrites MAC addresses, so under DR every real
/// server must listen on the VS's own port.
pub fn render_lvs(vss: &[VirtualServer], kind: LbKind) -> Result<String, ExportError> {
    let mut s = String::new();
    for vs in vss {
        if kind == LbKind::Dr {
            if let Some((rs, _)) = vs
                .real_servers
                .iter()
                .find(|(rs, _)| rs.port != vs.key.port)
            {
                return Err(ExportError {
                    vs: vs.key.to_string(),
                    rs: rs.to_string(),
                });
            }
        }
        let _ = writeln!(s, "# ELB {}", vs.elb);
        let _ = writeln!(s, "virtual_server {} {} {{", vs.key.vip, vs.key.port);
        s.push_str("  delay_loop 5\n");
        let _ = writeln!(s, "  lb_algo {}", lb_algo(vs.algorithm));
        let _ = writeln!(
            s,
            "  lb_kind {}",
            match kind {
                LbKind::Nat => "NAT",
                LbKind::Dr => "DR",
            }
        );
        let _ = writeln!(s, "  protocol {}", vs.key.proto.as_str().to_uppercase());
        for (rs, weight) in &vs.real_servers {
            let _ = writeln!(s, "  real_server {} {} {{", rs.addr, rs.port);
            let _ = writeln!(s, "    weight {weight}");
            let check = match vs.key.proto {
                Protocol::Tcp => "TCP_CHECK",
                Protocol::Udp => "UDP_CHECK",
            };
            let _ = writeln!(s, "    {check} {{\n      connect_timeout 3\n    }}");
            s.push_str("  }\n");
        }
        s.push_str("}\n");
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plane::{RealServer, VsKey};

    #[test]
    fn lvs_blocks_exactly() {
        let vs = VirtualServer {
            key: VsKey {
                vip: "10.0.0.1".parse().unwrap(),
                proto: Protocol::Tcp,
                port: 80,
            },
            elb: "pdl.web".into(),
            algorithm: Algorithm::Wrr,
            real_servers: vec![(
                RealServer {
                    addr: "10.1.0.2".parse().unwrap(),
                    port: 8080,
                },
                3,
            )],
        };
        assert_eq!(
            render_lvs(std::slice::from_ref(&vs), LbKind::Nat).unwrap(),
            "# ELB pdl.web\nvirtual_server 10.0.0.1 80 {\n  delay_loop 5\n  lb_algo wrr\n  lb_kind NAT\n  protocol TCP\n  real_server 10.1.0.2 8080 {\n    weight 3\n    TCP_CHECK {\n      connect_timeout 3\n    }\n  }\n}\n"
        );
    }

    #[test]
    fn dr_refuses_a_port_it_cannot_rewrite() {
        let vs = VirtualServer {
            key: VsKey {
                vip: "10.0.0.1".parse().unwrap(),
                proto: Protocol::Tcp,
                port: 80,
            },
            elb: "pdl.web".into(),
            algorithm: Algorithm::Rr,
            real_servers: vec![(
                RealServer {
                    addr: "10.1.0.2".parse().unwrap(),
                    port: 8080,
                },
                1,
            )],
        };
        assert_eq!(
            render_lvs(&[vs], LbKind::Dr).unwrap_err().to_string(),
            "10.0.0.1:80/tcp: real server 10.1.0.2:8080 listens on another port; lb_kind DR cannot rewrite ports (use NAT)"
        );
    }

    #[test]
    fn vrrp_instance_exactly() {
        let conf = render_vrrp(
            "lb1",
            &[VrrpInstance {
                name: "elb_1".into(),
                interface: "eth0".into(),
                virtual_router_id: 51,
                priority: 150,
                advert_int_ms: 200,
                vips: vec![("10.0.0.1".parse().unwrap(), 24)],
                excluded_vips: vec![],
                label: None,
            }],
        );
        assert!(conf.ends_with(
            "vrrp_instance elb_1 {\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  priority 150\n  advert_int 0.20\n  virtual_ipaddress {\n    10.0.0.1/24 dev eth0\n  }\n}\n"
        ));
    }
}
