//! Counts over the whole state, kept as it changes, so that a summary of
//! 100,000 tasks costs what a summary of 10 does: jobs by state, tasks
//! waiting by reason, agents by status, capacity allocated and free, and
//! the indexes the jobs list pages over.
//!
//! ```text
//!  insert_task / replace_task / remove_task ─► Summary::task_changed(old, new) ─► the job's tally ─┐
//!  apply's changes (JobPut, JobDeleted, AgentPut) ─► Summary::observe ─► the job's or agent's facts ┴► counts
//! ```
//!
//! Everything here is a function of the state (tasks, jobs, agents), so a
//! state rebuilt from an image compares equal to one that got there step by
//! step: [`Summary::recount`] is the same numbers from scratch, and tests
//! compare the two after random changes. CPU is counted in thousandths of
//! a core, so adding and taking away never drifts.
//!
//! A job's id is one shared `Arc<str>` in every index here, and a waiting
//! reason one per distinct text: with 100,000 jobs that all wait for the
//! same reason, separate copies cost the leader tens of MB.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use ocean_proto::internal::{Agent, Job, Task};
use serde::Deserialize;

use super::agents::agent_status;
use super::tasks::{is_terminal, RUNNING};
use super::{Change, ClusterState};

/// The states a job is shown in, in the order a summary lists them.
pub const JOB_STATES: [&str; 5] = ["running", "starting", "waiting", "flapping", "idle"];

/// A job's state in one word: `flapping` (relaunching stopped until a
/// reset), `waiting` (some task cannot be placed), `idle` (0 instances),
/// `running` (as many tasks running as asked), else `starting`.
pub fn job_state(instances: u64, running: u64, waiting: bool, flapping: bool) -> &'static str {
    if flapping {
        "flapping"
    } else if waiting {
        "waiting"
    } else if instances == 0 {
        "idle"
    } else if running >= instances {
        "running"
    } else {
        "starting"
    }
}

/// A CPU amount in thousandths of a core.
pub fn millicores(cpus: f64) -> u64 {
    (cpus * 1000.0).round().max(0.0) as u64
}

/// What live tasks (not ended) hold: how many, how many serve (RUNNING
/// and not being stopped), and their resources.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Held {
    pub live: u64,
    pub running: u64,
    pub millicores: u64,
    pub mem_mib: u64,
    pub disk_mib: u64,
}

impl Held {
    /// One task's share (nothing once it has ended).
    pub fn of(t: &Task) -> Held {
        if is_terminal(&t.state) {
            return Held::default();
        }
        Held {
            live: 1,
            running: u64::from(t.state == RUNNING && !t.kill_requested),
            millicores: millicores(t.cpus),
            mem_mib: t.mem_mib,
            disk_mib: t.disk_mib,
        }
    }

    fn add(&mut self, o: &Held) {
        self.live += o.live;
        self.running += o.running;
        self.millicores += o.millicores;
        self.mem_mib += o.mem_mib;
        self.disk_mib += o.disk_mib;
    }

    fn sub(&mut self, o: &Held) {
        self.live = self.live.saturating_sub(o.live);
        self.running = self.running.saturating_sub(o.running);
        self.millicores = self.millicores.saturating_sub(o.millicores);
        self.mem_mib = self.mem_mib.saturating_sub(o.mem_mib);
        self.disk_mib = self.disk_mib.saturating_sub(o.disk_mib);
    }

    fn is_zero(&self) -> bool {
        *self == Held::default()
    }
}

/// What a job's record says that its counts depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct JobFacts {
    instances: u64,
    /// Empty when the job does not wait.
    waiting: Arc<str>,
    flapping: bool,
    updated_version: u64,
}

impl JobFacts {
    fn of(job: &Job, reason: impl FnOnce(&str) -> Arc<str>) -> Self {
        #[derive(Deserialize)]
        struct Instances {
            #[serde(default)]
            instances: u64,
        }
        // Specs in the state were validated; one that is not an object of
        // this shape counts as 0 instances, as the dashboard always showed.
        let instances = serde_json::from_slice::<Instances>(&job.spec_json)
            .map(|i| i.instances)
            .unwrap_or(0);
        JobFacts {
            instances,
            waiting: reason(&job.waiting),
            flapping: job.backoff.as_ref().is_some_and(|b| b.flapping),
            updated_version: job.updated_version,
        }
    }
}

/// How a job is counted: its state word and the tasks it waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shown {
    state: &'static str,
    /// The reason it waits for, as its record says.
    reason: Option<Arc<str>>,
    /// Instances asked for but not live, when the job waits.
    waiting_tasks: u64,
}

