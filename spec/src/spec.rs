//! The job spec's top-level type, [`JobSpec`], and its small nested sections.
//!
//! Field names are snake_case and are a public contract: users' files,
//! scripts and tests rely on them. Every default is a named function so the
//! docs, the JSON Schema and the code can be checked against each other.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::artifact::Artifact;
use crate::constraint::Constraint;
use crate::container::Container;
use crate::health::HealthCheck;
use crate::id::ServiceTreeId;
use crate::ports::PortSpec;
use crate::rollout::{is_false, is_zero, Amount};
use crate::template::Template;
use crate::unreachable::UnreachableStrategy;

/// A job: what to run, how many copies, with which resources, where and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Service-tree id, e.g. `cop.example_owt.dev_pdl.demo_service.web_job.http_cluster.dev`.
    pub id: String,
    /// Command line run by `/bin/sh -c`; exclusive with `args`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<String>,
    /// Program and arguments exec'd directly (no shell); exclusive with `cmd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Environment variables for every task.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Number of tasks to keep running; 0 suspends the job.
    #[serde(default = "default_instances")]
    pub instances: u32,
    /// Resources reserved for each task.
    #[serde(default)]
    pub resources: Resources,
    /// Ports each task needs, referred to by name elsewhere in the spec.
    #[serde(default)]
    pub ports: Vec<PortSpec>,
    /// Placement constraints, Marathon style.
    #[serde(default)]
    pub constraints: Vec<Constraint>,
    /// Health checks run against every task.
    #[serde(default)]
    pub health_checks: Vec<HealthCheck>,
    /// Run the task in a container instead of as a plain process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
    /// Free-form labels for people and tools.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Delay between relaunches of failing tasks.
    #[serde(default)]
    pub backoff: Backoff,
    /// How a new version replaces the running one.
    #[serde(default)]
    pub upgrade_strategy: UpgradeStrategy,
    /// Seconds between SIGTERM and SIGKILL when a task is stopped.
    #[serde(default = "default_kill_grace_period_seconds")]
    pub kill_grace_period_seconds: u32,
    /// Seconds a task is out of service (DNS and load balancers drop it)
    /// before it is sent SIGTERM, so connections drain before a replaced or
    /// scaled-down task stops. 0: stopped at once.
    #[serde(default, skip_serializing_if = "crate::rollout::is_zero")]
    pub shutdown_delay_seconds: u32,
    /// Scheduling priority; higher is placed first.
    #[serde(default = "default_priority")]
    pub priority: i32,
    /// Placement policy; the cluster's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement_policy: Option<PlacementPolicy>,
    /// When repeated failures stop relaunching and alert a human.
    #[serde(default)]
    pub flapping: Flapping,
    /// How long tasks on an unreachable agent wait before they are
    /// replaced; absent: replaced at once. Absent rather than defaulted in
    /// the canonical form, so specs written before it keep their bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreachable_strategy: Option<UnreachableStrategy>,
    /// `service` (keep `instances` running) or `batch` (run `instances`
    /// tasks to a successful end). Left out of the canonical form for
    /// services, so specs written before it keep their bytes, and with
    /// them their config hash and spec version.
    #[serde(rename = "type", default, skip_serializing_if = "JobType::is_service")]
    pub job_type: JobType,
    /// Files fetched, checked and laid out as the job's release before a
    /// task starts. Left out of the canonical form when empty, so specs
    /// written before it keep their bytes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<Artifact>,
    /// Configuration files rendered into every task's sandbox before it
    /// starts. Left out of the canonical form when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<Template>,
    /// Keep a directory for the job on each agent across its tasks'
    /// restarts (`OCEAN_VOLUME`, `<agent data>/volumes/<job id>`): a
    /// replacement task on the same host finds the data its predecessor
    /// left. Native tasks only. Left out of the canonical form when false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub persistent_volume: bool,
    /// A host's own maintenance (a repair): its task may be placed on the
    /// host it is pinned to (`["hostname", "CLUSTER", host]`) while that
    /// host is out of service (`problem` or `draining`; never `offline`),
    /// where no other task goes. Left out of the canonical form when false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub maintenance: bool,
}

/// What keeping a job means (Nomad's `type`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobType {
    /// Keep `instances` tasks running; a task that ends is replaced.
    #[default]
    Service,
    /// Run `instances` tasks to a successful end: a task that ended
    /// FINISHED (exit 0) under the current spec counts and is not
    /// replaced; one that failed, was killed or was lost is, under the
    /// job's back-off. At most `validate::MAX_BATCH_INSTANCES` instances.
    Batch,
}

