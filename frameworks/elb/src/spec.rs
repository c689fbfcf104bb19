//! The ELB object: what an operator writes to get a load balancer for a job.
//!
//! ```yaml
//! name: cop.x_owt.inf_pdl.web_servicegroup.web_service.front   # service-tree node
//! idc: c3
//! network: internal            # internal | external
//! vips: [10.20.0.10]
//! domain: front.web.example    # optional: resolves to the VIPs
//! views:                       # optional: the answer by the client's network
//!   - { name: telecom, subnets: [58.32.0.0/11], vips: [10.20.0.10] }
//! listeners:
//!   - { port: 80, protocol: tcp, backend_job: <job id>, backend_port_name: http,
//!       algorithm: rr, weight: 1 }
//! ```
//!
//! Listeners of one ELB sharing a port and protocol form one virtual server
//! whose real servers are the tasks of all their jobs (weights apply under
//! `wrr`: a canary job at weight 1 beside the main job at 9).
//!
//! Parsing reports the field path of a syntax or type error;
//! [`ElbSpec::validate`] then reports every bad value at once, each naming
//! its field; [`conflicts`] refuses a VIP:port another ELB already serves.
//!
//! `views` are the seed's lines per ISP: Ocean's DNS answers the ELB's
//! domain with a view's VIPs to clients in one of its subnets (the longest
//! matching prefix over all views wins; the EDNS client subnet a resolver
//! sends counts as the client's address), and with every VIP to the rest.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;

use ocean_spec::{FieldError, ServiceTreeId, TreeNode};
use serde::{Deserialize, Serialize};

/// Largest ELB document accepted, in bytes.
pub const MAX_ELB_BYTES: usize = 256 * 1024;
/// Largest listener weight.
pub const MAX_WEIGHT: u32 = 100;

/// A load balancer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElbSpec {
    /// Its service-tree node (`tag.value_tag.value...`), which is also its
    /// name in the API.
    pub name: String,
    /// The data center whose LB hosts serve it.
    pub idc: String,
    /// Whether its VIPs face the inside or the internet.
    pub network: Network,
    /// Its virtual IPv4 addresses.
    pub vips: Vec<String>,
    /// The L4 ports it serves.
    pub listeners: Vec<Listener>,
    /// A DNS name resolving to its VIPs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// DNS answers by the client's network; needs `domain`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub views: Vec<DnsView>,
}

/// The VIPs that clients from some networks get for the ELB's domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsView {
    /// Its name (an ISP line such as `telecom`).
    pub name: String,
    /// Client networks in CIDR form (`58.32.0.0/11`, `2001:db8::/32`).
    pub subnets: Vec<String>,
    /// What they get: some of the ELB's `vips`.
    pub vips: Vec<String>,
}

/// Most views an ELB may have, and subnets one view may list.
pub const MAX_VIEWS: usize = 64;
/// Most subnets in one view.
pub const MAX_VIEW_SUBNETS: usize = 1024;

/// Which network an ELB's VIPs are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// Reached from inside the company.
    Internal,
    /// Reached from the internet.
    External,
}

/// An L4 protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// The name nftables and keepalived use.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a virtual server picks a real server for a new connection.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// Round robin over the real servers, one connection each in turn.
    #[default]
    Rr,
    /// Round robin weighted by the listeners' `weight`.
    Wrr,
    /// By a hash of the client's address: a client keeps its real server
    /// while the set of real servers is unchanged.
    Hash,
}

impl Algorithm {
    /// Its name in the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Rr => "rr",
            Algorithm::Wrr => "wrr",
            Algorithm::Hash => "hash",
        }
    }
}

/// One port of an ELB and the job behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// The port on the VIPs (1..=65535).
    pub port: u32,
    /// tcp or udp.
    pub protocol: Protocol,
    /// The job whose tasks are the real servers.
    pub backend_job: String,
    /// The name of the job's port the real servers listen on.
    pub backend_port_name: String,
    /// rr, wrr or hash.
    #[serde(default)]
    pub algorithm: Algorithm,
    /// This job's share under wrr (1..=100).
    #[serde(default = "default_weight")]
    pub weight: u32,
}

fn default_weight() -> u32 {
    1
}

/// An ELB was refused: every problem found, in field order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid ELB: {}", List(.errors))]
pub struct InvalidElb {
    /// One entry per problem.
    pub errors: Vec<FieldError>,
}

