//! cgroup v2: the unified hierarchy (usually `/sys/fs/cgroup`). Controllers
//! are enabled for the children of the root and of the parent through
//! `cgroup.subtree_control`; one directory per task holds every controller.

use std::path::{Path, PathBuf};

use tracing::warn;

use super::fsutil::{
    check_name, keyed_u64, kill_and_remove, list_dirs, make_dir, read_procs, read_u64, read_value,
    write_optional, write_value,
};
use super::{
    CgroupDriver, CgroupLimits, CgroupUsage, CgroupVersion, OomEvents, TaskCgroup, CFS_PERIOD_US,
};
use crate::error::{Error, Result};

/// The controllers a task cgroup needs.
const CONTROLLERS: [&str; 3] = ["cpu", "memory", "pids"];

/// The cgroup v2 driver: task cgroups are `<root>/<parent>/<task>`.
#[derive(Debug, Clone)]
pub struct CgroupV2 {
    root: PathBuf,
    parent: String,
}

impl CgroupV2 {
    /// A driver for the unified hierarchy mounted at `root`.
    pub fn new(root: &Path, parent: &str) -> Self {
        Self {
            root: root.to_path_buf(),
            parent: parent.to_string(),
        }
    }

    fn enable_controllers(&self, dir: &Path) {
        for controller in CONTROLLERS {
            if let Err(error) =
                write_value(dir, "cgroup.subtree_control", &format!("+{controller}"))
            {
                warn!(%error, controller, "cannot enable cgroup v2 controller");
            }
        }
    }
}

impl CgroupDriver for CgroupV2 {
    fn version(&self) -> CgroupVersion {
        CgroupVersion::V2
    }

    fn task_cgroup(&self, name: &str) -> TaskCgroup {
        let dir = self.root.join(&self.parent).join(name);
        TaskCgroup {
            version: CgroupVersion::V2,
            cpu: dir.clone(),
            memory: dir.clone(),
            pids: dir,
            cpuacct: None,
        }
    }

    fn create(&self, name: &str, limits: &CgroupLimits) -> Result<TaskCgroup> {
        check_name(name)?;
        let parent = self.root.join(&self.parent);
        make_dir(&parent)?;
        self.enable_controllers(&self.root);
        self.enable_controllers(&parent);
        let cg = self.task_cgroup(name);
        make_dir(&cg.cpu)?;
        let apply = || -> Result<()> {
            let quota = limits
                .cfs_quota_us()
                .map_or("max".to_string(), |q| q.to_string());
            write_value(&cg.cpu, "cpu.max", &format!("{quota} {CFS_PERIOD_US}"))?;
            let memory = limits
                .memory_bytes
                .map_or("max".to_string(), |b| b.to_string());
            write_value(&cg.memory, "memory.max", &memory)?;
            // No swap: the memory limit is the task's whole budget.
            write_optional(&cg.memory, "memory.swap.max", "0");
            let pids = limits.pids.map_or("max".to_string(), |p| p.to_string());
            write_value(&cg.pids, "pids.max", &pids)?;
            Ok(())
        };
        if let Err(error) = apply() {
            let _ = kill_and_remove(&cg.dirs());
            return Err(error);
        }
        Ok(cg)
    }

    fn limits(&self, cg: &TaskCgroup) -> Result<CgroupLimits> {
        let cpu_max = read_value(&cg.cpu, "cpu.max")?;
        let mut parts = cpu_max.split_whitespace();
        let quota = parts.next().and_then(|q| q.parse::<u64>().ok());
        let period = parts.next().and_then(|p| p.parse::<u64>().ok());
        let cpus = match (quota, period) {
            (Some(q), Some(p)) if p > 0 => Some(q as f64 / p as f64),
            (None, Some(_)) => None,
            _ => {
                return Err(Error::Cgroup(format!(
                    "{}/cpu.max: unexpected {cpu_max:?}",
                    cg.cpu.display()
                )))
            }
        };
        let memory_bytes = read_value(&cg.memory, "memory.max")?.parse().ok();
        let pids = read_value(&cg.pids, "pids.max")?.parse().ok();
        Ok(CgroupLimits {
            cpus,
            memory_bytes,
            pids,
        })
    }

    fn oom_events(&self, cg: &TaskCgroup) -> Result<OomEvents> {
        let events = read_value(&cg.memory, "memory.events")?;
        Ok(OomEvents {
            oom_kills: keyed_u64(&events, "oom_kill"),
            limit_hits: keyed_u64(&events, "max").unwrap_or(0),
        })
    }

