//! Tasks in the replicated state: placement rounds, status reports from
//! agents, kill requests and scaling, applied deterministically.
//!
//! ```text
//!  PlanTasks.placed ─► STAGING ─► STARTING ─► RUNNING ─┬─► FINISHED / FAILED
//!  (leader round)       (agent reports, forward only)   └─► KILLED / LOST
//!  PlanTasks.draining ─► draining_since_ms (out of service; not live)
//!  PlanTasks.kill, DeleteJob ─► kill_requested = true (the leader sends kills)
//! ```
//! A task never moves backwards and a terminal state is final, so reports
//! replayed after a reconnect or a leader change change nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ocean_proto::internal::{JobPlacements, PlanTasks, ScaleJob, Task, TaskPort, TaskUpdate};

use super::{backoff, Change, ClusterState, Outcome};

/// How many ended tasks of each job the state keeps (for `ocean task list`
/// and post-mortems); older ones are forgotten.
pub const KEEP_ENDED_PER_JOB: usize = 10;

/// A task's id: its job's id, a dot and a suffix without dots (the leader
/// makes the suffix: `reconcile::job::task_id`). Placements in the log
/// carry only the suffix, and stored task records leave out the ids.
pub fn task_id_in(job: &str, suffix: &str) -> String {
    format!("{job}.{suffix}")
}

/// The suffix of `task` within `job`, if `task` is one of `job`'s ids.
pub fn id_suffix<'a>(task: &'a str, job: &str) -> Option<&'a str> {
    task.strip_prefix(job)?
        .strip_prefix('.')
        .filter(|suffix| !suffix.contains('.'))
}

/// The job a task id names: everything before its last dot.
pub fn job_of(task: &str) -> Option<&str> {
    task.rsplit_once('.').map(|(job, _)| job)
}

/// The task states, in lifecycle order.
pub const STATES: [&str; 7] = [STAGING, STARTING, RUNNING, FINISHED, FAILED, KILLED, LOST];
/// Placed, launch sent or about to be.
pub const STAGING: &str = "STAGING";
/// The agent is starting the process.
pub const STARTING: &str = "STARTING";
/// The process runs.
pub const RUNNING: &str = "RUNNING";
/// Exited 0.
pub const FINISHED: &str = "FINISHED";
/// Exited non-zero, by a signal, OOM, or could not start.
pub const FAILED: &str = "FAILED";
/// Stopped because someone asked.
pub const KILLED: &str = "KILLED";
/// Its fate is unknown (agent lost it).
pub const LOST: &str = "LOST";

/// Position in the lifecycle; `None` for names that are not states.
pub fn rank(state: &str) -> Option<u8> {
    match state {
        STAGING => Some(0),
        STARTING => Some(1),
        RUNNING => Some(2),
        FINISHED | FAILED | KILLED | LOST => Some(3),
        _ => None,
    }
}

/// Whether a state is final.
pub fn is_terminal(state: &str) -> bool {
    rank(state) == Some(3)
}

/// Whether a task counts towards its job's instances: not ended, not
/// being stopped and not draining before its stop.
pub fn is_live(task: &Task) -> bool {
    !is_terminal(&task.state) && !task.kill_requested && task.draining_since_ms == 0
}

/// Adds `id` to the set under `key`, allocating the key only when new.
fn index_insert(index: &mut BTreeMap<String, BTreeSet<Arc<str>>>, key: &str, id: &Arc<str>) {
    match index.get_mut(key) {
        Some(set) => {
            set.insert(id.clone());
        }
        None => {
            index.insert(key.to_string(), BTreeSet::from([id.clone()]));
        }
    }
}

impl ClusterState {
    /// Ids of a job's tasks (including ended ones still kept).
    pub fn tasks_of(&self, job: &str) -> impl Iterator<Item = &Arc<Task>> {
        self.job_tasks
            .get(job)
            .into_iter()
            .flatten()
            .filter_map(|id| self.tasks.get(&**id))
    }

    /// An agent's tasks (including ended ones still kept).
    pub fn tasks_on(&self, agent: &str) -> impl Iterator<Item = &Arc<Task>> {
        self.agent_tasks
            .get(agent)
            .into_iter()
            .flatten()
            .filter_map(|id| self.tasks.get(&**id))
    }

