//! A task's sandbox: `<data>/sandboxes/<task id>/`, its working directory,
//! holding the `stdout` and `stderr` files the task writes to directly.
//!
//! **Size cap (copy-truncate).** The task holds its log files open in append
//! mode, so they cannot be renamed under it. When a file grows past the cap
//! the supervisor copies its last `cap` bytes to `<name>.1` (replacing the
//! previous one) and truncates the file to zero; the task's next write lands
//! at offset 0. The most recent output is kept (at least the last `cap`
//! bytes across `<name>.1` and `<name>`), disk use stays under about twice
//! the cap plus what is written between two checks, and bytes written in the
//! instant between the copy and the truncation are lost. The files belong to
//! the task, not to a pipe through the agent, so the task keeps running
//! (and logging) while the agent is down.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tracing::{debug, warn};

use crate::error::{Error, Result};

/// The two log streams of a task.
pub const LOG_FILES: [&str; 2] = ["stdout", "stderr"];

/// The directory of one task's sandbox.
pub fn sandbox_dir(data_dir: &Path, task_id: &str) -> PathBuf {
    data_dir.join("sandboxes").join(task_id)
}

/// The directory a job with a persistent volume keeps on this agent
/// across its tasks: `<data>/volumes/<job id>/`. Sandboxes come and go with
/// their tasks; this one stays (a replacement task of the job on this host
/// finds its predecessor's data in it).
pub fn volume_dir(data_dir: &Path, job_id: &str) -> PathBuf {
    data_dir.join("volumes").join(job_id)
}

/// The volume of the job whose task has the sandbox `sandbox`
/// (`<data>/sandboxes/<task id>`).
pub fn volume_of_sandbox(sandbox: &Path, job_id: &str) -> Option<PathBuf> {
    Some(volume_dir(sandbox.parent()?.parent()?, job_id))
}

/// Creates the sandbox and opens (appending) its `stdout` and `stderr`.
pub fn create(dir: &Path) -> Result<(File, File)> {
    fs::create_dir_all(dir).map_err(Error::io("create sandbox", dir))?;
    let open = |name: &str| {
        let path = dir.join(name);
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(Error::io("open log", path))
    };
    Ok((open(LOG_FILES[0])?, open(LOG_FILES[1])?))
}

/// Applies the size cap to both log files of a sandbox (see the module doc).
pub fn enforce_log_cap(dir: &Path, cap_bytes: u64) {
    for name in LOG_FILES {
        let path = dir.join(name);
        if let Err(error) = copy_truncate(&path, cap_bytes) {
            warn!(%error, path = %path.display(), "cannot rotate task log");
        }
    }
}

fn copy_truncate(path: &Path, cap_bytes: u64) -> std::io::Result<bool> {
    let len = match fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if len <= cap_bytes {
        return Ok(false);
    }
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    file.seek(SeekFrom::Start(len - cap_bytes))?;
    // Read to the end, not just `cap_bytes`: the task keeps writing, and
    // whatever it appended since the length was taken would otherwise be
    // lost to the truncation. Copy-truncate still loses what lands between
    // this read and `set_len`, so the truncation comes right after the
    // read, before the rotated file is written: a window of microseconds
    // instead of a file create, write and rename (a fast writer on a busy
    // host lost a hundred lines in that one).
    let mut tail = Vec::with_capacity(usize::try_from(cap_bytes).unwrap_or(0));
    file.read_to_end(&mut tail)?;
    file.set_len(0)?;
    let keep_from = tail
        .len()
        .saturating_sub(usize::try_from(cap_bytes).unwrap_or(usize::MAX));
    let tail = &tail[keep_from..];
    let mut rotated_name = path.as_os_str().to_owned();
    rotated_name.push(".1");
    let rotated = PathBuf::from(rotated_name);
    let mut temp_name = rotated.as_os_str().to_owned();
    temp_name.push(".tmp");
    let temp = PathBuf::from(temp_name);
    File::create(&temp)?.write_all(tail)?;
    fs::rename(&temp, &rotated)?;
    debug!(path = %path.display(), len, "task log rotated");
    Ok(true)
}

/// Removes a sandbox (missing is fine).
pub fn remove(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove sandbox", dir)(e)),
    }
}

/// Removes sandboxes under `<data>/sandboxes` not modified for `retention`,
/// except those of `keep` (live tasks). Returns the ids removed.
pub fn gc(data_dir: &Path, retention: Duration, keep: &[String]) -> Result<Vec<String>> {
    let root = data_dir.join("sandboxes");
    let entries = match fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list sandboxes", root)(e)),
    };
    let now = SystemTime::now();
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let Some(id) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if keep.contains(&id) {
            continue;
        }
        let age = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .unwrap_or_default();
        if age >= retention {
            remove(&entry.path())?;
            removed.push(id);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_over_the_cap_keep_their_most_recent_bytes() -> anyhow::Result<()> {
        let data = tempfile::tempdir()?;
        let dir = sandbox_dir(data.path(), "t1");
        let (mut out, _err) = create(&dir)?;
        out.write_all(b"0123456789abcdef")?;
        enforce_log_cap(&dir, 4);
        assert_eq!(fs::read(dir.join("stdout.1"))?, b"cdef");
        assert_eq!(fs::metadata(dir.join("stdout"))?.len(), 0);
        // The writer's append-mode descriptor continues at the new end.
        out.write_all(b"xyz")?;
        assert_eq!(fs::read(dir.join("stdout"))?, b"xyz");
        enforce_log_cap(&dir, 4);
        assert_eq!(
            fs::read(dir.join("stdout"))?,
            b"xyz",
            "under the cap: untouched"
        );
        Ok(())
    }

    #[test]
    fn gc_removes_old_sandboxes_but_keeps_live_ones() -> anyhow::Result<()> {
        let data = tempfile::tempdir()?;
        create(&sandbox_dir(data.path(), "old"))?;
        create(&sandbox_dir(data.path(), "live"))?;
        let removed = gc(data.path(), Duration::ZERO, &["live".to_string()])?;
        assert_eq!(removed, vec!["old".to_string()]);
        assert!(sandbox_dir(data.path(), "live").exists());
        Ok(())
    }
}
