//! Chaos runs: seeded schedules of faults (leader kill, SIGSTOP, network
//! partitions of several kinds, agent kill, task kill, full restart)
//! against 3 masters and 3 agents, each in its own network namespace
//! ([`crate::partition`]), with clients recording a history of job writes
//! and consistent reads. After each schedule the cluster must settle, and
//! then: no acknowledged job is lost, no job ran more tasks than asked (a
//! watcher samples throughout), no task was replaced by faults that touch
//! only the masters, and the history is linearizable
//! ([`crate::linearizability`]). Used by `tests/tests/chaos_partitions.rs`
//! (a few schedules) and `ocean-bench chaos --schedules N` (many).

mod clients;
mod cluster;
mod faults;
mod run;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::tasks::running;
use crate::Api;

pub use cluster::NsCluster;
pub use faults::Fault;
pub use run::{run, workload_spec, Options, Report};

/// A small deterministic generator (xorshift64*): the choices replay from
/// the printed seed.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// A seed from `OCEAN_CHAOS_SEED`, else from the clock (never 0, which
/// the generator cannot leave).
pub fn seed_from_env() -> u64 {
    std::env::var("OCEAN_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
        | 1
}

/// A read that gives up after `secs` (a stopped master never answers).
pub async fn get_within(api: &Api, path: &str, secs: u64) -> Option<crate::http::Reply> {
    get_within_ms(api, path, secs * 1000).await
}

/// [`get_within`] in milliseconds.
pub async fn get_within_ms(api: &Api, path: &str, ms: u64) -> Option<crate::http::Reply> {
    tokio::time::timeout(Duration::from_millis(ms), api.get(path))
        .await
        .ok()?
        .ok()
}

/// The first master among `apis` that answers with a known leader.
pub async fn answering(apis: &[Api]) -> Option<Api> {
    for api in apis {
        if let Some(r) = get_within(api, "/v1/leader", 2).await {
            if r.status == 200 {
                return Some(api.clone());
            }
        }
    }
    None
}

/// Jobs' instances and their RUNNING (not stopping) tasks, as one master
/// sees them at one version.
pub async fn census(api: &Api) -> Option<Census> {
    let jobs = get_within(api, "/v1/jobs", 5).await?;
    let version = jobs.body["version"].as_u64()?;
    let tasks = get_within(api, &format!("/v1/tasks?min_version={version}"), 5).await?;
    let mut out: BTreeMap<String, (u64, BTreeSet<String>)> = BTreeMap::new();
    for j in jobs.body["jobs"].as_array()? {
        let id = j["id"].as_str()?.to_string();
        out.insert(id, (j["spec"]["instances"].as_u64()?, BTreeSet::new()));
    }
    for t in running(tasks.body["tasks"].as_array()?) {
        if let Some(entry) = out.get_mut(t["job"].as_str()?) {
            entry.1.insert(t["id"].as_str()?.to_string());
        }
    }
    Some(out)
}

/// Jobs over their instance count in a census, one line each.
pub fn over_count(jobs: &Census) -> Vec<String> {
    jobs.iter()
        .filter(|(_, (want, running))| running.len() as u64 > *want)
        .map(|(job, (want, running))| {
            format!("{job}: {} RUNNING > {want}: {running:?}", running.len())
        })
        .collect()
}

/// A census: each job's instances and RUNNING task ids.
pub type Census = BTreeMap<String, (u64, BTreeSet<String>)>;

/// Why a cluster is not settled: an acknowledged job missing, asking other
/// instances than acknowledged or running another number of tasks, or the
/// agents' cgroups holding other tasks than the state says run. Empty when
/// settled.
pub fn settle_problems(
    jobs: &Census,
    acked: &BTreeMap<String, u64>,
    agents: &[crate::AgentProc],
) -> Vec<String> {
    let mut problems = Vec::new();
    for (job, want) in acked {
        match jobs.get(job) {
            None => problems.push(format!("acknowledged job {job} is gone")),
            Some((w, _)) if w != want => {
                problems.push(format!("{job} asks {w}, acknowledged {want}"))
            }
            Some((_, r)) if r.len() as u64 != *want => {
                problems.push(format!("{job}: {} RUNNING, wants {want}", r.len()))
            }
            _ => {}
        }
    }
    let expected: BTreeSet<String> = jobs.values().flat_map(|(_, r)| r.iter().cloned()).collect();
    let real: BTreeSet<String> = agents
        .iter()
        .flat_map(|a| crate::tasks::live_task_cgroups(&a.cgroup_parent()))
        .collect();
    if real != expected {
        problems.push(format!(
            "processes differ: only in cgroups {:?}, only in the state {:?}",
            real.difference(&expected).collect::<Vec<_>>(),
            expected.difference(&real).collect::<Vec<_>>()
        ));
    }
    problems
}

/// RUNNING tasks as (id, pid) per job, read consistently through `api`.
pub async fn task_pids(api: &Api) -> Option<BTreeMap<String, BTreeSet<(String, i64)>>> {
    let r = get_within(api, "/v1/tasks?consistent=true", 5).await?;
    if r.status != 200 {
        return None;
    }
    let mut out: BTreeMap<String, BTreeSet<(String, i64)>> = BTreeMap::new();
    for t in running(r.body["tasks"].as_array()?) {
        out.entry(t["job"].as_str()?.to_string())
            .or_default()
            .insert((
                t["id"].as_str()?.to_string(),
                t["pid"].as_i64().unwrap_or(0),
            ));
    }
    Some(out)
}
