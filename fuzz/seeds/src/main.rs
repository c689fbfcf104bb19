//! Writes seed inputs for the fuzz targets into `fuzz/corpus/<target>/`:
//!
//! - `raft_envelope`: the `RaftBatch`es a 3-node raft-rs cluster (in memory,
//!   the raft crate and version the masters use) sends while it elects a
//!   leader, commits Ocean commands and adds a learner, and the
//!   `ForwardRequest`s a follower sends (every command kind it forwards,
//!   one it may not, membership and read-index requests);
//! - `agent_message`: agent sessions shaped as the agent sends them
//!   (`agent/src/session.rs`: a registration with its full report first,
//!   then heartbeats, reports, usage and host checks);
//! - `dns_query`: queries for each kind of name the zone holds, encoded by
//!   hickory (the same encoder as hickory's resolver), with and without
//!   EDNS.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml -p ocean-fuzz-seeds`

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use hickory_proto::op::{Edns, Message as DnsMessage, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use ocean_proto::agent::{
    agent_message, AgentMessage, ExecutorInfo, Heartbeat, HostCheck, HostChecks, Register,
    Resources, TaskReport, TaskStatus, TaskUsage, UsageReport,
};
use ocean_proto::internal::Command;
use ocean_proto::raft::{forward_request, AddMember, ForwardRequest, RaftBatch, ReadIndex};
use prost::Message as _;
use protobuf::Message as _;
use raft::prelude::{ConfChange, ConfChangeType, ConfState, Config, Message as RaftMessage};
use raft::storage::MemStorage;
use raft::RawNode;

/// The job of the fuzz crate's base state (`fuzz/src/lib.rs`).
const JOB: &str = "cop.example_owt.dev_pdl.demo_service.web_job.http_cluster.dev";
const AGENT: &str = "agent-1";

fn task_id(n: u32) -> String {
    format!("{JOB}.{n:015x}")
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).expect("corpus dir");
    std::fs::write(dir.join(name), bytes).expect("write seed");
}

fn spec_json() -> Vec<u8> {
    let mut spec = ocean_spec::JobSpec::new(JOB, "python3 -m http.server $PORT_HTTP");
    spec.instances = 2;
    spec.ports = vec![ocean_spec::PortSpec {
        name: "http".into(),
        port: 0,
        protocol: ocean_spec::PortProtocol::Tcp,
    }];
    spec.to_canonical_json()
}

/// Every kind of command a follower forwards (and one it must not).
fn commands() -> Vec<Command> {
    use ocean_proto::internal::*;
    let kinds = vec![
        command::Kind::PutJob(PutJob {
            id: JOB.into(),
            spec_json: spec_json(),
            expected_spec_version: Some(1),
            rollback_to: 0,
        }),
        command::Kind::ScaleJob(ScaleJob {
            id: JOB.into(),
            instances: 3,
            ..Default::default()
        }),
        command::Kind::DeleteJob(DeleteJob {
            id: JOB.into(),
            expected_spec_version: None,
        }),
        command::Kind::ResetBackoff(ResetBackoff { id: JOB.into() }),
        command::Kind::SetAgentStatus(SetAgentStatus {
            agent_id: AGENT.into(),
            status: "draining".into(),
            message: "kernel upgrade".into(),
        }),
        command::Kind::PutKv(PutKv {
            namespace: "elb".into(),
            key: "elbs/front".into(),
            value: br#"{"name":"front","domain":"front.web","vips":["10.9.0.1"],"listeners":[]}"#
                .to_vec(),
            ..Default::default()
        }),
        command::Kind::DeleteKv(DeleteKv {
            namespace: "elb".into(),
            key: "elbs/front".into(),
            ..Default::default()
        }),
        command::Kind::Lease(Lease {
            namespace: "redis".into(),
            name: "leader".into(),
            holder: "redis-1".into(),
            ttl_ms: 10_000,
            now_ms: 1_800_000_000_000,
            release: false,
        }),
        command::Kind::SetMember(Member {
            id: 2,
            grpc_addr: "10.0.0.2:7701".into(),
            http_addr: "10.0.0.2:7700".into(),
        }),
        command::Kind::Noop(Noop {}),
        // Proposed by the leader only: refused when forwarded.
        command::Kind::TaskUpdates(TaskUpdates {
            updates: vec![TaskUpdate {
                task_id: task_id(3),
                agent_id: AGENT.into(),
                state: "FAILED".into(),
                exit_code: Some(1),
                ..Default::default()
            }],
        }),
    ];
    kinds
        .into_iter()
        .map(|k| Command {
            kind: Some(k),
            ..Default::default()
        })
        .collect()
}

