//! A seeded simulation of the leader's reconciler: a test double of the
//! cluster around the real reconciler and the real state machine.
//!
//! ```text
//!  seed ─► rng ─► event (task starts, ends, agent lost or back, drain,
//!                 scale, leader change) ─► SimCluster
//!  SimHost (reconcile::Host) ─► reconcile::step: ClusterState::apply (real)
//!           Launch / Kill ─► inbox ─► SimAgent (accepts or refuses, runs
//!           processes) ─► TaskStatus ─► reports::checked (real) ─► TaskUpdates
//!  after every step: the test's invariant over the state and the agents
//! ```
//! What is simulated: agents, their processes, the network between leader
//! and agents (messages delayed, dropped with a deposed leader), the raft
//! log (a command is committed as soon as it is proposed), and time (a
//! paused tokio clock, advanced by the seed). A leader change is a fresh
//! reconciler (empty memory, next term) over the same replicated state.
//!
//! `OCEAN_SIM_SEED=S` runs seed S only; `OCEAN_SIM_SEEDS=N` runs seeds
//! 0..N (default [`DEFAULT_SEEDS`]). A failing seed panics with the seed,
//! the step and the history of events; `OCEAN_SIM_TRACE=1` prints the
//! history of every seed.
//!
//! [`host`]: the reconciler's host (`SimHost`); [`agent`]: agents and their
//! reports; [`events`]: what a seed draws.

// Each sim_*.rs uses part of this module.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use ocean_master::kernel::state::{
    is_live, is_terminal, put_agent_command, put_job_command, reset_backoff_command, Applied,
    ClusterState, RUNNING,
};
use ocean_master::reconcile;
use ocean_proto::agent::{master_message, TaskStatus};
use ocean_proto::internal::{Agent, AgentExecutor, Command};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

mod agent;
mod events;
mod host;

pub use agent::SimAgent;
pub use events::Mix;
pub use host::SimHost;
use host::{new_leader, Shared};

/// Seeds run when neither variable is set: enough to cover the events'
/// interleavings, few enough to keep a file under a few seconds.
pub const DEFAULT_SEEDS: u64 = 64;
/// The simulated clock starts here (ms since the epoch).
const EPOCH_MS: u64 = 1_700_000_000_000;

/// The seeds this run covers.
pub fn seeds() -> Vec<u64> {
    if let Some(s) = std::env::var("OCEAN_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return vec![s];
    }
    let n = std::env::var("OCEAN_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEEDS);
    (0..n).collect()
}

/// Runs `body` once per seed, each on its own single-threaded runtime
/// with a paused clock. A panic (a broken invariant, or one in the code
/// under test) names the seed that caused it.
pub fn run_seeds<F, Fut>(name: &str, body: F)
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = ()>,
{
    for seed in seeds() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("a runtime");
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| rt.block_on(body(seed))));
        if let Err(p) = r {
            eprintln!("{name}: seed {seed} failed; reproduce with OCEAN_SIM_SEED={seed}");
            std::panic::resume_unwind(p);
        }
    }
}

/// A job's service-tree id.
pub fn job_id(n: usize) -> String {
    format!("cop.sim_owt.sim_pdl.sim_service.sim_job.j{n}_cluster.sim")
}

/// The simulated cluster and the current leader's reconciler.
pub struct SimCluster {
    pub seed: u64,
    pub rng: StdRng,
    shared: Arc<Shared>,
    pub leader: SimHost,
    pub agents: BTreeMap<String, SimAgent>,
    pub history: Vec<String>,
    /// Statuses sent by agents, not yet committed.
    reports: Vec<(String, TaskStatus)>,
    /// Kill messages any leader sent, by term.
    pub kills_sent: Vec<(u64, String)>,
    pub jobs: Vec<String>,
    pub step_no: usize,
}

