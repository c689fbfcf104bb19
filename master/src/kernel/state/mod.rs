//! The replicated state machine: [`ClusterState`] and the deterministic
//! [`ClusterState::apply`] of committed [`Command`]s.
//!
//! Every master applies the same log in the same order, so every master
//! reaches the same state and the same `version`. The version counts the
//! commands that changed something; watchers resume from it on any master.

mod agents;
pub mod backoff;
pub mod deployments;
pub mod format;
pub mod jobs;
pub mod kv;
mod restore;
pub mod summary;
mod tasks;
pub mod tree;
pub mod usage;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ocean_proto::internal::{
    command, Agent, Command, Job, KvEntry, Member, PlanTasks, StateImage, Task,
};
use prost::Message;

pub use agents::{
    agent_status, agent_unreachable_command, moves_tasks_off, set_agent_status_command,
    AGENT_STATUSES,
};
pub use tasks::{
    id_suffix, is_live, is_terminal, job_of, rank, task_id_in, KEEP_ENDED_PER_JOB, STATES,
};
pub use tasks::{FAILED, FINISHED, KILLED, LOST, RUNNING, STAGING, STARTING};

use crate::error::{corrupt, Result};

/// One change to the state, as the change feed publishes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A job was created or its spec replaced (shared with the state, so
    /// the feed holds no copy of its own).
    JobPut(Arc<Job>),
    /// A job was deleted.
    JobDeleted(String),
    /// An agent registered or its facts changed.
    AgentPut(Arc<Agent>),
    /// A task was placed or changed state.
    TaskPut(Arc<Task>),
    /// An ended task was forgotten.
    TaskRemoved(String),
    /// A framework's key was written.
    KvPut(Arc<KvEntry>),
    /// A framework's key was deleted (the entry as it was).
    KvDeleted(Arc<KvEntry>),
}

/// What applying one command did, reported to whoever proposed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A compare-and-set found another version than the writer expected
    /// (0: the object does not exist); nothing changed.
    Conflict { expected: u64, actual: u64 },
    /// A lease is held by someone else until `expires_ms`; nothing changed.
    Held { holder: String, expires_ms: u64 },
    /// A new job was stored.
    Created,
    /// An existing job's spec was replaced.
    Updated,
    /// The spec was identical; nothing changed.
    Unchanged,
    /// The job was deleted.
    Deleted,
    /// The job to delete did not exist.
    NotFound,
    /// Nothing to do (no-op command).
    Noop,
}

impl Outcome {
    /// The name the APIs use.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Updated => "updated",
            Outcome::Unchanged => "unchanged",
            Outcome::Deleted => "deleted",
            Outcome::NotFound => "not_found",
            Outcome::Noop => "noop",
            Outcome::Conflict { .. } => "conflict",
            Outcome::Held { .. } => "held",
        }
    }

    /// The outcome with its details, as a forwarded write returns it.
    pub fn to_wire(&self) -> String {
        match self {
            Outcome::Conflict { expected, actual } => format!("conflict:{expected}:{actual}"),
            Outcome::Held { holder, expires_ms } => format!("held:{expires_ms}:{holder}"),
            other => other.as_str().to_string(),
        }
    }

    /// Parses [`Outcome::to_wire`].
    pub fn from_wire(wire: &str) -> Self {
        let mut parts = wire.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("conflict"), Some(e), Some(a)) => Outcome::Conflict {
                expected: e.parse().unwrap_or(0),
                actual: a.parse().unwrap_or(0),
            },
            (Some("held"), Some(at), Some(holder)) => Outcome::Held {
                holder: holder.to_string(),
                expires_ms: at.parse().unwrap_or(0),
            },
            _ => Self::from_name(wire),
        }
    }

    /// Parses [`Outcome::as_str`] of the outcomes without details;
    /// anything else is `Noop`.
    pub fn from_name(name: &str) -> Self {
        match name {
            "created" => Outcome::Created,
            "updated" => Outcome::Updated,
            "unchanged" => Outcome::Unchanged,
            "deleted" => Outcome::Deleted,
            "not_found" => Outcome::NotFound,
            _ => Outcome::Noop,
        }
    }
}