/// One job's live tasks and, while the job exists, its facts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct JobTally {
    held: Held,
    facts: Option<JobFacts>,
    shown: Option<Shown>,
}

/// Jobs waiting for one reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Waiting {
    /// The jobs, by id.
    ids: BTreeSet<Arc<str>>,
    /// Instances asked for but not live.
    pub tasks: u64,
}

impl Waiting {
    /// How many jobs wait for this reason.
    pub fn jobs(&self) -> u64 {
        self.ids.len() as u64
    }

    /// The first of them by id.
    pub fn example(&self) -> &str {
        self.ids.first().map_or("", |id| id)
    }
}

/// What an agent contributes: its status and capacity.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AgentFacts {
    status: String,
    capacity: Capacity,
}

/// Resources offered by agents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capacity {
    pub millicores: u64,
    pub mem_mib: u64,
    pub disk_mib: u64,
}

impl Capacity {
    fn of(a: &Agent) -> Self {
        Capacity {
            millicores: millicores(a.cpus),
            mem_mib: a.mem_mib,
            disk_mib: a.disk_mib,
        }
    }

    // Wrapping, not checked: apply must not panic on an agent record the
    // log already holds (registrations are bounded since; one with
    // `cpus` 1.6e39 overflowed here), and wrapping sums stay exact when
    // the same amount is taken away again, so the kept total still equals
    // a recount.
    fn add(&mut self, c: &Capacity) {
        self.millicores = self.millicores.wrapping_add(c.millicores);
        self.mem_mib = self.mem_mib.wrapping_add(c.mem_mib);
        self.disk_mib = self.disk_mib.wrapping_add(c.disk_mib);
    }

    fn remove(&mut self, c: &Capacity) {
        self.millicores = self.millicores.wrapping_sub(c.millicores);
        self.mem_mib = self.mem_mib.wrapping_sub(c.mem_mib);
        self.disk_mib = self.disk_mib.wrapping_sub(c.disk_mib);
    }
}

/// One job's counts, as a list row shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobCounts {
    pub state: &'static str,
    pub instances: u64,
    pub held: Held,
}

/// The counts, kept as the state changes (see the module's doc).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    jobs: HashMap<Arc<str>, JobTally>,
    agents: HashMap<String, AgentFacts>,
    /// Jobs per state word (no zero entries).
    pub jobs_by_state: BTreeMap<&'static str, u64>,
    /// Jobs and tasks per waiting reason (no zero entries).
    pub waiting: BTreeMap<Arc<str>, Waiting>,
    /// Agents per status (no zero entries).
    pub agents_by_status: BTreeMap<String, u64>,
    /// What every agent offers.
    pub capacity: Capacity,
    /// What every live task holds.
    pub allocated: Held,
    /// Job ids by the version they last changed at: the "updated" order.
    by_updated: BTreeSet<(u64, Arc<str>)>,
    /// Job ids by state word: the "state" order.
    by_state: BTreeSet<(&'static str, Arc<str>)>,
}

fn bump<K: Ord>(map: &mut BTreeMap<K, u64>, key: K, up: bool) {
    if up {
        *map.entry(key).or_default() += 1;
    } else if let Some(n) = map.get_mut(&key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(&key);
        }
    }
}

impl Summary {
    /// The same numbers counted from scratch over `st`.
    pub fn recount(st: &ClusterState) -> Summary {
        let mut s = Summary::default();
        for t in st.tasks.values() {
            s.task_changed(None, Some(t));
        }
        for j in st.jobs.values() {
            s.job_put(j);
        }
        for a in st.agents.values() {
            s.agent_put(a);
        }
        s
    }

    /// A task was inserted (`old` None), replaced or removed (`new` None).
    pub fn task_changed(&mut self, old: Option<&Task>, new: Option<&Task>) {
        let before = old.map(Held::of).unwrap_or_default();
        let after = new.map(Held::of).unwrap_or_default();
        let job = match (old, new) {
            (_, Some(t)) | (Some(t), None) => &t.job_id,
            (None, None) => return,
        };
        // A task's job never changes; most reports (health, ports) leave
        // what it holds as it was.
        if before == after {
            return;
        }
        self.allocated.sub(&before);
        self.allocated.add(&after);
        if !self.jobs.contains_key(job.as_str()) {
            self.jobs
                .insert(Arc::from(job.as_str()), JobTally::default());
        }
        if let Some(tally) = self.jobs.get_mut(job.as_str()) {
            tally.held.sub(&before);
            tally.held.add(&after);
        }
        self.reshow(job);
    }