impl SimCluster {
    /// `agents` agents (4 CPUs, 4 GiB each) and `jobs` jobs of
    /// `instances` tasks each, led by term 1.
    pub fn new(seed: u64, agents: usize, jobs: usize, instances: u32) -> Self {
        let shared = Arc::new(Shared {
            state: RwLock::new(ClusterState::default()),
            connected: Mutex::new(BTreeSet::new()),
            inbox: Mutex::new(Vec::new()),
            start: tokio::time::Instant::now(),
        });
        let mut sim = SimCluster {
            seed,
            rng: StdRng::seed_from_u64(seed),
            leader: new_leader(&shared, 1),
            shared,
            agents: BTreeMap::new(),
            history: Vec::new(),
            reports: Vec::new(),
            kills_sent: Vec::new(),
            jobs: Vec::new(),
            step_no: 0,
        };
        for n in 0..agents {
            let id = format!("agent-{n}");
            sim.register(&id);
            sim.agents.insert(id, SimAgent::default());
        }
        for n in 0..jobs {
            let id = job_id(n);
            let mut spec = ocean_spec::JobSpec::new(&id, "sleep 1000");
            spec.instances = instances;
            sim.commit(put_job_command(id.clone(), spec.to_canonical_json()));
            sim.jobs.push(id);
        }
        sim.note(format!(
            "seed {seed}: {agents} agents, {jobs} jobs x {instances}"
        ));
        sim
    }

    fn register(&mut self, id: &str) {
        let agent = Agent {
            id: id.to_string(),
            hostname: id.to_string(),
            cpus: 4.0,
            mem_mib: 4096,
            disk_mib: 10_000,
            port_low: 31_000,
            port_high: 32_000,
            executors: vec![AgentExecutor {
                name: "native".into(),
                available: true,
                ..Default::default()
            }],
            ..Default::default()
        };
        self.commit(put_agent_command(agent));
        self.shared.connected.lock().unwrap().insert(id.to_string());
    }

    /// Commits `cmd` (as the leader would, through the log).
    pub fn commit(&self, cmd: Command) -> Applied {
        self.shared.state.write().unwrap().apply_owned(cmd)
    }

    /// Reads the replicated state.
    pub fn read<R>(&self, f: impl FnOnce(&ClusterState) -> R) -> R {
        f(&self.shared.state.read().unwrap())
    }

    /// The leader's clock (ms since the epoch), as the reconciler reads it.
    pub fn leader_now_ms(&self) -> u64 {
        reconcile::Host::now_ms(&self.leader)
    }

    /// The current term.
    pub fn term(&self) -> u64 {
        self.leader.term
    }

    pub fn note(&mut self, what: String) {
        self.history.push(format!("[{:>4}] {what}", self.step_no));
    }

    /// Fails the simulation: the seed, the step, why, and the history.
    pub fn fail(&self, why: &str) -> ! {
        let mut h = String::new();
        for line in self.history.iter().rev().take(200).rev() {
            let _ = writeln!(h, "  {line}");
        }
        panic!(
            "invariant broken at step {} of seed {} (reproduce: OCEAN_SIM_SEED={}):\n  {why}\nhistory (last 200 events):\n{h}",
            self.step_no, self.seed, self.seed
        );
    }

    /// One reconciler step (a round and its dispatch), then the network
    /// and the agents: delivers most messages (some wait a step), and
    /// commits what the agents report.
    pub async fn reconcile(&mut self) {
        let queued = self.shared.inbox.lock().unwrap().len();
        if let Err(e) = reconcile::step(&self.leader).await {
            self.note(format!("round failed: {e}"));
        }
        let mut inbox = self.shared.inbox.lock().unwrap();
        // A round sends per agent in hash-map order: sorted, so that a
        // seed replays the same run in every process.
        inbox[queued..].sort_by(|a, b| a.0.cmp(&b.0));
        let sent: Vec<String> = inbox[queued..]
            .iter()
            .filter_map(|(agent, _, m)| match &m.kind {
                Some(master_message::Kind::Launch(l)) => {
                    Some(format!("launch {} on {agent}", l.tasks.len()))
                }
                Some(master_message::Kind::Kill(k)) => {
                    Some(format!("kill {} on {agent}", k.tasks.len()))
                }
                _ => None,
            })
            .collect();
        drop(inbox);
        if !sent.is_empty() {
            let term = self.term();
            self.note(format!("term {term} round sent: {}", sent.join(", ")));
        }
        self.deliver(0.8);
        self.commit_reports();
    }

