//! The leader's reconciler: turns jobs (desired instances) into tasks.
//!
//! ```text
//!  feed change / 1 s tick ─► round: read state ─► desired::decide per job
//!        ▲                     ─► scheduler-policies::plan (all new tasks)
//!        │                     ─► one PlanTasks entry (placements + kills)
//!        │                     ─► dispatch: Launch / Kill per agent stream
//!  agents' TaskReports ─► reports::batch_updates ─► TaskUpdates entries
//! ```
//! Only the leader runs it: the leadership supervisor ([`crate::leader`])
//! starts [`run`] for a term once everything committed before the term is
//! applied (a read index), so it never plans from a state that misses its
//! predecessor's last placements, and stops it when the term ends. A round
//! reads, proposes and sends through [`Host`] (the [`Master`], or a
//! simulated cluster in `master/tests/sim`).
//! Launches go out only for committed tasks, so a new leader knows every
//! task an agent may run; agents launch idempotently by task id.

pub mod cache;
pub mod deploy;
pub mod desired;
pub mod drain;
pub mod entries;
pub mod host;
pub mod job;
pub mod liveness;
pub mod plan;
pub mod reports;
pub mod shutdown;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

// Intervals are measured on tokio's clock, so a simulation with a paused
// clock (`tokio::time::pause`) drives them.
use tokio::time::Instant;

use foldhash::{HashMap as FastMap, HashMapExt as _, HashSet as FastSet};

use futures::{StreamExt as _, TryStreamExt as _};
use ocean_proto::agent::{
    master_message, Kill, KillTask, Launch, LaunchTask, MasterMessage, Reconcile,
};
use ocean_proto::internal::{PlanTasks, Task, TaskUpdate};
use ocean_scheduler_policies as sp;
use tokio::sync::{mpsc, watch, Notify};
use tracing::{debug, info, warn};

use crate::kernel::feed::FeedItem;
use crate::kernel::state::deployments::{self, is_active};
use crate::kernel::state::tree::TreeSettings;
use crate::kernel::state::{is_live, is_terminal, plan_command, Change, ClusterState, STAGING};
use crate::master::Master;
pub use host::Host;
use job::JobView;
use tokio::sync::broadcast::error::RecvError;

/// Grace period for kills of tasks whose job is gone.
pub const DEFAULT_KILL_GRACE_MS: u64 = 5_000;
/// A launch not answered by any status within this time is sent again.
const RELAUNCH_AFTER: Duration = Duration::from_secs(10);
/// A kill not followed by the task's end within this time is sent again.
const REKILL_AFTER: Duration = Duration::from_secs(10);
/// How often the leader asks every agent for a full report (anti-entropy:
/// a status lost on the way is found within this time).
const RECONCILE_EVERY: Duration = Duration::from_secs(60);
/// Most placements in one raft entry.
const MAX_PLACEMENTS_PER_ENTRY: usize = 2_000;
/// A round's entries proposed before the first is committed.
const ENTRIES_IN_FLIGHT: usize = 16;
/// Dispatch looks at every task at least this often, and otherwise only
/// at what a round committed.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Rounds run at least this often, to retry what could not be sent.
const TICK: Duration = Duration::from_secs(1);

/// The reconciler's shared half: what the agent API, the liveness check
/// and the status batcher hand it. Held by [`Leading`], not by the
/// [`Master`] handle.
#[derive(Debug)]
pub struct Scheduler {
    updates: mpsc::UnboundedSender<TaskUpdate>,
    updates_rx: Mutex<Option<mpsc::UnboundedReceiver<TaskUpdate>>>,
    memory: Mutex<Memory>,
    wake: Notify,
    /// The term whose leader (this master) has applied everything
    /// committed before it: from then on its state knows every task.
    ready_term: tokio::sync::watch::Sender<u64>,
    /// The config's fair-share weights and quotas: defaults under the
    /// replicated ones (`kernel::state::tree`), read every round.
    defaults: crate::config::SchedulerSettings,
    /// Agent heartbeats and their timeout.
    agents: crate::config::AgentSettings,
}

/// What this leader remembers between rounds (not replicated: a new leader
/// starts empty and resends what is outstanding).
#[derive(Debug, Default)]
struct Memory {
    launched: FastMap<String, Instant>,
    killed: FastMap<String, Instant>,
    specs: FastMap<String, Arc<JobView>>,
    /// Jobs with tasks of an older spec, or on draining or offline agents,
    /// being replaced.
    rolling: HashSet<String>,
    /// Jobs with tasks being replaced for failing their health checks.
    healing: HashSet<String>,
    /// Whether the last round left any job waiting (for capacity, a
    /// constraint, a quota or its back-off).
    waiting: bool,
    /// The earliest end of a job's back-off: a round runs then.
    wake_at: Option<Instant>,
    /// The planner's view of live tasks, kept across rounds.
    running: cache::RunningCache,
    /// The planner's view of the agents, kept across rounds.
    agents: cache::AgentCache,
    /// When dispatch last looked at every task (`None`: not this term).
    swept_at: Option<Instant>,
    /// What the last plan was asked, when it placed nothing and its
    /// reasons were committed. A round that asks the same of an unchanged
    /// cluster keeps the committed reasons without planning.
    unplaceable: Option<Unplaceable>,
}

/// Pending work that the planner could place nowhere.
#[derive(Debug, PartialEq)]
struct Unplaceable {
    /// Per job asking for tasks: its id, the version of its record (any
    /// change to the job, its committed reason too, asks the planner again)
    /// and how many.
    asked: Vec<(String, u64, usize)>,
    /// The replicated quotas and weights it was planned under
    /// (`TreeSettings::replicated`).
    settings: (usize, u64),
}

impl Unplaceable {
    fn new(wanted: &[(&Arc<JobView>, usize)]) -> Self {
        let asked = wanted
            .iter()
            .map(|(job, n)| (job.id.clone(), job.updated_version, *n))
            .collect();
        Unplaceable {
            asked,
            settings: (0, 0),
        }
    }

    /// The same, planned under the replicated settings `settings`.
    fn under(self, settings: (usize, u64)) -> Self {
        Unplaceable { settings, ..self }
    }

