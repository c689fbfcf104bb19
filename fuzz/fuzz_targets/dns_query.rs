//! DNS queries into the server's query path (`Authority::handle`, shared by
//! UDP and TCP) over a populated zone with a fresh answer cache. It must
//! never panic; a reply is a DNS response with the query's id, within the
//! UDP size limit; asking again (now a cache hit) gives the same bytes.
//! The zone has a name with views, asked from inside and outside them.

#![no_main]

use std::net::IpAddr;

use hickory_proto::op::{Message, MessageType};
use libfuzzer_sys::fuzz_target;
use ocean_dns::query::{Action, Transport, EDNS_PAYLOAD};

fuzz_target!(|raw: &[u8]| {
    let auth = ocean_fuzz::authority();
    let inside = Some(IpAddr::from([58, 33, 0, 7]));
    for (transport, client) in [(Transport::Udp, inside), (Transport::Tcp, None)] {
        let mut first = Vec::new();
        let action = auth.handle(raw, transport, client, &mut first);
        let mut again = Vec::new();
        assert_eq!(auth.handle(raw, transport, client, &mut again), action);
        if action != Action::Reply {
            continue;
        }
        assert_eq!(first, again, "a cached answer differs from the first");
        assert_eq!(first[..2], raw[..2], "the reply keeps the query's id");
        if transport == Transport::Udp {
            assert!(
                first.len() <= usize::from(EDNS_PAYLOAD),
                "UDP reply too big"
            );
        }
        let reply = Message::from_vec(&first).expect("the reply parses");
        assert_eq!(reply.metadata.message_type, MessageType::Response);
    }
});