    /// Delivers each queued message with probability `p`.
    pub fn deliver(&mut self, p: f64) {
        let queued = std::mem::take(&mut *self.shared.inbox.lock().unwrap());
        let mut later = Vec::new();
        for (agent, term, msg) in queued {
            if !self.rng.gen_bool(p) {
                later.push((agent, term, msg));
                continue;
            }
            self.receive(&agent, term, msg);
        }
        self.shared.inbox.lock().unwrap().extend(later);
    }

    /// Lets the clock run `ms`.
    pub async fn advance(&mut self, ms: u64) {
        tokio::time::advance(Duration::from_millis(ms)).await;
    }

    /// Instances each job asks for, from the state.
    pub fn instances(&self) -> BTreeMap<String, u32> {
        self.read(|st| {
            st.jobs
                .values()
                .map(|j| {
                    let spec: ocean_spec::JobSpec =
                        serde_json::from_slice(&j.spec_json).expect("a committed spec parses");
                    (j.id.clone(), spec.instances)
                })
                .collect()
        })
    }

    /// Live (not ended, not being stopped) tasks of each job, by id.
    pub fn live(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.read(|st| {
            let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for t in st.tasks.values().filter(|t| is_live(t)) {
                out.entry(t.job_id.clone())
                    .or_default()
                    .insert(t.id.clone());
            }
            out
        })
    }

    /// Tasks that serve: RUNNING and not being stopped, by job.
    pub fn serving(&self) -> BTreeMap<String, usize> {
        self.read(|st| {
            let mut out: BTreeMap<String, usize> = BTreeMap::new();
            for t in st.tasks.values() {
                if t.state == RUNNING && !t.kill_requested {
                    *out.entry(t.job_id.clone()).or_default() += 1;
                }
            }
            out
        })
    }

    /// Live tasks on agents set draining or offline.
    pub fn on_leaving_agents(&self) -> usize {
        self.read(|st| {
            st.tasks
                .values()
                .filter(|t| !is_terminal(&t.state))
                .filter(|t| {
                    st.agents
                        .get(&t.agent_id)
                        .is_some_and(|a| a.status == "draining" || a.status == "offline")
                })
                .count()
        })
    }

    /// After [`settle`](Self::settle): every job has exactly its instances,
    /// all of them running.
    pub fn check_settled(&self) {
        let live = self.live();
        let serving = self.serving();
        for (job, want) in &self.instances() {
            let n = live.get(job).map_or(0, |l| l.len());
            let up = serving.get(job).copied().unwrap_or(0);
            if n != *want as usize || up != *want as usize {
                self.fail(&format!(
                    "after settling, job {job} has {n} live tasks ({up} running), not its {want} instances"
                ));
            }
        }
    }

    /// Lets the cluster settle: every agent back and accepting, every
    /// message delivered, every process started, time running on (back-offs
    /// end) for `rounds` rounds.
    pub async fn settle(&mut self, rounds: usize) {
        self.note("settle".into());
        for a in self.agents.values_mut() {
            a.refuses = false;
        }
        while self.agents.values().any(|a| a.lost) {
            self.agent_back();
        }
        // A flapping job waits for an operator: the operator resets it.
        for job in self.jobs.clone() {
            self.commit(reset_backoff_command(job));
        }
        for _ in 0..rounds {
            self.advance(30_000).await;
            if let Err(e) = reconcile::step(&self.leader).await {
                self.note(format!("round failed: {e}"));
            }
            self.deliver(1.0);
            self.start_all();
            self.commit_reports();
        }
        if std::env::var_os("OCEAN_SIM_TRACE").is_some() {
            eprintln!("seed {}:\n  {}", self.seed, self.history.join("\n  "));
        }
    }
}