    /// `wanted` split into the asks this was asked exactly (same job,
    /// record version and count) and the others, each in `wanted`'s order.
    #[allow(clippy::type_complexity)]
    fn split<'a>(
        &self,
        wanted: &[(&'a Arc<JobView>, usize)],
    ) -> (
        Vec<(&'a Arc<JobView>, usize)>,
        Vec<(&'a Arc<JobView>, usize)>,
    ) {
        let asked: HashMap<&str, (u64, usize)> = self
            .asked
            .iter()
            .map(|(id, v, n)| (id.as_str(), (*v, *n)))
            .collect();
        wanted
            .iter()
            .copied()
            .partition(|(job, n)| asked.get(job.id.as_str()) == Some(&(job.updated_version, *n)))
    }

    /// Whether `wanted` asks exactly what this was asked.
    fn asks_for(&self, wanted: &[(&Arc<JobView>, usize)]) -> bool {
        self.asked.len() == wanted.len()
            && self
                .asked
                .iter()
                .zip(wanted)
                .all(|((id, v, n), (job, m))| *id == job.id && *v == job.updated_version && n == m)
    }
}

impl Memory {
    /// Whether a job waits (for room, a constraint, a quota or its
    /// back-off) or has tasks being replaced: then any agent joining or
    /// leaving can change a round's decisions.
    fn waits_or_moves(&self) -> bool {
        self.waiting || !self.rolling.is_empty() || !self.healing.is_empty()
    }
}

/// The master as the leader's controllers and the agent API see it: the
/// kernel's handle plus the leader's own memory (the scheduler's shared
/// half). Built once per process by `startup::run_with`; dereferences to
/// the [`Master`].
#[derive(Debug, Clone)]
pub struct Leading {
    /// The kernel's handle.
    pub master: Master,
    /// The reconciler's shared half.
    pub scheduler: Arc<Scheduler>,
}

impl Leading {
    /// The master with its leader-side memory.
    pub fn new(master: Master, scheduler: Arc<Scheduler>) -> Self {
        Leading { master, scheduler }
    }

    /// The reconciler's shared half.
    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }
}

impl std::ops::Deref for Leading {
    type Target = Master;

    fn deref(&self) -> &Master {
        &self.master
    }
}

impl Scheduler {
    /// A scheduler with the cluster's placement settings.
    pub fn new(settings: &crate::config::SchedulerSettings) -> Self {
        Scheduler {
            defaults: settings.clone(),
            ..Scheduler::default()
        }
    }
}

impl Default for Scheduler {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Scheduler {
            defaults: Default::default(),
            agents: Default::default(),
            updates: tx,
            updates_rx: Mutex::new(Some(rx)),
            memory: Mutex::new(Memory::default()),
            wake: Notify::new(),
            ready_term: tokio::sync::watch::channel(0).0,
        }
    }
}

impl Scheduler {
    /// The same scheduler with these heartbeat settings.
    pub fn with_agent_settings(mut self, agents: crate::config::AgentSettings) -> Self {
        self.agents = agents;
        self
    }

