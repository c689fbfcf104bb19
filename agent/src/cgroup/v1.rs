//! cgroup v1: one hierarchy per controller, each mounted at its own path
//! (usually `/sys/fs/cgroup/<controller>`).

use std::path::{Path, PathBuf};

use super::fsutil::{
    check_name, keyed_u64, kill_and_remove, list_dirs, make_dir, read_procs, read_u64, read_value,
    write_optional, write_value,
};
use super::{
    CgroupDriver, CgroupLimits, CgroupUsage, CgroupVersion, OomEvents, TaskCgroup, CFS_PERIOD_US,
};
use crate::error::Result;

/// Largest value v1 reports for "no memory limit" is close to `i64::MAX`;
/// anything above this is treated as unlimited.
const V1_UNLIMITED_MEMORY: u64 = 1 << 62;

/// The cgroup v1 driver: task cgroups are `<controller root>/<parent>/<task>`.
#[derive(Debug, Clone)]
pub struct CgroupV1 {
    cpu_root: PathBuf,
    memory_root: PathBuf,
    pids_root: PathBuf,
    /// Where cpuacct is mounted apart from cpu (see [`CgroupV1::with_cpuacct`]).
    cpuacct_root: Option<PathBuf>,
    parent: String,
}

impl CgroupV1 {
    /// A driver whose controllers are mounted at `root/cpu`, `root/memory`
    /// and `root/pids` (the usual layout; `root` is `/sys/fs/cgroup`).
    pub fn new(root: &Path, parent: &str) -> Self {
        Self::with_mounts(
            &root.join("cpu"),
            &root.join("memory"),
            &root.join("pids"),
            parent,
        )
    }

    /// A driver with each controller's mount point given explicitly (as found
    /// in `/proc/self/mountinfo`, e.g. `/sys/fs/cgroup/cpu,cpuacct`).
    pub fn with_mounts(cpu: &Path, memory: &Path, pids: &Path, parent: &str) -> Self {
        Self {
            cpu_root: cpu.to_path_buf(),
            memory_root: memory.to_path_buf(),
            pids_root: pids.to_path_buf(),
            cpuacct_root: None,
            parent: parent.to_string(),
        }
    }

    /// Task cgroups also join the cpuacct hierarchy mounted at `cpuacct`
    /// when it is not the cpu one (`/sys/fs/cgroup/cpuacct` beside
    /// `/sys/fs/cgroup/cpu`): only cpuacct counts the cpu time a task used.
    pub fn with_cpuacct(mut self, cpuacct: &Path) -> Self {
        self.cpuacct_root = (cpuacct != self.cpu_root).then(|| cpuacct.to_path_buf());
        self
    }
}

impl CgroupDriver for CgroupV1 {
    fn version(&self) -> CgroupVersion {
        CgroupVersion::V1
    }

    fn task_cgroup(&self, name: &str) -> TaskCgroup {
        TaskCgroup {
            version: CgroupVersion::V1,
            cpu: self.cpu_root.join(&self.parent).join(name),
            memory: self.memory_root.join(&self.parent).join(name),
            pids: self.pids_root.join(&self.parent).join(name),
            cpuacct: self
                .cpuacct_root
                .as_ref()
                .map(|root| root.join(&self.parent).join(name)),
        }
    }

    fn create(&self, name: &str, limits: &CgroupLimits) -> Result<TaskCgroup> {
        check_name(name)?;
        let cg = self.task_cgroup(name);
        for dir in cg.dirs() {
            make_dir(&dir)?;
        }
        let apply = || -> Result<()> {
            write_value(&cg.cpu, "cpu.cfs_period_us", &CFS_PERIOD_US.to_string())?;
            let quota = limits
                .cfs_quota_us()
                .map_or("-1".to_string(), |q| q.to_string());
            write_value(&cg.cpu, "cpu.cfs_quota_us", &quota)?;
            if let Some(bytes) = limits.memory_bytes {
                write_value(&cg.memory, "memory.limit_in_bytes", &bytes.to_string())?;
            }
            // Keep the task's pages off swap so the limit means what it says.
            write_optional(&cg.memory, "memory.swappiness", "0");
            let pids = limits.pids.map_or("max".to_string(), |p| p.to_string());
            write_value(&cg.pids, "pids.max", &pids)?;
            Ok(())
        };
        if let Err(error) = apply() {
            // Leave nothing half-made behind.
            let _ = kill_and_remove(&cg.dirs());
            return Err(error);
        }
        Ok(cg)
    }

