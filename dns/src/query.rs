//! One query in, one response out: the path shared by UDP and TCP.
//!
//! ```text
//! bytes --hickory: Header, Query, EDNS--> checks (FORMERR, NOTIMP, BADVERS, REFUSED)
//!   --> cache hit: copy the encoded answer, patch id, RD, CD, question case
//!   --> miss: answer.rs builds a hickory Message from the zone, encoded once,
//!       stored in the cache, then served like a hit
//!   --> not in the zone: Forward (upstreams configured) or REFUSED
//! ```
//!
//! Names with views (an ELB's lines per ISP) answer by the client's
//! network: the EDNS client subnet when the query has one (echoed in the
//! answer, RFC 7871), else the packet's source address.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use hickory_proto::op::{Edns, Header, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::DNSClass;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use crate::answer::answer;
use crate::cache::{self, wire_name, Asker, Cache};
use crate::zone::Zone;

/// Queries longer than this get FORMERR: a question with EDNS fits in a
/// few hundred bytes, so anything this big is malformed or hostile.
pub const MAX_QUERY_LEN: usize = 4096;

/// The UDP payload size we offer and honour at most (the DNS flag day's
/// value: avoids IP fragmentation).
pub const EDNS_PAYLOAD: u16 = 1232;

/// Plain DNS over UDP.
const UDP_PAYLOAD: usize = 512;

/// How the query came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP: answers are limited to 512 bytes, or the EDNS payload size.
    Udp,
    /// TCP: up to 65535 bytes.
    Tcp,
}

/// What to do with a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send the bytes written to `out`.
    Reply,
    /// The name is outside the zone: ask the upstream resolvers.
    Forward,
    /// Send nothing (not a query, or too short to answer).
    Drop,
}

/// The zone, its answer cache, and the forwarding decision.
#[derive(Debug)]
pub struct Authority {
    zone: RwLock<Zone>,
    cache: Cache,
    forwarding: bool,
    /// The zone holds a snapshot of the cluster. Before that, names in the
    /// zone get SERVFAIL (resolvers try again or elsewhere), never an
    /// NXDOMAIN that clients would cache.
    ready: AtomicBool,
}

fn our_edns() -> Edns {
    let mut e = Edns::new();
    e.set_max_payload(EDNS_PAYLOAD);
    e
}

/// Copies a cached answer and makes it this query's: id, RD and CD flags,
/// and the question exactly as asked (its letter case).
fn patch_into(out: &mut Vec<u8>, wire: &[u8], raw: &[u8], question_end: usize) {
    out.extend_from_slice(wire);
    out[0..2].copy_from_slice(&raw[0..2]);
    out[2] = (out[2] & !0x01) | (raw[2] & 0x01);
    out[3] = (out[3] & !0x10) | (raw[3] & 0x10);
    out[12..question_end].copy_from_slice(&raw[12..question_end]);
}

impl Authority {
    /// An authority over `zone`; out-of-zone names are forwarded when
    /// `forwarding`, else refused.
    pub fn new(zone: Zone, forwarding: bool) -> Self {
        Authority {
            zone: RwLock::new(zone),
            cache: Cache::default(),
            forwarding,
            ready: AtomicBool::new(false),
        }
    }

    /// The zone now reflects the cluster: answer from it.
    pub fn set_ready(&self) {
        if !self.ready.swap(true, Ordering::AcqRel) {
            self.cache.clear();
        }
    }

    /// Changes the zone with `f`, which returns the names whose answers
    /// changed; their cached answers are dropped. The apex is always
    /// refreshed (its SOA serial moves).
    pub fn update(&self, f: impl FnOnce(&mut Zone) -> Vec<String>) {
        let (mut names, origin) = {
            let mut zone = self.zone.write().unwrap_or_else(|p| p.into_inner());
            let names = f(&mut zone);
            (names, zone.origin().to_string())
        };
        names.push(origin);
        self.cache.invalidate(&names);
    }

