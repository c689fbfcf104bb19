//! [`HostReads`]: the OS reads host checks need, behind one small trait so
//! the verdicts are tested against numbers rather than the test machine.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::Mutex;

/// Space and inodes of the file system holding a path.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FsSpace {
    /// Bytes in the file system and bytes available to unprivileged users.
    pub total_bytes: u64,
    pub avail_bytes: u64,
    /// Inodes in the file system (0: the file system does not count them)
    /// and inodes free.
    pub total_inodes: u64,
    pub free_inodes: u64,
}

/// Memory as `/proc/meminfo` gives it, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemInfo {
    pub total_kib: u64,
    pub available_kib: u64,
}

/// The reads a round of host checks makes.
pub trait HostReads: Send + Sync + std::fmt::Debug {
    /// Space of the file system holding `path`.
    fn fs_space(&self, path: &Path) -> io::Result<FsSpace>;
    /// The share of the last 10 s some task stalled on memory, in percent
    /// (`/proc/pressure/memory`, `some avg10`); `None` without PSI.
    fn memory_pressure(&self) -> io::Result<Option<f64>>;
    /// `/proc/meminfo`'s total and available memory.
    fn meminfo(&self) -> io::Result<MemInfo>;
    /// The 1-minute load average.
    fn load1(&self) -> io::Result<f64>;
    /// Online CPUs.
    fn cpus(&self) -> usize;
    /// Processes the kernel's OOM killer killed since boot (`oom_kill` of
    /// `/proc/vmstat`); `None` on kernels that do not count them.
    fn oom_kills(&self) -> io::Result<Option<u64>>;
}

/// The real host.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealReads;

impl HostReads for RealReads {
    fn fs_space(&self, path: &Path) -> io::Result<FsSpace> {
        let st = nix::sys::statvfs::statvfs(path).map_err(io::Error::from)?;
        let frag = st.fragment_size() as u64;
        Ok(FsSpace {
            total_bytes: st.blocks() as u64 * frag,
            avail_bytes: st.blocks_available() as u64 * frag,
            total_inodes: st.files() as u64,
            free_inodes: st.files_available() as u64,
        })
    }

    fn memory_pressure(&self) -> io::Result<Option<f64>> {
        match std::fs::read_to_string("/proc/pressure/memory") {
            Ok(text) => Ok(parse_psi_some_avg10(&text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            // PSI configured out of the kernel answers EOPNOTSUPP on read.
            Err(e) if e.raw_os_error() == Some(nix::libc::EOPNOTSUPP) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn meminfo(&self) -> io::Result<MemInfo> {
        let text = std::fs::read_to_string("/proc/meminfo")?;
        parse_meminfo(&text).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "/proc/meminfo has no MemTotal or MemAvailable",
            )
        })
    }

    fn load1(&self) -> io::Result<f64> {
        let text = std::fs::read_to_string("/proc/loadavg")?;
        text.split_whitespace()
            .next()
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad /proc/loadavg"))
    }

    fn cpus(&self) -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    fn oom_kills(&self) -> io::Result<Option<u64>> {
        let text = std::fs::read_to_string("/proc/vmstat")?;
        Ok(parse_vmstat_oom_kill(&text))
    }
}

/// `oom_kill N` of `/proc/vmstat`.
pub fn parse_vmstat_oom_kill(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
}

/// `some avg10=N` of a PSI file.
pub fn parse_psi_some_avg10(text: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.starts_with("some "))?;
    line.split_whitespace()
        .find_map(|f| f.strip_prefix("avg10="))
        .and_then(|v| v.parse().ok())
}

/// MemTotal and MemAvailable of `/proc/meminfo`.
pub fn parse_meminfo(text: &str) -> Option<MemInfo> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim_start_matches(':').split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some(MemInfo {
        total_kib: field("MemTotal")?,
        available_kib: field("MemAvailable")?,
    })
}

/// A host made of numbers, for tests.
#[derive(Debug, Default)]
pub struct TestReads {
    /// Space per path; a path missing here fails to read.
    pub fs: Mutex<BTreeMap<std::path::PathBuf, FsSpace>>,
    pub pressure: Mutex<Option<f64>>,
    pub mem: Mutex<Option<MemInfo>>,
    pub load1: Mutex<f64>,
    pub cpus: usize,
    pub oom_kills: Mutex<Option<u64>>,
}

impl HostReads for TestReads {
    fn fs_space(&self, path: &Path) -> io::Result<FsSpace> {
        let fs = self.fs.lock().unwrap_or_else(|p| p.into_inner());
        fs.get(path).copied().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no such file system", path.display()),
            )
        })
    }

    fn memory_pressure(&self) -> io::Result<Option<f64>> {
        Ok(*self.pressure.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn meminfo(&self) -> io::Result<MemInfo> {
        self.mem
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no meminfo"))
    }

    fn load1(&self) -> io::Result<f64> {
        Ok(*self.load1.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn cpus(&self) -> usize {
        self.cpus.max(1)
    }

    fn oom_kills(&self) -> io::Result<Option<u64>> {
        Ok(*self.oom_kills.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_and_meminfo_parse() {
        let psi = "some avg10=12.50 avg60=3.00 avg300=1.00 total=100\nfull avg10=1.00 avg60=0.00 avg300=0.00 total=5\n";
        assert_eq!(parse_psi_some_avg10(psi), Some(12.5));
        assert_eq!(parse_psi_some_avg10("full avg10=1.00"), None);
        let mem = "MemTotal:       16000000 kB\nMemFree:  100 kB\nMemAvailable:    4000000 kB\n";
        assert_eq!(
            parse_meminfo(mem),
            Some(MemInfo {
                total_kib: 16_000_000,
                available_kib: 4_000_000
            })
        );
        assert_eq!(parse_meminfo("MemTotal: 5 kB\n"), None);
        assert_eq!(parse_vmstat_oom_kill("pgfault 9\noom_kill 3\n"), Some(3));
        assert_eq!(parse_vmstat_oom_kill("pgfault 9\n"), None);
    }

    #[test]
    fn real_reads_see_this_host() {
        let r = RealReads;
        let fs = r.fs_space(Path::new("/")).expect("statvfs /");
        assert!(fs.total_bytes > 0 && fs.avail_bytes <= fs.total_bytes);
        let mem = r.meminfo().expect("meminfo");
        assert!(mem.total_kib > 0 && mem.available_kib <= mem.total_kib);
        assert!(r.load1().expect("loadavg") >= 0.0);
        assert!(r.cpus() >= 1);
        r.oom_kills().expect("vmstat");
    }
}
