//! Builds the answer to one question from the zone, as a hickory
//! [`Message`]: the records, NXDOMAIN or NODATA with the SOA, SRV targets'
//! addresses as additional records. This is the only place answers are
//! made; the cache (`cache.rs`) keeps their encodings.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, NS, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::model::Node;
use crate::views::{ViewId, Views};
use crate::zone::{ns_name, Lookup, Zone};

/// SOA timers: secondaries are not expected (the zone is built from the
/// watch stream), so these only need to be sane.
const SOA_REFRESH: i32 = 60;
const SOA_RETRY: i32 = 10;
const SOA_EXPIRE: i32 = 86_400;

/// `name` in lowercase presentation form without the final dot.
pub fn lower_key(name: &Name) -> String {
    let mut s = name.to_lowercase().to_ascii();
    if s.ends_with('.') {
        s.pop();
    }
    s
}

fn fqdn(name: &str) -> Option<Name> {
    Name::from_ascii(format!("{name}.")).ok()
}

fn addr_record(name: &Name, ttl: u32, addr: IpAddr) -> Record {
    let rdata = match addr {
        IpAddr::V4(a) => RData::A(A(a)),
        IpAddr::V6(a) => RData::AAAA(AAAA(a)),
    };
    Record::from_rdata(name.clone(), ttl, rdata)
}

fn soa(zone: &Zone) -> Option<Record> {
    let origin = fqdn(zone.origin())?;
    let mname = fqdn(&ns_name(zone.origin()))?;
    let rname = fqdn(&format!("hostmaster.{}", zone.origin()))?;
    let data = SOA::new(
        mname,
        rname,
        zone.serial,
        SOA_REFRESH,
        SOA_RETRY,
        SOA_EXPIRE,
        zone.ttl,
    );
    Some(Record::from_rdata(origin, zone.ttl, RData::SOA(data)))
}

fn ns(zone: &Zone, owner: &Name) -> Option<Record> {
    let target = fqdn(&ns_name(zone.origin()))?;
    Some(Record::from_rdata(
        owner.clone(),
        zone.ttl,
        RData::NS(NS(target)),
    ))
}

fn wants(qtype: RecordType, t: RecordType) -> bool {
    qtype == t || qtype == RecordType::ANY
}

/// An answer, and the views it was chosen by.
#[derive(Debug)]
pub struct Answer {
    /// The response (id, RD and CD are the caller's).
    pub msg: Message,
    /// The name's views and the client's view, when the name has views:
    /// the same question from another network may get other records.
    pub views: Option<(Arc<Views>, ViewId)>,
}

/// Appends the records of `node` that answer `qtype` (the addresses of
/// `view` when it has some), and the addresses of SRV targets as
/// additional records.
fn node_answers(
    zone: &Zone,
    node: &Node,
    view: ViewId,
    qname: &Name,
    qtype: RecordType,
    msg: &mut Message,
) {
    let addrs = node
        .views
        .as_ref()
        .and_then(|v| v.addrs(view))
        .unwrap_or(&node.addrs);
    for addr in addrs {
        let t = match addr {
            IpAddr::V4(_) => RecordType::A,
            IpAddr::V6(_) => RecordType::AAAA,
        };
        if wants(qtype, t) {
            msg.add_answer(addr_record(qname, zone.ttl, *addr));
        }
    }
    if wants(qtype, RecordType::SRV) {
        for srv in &node.srv {
            let Some(target) = fqdn(&srv.target) else {
                continue;
            };
            let data = SRV::new(0, 10, srv.port, target.clone());
            msg.add_answer(Record::from_rdata(
                qname.clone(),
                zone.ttl,
                RData::SRV(data),
            ));
            if let Some(t) = zone.node(&srv.target) {
                for addr in &t.addrs {
                    msg.add_additional(addr_record(&target, zone.ttl, *addr));
                }
            }
        }
    }
}