    /// Tasks in `state`.
    pub fn count(&self, state: &str) -> u64 {
        self.task_counts.get(state).copied().unwrap_or(0)
    }

    /// Tasks that have not ended.
    pub fn live_count(&self) -> u64 {
        [STAGING, STARTING, RUNNING]
            .iter()
            .map(|s| self.count(s))
            .sum()
    }

    pub(super) fn recount(&mut self, old: Option<&str>, new: Option<&str>) {
        if let Some(o) = old {
            // No zero entries, so a state rebuilt from an image compares
            // equal to the one that got there step by step.
            if let Some(n) = self.task_counts.get_mut(o) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.task_counts.remove(o);
                }
            }
        }
        if let Some(n) = new {
            // The key exists almost always: no allocation per task.
            match self.task_counts.get_mut(n) {
                Some(c) => *c += 1,
                None => {
                    self.task_counts.insert(n.to_string(), 1);
                }
            }
        }
    }

    /// Adds a task and indexes it by job (loading from disk or an image).
    pub fn insert_task(&mut self, task: Arc<Task>) {
        self.recount(None, Some(&task.state));
        self.summary
            .task_changed(self.tasks.get(&task.id).map(|t| &**t), Some(&task));
        // Look the index keys up before cloning them: a round places many
        // tasks of few jobs, so the keys exist almost always.
        let id: Arc<str> = Arc::from(task.id.as_str());
        index_insert(&mut self.job_tasks, &task.job_id, &id);
        index_insert(&mut self.agent_tasks, &task.agent_id, &id);
        self.tasks.insert(task.id.clone(), task);
    }

    /// Puts a new version of a task already in the state in its place. Its
    /// id, job and agent never change, so the indexes stay as they are,
    /// and the map's key is not copied again: status reports replace
    /// 100,000 tasks in a few seconds on every master.
    pub(super) fn replace_task(&mut self, t: Arc<Task>) {
        match self.tasks.get_mut(&t.id) {
            Some(slot) => {
                self.summary.task_changed(Some(slot), Some(&t));
                *slot = t;
            }
            None => {
                self.summary.task_changed(None, Some(&t));
                self.tasks.insert(t.id.clone(), t);
            }
        }
    }

    fn remove_task(&mut self, id: &str) -> Option<Arc<Task>> {
        let task = self.tasks.remove(id)?;
        self.recount(Some(&task.state), None);
        self.summary.task_changed(Some(&task), None);
        if let Some(set) = self.job_tasks.get_mut(&task.job_id) {
            set.remove(id);
            if set.is_empty() {
                self.job_tasks.remove(&task.job_id);
            }
        }
        if let Some(set) = self.agent_tasks.get_mut(&task.agent_id) {
            set.remove(id);
            if set.is_empty() {
                self.agent_tasks.remove(&task.agent_id);
            }
        }
        Some(task)
    }

    /// Applies a round; takes the entry by value so that its tasks move
    /// into the state instead of being copied (the raft thread applies
    /// thousands per entry).
    pub(super) fn plan_tasks(&mut self, plan: PlanTasks) -> (Outcome, Vec<Change>) {
        let next = self.version + 1;
        let placed: usize = plan.placed.iter().map(|g| g.tasks.len()).sum();
        let mut changes = Vec::with_capacity(plan.place.len() + placed);
        for t in plan.place {
            self.place(t, next, &mut changes);
        }
        for group in plan.placed {
            for t in self.complete(group) {
                self.place(t, next, &mut changes);
            }
        }
        for id in &plan.kill {
            if let Some(c) = self.request_kill(id, next, plan.preempted.get(id)) {
                changes.push(c);
            }
        }
        for (id, at_ms) in &plan.draining {
            if let Some(c) = self.start_drain(id, *at_ms, next) {
                changes.push(c);
            }
        }
        for d in plan.deployments {
            if let Some(c) = self.controller_update(d, next) {
                changes.push(c);
            }
        }
        for (job, why) in &plan.waiting {
            let Some(j) = self.jobs.get(job) else {
                continue;
            };
            if &j.waiting == why {
                continue;
            }
            let mut j = ocean_proto::internal::Job::clone(j);
            j.waiting = why.clone();
            j.updated_version = next;
            let j = Arc::new(j);
            self.jobs.insert(job.clone(), j.clone());
            changes.push(Change::JobPut(j));
        }
        self.finish(changes)
    }

    /// Adds one placed task. A placement for a job deleted meanwhile, or
    /// a duplicate id (a retried round), is dropped: the next round sees
    /// the truth.
    fn place(&mut self, mut t: Task, version: u64, changes: &mut Vec<Change>) {
        if self.tasks.contains_key(&t.id) || !self.jobs.contains_key(&t.job_id) {
            return;
        }
        if t.state != STAGING {
            t.state = STAGING.to_string();
        }
        t.created_version = version;
        t.updated_version = version;
        let t = Arc::new(t);
        self.insert_task(t.clone());
        changes.push(Change::TaskPut(t));
    }

    /// The whole task records of a job's compact placements. Hosts and
    /// addresses come from the agents' records at this index, the same on
    /// every master. A task given fewer ports than the group names gets
    /// those it was given.
    fn complete(&self, group: JobPlacements) -> Vec<Task> {
        let JobPlacements {
            job_id,
            config_hash,
            cpus,
            mem_mib,
            disk_mib,
            port_names,
            created_ms,
            tasks,
        } = group;
        tasks
            .into_iter()
            .map(|p| {
                let (host, address) = self
                    .agents
                    .get(&p.agent_id)
                    .map(|a| (a.hostname.clone(), a.address.clone()))
                    .unwrap_or_default();
                Task {
                    id: task_id_in(&job_id, &p.id_suffix),
                    job_id: job_id.clone(),
                    agent_id: p.agent_id,
                    host,
                    address,
                    state: STAGING.to_string(),
                    ports: port_names
                        .iter()
                        .zip(p.ports)
                        .map(|(name, port)| TaskPort {
                            name: name.clone(),
                            port,
                        })
                        .collect(),
                    config_hash,
                    cpus,
                    mem_mib,
                    disk_mib,
                    created_ms,
                    ..Default::default()
                }
            })
            .collect()
    }

    fn request_kill(
        &mut self,
        id: &str,
        version: u64,
        preempted: Option<&String>,
    ) -> Option<Change> {
        let task = self.tasks.get(id)?;
        if task.kill_requested || is_terminal(&task.state) {
            return None;
        }
        let mut t = Task::clone(task);
        t.kill_requested = true;
        if let Some(why) = preempted {
            t.reason = "preempted".into();
            t.message = why.clone();
        }
        t.updated_version = version;
        let t = Arc::new(t);
        self.replace_task(t.clone());
        Some(Change::TaskPut(t))
    }

    /// Takes a task out of service before its stop (a retried or late
    /// entry for a task already stopping or ended changes nothing).
    fn start_drain(&mut self, id: &str, at_ms: u64, version: u64) -> Option<Change> {
        let task = self.tasks.get(id)?;
        if !is_live(task) {
            return None;
        }
        let mut t = Task::clone(task);
        t.draining_since_ms = at_ms.max(1);
        t.updated_version = version;
        let t = Arc::new(t);
        self.replace_task(t.clone());
        Some(Change::TaskPut(t))
    }

    /// Marks every live task of a job to be stopped (the job was deleted).
    pub(super) fn kill_job_tasks(&mut self, job: &str, version: u64) -> Vec<Change> {
        let ids: Vec<String> = self.tasks_of(job).map(|t| t.id.clone()).collect();
        let mut changes: Vec<Change> = ids
            .iter()
            .filter_map(|id| self.request_kill(id, version, None))
            .collect();
        // Ended tasks of a deleted job have nobody left to look at them.
        for id in ids {
            if self.tasks.get(&id).is_some_and(|t| is_terminal(&t.state)) {
                self.remove_task(&id);
                changes.push(Change::TaskRemoved(id));
            }
        }
        changes
    }

    pub(super) fn task_updates(&mut self, updates: &[TaskUpdate]) -> (Outcome, Vec<Change>) {
        let next = self.version + 1;
        let mut changes = Vec::new();
        let mut ended_jobs = BTreeSet::new();
        let mut failures: Vec<(Arc<Task>, u64)> = Vec::new();
        for u in updates {
            let Some(task) = self.tasks.get(&u.task_id) else {
                continue;
            };
            let (Some(new_rank), Some(old_rank)) = (rank(&u.state), rank(&task.state)) else {
                continue;
            };
            if task.agent_id != u.agent_id || old_rank == 3 || new_rank < old_rank {
                continue;
            }
            let mut t = Task::clone(task);
            t.state = u.state.clone();
            // Any report from its own agent proves the agent reachable.
            t.unreachable_since_ms = 0;
            if u.pid != 0 {
                t.pid = u.pid;
            }
            if new_rank == 2 && t.started_ms == 0 {
                t.started_ms = u.timestamp_ms;
            }
            if new_rank == 3 {
                t.ended_ms = u.timestamp_ms;
                t.exit_code = u.exit_code;
                t.signal = u.signal;
                ended_jobs.insert(t.job_id.clone());
            } else if u.healthy.is_some() {
                // A running task's health is news (DNS and replacements
                // follow it). "No verdict yet" (an agent that restarted and
                // has not checked again) keeps the last verdict, and an
                // ended task keeps its last word on it.
                t.healthy = u.healthy;
                t.health_message = u.health_message.clone();
            }
            let was_healthy = task.state == RUNNING && task.healthy == Some(true);
            if t.state == RUNNING && t.healthy == Some(true) {
                if !was_healthy {
                    t.healthy_since_ms = if u.received_ms > 0 {
                        u.received_ms
                    } else {
                        u.timestamp_ms
                    };
                }
            } else {
                t.healthy_since_ms = 0;
            }
            // Once asked for, a replacement is not called off.
            t.health_failed |= u.health_failed;
            // Why the master stopped a task says more than the agent's
            // "killed": keep it.
            let ours = t.kill_requested && t.reason == "preempted";
            if !ours {
                if !u.reason.is_empty() {
                    t.reason = u.reason.clone();
                }
                t.message = u.message.clone();
            }
            if *task.as_ref() == t {
                continue;
            }
            t.updated_version = next;
            let old = task.state.clone();
            self.recount(Some(&old), Some(&t.state));
            let t = Arc::new(t);
            self.replace_task(t.clone());
            if new_rank == 3 && backoff::counts_as_failure(&t) {
                let at = if u.received_ms > 0 {
                    u.received_ms
                } else {
                    u.timestamp_ms
                };
                failures.push((t.clone(), at));
            }
            changes.push(Change::TaskPut(t));
        }
        for (task, at) in failures {
            changes.extend(self.job_failed(&task, at, next));
        }
        for job in ended_jobs {
            changes.extend(self.forget_ended(&job));
        }
        self.finish(changes)
    }

    /// Drops ended tasks of `job` beyond the newest [`KEEP_ENDED_PER_JOB`],
    /// and all of them when the job no longer exists.
    pub(super) fn forget_ended(&mut self, job: &str) -> Vec<Change> {
        let keep = if self.jobs.contains_key(job) {
            KEEP_ENDED_PER_JOB
        } else {
            0
        };
        let mut ended: Vec<(u64, String)> = self
            .tasks_of(job)
            .filter(|t| is_terminal(&t.state))
            .map(|t| (t.updated_version, t.id.clone()))
            .collect();
        if ended.len() <= keep {
            return Vec::new();
        }
        ended.sort();
        let drop = ended.len() - keep;
        ended
            .into_iter()
            .take(drop)
            .filter_map(|(_, id)| self.remove_task(&id).map(|_| Change::TaskRemoved(id)))
            .collect()
    }

    pub(super) fn scale_job(&mut self, scale: &ScaleJob) -> (Outcome, Vec<Change>) {
        if let Some(conflict) = self.check_spec_version(&scale.id, scale.expected_spec_version) {
            return (conflict, Vec::new());
        }
        let Some(job) = self.jobs.get(&scale.id) else {
            return (Outcome::NotFound, Vec::new());
        };
        // The spec was validated when it was stored; a log entry that no
        // longer parses (an older format) leaves the job as it is.
        let Ok(mut spec) = serde_json::from_slice::<ocean_spec::JobSpec>(&job.spec_json) else {
            return (Outcome::Unchanged, Vec::new());
        };
        if spec.instances == scale.instances {
            return (Outcome::Unchanged, Vec::new());
        }
        spec.instances = scale.instances;
        let spec_json = spec.to_canonical_json();
        let id = scale.id.clone();
        // Scaling is not a new version: a failing job keeps backing off.
        self.put_job(&id, &spec_json, true, 0)
    }

    pub(super) fn finish(&mut self, changes: Vec<Change>) -> (Outcome, Vec<Change>) {
        if changes.is_empty() {
            return (Outcome::Unchanged, changes);
        }
        self.version += 1;
        (Outcome::Updated, changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::state::{
        delete_job_command, plan_tasks_command, put_job_command, scale_job_command,
        task_updates_command,
    };

    const JOB: &str = "cop.c_owt.o_pdl.p_service.s_job.j_cluster.c";

    fn task(id: &str) -> Task {
        Task {
            id: id.into(),
            job_id: JOB.into(),
            agent_id: "a1".into(),
            ..Default::default()
        }
    }

    fn update(id: &str, state: &str) -> TaskUpdate {
        TaskUpdate {
            task_id: id.into(),
            agent_id: "a1".into(),
            state: state.into(),
            timestamp_ms: 7,
            ..Default::default()
        }
    }

    fn with_job() -> ClusterState {
        let mut s = ClusterState::default();
        let spec = ocean_spec::JobSpec::new(JOB, "sleep 1");
        s.apply(&put_job_command(JOB.into(), spec.to_canonical_json()));
        s
    }

    #[test]
    fn a_round_is_one_version_and_states_only_move_forward() {
        let mut s = with_job();
        let a = s.apply(&plan_tasks_command(
            vec![task("t1"), task("t2")],
            vec![],
            Default::default(),
        ));
        assert_eq!((a.version, a.changes.len()), (2, 2));
        assert_eq!(s.tasks["t1"].state, STAGING);
        // A replayed round changes nothing.
        let a = s.apply(&plan_tasks_command(
            vec![task("t1")],
            vec![],
            Default::default(),
        ));
        assert!(a.changes.is_empty());
        s.apply(&task_updates_command(vec![update("t1", RUNNING)]));
        assert_eq!(s.tasks["t1"].started_ms, 7);
        // Backwards and from another agent: ignored.
        let mut other = update("t1", FAILED);
        other.agent_id = "a2".into();
        let a = s.apply(&task_updates_command(vec![update("t1", STARTING), other]));
        assert!(a.changes.is_empty());
        assert_eq!(s.tasks["t1"].state, RUNNING);
        let mut end = update("t1", FAILED);
        end.exit_code = Some(3);
        s.apply(&task_updates_command(vec![end]));
        assert_eq!(s.tasks["t1"].exit_code, Some(3));
        // Terminal is final.
        s.apply(&task_updates_command(vec![update("t1", RUNNING)]));
        assert_eq!(s.tasks["t1"].state, FAILED);
    }

    #[test]
    fn compact_placements_become_whole_tasks_with_their_agents_host() {
        let with_agent = || {
            let mut s = with_job();
            s.apply(&crate::kernel::state::put_agent_command(
                ocean_proto::internal::Agent {
                    id: "a1".into(),
                    hostname: "host1".into(),
                    address: "10.0.0.1".into(),
                    ..Default::default()
                },
            ));
            s
        };
        let mut s = with_agent();
        let placement =
            |suffix: &str, agent: &str, ports: Vec<u32>| ocean_proto::internal::Placement {
                id_suffix: suffix.into(),
                agent_id: agent.into(),
                ports,
            };
        let group = |job: &str, tasks| JobPlacements {
            job_id: job.into(),
            config_hash: 99,
            cpus: 0.5,
            mem_mib: 64,
            disk_mib: 10,
            port_names: vec!["http".into(), "admin".into()],
            created_ms: 1234,
            tasks,
        };
        let plan = PlanTasks {
            // The older form still applies beside the compact one.
            place: vec![task(&format!("{JOB}.old"))],
            placed: vec![
                group(
                    JOB,
                    vec![
                        placement("0001", "a1", vec![31000, 31001]),
                        // An agent unknown at this index: no host.
                        placement("0002", "gone", vec![31002, 31003]),
                        // Placed twice in one entry: the first wins.
                        placement("0001", "a2", vec![31004, 31005]),
                    ],
                ),
                // A job deleted meanwhile: dropped.
                group("no.such.job", vec![placement("0001", "a1", vec![1, 2])]),
            ],
            ..Default::default()
        };
        let before = s.version;
        let a = s.apply(&crate::kernel::state::plan_command(plan.clone()));
        assert_eq!(a.changes.len(), 3);
        let t = &s.tasks[&format!("{JOB}.0001")];
        assert_eq!(
            (
                t.job_id.as_str(),
                t.agent_id.as_str(),
                t.host.as_str(),
                t.address.as_str()
            ),
            (JOB, "a1", "host1", "10.0.0.1")
        );
        assert_eq!((t.state.as_str(), t.created_version), (STAGING, before + 1));
        assert_eq!(
            (t.config_hash, t.cpus, t.mem_mib, t.disk_mib),
            (99, 0.5, 64, 10)
        );
        assert_eq!(t.created_ms, 1234);
        let ports: Vec<(&str, u32)> = t.ports.iter().map(|p| (p.name.as_str(), p.port)).collect();
        assert_eq!(ports, vec![("http", 31000), ("admin", 31001)]);
        assert_eq!(s.tasks[&format!("{JOB}.0002")].host, "");
        assert!(s.tasks.contains_key(&format!("{JOB}.old")));
        assert_eq!(s.job_tasks[JOB].len(), 3);
        // Every master completes the records alike, owned or not.
        let mut b = with_agent();
        b.apply_owned(crate::kernel::state::plan_command(plan));
        assert_eq!(s, b);
    }

    #[test]
    fn an_owned_apply_reaches_the_same_state() {
        let mut a = with_job();
        let mut b = with_job();
        let log = vec![
            plan_tasks_command(
                vec![task("t1"), task("t2"), task("t1")],
                vec![],
                Default::default(),
            ),
            task_updates_command(vec![update("t1", RUNNING)]),
            plan_tasks_command(
                vec![task("t3")],
                vec!["t2".into()],
                [(JOB.to_string(), "1 task(s) waiting".to_string())].into(),
            ),
        ];
        for cmd in log {
            let x = a.apply(&cmd);
            let y = b.apply_owned(cmd);
            assert_eq!(x, y);
        }
        assert_eq!(a, b);
        assert_eq!((b.count(STAGING), b.count(RUNNING)), (2, 1));
        assert_eq!(b.job_tasks[JOB].len(), 3);
        assert_eq!(b.agent_tasks["a1"].len(), 3);
    }

    #[test]
    fn deleting_a_job_asks_its_tasks_to_stop_and_forgets_them_once_ended() {
        let mut s = with_job();
        s.apply(&plan_tasks_command(
            vec![task("t1")],
            vec![],
            Default::default(),
        ));
        s.apply(&delete_job_command(JOB.into()));
        assert!(s.tasks["t1"].kill_requested);
        let a = s.apply(&task_updates_command(vec![update("t1", KILLED)]));
        assert!(a.changes.contains(&Change::TaskRemoved("t1".into())));
        assert!(s.tasks.is_empty() && s.job_tasks.is_empty() && s.agent_tasks.is_empty());
        // Placements for a job that is gone are dropped.
        let a = s.apply(&plan_tasks_command(
            vec![task("t2")],
            vec![],
            Default::default(),
        ));
        assert!(a.changes.is_empty());
    }

    #[test]
    fn ended_tasks_are_kept_up_to_a_limit() {
        let mut s = with_job();
        let n = KEEP_ENDED_PER_JOB + 3;
        let ids: Vec<String> = (0..n).map(|i| format!("t{i:02}")).collect();
        s.apply(&plan_tasks_command(
            ids.iter().map(|i| task(i)).collect(),
            vec![],
            Default::default(),
        ));
        for id in &ids {
            s.apply(&task_updates_command(vec![update(id, FINISHED)]));
        }
        assert_eq!(s.tasks.len(), KEEP_ENDED_PER_JOB);
        assert!(!s.tasks.contains_key("t00"));
        assert_eq!(s.count(FINISHED), KEEP_ENDED_PER_JOB as u64);
        assert_eq!((s.count(STAGING), s.live_count()), (0, 0));
        let back = ClusterState::from_image(&s.to_image()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn waiting_explanations_are_recorded_on_the_job_only_when_they_change() {
        let mut s = with_job();
        let why: std::collections::HashMap<String, String> =
            [(JOB.to_string(), "0 of 3 agents fit".to_string())].into();
        let a = s.apply(&plan_tasks_command(vec![], vec![], why.clone()));
        assert_eq!(a.changes.len(), 1);
        assert_eq!(s.jobs[JOB].waiting, "0 of 3 agents fit");
        assert!(s
            .apply(&plan_tasks_command(vec![], vec![], why))
            .changes
            .is_empty());
        let clear = [(JOB.to_string(), String::new())].into();
        s.apply(&plan_tasks_command(vec![], vec![], clear));
        assert!(s.jobs[JOB].waiting.is_empty());
    }

    #[test]
    fn scaling_changes_instances_only() {
        let mut s = with_job();
        let a = s.apply(&scale_job_command(JOB.into(), 5));
        assert_eq!(a.outcome, Outcome::Updated);
        let spec: ocean_spec::JobSpec = serde_json::from_slice(&s.jobs[JOB].spec_json).unwrap();
        assert_eq!((spec.instances, spec.cmd.as_deref()), (5, Some("sleep 1")));
        assert_eq!(
            s.apply(&scale_job_command(JOB.into(), 5)).outcome,
            Outcome::Unchanged
        );
        assert_eq!(
            s.apply(&scale_job_command("nope".into(), 5)).outcome,
            Outcome::NotFound
        );
    }

    #[test]
    fn health_changes_are_committed_and_repeats_are_not() {
        let mut s = with_job();
        s.apply(&plan_tasks_command(
            vec![task("t1")],
            vec![],
            Default::default(),
        ));
        s.apply(&task_updates_command(vec![update("t1", RUNNING)]));
        let mut sick = update("t1", RUNNING);
        sick.healthy = Some(false);
        sick.health_message = "http GET /: status 500".into();
        let a = s.apply(&task_updates_command(vec![sick.clone()]));
        assert_eq!(a.changes.len(), 1);
        assert_eq!(s.tasks["t1"].healthy, Some(false));
        assert!(s
            .apply(&task_updates_command(vec![sick.clone()]))
            .changes
            .is_empty());
        sick.health_failed = true;
        s.apply(&task_updates_command(vec![sick]));
        // A later report without the mark does not call the replacement off.
        let mut well = update("t1", RUNNING);
        well.healthy = Some(true);
        s.apply(&task_updates_command(vec![well]));
        let t = &s.tasks["t1"];
        assert_eq!((t.healthy, t.health_failed), (Some(true), true));
        assert!(t.health_message.is_empty());
        // No verdict (a restarted agent) keeps the last one, at no cost.
        let a = s.apply(&task_updates_command(vec![update("t1", RUNNING)]));
        assert!(a.changes.is_empty());
        assert_eq!(s.tasks["t1"].healthy, Some(true));
    }

    #[test]
    fn failures_back_the_job_off_until_reset_or_a_new_spec() {
        let mut s = with_job();
        s.apply(&plan_tasks_command(
            vec![task("t1"), task("t2"), task("t3")],
            vec![],
            Default::default(),
        ));
        let mut end = update("t1", FAILED);
        end.received_ms = 10_000;
        let a = s.apply(&task_updates_command(vec![end]));
        assert!(a
            .changes
            .iter()
            .any(|c| matches!(c, Change::JobPut(j) if j.backoff.is_some())));
        let b = s.jobs[JOB].backoff.clone().unwrap_or_default();
        assert_eq!((b.failures, b.next_launch_ms), (1, 11_000));
        // Killed on request: not a failure.
        s.apply(&plan_tasks_command(
            vec![],
            vec!["t2".into()],
            Default::default(),
        ));
        s.apply(&task_updates_command(vec![update("t2", KILLED)]));
        assert_eq!(s.jobs[JOB].backoff.as_ref().map(|b| b.failures), Some(1));
        // Scaling keeps the back-off; reset clears it.
        s.apply(&scale_job_command(JOB.into(), 4));
        assert!(s.jobs[JOB].backoff.is_some());
        let a = s.apply(&crate::kernel::state::reset_backoff_command(JOB.into()));
        assert_eq!(a.outcome, Outcome::Updated);
        assert!(s.jobs[JOB].backoff.is_none());
        let a = s.apply(&crate::kernel::state::reset_backoff_command(JOB.into()));
        assert_eq!(a.outcome, Outcome::Unchanged);
        // A new spec starts afresh.
        s.apply(&task_updates_command(vec![update("t3", FAILED)]));
        assert!(s.jobs[JOB].backoff.is_some());
        let spec = ocean_spec::JobSpec::new(JOB, "sleep 2");
        s.apply(&put_job_command(JOB.into(), spec.to_canonical_json()));
        assert!(s.jobs[JOB].backoff.is_none());
    }
}