    /// Agent heartbeats and their timeout.
    pub fn agent_settings(&self) -> &crate::config::AgentSettings {
        &self.agents
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The queue of status updates, the first time it is asked for: the
    /// leadership supervisor holds it across terms.
    pub fn take_updates(&self) -> Option<reports::UpdatesQueue> {
        let rx = self
            .updates_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()?;
        Some(Arc::new(tokio::sync::Mutex::new(rx)))
    }

    /// Queues a status update for the next batch.
    pub fn record(&self, update: TaskUpdate) {
        let _ = self.updates.send(update);
    }

    /// Makes the next round resend the launch of these tasks.
    pub fn forget_launches(&self, ids: &[String]) {
        let mut m = self.memory();
        for id in ids {
            m.launched.remove(id);
        }
    }

    /// Waits (bounded) until this master leads and has applied everything
    /// committed before its term, so its state holds every task an agent
    /// may run. One read index per term serves every agent's report.
    pub async fn wait_ready(&self, master: &Master) -> bool {
        let term = master.status().term;
        let mut rx = self.ready_term.subscribe();
        let ready =
            tokio::time::timeout(crate::master::WRITE_TIMEOUT, rx.wait_for(|t| *t >= term)).await;
        matches!(ready, Ok(Ok(_))) && master.leads(term)
    }

    /// Whether changes of version `v` can change a round's decisions. A
    /// task moving on (STAGING to RUNNING) cannot, unless its job is being
    /// replaced (the next old task goes once a new one runs); placements
    /// and kill requests come from the round itself, which already
    /// dispatched them. Rounds for the rest would only cost CPU: at 100,000
    /// tasks, RUNNING reports arrive by the thousand.
    fn matters(&self, v: u64, changes: &[Change], has_tasks: impl Fn(&str) -> bool) -> bool {
        let mem = self.memory();
        changes.iter().any(|c| match c {
            Change::TaskPut(t) if !is_terminal(&t.state) => {
                t.created_version != v
                    && !t.kill_requested
                    && (t.health_failed
                        || mem.rolling.contains(&t.job_id)
                        || mem.healing.contains(&t.job_id))
            }
            // An agent joining or coming back online only matters to jobs
            // that wait for room or are moving tasks, and one draining or
            // offline only when it has tasks to move: while 10,000 agents
            // register (some of them offline or in trouble), a round per
            // registration rebuilt the planner's view of every agent for
            // nothing, back to back. The 1 s tick covers the rest.
            Change::AgentPut(a) => {
                mem.waits_or_moves()
                    || (crate::kernel::state::moves_tasks_off(crate::kernel::state::agent_status(
                        a,
                    )) && has_tasks(&a.id))
            }
            _ => true,
        })
    }

    /// How long the loop may sleep: a tick, or less when a back-off ends
    /// before.
    fn next_sleep(&self) -> Duration {
        let at = self.memory().wake_at;
        at.map_or(TICK, |at| {
            at.saturating_duration_since(Instant::now()).min(TICK)
        })
    }

    /// Runs a round soon.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs a round soon if an agent that just connected can change one:
    /// it has tasks (launches or kills may be due), or jobs wait for room
    /// or are moving tasks (the planner counts only connected agents).
    /// Otherwise the next round sees it. 10,000 agents registering woke a
    /// round each, and each rebuilt the planner's view of every agent.
    pub fn wake_for_agent(&self, has_tasks: bool) {
        if has_tasks || self.memory().waits_or_moves() {
            self.wake();
        }
    }
}

impl Scheduler {
    /// Starts term `term` on this leader, once its read index is applied:
    /// from then on its state knows every task an agent may run, so
    /// agents' full reports can be judged. What an earlier term of this
    /// master sent is forgotten: this term resends what is outstanding.
    /// So is its last unplaceable ask: a round aborted at the end of that
    /// term may not have committed the reasons it noted.
    pub fn begin_term(&self, term: u64) {
        self.ready_term.send_replace(term);
        let mut m = self.memory();
        m.launched.clear();
        m.killed.clear();
        m.swept_at = None;
        m.unplaceable = None;
    }
}

/// One round, then the dispatch of what it committed: the unit a
/// simulation drives (the real loop interleaves the two with the feed).
pub async fn step<H: Host>(host: &H) -> crate::error::Result<()> {
    let mut held = Vec::new();
    round(host, &mut held).await?;
    send(host, &host.connected(), &held);
    Ok(())
}

/// Whether `stop` has been signalled (or its sender is gone).
fn stopped(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}

/// The reconciler of term `term` on `master`, until `stop` is signalled.
/// The leadership supervisor ([`crate::leader`]) starts it once the term's
/// read index is applied and stops it when the term ends.
pub async fn run(master: Leading, term: u64, mut stop: watch::Receiver<bool>) {
    let mut live = master.feed().live();
    info!(term, "reconciler active");
    let mut due = true;
    let mut last_sweep = Instant::now();
    // What committed rounds placed or stopped, not yet sent to agents.
    let mut held: Vec<String> = Vec::new();
    let matters = |item| note(&master, Ok(item)) == Some(true);
    while !stopped(&stop) {
        if last_sweep.elapsed() >= RECONCILE_EVERY {
            last_sweep = Instant::now();
            ask_full_reports(&master);
        }
        if due {
            due = false;
            if let Err(e) = round(&master, &mut held).await {
                warn!(term, error = %e, "reconcile round failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // Jobs that arrived while the round committed are decided
            // before its launches go out: the agents' answers (a status
            // entry per few thousand tasks, applied by every master) would
            // otherwise share the CPU with deciding, and a round of 26,000
            // placements decided among 74,000 fresh launches took 0.6 s
            // instead of 0.1 s. The next round sends them as soon as it
            // has decided.
            match drain(&mut live, matters) {
                Some(d) => due |= d,
                None => break,
            }
            if due {
                continue;
            }
            off_the_runtime(|| send(&master, &master.connected(), &held));
            held.clear();
        }
        tokio::select! {
            r = live.recv() => {
                // Everything queued meanwhile is covered by one round.
                let more = drain(&mut live, matters);
                match note(&master, r).zip(more) {
                    Some((a, b)) => due |= a || b,
                    None => break,
                }
            }
            _ = master.scheduler().wake.notified() => due = true,
            _ = stop.changed() => {}
            // Retries what could not be sent; sooner when a job's back-off
            // ends.
            _ = tokio::time::sleep(master.scheduler().next_sleep()) => due = true,
        }
    }
    info!(term, "reconciler inactive");
}

/// Whether a feed item can change a round's decisions; `None` when the
/// feed has closed.
fn note(master: &Leading, item: Result<FeedItem, RecvError>) -> Option<bool> {
    match item {
        Ok(FeedItem::Changes(v, changes)) => {
            let has_tasks = |agent: &str| master.read(|st| st.agent_tasks.contains_key(agent));
            Some(master.scheduler().matters(v, &changes, has_tasks))
        }
        Ok(FeedItem::Reset) | Err(RecvError::Lagged(_)) => Some(true),
        Err(RecvError::Closed) => None,
    }
}

/// Takes every feed item already queued: whether any can change a round's
/// decisions (`matters`, or a lag that lost some); `None` when the feed
/// has closed.
fn drain(
    live: &mut tokio::sync::broadcast::Receiver<FeedItem>,
    mut matters: impl FnMut(FeedItem) -> bool,
) -> Option<bool> {
    use tokio::sync::broadcast::error::TryRecvError;
    let mut due = false;
    loop {
        match live.try_recv() {
            Ok(item) => due |= matters(item),
            Err(TryRecvError::Lagged(_)) => due = true,
            Err(TryRecvError::Empty) => return Some(due),
            Err(TryRecvError::Closed) => return None,
        }
    }
}

/// What a round reads of the state, taken quickly under its lock.
struct Captured {
    version: u64,
    jobs: Vec<Arc<ocean_proto::internal::Job>>,
    /// Tasks that have not ended.
    tasks: Vec<Arc<Task>>,
    agents: Vec<Arc<ocean_proto::internal::Agent>>,
    /// Quotas and weights in force.
    tree: TreeSettings,
}

impl Captured {
    fn take(st: &ClusterState, defaults: &crate::config::SchedulerSettings) -> Captured {
        Captured {
            tree: st.tree_settings(defaults),
            version: st.version,
            jobs: st.jobs.values().cloned().collect(),
            tasks: st
                .tasks
                .values()
                .filter(|t| !is_terminal(&t.state))
                .cloned()
                .collect(),
            agents: st.agents.values().cloned().collect(),
        }
    }
}

/// The quotas in force as placement takes them.
fn quotas_of(tree: &TreeSettings) -> Vec<sp::Quota> {
    tree.quotas
        .iter()
        .map(|(node, q)| sp::Quota {
            node: node.clone(),
            cpus_milli: q.cpus.map(|c| sp::Resources::new(c, 0, 0).cpus_milli),
            mem_mib: q.mem,
        })
        .collect()
}

/// The cluster as placement sees it this round (the agents and the
/// planner's charge of live tasks are kept across rounds: [`cache`]).
/// The committed records are borrowed from the round's [`Captured`], not
/// copied: with 100,000 waiting jobs, copying each id and reason every
/// round made the leader's peak tens of MB larger.
struct View<'a> {
    version: u64,
    jobs: Vec<Arc<JobView>>,
    /// Tasks that have not ended, by job.
    tasks: FastMap<String, Vec<Arc<Task>>>,
    /// Jobs' waiting explanations as committed.
    waiting: FastMap<&'a str, &'a str>,
    /// Jobs' restart back-off as committed.
    backoff: FastMap<&'a str, &'a ocean_proto::internal::JobBackoff>,
}

impl<'a> View<'a> {
    fn build(st: &'a Captured, specs: &mut FastMap<String, Arc<JobView>>) -> View<'a> {
        let ids: HashSet<&str> = st.jobs.iter().map(|j| j.id.as_str()).collect();
        specs.retain(|id, _| ids.contains(id.as_str()));
        let jobs: Vec<Arc<JobView>> = st
            .jobs
            .iter()
            .filter_map(|j| {
                if let Some(v) = specs.get(&j.id) {
                    if v.updated_version == j.updated_version {
                        return Some(v.clone());
                    }
                }
                let v = Arc::new(JobView::parse(j)?);
                specs.insert(j.id.clone(), v.clone());
                Some(v)
            })
            .collect();
        let mut tasks: FastMap<String, Vec<Arc<Task>>> = FastMap::with_capacity(st.jobs.len());
        for t in &st.tasks {
            // Looked up before cloning the key: one allocation per job, not
            // per task.
            match tasks.get_mut(&t.job_id) {
                Some(v) => v.push(t.clone()),
                None => {
                    tasks.insert(t.job_id.clone(), vec![t.clone()]);
                }
            }
        }
        let waiting = st
            .jobs
            .iter()
            .filter(|j| !j.waiting.is_empty())
            .map(|j| (j.id.as_str(), j.waiting.as_str()))
            .collect();
        let backoff = st
            .jobs
            .iter()
            .filter_map(|j| Some((j.id.as_str(), j.backoff.as_ref()?)))
            .collect();
        View {
            backoff,
            waiting,
            version: st.version,
            jobs,
            tasks,
        }
    }
}

/// One round: decide, place and commit. What it commits joins `held`, for
/// the caller to send; what earlier rounds left there is sent once this
/// one has decided.
async fn round<H: Host>(master: &H, held: &mut Vec<String>) -> crate::error::Result<()> {
    let sched = master.scheduler();
    let connected = master.connected();
    let t0 = Instant::now();
    // Deciding takes up to hundreds of ms of CPU at 100,000 tasks; it runs
    // where the runtime can hand this worker's other tasks (agent streams,
    // raft traffic, API calls) to another thread meanwhile.
    let d = off_the_runtime(|| decide(master, &connected, t0));
    // Building tens of thousands of launches takes a while: it goes on
    // beside this round's commit instead of before it.
    let sending = (!held.is_empty()).then(|| {
        let (master, connected, ids) = (master.clone(), connected.clone(), std::mem::take(held));
        tokio::task::spawn_blocking(move || send(&master, &connected, &ids))
    });
    // What this round commits is sent once it is committed, without a
    // sweep. (Dispatching each entry as it commits starts agents sooner
    // but held up the rest of the round's commits: measured slower.)
    let committed: Vec<String> = d.place.ids().chain(d.kills.iter().cloned()).collect();
    let fails = d.fails;
    if !d.place.is_empty()
        || !d.kills.is_empty()
        || !d.draining.is_empty()
        || !d.changed.is_empty()
        || !d.deployments.is_empty()
    {
        debug!(
            place = d.place.len(),
            kill = d.kills.len(),
            draining = d.draining.len(),
            waiting = d.changed.len(),
            "committing a round"
        );
        // A few entries of bounded size rather than one huge one: every
        // master applies an entry on its raft thread, and a long apply
        // delays heartbeats enough to start needless elections.
        // The first entry also carries the kills, reasons and preemptions.
        let first = PlanTasks {
            deployments: d.deployments,
            kill: d.kills,
            draining: d.draining,
            waiting: d.changed,
            preempted: d.preempted,
            ..Default::default()
        };
        let entries = d.place.into_entries(first, MAX_PLACEMENTS_PER_ENTRY);
        // Several entries in flight at once: each commit is a round trip
        // and an fsync on every master, so waiting for one before
        // proposing the next made a round of 100,000 placements take 50
        // commit latencies. The window stays small so that one Ready never
        // holds more than a few entries to apply.
        let proposals = entries.into_iter().map(|e| master.propose(plan_command(e)));
        let written = futures::stream::iter(proposals)
            .buffered(ENTRIES_IN_FLIGHT)
            .try_collect::<Vec<_>>()
            .await;
        if written.is_err() {
            // The reasons may not be committed: the next round plans.
            sched.memory().unplaceable = None;
        }
        written?;
    }
    for (job_id, deployment_id, reason) in fails {
        info!(job = %job_id, deployment = %deployment_id, %reason, "deployment failed");
        let action = ocean_proto::internal::DeploymentAction {
            job_id,
            deployment_id,
            action: "fail".into(),
            reason,
            by: "controller".into(),
            now_ms: master.now_ms(),
        };
        master
            .propose(crate::kernel::state::deployment_action_command(action))
            .await?;
    }
    {
        let mut mem = sched.memory();
        mem.rolling = d.rolling;
        mem.healing = d.healing;
        mem.waiting = d.any_waiting;
        mem.wake_at = d
            .wake_at
            .map(|at| Instant::now() + Duration::from_millis(at.saturating_sub(d.now)));
    }
    let t_commit = t0.elapsed();
    if let Some(sending) = sending {
        if let Err(e) = sending.await {
            warn!(error = %e, "sending launches failed");
        }
    }
    held.extend(committed);
    master.observe_round(t0.elapsed().as_secs_f64());
    debug!(
        view_ms = d.t_view.as_millis() as u64,
        plan_ms = d.t_plan.as_millis() as u64,
        to_commit_ms = t_commit.as_millis() as u64,
        running_changed = d.rebuilt,
        total_ms = t0.elapsed().as_millis() as u64,
        "round done"
    );
    Ok(())
}

/// What the round's deployment steps said beside starts and stops.
#[derive(Default)]
struct Rollout {
    records: Vec<ocean_proto::internal::Deployment>,
    /// (job, deployment, why) to fail.
    fails: Vec<(String, String, String)>,
    wake_at: Option<u64>,
}

impl Rollout {
    /// Takes a step's actions: the moves become the job's decision.
    fn follow(
        &mut self,
        job: &JobView,
        dep: &ocean_proto::internal::Deployment,
        actions: Vec<deploy::Action>,
    ) -> desired::Decision {
        let mut d = desired::Decision::default();
        for a in actions {
            match a {
                deploy::Action::Start(n) => d.start += n,
                deploy::Action::Stop(ids) => d.stop.extend(ids),
                deploy::Action::Record(r) => self.records.push(*r),
                deploy::Action::Fail(why) => {
                    self.fails.push((job.id.clone(), dep.id.clone(), why));
                }
                deploy::Action::WakeAt(at) => {
                    self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
                }
            }
        }
        d
    }
}

/// What a round decided, before it is committed.
struct Decided {
    /// Deployments the controller moved on (committed with the kills).
    deployments: Vec<ocean_proto::internal::Deployment>,
    /// Deployments to fail: (job, deployment, why).
    fails: Vec<(String, String, String)>,
    place: entries::Placements,
    kills: Vec<String>,
    /// Tasks taken out of service before their stop (id to `now`).
    draining: HashMap<String, u64>,
    changed: HashMap<String, String>,
    preempted: HashMap<String, String>,
    rolling: HashSet<String>,
    healing: HashSet<String>,
    wake_at: Option<u64>,
    now: u64,
    t_view: Duration,
    t_plan: Duration,
    rebuilt: usize,
    any_waiting: bool,
}

/// Runs `f` (CPU-bound, no awaits) so that the rest of the runtime keeps
/// going: on a multi-threaded runtime the worker's queued tasks move to
/// another thread first.
fn off_the_runtime<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// The deciding half of a round: the view, each job's decision, and the
/// plan. Pure of I/O; reads the state and the reconciler's memory.
fn decide<H: Host>(master: &H, connected: &HashSet<String>, t0: Instant) -> Decided {
    let sched = master.scheduler();
    // Only Arcs are copied under the state's read lock: the raft thread
    // needs the write lock to apply, and a long hold here delays
    // heartbeats enough to start elections.
    let mut captured = master.read(|st| Captured::take(st, &sched.defaults));
    let tree = std::mem::take(&mut captured.tree);
    let (view, mut running, mut agents, rebuilt, unplaceable) = {
        let (mut specs, mut running, mut agents, unplaceable) = {
            let mut m = sched.memory();
            (
                std::mem::take(&mut m.specs),
                std::mem::take(&mut m.running),
                std::mem::take(&mut m.agents),
                m.unplaceable.take(),
            )
        };
        let v = View::build(&captured, &mut specs);
        // Every task that has not ended holds its resources and ports; the
        // planner adds `running` to each agent's usage itself, so agents
        // carry no other reservation.
        let rebuilt = running.update(&captured.tasks, &specs);
        let agents_changed = agents.update(&captured.agents, connected);
        sched.memory().specs = specs;
        // Only a plan made from the same agents and tasks can be reused.
        // ...under the same quotas and weights.
        let unplaceable = unplaceable
            .filter(|u| rebuilt == 0 && !agents_changed && u.settings == tree.replicated);
        (v, running, agents, rebuilt, unplaceable)
    };
    let t_view = t0.elapsed();
    let mut victims = Vec::new();
    // Jobs that need tasks placed, and how many.
    let mut wanted: Vec<(&Arc<JobView>, usize)> = Vec::new();
    // Reasons that stand are borrowed from the view, not copied.
    let mut waiting: BTreeMap<Cow<'_, str>, Cow<'_, str>> = BTreeMap::new();
    let mut t_plan = Duration::ZERO;
    let mut rolling = HashSet::new();
    let mut healing = HashSet::new();
    let mut wake_at: Option<u64> = None;
    let now = master.now_ms();
    let mut preempted = HashMap::new();
    let empty = Vec::new();
    let batch = batch_progress(master, &view.jobs);
    let kept = deploying_tasks(master, &view.jobs);
    let mut rollout = Rollout::default();
    let mut shutdown = shutdown::Shutdown::default();
    for job in &view.jobs {
        let tasks: Vec<&Task> = view
            .tasks
            .get(&job.id)
            .unwrap_or(&empty)
            .iter()
            .map(|t| t.as_ref())
            .collect();
        // A drain, like a rolling update, stops an old task once a new one
        // runs: such jobs need a round when a task starts running.
        if job.deployment.as_deref().is_some_and(is_active)
            || tasks
                .iter()
                .any(|t| t.config_hash != job.hash || agents.leaving().contains(&t.agent_id))
        {
            rolling.insert(job.id.clone());
        }
        if tasks.iter().any(|t| t.health_failed && is_live(t)) {
            healing.insert(job.id.clone());
        }
        let progress = batch.get(job.id.as_str()).copied();
        let d = match progress {
            Some(p) => desired::decide_batch(job, &tasks, agents.agents(), agents.leaving(), p),
            None => drain::decide(job, &tasks, agents.leaving()).unwrap_or_else(|| {
                match (&job.deployment, kept.get(job.id.as_str())) {
                    (Some(dep), Some(kept)) if is_active(dep) => {
                        let kept: Vec<&Task> = kept.iter().map(|t| t.as_ref()).collect();
                        rollout.follow(job, dep, deploy::step(dep, job, &kept, now))
                    }
                    (Some(dep), _) if dep.state == deployments::FAILED => deploy::hold(job, &tasks),
                    _ => desired::decide(job, &tasks, agents.agents()),
                }
            }),
        };
        shutdown.job(job, &tasks, d.stop, now);
        if d.start > 0 {
            let hold = progress
                .and_then(|p| p.hold(job))
                .or_else(|| desired::hold(view.backoff.get(job.id.as_str()).copied(), now));
            if let Some(h) = hold {
                if let Some(until) = h.until_ms {
                    wake_at = Some(wake_at.map_or(until, |w| w.min(until)));
                }
                waiting.insert(Cow::Borrowed(job.id.as_str()), Cow::Owned(h.why));
                continue;
            }
            if let Err(e) = &job.constraints {
                waiting.insert(Cow::Borrowed(job.id.as_str()), Cow::Borrowed(e.as_str()));
                continue;
            }
            wanted.push((job, d.start));
        }
    }
    let mut place = entries::Placements::default();
    let mut next_unplaceable = None;
    // What the planner must be asked: with a still valid plan that placed
    // nothing, only the jobs it was not asked (new ones, changed ones).
    let (known, fresh) = match &unplaceable {
        Some(last) => last.split(&wanted),
        None => (Vec::new(), wanted.clone()),
    };
    if let Some(last) = unplaceable.filter(|_| fresh.is_empty()) {
        // Nothing the planner reads has changed since it placed none of
        // these, and what it said then is committed: it would say the
        // same again. Re-planning every waiting job every second cost a
        // leader a tenth of a core per 20,000 waiting jobs. The reasons
        // are read back from the state rather than kept twice.
        for (job, _) in &known {
            if let Some(why) = view.waiting.get(job.id.as_str()) {
                waiting.insert(Cow::Borrowed(job.id.as_str()), Cow::Borrowed(*why));
            }
        }
        next_unplaceable = Some(if last.asks_for(&wanted) {
            last
        } else {
            // Fewer asks than before (a job deleted or scaled down).
            Unplaceable::new(&wanted).under(last.settings)
        });
    } else if !fresh.is_empty() {
        // The jobs the last plan was asked still fit nowhere: the cluster
        // it planned on is unchanged and pending work frees no room. Their
        // committed reasons stand, and only the rest is planned. Re-planning
        // every waiting job each time one more arrived allocated (and freed)
        // a few KB per waiting job per round: 100,000 jobs put one after
        // another left the leader's heap hundreds of MB larger than its
        // live data (freed memory the allocator kept).
        for (job, _) in &known {
            if let Some(why) = view.waiting.get(job.id.as_str()) {
                waiting.insert(Cow::Borrowed(job.id.as_str()), Cow::Borrowed(*why));
            }
        }
        let pending = fresh
            .iter()
            .map(|(job, n)| {
                let ids = (0..*n)
                    .map(|i| job::task_id(&job.id, view.version, i))
                    .collect();
                job.request(ids)
            })
            .collect();
        // The kept views are lent to the planner, not copied.
        let snapshot = sp::Snapshot {
            agents: agents.take(),
            running: running.take(),
            pending,
            pdl_weights: tree.weights.clone(),
            quotas: quotas_of(&tree),
        };
        let tp = Instant::now();
        let plan = sp::plan(&snapshot, &sp::Config::default());
        t_plan = tp.elapsed();
        let by_job: HashMap<&str, &Arc<JobView>> =
            view.jobs.iter().map(|j| (j.id.as_str(), j)).collect();
        let created_ms = master.now_ms();
        for p in &plan.placements {
            if let Some(job) = by_job.get(p.job) {
                place.add(job, p, created_ms);
            }
        }
        for p in &plan.preemptions {
            let priority = by_job.get(p.for_job).map(|j| j.spec.priority).unwrap_or(0);
            victims.push(p.victim.to_string());
            preempted.insert(
                p.victim.to_string(),
                format!(
                    "preempted on agent {} for task {} of job {} (priority {priority})",
                    p.agent, p.for_task, p.for_job
                ),
            );
        }
        for u in &plan.unplaced {
            waiting.insert(
                Cow::Owned(u.job.to_string()),
                Cow::Owned(format!("{} task(s) waiting: {}", u.tasks.len(), u.reason)),
            );
        }
        if plan.placements.is_empty() && plan.preemptions.is_empty() {
            next_unplaceable = Some(Unplaceable::new(&wanted).under(tree.replicated));
        }
        drop(plan);
        agents.restore(snapshot.agents);
        running.restore(snapshot.running);
    }
    {
        let mut mem = sched.memory();
        mem.running = running;
        mem.agents = agents;
        mem.unplaceable = next_unplaceable;
    }
    // Only changed explanations are committed: a stable cluster writes
    // nothing, and every master (and the event stream) shows why tasks wait.
    let mut changed: HashMap<String, String> = waiting
        .iter()
        .filter(|(job, why)| view.waiting.get(job.as_ref()).copied() != Some(why.as_ref()))
        .map(|(j, w)| (j.to_string(), w.to_string()))
        .collect();
    for job in view.waiting.keys() {
        if !waiting.contains_key(*job) {
            changed.insert(job.to_string(), String::new());
        }
    }
    let (stops, drains_end) = shutdown.finish(victims);
    for at in [rollout.wake_at, drains_end].into_iter().flatten() {
        wake_at = Some(wake_at.map_or(at, |w| w.min(at)));
    }
    Decided {
        deployments: rollout.records,
        fails: rollout.fails,
        place,
        kills: stops.kill,
        draining: stops.draining,
        changed,
        preempted,
        rolling,
        healing,
        wake_at,
        now,
        t_view,
        t_plan,
        rebuilt,
        any_waiting: !waiting.is_empty(),
    }
}

/// The progress of every batch job's current run, from the tasks the
/// state keeps of it (ended ones included), in one short read of the
/// state. Service jobs are skipped without a look at their tasks: only
/// their live tasks matter, and the round already has those. The read is
/// at least as new as the round's capture, so a task may show as live
/// there and as finished here: it then counts twice, and the round starts
/// fewer tasks, never more (the next round corrects it).
fn batch_progress<'a, H: Host>(
    master: &H,
    jobs: &'a [Arc<JobView>],
) -> FastMap<&'a str, desired::Progress> {
    let batch: Vec<&JobView> = jobs.iter().filter(|j| j.is_batch()).map(|j| &**j).collect();
    if batch.is_empty() {
        return FastMap::new();
    }
    master.read(|st| {
        batch
            .iter()
            .map(|j| {
                let kept = st.tasks_of(&j.id).map(|t| t.as_ref());
                (j.id.as_str(), desired::progress(j, kept))
            })
            .collect()
    })
}

/// The kept tasks (live and recently ended) of every job with an active
/// deployment, in one short read of the state: a deployment's step sees
/// the new version's tasks that failed, which a crash loop leaves no live
/// task of.
fn deploying_tasks<'a, H: Host>(
    master: &H,
    jobs: &'a [Arc<JobView>],
) -> FastMap<&'a str, Vec<Arc<Task>>> {
    let deploying: Vec<&JobView> = jobs
        .iter()
        .filter(|j| j.deployment.as_deref().is_some_and(is_active))
        .map(|j| &**j)
        .collect();
    if deploying.is_empty() {
        return FastMap::new();
    }
    master.read(|st| {
        deploying
            .iter()
            .map(|j| (j.id.as_str(), st.tasks_of(&j.id).cloned().collect()))
            .collect()
    })
}