    fn limits(&self, cg: &TaskCgroup) -> Result<CgroupLimits> {
        let quota = read_value(&cg.cpu, "cpu.cfs_quota_us")?;
        let period = read_u64(&cg.cpu, "cpu.cfs_period_us")?;
        let cpus = match quota.parse::<i64>() {
            Ok(q) if q > 0 && period > 0 => Some(q as f64 / period as f64),
            _ => None,
        };
        let memory = read_u64(&cg.memory, "memory.limit_in_bytes")?;
        let memory_bytes = (memory < V1_UNLIMITED_MEMORY).then_some(memory);
        let pids = read_value(&cg.pids, "pids.max")?.parse().ok();
        Ok(CgroupLimits {
            cpus,
            memory_bytes,
            pids,
        })
    }

    fn oom_events(&self, cg: &TaskCgroup) -> Result<OomEvents> {
        let control = read_value(&cg.memory, "memory.oom_control")?;
        let limit_hits = read_u64(&cg.memory, "memory.failcnt").unwrap_or(0);
        Ok(OomEvents {
            oom_kills: keyed_u64(&control, "oom_kill"),
            limit_hits,
        })
    }

    fn usage(&self, cg: &TaskCgroup) -> Result<CgroupUsage> {
        // cpuacct.usage is in its own hierarchy, or in cpu's when co-mounted;
        // a task that never joined a separate cpuacct has no counter.
        let cpu_usage_ns = match &cg.cpuacct {
            Some(dir) => Some(read_u64(dir, "cpuacct.usage")?),
            None => read_u64(&cg.cpu, "cpuacct.usage").ok(),
        };
        let cpu_stat = read_value(&cg.cpu, "cpu.stat")?;
        let memory_stat = read_value(&cg.memory, "memory.stat")?;
        let memory_limit = read_u64(&cg.memory, "memory.limit_in_bytes")?;
        let control = read_value(&cg.memory, "memory.oom_control")?;
        Ok(CgroupUsage {
            cpu_usage_ns,
            cpu_throttled_ns: keyed_u64(&cpu_stat, "throttled_time").unwrap_or(0),
            cpu_throttled_periods: keyed_u64(&cpu_stat, "nr_throttled").unwrap_or(0),
            memory_rss_bytes: keyed_u64(&memory_stat, "rss").unwrap_or(0),
            memory_cache_bytes: keyed_u64(&memory_stat, "cache").unwrap_or(0),
            memory_peak_bytes: read_u64(&cg.memory, "memory.max_usage_in_bytes")?,
            memory_limit_bytes: (memory_limit < V1_UNLIMITED_MEMORY).then_some(memory_limit),
            oom_kills: keyed_u64(&control, "oom_kill").unwrap_or(0),
            pids: read_u64(&cg.pids, "pids.current")?,
        })
    }

    fn procs(&self, cg: &TaskCgroup) -> Result<Vec<i32>> {
        // The pids controller sees every process of the task.
        read_procs(&cg.pids)
    }

    fn destroy(&self, cg: &TaskCgroup) -> Result<()> {
        kill_and_remove(&cg.dirs())
    }