struct Cluster {
    nodes: BTreeMap<u64, RawNode<MemStorage>>,
    batches: Vec<RaftBatch>,
}

impl Cluster {
    fn new() -> Self {
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let nodes = (1..=3)
            .map(|id| {
                let cfg = Config {
                    id,
                    election_tick: 10,
                    heartbeat_tick: 3,
                    ..Default::default()
                };
                let storage =
                    MemStorage::new_with_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
                (id, RawNode::new(&cfg, storage, &logger).expect("raft node"))
            })
            .collect();
        Cluster {
            nodes,
            batches: Vec::new(),
        }
    }

    /// Runs every node's ready loop until no message is left, recording
    /// what each node sends to each peer as the transport batches it.
    fn settle(&mut self) {
        for _ in 0..100 {
            let mut out: Vec<RaftMessage> = Vec::new();
            for node in self.nodes.values_mut() {
                if !node.has_ready() {
                    continue;
                }
                let mut rd = node.ready();
                out.extend(rd.take_messages());
                let store = node.raft.raft_log.store.clone();
                if !rd.entries().is_empty() {
                    store.wl().append(rd.entries()).expect("append");
                }
                if let Some(hs) = rd.hs() {
                    store.wl().set_hardstate(hs.clone());
                }
                out.extend(rd.take_persisted_messages());
                let mut light = node.advance(rd);
                if let Some(commit) = light.commit_index() {
                    store.wl().mut_hard_state().set_commit(commit);
                }
                out.extend(light.take_messages());
                for e in light.take_committed_entries() {
                    if e.get_entry_type() == raft::prelude::EntryType::EntryConfChange {
                        let mut cc = ConfChange::default();
                        cc.merge_from_bytes(e.get_data()).expect("conf change");
                        let cs = node.apply_conf_change(&cc).expect("apply conf change");
                        store.wl().set_conf_state(cs);
                    }
                }
                node.advance_apply();
            }
            if out.is_empty() {
                return;
            }
            let mut by_link: BTreeMap<(u64, u64), Vec<RaftMessage>> = BTreeMap::new();
            for m in out {
                by_link.entry((m.from, m.to)).or_default().push(m);
            }
            for ((from, to), msgs) in by_link {
                self.batches.push(RaftBatch {
                    from,
                    messages: msgs
                        .iter()
                        .map(|m| m.write_to_bytes().expect("encode"))
                        .collect(),
                    from_addr: format!("10.0.0.{from}:7702"),
                });
                // The learner never answers: it is not running.
                if let Some(node) = self.nodes.get_mut(&to) {
                    for m in msgs {
                        let _ = node.step(m);
                    }
                }
            }
        }
    }
}