struct List<'a>(&'a [FieldError]);

impl fmt::Display for List<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.field, e.reason)?;
        }
        Ok(())
    }
}

impl InvalidElb {
    fn one(field: impl Into<String>, reason: impl Into<String>) -> Self {
        InvalidElb {
            errors: vec![FieldError::new(field, reason)],
        }
    }
}

/// Parses a JSON or YAML ELB document, naming the field of a type or
/// unknown-field error, then validates it.
pub fn parse(bytes: &[u8]) -> Result<ElbSpec, InvalidElb> {
    if bytes.len() > MAX_ELB_BYTES {
        return Err(InvalidElb::one(
            "(document)",
            format!("is {} bytes; at most {MAX_ELB_BYTES}", bytes.len()),
        ));
    }
    let de = serde_yaml::Deserializer::from_slice(bytes);
    let spec: ElbSpec = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "(document)".into()
        } else {
            path
        };
        InvalidElb::one(field, e.inner().to_string())
    })?;
    spec.validate()?;
    Ok(spec)
}

impl ElbSpec {
    /// Checks every value; every problem at once, each naming its field.
    pub fn validate(&self) -> Result<(), InvalidElb> {
        let mut errors = Vec::new();
        let mut err = |field: String, reason: String| errors.push(FieldError::new(field, reason));
        match TreeNode::parse_field(&self.name, "name") {
            Err(e) => err(e.field, e.reason),
            Ok(node) if node.is_root() => err("name".into(), "must not be empty".into()),
            Ok(_) if self.name.len() > 200 => err(
                "name".into(),
                format!("is {} bytes long; at most 200", self.name.len()),
            ),
            Ok(_) => {}
        }
        if !is_label(&self.idc) {
            err(
                "idc".into(),
                format!(
                    "'{}' is not a data center name (lowercase letters, digits, '-')",
                    self.idc
                ),
            );
        }
        if self.vips.is_empty() {
            err("vips".into(), "needs at least one VIP".into());
        }
        let mut seen = BTreeSet::new();
        for (i, vip) in self.vips.iter().enumerate() {
            match vip.parse::<Ipv4Addr>() {
                Ok(a) if a.is_unspecified() || a.is_broadcast() || a.is_multicast() => err(
                    format!("vips[{i}]"),
                    format!("{a} cannot be a VIP (unspecified, broadcast or multicast)"),
                ),
                Ok(a) => {
                    if !seen.insert(a) {
                        err(format!("vips[{i}]"), format!("{a} is listed twice"));
                    }
                }
                Err(_) => err(
                    format!("vips[{i}]"),
                    format!("'{vip}' is not an IPv4 address"),
                ),
            }
        }
        if self.listeners.is_empty() {
            err("listeners".into(), "needs at least one listener".into());
        }
        let mut by_port: Vec<((u32, Protocol), Algorithm, &str)> = Vec::new();
        for (i, l) in self.listeners.iter().enumerate() {
            let f = |name: &str| format!("listeners[{i}].{name}");
            if l.port == 0 || l.port > 65535 {
                err(f("port"), format!("{} is not in 1..=65535", l.port));
            }
            if let Err(e) = l.backend_job.parse::<ServiceTreeId>() {
                err(f("backend_job"), e.reason);
            }
            if !is_port_name(&l.backend_port_name) {
                err(
                    f("backend_port_name"),
                    format!(
                        "'{}' is not a port name of a job (lowercase letters, digits, '-', '_')",
                        l.backend_port_name
                    ),
                );
            }
            if l.weight == 0 || l.weight > MAX_WEIGHT {
                err(
                    f("weight"),
                    format!("{} is not in 1..={MAX_WEIGHT}", l.weight),
                );
            }
            let key = (l.port, l.protocol);
            for (k, alg, job) in &by_port {
                if *k != key {
                    continue;
                }
                if *job == l.backend_job {
                    err(
                        f("backend_job"),
                        format!("port {}/{} already fronts {job}", l.port, l.protocol),
                    );
                } else if *alg != l.algorithm {
                    err(
                        f("algorithm"),
                        format!(
                            "listeners on {}/{} share one virtual server and must share its algorithm ({})",
                            l.port,
                            l.protocol,
                            alg.as_str()
                        ),
                    );
                }
            }
            by_port.push((key, l.algorithm, &l.backend_job));
        }
        if let Some(d) = &self.domain {
            if !is_domain(d) {
                err(
                    "domain".into(),
                    format!(
                        "'{d}' is not a DNS name (labels of letters, digits, '-', joined by '.')"
                    ),
                );
            }
        }
        self.validate_views(&mut err);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(InvalidElb { errors })
        }
    }

    fn validate_views(&self, err: &mut impl FnMut(String, String)) {
        if self.views.is_empty() {
            return;
        }
        if self.domain.is_none() {
            err(
                "views".into(),
                "needs `domain`: views choose the answer for the ELB's DNS name".into(),
            );
        }
        if self.views.len() > MAX_VIEWS {
            err(
                "views".into(),
                format!("has {} views; at most {MAX_VIEWS}", self.views.len()),
            );
        }
        let mut names = BTreeSet::new();
        let mut nets: Vec<(ipnet::IpNet, usize)> = Vec::new();
        for (i, v) in self.views.iter().enumerate() {
            let f = |name: &str| format!("views[{i}].{name}");
            if !is_label(&v.name) {
                err(
                    f("name"),
                    format!(
                        "'{}' is not a view name (lowercase letters, digits, '-')",
                        v.name
                    ),
                );
            } else if !names.insert(v.name.as_str()) {
                err(f("name"), format!("'{}' is used by another view", v.name));
            }
            if v.subnets.is_empty() {
                err(f("subnets"), "needs at least one subnet".into());
            }
            if v.subnets.len() > MAX_VIEW_SUBNETS {
                err(
                    f("subnets"),
                    format!(
                        "has {} subnets; at most {MAX_VIEW_SUBNETS}",
                        v.subnets.len()
                    ),
                );
            }
            for (j, s) in v.subnets.iter().enumerate() {
                let field = format!("views[{i}].subnets[{j}]");
                match s.parse::<ipnet::IpNet>() {
                    Err(_) => err(
                        field,
                        format!("'{s}' is not a subnet in CIDR form (such as 58.32.0.0/11)"),
                    ),
                    Ok(n) if n.trunc() != n => err(
                        field,
                        format!(
                            "'{s}' has bits set past its prefix; did you mean {}?",
                            n.trunc()
                        ),
                    ),
                    Ok(n) => match nets.iter().find(|(m, _)| *m == n) {
                        Some((_, k)) if *k == i => err(field, format!("{n} is listed twice")),
                        Some((_, k)) => err(
                            field,
                            format!(
                                "{n} is also in view '{}': a client must map to one view",
                                self.views[*k].name
                            ),
                        ),
                        None => nets.push((n, i)),
                    },
                }
            }
            if v.vips.is_empty() {
                err(f("vips"), "needs at least one VIP".into());
            }
            for (j, vip) in v.vips.iter().enumerate() {
                let mine = vip
                    .parse::<Ipv4Addr>()
                    .is_ok_and(|a| self.vip_addrs().contains(&a));
                if !mine {
                    err(
                        format!("views[{i}].vips[{j}]"),
                        format!("'{vip}' is not one of this ELB's vips"),
                    );
                }
            }
        }
    }

    /// Its VIPs, parsed (valid specs only; bad entries are skipped).
    pub fn vip_addrs(&self) -> Vec<Ipv4Addr> {
        self.vips.iter().filter_map(|v| v.parse().ok()).collect()
    }

    /// Every VIP:port/protocol it serves.
    pub fn endpoints(&self) -> BTreeSet<(Ipv4Addr, Protocol, u16)> {
        let mut out = BTreeSet::new();
        for vip in self.vip_addrs() {
            for l in &self.listeners {
                if let Ok(port) = u16::try_from(l.port) {
                    out.insert((vip, l.protocol, port));
                }
            }
        }
        out
    }
}

