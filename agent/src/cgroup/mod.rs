//! The cgroup boundary: one small trait, [`CgroupDriver`], with a v1
//! ([`CgroupV1`]) and a v2 ([`CgroupV2`]) implementation chosen at run time
//! by [`detect`]. Both are plain file writes under a root passed in as a
//! `&Path`, so unit tests run them against a temporary directory.
//!
//! ```text
//!  v1: <root>/cpu/<parent>/<task>     cpu.cfs_period_us, cpu.cfs_quota_us
//!      <root>/memory/<parent>/<task>  memory.limit_in_bytes, memory.oom_control
//!      <root>/pids/<parent>/<task>    pids.max
//!  v2: <root>/<parent>/<task>         cpu.max, memory.max, memory.events, pids.max
//! ```

mod detect;
mod fsutil;
mod v1;
mod v2;

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::Result;

pub use detect::{detect, detect_from_mountinfo};
pub use v1::CgroupV1;
pub use v2::CgroupV2;

/// The CFS period the cpu quota is expressed in (100 ms).
pub const CFS_PERIOD_US: u64 = 100_000;

/// The smallest quota the kernel accepts (1 ms).
const MIN_CFS_QUOTA_US: u64 = 1_000;

/// Default value of `pids.max` for a task.
pub const DEFAULT_PIDS_LIMIT: u64 = 4096;

/// Which cgroup hierarchy a driver manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupVersion {
    /// One hierarchy per controller.
    V1,
    /// The unified hierarchy.
    V2,
}

/// The limits applied to one task's cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CgroupLimits {
    /// CPU cores; the CFS quota is `cpus * CFS_PERIOD_US`. `None` = no quota.
    pub cpus: Option<f64>,
    /// Hard memory limit in bytes. `None` = unlimited.
    pub memory_bytes: Option<u64>,
    /// Maximum number of processes and threads. `None` = unlimited.
    pub pids: Option<u64>,
}

impl CgroupLimits {
    /// The CFS quota in microseconds per [`CFS_PERIOD_US`], if any.
    pub fn cfs_quota_us(&self) -> Option<u64> {
        self.cpus.map(|cpus| {
            let quota = (cpus * CFS_PERIOD_US as f64).round() as u64;
            quota.max(MIN_CFS_QUOTA_US)
        })
    }
}

/// The directories of one task's cgroup: what the wrapper joins, what the
/// supervisor reads counters from, what cleanup removes. Serializable so it
/// goes into the task's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCgroup {
    /// The hierarchy these paths belong to.
    pub version: CgroupVersion,
    /// The cgroup holding the cpu controller files.
    pub cpu: PathBuf,
    /// The cgroup holding the memory controller files.
    pub memory: PathBuf,
    /// The cgroup holding the pids controller files.
    pub pids: PathBuf,
    /// The v1 cgroup holding the cpuacct files, where that controller is
    /// mounted apart from cpu (the cpu hierarchy has no usage counter
    /// then). `None` for v2, for a co-mounted `cpu,cpuacct`, and in
    /// checkpoints written before usage was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuacct: Option<PathBuf>,
}

impl TaskCgroup {
    /// The distinct directories a process must join, in order (one for v2).
    /// The last one is joined last, so a pid seen there has joined them all.
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = Vec::with_capacity(4);
        let cpuacct = self.cpuacct.as_ref();
        for dir in [
            Some(&self.cpu),
            cpuacct,
            Some(&self.memory),
            Some(&self.pids),
        ]
        .into_iter()
        .flatten()
        {
            if !dirs.contains(dir) {
                dirs.push(dir.clone());
            }
        }
        dirs
    }
}

/// What the memory controller knows about OOM kills in a cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OomEvents {
    /// Processes killed by the OOM killer in this cgroup, when the kernel
    /// reports it (v1 `memory.oom_control` since 4.13, v2 `memory.events`).
    pub oom_kills: Option<u64>,
    /// Times the memory limit was hit (v1 `memory.failcnt`, v2 `max` event).
    pub limit_hits: u64,
}

impl OomEvents {
    /// True if the kernel's OOM killer acted in this cgroup. Without an
    /// `oom_kill` counter (old v1 kernels) a SIGKILL after the limit was hit
    /// is taken as an OOM kill.
    pub fn killed(&self, ended_by_sigkill: bool) -> bool {
        match self.oom_kills {
            Some(kills) => kills > 0,
            None => self.limit_hits > 0 && ended_by_sigkill,
        }
    }
}

