//! Small file helpers shared by the v1 and v2 drivers: cgroup interface
//! files are single values or lists of pids, written and read whole.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tracing::{debug, warn};

use crate::error::{Error, Result};

/// How long `destroy` keeps killing and retrying `rmdir` before giving up.
const DESTROY_DEADLINE: Duration = Duration::from_secs(10);

/// Rejects names that would escape the parent directory.
pub(crate) fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\0');
    if ok {
        Ok(())
    } else {
        Err(Error::Cgroup(format!(
            "invalid cgroup name {name:?}: must be one path component"
        )))
    }
}

/// Creates a cgroup directory (and its parents).
pub(crate) fn make_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(Error::io("create cgroup", dir))
}

/// Writes one value to an interface file.
pub(crate) fn write_value(dir: &Path, file: &str, value: &str) -> Result<()> {
    let path = dir.join(file);
    fs::write(&path, value).map_err(Error::io("write", path))
}

/// Writes a value to a file that some kernels lack or refuse; failures are
/// logged, not returned.
pub(crate) fn write_optional(dir: &Path, file: &str, value: &str) {
    let path = dir.join(file);
    if !path.exists() {
        return;
    }
    if let Err(error) = fs::write(&path, value) {
        debug!(%error, path = %path.display(), "optional cgroup setting not applied");
    }
}

/// Reads an interface file, trimmed.
pub(crate) fn read_value(dir: &Path, file: &str) -> Result<String> {
    let path = dir.join(file);
    fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .map_err(Error::io("read", path))
}

/// Reads a numeric interface file.
pub(crate) fn read_u64(dir: &Path, file: &str) -> Result<u64> {
    let value = read_value(dir, file)?;
    value
        .parse()
        .map_err(|_| Error::Cgroup(format!("{}/{file}: not a number: {value:?}", dir.display())))
}

/// Finds `key N` in a flat-keyed file such as `memory.events`.
pub(crate) fn keyed_u64(content: &str, key: &str) -> Option<u64> {
    content.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        (parts.next() == Some(key))
            .then(|| parts.next()?.parse().ok())
            .flatten()
    })
}

/// The pids in `cgroup.procs`; a missing cgroup has none.
pub(crate) fn read_procs(dir: &Path) -> Result<Vec<i32>> {
    let path = dir.join("cgroup.procs");
    match fs::read_to_string(&path) {
        Ok(content) => Ok(content
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io("read", path)(e)),
    }
}

/// Lists the sub-directories of `dir` (a missing dir has none).
pub(crate) fn list_dirs(dir: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list", dir)(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(Error::io("list", dir))?;
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_string());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// SIGKILLs every process in `dirs` until they are empty, then removes the
/// directories. A fork bomb cannot outrun this: each round kills what exists
/// and the pids limit bounds what can appear.
pub(crate) fn kill_and_remove(dirs: &[PathBuf]) -> Result<()> {
    let deadline = Instant::now() + DESTROY_DEADLINE;
    let mut pause = Duration::from_millis(1);
    loop {
        let mut busy = None;
        for dir in dirs {
            let procs = read_procs(dir)?;
            for pid in &procs {
                match kill(Pid::from_raw(*pid), Signal::SIGKILL) {
                    Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                    Err(error) => warn!(%error, pid, "cannot SIGKILL process in cgroup"),
                }
            }
            if !procs.is_empty() {
                busy = Some(dir.clone());
            }
        }
        if busy.is_none() {
            for dir in dirs {
                match fs::remove_dir(dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    // EBUSY: processes are still exiting.
                    Err(e) => {
                        debug!(error = %e, dir = %dir.display(), "cgroup not removable yet");
                        busy = Some(dir.clone());
                    }
                }
            }
            if busy.is_none() {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            let path = busy.unwrap_or_default();
            return Err(Error::CgroupBusy { path });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_one_component() {
        assert!(check_name("job.1-abc").is_ok());
        for bad in ["", ".", "..", "a/b", "a\0b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keyed_values_are_found() {
        let events = "low 0\nhigh 0\nmax 7\noom 2\noom_kill 1\n";
        assert_eq!(keyed_u64(events, "oom_kill"), Some(1));
        assert_eq!(keyed_u64(events, "max"), Some(7));
        assert_eq!(keyed_u64(events, "oom_group_kill"), None);
    }

    #[test]
    fn removing_empty_temp_dirs_succeeds_and_is_idempotent() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().join("t");
        make_dir(&dir)?;
        kill_and_remove(std::slice::from_ref(&dir))?;
        assert!(!dir.exists());
        kill_and_remove(&[dir])?;
        Ok(())
    }
}
