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
//! the step and the history of events.

// Each sim_*.rs uses part of this module.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use ocean_master::kernel::state::{
    agent_unreachable_command, is_live, is_terminal, put_agent_command, put_job_command,
    reset_backoff_command, scale_job_command, set_agent_status_command, task_updates_command,
    Applied, ClusterState, RUNNING,
};
use ocean_master::reconcile::{self, liveness, reports, Host, Scheduler};
use ocean_proto::agent::{master_message, MasterMessage, TaskStatus};
use ocean_proto::internal::{Agent, AgentExecutor, Command};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

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

/// What the simulated raft log and network hold: shared by every leader.
struct Shared {
    state: RwLock<ClusterState>,
    connected: Mutex<BTreeSet<String>>,
    /// Messages on their way to agents: (agent, term that sent it, message).
    inbox: Mutex<Vec<(String, u64, MasterMessage)>>,
    start: tokio::time::Instant,
}

/// The reconciler's host in the simulation: one per term.
#[derive(Clone)]
pub struct SimHost {
    shared: Arc<Shared>,
    scheduler: Arc<Scheduler>,
    term: u64,
}

impl Host for SimHost {
    fn read<R>(&self, f: impl FnOnce(&ClusterState) -> R) -> R {
        f(&self.shared.state.read().unwrap())
    }

    fn propose(&self, cmd: Command) -> impl Future<Output = ocean_master::Result<Applied>> + Send {
        let shared = self.shared.clone();
        async move { Ok(shared.state.write().unwrap().apply_owned(cmd)) }
    }

    fn connected(&self) -> HashSet<String> {
        self.shared
            .connected
            .lock()
            .unwrap()
            .iter()
            .cloned()
            .collect()
    }

    fn send(&self, agent: &str, msg: MasterMessage) -> bool {
        if !self.shared.connected.lock().unwrap().contains(agent) {
            return false;
        }
        let mut inbox = self.shared.inbox.lock().unwrap();
        inbox.push((agent.to_string(), self.term, msg));
        true
    }

    fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    fn now_ms(&self) -> u64 {
        EPOCH_MS + self.shared.start.elapsed().as_millis() as u64
    }
}

/// A process an agent runs.
#[derive(Debug, Clone)]
pub struct Proc {
    pub job: String,
    /// STAGING (launched, not yet started) or RUNNING.
    pub state: &'static str,
}

/// A simulated agent.
#[derive(Debug, Default)]
pub struct SimAgent {
    /// Refuses launches (a broken executor): they fail at once.
    pub refuses: bool,
    /// Lost: its stream is closed and it hears nothing.
    pub lost: bool,
    /// Processes by task id, until they end.
    pub procs: BTreeMap<String, Proc>,
    /// How ended tasks ended: as a real agent's task table, it answers a
    /// repeated launch of one with its status instead of running it again.
    pub ended: BTreeMap<String, &'static str>,
}

impl SimAgent {
    /// Ends task `id` (a process or not) as `state`.
    fn end(&mut self, id: &str, state: &'static str) {
        self.procs.remove(id);
        self.ended.insert(id.to_string(), state);
    }
}

/// What kinds of events a simulation draws, by weight (0: never).
#[derive(Debug, Clone, Copy, Default)]
pub struct Mix {
    pub start: u32,
    pub finish: u32,
    pub fail: u32,
    pub refuse: u32,
    pub lose_agent: u32,
    pub agent_back: u32,
    pub drain: u32,
    pub undrain: u32,
    pub scale: u32,
    pub leader_change: u32,
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
        let sent: Vec<String> = self.shared.inbox.lock().unwrap()[queued..]
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

    fn receive(&mut self, agent: &str, term: u64, msg: MasterMessage) {
        let Some(a) = self.agents.get_mut(agent) else {
            return;
        };
        if a.lost {
            return;
        }
        let mut out = Vec::new();
        match msg.kind {
            Some(master_message::Kind::Launch(l)) => {
                for t in l.tasks {
                    // Agents launch idempotently by task id.
                    if a.procs.contains_key(&t.task_id) {
                        continue;
                    }
                    if let Some(state) = a.ended.get(&t.task_id) {
                        out.push(status(&t.task_id, state, "known"));
                        continue;
                    }
                    if a.refuses {
                        a.end(&t.task_id, "FAILED");
                        out.push(status(&t.task_id, "FAILED", "launch_failed"));
                        continue;
                    }
                    a.procs.insert(
                        t.task_id.clone(),
                        Proc {
                            job: t.job_id.clone(),
                            state: "STAGING",
                        },
                    );
                }
            }
            Some(master_message::Kind::Kill(k)) => {
                for t in k.tasks {
                    self.history.push(format!(
                        "[{:>4}] {agent}: kill {} (term {term})",
                        self.step_no, t.task_id
                    ));
                    self.kills_sent.push((term, t.task_id.clone()));
                    a.end(&t.task_id, "KILLED");
                    out.push(status(&t.task_id, "KILLED", "killed"));
                }
            }
            _ => {}
        }
        for s in out {
            self.reports.push((agent.to_string(), s));
        }
    }