/// The authoritative answer to `query` from a client at `client` (for
/// names with views), or `None` when the name is not in the zone (it is
/// forwarded or refused).
pub fn answer(zone: &Zone, query: &Query, client: Option<IpAddr>) -> Option<Answer> {
    let key = lower_key(query.name());
    let found = zone.lookup(&key);
    if found == Lookup::OutOfZone {
        return None;
    }
    let mut msg = Message::new(0, MessageType::Response, OpCode::Query);
    msg.metadata.authoritative = true;
    msg.add_query(query.clone());
    let qname = query.name();
    let qtype = query.query_type();
    let mut views = None;
    match found {
        Lookup::Apex => {
            if wants(qtype, RecordType::SOA) {
                if let Some(mut r) = soa(zone) {
                    r.name = qname.clone();
                    msg.add_answer(r);
                }
            }
            if wants(qtype, RecordType::NS) {
                if let Some(r) = ns(zone, qname) {
                    msg.add_answer(r);
                }
                if let (Some(node), Some(target)) = (
                    zone.node(&ns_name(zone.origin())),
                    fqdn(&ns_name(zone.origin())),
                ) {
                    for addr in &node.addrs {
                        msg.add_additional(addr_record(&target, zone.ttl, *addr));
                    }
                }
            }
        }
        Lookup::Node(node) => {
            if let Some(v) = &node.views {
                let view = client.and_then(|c| v.select(c));
                views = Some((v.clone(), view));
            }
            let view = views.as_ref().and_then(|(_, id)| *id);
            node_answers(zone, node, view, qname, qtype, &mut msg);
        }
        Lookup::NxDomain => msg.metadata.response_code = ResponseCode::NXDomain,
        Lookup::Empty | Lookup::OutOfZone => {}
    }
    if msg.answers.is_empty() {
        // NXDOMAIN or NODATA: the SOA says how long to cache the absence.
        if let Some(r) = soa(zone) {
            msg.add_authority(r);
        }
    }
    Some(Answer { msg, views })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Owner, Srv};

    fn zone() -> Zone {
        let mut z = Zone::new("ocean", 5, Some("127.0.0.1".parse().unwrap()));
        z.serial = 42;
        z.replace(
            Owner::Job("j".into()),
            vec![
                (
                    "web.ocean".into(),
                    Node {
                        addrs: vec!["10.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
                        srv: Vec::new(),
                        views: None,
                    },
                ),
                (
                    "t1.web.ocean".into(),
                    Node {
                        addrs: vec!["10.0.0.1".parse().unwrap()],
                        srv: Vec::new(),
                        views: None,
                    },
                ),
                (
                    "_http._tcp.web.ocean".into(),
                    Node {
                        addrs: Vec::new(),
                        srv: vec![Srv {
                            port: 31000,
                            target: "t1.web.ocean".into(),
                        }],
                        views: None,
                    },
                ),
            ],
        );
        z
    }

    fn ask(z: &Zone, name: &str, t: RecordType) -> Option<Message> {
        answer(z, &Query::query(Name::from_ascii(name).unwrap(), t), None).map(|a| a.msg)
    }

    #[test]
    fn a_aaaa_and_srv_with_additional_addresses() {
        let z = zone();
        let m = ask(&z, "WEB.ocean.", RecordType::A).unwrap();
        assert!(m.metadata.authoritative);
        assert_eq!(m.answers.len(), 1);
        assert_eq!(m.answers[0].name.to_ascii(), "WEB.ocean.");
        let m = ask(&z, "web.ocean.", RecordType::AAAA).unwrap();
        assert_eq!(m.answers.len(), 1);
        let m = ask(&z, "_http._tcp.web.ocean.", RecordType::SRV).unwrap();
        assert_eq!(m.answers.len(), 1);
        assert_eq!(m.additionals.len(), 1);
        assert_eq!(m.additionals[0].name.to_ascii(), "t1.web.ocean.");
    }

    #[test]
    fn nxdomain_and_nodata_carry_the_soa() {
        let z = zone();
        let m = ask(&z, "nope.ocean.", RecordType::A).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(m.authorities.len(), 1);
        assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
        // A name with records, but not of this type.
        let m = ask(&z, "t1.web.ocean.", RecordType::TXT).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty());
        assert_eq!(m.authorities.len(), 1);
        // An empty non-terminal.
        let m = ask(&z, "_tcp.web.ocean.", RecordType::SRV).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(ask(&z, "example.com.", RecordType::A).is_none());
    }

    #[test]
    fn soa_and_ns_at_the_apex() {
        let z = zone();
        let m = ask(&z, "ocean.", RecordType::SOA).unwrap();
        assert_eq!(m.answers.len(), 1);
        match &m.answers[0].data {
            RData::SOA(s) => assert_eq!(s.serial, 42),
            other => panic!("not a SOA: {other:?}"),
        }
        let m = ask(&z, "ocean.", RecordType::NS).unwrap();
        assert_eq!(m.answers.len(), 1);
        assert_eq!(m.additionals.len(), 1);
        let m = ask(&z, "ns.ocean.", RecordType::A).unwrap();
        assert_eq!(m.answers.len(), 1);
    }

    #[test]
    fn a_name_with_views_answers_by_the_client_network() {
        let mut z = zone();
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let views = Views::new([(vec!["58.32.0.0/11".parse().unwrap()], vec![ip("10.9.0.1")])]);
        z.replace(
            Owner::Elb("front".into()),
            vec![(
                "front.ocean".into(),
                Node {
                    addrs: vec![ip("10.9.0.1"), ip("10.9.0.2")],
                    srv: Vec::new(),
                    views: views.map(Arc::new),
                },
            )],
        );
        let q = Query::query(Name::from_ascii("front.ocean.").unwrap(), RecordType::A);
        let got = |client: Option<IpAddr>| {
            let a = answer(&z, &q, client).unwrap();
            let addrs: Vec<String> = a.msg.answers.iter().map(|r| r.data.to_string()).collect();
            (addrs, a.views.map(|(_, id)| id))
        };
        assert_eq!(
            got(Some(ip("58.33.0.7"))),
            (vec!["10.9.0.1".to_string()], Some(Some(0)))
        );
        assert_eq!(
            got(Some(ip("192.0.2.1"))),
            (
                vec!["10.9.0.1".to_string(), "10.9.0.2".to_string()],
                Some(None)
            )
        );
        assert_eq!(got(None).1, Some(None));
        // Names without views say so.
        let q = Query::query(Name::from_ascii("web.ocean.").unwrap(), RecordType::A);
        assert!(answer(&z, &q, Some(ip("58.33.0.7")))
            .unwrap()
            .views
            .is_none());
    }
}
