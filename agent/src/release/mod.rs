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
    // Removing whole releases can take a while: off the async workers.
    let _ = tokio::task::spawn_blocking(move || layout::gc(&job, &keep)).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn spec(version: u64, url: &str, bytes: &[u8]) -> ReleaseSpec {
        ReleaseSpec {
            version,
            environment: "production".into(),
            artifacts: vec![ArtifactSpec {
                url: url.into(),
                sha256: fetch::hex(&Sha256::digest(bytes)),
                extract: true,
                dest: String::new(),
            }],
            templates: Vec::new(),
            dns: DnsFacts::default(),
        }
    }

    #[tokio::test]
    async fn releases_are_reused_kept_three_deep_and_rebuilt_from_the_cache() -> anyhow::Result<()>
    {
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        let source = dir.path().join("app.tar");
        let archive = extract::tests::archive(&[("VERSION", b"one", 0o644)], false);
        std::fs::write(&source, &archive)?;
        let url = format!("file://{}", source.display());
        let job = job_dir(&data, "j1");

        let first = prepare(&data, "j1", &spec(1, &url, &archive), &BTreeSet::new()).await?;
        assert_eq!(first, job.join("releases/1"));
        assert_eq!(std::fs::read(first.join("VERSION"))?, b"one");
        assert_eq!(
            std::fs::read_link(job.join("current"))?,
            Path::new("releases/1")
        );

        // The source is gone: every later release of the same bytes comes
        // from the download cache.
        std::fs::remove_file(&source)?;
        for version in 2..=5 {
            prepare(
                &data,
                "j1",
                &spec(version, &url, &archive),
                &BTreeSet::from([1]),
            )
            .await?;
        }
        let mut kept: Vec<String> = std::fs::read_dir(job.join("releases"))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        kept.sort();
        assert_eq!(
            kept,
            ["1", "3", "4", "5"],
            "the newest 3 and the one in use"
        );
        assert_eq!(
            std::fs::read_link(job.join("current"))?,
            Path::new("releases/5")
        );
        assert_eq!(std::fs::read(job.join("releases/5/VERSION"))?, b"one");

        // A release rebuilt under its version after it was collected needs
        // its download, which went with the last release that used it.
        prepare(&data, "j1", &spec(6, &url, &archive), &BTreeSet::new()).await?;
        let other = extract::tests::archive(&[("VERSION", b"two", 0o644)], false);
        std::fs::write(&source, &other)?;
        for version in 7..=9 {
            prepare(&data, "j1", &spec(version, &url, &other), &BTreeSet::new()).await?;
        }
        let downloads = std::fs::read_dir(job.join("downloads"))?.count();
        assert_eq!(downloads, 1, "only the kept releases' downloads stay");
        std::fs::remove_file(&source)?;
        let error = prepare(&data, "j1", &spec(10, &url, &archive), &BTreeSet::new())
            .await
            .unwrap_err();
        assert!(error.to_string().contains("cannot fetch"), "{error}");
        assert_eq!(
            std::fs::read_link(job.join("current"))?,
            Path::new("releases/9")
        );
        Ok(())
    }

    #[tokio::test]
    async fn install_links_the_release_and_renders_into_the_sandbox() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let release = dir.path().join("release");
        let sandbox = dir.path().join("sandbox");
        std::fs::create_dir_all(&release)?;
        std::fs::create_dir_all(&sandbox)?;
        let mut spec = spec(3, "file:///x", b"");
        spec.templates.push(TemplateSpec {
            source: None,
            inline: Some("{{ version }} {{ ports.http }}".into()),
            dest: "v.txt".into(),
            values: BTreeMap::new(),
        });
        let facts = TaskFacts {
            task_id: "t",
            job_id: "j",
            host: "h",
            ports: [("http".to_string(), 31000)].into_iter().collect(),
            sandbox: &sandbox,
        };
        install(&release, &spec, &facts)?;
        assert_eq!(std::fs::read_link(sandbox.join("current"))?, release);
        assert_eq!(std::fs::read_to_string(sandbox.join("v.txt"))?, "3 31000");
        Ok(())
    }
}