    /// Applies what an applied command changed to jobs and agents (tasks
    /// are counted as they are stored).
    pub fn observe(&mut self, changes: &[Change]) {
        for c in changes {
            match c {
                Change::JobPut(j) => self.job_put(j),
                Change::JobDeleted(id) => {
                    let Some(key) = self.key(id) else { continue };
                    if let Some(tally) = self.jobs.get_mut(id.as_str()) {
                        if let Some(f) = tally.facts.take() {
                            self.by_updated.remove(&(f.updated_version, key));
                        }
                        self.reshow(id);
                    }
                }
                Change::AgentPut(a) => self.agent_put(a),
                Change::TaskPut(_)
                | Change::TaskRemoved(_)
                | Change::KvPut(_)
                | Change::KvDeleted(_) => {}
            }
        }
    }

    /// The shared copy of a job's id, while it has a tally.
    fn key(&self, id: &str) -> Option<Arc<str>> {
        self.jobs.get_key_value(id).map(|(k, _)| k.clone())
    }

    /// The shared copy of a waiting reason: the key of the jobs already
    /// waiting for it, else a new one (empty: not waiting).
    fn reason(&self, text: &str) -> Arc<str> {
        match self.waiting.get_key_value(text) {
            Some((key, _)) => key.clone(),
            None => Arc::from(text),
        }
    }

    fn job_put(&mut self, job: &Job) {
        let facts = JobFacts::of(job, |text| self.reason(text));
        if !self.jobs.contains_key(job.id.as_str()) {
            self.jobs
                .insert(Arc::from(job.id.as_str()), JobTally::default());
        }
        let Some(key) = self.key(&job.id) else { return };
        let Some(tally) = self.jobs.get_mut(job.id.as_str()) else {
            return;
        };
        if tally.facts.as_ref() == Some(&facts) {
            return;
        }
        if let Some(old) = tally.facts.replace(facts) {
            self.by_updated.remove(&(old.updated_version, key.clone()));
        }
        self.by_updated.insert((job.updated_version, key.clone()));
        self.reshow(&job.id);
    }

    fn agent_put(&mut self, a: &Agent) {
        let facts = AgentFacts {
            status: agent_status(a).to_string(),
            capacity: Capacity::of(a),
        };
        if let Some(old) = self.agents.get(&a.id) {
            if *old == facts {
                return;
            }
            let old = old.clone();
            bump(&mut self.agents_by_status, old.status, false);
            self.capacity.remove(&old.capacity);
        }
        bump(&mut self.agents_by_status, facts.status.clone(), true);
        self.capacity.add(&facts.capacity);
        self.agents.insert(a.id.clone(), facts);
    }

    /// Moves a job's contribution to the counts from what it showed to
    /// what its facts and tasks say now; forgets a tally with neither.
    fn reshow(&mut self, id: &str) {
        let Some(key) = self.key(id) else { return };
        let Some(tally) = self.jobs.get_mut(id) else {
            return;
        };
        let now = tally.facts.as_ref().map(|f| {
            let reason = (!f.waiting.is_empty()).then(|| f.waiting.clone());
            Shown {
                state: job_state(
                    f.instances,
                    tally.held.running,
                    reason.is_some(),
                    f.flapping,
                ),
                waiting_tasks: if reason.is_some() {
                    f.instances.saturating_sub(tally.held.live)
                } else {
                    0
                },
                reason,
            }
        });
        let same = tally.shown == now;
        let before = if same {
            None
        } else {
            std::mem::replace(&mut tally.shown, now.clone())
        };
        if tally.facts.is_none() && tally.held.is_zero() {
            self.jobs.remove(id);
        }
        if same {
            return;
        }
        if let Some(b) = before {
            bump(&mut self.jobs_by_state, b.state, false);
            self.by_state.remove(&(b.state, key.clone()));
            if let Some(reason) = &b.reason {
                if let Some(w) = self.waiting.get_mut(reason) {
                    w.ids.remove(id);
                    w.tasks = w.tasks.saturating_sub(b.waiting_tasks);
                    if w.ids.is_empty() {
                        self.waiting.remove(reason);
                    }
                }
            }
        }
        if let Some(n) = now {
            bump(&mut self.jobs_by_state, n.state, true);
            self.by_state.insert((n.state, key.clone()));
            if let Some(reason) = n.reason {
                let w = self.waiting.entry(reason).or_default();
                w.ids.insert(key);
                w.tasks += n.waiting_tasks;
            }
        }
    }

    /// One job's counts (None for a job the state does not hold).
    pub fn job(&self, id: &str) -> Option<JobCounts> {
        let tally = self.jobs.get(id)?;
        let (facts, shown) = (tally.facts.as_ref()?, tally.shown.as_ref()?);
        Some(JobCounts {
            state: shown.state,
            instances: facts.instances,
            held: tally.held,
        })
    }

