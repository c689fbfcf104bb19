//! The typed shapes of tasks, agents, members and events in REST answers
//! and the event stream. The field names, and which fields are left out
//! when empty, are the API's contract (`docs/api.md`): these structs are
//! where it is written down, once, for every route that shows one.

use std::collections::BTreeMap;

use ocean_proto::internal::{Agent, AgentExecutor, Job, KvEntry, Task, TaskPort};
use serde::Serialize;

use super::tasks::AgentLiveness;
use super::types::{JobView, KvView};
use crate::kernel::state::{agent_status, is_terminal};

/// A named port of a task.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PortView {
    pub name: String,
    pub port: u32,
}

impl From<&TaskPort> for PortView {
    fn from(p: &TaskPort) -> Self {
        PortView {
            name: p.name.clone(),
            port: p.port,
        }
    }
}

/// What a task or an agent holds: cores, MiB of memory, MiB of disk.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ResourcesView {
    pub cpus: f64,
    pub mem: u64,
    pub disk: u64,
}

/// A task as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TaskView {
    pub id: String,
    pub job: String,
    pub agent: String,
    pub host: String,
    pub address: String,
    pub state: String,
    pub ports: Vec<PortView>,
    pub resources: ResourcesView,
    pub kill_requested: bool,
    pub created_ms: u64,
    /// `null` until it has started.
    pub started_ms: Option<u64>,
    /// `null` while it has no process.
    pub pid: Option<i32>,
    pub created_version: u64,
    pub updated_version: u64,
    /// `null` when the job has no health check (or none has answered).
    pub healthy: Option<bool>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub health_message: String,
    /// Shown only when set: the task is being replaced for failing checks.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub health_failed: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreachable_since_ms: Option<u64>,
    /// Set while the task is out of service before its stop (its job's
    /// `shutdown_delay_seconds`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub draining_since_ms: Option<u64>,
    /// The three below only for ended tasks (`exit_code` and `signal`
    /// then `null` when unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<Option<i32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<Option<i32>>,
    /// The newest usage sample its agent pushed (answered by the leader,
    /// which holds them; absent elsewhere and before the first sample).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub usage: Option<Box<crate::usage::report::TaskUsageView>>,
}

impl From<&Task> for TaskView {
    fn from(t: &Task) -> Self {
        let ended = is_terminal(&t.state);
        let nonzero = |v: u64| (v != 0).then_some(v);
        TaskView {
            id: t.id.clone(),
            job: t.job_id.clone(),
            agent: t.agent_id.clone(),
            host: t.host.clone(),
            address: t.address.clone(),
            state: t.state.clone(),
            ports: t.ports.iter().map(PortView::from).collect(),
            resources: ResourcesView {
                cpus: t.cpus,
                mem: t.mem_mib,
                disk: t.disk_mib,
            },
            kill_requested: t.kill_requested,
            created_ms: t.created_ms,
            started_ms: nonzero(t.started_ms),
            pid: (t.pid != 0).then_some(t.pid),
            created_version: t.created_version,
            updated_version: t.updated_version,
            healthy: t.healthy,
            health_message: t.health_message.clone(),
            health_failed: t.health_failed,
            reason: t.reason.clone(),
            message: t.message.clone(),
            unreachable_since_ms: nonzero(t.unreachable_since_ms),
            draining_since_ms: nonzero(t.draining_since_ms),
            ended_ms: ended.then_some(t.ended_ms),
            exit_code: ended.then_some(t.exit_code),
            signal: ended.then_some(t.signal),
            usage: None,
        }
    }
}

/// `GET /v1/tasks`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TaskList {
    pub version: u64,
    pub tasks: Vec<TaskView>,
}

/// An executor an agent offers.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ExecutorView {
    pub name: String,
    pub available: bool,
    pub reason: String,
    pub version: String,
    pub features: Vec<String>,
}

impl From<&AgentExecutor> for ExecutorView {
    fn from(e: &AgentExecutor) -> Self {
        ExecutorView {
            name: e.name.clone(),
            available: e.available,
            reason: e.reason.clone(),
            version: e.version.clone(),
            features: e.features.clone(),
        }
    }
}