    fn list(&self) -> Result<Vec<String>> {
        list_dirs(&self.pids_root.join(&self.parent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_writes_limits_and_reads_them_back() -> anyhow::Result<()> {
        let root = tempfile::tempdir()?;
        let driver = CgroupV1::new(root.path(), "ocean");
        let limits = CgroupLimits {
            cpus: Some(1.5),
            memory_bytes: Some(64 << 20),
            pids: Some(100),
        };
        let cg = driver.create("t1", &limits)?;
        assert_eq!(cg.memory, root.path().join("memory/ocean/t1"));
        assert_eq!(
            std::fs::read_to_string(cg.cpu.join("cpu.cfs_quota_us"))?,
            "150000"
        );
        assert_eq!(
            std::fs::read_to_string(cg.cpu.join("cpu.cfs_period_us"))?,
            "100000"
        );
        assert_eq!(std::fs::read_to_string(cg.pids.join("pids.max"))?, "100");
        assert_eq!(driver.limits(&cg)?, limits);
        assert_eq!(driver.list()?, vec!["t1".to_string()]);
        Ok(())
    }

    #[test]
    fn oom_counter_is_read_from_oom_control() -> anyhow::Result<()> {
        let root = tempfile::tempdir()?;
        let driver = CgroupV1::new(root.path(), "ocean");
        let cg = driver.task_cgroup("t1");
        make_dir(&cg.memory)?;
        std::fs::write(
            cg.memory.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )?;
        std::fs::write(cg.memory.join("memory.failcnt"), "9\n")?;
        assert_eq!(
            driver.oom_events(&cg)?,
            OomEvents {
                oom_kills: Some(2),
                limit_hits: 9
            }
        );
        Ok(())
    }

    #[test]
    fn usage_reads_cpuacct_cpu_memory_and_pids() -> anyhow::Result<()> {
        let root = tempfile::tempdir()?;
        let driver = CgroupV1::new(root.path(), "ocean").with_cpuacct(&root.path().join("cpuacct"));
        let cg = driver.create(
            "t1",
            &CgroupLimits {
                cpus: Some(1.0),
                memory_bytes: Some(64 << 20),
                pids: None,
            },
        )?;
        let cpuacct = root.path().join("cpuacct/ocean/t1");
        assert_eq!(cg.cpuacct.as_ref(), Some(&cpuacct));
        assert!(cg.dirs().contains(&cpuacct), "the wrapper joins cpuacct");
        std::fs::write(cpuacct.join("cpuacct.usage"), "2500000000\n")?;
        std::fs::write(
            cg.cpu.join("cpu.stat"),
            "nr_periods 10\nnr_throttled 3\nthrottled_time 7000\n",
        )?;
        std::fs::write(
            cg.memory.join("memory.stat"),
            "cache 4096\nrss 104857600\nrss_huge 0\ntotal_rss 1\n",
        )?;
        std::fs::write(cg.memory.join("memory.max_usage_in_bytes"), "110000000\n")?;
        std::fs::write(cg.memory.join("memory.oom_control"), "oom_kill 1\n")?;
        std::fs::write(cg.pids.join("pids.current"), "4\n")?;
        let usage = driver.usage(&cg)?;
        assert_eq!(
            usage,
            CgroupUsage {
                cpu_usage_ns: Some(2_500_000_000),
                cpu_throttled_ns: 7000,
                cpu_throttled_periods: 3,
                memory_rss_bytes: 104_857_600,
                memory_cache_bytes: 4096,
                memory_peak_bytes: 110_000_000,
                memory_limit_bytes: Some(64 << 20),
                oom_kills: 1,
                pids: 4,
            }
        );
        Ok(())
    }

    #[test]
    fn path_escaping_names_are_rejected() -> anyhow::Result<()> {
        let root = tempfile::tempdir()?;
        let driver = CgroupV1::new(root.path(), "ocean");
        assert!(driver
            .create(
                "../x",
                &CgroupLimits {
                    cpus: None,
                    memory_bytes: None,
                    pids: None
                }
            )
            .is_err());
        Ok(())
    }
}