/// Sends launches and kills for what rounds committed (`ids`), or for
/// every task when the last sweep is more than [`SWEEP_EVERY`] old.
fn send<H: Host>(master: &H, connected: &HashSet<String>, ids: &[String]) {
    let sweep = master
        .scheduler()
        .memory()
        .swept_at
        .is_none_or(|at| at.elapsed() >= SWEEP_EVERY);
    let scope = if sweep { Scope::All } else { Scope::Only(ids) };
    dispatch(master, connected, scope);
}

/// Sends `Reconcile` to every connected agent; each answers with a full
/// report, handled like a registration's.
fn ask_full_reports<H: Host>(master: &H) {
    let agents = master.connected();
    debug!(agents = agents.len(), "asking agents for full reports");
    for agent in agents {
        let msg = MasterMessage {
            kind: Some(master_message::Kind::Reconcile(Reconcile {})),
        };
        master.send(&agent, msg);
    }
}

/// Which tasks a dispatch looks at.
enum Scope<'a> {
    /// Every task: finds launches and kills to resend, and tasks of agents
    /// that were not connected before.
    All,
    /// Only these (a round's own placements and kills).
    Only(&'a [String]),
}

/// Sends launches for placed tasks and kills for tasks being stopped, per
/// agent, unless sent recently. A round sends what it just committed; the
/// whole state is swept at most once per [`SWEEP_EVERY`] (at 100,000 tasks
/// a sweep costs milliseconds, and rounds come by the dozen per second
/// while jobs arrive).
fn dispatch<H: Host>(master: &H, connected: &HashSet<String>, scope: Scope<'_>) {
    let sched = master.scheduler();
    let now = Instant::now();
    // Only `Arc`s are taken under the state's read lock: the raft thread
    // needs the write lock to apply, and building tens of thousands of
    // launches under it kept the leader from sending anything for long
    // enough that its followers elected another.
    let all = matches!(scope, Scope::All);
    let candidates: Vec<Arc<Task>> = master.read(|st| match scope {
        Scope::Only(ids) => ids
            .iter()
            .filter_map(|id| st.tasks.get(id))
            .filter(|t| may_need_sending(t))
            .cloned()
            .collect(),
        Scope::All => st
            .tasks
            .values()
            .filter(|t| may_need_sending(t))
            .cloned()
            .collect(),
    });
    let mut out = Outgoing::default();
    {
        let mut mem = sched.memory();
        let mem = &mut *mem;
        for t in &candidates {
            out.consider(t, mem, connected, now);
        }
        if all {
            mem.swept_at = Some(now);
            // Launches of tasks that moved on (or are gone) are done with,
            // and so are kills of tasks that ended. Only STAGING tasks
            // consult `launched`, so a stale entry costs memory, not
            // correctness: it is swept once stale entries must exist.
            let staging: FastSet<&str> = candidates
                .iter()
                .filter(|t| t.state == STAGING)
                .map(|t| t.id.as_str())
                .collect();
            if mem.launched.len() > staging.len() {
                mem.launched.retain(|id, _| staging.contains(id.as_str()));
            }
            let open: FastSet<&str> = candidates.iter().map(|t| t.id.as_str()).collect();
            mem.killed.retain(|id, _| open.contains(id.as_str()));
        }
    }
    let domain = (!out.launches.is_empty()).then(|| master.dns_domain());
    for (agent, mut tasks) in out.launches {
        let n = tasks.len();
        for t in &mut tasks {
            t.dns_domain
                .clone_from(domain.as_ref().expect("set when launches exist"));
        }
        let msg = MasterMessage {
            kind: Some(master_message::Kind::Launch(Launch { tasks })),
        };
        if master.send(&agent, msg) {
            debug!(agent = %agent, tasks = n, "launch sent");
        }
    }
    for (agent, tasks) in out.kills {
        let msg = MasterMessage {
            kind: Some(master_message::Kind::Kill(Kill { tasks })),
        };
        master.send(&agent, msg);
    }
}

