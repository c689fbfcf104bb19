//! What one master spends applying the schedule benchmark's raft entries,
//! without raft or the network: 10,000 agents, 1,000 jobs, 100,000
//! placements in entries of 2,000 (as the leader writes them), then every
//! task reported RUNNING. Each step goes through the same code as the raft
//! thread: decode, `ClusterState::apply_owned`, `StoreBatch::applied` and
//! one RocksDB write (fsync off: the disk is not what is measured).
//!
//! ```sh
//! cargo run --release -p ocean-master --example apply_load [agents] [jobs] [tasks_per_job]
//! ```

use std::time::Instant;

use ocean_master::kernel::state::{plan_command, put_agent_command, put_job_command, RUNNING};
use ocean_master::kernel::storage::RaftStore;
use ocean_proto::internal::{
    command, Agent, Command, JobPlacements, Placement, PlanTasks, TaskUpdate, TaskUpdates,
};
use prost::Message as _;
use raft::eraftpb::Entry;

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn job_id(j: usize) -> String {
    format!(
        "cop.xiaomi_owt.inf_pdl.p{}_servicegroup.g_service.s{j}_job.job{j:04}_cluster.c3",
        j % 7
    )
}

/// Applies `cmds` as one Ready: appended to the log, applied, and written
/// in one batch, as the raft thread does.
fn ready(store: &RaftStore, index: &mut u64, cmds: Vec<Command>) {
    let mut batch = store.batch();
    let entries: Vec<Entry> = cmds
        .iter()
        .map(|c| {
            *index += 1;
            Entry {
                index: *index,
                term: 1,
                data: c.encode_to_vec().into(),
                ..Default::default()
            }
        })
        .collect();
    batch.append(&entries).expect("append");
    let state = store.state();
    let mut changes = Vec::new();
    let version = {
        let mut st = state.write().expect("state lock");
        for e in &entries {
            let cmd = Command::decode(&*e.data).expect("decode");
            changes.extend(st.apply_owned(cmd).changes);
            st.applied_index = e.index;
        }
        st.version
    };
    batch
        .applied(&changes, &[], &[], None, *index, version)
        .expect("applied");
    store.write_batch(batch).expect("write");
}

fn main() {
    let agents = arg(1, 10_000);
    let jobs = arg(2, 1_000);
    let per_job = arg(3, 100);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RaftStore::open(dir.path(), false).expect("open store");
    let mut index = 0;

    let t = Instant::now();
    let agent_cmds: Vec<Command> = (0..agents)
        .map(|a| {
            put_agent_command(Agent {
                id: format!("agent-{a:05}"),
                hostname: format!("host-{a:05}.example"),
                address: format!("10.{}.{}.{}", a / 65536, (a / 256) % 256, a % 256),
                status: "online".into(),
                ..Default::default()
            })
        })
        .collect();
    for chunk in agent_cmds.chunks(100) {
        ready(&store, &mut index, chunk.to_vec());
    }
    let t_agents = t.elapsed();

    let t = Instant::now();
    let job_cmds: Vec<Command> = (0..jobs)
        .map(|j| {
            let mut spec = ocean_spec::JobSpec::new(job_id(j), "sleep 3600");
            spec.instances = per_job as u32;
            put_job_command(job_id(j), spec.to_canonical_json())
        })
        .collect();
    for chunk in job_cmds.chunks(64) {
        ready(&store, &mut index, chunk.to_vec());
    }
    let t_jobs = t.elapsed();

    // Placements: 2,000 per entry, a few entries per Ready.
    let version = store.state().read().expect("state lock").version;
    let mut groups: Vec<JobPlacements> = (0..jobs)
        .map(|j| JobPlacements {
            job_id: job_id(j),
            config_hash: 7,
            cpus: 0.5,
            mem_mib: 512,
            disk_mib: 1024,
            port_names: vec!["http".into()],
            created_ms: 1,
            tasks: (0..per_job)
                .map(|n| Placement {
                    id_suffix: format!("{version:010x}{n:05x}"),
                    agent_id: format!("agent-{:05}", (j * 131 + n * 17) % agents),
                    ports: vec![31000 + n as u32],
                })
                .collect(),
        })
        .collect();
    let per_entry = (2_000 / per_job).max(1);
    let mut plans = Vec::new();
    while !groups.is_empty() {
        let rest = groups.split_off(groups.len().min(per_entry));
        plans.push(plan_command(PlanTasks {
            placed: std::mem::replace(&mut groups, rest),
            ..Default::default()
        }));
    }
    let t = Instant::now();
    for chunk in plans.chunks(2) {
        ready(&store, &mut index, chunk.to_vec());
    }
    let t_place = t.elapsed();

    // Every task reported RUNNING, 1,000 reports per entry.
    let ids: Vec<(String, String)> = {
        let st = store.state();
        let st = st.read().expect("state lock");
        st.tasks
            .values()
            .map(|t| (t.id.clone(), t.agent_id.clone()))
            .collect()
    };
    let updates: Vec<Command> = ids
        .chunks(1_000)
        .map(|c| Command {
            min_version: 0,
            kind: Some(command::Kind::TaskUpdates(TaskUpdates {
                updates: c
                    .iter()
                    .map(|(id, agent)| TaskUpdate {
                        task_id: id.clone(),
                        agent_id: agent.clone(),
                        state: RUNNING.into(),
                        timestamp_ms: 2,
                        pid: 1,
                        ..Default::default()
                    })
                    .collect(),
            })),
        })
        .collect();
    let t = Instant::now();
    for chunk in updates.chunks(4) {
        ready(&store, &mut index, chunk.to_vec());
    }
    let t_running = t.elapsed();
    let placed = ids.len();
    let per_us = |d: std::time::Duration| d.as_secs_f64() * 1e6 / placed.max(1) as f64;
    println!(
        "{agents} agents registered: {:.0} ms",
        t_agents.as_secs_f64() * 1e3
    );
    println!("{jobs} jobs put: {:.0} ms", t_jobs.as_secs_f64() * 1e3);
    println!(
        "{placed} placements applied: {:.0} ms ({:.2} µs each)",
        t_place.as_secs_f64() * 1e3,
        per_us(t_place)
    );
    println!(
        "{placed} RUNNING reports applied: {:.0} ms ({:.2} µs each)",
        t_running.as_secs_f64() * 1e3,
        per_us(t_running)
    );
}
