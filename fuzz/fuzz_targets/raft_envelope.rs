//! What a peer master sends on the raft listener (`RaftTransport`): a
//! `RaftBatch` (Send and Stream) or a `ForwardRequest` (a follower's write
//! forwarded to the leader). The first byte picks which; the rest is the
//! encoded request. A batch's sender address is recorded and each of its
//! messages decoded as the transport does before handing it to the raft
//! driver; a forwarded command is decoded and checked
//! (`api::grpc::forwarded_command`) and, when accepted, applied to the
//! cluster state as every master would apply it once committed. Nothing
//! may panic, and the state's summary must stay equal to a recount.
//!
//! Not here: stepping the decoded messages into raft-rs (peers are
//! authenticated masters, and raft-rs treats a message that breaks
//! raft's own invariants as fatal by design).

#![no_main]

use libfuzzer_sys::fuzz_target;
use ocean_master::api::grpc::{forwarded_command, raft_message};
use ocean_master::transport::PeerHealth;
use ocean_proto::raft::{forward_request, ForwardRequest, RaftBatch};
use prost::Message as _;
use protobuf::Message as _;

fuzz_target!(|input: &[u8]| {
    let Some((&which, body)) = input.split_first() else {
        return;
    };
    if which % 2 == 0 {
        batch(body);
    } else {
        forward(body);
    }
});

fn batch(body: &[u8]) {
    let Ok(batch) = RaftBatch::decode(body) else {
        return;
    };
    let health = PeerHealth::default();
    health.heard(batch.from, &batch.from_addr);
    let expected = (!batch.from_addr.is_empty()).then(|| batch.from_addr.clone());
    assert_eq!(health.address(batch.from), expected);
    for bytes in &batch.messages {
        let Ok(msg) = raft_message(bytes) else {
            // The transport refuses the rest of the batch.
            return;
        };
        // What raft reads of a message survives encoding it again (a
        // follower persists the entries it receives): every known field,
        // as the text format shows them. Not `==`: rust-protobuf keeps
        // unknown fields, and a nested message's unknown fields once
        // compared unequal after a round trip although no known field
        // differed (fuzz/corpus/raft_envelope/unknown-fields-round-trip).
        let again = msg.write_to_bytes().expect("encode a decoded message");
        let again = raft_message(&again).expect("decode again");
        assert_eq!(format!("{again:?}"), format!("{msg:?}"));
    }
}

fn forward(body: &[u8]) {
    let Ok(req) = ForwardRequest::decode(body) else {
        return;
    };
    match req.kind {
        Some(forward_request::Kind::Command(bytes)) => {
            let Ok(cmd) = forwarded_command(&bytes) else {
                return;
            };
            let mut st = ocean_fuzz::base_state().clone();
            st.apply(&cmd);
            ocean_fuzz::check_summary(&st);
        }
        Some(forward_request::Kind::AddMember(m)) => {
            PeerHealth::default().heard(m.id, &m.raft_addr);
        }
        Some(forward_request::Kind::RemoveMember(_) | forward_request::Kind::ReadIndex(_))
        | None => {}
    }
}