    /// Reads the zone.
    pub fn with_zone<R>(&self, f: impl FnOnce(&Zone) -> R) -> R {
        f(&self.zone.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Handles one query from `client` (the packet's source, when known);
    /// the response, if any, is written to `out`.
    pub fn handle(
        &self,
        raw: &[u8],
        transport: Transport,
        client: Option<IpAddr>,
        out: &mut Vec<u8>,
    ) -> Action {
        out.clear();
        let mut dec = BinDecoder::new(raw);
        let Ok(header) = Header::read(&mut dec) else {
            return Action::Drop;
        };
        if header.message_type == MessageType::Response {
            // Never answer answers: that is how reflection loops start.
            return Action::Drop;
        }
        if raw.len() > MAX_QUERY_LEN {
            return error(&header, None, None, ResponseCode::FormErr, out);
        }
        if header.op_code != OpCode::Query {
            return error(&header, None, None, ResponseCode::NotImp, out);
        }
        let c = header.counts;
        if c.queries != 1 || c.answers != 0 || c.authorities != 0 {
            return error(&header, None, None, ResponseCode::FormErr, out);
        }
        let Ok(query) = Query::read(&mut dec) else {
            return error(&header, None, None, ResponseCode::FormErr, out);
        };
        let question_end = dec.index();
        let edns = if c.additionals > 0 {
            match Message::read_records(&mut dec, c.additionals as usize, true, OpCode::Query) {
                Ok((_, edns, _)) => edns,
                Err(_) => return error(&header, Some(&query), None, ResponseCode::FormErr, out),
            }
        } else {
            None
        };
        if !dec.is_empty() {
            // Trailing bytes after the last record.
            return error(&header, Some(&query), None, ResponseCode::FormErr, out);
        }
        if let Some(e) = &edns {
            if e.version() > 0 {
                return error(
                    &header,
                    Some(&query),
                    edns.as_ref(),
                    ResponseCode::BADVERS,
                    out,
                );
            }
        }
        if query.query_class() != DNSClass::IN {
            return error(
                &header,
                Some(&query),
                edns.as_ref(),
                ResponseCode::Refused,
                out,
            );
        }
        let limit = match (transport, &edns) {
            (Transport::Tcp, _) => usize::from(u16::MAX),
            (Transport::Udp, None) => UDP_PAYLOAD,
            (Transport::Udp, Some(e)) => {
                usize::from(e.max_payload().clamp(UDP_PAYLOAD as u16, EDNS_PAYLOAD))
            }
        };
        // The cache key: the question's name as sent, lowercased.
        let name_end = question_end - 4;
        let mut key = [0u8; 256];
        let key_len = name_end - 12;
        if key_len > key.len() {
            return error(&header, None, None, ResponseCode::FormErr, out);
        }
        for (k, b) in key.iter_mut().zip(&raw[12..name_end]) {
            *k = b.to_ascii_lowercase();
        }
        let key = &key[..key_len];
        let qtype = u16::from(query.query_type());
        let has_edns = edns.is_some();
        let subnet = edns.as_ref().and_then(client_subnet);
        let asker = Asker {
            addr: subnet
                .filter(|s| s.source_prefix() > 0)
                .map(|s| s.addr())
                .or(client),
            subnet: subnet.is_some(),
        };
        let hit = self.cache.with(key, qtype, has_edns, limit, asker, |wire| {
            patch_into(out, wire, raw, question_end)
        });
        if hit.is_some() {
            return Action::Reply;
        }
        let question = Question {
            header: &header,
            query: &query,
            edns: edns.as_ref(),
            subnet,
            asker,
            key,
            question_end,
            limit,
        };
        self.slow(raw, &question, out)
    }

    /// Builds the answer from the zone, caches its encoding, serves it.
    fn slow(&self, raw: &[u8], q: &Question<'_>, out: &mut Vec<u8>) -> Action {
        let Question {
            header,
            query,
            edns,
            subnet,
            asker,
            key,
            question_end,
            limit,
        } = *q;
        let generation = self.cache.generation();
        let Some(made) = self.with_zone(|z| answer(z, query, asker.addr)) else {
            if self.forwarding {
                return Action::Forward;
            }
            return error(header, Some(query), edns, ResponseCode::Refused, out);
        };
        if !self.ready.load(Ordering::Acquire) {
            return error(header, Some(query), edns, ResponseCode::ServFail, out);
        }
        let mut msg = made.msg;
        // Chosen by the client's subnet: say so, for as many bits as the
        // resolver sent (its cache keys the answer by them).
        let tailored = subnet.filter(|_| made.views.is_some());
        if edns.is_some() {
            let mut ours = our_edns();
            if let Some(s) = tailored {
                ours.options_mut()
                    .insert(EdnsOption::Subnet(ClientSubnet::new(
                        s.addr(),
                        s.source_prefix(),
                        s.source_prefix(),
                    )));
            }
            msg.set_edns(ours);
        }
        let Ok(full) = msg.to_vec() else {
            return error(header, Some(query), edns, ResponseCode::ServFail, out);
        };
        let truncated = if full.len() > UDP_PAYLOAD {
            // Additional records are optional (RFC 2181 9): drop them
            // first. If the answer still does not fit, no partial record
            // sets: TC tells the client to ask over TCP.
            let mut lean = msg.clone();
            lean.additionals.clear();
            match lean.to_vec() {
                Ok(b) if !msg.additionals.is_empty() && b.len() <= UDP_PAYLOAD => Some(b),
                _ => msg.truncate().to_vec().ok(),
            }
        } else {
            None
        };
        let wire = if full.len() <= limit {
            Some(&full)
        } else {
            truncated.as_ref()
        };
        let Some(wire) = wire.filter(|w| w.len() >= question_end) else {
            return error(header, Some(query), edns, ResponseCode::ServFail, out);
        };
        patch_into(out, wire, raw, question_end);
        // Only a question sent without compression has the canonical key.
        if tailored.is_none() && wire_name(&query.name().to_ascii()) == key {
            let answer = cache::Answer {
                qtype: u16::from(query.query_type()),
                edns: edns.is_some(),
                views: made.views,
                full,
                truncated,
            };
            self.cache.insert(generation, key.to_vec(), answer);
        }
        Action::Reply
    }
}

/// One parsed question and who asked it.
#[derive(Clone, Copy)]
struct Question<'a> {
    header: &'a Header,
    query: &'a Query,
    edns: Option<&'a Edns>,
    subnet: Option<ClientSubnet>,
    asker: Asker,
    key: &'a [u8],
    question_end: usize,
    limit: usize,
}

/// The query's EDNS client subnet option, if any.
fn client_subnet(edns: &Edns) -> Option<ClientSubnet> {
    match edns.option(EdnsCode::Subnet)? {
        EdnsOption::Subnet(s) => Some(*s),
        _ => None,
    }
}

/// An error response: the header's id and RD flag, the question when it
/// could be read, our OPT when the query had one.
fn error(
    header: &Header,
    query: Option<&Query>,
    edns: Option<&Edns>,
    code: ResponseCode,
    out: &mut Vec<u8>,
) -> Action {
    out.clear();
    let mut msg = Message::error_msg(header.id, header.op_code, code);
    msg.metadata.recursion_desired = header.recursion_desired;
    msg.metadata.checking_disabled = header.checking_disabled;
    if let Some(q) = query {
        msg.add_query(q.clone());
    }
    if edns.is_some() || code.high() > 0 {
        msg.set_edns(our_edns());
    }
    match msg.to_vec() {
        Ok(bytes) => {
            out.extend_from_slice(&bytes);
            Action::Reply
        }
        Err(_) => Action::Drop,
    }
}

/// SERVFAIL for a query that could not be forwarded.
pub fn servfail(raw: &[u8]) -> Option<Vec<u8>> {
    let mut dec = BinDecoder::new(raw);
    let header = Header::read(&mut dec).ok()?;
    let query = if header.counts.queries == 1 {
        Query::read(&mut dec).ok()
    } else {
        None
    };
    let mut out = Vec::new();
    match error(
        &header,
        query.as_ref(),
        None,
        ResponseCode::ServFail,
        &mut out,
    ) {
        Action::Reply => Some(out),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Node, Owner};
    use hickory_proto::rr::{Name, RecordType};

    fn authority(forwarding: bool) -> Authority {
        let a = Authority::new(Zone::new("ocean", 5, None), forwarding);
        a.set_ready();
        a.update(|z| {
            z.replace(
                Owner::Masters,
                vec![(
                    "leader.ocean".into(),
                    Node {
                        addrs: vec!["10.0.0.1".parse().unwrap()],
                        srv: Vec::new(),
                        views: None,
                    },
                )],
            )
        });
        a
    }

    fn query(name: &str, t: RecordType, id: u16, edns: bool) -> Vec<u8> {
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        if edns {
            m.set_edns(Edns::new());
        }
        m.to_vec().unwrap()
    }

    fn ask(a: &Authority, raw: &[u8]) -> (Action, Option<Message>) {
        let mut out = Vec::new();
        let action = a.handle(raw, Transport::Udp, None, &mut out);
        (action, Message::from_vec(&out).ok())
    }

    #[test]
    fn hits_keep_the_id_flags_and_case_of_each_query() {
        let a = authority(false);
        let (_, first) = ask(&a, &query("leader.ocean.", RecordType::A, 1, false));
        let first = first.unwrap();
        assert_eq!(first.metadata.id, 1);
        assert_eq!(first.answers.len(), 1);
        assert_eq!(a.cache.len(), 1);
        let mut raw = query("LeAdEr.OCEAN.", RecordType::A, 777, false);
        raw[2] &= !0x01; // RD off
        let (_, second) = ask(&a, &raw);
        let second = second.unwrap();
        assert_eq!(second.metadata.id, 777);
        assert!(!second.metadata.recursion_desired);
        assert_eq!(second.queries[0].name().to_ascii(), "LeAdEr.OCEAN.");
        assert_eq!(
            second.answers,
            first
                .answers
                .iter()
                .map(|r| {
                    let mut r = r.clone();
                    r.name = Name::from_ascii("LeAdEr.OCEAN.").unwrap();
                    r
                })
                .collect::<Vec<_>>()
        );
        let (_, with_edns) = ask(&a, &query("leader.ocean.", RecordType::A, 3, true));
        assert_eq!(with_edns.unwrap().edns.unwrap().max_payload(), EDNS_PAYLOAD);
    }

    #[test]
    fn big_answers_drop_additionals_then_set_tc_over_udp() {
        use crate::model::Srv;
        let a = authority(false);
        let target = |i: usize| format!("task-number-{i:04}.web.ocean");
        let mut recs: Vec<(String, Node)> = (0..40)
            .map(|i| {
                (
                    target(i),
                    Node {
                        addrs: vec![format!("10.0.1.{i}").parse().unwrap()],
                        srv: Vec::new(),
                        views: None,
                    },
                )
            })
            .collect();
        let srv = |n: usize| Node {
            addrs: Vec::new(),
            srv: (0..n)
                .map(|i| Srv {
                    port: 31000 + i as u16,
                    target: target(i),
                })
                .collect(),
            views: None,
        };
        recs.push(("_a._tcp.web.ocean".into(), srv(8)));
        recs.push(("_b._tcp.web.ocean".into(), srv(40)));
        a.update(|z| z.replace(Owner::Job("web".into()), recs));
        // 8 targets fit without their addresses: no TC.
        let (_, m) = ask(&a, &query("_a._tcp.web.ocean.", RecordType::SRV, 1, false));
        let m = m.unwrap();
        assert!(!m.metadata.truncation);
        assert_eq!((m.answers.len(), m.additionals.len()), (8, 0));
        // 40 do not: TC, and all of them over TCP or with EDNS room.
        let raw = query("_b._tcp.web.ocean.", RecordType::SRV, 2, false);
        let (_, m) = ask(&a, &raw);
        let m = m.unwrap();
        assert!(m.metadata.truncation);
        assert!(m.answers.is_empty());
        let mut out = Vec::new();
        a.handle(&raw, Transport::Tcp, None, &mut out);
        let m = Message::from_vec(&out).unwrap();
        assert!(!m.metadata.truncation);
        assert_eq!((m.answers.len(), m.additionals.len()), (40, 40));
    }

    #[test]
    fn servfail_not_nxdomain_before_the_first_snapshot() {
        let a = Authority::new(Zone::new("ocean", 5, None), false);
        let raw = query("web.ocean.", RecordType::A, 1, false);
        let m = ask(&a, &raw).1.unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        assert!(a.cache.is_empty());
        a.set_ready();
        let m = ask(&a, &raw).1.unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    }

    #[test]
    fn changes_invalidate_cached_answers() {
        let a = authority(false);
        let raw = query("leader.ocean.", RecordType::A, 1, false);
        assert_eq!(ask(&a, &raw).1.unwrap().answers.len(), 1);
        a.update(|z| z.replace(Owner::Masters, Vec::new()));
        let m = ask(&a, &raw).1.unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    }

    #[test]
    fn malformed_queries_get_formerr_and_others_refused_or_forwarded() {
        let a = authority(false);
        // Shorter than a header: nothing to answer.
        assert_eq!(ask(&a, &[1, 2, 3]).0, Action::Drop);
        // A header claiming one question, then garbage.
        let mut raw = query("leader.ocean.", RecordType::A, 9, false);
        raw.truncate(15);
        let (action, m) = ask(&a, &raw);
        assert_eq!(action, Action::Reply);
        let m = m.unwrap();
        assert_eq!(m.metadata.id, 9);
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
        // Trailing bytes.
        let mut raw = query("leader.ocean.", RecordType::A, 10, false);
        raw.extend_from_slice(&[0; 5]);
        assert_eq!(
            ask(&a, &raw).1.unwrap().metadata.response_code,
            ResponseCode::FormErr
        );
        // Oversized.
        let mut raw = query("leader.ocean.", RecordType::A, 11, false);
        raw.resize(MAX_QUERY_LEN + 1, 0);
        assert_eq!(
            ask(&a, &raw).1.unwrap().metadata.response_code,
            ResponseCode::FormErr
        );
        // Responses are never answered.
        let mut raw = query("leader.ocean.", RecordType::A, 12, false);
        raw[2] |= 0x80;
        assert_eq!(ask(&a, &raw).0, Action::Drop);
        // Out of zone: refused without upstreams, forwarded with them.
        let raw = query("example.com.", RecordType::A, 13, false);
        let m = ask(&a, &raw).1.unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
        assert_eq!(ask(&authority(true), &raw).0, Action::Forward);
        // EDNS version 1.
        let mut m = Message::new(14, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(
            Name::from_ascii("leader.ocean.").unwrap(),
            RecordType::A,
        ));
        let mut e = Edns::new();
        e.set_version(1);
        m.set_edns(e);
        let resp = ask(&a, &m.to_vec().unwrap()).1.unwrap();
        // 16 is BADVERS in an OPT-carrying response (hickory decodes it as
        // its alias BADSIG).
        assert_eq!(u16::from(resp.metadata.response_code), 16);
        let sf = Message::from_vec(&servfail(&raw).unwrap()).unwrap();
        assert_eq!(sf.metadata.response_code, ResponseCode::ServFail);
        assert_eq!(sf.metadata.id, 13);
    }
}
