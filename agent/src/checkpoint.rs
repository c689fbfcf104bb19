//! Per-task checkpoints: `<data>/checkpoints/<task id>.json`, written
//! atomically (temp file, fsync, rename) whenever what a restarted agent
//! needs changes: after launch, and when a kill is requested.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::cgroup::TaskCgroup;
use crate::error::{Error, Result};
use crate::task::TaskSpec;

/// What a restarted agent needs to re-adopt (or account for) a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskCheckpoint {
    /// The task's id.
    pub task_id: String,
    /// The pid of the task's main process (also its process group and session).
    pub pid: i32,
    /// Its start time from `/proc/<pid>/stat` field 22, so a reused pid is not adopted.
    pub start_time: u64,
    /// The task's cgroup directories.
    pub cgroup: TaskCgroup,
    /// The sandbox directory.
    pub sandbox: PathBuf,
    /// The host ports allocated to it, in `PORT0..N` order.
    pub ports: Vec<u16>,
    /// The spec it was launched with (a summary: the env is included).
    pub spec: TaskSpec,
    /// When it was launched, in ms since the Unix epoch.
    pub launched_at_ms: u64,
    /// True once a kill was requested: an end seen after a restart is KILLED.
    #[serde(default)]
    pub kill_requested: bool,
}

/// The checkpoint directory of a data dir.
pub fn checkpoint_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("checkpoints")
}

fn path_of(data_dir: &Path, task_id: &str) -> PathBuf {
    checkpoint_dir(data_dir).join(format!("{task_id}.json"))
}

/// Writes a checkpoint atomically.
pub fn write(data_dir: &Path, checkpoint: &TaskCheckpoint) -> Result<()> {
    let dir = checkpoint_dir(data_dir);
    fs::create_dir_all(&dir).map_err(Error::io("create checkpoint dir", &dir))?;
    let path = path_of(data_dir, &checkpoint.task_id);
    let temp = dir.join(format!(".{}.json.tmp", checkpoint.task_id));
    let json = serde_json::to_vec_pretty(checkpoint).map_err(|source| Error::Checkpoint {
        path: path.clone(),
        source,
    })?;
    // The spec holds the job's environment: readable by the agent only.
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .map_err(Error::io("create", &temp))?;
    file.write_all(&json).map_err(Error::io("write", &temp))?;
    file.sync_all().map_err(Error::io("fsync", &temp))?;
    fs::rename(&temp, &path).map_err(Error::io("rename checkpoint into", &path))?;
    // Make the rename itself durable.
    if let Ok(dir_handle) = File::open(&dir) {
        let _ = dir_handle.sync_all();
    }
    Ok(())
}

/// Removes a task's checkpoint (missing is fine).
pub fn remove(data_dir: &Path, task_id: &str) -> Result<()> {
    let path = path_of(data_dir, task_id);
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove checkpoint", path)(e)),
    }
}

/// Reads every checkpoint. Unreadable files are logged and skipped (and
/// left in place for an operator), so one bad file cannot block recovery.
pub fn read_all(data_dir: &Path) -> Result<Vec<TaskCheckpoint>> {
    let dir = checkpoint_dir(data_dir);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list checkpoints", dir)(e)),
    };
    let mut checkpoints = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let is_json = path.extension().is_some_and(|e| e == "json");
        let is_temp = entry.file_name().to_string_lossy().starts_with('.');
        if !is_json || is_temp {
            continue;
        }
        let parsed = fs::read(&path)
            .map_err(Error::io("read", &path))
            .and_then(|bytes| {
                serde_json::from_slice(&bytes).map_err(|source| Error::Checkpoint {
                    path: path.clone(),
                    source,
                })
            });
        match parsed {
            Ok(checkpoint) => checkpoints.push(checkpoint),
            Err(error) => warn!(%error, "skipping unreadable task checkpoint"),
        }
    }
    checkpoints.sort_by(|a: &TaskCheckpoint, b| a.task_id.cmp(&b.task_id));
    Ok(checkpoints)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::CgroupVersion;

    #[test]
    fn checkpoints_round_trip_and_bad_files_are_skipped() -> anyhow::Result<()> {
        let data = tempfile::tempdir()?;
        let cg = PathBuf::from("/cg/t1");
        let checkpoint = TaskCheckpoint {
            task_id: "t1".into(),
            pid: 42,
            start_time: 7,
            cgroup: TaskCgroup {
                version: CgroupVersion::V1,
                cpu: cg.clone(),
                memory: cg.clone(),
                pids: cg,
                cpuacct: None,
            },
            sandbox: data.path().join("sandboxes/t1"),
            ports: vec![31000],
            spec: TaskSpec::shell("t1", "j", "true"),
            launched_at_ms: 1,
            kill_requested: false,
        };
        write(data.path(), &checkpoint)?;
        fs::write(checkpoint_dir(data.path()).join("broken.json"), "{")?;
        assert_eq!(read_all(data.path())?, vec![checkpoint]);
        remove(data.path(), "t1")?;
        remove(data.path(), "t1")?;
        assert!(read_all(data.path())?.is_empty());
        Ok(())
    }
}
