//! The immutable input of a planning round: agents, running tasks, pending
//! task requests grouped by job, fair-share weights and quotas.
//!
//! The master builds a [`Snapshot`] from its replicated state and hands it to
//! [`crate::plan`]. Nothing here is validated up front: odd input (unknown
//! agents, duplicate ids, capacity below usage) is tolerated and handled
//! conservatively, never with a panic.

use std::collections::{BTreeMap, BTreeSet};

use crate::constraint::Constraint;
use crate::resources::{PortRange, PortRequest, Resources};

/// Attribute holding an agent's host name (Marathon's `hostname`). When an
/// agent has no such attribute its [`Agent::id`] stands in for it.
pub const ATTR_HOSTNAME: &str = "hostname";
/// Attribute holding an agent's machine state (`status.<online|offline|...>`
/// in the service tree).
pub const ATTR_STATUS: &str = "status";
/// The only [`ATTR_STATUS`] value that receives new tasks.
pub const STATUS_ONLINE: &str = "online";
/// Out-of-service [`ATTR_STATUS`] values that still receive maintenance
/// tasks ([`JobRequest::maintenance`]): a host being healed is repaired
/// where it stands; an `offline` one is a person's.
pub const STATUS_MAINTAINABLE: [&str; 3] = [STATUS_ONLINE, "problem", "draining"];

/// One agent (host) as the master knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Agent {
    /// Agent id, unique in the cluster (a later duplicate is ignored).
    pub id: String,
    /// Total resources the agent offers to Ocean.
    pub capacity: Resources,
    /// Resources held on the agent outside the [`Snapshot::running`] tasks
    /// (system daemons, launches in flight the master keeps out of
    /// `running`). Usage = `reserved` + the running tasks placed here.
    pub reserved: Resources,
    /// Host port ranges the agent offers (Mesos' `ports` resource).
    pub port_ranges: Vec<PortRange>,
    /// Ports taken outside the running tasks, like [`Agent::reserved`].
    pub reserved_ports: Vec<u16>,
    /// Machine tags and custom attributes: `hostname`, `idc`, `loc`,
    /// `status`, `rack`... Only agents whose `status` is `online` receive
    /// new tasks.
    pub attributes: BTreeMap<String, String>,
    /// Executors and features the agent can use now, beyond plain
    /// processes (`docker`, `docker-privileged`). A job whose
    /// [`JobRequest::needs`] are not all here never goes to the agent.
    pub executors: BTreeSet<String>,
}

impl Agent {
    /// An online agent with the given capacity and `hostname` = `id`.
    pub fn new(id: impl Into<String>, capacity: Resources) -> Self {
        let id = id.into();
        let mut attributes = BTreeMap::new();
        attributes.insert(ATTR_HOSTNAME.to_string(), id.clone());
        attributes.insert(ATTR_STATUS.to_string(), STATUS_ONLINE.to_string());
        Self {
            id,
            capacity,
            attributes,
            ..Self::default()
        }
    }

    /// Adds an executor or feature (builder style).
    pub fn with_executor(mut self, name: impl Into<String>) -> Self {
        self.executors.insert(name.into());
        self
    }

    /// Sets one attribute (builder style).
    pub fn with_attr(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }

    /// Adds a port range (builder style).
    pub fn with_ports(mut self, begin: u16, end: u16) -> Self {
        self.port_ranges.push(PortRange::new(begin, end));
        self
    }

    /// The value of an attribute, with `hostname` falling back to the id.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        match self.attributes.get(key) {
            Some(v) => Some(v.as_str()),
            None if key == ATTR_HOSTNAME => Some(self.id.as_str()),
            None => None,
        }
    }

    /// True when the agent may receive new tasks.
    pub fn is_online(&self) -> bool {
        self.attribute(ATTR_STATUS) == Some(STATUS_ONLINE)
    }

    /// True when the agent may receive maintenance tasks.
    pub fn is_maintainable(&self) -> bool {
        self.attribute(ATTR_STATUS)
            .is_some_and(|s| STATUS_MAINTAINABLE.contains(&s))
    }
}

/// A task already running (or launched) somewhere in the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RunningTask {
    /// Task id.
    pub id: String,
    /// Job the task belongs to; its constraints count this task.
    pub job: String,
    /// Agent the task runs on. A task on an unknown agent still counts for
    /// its product line's share and quotas, not for any agent.
    pub agent: String,
    /// Resources the task holds.
    pub resources: Resources,
    /// Host ports the task holds.
    pub ports: Vec<u16>,
    /// The job's priority; only strictly lower priorities can be preempted.
    pub priority: i32,
    /// Product line (`pdl`) the task is charged to for fair share.
    pub pdl: String,
    /// Full service-tree path of the job, for quotas.
    pub service_path: String,
}

