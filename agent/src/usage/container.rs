//! What the engine's stats leave out for container tasks: OOM kills. The
//! engine reports an `oom` event but no count, so the count is read from
//! the container's own memory cgroup (v1 `memory.oom_control`, v2
//! `memory.events`), found through its main process: `/proc/PID/cgroup`
//! names its cgroup, `/proc/self/mountinfo` where that hierarchy is
//! mounted. This holds whatever the engine's cgroup driver (cgroupfs or
//! systemd) and parent are, without asking the engine which.
//!
//! The directory is found once per container (one `inspect` for its pid)
//! and kept until the container is gone.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where a cgroup hierarchy is mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mount {
    /// The hierarchy's path mounted there (`/` unless a namespace or bind
    /// mount shows a sub-tree).
    root: String,
    /// The mount point.
    point: PathBuf,
}

/// The host's memory cgroup mounts: v1's memory controller and v2's
/// unified hierarchy, either of which may be absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mounts {
    v1_memory: Option<Mount>,
    v2: Option<Mount>,
}

impl Mounts {
    /// The mounts listed in `mountinfo` (the text of `/proc/self/mountinfo`).
    pub fn parse(mountinfo: &str) -> Self {
        let mut out = Mounts::default();
        for line in mountinfo.lines() {
            // id parent major:minor root point options [optional...] - type source super
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let fields: Vec<&str> = left.split(' ').collect();
            let (Some(root), Some(point)) = (fields.get(3), fields.get(4)) else {
                continue;
            };
            let mut right = right.split(' ');
            let (kind, _source, options) = (right.next(), right.next(), right.next());
            let mount = Mount {
                root: unescape(root),
                point: PathBuf::from(unescape(point)),
            };
            match kind {
                Some("cgroup") if options.is_some_and(|o| o.split(',').any(|o| o == "memory")) => {
                    out.v1_memory.get_or_insert(mount);
                }
                Some("cgroup2") => {
                    out.v2.get_or_insert(mount);
                }
                _ => {}
            }
        }
        out
    }

    /// The host's mounts now.
    pub fn read() -> Self {
        std::fs::read_to_string("/proc/self/mountinfo")
            .map(|m| Self::parse(&m))
            .unwrap_or_default()
    }

    /// The memory cgroup directory of a process whose `/proc/PID/cgroup`
    /// says `cgroups`: v1's memory hierarchy where it is mounted, else v2's.
    pub fn memory_dir(&self, cgroups: &str) -> Option<MemoryDir> {
        let mut v2_path = None;
        for line in cgroups.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(id), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if id == "0" && controllers.is_empty() {
                v2_path = Some(path);
            } else if controllers.split(',').any(|c| c == "memory") {
                if let Some(dir) = self.v1_memory.as_ref().and_then(|m| under(m, path)) {
                    return Some(MemoryDir::V1(dir));
                }
            }
        }
        let dir = under(self.v2.as_ref()?, v2_path?)?;
        // A v2 hierarchy without the memory controller has no counters.
        dir.join("memory.events")
            .exists()
            .then_some(MemoryDir::V2(dir))
    }
}

/// The directory of `path` (a cgroup path as `/proc/PID/cgroup` gives it)
/// under `mount`, if the mount shows it.
fn under(mount: &Mount, path: &str) -> Option<PathBuf> {
    let rest = if mount.root == "/" {
        path
    } else {
        path.strip_prefix(mount.root.as_str())?
    };
    Some(mount.point.join(rest.trim_start_matches('/')))
}

/// `\040` and the other octal escapes mountinfo writes for spaces, tabs,
/// newlines and backslashes.
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let digits = std::str::from_utf8(&bytes[i + 1..i + 4]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(digits, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A container's memory cgroup directory, by hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryDir {
    V1(PathBuf),
    V2(PathBuf),
}

impl MemoryDir {
    /// Processes the OOM killer killed in the cgroup, where the kernel
    /// counts them (v1 since Linux 4.13); `None` when the cgroup is gone.
    pub fn oom_kills(&self) -> Option<u64> {
        let (dir, file) = match self {
            MemoryDir::V1(d) => (d, "memory.oom_control"),
            MemoryDir::V2(d) => (d, "memory.events"),
        };
        let text = std::fs::read_to_string(dir.join(file)).ok()?;
        Some(keyed(&text, "oom_kill").unwrap_or(0))
    }

    fn path(&self) -> &Path {
        match self {
            MemoryDir::V1(d) | MemoryDir::V2(d) => d,
        }
    }
}

/// The value of `key` in a `key value` per line file.
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// The memory cgroups of the containers sampled, by container id.
#[derive(Debug, Default)]
pub struct Cgroups {
    mounts: Option<Mounts>,
    dirs: HashMap<String, MemoryDir>,
}

impl Cgroups {
    /// The container's memory cgroup, found from its main process `pid`
    /// (asked only the first time: `pid` is called once per container).
    pub fn dir(
        &mut self,
        container: &str,
        pid: impl FnOnce() -> Option<i64>,
    ) -> Option<&MemoryDir> {
        if !self.dirs.contains_key(container) {
            let pid = pid().filter(|p| *p > 0)?;
            let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
            let mounts = self.mounts.get_or_insert_with(Mounts::read);
            let dir = mounts.memory_dir(&cgroups)?;
            tracing::debug!(%container, dir = %dir.path().display(), "the container's memory cgroup");
            self.dirs.insert(container.to_string(), dir);
        }
        self.dirs.get(container)
    }

    /// True when the container's cgroup was found already.
    pub fn known(&self, container: &str) -> bool {
        self.dirs.contains_key(container)
    }

    /// Forgets the containers not in `keep`.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.dirs.retain(|id, _| keep(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn v1_memory_is_preferred_and_v2_is_the_fallback() {
        let m = Mounts::parse(MOUNTINFO);
        let cgroups = "12:pids:/docker/abc\n4:memory:/docker/abc\n0::/docker/abc\n";
        assert_eq!(
            m.memory_dir(cgroups),
            Some(MemoryDir::V1(PathBuf::from(
                "/sys/fs/cgroup/memory/docker/abc"
            )))
        );
        // Without a v1 memory mount, a v2 path is used only if its memory
        // controller is there (it is not in this fake one).
        let only_v2 =
            Mounts::parse("40 31 0:37 / /nonexistent/unified rw,relatime - cgroup2 cgroup2 rw\n");
        assert_eq!(
            only_v2.memory_dir("0::/system.slice/docker-abc.scope\n"),
            None
        );
    }

    #[test]
    fn a_mount_of_a_sub_tree_strips_its_root_and_escapes_are_read() {
        let m = Mounts::parse(
            "35 31 0:32 /docker /mnt/my\\040cg rw - cgroup cgroup rw,memory,nosuid\n",
        );
        assert_eq!(
            m.memory_dir("4:memory:/docker/abc\n"),
            Some(MemoryDir::V1(PathBuf::from("/mnt/my cg/abc")))
        );
        assert_eq!(m.memory_dir("4:memory:/other/abc\n"), None);
    }

    #[test]
    fn oom_kills_are_read_from_either_hierarchy() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(
            dir.path().join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
        )?;
        std::fs::write(
            dir.path().join("memory.events"),
            "low 0\nhigh 0\nmax 7\noom 2\noom_kill 2\n",
        )?;
        assert_eq!(MemoryDir::V1(dir.path().into()).oom_kills(), Some(3));
        assert_eq!(MemoryDir::V2(dir.path().into()).oom_kills(), Some(2));
        assert_eq!(MemoryDir::V1(dir.path().join("gone")).oom_kills(), None);
        Ok(())
    }
}