/// An agent as the API shows it: the replicated facts.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AgentView {
    pub id: String,
    pub hostname: String,
    pub address: String,
    pub http_addr: String,
    /// Sorted by name, so answers are byte-for-byte repeatable.
    pub attributes: BTreeMap<String, String>,
    pub resources: ResourcesView,
    /// `low-high`.
    pub ports: String,
    pub registered_version: u64,
    /// online, draining, offline or problem.
    pub status: String,
    pub status_message: String,
    pub executors: Vec<ExecutorView>,
    /// Its tags as tag queries see them (`cop.x_owt.y_idc.c3_status.online`;
    /// `status` is the status above).
    pub tags: String,
}

impl From<&Agent> for AgentView {
    fn from(a: &Agent) -> Self {
        AgentView {
            id: a.id.clone(),
            hostname: a.hostname.clone(),
            address: a.address.clone(),
            http_addr: a.http_addr.clone(),
            attributes: a
                .attributes
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            resources: ResourcesView {
                cpus: a.cpus,
                mem: a.mem_mib,
                disk: a.disk_mib,
            },
            ports: format!("{}-{}", a.port_low, a.port_high),
            registered_version: a.registered_version,
            status: agent_status(a).to_string(),
            status_message: a.status_message.clone(),
            executors: a.executors.iter().map(ExecutorView::from).collect(),
            tags: crate::kernel::state::tree::agent_tags_string(a),
        }
    }
}

/// An agent with its liveness, which only the leader knows (each field
/// `null` when asked of a follower).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AgentDetail {
    #[serde(flatten)]
    pub agent: AgentView,
    pub connected: Option<bool>,
    pub last_heartbeat_ms: Option<u64>,
    pub unreachable: Option<bool>,
    /// The sums of its tasks' newest usage samples (from the leader).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub usage: Option<crate::usage::report::AgentUsageView>,
    /// The agent's latest host checks (`null` on a follower or before its
    /// first report).
    #[schema(value_type = Option<Object>)]
    pub host_checks: Option<crate::host_checks::HostChecksView>,
}

impl AgentDetail {
    pub fn new(a: &Agent, l: Option<AgentLiveness>) -> Self {
        AgentDetail {
            agent: AgentView::from(a),
            connected: l.map(|l| l.connected),
            last_heartbeat_ms: l.and_then(|l| l.last_heartbeat_ms),
            unreachable: l.map(|l| l.unreachable),
            usage: None,
            host_checks: None,
        }
    }
}

/// `GET /v1/agents`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AgentList {
    pub version: u64,
    pub agents: Vec<AgentDetail>,
}

/// `PUT /v1/agents/{id}/status` (and drain): what was set.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AgentStatusChange {
    pub id: String,
    pub status: String,
    pub version: u64,
    pub outcome: String,
}

/// Adding or removing a master.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MemberChange {
    pub id: u64,
    /// The log index of the configuration change.
    pub index: u64,
    /// `added` or `removed`.
    pub outcome: &'static str,
}

/// The first event of a watch from too far back (or from 0): the whole
/// state, which replaces what the consumer had.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SnapshotEvent {
    pub version: u64,
    pub jobs: Vec<JobView>,
    pub agents: Vec<AgentView>,
    pub tasks: Vec<TaskView>,
    pub kv: Vec<KvView>,
}

/// The data of one change event of the stream; its kind is the SSE event
/// name (`job_put`, `job_deleted`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum ChangeEvent {
    Job {
        version: u64,
        job: JobView,
    },
    Agent {
        version: u64,
        agent: AgentView,
    },
    Task {
        version: u64,
        task: TaskView,
    },
    Kv {
        version: u64,
        kv: KvView,
    },
    /// A deleted job or a forgotten task.
    Removed {
        version: u64,
        id: String,
    },
    KvDeleted {
        version: u64,
        namespace: String,
        key: String,
    },
}

impl ChangeEvent {
    pub fn job(version: u64, j: &Job) -> Self {
        ChangeEvent::Job {
            version,
            job: JobView::from(j),
        }
    }

    pub fn kv_deleted(version: u64, e: &KvEntry) -> Self {
        ChangeEvent::KvDeleted {
            version,
            namespace: e.namespace.clone(),
            key: e.key.clone(),
        }
    }
}

/// `GET /v1/members`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MemberList {
    pub members: Vec<super::members::MemberView>,
}