/// Pending tasks of one job: identical instances waiting for a placement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct JobRequest {
    /// Job id; running tasks with the same `job` count for its constraints.
    pub job: String,
    /// Ids of the pending tasks, placed in this order.
    pub tasks: Vec<String>,
    /// Resources of one task.
    pub resources: Resources,
    /// Host ports of one task.
    pub ports: Vec<PortRequest>,
    /// Placement constraints (Marathon semantics).
    pub constraints: Vec<Constraint>,
    /// Higher goes first; may preempt strictly lower when allowed.
    pub priority: i32,
    /// May this job preempt lower-priority tasks when it fits nowhere?
    /// Off by default; the master turns it on for the system class.
    pub preemption: bool,
    /// Product line (`pdl`) the job is charged to for fair share.
    pub pdl: String,
    /// Full service-tree path (`cop.x_owt.y_pdl.z_..._job.j_cluster.c`).
    pub service_path: String,
    /// Placement policy by name (`binpack`, `spread`...); `None` uses the
    /// cluster default from [`crate::Config`].
    pub policy: Option<String>,
    /// Executors and features every agent of the job must offer (see
    /// [`Agent::executors`]); empty for plain processes.
    pub needs: Vec<String>,
    /// A host's own maintenance (healing's repairs): its tasks may go to
    /// agents out of service ([`Agent::is_maintainable`]) that its
    /// constraints allow, where nothing else is placed.
    #[cfg_attr(feature = "serde", serde(default))]
    pub maintenance: bool,
}

/// A quota on a service-tree node: the sum of cpus and memory of all tasks
/// whose service path lies under `node` may not exceed the limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Quota {
    /// Service-tree node, a prefix of service paths at a `_` boundary,
    /// e.g. `cop.xiaomi_owt.inf_pdl.ocean`.
    pub node: String,
    /// Cpu limit in milli-cpus (`None`: unlimited).
    pub cpus_milli: Option<u64>,
    /// Memory limit in MiB (`None`: unlimited).
    pub mem_mib: Option<u64>,
}

impl Quota {
    /// True when `service_path` lies under this quota's node.
    pub fn covers(&self, service_path: &str) -> bool {
        node_covers(&self.node, service_path)
    }
}

/// True when `path` equals `node` or continues it after a `_` separator
/// (so `pdl.a` does not cover `pdl.ab`).
pub fn node_covers(node: &str, path: &str) -> bool {
    match path.strip_prefix(node) {
        Some(rest) => rest.is_empty() || rest.starts_with('_'),
        None => false,
    }
}

/// Everything one planning round looks at.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Snapshot {
    /// All agents, in any state.
    pub agents: Vec<Agent>,
    /// Tasks holding resources now.
    pub running: Vec<RunningTask>,
    /// Pending tasks, grouped by job. Within a priority and a product line,
    /// jobs are served in this order.
    pub pending: Vec<JobRequest>,
    /// Fair-share weight per product line (missing, non-finite or
    /// non-positive weights count as 1).
    pub pdl_weights: BTreeMap<String, f64>,
    /// Quotas on service-tree nodes.
    pub quotas: Vec<Quota>,
}

impl Snapshot {
    /// Number of pending tasks over all jobs.
    pub fn pending_tasks(&self) -> usize {
        self.pending.iter().map(|j| j.tasks.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_prefix_respects_segment_boundaries() {
        assert!(node_covers("cop.x_owt.y_pdl.z", "cop.x_owt.y_pdl.z_job.a"));
        assert!(node_covers("cop.x_owt.y_pdl.z", "cop.x_owt.y_pdl.z"));
        assert!(!node_covers(
            "cop.x_owt.y_pdl.z",
            "cop.x_owt.y_pdl.zz_job.a"
        ));
        assert!(!node_covers("cop.x_owt.y_pdl.z_job.a", "cop.x_owt.y_pdl.z"));
    }

    #[test]
    fn hostname_falls_back_to_id_and_status_gates_online() {
        let mut a = Agent::new("a1", Resources::default());
        a.attributes.clear();
        assert_eq!(a.attribute("hostname"), Some("a1"));
        assert!(!a.is_online());
        let a = a.with_attr("status", "online");
        assert!(a.is_online());
        let a = a.with_attr("status", "problem");
        assert!(!a.is_online());
    }
}