impl JobType {
    /// True for the default, `service`.
    pub fn is_service(&self) -> bool {
        *self == JobType::Service
    }

    /// The name in specs.
    pub fn as_str(&self) -> &'static str {
        match self {
            JobType::Service => "service",
            JobType::Batch => "batch",
        }
    }
}

/// Default for [`JobSpec::instances`].
pub fn default_instances() -> u32 {
    1
}

/// Default for [`JobSpec::kill_grace_period_seconds`].
pub fn default_kill_grace_period_seconds() -> u32 {
    5
}

/// Default for [`JobSpec::priority`].
pub fn default_priority() -> i32 {
    0
}

impl JobSpec {
    /// A spec with the given id and command and every other field defaulted.
    pub fn new(id: impl Into<String>, cmd: impl Into<String>) -> Self {
        JobSpec {
            id: id.into(),
            cmd: Some(cmd.into()),
            args: None,
            env: BTreeMap::new(),
            instances: default_instances(),
            resources: Resources::default(),
            ports: Vec::new(),
            constraints: Vec::new(),
            health_checks: Vec::new(),
            container: None,
            labels: BTreeMap::new(),
            backoff: Backoff::default(),
            upgrade_strategy: UpgradeStrategy::default(),
            kill_grace_period_seconds: default_kill_grace_period_seconds(),
            shutdown_delay_seconds: 0,
            priority: default_priority(),
            placement_policy: None,
            flapping: Flapping::default(),
            unreachable_strategy: None,
            job_type: JobType::Service,
            artifacts: Vec::new(),
            templates: Vec::new(),
            persistent_volume: false,
            maintenance: false,
        }
    }

    /// Compact JSON of the spec with every default filled in, keys of maps
    /// sorted. Parsing it back yields an equal spec.
    pub fn to_canonical_json(&self) -> Vec<u8> {
        // Cannot fail: every map key is a string and no Serialize impl here
        // returns an error (non-finite floats become `null`).
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The parsed service-tree id. Exact once [`JobSpec::validate`] passed;
    /// for an invalid id it returns whatever tags could be found (others
    /// empty) instead of failing. Use [`ServiceTreeId::parse`] to get the
    /// error.
    pub fn service_tree_id(&self) -> ServiceTreeId {
        ServiceTreeId::parse(&self.id).unwrap_or_else(|_| ServiceTreeId::lenient(&self.id))
    }
}

/// Resources reserved for each task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPU shares (1.0 = one core); > 0 and at most 1024.
    #[serde(default = "default_cpus")]
    pub cpus: f64,
    /// Memory limit in MiB; at least 4.
    #[serde(default = "default_mem")]
    pub mem: u64,
    /// Scratch disk in MiB; 0 means none reserved.
    #[serde(default = "default_disk")]
    pub disk: u64,
    /// Most processes and threads per task (the cgroup's `pids.max`);
    /// absent means the agent's default (4096).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<u32>,
}

/// Default for [`Resources::cpus`].
pub fn default_cpus() -> f64 {
    0.1
}

/// Default for [`Resources::mem`] (MiB).
pub fn default_mem() -> u64 {
    128
}

/// Default for [`Resources::disk`] (MiB).
pub fn default_disk() -> u64 {
    0
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            cpus: default_cpus(),
            mem: default_mem(),
            disk: default_disk(),
            pids: None,
        }
    }
}

/// Exponential back-off between relaunches of a failing task (Marathon's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    /// First delay in seconds; > 0.
    #[serde(default = "default_backoff_seconds")]
    pub backoff_seconds: f64,
    /// Multiplier applied after each failure; >= 1.0.
    #[serde(default = "default_backoff_factor")]
    pub backoff_factor: f64,
    /// Upper bound of the delay in seconds; >= `backoff_seconds`.
    #[serde(default = "default_max_launch_delay_seconds")]
    pub max_launch_delay_seconds: f64,
    /// A task that ran this long before it failed (and was not unhealthy
    /// when it ended) restarts the back-off from `backoff_seconds`; 1..=86400.
    #[serde(default = "default_backoff_reset_seconds")]
    pub reset_after_seconds: u32,
}

/// Default for [`Backoff::backoff_seconds`].
pub fn default_backoff_seconds() -> f64 {
    1.0
}

/// Default for [`Backoff::backoff_factor`].
pub fn default_backoff_factor() -> f64 {
    1.15
}

/// Default for [`Backoff::max_launch_delay_seconds`].
pub fn default_max_launch_delay_seconds() -> f64 {
    300.0
}