    fn usage(&self, cg: &TaskCgroup) -> Result<CgroupUsage> {
        let cpu_stat = read_value(&cg.cpu, "cpu.stat")?;
        let memory_stat = read_value(&cg.memory, "memory.stat")?;
        let current = read_u64(&cg.memory, "memory.current")?;
        let limit = read_value(&cg.memory, "memory.max")?;
        let events = read_value(&cg.memory, "memory.events")?;
        Ok(CgroupUsage {
            cpu_usage_ns: keyed_u64(&cpu_stat, "usage_usec").map(|us| us * 1000),
            cpu_throttled_ns: keyed_u64(&cpu_stat, "throttled_usec").unwrap_or(0) * 1000,
            cpu_throttled_periods: keyed_u64(&cpu_stat, "nr_throttled").unwrap_or(0),
            memory_rss_bytes: keyed_u64(&memory_stat, "anon").unwrap_or(0),
            memory_cache_bytes: keyed_u64(&memory_stat, "file").unwrap_or(0),
            // memory.peak arrived in Linux 5.19.
            memory_peak_bytes: read_u64(&cg.memory, "memory.peak").unwrap_or(current),
            memory_limit_bytes: limit.parse().ok(),
            oom_kills: keyed_u64(&events, "oom_kill").unwrap_or(0),
            pids: read_u64(&cg.pids, "pids.current")?,
        })
    }

    fn procs(&self, cg: &TaskCgroup) -> Result<Vec<i32>> {
        read_procs(&cg.pids)
    }

    fn destroy(&self, cg: &TaskCgroup) -> Result<()> {
        // cgroup.kill (Linux 5.14+) kills the whole tree atomically; the
        // loop in kill_and_remove covers older kernels and stragglers.
        if cg.pids.exists() {
            write_optional(&cg.pids, "cgroup.kill", "1");
        }
        kill_and_remove(&cg.dirs())
    }

    fn list(&self) -> Result<Vec<String>> {
        list_dirs(&self.root.join(&self.parent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_writes_unified_files_and_reads_them_back() -> anyhow::Result<()> {
        let root = tempfile::tempdir()?;
        let driver = CgroupV2::new(root.path(), "ocean");
        let limits = CgroupLimits {
            cpus: Some(0.25),
            memory_bytes: Some(32 << 20),
            pids: Some(64),
        };
        let cg = driver.create("t1", &limits)?;
        assert_eq!(cg.dirs(), vec![root.path().join("ocean/t1")]);
        assert_eq!(
            std::fs::read_to_string(cg.cpu.join("cpu.max"))?,
            "25000 100000"
        );
        assert_eq!(
            std::fs::read_to_string(cg.memory.join("memory.max"))?,
            (32u64 << 20).to_string()
        );
        assert_eq!(driver.limits(&cg)?, limits);
        let unlimited = CgroupLimits {
            cpus: None,
            memory_bytes: None,
            pids: None,
        };
        let cg2 = driver.create("t2", &unlimited)?;
        assert_eq!(
            std::fs::read_to_string(cg2.cpu.join("cpu.max"))?,
            "max 100000"
        );
        assert_eq!(driver.limits(&cg2)?, unlimited);
        assert_eq!(driver.list()?, vec!["t1".to_string(), "t2".to_string()]);
        Ok(())
    }

    #[test]
    fn oom_kill_is_read_from_memory_events() -> anyhow::Result<()> {
        let root = tempfile::tempdir()?;
        let driver = CgroupV2::new(root.path(), "ocean");
        let cg = driver.task_cgroup("t1");
        make_dir(&cg.memory)?;
        std::fs::write(
            cg.memory.join("memory.events"),
            "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n",
        )?;
        assert_eq!(
            driver.oom_events(&cg)?,
            OomEvents {
                oom_kills: Some(1),
                limit_hits: 4
            }
        );
        Ok(())
    }

    #[test]
    fn usage_reads_the_unified_files() -> anyhow::Result<()> {
        let root = tempfile::tempdir()?;
        let driver = CgroupV2::new(root.path(), "ocean");
        let cg = driver.task_cgroup("t1");
        make_dir(&cg.memory)?;
        let write = |file: &str, text: &str| std::fs::write(cg.memory.join(file), text);
        write(
            "cpu.stat",
            "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 9\nnr_throttled 2\nthrottled_usec 300\n",
        )?;
        write("memory.stat", "anon 104857600\nfile 8192\nkernel 4096\n")?;
        write("memory.current", "105000000\n")?;
        write("memory.max", "max\n")?;
        write("memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n")?;
        write("pids.current", "3\n")?;
        let usage = driver.usage(&cg)?;
        assert_eq!(
            usage,
            CgroupUsage {
                cpu_usage_ns: Some(2_500_000_000),
                cpu_throttled_ns: 300_000,
                cpu_throttled_periods: 2,
                memory_rss_bytes: 104_857_600,
                memory_cache_bytes: 8192,
                // No memory.peak (before Linux 5.19): the current charge.
                memory_peak_bytes: 105_000_000,
                memory_limit_bytes: None,
                oom_kills: 0,
                pids: 3,
            }
        );
        write("memory.peak", "120000000\n")?;
        write("memory.max", "268435456\n")?;
        let usage = driver.usage(&cg)?;
        assert_eq!(usage.memory_peak_bytes, 120_000_000);
        assert_eq!(usage.memory_limit_bytes, Some(256 << 20));
        Ok(())
    }
}