/// Whether a task may need a launch (placed, not yet reported) or a kill
/// (being stopped, not yet ended). Most tasks run and want nothing.
fn may_need_sending(t: &Task) -> bool {
    (t.kill_requested || t.state == STAGING) && !is_terminal(&t.state)
}

/// Launches and kills to send, by agent.
#[derive(Default)]
struct Outgoing {
    launches: FastMap<String, Vec<LaunchTask>>,
    kills: FastMap<String, Vec<KillTask>>,
}

impl Outgoing {
    /// Adds what `t` needs sent, if anything and if not sent recently.
    fn consider(&mut self, t: &Task, mem: &mut Memory, connected: &HashSet<String>, now: Instant) {
        if !may_need_sending(t) || !connected.contains(&t.agent_id) {
            return;
        }
        let job = mem.specs.get(&t.job_id);
        if t.kill_requested {
            if due(&mut mem.killed, &t.id, now, REKILL_AFTER) {
                let grace_ms = job.map_or(DEFAULT_KILL_GRACE_MS, |j| j.kill_grace_ms());
                let kill = KillTask {
                    task_id: t.id.clone(),
                    grace_ms,
                };
                push_to(&mut self.kills, &t.agent_id, kill);
            }
        } else {
            let Some(job) = job else { return };
            if due(&mut mem.launched, &t.id, now, RELAUNCH_AFTER) {
                push_to(&mut self.launches, &t.agent_id, job.launch(t));
            }
        }
    }
}