/// Default for [`Backoff::reset_after_seconds`].
pub fn default_backoff_reset_seconds() -> u32 {
    60
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            backoff_seconds: default_backoff_seconds(),
            backoff_factor: default_backoff_factor(),
            max_launch_delay_seconds: default_max_launch_delay_seconds(),
            reset_after_seconds: default_backoff_reset_seconds(),
        }
    }
}

impl Backoff {
    /// The delay before the next launch after `failures` failures (the
    /// first failure waits `backoff_seconds`), capped at
    /// `max_launch_delay_seconds`; zero without failures.
    pub fn delay_seconds(&self, failures: u32) -> f64 {
        if failures == 0 {
            return 0.0;
        }
        let exp = i32::try_from(failures - 1).unwrap_or(i32::MAX);
        (self.backoff_seconds * self.backoff_factor.powi(exp)).min(self.max_launch_delay_seconds)
    }
}

/// How a new version replaces the running one: the limits of a rolling
/// deployment, its pace, canaries and what happens when it fails (see
/// docs/job-spec.md and docs/deployments.md). None of it is embodied by a
/// running task: changing it alone replaces nothing. Fields added with
/// deployments are left out of the canonical form while at their
/// defaults, so specs written before keep their bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpgradeStrategy {
    /// Fraction of instances that must stay healthy during an upgrade
    /// (0..=1), unless `max_unavailable` is given.
    #[serde(default = "default_minimum_health_capacity")]
    pub minimum_health_capacity: f64,
    /// Fraction of extra instances that may run during an upgrade; 0..=1.
    /// Kept for compatibility; `max_surge` sets the surge.
    #[serde(default = "default_maximum_over_capacity")]
    pub maximum_over_capacity: f64,
    /// Tasks that may run beyond `instances` while replacing (count or
    /// `"N%"`); default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<Amount>,
    /// Serving tasks that may be missing while replacing (count or
    /// `"N%"`); when given it replaces `minimum_health_capacity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<Amount>,
    /// Pause after every `step` replaced tasks until resumed; 0 = never.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub step: u32,
    /// Seconds to wait after each replaced task before the next.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sleep_seconds: u32,
    /// New-version tasks started first, beside the old ones, before the
    /// rest waits for a promotion.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub canary: u32,
    /// Promote healthy canaries without waiting for an operator.
    #[serde(default, skip_serializing_if = "is_false")]
    pub auto_promote: bool,
    /// Seconds a new task must stay healthy before it counts.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub min_healthy_seconds: u32,
    /// A new task not healthy within this many seconds fails the
    /// deployment; default 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_deadline_seconds: Option<u32>,
    /// A deployment without progress for this many seconds fails;
    /// default 600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_seconds: Option<u32>,
    /// A failed deployment rolls back to the version it replaced.
    #[serde(default, skip_serializing_if = "is_false")]
    pub auto_revert: bool,
}

/// Default for [`UpgradeStrategy::minimum_health_capacity`].
pub fn default_minimum_health_capacity() -> f64 {
    1.0
}

/// Default for [`UpgradeStrategy::maximum_over_capacity`].
pub fn default_maximum_over_capacity() -> f64 {
    1.0
}

impl Default for UpgradeStrategy {
    fn default() -> Self {
        UpgradeStrategy {
            minimum_health_capacity: default_minimum_health_capacity(),
            maximum_over_capacity: default_maximum_over_capacity(),
            max_surge: None,
            max_unavailable: None,
            step: 0,
            sleep_seconds: 0,
            canary: 0,
            auto_promote: false,
            min_healthy_seconds: 0,
            healthy_deadline_seconds: None,
            progress_deadline_seconds: None,
            auto_revert: false,
        }
    }
}

/// Flapping detection: this many failures within the window stops
/// relaunching and raises an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flapping {
    /// Failures within the window that mark the job as flapping; >= 1.
    #[serde(default = "default_flapping_max_failures")]
    pub max_failures: u32,
    /// Length of the sliding window in seconds; >= 1.
    #[serde(default = "default_flapping_window_seconds")]
    pub window_seconds: u32,
}

/// Default for [`Flapping::max_failures`].
pub fn default_flapping_max_failures() -> u32 {
    3
}

/// Default for [`Flapping::window_seconds`].
pub fn default_flapping_window_seconds() -> u32 {
    600
}

impl Default for Flapping {
    fn default() -> Self {
        Flapping {
            max_failures: default_flapping_max_failures(),
            window_seconds: default_flapping_window_seconds(),
        }
    }
}

/// How the scheduler chooses among agents that fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlacementPolicy {
    /// Fill the fullest agents first (fewer, busier machines).
    Binpack,
    /// Spread tasks over the emptiest agents.
    Spread,
}
