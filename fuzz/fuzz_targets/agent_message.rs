//! An agent's session stream as the leader handles it
//! (`api::agent::AgentService::session` and `follow`): a sequence of
//! length-delimited `AgentMessage`s, the first of which must be a valid
//! `Register`. Each message goes where the master sends it: registration
//! checks and the agent record committed through raft, status reports
//! checked and applied as a `TaskUpdates` entry, full reports compared with
//! the state, usage samples and host checks into their in-memory stores.
//! Nothing may panic, and the state's summary must stay equal to a recount.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ocean_master::api::agent::{agent_of, validate};
use ocean_master::host_checks;
use ocean_master::kernel::state::{put_agent_command, task_updates_command};
use ocean_master::reconcile::reports::{checked, compare};
use ocean_master::usage::UsageStore;
use ocean_proto::agent::{agent_message, AgentMessage};
use prost::Message as _;

/// Leader clock for usage samples: fixed, so runs are deterministic.
const NOW_MS: u64 = 1_800_000_000_000;

/// The entry the status batcher proposes: stamped with the leader's clock.
fn entry(mut updates: Vec<ocean_proto::internal::TaskUpdate>) -> ocean_proto::internal::Command {
    for u in &mut updates {
        u.received_ms = NOW_MS;
    }
    task_updates_command(updates)
}

fuzz_target!(|input: &[u8]| {
    let mut buf = input;
    let mut messages = Vec::new();
    while !buf.is_empty() && messages.len() < 64 {
        match AgentMessage::decode_length_delimited(&mut buf) {
            Ok(m) => messages.push(m),
            // tonic ends the stream with an error: nothing after it is read.
            Err(_) => break,
        }
    }
    let mut messages = messages.into_iter();
    let Some(first) = messages.next() else {
        return;
    };
    let Some(agent_message::Kind::Register(reg)) = first.kind else {
        return;
    };
    if let Err(status) = validate(&reg) {
        assert!(
            status.message().starts_with("register."),
            "a refusal names the field: {}",
            status.message()
        );
        return;
    }
    let mut st = ocean_fuzz::base_state().clone();
    let agent = agent_of(&reg);
    let id = agent.id.clone();
    st.apply(&put_agent_command(agent));
    let report = compare(&id, &reg.tasks, &st);
    st.apply(&entry(report.updates));
    let usage = UsageStore::default();
    let checks = host_checks::Store::default();
    for m in messages {
        match m.kind {
            Some(agent_message::Kind::Report(r)) if r.full => {
                let report = compare(&id, &r.tasks, &st);
                st.apply(&entry(report.updates));
            }
            Some(agent_message::Kind::Report(r)) => {
                st.apply(&entry(checked(&id, &r.tasks)));
            }
            Some(agent_message::Kind::Register(_)) | Some(agent_message::Kind::Heartbeat(_)) => {}
            Some(agent_message::Kind::Usage(u)) => {
                usage.record(&id, &u, NOW_MS);
                for t in &u.tasks {
                    assert!(usage.task(&t.task_id).is_some(), "a sample was kept");
                }
            }
            Some(agent_message::Kind::HostChecks(c)) => {
                checks.put(&id, &c);
                assert!(checks.get(&id).is_some(), "host checks were kept");
            }
            None => {}
        }
    }
    ocean_fuzz::check_summary(&st);
});