    /// Commits the agents' statuses (the status batcher's work).
    pub fn commit_reports(&mut self) {
        let reports = std::mem::take(&mut self.reports);
        if reports.is_empty() {
            return;
        }
        let now = self.leader.now_ms();
        let mut updates = Vec::new();
        for (agent, s) in reports {
            for mut u in reports::checked(&agent, std::slice::from_ref(&s)) {
                u.received_ms = now;
                updates.push(u);
            }
        }
        self.commit(task_updates_command(updates));
    }

    /// Lets the clock run `ms`.
    pub async fn advance(&mut self, ms: u64) {
        tokio::time::advance(Duration::from_millis(ms)).await;
    }

    /// Draws and applies one event of `mix`; returns its description.
    pub fn event(&mut self, mix: &Mix) -> Option<String> {
        let weights = [
            mix.start,
            mix.finish,
            mix.fail,
            mix.refuse,
            mix.lose_agent,
            mix.agent_back,
            mix.drain,
            mix.undrain,
            mix.scale,
            mix.leader_change,
        ];
        let total: u32 = weights.iter().sum();
        let mut pick = self.rng.gen_range(0..total.max(1));
        let mut kind = 0;
        for (i, w) in weights.iter().enumerate() {
            if pick < *w {
                kind = i;
                break;
            }
            pick -= w;
        }
        let e = match kind {
            0 => self.start_some(),
            1 => self.end_one("FINISHED", "exited"),
            2 => self.end_one("FAILED", "exited"),
            3 => self.toggle_refusal(),
            4 => self.lose_agent(),
            5 => self.agent_back(),
            6 => self.set_status("draining"),
            7 => self.set_status("online"),
            8 => self.scale(),
            _ => Some(self.change_leader()),
        };
        if let Some(e) = &e {
            self.note(e.clone());
        }
        e
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> Option<T> {
        if items.is_empty() {
            return None;
        }
        Some(items[self.rng.gen_range(0..items.len())].clone())
    }

    /// Processes that are not lost, as (agent, task).
    fn procs(&self, state: &str) -> Vec<(String, String)> {
        self.agents
            .iter()
            .filter(|(_, a)| !a.lost)
            .flat_map(|(id, a)| {
                a.procs
                    .iter()
                    .filter(|(_, p)| p.state == state)
                    .map(move |(t, _)| (id.clone(), t.clone()))
            })
            .collect()
    }

    /// Starts some launched processes: they report RUNNING.
    pub fn start_some(&mut self) -> Option<String> {
        let staging = self.procs("STAGING");
        let mut started = Vec::new();
        for (agent, task) in staging {
            if self.rng.gen_bool(0.5) {
                continue;
            }
            if let Some(p) = self
                .agents
                .get_mut(&agent)
                .and_then(|a| a.procs.get_mut(&task))
            {
                p.state = "RUNNING";
            }
            self.reports
                .push((agent.clone(), status(&task, RUNNING, "")));
            started.push(task);
        }
        (!started.is_empty()).then(|| format!("started {}", started.len()))
    }

    /// Starts every launched process.
    pub fn start_all(&mut self) {
        for (agent, task) in self.procs("STAGING") {
            if let Some(p) = self
                .agents
                .get_mut(&agent)
                .and_then(|a| a.procs.get_mut(&task))
            {
                p.state = "RUNNING";
            }
            self.reports.push((agent, status(&task, RUNNING, "")));
        }
    }

    fn end_one(&mut self, state: &'static str, reason: &str) -> Option<String> {
        let running = self.procs("RUNNING");
        let (agent, task) = self.pick(&running)?;
        self.agents.get_mut(&agent)?.end(&task, state);
        self.reports
            .push((agent.clone(), status(&task, state, reason)));
        Some(format!("task {task} on {agent}: {state}"))
    }

    fn toggle_refusal(&mut self) -> Option<String> {
        let ids: Vec<String> = self.agents.keys().cloned().collect();
        let id = self.pick(&ids)?;
        let a = self.agents.get_mut(&id)?;
        a.refuses = !a.refuses;
        Some(format!("{id} refuses launches: {}", a.refuses))
    }

    /// An agent goes silent: the leader's heartbeat check declares it
    /// unreachable (the real verdict: jobs without an unreachable strategy
    /// lose their tasks at once). Its processes keep running there.
    fn lose_agent(&mut self) -> Option<String> {
        let up: Vec<String> = self
            .agents
            .iter()
            .filter(|(_, a)| !a.lost)
            .map(|(id, _)| id.clone())
            .collect();
        // Keep most of the cluster up, so jobs can be placed.
        if up.len() * 2 <= self.agents.len() {
            return None;
        }
        let id = self.pick(&up)?;
        self.agents.get_mut(&id)?.lost = true;
        self.shared.connected.lock().unwrap().remove(&id);
        let now = self.leader.now_ms();
        let v = self
            .read(|st| liveness::verdict(&id, st.tasks_on(&id).map(|t| t.as_ref()), |_| 0, now));
        let lost = v.lost.len();
        self.commit(agent_unreachable_command(v));
        Some(format!("{id} lost ({lost} tasks LOST)"))
    }

    /// A lost agent registers again with a full report, handled as the
    /// real session does (reports::compare): updates, kills of tasks
    /// nobody wants, relaunches of tasks it never got.
    fn agent_back(&mut self) -> Option<String> {
        let lost: Vec<String> = self
            .agents
            .iter()
            .filter(|(_, a)| a.lost)
            .map(|(id, _)| id.clone())
            .collect();
        let id = self.pick(&lost)?;
        self.agents.get_mut(&id)?.lost = false;
        self.register(&id);
        let statuses: Vec<TaskStatus> = self.agents[&id]
            .procs
            .iter()
            .map(|(t, p)| status(t, p.state, ""))
            .collect();
        let report = self.read(|st| reports::compare(&id, &statuses, st));
        let (updates, kills) = (report.updates.len(), report.kill.len());
        let now = self.leader.now_ms();
        let mut ups = report.updates;
        for u in &mut ups {
            u.received_ms = now;
        }
        if !ups.is_empty() {
            self.commit(task_updates_command(ups));
        }
        let a = self.agents.get_mut(&id)?;
        for t in &report.kill {
            a.end(t, "KILLED");
        }
        self.leader.scheduler().forget_launches(&report.relaunch);
        Some(format!(
            "{id} back: {updates} updates, {kills} unwanted tasks stopped"
        ))
    }

    fn set_status(&mut self, status: &str) -> Option<String> {
        let ids: Vec<String> = self.read(|st| {
            st.agents
                .values()
                .filter(|a| a.status != status)
                .map(|a| a.id.clone())
                .collect()
        });
        if status == "draining" {
            // Keep room for the replacements.
            let draining = self.read(|st| {
                st.agents
                    .values()
                    .filter(|a| a.status == "draining")
                    .count()
            });
            if (draining + 2) * 2 > self.agents.len() {
                return None;
            }
        }
        let id = self.pick(&ids)?;
        self.commit(set_agent_status_command(
            id.clone(),
            status.into(),
            String::new(),
        ));
        Some(format!("{id} set {status}"))
    }

    fn scale(&mut self) -> Option<String> {
        let jobs = self.jobs.clone();
        let job = self.pick(&jobs)?;
        let n = self.rng.gen_range(0..=6);
        self.commit(scale_job_command(job.clone(), n));
        Some(format!("scale {job} to {n}"))
    }

    /// The leader changes: the old reconciler is stopped (its memory is
    /// gone; messages it sent but the network had not delivered are lost
    /// with its streams, or some arrive late), and a fresh one leads the
    /// next term over the same replicated state.
    pub fn change_leader(&mut self) -> String {
        let next = self.leader.term + 1;
        {
            let mut inbox = self.shared.inbox.lock().unwrap();
            let rng = &mut self.rng;
            inbox.retain(|_| rng.gen_bool(0.5));
        }
        self.leader = new_leader(&self.shared, next);
        format!("leader change: term {next}")
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
    }
}

fn new_leader(shared: &Arc<Shared>, term: u64) -> SimHost {
    let scheduler = Arc::new(Scheduler::default());
    scheduler.begin_term(term);
    SimHost {
        shared: shared.clone(),
        scheduler,
        term,
    }
}

fn status(task: &str, state: &str, reason: &str) -> TaskStatus {
    TaskStatus {
        task_id: task.to_string(),
        state: state.to_string(),
        reason: reason.to_string(),
        ..Default::default()
    }
}