/// Whether a message about task `id` is due (never sent, or sent more
/// than `again` ago), noting it as sent now if so. A round dispatches
/// tens of thousands of tasks: one lookup for a known id, and the id is
/// copied only when new.
fn due(sent: &mut FastMap<String, Instant>, id: &str, now: Instant, again: Duration) -> bool {
    match sent.get_mut(id) {
        Some(at) if now - *at <= again => false,
        Some(at) => {
            *at = now;
            true
        }
        None => {
            sent.insert(id.to_string(), now);
            true
        }
    }
}

/// Appends `item` to `key`'s list, copying the key only for a new one.
fn push_to<T>(map: &mut FastMap<String, Vec<T>>, key: &str, item: T) {
    match map.get_mut(key) {
        Some(list) => list.push(item),
        None => {
            map.insert(key.to_string(), vec![item]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(job: &str, created: u64, health_failed: bool, healthy: Option<bool>) -> Change {
        Change::TaskPut(Arc::new(Task {
            id: format!("{job}.t"),
            job_id: job.into(),
            state: crate::kernel::state::RUNNING.into(),
            created_version: created,
            health_failed,
            healthy,
            ..Default::default()
        }))
    }

    #[test]
    fn health_changes_wake_a_round_only_when_they_can_change_a_decision() {
        let s = Scheduler::default();
        let none = |_: &str| false;
        // A healthy report of an ordinary job: nothing to decide.
        assert!(!s.matters(5, &[put("j", 1, false, Some(true))], none));
        // A task asking for its replacement: a round places one.
        assert!(s.matters(5, &[put("j", 1, true, Some(false))], none));
        // While a job is being healed, its replacement turning healthy
        // lets the round stop the unhealthy task.
        s.memory().healing.insert("j".into());
        assert!(s.matters(5, &[put("j", 1, false, Some(true))], none));
        // A round's own placements never wake another.
        assert!(!s.matters(5, &[put("j", 5, false, None)], none));
    }

    #[test]
    fn an_agent_joining_wakes_a_round_only_when_something_waits_or_moves() {
        let agent = |status: &str| {
            Change::AgentPut(Arc::new(ocean_proto::internal::Agent {
                id: "a".into(),
                status: status.into(),
                ..Default::default()
            }))
        };
        let s = Scheduler::default();
        let busy = |id: &str| id == "a";
        let idle = |_: &str| false;
        assert!(!s.matters(5, &[agent("online")], busy));
        // A drain moves tasks off it, if it has any.
        assert!(s.matters(5, &[agent("draining")], busy));
        assert!(s.matters(5, &[agent("offline")], busy));
        assert!(!s.matters(5, &[agent("draining")], idle));
        // An agent registering in trouble keeps its tasks.
        assert!(!s.matters(5, &[agent("problem")], busy));
        // A job waits for room.
        s.memory().waiting = true;
        assert!(s.matters(5, &[agent("online")], idle));
        s.memory().waiting = false;
        s.memory().rolling.insert("j".into());
        assert!(s.matters(5, &[agent("online")], idle));
    }

    #[test]
    fn draining_the_feed_says_whether_anything_queued_matters() {
        let (tx, mut rx) = tokio::sync::broadcast::channel(4);
        let matters = |item: FeedItem| matches!(item, FeedItem::Reset);
        assert_eq!(drain(&mut rx, matters), Some(false), "nothing queued");
        tx.send(FeedItem::Changes(1, Arc::new(Vec::new().into())))
            .unwrap();
        tx.send(FeedItem::Changes(2, Arc::new(Vec::new().into())))
            .unwrap();
        assert_eq!(drain(&mut rx, matters), Some(false), "nothing that matters");
        tx.send(FeedItem::Changes(3, Arc::new(Vec::new().into())))
            .unwrap();
        tx.send(FeedItem::Reset).unwrap();
        assert_eq!(drain(&mut rx, matters), Some(true));
        assert_eq!(drain(&mut rx, matters), Some(false), "all taken");
        // Items lost to a lag may have mattered.
        for v in 0..6 {
            tx.send(FeedItem::Changes(v, Arc::new(Vec::new().into())))
                .unwrap();
        }
        assert_eq!(drain(&mut rx, matters), Some(true));
        drop(tx);
        assert_eq!(drain(&mut rx, matters), None, "closed");
    }

    #[test]
    fn a_plan_that_placed_nothing_is_reused_only_for_the_same_ask() {
        let id = |n: &str| format!("cop.a_owt.b_pdl.c_service.d_job.{n}_cluster.e");
        let a = Arc::new(job::test_view(&id("a"), 1, "true"));
        let b = Arc::new(job::test_view(&id("b"), 1, "true"));
        let last = Unplaceable::new(&[(&a, 1), (&b, 2)]);
        assert!(last.asks_for(&[(&a, 1), (&b, 2)]));
        assert!(!last.asks_for(&[(&a, 1), (&b, 3)]), "another count");
        assert!(!last.asks_for(&[(&a, 1)]), "fewer jobs");
        assert!(!last.asks_for(&[(&b, 2), (&a, 1)]), "other jobs in order");
        let mut newer = job::test_view(&id("b"), 1, "true");
        newer.updated_version = 2;
        assert!(
            !last.asks_for(&[(&a, 1), (&Arc::new(newer), 2)]),
            "a changed job"
        );
    }

    #[test]
    fn a_plan_that_placed_nothing_leaves_only_new_and_changed_asks_to_plan() {
        let id = |n: &str| format!("cop.a_owt.b_pdl.c_service.d_job.{n}_cluster.e");
        let a = Arc::new(job::test_view(&id("a"), 1, "true"));
        let b = Arc::new(job::test_view(&id("b"), 1, "true"));
        let c = Arc::new(job::test_view(&id("c"), 1, "true"));
        let mut newer = job::test_view(&id("b"), 1, "true");
        newer.updated_version = 2;
        let b2 = Arc::new(newer);
        let last = Unplaceable::new(&[(&a, 1), (&b, 2)]);
        let ids = |v: Vec<(&Arc<JobView>, usize)>| -> Vec<(String, usize)> {
            v.into_iter().map(|(j, n)| (j.id.clone(), n)).collect()
        };
        let (known, fresh) = last.split(&[(&a, 1), (&c, 1), (&b, 2)]);
        assert_eq!(ids(known), vec![(id("a"), 1), (id("b"), 2)]);
        assert_eq!(ids(fresh), vec![(id("c"), 1)], "a new job");
        let (known, fresh) = last.split(&[(&a, 3), (&b2, 2)]);
        assert!(known.is_empty());
        assert_eq!(
            ids(fresh),
            vec![(id("a"), 3), (id("b"), 2)],
            "another count, a changed record"
        );
        let (known, fresh) = last.split(&[(&b, 2)]);
        assert_eq!(ids(known), vec![(id("b"), 2)]);
        assert!(fresh.is_empty(), "fewer asks leave nothing to plan");
    }

    #[test]
    fn the_loop_wakes_when_a_backoff_ends() {
        let s = Scheduler::default();
        assert_eq!(s.next_sleep(), TICK);
        s.memory().wake_at = Some(Instant::now() + Duration::from_millis(200));
        assert!(s.next_sleep() <= Duration::from_millis(200));
        s.memory().wake_at = Some(Instant::now() + Duration::from_secs(30));
        assert_eq!(s.next_sleep(), TICK);
    }
}