/// The in-memory cluster state every master holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterState {
    /// Number of state-changing commands applied so far.
    pub version: u64,
    /// Raft index of the last applied entry.
    pub applied_index: u64,
    /// Jobs by service-tree id.
    pub jobs: BTreeMap<String, Arc<Job>>,
    /// Masters by raft id, with their addresses.
    pub members: BTreeMap<u64, Member>,
    /// Agents by id.
    pub agents: BTreeMap<String, Arc<Agent>>,
    /// Tasks by id (live ones and the latest ended ones of each job).
    pub tasks: BTreeMap<String, Arc<Task>>,
    /// Task ids by job id: an index over `tasks`. Both indexes share one
    /// copy of each id.
    pub job_tasks: BTreeMap<String, BTreeSet<Arc<str>>>,
    /// Task ids by agent id: an index over `tasks`.
    pub agent_tasks: BTreeMap<String, BTreeSet<Arc<str>>>,
    /// Tasks per state: a count over `tasks`.
    pub task_counts: BTreeMap<String, u64>,
    /// Frameworks' keys by `<namespace>/<key>` (see [`kv`]).
    pub kv: BTreeMap<String, Arc<KvEntry>>,
    /// Counts over jobs, tasks and agents, kept as they change.
    pub summary: summary::Summary,
}

/// The effect of one applied command.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// What happened, for the proposer.
    pub outcome: Outcome,
    /// The state version after the command.
    pub version: u64,
    /// The changes, all stamped with `version` (one command may place or
    /// update many tasks).
    pub changes: Vec<Change>,
}

impl ClusterState {
    /// Applies one committed command. Must stay deterministic: no clocks,
    /// no randomness, no I/O.
    pub fn apply(&mut self, cmd: &Command) -> Applied {
        let (outcome, changes) = match &cmd.kind {
            Some(command::Kind::PutJob(put)) => self.put_job_cmd(put),
            Some(command::Kind::DeleteJob(del)) => self.delete_job(del),
            Some(command::Kind::SetMember(m)) => {
                // Membership addresses are not versioned state: watchers of
                // jobs need not see them.
                self.set_member(m.clone());
                (Outcome::Noop, Vec::new())
            }
            Some(command::Kind::PutAgent(agent)) => self.put_agent(agent),
            Some(command::Kind::PlanTasks(plan)) => self.plan_tasks(plan.clone()),
            Some(command::Kind::TaskUpdates(u)) => self.task_updates(&u.updates),
            Some(command::Kind::ScaleJob(scale)) => self.scale_job(scale),
            Some(command::Kind::ResetBackoff(r)) => self.reset_backoff(&r.id),
            Some(command::Kind::SetAgentStatus(s)) => self.set_agent_status(s),
            Some(command::Kind::AgentUnreachable(u)) => self.agent_unreachable(u),
            Some(command::Kind::PutKv(put)) => self.put_kv(put),
            Some(command::Kind::DeleteKv(del)) => self.delete_kv(del),
            Some(command::Kind::Lease(lease)) => self.lease(lease),
            Some(command::Kind::DeploymentAction(a)) => self.deployment_action(a),
            Some(command::Kind::RecordUsage(r)) => self.record_usage(r),
            // The summary is recounted over the restored state, not observed.
            Some(command::Kind::RestoreState(r)) => return self.restore(r),
            Some(command::Kind::Noop(_)) | None => (Outcome::Noop, Vec::new()),
        };
        self.summary.observe(&changes);
        Applied {
            outcome,
            version: self.version,
            changes,
        }
    }

    /// [`ClusterState::apply`] of a command this master owns: a round's
    /// placements move into the state rather than being copied. Same
    /// result as `apply`.
    pub fn apply_owned(&mut self, cmd: Command) -> Applied {
        match cmd.kind {
            Some(command::Kind::PlanTasks(plan)) => {
                let (outcome, changes) = self.plan_tasks(plan);
                self.summary.observe(&changes);
                Applied {
                    outcome,
                    version: self.version,
                    changes,
                }
            }
            kind => self.apply(&Command {
                kind,
                min_version: cmd.min_version,
            }),
        }
    }

    fn put_agent(&mut self, agent: &Agent) -> (Outcome, Vec<Change>) {
        let mut agent = agent.clone();
        let outcome = match self.agents.get(&agent.id) {
            Some(known) => {
                agent.registered_version = known.registered_version;
                // The operator's status outlives the agent's registrations.
                agent.status = known.status.clone();
                agent.status_message = known.status_message.clone();
                agent.status_version = known.status_version;
                if **known == agent {
                    return (Outcome::Unchanged, Vec::new());
                }
                Outcome::Updated
            }
            None => {
                agent.registered_version = self.version + 1;
                Outcome::Created
            }
        };
        self.version += 1;
        let agent = Arc::new(agent);
        self.agents.insert(agent.id.clone(), agent.clone());
        (outcome, vec![Change::AgentPut(agent)])
    }

