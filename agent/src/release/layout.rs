//! The per-job release cache on disk: `<data>/jobs/<job>/releases/<v>/`,
//! the job's `current` link, `downloads/<sha256>`, and its collection.
//! A release becomes visible under its version only once complete (it is
//! built in a temporary directory and renamed), and carries a manifest of
//! the artifacts it was built from, so a later launch reuses it only when
//! they are the same.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::{info, warn};

use super::extract::extract;
use super::fetch::fetch;
use super::{ArtifactSpec, ReleaseError, ReleaseSpec};

/// Releases kept per job besides those tasks still run.
pub const KEEP_RELEASES: usize = 3;
/// The file in a release naming the artifacts it holds.
const MANIFEST: &str = ".ocean-release.json";

/// `<data>/jobs/<job id>`.
pub fn job_dir(data_dir: &Path, job_id: &str) -> PathBuf {
    data_dir.join("jobs").join(job_id)
}

/// Returns `releases/<version>` of `job`, laying it out first unless a
/// complete one built from the same artifacts is there.
pub(super) async fn ensure_release(
    job: &Path,
    spec: &ReleaseSpec,
) -> Result<PathBuf, ReleaseError> {
    let releases = job.join("releases");
    let downloads = job.join("downloads");
    for dir in [&releases, &downloads] {
        std::fs::create_dir_all(dir).map_err(ReleaseError::io("create", dir))?;
    }
    let dir = releases.join(spec.version.to_string());
    let manifest = serde_json::to_vec(&spec.artifacts).unwrap_or_default();
    if std::fs::read(dir.join(MANIFEST)).is_ok_and(|m| m == manifest) {
        return Ok(dir);
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let building = releases.join(format!(".building-{}-{nanos}", spec.version));
    let built = build(&building, &downloads, &spec.artifacts, &manifest).await;
    if let Err(error) = built {
        let _ = std::fs::remove_dir_all(&building);
        return Err(error);
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(ReleaseError::io("replace release", &dir))?;
    }
    std::fs::rename(&building, &dir).map_err(ReleaseError::io("publish release", &dir))?;
    info!(release = %dir.display(), artifacts = spec.artifacts.len(), "release laid out");
    Ok(dir)
}

async fn build(
    into: &Path,
    downloads: &Path,
    artifacts: &[ArtifactSpec],
    manifest: &[u8],
) -> Result<(), ReleaseError> {
    std::fs::create_dir_all(into).map_err(ReleaseError::io("create", into))?;
    for (index, artifact) in artifacts.iter().enumerate() {
        let cached = downloads.join(artifact.sha256.to_ascii_lowercase());
        if !cached.exists() {
            fetch(index, artifact, &cached).await?;
        }
        let target = into.join(&artifact.dest);
        if artifact.extract {
            let (archive, to) = (cached.clone(), target.clone());
            tokio::task::spawn_blocking(move || extract(&archive, &to))
                .await
                .unwrap_or_else(|e| Err(format!("extraction stopped: {e}")))
                .map_err(|message| ReleaseError::Extract {
                    index,
                    url: artifact.url.clone(),
                    message,
                })?;
        } else {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(ReleaseError::io("create", parent))?;
            }
            // A copy, not a link: a task that changes its release must not
            // change the verified download a later release is built from.
            tokio::fs::copy(&cached, &target)
                .await
                .map_err(ReleaseError::io("copy artifact to", &target))?;
        }
    }
    let path = into.join(MANIFEST);
    std::fs::write(&path, manifest).map_err(ReleaseError::io("write", path))
}

/// Points `job/current` at `releases/<version>` (replaced atomically).
pub(super) fn point_current(job: &Path, version: u64) -> Result<(), ReleaseError> {
    replace_link(
        Path::new("releases").join(version.to_string()).as_path(),
        &job.join("current"),
    )
}

/// Makes `at` a symlink to `target`, replacing what was there.
pub(super) fn link(target: &Path, at: &Path) -> Result<(), ReleaseError> {
    replace_link(target, at)
}

fn replace_link(target: &Path, at: &Path) -> Result<(), ReleaseError> {
    let mut temp = at.as_os_str().to_owned();
    temp.push(format!(".new-{}", std::process::id()));
    let temp = PathBuf::from(temp);
    let _ = std::fs::remove_file(&temp);
    std::os::unix::fs::symlink(target, &temp).map_err(ReleaseError::io("create link", &temp))?;
    std::fs::rename(&temp, at).map_err(ReleaseError::io("replace link", at))
}

/// Removes releases of `job` beyond the newest [`KEEP_RELEASES`] that are
/// not in `keep`, and downloads no kept release was built from. Failures
/// are logged: a cache that is too large must not fail a launch.
pub(super) fn gc(job: &Path, keep: &BTreeSet<u64>) {
    let releases = job.join("releases");
    let mut versions: Vec<u64> = std::fs::read_dir(&releases)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    versions.sort_unstable_by(|a, b| b.cmp(a));
    let mut needed = BTreeSet::new();
    for (rank, version) in versions.iter().enumerate() {
        let dir = releases.join(version.to_string());
        if rank < KEEP_RELEASES || keep.contains(version) {
            let artifacts: Vec<ArtifactSpec> = std::fs::read(dir.join(MANIFEST))
                .ok()
                .and_then(|m| serde_json::from_slice(&m).ok())
                .unwrap_or_default();
            needed.extend(artifacts.into_iter().map(|a| a.sha256.to_ascii_lowercase()));
        } else if let Err(error) = std::fs::remove_dir_all(&dir) {
            warn!(%error, release = %dir.display(), "cannot remove old release");
        } else {
            info!(release = %dir.display(), "old release removed");
        }
    }
    let downloads = job.join("downloads");
    for entry in std::fs::read_dir(&downloads)
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        // Partial downloads carry a suffix; they belong to a fetch.
        if name.contains('.') || needed.contains(&name) {
            continue;
        }
        if let Err(error) = std::fs::remove_file(entry.path()) {
            warn!(%error, file = %entry.path().display(), "cannot remove old download");
        }
    }
}
