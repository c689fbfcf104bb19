//! The typed answers of the service layer. REST serialises them as they
//! are (the field names are the API's contract, `docs/api.md`); gRPC maps
//! them to its messages.

use std::collections::BTreeMap;

use ocean_proto::internal::{Job, JobBackoff, JobSpecVersion, KvEntry, LeaseRecord};
use serde::Serialize;
use serde_json::Value;

use crate::kernel::state::jobs::spec_version;

/// What a write did.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct WriteResult {
    /// The object written.
    pub id: String,
    /// The state version at which it was applied.
    pub version: u64,
    /// `created`, `updated`, `unchanged` or `deleted`.
    pub outcome: String,
    /// A job's spec version after the write (job writes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec_version: Option<u64>,
    /// A scale's instance count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instances: Option<u32>,
    /// A key's revision after the write (framework keys only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
}

/// A job's restart back-off.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BackoffView {
    pub failures: u32,
    pub delay_seconds: f64,
    pub next_launch_ms: u64,
    pub recent_failures: usize,
    pub flapping: bool,
    pub message: String,
}

impl From<&JobBackoff> for BackoffView {
    fn from(b: &JobBackoff) -> Self {
        BackoffView {
            failures: b.failures,
            delay_seconds: b.delay_ms as f64 / 1000.0,
            next_launch_ms: b.next_launch_ms,
            recent_failures: b.recent_failures_ms.len(),
            flapping: b.flapping,
            message: b.message.clone(),
        }
    }
}

/// A job as lists and events show it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct JobView {
    pub id: String,
    /// The spec with every default filled in.
    pub spec: Value,
    pub created_version: u64,
    pub updated_version: u64,
    /// Moves only when the spec changes other than in `instances`.
    pub spec_version: u64,
    /// Why tasks wait to be placed (`null` when none waits).
    pub waiting: Option<String>,
    pub backoff: Option<BackoffView>,
    pub flapping: bool,
}

impl From<&Job> for JobView {
    fn from(job: &Job) -> Self {
        JobView {
            id: job.id.clone(),
            spec: serde_json::from_slice(&job.spec_json).unwrap_or(Value::Null),
            created_version: job.created_version,
            updated_version: job.updated_version,
            spec_version: spec_version(job),
            waiting: (!job.waiting.is_empty()).then(|| job.waiting.clone()),
            backoff: job.backoff.as_ref().map(BackoffView::from),
            flapping: job.backoff.as_ref().is_some_and(|b| b.flapping),
        }
    }
}

/// One job with its tasks' counts and its DNS name.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct JobDetail {
    #[serde(flatten)]
    pub job: JobView,
    /// Tasks per state.
    pub tasks: BTreeMap<String, u64>,
    /// RUNNING tasks not being stopped.
    pub running: usize,
    /// The job's name in Ocean's DNS (`null`: none, or another job owns it).
    pub dns_name: Option<String>,
    /// The job that owns the shared DNS name, when another does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_name_owner: Option<String>,
}

/// A list of jobs at a version.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct JobList {
    pub version: u64,
    pub jobs: Vec<JobView>,
}

/// One spec a job had.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SpecVersionView {
    pub spec_version: u64,
    /// State version at which it became the job's spec.
    pub version: u64,
    /// True for the job's spec now.
    pub current: bool,
    pub spec: Value,
}

impl SpecVersionView {
    pub(crate) fn new(v: &JobSpecVersion, current: bool) -> Self {
        SpecVersionView {
            spec_version: v.spec_version,
            version: v.version,
            current,
            spec: serde_json::from_slice(&v.spec_json).unwrap_or(Value::Null),
        }
    }
}

/// A job's kept specs, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct JobVersions {
    pub id: String,
    pub version: u64,
    pub versions: Vec<SpecVersionView>,
}

/// A framework's key.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct KvView {
    pub namespace: String,
    pub key: String,
    /// The value, when it is JSON (what REST writes).
    pub value: Option<Value>,
    /// The value as text, when it is not JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_text: Option<String>,
    pub revision: u64,
    pub created_revision: u64,
}

impl From<&KvEntry> for KvView {
    fn from(e: &KvEntry) -> Self {
        let json = serde_json::from_slice::<Value>(&e.value).ok();
        KvView {
            namespace: e.namespace.clone(),
            key: e.key.clone(),
            value_text: json
                .is_none()
                .then(|| String::from_utf8_lossy(&e.value).into_owned()),
            value: json,
            revision: e.revision,
            created_revision: e.created_revision,
        }
    }
}

/// A namespace's keys at a version.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct KvList {
    pub version: u64,
    pub keys: Vec<KvView>,
}

/// A framework's leader lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LeaseView {
    pub namespace: String,
    pub name: String,
    /// Empty once released.
    pub holder: String,
    /// Leader clock, ms since the epoch.
    pub expires_ms: u64,
    /// Grows with every change of holder: fence writes with it.
    pub epoch: u64,
    pub ttl_ms: u64,
    pub acquired_ms: u64,
    /// The key's revision (state version of the last take or renewal).
    pub revision: u64,
}

impl LeaseView {
    pub(crate) fn new(namespace: &str, name: &str, r: &LeaseRecord, revision: u64) -> Self {
        LeaseView {
            namespace: namespace.to_string(),
            name: name.to_string(),
            holder: r.holder.clone(),
            expires_ms: r.expires_ms,
            epoch: r.epoch,
            ttl_ms: r.ttl_ms,
            acquired_ms: r.acquired_ms,
            revision,
        }
    }
}