    /// Records a member's addresses (from a conf change's context).
    pub fn set_member(&mut self, member: Member) {
        self.members.insert(member.id, member);
    }

    /// Forgets a removed member.
    pub fn remove_member(&mut self, id: u64) {
        self.members.remove(&id);
    }

    /// Encodes the whole state as a snapshot image.
    pub fn to_image(&self) -> Vec<u8> {
        StateImage {
            version: self.version,
            applied_index: self.applied_index,
            jobs: self.jobs.values().map(|j| Job::clone(j)).collect(),
            members: self.members.values().cloned().collect(),
            agents: self.agents.values().map(|a| Agent::clone(a)).collect(),
            tasks: self.tasks.values().map(|t| Task::clone(t)).collect(),
            kv: self.kv.values().map(|e| KvEntry::clone(e)).collect(),
            format: format::LOG_FORMAT,
        }
        .encode_to_vec()
    }

    /// Decodes a snapshot image.
    pub fn from_image(bytes: &[u8]) -> Result<Self> {
        let image = StateImage::decode(bytes).map_err(|e| corrupt("snapshot image", e))?;
        if let Some(why) = format::image_problem(&image) {
            return Err(corrupt("snapshot image", why));
        }
        let mut state = ClusterState {
            version: image.version,
            applied_index: image.applied_index,
            jobs: image
                .jobs
                .into_iter()
                .map(|j| (j.id.clone(), Arc::new(j)))
                .collect(),
            members: image.members.into_iter().map(|m| (m.id, m)).collect(),
            agents: image
                .agents
                .into_iter()
                .map(|a| (a.id.clone(), Arc::new(a)))
                .collect(),
            tasks: BTreeMap::new(),
            job_tasks: BTreeMap::new(),
            agent_tasks: BTreeMap::new(),
            task_counts: BTreeMap::new(),
            summary: summary::Summary::default(),
            kv: image
                .kv
                .into_iter()
                .map(|e| (kv::kv_map_key(&e.namespace, &e.key), Arc::new(e)))
                .collect(),
        };
        for t in image.tasks {
            state.insert_task(Arc::new(t));
        }
        state.summary = summary::Summary::recount(&state);
        Ok(state)
    }
}

/// Builds a put-job command.
pub fn put_job_command(id: String, spec_json: Vec<u8>) -> Command {
    Command {
        min_version: 0,
        kind: Some(command::Kind::PutJob(ocean_proto::internal::PutJob {
            id,
            spec_json,
            expected_spec_version: None,
            rollback_to: 0,
        })),
    }
}

/// Builds a deployment-action command.
pub fn deployment_action_command(action: ocean_proto::internal::DeploymentAction) -> Command {
    Command {
        min_version: 0,
        kind: Some(command::Kind::DeploymentAction(action)),
    }
}

/// Builds a put-agent command.
pub fn put_agent_command(agent: Agent) -> Command {
    Command {
        min_version: 0,
        kind: Some(command::Kind::PutAgent(agent)),
    }
}

/// Builds a scheduling-round command.
pub fn plan_command(plan: PlanTasks) -> Command {
    Command {
        min_version: 0,
        kind: Some(command::Kind::PlanTasks(plan)),
    }
}

/// Builds a scheduling-round command without preemptions.
pub fn plan_tasks_command(
    place: Vec<Task>,
    kill: Vec<String>,
    waiting: std::collections::HashMap<String, String>,
) -> Command {
    plan_command(PlanTasks {
        place,
        kill,
        waiting,
        ..Default::default()
    })
}

/// Builds a batch of task status updates.
pub fn task_updates_command(updates: Vec<ocean_proto::internal::TaskUpdate>) -> Command {
    Command {
        min_version: 0,
        kind: Some(command::Kind::TaskUpdates(
            ocean_proto::internal::TaskUpdates { updates },
        )),
    }
}

