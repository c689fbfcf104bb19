//! Releases and config templates: what a task's sandbox holds before the
//! task starts.
//!
//! ```text
//!  launch(spec with release) ─► per-job lock ─► releases/<version>/ complete? ── yes ──┐
//!                                   │ no: for each artifact                           │
//!                                   │   downloads/<sha256> cached? else fetch (http,  │
//!                                   │   https, file; bounded) ─► sha256 check         │
//!                                   │   ─► extract (.tar / .tar.gz) or link the file  │
//!                                   └─► manifest ─► rename into releases/<version> ───┤
//!  current ─► releases/<version> (per job), GC: last KEEP_RELEASES + those in use ◄───┘
//!  sandbox/current ─► the task's release; templates rendered into the sandbox
//! ```
//!
//! Everything lives under `<data>/jobs/<job id>/`: `releases/<version>/`,
//! `current`, and `downloads/<sha256>` (the verified files, so a release
//! that comes back under another version, as a rollback does, is laid out
//! again without a download). Templates are rendered on every launch, so
//! every deployment renders them anew.

mod extract;
mod fetch;
mod layout;
mod render;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use layout::{job_dir, KEEP_RELEASES};
pub use render::{merge_values, template_context};

/// Longest a single artifact may take to arrive, end to end.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest wait for the next bytes of a download before it is abandoned.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// One file of a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactSpec {
    /// `http://`, `https://` or `file:///path`.
    pub url: String,
    /// Expected SHA-256, hex.
    pub sha256: String,
    /// Unpack the archive into `dest`.
    pub extract: bool,
    /// Relative to the release directory; empty = the release itself.
    pub dest: String,
}

/// One configuration file to render.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateSpec {
    /// Relative to the release directory; exclusive with `inline`.
    pub source: Option<String>,
    /// The text itself.
    pub inline: Option<String>,
    /// Relative to the sandbox.
    pub dest: String,
    /// Sections of values (`base`, environments).
    pub values: BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
}

/// DNS names of a task's job, relative to the zone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsFacts {
    /// The job's name (every serving task).
    pub job: String,
    /// The task's own name.
    pub task: String,
    /// SRV names by port name.
    pub srv: BTreeMap<String, String>,
    /// The zone.
    pub domain: String,
}

/// What a task needs laid out and rendered before it starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseSpec {
    /// The job's spec version: the release's name.
    pub version: u64,
    /// Which section of the values overrides `base`.
    pub environment: String,
    /// The release's files.
    pub artifacts: Vec<ArtifactSpec>,
    /// The files rendered into the sandbox.
    pub templates: Vec<TemplateSpec>,
    /// Names of the job in Ocean's DNS.
    pub dns: DnsFacts,
}

/// What went wrong preparing a release; the message reaches the master
/// as the task's.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// The artifact could not be fetched.
    #[error("artifacts[{index}]: cannot fetch {url}: {message}")]
    Fetch {
        /// Position in the spec.
        index: usize,
        /// Its URL.
        url: String,
        /// Why.
        message: String,
    },
    /// The fetched bytes are not the ones the spec names.
    #[error("artifacts[{index}]: sha256 mismatch for {url}: expected {expected}, got {actual}")]
    Checksum {
        /// Position in the spec.
        index: usize,
        /// Its URL.
        url: String,
        /// The spec's digest.
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },
    /// The archive could not be unpacked.
    #[error("artifacts[{index}]: cannot extract {url}: {message}")]
    Extract {
        /// Position in the spec.
        index: usize,
        /// Its URL.
        url: String,
        /// Why.
        message: String,
    },
    /// A template could not be read or rendered.
    #[error("templates[{index}] ({file}): {message}")]
    Render {
        /// Position in the spec.
        index: usize,
        /// The template's file (its source, or `inline` and its dest).
        file: String,
        /// Why, naming the variable when one is missing.
        message: String,
    },
    /// A file operation on the release cache or the sandbox failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What we were doing.
        op: &'static str,
        /// Where.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl ReleaseError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| ReleaseError::Io { op, path, source }
    }
}

/// The task's facts a template can use beside its values.
#[derive(Debug, Clone)]
pub struct TaskFacts<'a> {
    /// Task id.
    pub task_id: &'a str,
    /// Job id.
    pub job_id: &'a str,
    /// The agent's host name.
    pub host: &'a str,
    /// Host ports by name.
    pub ports: BTreeMap<String, u16>,
    /// The task's sandbox.
    pub sandbox: &'a Path,
}

/// Lays out (or reuses) the release of `spec` for `job_id` under
/// `data_dir`, points the job's `current` at it, removes releases beyond
/// the newest [`KEEP_RELEASES`] (except `in_use`), and returns its
/// directory. The caller serialises calls for one job.
pub async fn prepare(
    data_dir: &Path,
    job_id: &str,
    spec: &ReleaseSpec,
    in_use: &BTreeSet<u64>,
) -> Result<PathBuf, ReleaseError> {
    let job = job_dir(data_dir, job_id);
    let dir = layout::ensure_release(&job, spec).await?;
    layout::point_current(&job, spec.version)?;
    let mut keep = in_use.clone();
    keep.insert(spec.version);
    layout::gc(&job, &keep);
    Ok(dir)
}

/// Links `sandbox/current` to `release` and renders the templates into the
/// sandbox.
pub fn install(
    release: &Path,
    spec: &ReleaseSpec,
    facts: &TaskFacts<'_>,
) -> Result<(), ReleaseError> {
    layout::link(release, &facts.sandbox.join("current"))?;
    let context = template_context(spec, facts, release);
    for (index, template) in spec.templates.iter().enumerate() {
        render::render_to(index, template, release, facts.sandbox, &context)?;
    }
    Ok(())
}
