//! What the host offers: cpus, memory and the disk of the agent's data dir,
//! detected at start and overridable (`--resources cpus=N,mem=MiB,disk=MiB`).

use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The resources an agent offers to the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HostResources {
    /// CPU cores.
    pub cpus: f64,
    /// Memory in MiB.
    pub mem_mib: u64,
    /// Disk of the data dir's filesystem in MiB.
    pub disk_mib: u64,
}

/// Detects the host's cpus (online processors), memory (`MemTotal`) and the
/// size of the filesystem holding `data_dir` (statvfs).
pub fn detect(data_dir: &Path) -> Result<HostResources> {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    let meminfo_path = "/proc/meminfo";
    let meminfo = std::fs::read_to_string(meminfo_path).map_err(Error::io("read", meminfo_path))?;
    let mem_kib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .ok_or_else(|| Error::Parse {
            what: "meminfo",
            input: meminfo_path.into(),
            message: "no MemTotal line".into(),
        })?;
    let stat = nix::sys::statvfs::statvfs(data_dir).map_err(|source| Error::Sys {
        op: "statvfs of the data dir",
        source,
    })?;
    let disk_bytes = stat.blocks().saturating_mul(stat.fragment_size());
    Ok(HostResources {
        cpus,
        mem_mib: mem_kib / 1024,
        disk_mib: disk_bytes >> 20,
    })
}

/// Operator overrides of detected resources; unset fields keep the detected value.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ResourceOverrides {
    /// CPU cores.
    pub cpus: Option<f64>,
    /// Memory in MiB.
    pub mem_mib: Option<u64>,
    /// Disk in MiB.
    pub disk_mib: Option<u64>,
}

impl ResourceOverrides {
    /// `detected` with the overrides applied.
    pub fn apply(&self, detected: HostResources) -> HostResources {
        HostResources {
            cpus: self.cpus.unwrap_or(detected.cpus),
            mem_mib: self.mem_mib.unwrap_or(detected.mem_mib),
            disk_mib: self.disk_mib.unwrap_or(detected.disk_mib),
        }
    }
}

impl FromStr for ResourceOverrides {
    type Err = Error;

    /// Parses `cpus=N,mem=MiB,disk=MiB` (any subset, any order).
    fn from_str(s: &str) -> Result<Self> {
        let bad = |message: String| Error::Parse {
            what: "resources",
            input: s.to_string(),
            message,
        };
        let mut out = Self::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (key, value) = item.split_once('=').ok_or_else(|| {
                bad(format!(
                    "{item:?}: expected key=value with key cpus, mem or disk"
                ))
            })?;
            let number = |v: &str| {
                v.trim()
                    .parse::<u64>()
                    .map_err(|_| bad(format!("{key}: {v:?} is not a whole number of MiB")))
            };
            match key.trim() {
                "cpus" => {
                    let cpus: f64 = value
                        .trim()
                        .parse()
                        .map_err(|_| bad(format!("cpus: {value:?} is not a number")))?;
                    if !(cpus.is_finite() && cpus > 0.0) {
                        return Err(bad(format!("cpus: {value:?} must be > 0")));
                    }
                    out.cpus = Some(cpus);
                }
                "mem" => out.mem_mib = Some(number(value)?),
                "disk" => out.disk_mib = Some(number(value)?),
                other => {
                    return Err(bad(format!(
                        "unknown key {other:?}; allowed: cpus, mem, disk"
                    )))
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_finds_something_on_this_host() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let found = detect(dir.path())?;
        assert!(
            found.cpus >= 1.0 && found.mem_mib > 0 && found.disk_mib > 0,
            "{found:?}"
        );
        Ok(())
    }

    #[test]
    fn overrides_parse_and_apply() -> anyhow::Result<()> {
        let o: ResourceOverrides = "cpus=2.5, mem=1024".parse()?;
        let detected = HostResources {
            cpus: 8.0,
            mem_mib: 4096,
            disk_mib: 100,
        };
        assert_eq!(
            o.apply(detected),
            HostResources {
                cpus: 2.5,
                mem_mib: 1024,
                disk_mib: 100
            }
        );
        for bad in ["cpus", "cpus=x", "cpus=0", "mem=1.5", "gpus=1"] {
            assert!(bad.parse::<ResourceOverrides>().is_err(), "{bad:?}");
        }
        Ok(())
    }
}