fn raft_seeds(dir: &Path) {
    let mut c = Cluster::new();
    c.nodes
        .get_mut(&1)
        .expect("node 1")
        .campaign()
        .expect("campaign");
    c.settle();
    for cmd in commands().into_iter().take(4) {
        c.nodes
            .get_mut(&1)
            .expect("leader")
            .propose(Vec::new(), cmd.encode_to_vec())
            .expect("propose");
        c.settle();
    }
    let mut cc = ConfChange::default();
    cc.set_change_type(ConfChangeType::AddLearnerNode);
    cc.node_id = 4;
    cc.context = ocean_proto::internal::Member {
        id: 4,
        grpc_addr: "10.0.0.4:7701".into(),
        http_addr: "10.0.0.4:7700".into(),
    }
    .encode_to_vec()
    .into();
    c.nodes
        .get_mut(&1)
        .expect("leader")
        .propose_conf_change(Vec::new(), cc)
        .expect("conf change");
    c.settle();
    for _ in 0..4 {
        for n in c.nodes.values_mut() {
            n.tick();
        }
        c.settle();
    }
    // One seed per distinct shape (sender, message types), at most 40.
    let mut seen = HashMap::new();
    for b in &c.batches {
        let types: Vec<i32> = b
            .messages
            .iter()
            .map(|m| {
                RaftMessage::parse_from_bytes(m)
                    .expect("decode")
                    .get_msg_type() as i32
            })
            .collect();
        let n = seen.len();
        if seen.len() < 40 && !seen.contains_key(&(b.from, types.clone())) {
            seen.insert((b.from, types), ());
            let mut bytes = vec![0u8];
            bytes.extend(b.encode_to_vec());
            write(dir, &format!("batch-{n:02}"), &bytes);
        }
    }
    let forwards = commands()
        .into_iter()
        .map(|c| forward_request::Kind::Command(c.encode_to_vec()))
        .chain([
            forward_request::Kind::AddMember(AddMember {
                id: 4,
                grpc_addr: "10.0.0.4:7701".into(),
                http_addr: "10.0.0.4:7700".into(),
                rejoin: false,
                raft_addr: "10.0.0.4:7702".into(),
            }),
            forward_request::Kind::RemoveMember(4),
            forward_request::Kind::ReadIndex(ReadIndex {}),
        ]);
    for (i, kind) in forwards.enumerate() {
        let mut bytes = vec![1u8];
        bytes.extend(ForwardRequest { kind: Some(kind) }.encode_to_vec());
        write(dir, &format!("forward-{i:02}"), &bytes);
    }
}

fn status(n: u32, state: &str) -> TaskStatus {
    TaskStatus {
        task_id: task_id(n),
        state: state.into(),
        timestamp_ms: 1_800_000_000_000 + u64::from(n),
        pid: 4000 + n as i32,
        ..Default::default()
    }
}

