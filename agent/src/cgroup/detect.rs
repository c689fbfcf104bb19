//! Run-time choice between cgroup v1 and v2 from `/proc/self/mountinfo`.
//!
//! If the cpu, memory and pids controllers are each mounted as v1
//! hierarchies, v1 is used (this includes "hybrid" hosts that also mount an
//! empty cgroup2 tree at `/sys/fs/cgroup/unified`); otherwise the cgroup2
//! mount is used.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{CgroupDriver, CgroupV1, CgroupV2};
use crate::error::{Error, Result};

/// Detects the hierarchy of this host and returns a driver whose task
/// cgroups live under `parent` (for example `ocean`).
pub fn detect(parent: &str) -> Result<Arc<dyn CgroupDriver>> {
    let path = "/proc/self/mountinfo";
    let mountinfo = std::fs::read_to_string(path).map_err(Error::io("read", path))?;
    detect_from_mountinfo(&mountinfo, parent)
}

/// [`detect`] over the given `mountinfo` text.
pub fn detect_from_mountinfo(mountinfo: &str, parent: &str) -> Result<Arc<dyn CgroupDriver>> {
    let mut cpu = None;
    let mut memory = None;
    let mut pids = None;
    let mut cpuacct = None;
    let mut unified: Option<PathBuf> = None;
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let Some(mount_point) = left.split_whitespace().nth(4) else {
            continue;
        };
        let mut right = right.split_whitespace();
        let (Some(fstype), _source, Some(super_opts)) = (right.next(), right.next(), right.next())
        else {
            continue;
        };
        let mount_point = PathBuf::from(unescape(mount_point));
        match fstype {
            "cgroup" => {
                for opt in super_opts.split(',') {
                    match opt {
                        "cpu" => cpu = Some(mount_point.clone()),
                        "memory" => memory = Some(mount_point.clone()),
                        "pids" => pids = Some(mount_point.clone()),
                        "cpuacct" => cpuacct = Some(mount_point.clone()),
                        _ => {}
                    }
                }
            }
            // Prefer the canonical location if there are several.
            "cgroup2" if unified.is_none() || mount_point == Path::new("/sys/fs/cgroup") => {
                unified = Some(mount_point);
            }
            _ => {}
        }
    }
    if let (Some(cpu), Some(memory), Some(pids)) = (&cpu, &memory, &pids) {
        let mut v1 = CgroupV1::with_mounts(cpu, memory, pids, parent);
        if let Some(cpuacct) = &cpuacct {
            v1 = v1.with_cpuacct(cpuacct);
        }
        return Ok(Arc::new(v1));
    }
    if let Some(root) = unified {
        return Ok(Arc::new(CgroupV2::new(&root, parent)));
    }
    Err(Error::Cgroup(format!(
        "no usable cgroup hierarchy: v1 cpu={cpu:?} memory={memory:?} pids={pids:?}, and no cgroup2 mount"
    )))
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let digit = |k: usize| u32::from(bytes[i + k] - b'0');
            let value = digit(1) * 64 + digit(2) * 8 + digit(3);
            out.push(u8::try_from(value).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::super::{CgroupVersion, TaskCgroup};
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    const UNIFIED: &str = "\
25 30 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate
";

    #[test]
    fn hybrid_hosts_use_v1_mount_points() -> anyhow::Result<()> {
        let driver = detect_from_mountinfo(HYBRID, "ocean")?;
        assert_eq!(driver.version(), CgroupVersion::V1);
        let cg: TaskCgroup = driver.task_cgroup("t");
        assert_eq!(cg.cpu, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/ocean/t"));
        assert_eq!(cg.pids, PathBuf::from("/sys/fs/cgroup/pids/ocean/t"));
        Ok(())
    }

    #[test]
    fn unified_hosts_use_v2() -> anyhow::Result<()> {
        let driver = detect_from_mountinfo(UNIFIED, "ocean")?;
        assert_eq!(driver.version(), CgroupVersion::V2);
        assert_eq!(
            driver.task_cgroup("t").memory,
            PathBuf::from("/sys/fs/cgroup/ocean/t")
        );
        Ok(())
    }

    #[test]
    fn no_cgroups_is_an_error() {
        assert!(detect_from_mountinfo("1 0 0:1 / / rw - ext4 /dev/sda rw\n", "ocean").is_err());
    }

    #[test]
    fn octal_escapes_are_decoded() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
        assert_eq!(unescape(r"/plain"), "/plain");
    }
}