    /// Live tasks' share of a job, including a deleted job whose tasks
    /// are still stopping.
    pub fn held_by_job(&self, id: &str) -> Held {
        self.jobs.get(id).map(|t| t.held).unwrap_or_default()
    }

    /// Job ids, newest change first.
    pub fn ids_by_update(&self) -> impl Iterator<Item = &str> {
        self.by_updated.iter().rev().map(|(_, id)| &**id)
    }

    /// Job ids by state word (in [`JOB_STATES`]' alphabetical order), then id.
    pub fn ids_by_state(&self) -> impl Iterator<Item = &str> {
        self.by_state.iter().map(|(_, id)| &**id)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use ocean_proto::internal::TaskUpdate;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::kernel::state::{
        delete_job_command, plan_tasks_command, put_agent_command, put_job_command,
        reset_backoff_command, scale_job_command, set_agent_status_command, task_updates_command,
        STATES,
    };

    fn job_id(n: usize) -> String {
        format!("cop.c_owt.o_pdl.p{}_service.s_job.j{n}_cluster.c", n % 3)
    }

    fn spec(id: &str, instances: u32, cmd: u32) -> Vec<u8> {
        let mut s = ocean_spec::JobSpec::new(id, format!("sleep {cmd}"));
        s.instances = instances;
        s.to_canonical_json()
    }

    /// One random command over a few jobs, agents and tasks.
    fn random_command(
        rng: &mut StdRng,
        st: &ClusterState,
        step: usize,
    ) -> ocean_proto::internal::Command {
        let job = job_id(rng.gen_range(0..6));
        let agent = format!("a{}", rng.gen_range(0..4));
        match rng.gen_range(0..10) {
            0 => put_job_command(
                job.clone(),
                spec(&job, rng.gen_range(0..5), rng.gen_range(0..3)),
            ),
            1 => scale_job_command(job, rng.gen_range(0..6)),
            2 if rng.gen_range(0..4) == 0 => delete_job_command(job),
            3 => {
                let waiting = if rng.gen_bool(0.5) {
                    format!("insufficient {}", ["cpu", "mem"][rng.gen_range(0..2)])
                } else {
                    String::new()
                };
                plan_tasks_command(vec![], vec![], HashMap::from([(job, waiting)]))
            }
            4 => put_agent_command(Agent {
                id: agent.clone(),
                hostname: agent,
                cpus: f64::from(rng.gen_range(1..9)) / 2.0,
                mem_mib: rng.gen_range(1..8) * 1024,
                disk_mib: 1000,
                ..Default::default()
            }),
            5 if !st.agents.is_empty() => {
                let status = AGENT_STATUSES_FOR_TEST[rng.gen_range(0..4)];
                set_agent_status_command(agent, status.into(), "test".into())
            }
            6 if rng.gen_range(0..5) == 0 => reset_backoff_command(job),
            7 | 8 => {
                let place = (0..rng.gen_range(1..4))
                    .map(|i| Task {
                        id: format!("{job}.t{step}-{i}"),
                        job_id: job.clone(),
                        agent_id: agent.clone(),
                        state: "STAGING".into(),
                        cpus: f64::from(rng.gen_range(1..5)) / 10.0,
                        mem_mib: rng.gen_range(1..64),
                        disk_mib: rng.gen_range(0..3),
                        ..Default::default()
                    })
                    .collect();
                plan_tasks_command(place, vec![], HashMap::new())
            }
            _ => {
                let ids: Vec<&Task> = st.tasks.values().map(|t| &**t).collect();
                let updates = (0..rng.gen_range(1..5))
                    .filter(|_| !ids.is_empty())
                    .map(|_| {
                        let t = ids[rng.gen_range(0..ids.len())];
                        TaskUpdate {
                            task_id: t.id.clone(),
                            agent_id: t.agent_id.clone(),
                            state: STATES[rng.gen_range(1..STATES.len())].into(),
                            timestamp_ms: step as u64,
                            received_ms: step as u64,
                            healthy: Some(rng.gen_bool(0.5)),
                            ..Default::default()
                        }
                    })
                    .collect();
                task_updates_command(updates)
            }
        }
    }

    const AGENT_STATUSES_FOR_TEST: [&str; 4] = ["online", "draining", "offline", "problem"];

    #[test]
    fn the_kept_summary_equals_a_recount_after_random_changes() {
        // Which job states and how many waiting reasons the runs went through,
        // so the test is known to cover them.
        let mut states_seen = BTreeSet::new();
        let mut waited = false;
        for seed in 0..40u64 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut st = ClusterState::default();
            for step in 0..300 {
                let cmd = random_command(&mut rng, &st, step);
                st.apply(&cmd);
                states_seen.extend(st.summary.jobs_by_state.keys().copied());
                waited |= !st.summary.waiting.is_empty();
                assert_eq!(
                    st.summary,
                    Summary::recount(&st),
                    "seed {seed}, step {step}, after {cmd:?}"
                );
            }
            // What the summary counts is what the state holds.
            let live: u64 = st.tasks.values().filter(|t| !is_terminal(&t.state)).count() as u64;
            assert_eq!(st.summary.allocated.live, live, "seed {seed}");
            assert_eq!(
                st.summary.jobs_by_state.values().sum::<u64>(),
                st.jobs.len() as u64,
                "seed {seed}"
            );
            // And a state rebuilt from its image has the same summary.
            let back = ClusterState::from_image(&st.to_image()).unwrap();
            assert_eq!(back.summary, st.summary, "seed {seed}");
        }
        assert!(waited);
        assert_eq!(
            states_seen,
            BTreeSet::from(["running", "starting", "waiting", "idle", "flapping"]),
        );
    }

