//! What the fuzz targets share: a small, real cluster state for the
//! master's paths to apply their commands to, and a populated DNS zone.
//! Built once per process and cloned per input, so every input starts from
//! the same state (libFuzzer needs runs to be deterministic).

use std::sync::{Arc, OnceLock};

use ocean_dns::model::{Model, Node, Owner};
use ocean_dns::query::Authority;
use ocean_dns::zone::Zone;
use ocean_master::kernel::state::summary::Summary;
use ocean_master::kernel::state::{put_agent_command, ClusterState};
use ocean_proto::internal::{command, Agent, Command, PutJob, Task, TaskPort};
use ocean_spec::JobSpec;

/// A job id in the service-tree form the spec requires.
pub const JOB: &str = "cop.example_owt.dev_pdl.demo_service.web_job.http_cluster.dev";
/// The agent the base state's tasks run on.
pub const AGENT: &str = "agent-1";

fn spec_json() -> Vec<u8> {
    let mut spec = JobSpec::new(JOB, "python3 -m http.server $PORT_HTTP");
    spec.instances = 4;
    spec.ports = vec![ocean_spec::PortSpec {
        name: "http".into(),
        port: 0,
        protocol: ocean_spec::PortProtocol::Tcp,
    }];
    spec.to_canonical_json()
}

fn task(n: u32, agent: &str, state: &str) -> Arc<Task> {
    Arc::new(Task {
        id: format!("{JOB}.{n:015x}"),
        job_id: JOB.into(),
        agent_id: agent.into(),
        host: format!("host-{agent}"),
        state: state.into(),
        address: format!("10.0.0.{n}"),
        ports: vec![TaskPort {
            name: "http".into(),
            port: 31_000 + n,
        }],
        cpus: 0.5,
        mem_mib: 64,
        ..Default::default()
    })
}

/// One job with tasks in every interesting state on [`AGENT`] (and one
/// elsewhere), two registered agents.
pub fn base_state() -> &'static ClusterState {
    static STATE: OnceLock<ClusterState> = OnceLock::new();
    STATE.get_or_init(|| {
        let mut st = ClusterState::default();
        st.apply(&Command {
            kind: Some(command::Kind::PutJob(PutJob {
                id: JOB.into(),
                spec_json: spec_json(),
                ..Default::default()
            })),
            ..Default::default()
        });
        for (i, id) in [AGENT, "agent-2"].into_iter().enumerate() {
            st.apply(&put_agent_command(Agent {
                id: id.into(),
                hostname: format!("host-{id}"),
                cpus: 8.0,
                mem_mib: 16_384,
                disk_mib: 100_000,
                port_low: 31_000,
                port_high: 32_000,
                address: format!("10.0.0.{}", 100 + i),
                ..Default::default()
            }));
        }
        for (n, (agent, state)) in [
            (AGENT, "STAGING"),
            (AGENT, "STARTING"),
            (AGENT, "RUNNING"),
            (AGENT, "KILLED"),
            ("agent-2", "RUNNING"),
        ]
        .into_iter()
        .enumerate()
        {
            st.insert_task(task(n as u32 + 1, agent, state));
        }
        st
    })
}

/// Panics when the incrementally kept summary (counts the dashboard and
/// metrics read) differs from one counted from scratch.
pub fn check_summary(st: &ClusterState) {
    assert_eq!(
        st.summary,
        Summary::recount(st),
        "the summary drifted from the state"
    );
}

type Records = Vec<(Owner, Vec<(String, Node)>)>;

/// The records a cluster with the base state's job gives, through the
/// same model the DNS server follows the masters with.
fn zone_records() -> &'static Records {
    static RECORDS: OnceLock<Records> = OnceLock::new();
    RECORDS.get_or_init(|| {
        use ocean_proto::v1::{event, Event, Job, Snapshot};
        let mut model = Model::new("ocean");
        let tasks = (1..=6u32)
            .map(|n| ocean_proto::v1::Task {
                id: format!("{JOB}.{n:015x}"),
                job_id: JOB.into(),
                agent_id: AGENT.into(),
                host: "host-agent-1".into(),
                address: format!("10.0.0.{n}"),
                state: "RUNNING".into(),
                ports: vec![ocean_proto::v1::TaskPort {
                    name: "http".into(),
                    port: 31_000 + n,
                }],
                ..Default::default()
            })
            .collect();
        let agents = vec![ocean_proto::v1::Agent {
            id: AGENT.into(),
            hostname: "host-agent-1".into(),
            address: "10.0.0.100".into(),
            ..Default::default()
        }];
        let mut owners = model.apply(Event {
            version: 7,
            kind: Some(event::Kind::Snapshot(Snapshot {
                version: 7,
                jobs: vec![Job {
                    id: JOB.into(),
                    spec_json: spec_json(),
                    ..Default::default()
                }],
                agents,
                tasks,
                // An ELB whose domain has a view (the query path picks
                // answers by client network for it).
                kv: vec![ocean_proto::v1::KvEntry {
                    namespace: "elb".into(),
                    key: "elbs/pdl.front".into(),
                    value: br#"{"domain":"front.ocean","vips":["10.9.0.1","10.9.0.2"],"views":[{"subnets":["58.32.0.0/11"],"vips":["10.9.0.1"]}]}"#.to_vec(),
                    ..Default::default()
                }],
            })),
            last_of_version: true,
        });
        let master = "10.0.0.200".parse().expect("ip");
        model.set_masters(Some(master), vec![master]);
        owners.push(Owner::Masters);
        owners.sort();
        owners.dedup();
        owners
            .into_iter()
            .map(|o| {
                let r = model.records(&o);
                (o, r)
            })
            .collect()
    })
}

/// A fresh authority (empty answer cache) over the populated zone, ready.
pub fn authority() -> Authority {
    let ns = "10.0.0.200".parse().expect("ip");
    let auth = Authority::new(Zone::new("ocean", 5, Some(ns)), false);
    auth.update(|zone| {
        zone.serial = 7;
        zone_records()
            .iter()
            .flat_map(|(owner, recs)| zone.replace(owner.clone(), recs.clone()))
            .collect()
    });
    auth.set_ready();
    auth
}