/// Builds a scale command.
pub fn scale_job_command(id: String, instances: u32) -> Command {
    Command {
        min_version: 0,
        kind: Some(command::Kind::ScaleJob(ocean_proto::internal::ScaleJob {
            id,
            instances,
            expected_spec_version: None,
        })),
    }
}

/// Builds a reset-backoff command.
pub fn reset_backoff_command(id: String) -> Command {
    Command {
        min_version: 0,
        kind: Some(command::Kind::ResetBackoff(
            ocean_proto::internal::ResetBackoff { id },
        )),
    }
}

/// Builds a delete-job command.
pub fn delete_job_command(id: String) -> Command {
    Command {
        min_version: 0,
        kind: Some(command::Kind::DeleteJob(ocean_proto::internal::DeleteJob {
            id,
            expected_spec_version: None,
        })),
    }
}

/// Builds a framework key write (`expected`: compare-and-set revision).
pub fn put_kv_command(
    namespace: &str,
    key: &str,
    value: Vec<u8>,
    expected: Option<u64>,
) -> Command {
    Command {
        min_version: 0,
        kind: Some(command::Kind::PutKv(ocean_proto::internal::PutKv {
            namespace: namespace.into(),
            key: key.into(),
            value,
            expected_revision: expected,
        })),
    }
}

/// Builds a framework key deletion.
pub fn delete_kv_command(namespace: &str, key: &str, expected: Option<u64>) -> Command {
    Command {
        min_version: 0,
        kind: Some(command::Kind::DeleteKv(ocean_proto::internal::DeleteKv {
            namespace: namespace.into(),
            key: key.into(),
            expected_revision: expected,
        })),
    }
}

/// Builds a lease command (`now_ms` is restamped by the leader).
pub fn lease_command(
    namespace: &str,
    name: &str,
    holder: &str,
    ttl_ms: u64,
    now_ms: u64,
    release: bool,
) -> Command {
    Command {
        min_version: 0,
        kind: Some(command::Kind::Lease(ocean_proto::internal::Lease {
            namespace: namespace.into(),
            name: name.into(),
            holder: holder.into(),
            ttl_ms,
            now_ms,
            release,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(id: &str, spec: &str) -> Command {
        put_job_command(id.into(), spec.as_bytes().to_vec())
    }

    #[test]
    fn put_update_delete_advance_version() {
        let mut s = ClusterState::default();
        let a = s.apply(&put("a", "{}"));
        assert_eq!((a.outcome, a.version), (Outcome::Created, 1));
        let a = s.apply(&put("a", "{}"));
        assert_eq!((a.outcome, a.version), (Outcome::Unchanged, 1));
        assert!(a.changes.is_empty());
        let a = s.apply(&put("a", "{\"x\":1}"));
        assert_eq!((a.outcome, a.version), (Outcome::Updated, 2));
        assert_eq!(s.jobs["a"].created_version, 1);
        assert_eq!(s.jobs["a"].updated_version, 2);
        let a = s.apply(&delete_job_command("a".into()));
        assert_eq!(a.outcome, Outcome::Deleted);
        assert_eq!(a.changes, vec![Change::JobDeleted("a".into())]);
        let a = s.apply(&delete_job_command("a".into()));
        assert_eq!((a.outcome, a.version), (Outcome::NotFound, 3));
    }

    #[test]
    fn same_log_same_state() {
        let log: Vec<Command> = (0..200)
            .map(|i| match i % 3 {
                0 | 1 => put(&format!("j{}", i % 17), &format!("{{\"n\":{i}}}")),
                _ => delete_job_command(format!("j{}", i % 13)),
            })
            .collect();
        let mut a = ClusterState::default();
        let mut b = ClusterState::default();
        for c in &log {
            a.apply(c);
        }
        for c in &log {
            b.apply(c);
        }
        assert_eq!(a, b);
        assert!(a.version > 0);
    }

    #[test]
    fn image_round_trip() {
        let mut s = ClusterState::default();
        s.apply(&put("a", "{}"));
        s.apply(&put("b", "{}"));
        s.set_member(Member {
            id: 1,
            grpc_addr: "127.0.0.1:1".into(),
            http_addr: "127.0.0.1:2".into(),
        });
        s.applied_index = 42;
        let back = ClusterState::from_image(&s.to_image()).unwrap();
        assert_eq!(back, s);
        assert!(ClusterState::from_image(&[0xff, 0xff, 0xff]).is_err());
    }
}