    /// Found by `cargo fuzz run agent_message`: an agent registered with
    /// `cpus` 1.6e39 (millicores saturate at u64::MAX) next to another
    /// overflowed the capacity total, a panic in apply in debug builds.
    #[test]
    fn huge_agents_never_overflow_the_capacity_total() {
        let mut st = ClusterState::default();
        let agent = |id: &str, cpus: f64, mem_mib: u64| {
            put_agent_command(Agent {
                id: id.into(),
                hostname: id.into(),
                cpus,
                mem_mib,
                disk_mib: u64::MAX,
                ..Default::default()
            })
        };
        st.apply(&agent("a1", 8.0, 16_384));
        st.apply(&agent("a2", 1.6e39, u64::MAX));
        assert_eq!(st.summary, Summary::recount(&st));
        // Back to sane numbers: the total is exact again.
        st.apply(&agent("a2", 4.0, 1024));
        assert_eq!(st.summary, Summary::recount(&st));
        assert_eq!(st.summary.capacity.millicores, 12_000);
        assert_eq!(st.summary.capacity.mem_mib, 17_408);
    }

    #[test]
    fn counts_follow_a_job_through_its_life() {
        let mut st = ClusterState::default();
        let id = job_id(1);
        st.apply(&put_job_command(id.clone(), spec(&id, 2, 0)));
        assert_eq!(st.summary.jobs_by_state, BTreeMap::from([("starting", 1)]));
        let t = |n: u32| Task {
            id: format!("{id}.t{n}"),
            job_id: id.clone(),
            agent_id: "a1".into(),
            state: "STAGING".into(),
            cpus: 0.25,
            mem_mib: 100,
            ..Default::default()
        };
        st.apply(&plan_tasks_command(
            vec![t(1)],
            vec![],
            HashMap::from([(id.clone(), "insufficient mem".to_string())]),
        ));
        assert_eq!(st.summary.jobs_by_state, BTreeMap::from([("waiting", 1)]));
        let w = &st.summary.waiting["insufficient mem"];
        assert_eq!((w.jobs(), w.tasks, w.example()), (1, 1, id.as_str()));
        assert_eq!(
            st.summary.allocated,
            Held {
                live: 1,
                running: 0,
                millicores: 250,
                mem_mib: 100,
                disk_mib: 0
            }
        );
        st.apply(&plan_tasks_command(
            vec![t(2)],
            vec![],
            HashMap::from([(id.clone(), String::new())]),
        ));
        let run = |n: u32| TaskUpdate {
            task_id: format!("{id}.t{n}"),
            agent_id: "a1".into(),
            state: RUNNING.into(),
            timestamp_ms: 1,
            ..Default::default()
        };
        st.apply(&task_updates_command(vec![run(1), run(2)]));
        assert!(st.summary.waiting.is_empty());
        assert_eq!(st.summary.jobs_by_state, BTreeMap::from([("running", 1)]));
        assert_eq!(st.summary.job(&id).unwrap().held.running, 2);
        // Deleted: its tasks are asked to stop and still hold until they end.
        st.apply(&delete_job_command(id.clone()));
        assert!(st.summary.jobs_by_state.is_empty());
        assert_eq!(st.summary.job(&id), None);
        assert_eq!(st.summary.held_by_job(&id).live, 2);
        assert_eq!(st.summary, Summary::recount(&st));
    }
}