fn register(tasks: Vec<TaskStatus>, docker: bool) -> AgentMessage {
    let mut executors = vec![ExecutorInfo {
        name: "native".into(),
        available: true,
        ..Default::default()
    }];
    if docker {
        executors.push(ExecutorInfo {
            name: "docker".into(),
            available: true,
            version: "20.10.24".into(),
            features: vec!["image".into()],
            ..Default::default()
        });
    }
    AgentMessage {
        kind: Some(agent_message::Kind::Register(Register {
            agent_id: AGENT.into(),
            hostname: "host-agent-1".into(),
            attributes: [
                ("idc", "dc1"),
                ("loc", "rack-7"),
                ("hostname", "host-agent-1"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            resources: Some(Resources {
                cpus: 8.0,
                mem_mib: 16_384,
                disk_mib: 100_000,
            }),
            port_low: 31_000,
            port_high: 32_000,
            address: "10.0.0.100".into(),
            version: "0.1.0".into(),
            tasks,
            http_addr: "10.0.0.100:7710".into(),
            executors,
        })),
    }
}

fn session(msgs: &[AgentMessage]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        m.encode_length_delimited(&mut out).expect("encode");
    }
    out
}

fn agent_seeds(dir: &Path) {
    let heartbeat = AgentMessage {
        kind: Some(agent_message::Kind::Heartbeat(Heartbeat::default())),
    };
    let report = |full: bool, tasks: Vec<TaskStatus>| AgentMessage {
        kind: Some(agent_message::Kind::Report(TaskReport { full, tasks })),
    };
    let mut healthy = status(3, "RUNNING");
    healthy.healthy = Some(false);
    healthy.health_message = "tcp connect 10.0.0.3:31003: connection refused".into();
    let mut failed = status(2, "FAILED");
    failed.exit_code = Some(137);
    failed.signal = Some(9);
    failed.reason = "oom_killed".into();
    failed.message = "memory limit 64 MiB reached".into();
    let usage = AgentMessage {
        kind: Some(agent_message::Kind::Usage(UsageReport {
            timestamp_ms: 1_800_000_000_000,
            interval_ms: 5_000,
            tasks: vec![TaskUsage {
                task_id: task_id(3),
                cpu_cores: Some(0.25),
                memory_rss_bytes: 40 << 20,
                ..Default::default()
            }],
        })),
    };
    let checks = AgentMessage {
        kind: Some(agent_message::Kind::HostChecks(HostChecks {
            timestamp_ms: 1_800_000_000_000,
            checks: vec![
                HostCheck {
                    name: "disk:/var/lib/ocean".into(),
                    ok: true,
                    value: 42.0,
                    limit: 90.0,
                    message: String::new(),
                    bound: "at_least".into(),
                    jobs: Vec::new(),
                },
                HostCheck {
                    name: "load".into(),
                    ok: false,
                    value: 12.5,
                    limit: 8.0,
                    message: "load 12.5 over 8".into(),
                    bound: "at_most".into(),
                    jobs: Vec::new(),
                },
            ],
            interval_ms: 30_000,
            data_dir: "/var/lib/ocean".into(),
            max_clock_skew_ms: 500,
        })),
    };
    let all = vec![
        status(1, "STARTING"),
        status(2, "RUNNING"),
        status(3, "RUNNING"),
    ];
    let sessions: Vec<(&str, Vec<AgentMessage>)> = vec![
        ("register-empty", vec![register(Vec::new(), false)]),
        (
            "session-full",
            vec![
                register(all.clone(), true),
                checks.clone(),
                heartbeat.clone(),
                report(false, vec![healthy, failed]),
                usage.clone(),
                report(true, all),
            ],
        ),
        (
            "session-reports",
            vec![
                register(vec![status(3, "RUNNING"), status(99, "RUNNING")], false),
                report(false, vec![status(1, "RUNNING")]),
                report(false, vec![status(3, "FINISHED")]),
                heartbeat,
            ],
        ),
        (
            "session-usage",
            vec![register(Vec::new(), false), usage, checks],
        ),
    ];
    for (name, msgs) in sessions {
        write(dir, name, &session(&msgs));
    }
    let mut bad = register(Vec::new(), false);
    if let Some(agent_message::Kind::Register(r)) = &mut bad.kind {
        r.port_low = 40_000;
    }
    write(dir, "register-bad-ports", &session(&[bad]));
}

fn dns_seeds(dir: &Path) {
    let job = "http.web.demo.dev.ocean.";
    let names: Vec<(String, RecordType)> = vec![
        (job.into(), RecordType::A),
        (job.into(), RecordType::AAAA),
        (format!("_http._tcp.{job}"), RecordType::SRV),
        (format!("000000000000003.{job}"), RecordType::A),
        (format!("{AGENT}.agents.ocean."), RecordType::A),
        ("agents.ocean.".into(), RecordType::A),
        ("leader.ocean.".into(), RecordType::A),
        ("masters.ocean.".into(), RecordType::A),
        ("ns.ocean.".into(), RecordType::A),
        ("ocean.".into(), RecordType::SOA),
        ("ocean.".into(), RecordType::NS),
        ("ocean.".into(), RecordType::ANY),
        ("missing.ocean.".into(), RecordType::A),
        ("HTTP.Web.Demo.DEV.ocean.".into(), RecordType::A),
        ("example.com.".into(), RecordType::A),
        ("1.0.0.10.in-addr.arpa.".into(), RecordType::PTR),
    ];
    for (i, (name, t)) in names.into_iter().enumerate() {
        for edns in [false, true] {
            let mut m = DnsMessage::new(0x1000 + i as u16, MessageType::Query, OpCode::Query);
            m.metadata.recursion_desired = true;
            m.add_query(Query::query(Name::from_ascii(&name).expect("name"), t));
            if edns {
                let mut e = Edns::new();
                e.set_max_payload(1232);
                m.set_edns(e);
            }
            let suffix = if edns { "-edns" } else { "" };
            write(
                dir,
                &format!("query-{i:02}{suffix}"),
                &m.to_vec().expect("encode"),
            );
        }
    }
}

fn main() {
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    raft_seeds(&corpus.join("raft_envelope"));
    agent_seeds(&corpus.join("agent_message"));
    dns_seeds(&corpus.join("dns_query"));
}