/// The counters of one task's cgroup at one moment: cumulative ones
/// (cpu time, throttled time, OOM kills) are turned into rates by the
/// usage sampler (`crate::usage`), which keeps the previous reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupUsage {
    /// CPU time used since the cgroup was made, in ns (`None`: no counter,
    /// e.g. a v1 task made before cpuacct was joined).
    pub cpu_usage_ns: Option<u64>,
    /// Time the CFS quota held the task back, in ns.
    pub cpu_throttled_ns: u64,
    /// Periods in which it was held back.
    pub cpu_throttled_periods: u64,
    /// Anonymous memory (v1 `rss`, v2 `anon`), bytes.
    pub memory_rss_bytes: u64,
    /// Page cache (v1 `cache`, v2 `file`), bytes.
    pub memory_cache_bytes: u64,
    /// The highest charge seen (v1 `max_usage_in_bytes`, v2 `memory.peak`
    /// where the kernel has it, else the current charge).
    pub memory_peak_bytes: u64,
    /// The memory limit, bytes (`None`: unlimited).
    pub memory_limit_bytes: Option<u64>,
    /// OOM kills in the cgroup (see [`OomEvents`]).
    pub oom_kills: u64,
    /// Processes and threads now in the cgroup.
    pub pids: u64,
}

/// One task cgroup's lifecycle: create with limits, read back, watch OOM,
/// kill and remove. Implementations only touch files under their root.
pub trait CgroupDriver: Send + Sync + fmt::Debug {
    /// The hierarchy this driver manages.
    fn version(&self) -> CgroupVersion;

    /// Creates `<parent>/<name>` in every needed controller and applies `limits`.
    fn create(&self, name: &str, limits: &CgroupLimits) -> Result<TaskCgroup>;

    /// Reads the limits back from the cgroup files.
    fn limits(&self, cgroup: &TaskCgroup) -> Result<CgroupLimits>;

    /// The OOM counters of the task's memory cgroup.
    fn oom_events(&self, cgroup: &TaskCgroup) -> Result<OomEvents>;

    /// What the task uses now: cpu, memory and pids counters.
    fn usage(&self, cgroup: &TaskCgroup) -> Result<CgroupUsage>;

    /// The pids currently in the task's cgroup (empty if it is gone).
    fn procs(&self, cgroup: &TaskCgroup) -> Result<Vec<i32>>;

    /// SIGKILLs every process left in the cgroup, then removes its
    /// directories. Succeeds if the cgroup is already gone. Blocks up to a
    /// few seconds while the kernel tears processes down.
    fn destroy(&self, cgroup: &TaskCgroup) -> Result<()>;

    /// The names of the task cgroups under the parent (for orphan cleanup).
    fn list(&self) -> Result<Vec<String>>;

    /// The cgroup a task named `name` has (or would have), without creating it.
    fn task_cgroup(&self, name: &str) -> TaskCgroup;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_is_cpus_times_period_with_a_floor() {
        let limits = CgroupLimits {
            cpus: Some(0.5),
            memory_bytes: None,
            pids: None,
        };
        assert_eq!(limits.cfs_quota_us(), Some(50_000));
        let tiny = CgroupLimits {
            cpus: Some(0.001),
            ..limits
        };
        assert_eq!(tiny.cfs_quota_us(), Some(MIN_CFS_QUOTA_US));
        let none = CgroupLimits {
            cpus: None,
            ..limits
        };
        assert_eq!(none.cfs_quota_us(), None);
    }

    #[test]
    fn oom_uses_counter_when_present_else_limit_hits_and_sigkill() {
        let counted = OomEvents {
            oom_kills: Some(1),
            limit_hits: 0,
        };
        assert!(counted.killed(false));
        let zero = OomEvents {
            oom_kills: Some(0),
            limit_hits: 5,
        };
        assert!(!zero.killed(true));
        let old_kernel = OomEvents {
            oom_kills: None,
            limit_hits: 3,
        };
        assert!(old_kernel.killed(true));
        assert!(!old_kernel.killed(false));
    }

    #[test]
    fn dirs_are_deduplicated_for_v2() {
        let p = PathBuf::from("/cg/ocean/t1");
        let cg = TaskCgroup {
            version: CgroupVersion::V2,
            cpu: p.clone(),
            memory: p.clone(),
            pids: p.clone(),
            cpuacct: None,
        };
        assert_eq!(cg.dirs(), vec![p]);
    }
}