/// Refuses `spec` if another ELB of `others` (by name) already serves one
/// of its VIP:port/protocol endpoints. An ELB of the same name is the one
/// being replaced and does not conflict.
pub fn conflicts<'a>(
    spec: &ElbSpec,
    others: impl IntoIterator<Item = &'a ElbSpec>,
) -> Result<(), InvalidElb> {
    let mine = spec.endpoints();
    let mut errors = Vec::new();
    for other in others {
        if other.name == spec.name {
            continue;
        }
        for (vip, proto, port) in other.endpoints().intersection(&mine) {
            let i = spec.vips.iter().position(|v| v.parse() == Ok(*vip));
            errors.push(FieldError::new(
                format!("vips[{}]", i.unwrap_or(0)),
                format!(
                    "{vip}:{port}/{proto} is already served by ELB {}",
                    other.name
                ),
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(InvalidElb { errors })
    }
}

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_port_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn is_domain(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const JOB: &str =
        "cop.x_owt.y_pdl.web_servicegroup.g_service.front_job.api_cluster.c3";

    fn spec() -> ElbSpec {
        ElbSpec {
            name: "cop.x_owt.y_pdl.web_servicegroup.g_service.front".into(),
            idc: "c3".into(),
            network: Network::Internal,
            vips: vec!["10.20.0.10".into()],
            listeners: vec![Listener {
                port: 80,
                protocol: Protocol::Tcp,
                backend_job: JOB.into(),
                backend_port_name: "http".into(),
                algorithm: Algorithm::Rr,
                weight: 1,
            }],
            domain: Some("front.web.example".into()),
            views: Vec::new(),
        }
    }

    fn fields(e: InvalidElb) -> Vec<(String, String)> {
        e.errors.into_iter().map(|f| (f.field, f.reason)).collect()
    }

    #[test]
    fn a_good_spec_parses_from_yaml_with_defaults() {
        let yaml = format!(
            "name: cop.x_owt.y_pdl.web_servicegroup.g_service.front\nidc: c3\nnetwork: internal\n\
             vips: [10.20.0.10]\ndomain: front.web.example\nlisteners:\n  - {{port: 80, protocol: tcp, backend_job: {JOB}, backend_port_name: http}}\n"
        );
        assert_eq!(parse(yaml.as_bytes()).unwrap(), spec());
    }

    #[test]
    fn parse_errors_name_the_field() {
        let e = parse(br#"{"name":"pdl.a","idc":"c3","network":"dmz","vips":[],"listeners":[]}"#)
            .unwrap_err();
        assert_eq!(e.errors[0].field, "network");
        assert!(e.errors[0].reason.contains("unknown variant `dmz`"), "{e}");
        let e = parse(br#"{"name":"pdl.a","idc":"c3","network":"internal","vips":["1.2.3.4"],"listeners":[{"port":80,"protocol":"sctp"}]}"#)
            .unwrap_err();
        assert_eq!(e.errors[0].field, "listeners[0].protocol");
        let e = parse(br#"{"name":"pdl.a","idc":"c3","network":"internal","vips":[],"listeners":[],"colour":1}"#)
            .unwrap_err();
        assert!(e.errors[0].reason.contains("unknown field `colour`"), "{e}");
    }

    #[test]
    fn every_bad_value_is_reported_with_its_field() {
        let mut s = spec();
        s.name = "nope".into();
        s.idc = "C 3".into();
        s.vips = vec!["10.0.0.300".into(), "0.0.0.0".into()];
        s.domain = Some("bad_domain..x".into());
        s.listeners[0].port = 70000;
        s.listeners[0].weight = 0;
        s.listeners[0].backend_port_name = "HTTP".into();
        let mut dup = s.listeners[0].clone();
        dup.port = 80;
        dup.algorithm = Algorithm::Hash;
        dup.backend_job =
            "cop.x_owt.y_pdl.web_servicegroup.g_service.front_job.canary_cluster.c3".into();
        let mut l2 = spec().listeners[0].clone();
        l2.algorithm = Algorithm::Hash;
        s.listeners = vec![spec().listeners[0].clone(), l2, s.listeners[0].clone()];
        let got: Vec<String> = fields(s.validate().unwrap_err())
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(
            got,
            vec![
                "name",
                "idc",
                "vips[0]",
                "vips[1]",
                "listeners[1].backend_job",
                "listeners[2].port",
                "listeners[2].backend_port_name",
                "listeners[2].weight",
                "domain"
            ]
        );
    }

    #[test]
    fn listeners_sharing_a_port_must_share_the_algorithm() {
        let mut s = spec();
        let mut canary = s.listeners[0].clone();
        canary.backend_job =
            "cop.x_owt.y_pdl.web_servicegroup.g_service.front_job.canary_cluster.c3".into();
        canary.algorithm = Algorithm::Hash;
        s.listeners.push(canary.clone());
        assert_eq!(
            fields(s.validate().unwrap_err()),
            vec![(
                "listeners[1].algorithm".to_string(),
                "listeners on 80/tcp share one virtual server and must share its algorithm (rr)"
                    .to_string()
            )]
        );
        s.listeners[1].algorithm = Algorithm::Rr;
        s.validate().unwrap();
    }

    #[test]
    fn a_vip_port_served_by_another_elb_is_refused() {
        let a = spec();
        let mut b = spec();
        b.name = "cop.x_owt.y_pdl.web_servicegroup.g_service.other".into();
        b.vips = vec!["10.20.0.11".into(), "10.20.0.10".into()];
        assert_eq!(
            fields(conflicts(&b, [&a]).unwrap_err()),
            vec![(
                "vips[1]".to_string(),
                "10.20.0.10:80/tcp is already served by ELB cop.x_owt.y_pdl.web_servicegroup.g_service.front".to_string()
            )]
        );
        // Same VIP, other protocol or port: no conflict; same name: a replace.
        b.listeners[0].protocol = Protocol::Udp;
        conflicts(&b, [&a]).unwrap();
        conflicts(&a, [&a]).unwrap();
    }

    #[test]
    fn views_parse_and_every_bad_one_names_its_field() {
        let yaml = format!(
            "name: cop.x_owt.y_pdl.web_servicegroup.g_service.front\nidc: c3\nnetwork: external\n\
             vips: [10.20.0.10, 10.20.0.11]\ndomain: front.web.example\nlisteners:\n  - {{port: 80, protocol: tcp, backend_job: {JOB}, backend_port_name: http}}\n\
             views:\n  - {{name: telecom, subnets: [58.32.0.0/11, '2001:db8::/32'], vips: [10.20.0.10]}}\n  - {{name: unicom, subnets: [58.32.0.0/16], vips: [10.20.0.11]}}\n"
        );
        let s = parse(yaml.as_bytes()).unwrap();
        assert_eq!(s.views.len(), 2);
        assert_eq!(s.views[0].subnets[1], "2001:db8::/32");

        let mut bad = s.clone();
        bad.domain = None;
        bad.views[0].name = "Tele Com".into();
        bad.views[1].name = "unicom".into();
        bad.views[0].subnets = vec!["58.32.1.0/11".into(), "nope".into()];
        bad.views[1].subnets = vec!["10.0.0.0/8".into(), "10.0.0.0/8".into()];
        bad.views[1].vips = vec!["10.20.0.99".into()];
        assert_eq!(
            fields(bad.validate().unwrap_err()),
            vec![
                (
                    "views".to_string(),
                    "needs `domain`: views choose the answer for the ELB's DNS name".to_string()
                ),
                (
                    "views[0].name".to_string(),
                    "'Tele Com' is not a view name (lowercase letters, digits, '-')".to_string()
                ),
                (
                    "views[0].subnets[0]".to_string(),
                    "'58.32.1.0/11' has bits set past its prefix; did you mean 58.32.0.0/11?"
                        .to_string()
                ),
                (
                    "views[0].subnets[1]".to_string(),
                    "'nope' is not a subnet in CIDR form (such as 58.32.0.0/11)".to_string()
                ),
                (
                    "views[1].subnets[1]".to_string(),
                    "10.0.0.0/8 is listed twice".to_string()
                ),
                (
                    "views[1].vips[0]".to_string(),
                    "'10.20.0.99' is not one of this ELB's vips".to_string()
                ),
            ]
        );
        let mut twice = s.clone();
        twice.views[1].subnets = vec!["58.32.0.0/11".into()];
        assert_eq!(
            fields(twice.validate().unwrap_err()),
            vec![(
                "views[1].subnets[0]".to_string(),
                "58.32.0.0/11 is also in view 'telecom': a client must map to one view".to_string()
            )]
        );
        let mut empty = s;
        empty.views[0].subnets.clear();
        empty.views[0].vips.clear();
        empty.views[1].name = "telecom".into();
        assert_eq!(
            fields(empty.validate().unwrap_err())
                .into_iter()
                .map(|(f, _)| f)
                .collect::<Vec<_>>(),
            vec!["views[0].subnets", "views[0].vips", "views[1].name"]
        );
    }
}
