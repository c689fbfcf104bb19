//! The verdicts of one round: readings in, [`HostCheck`]s out. Pure, so
//! every limit is tested with numbers.

use std::path::PathBuf;

use ocean_proto::agent::HostCheck;

use super::reads::{FsSpace, MemInfo};
use super::HostChecksConfig;

/// What one round read (an `Err` is a check that could not be made, which
/// fails: a host that cannot read its own disk is not healthy).
#[derive(Debug, Clone)]
pub struct Readings {
    /// Each checked directory and its file system's space.
    pub fs: Vec<(PathBuf, Result<FsSpace, String>)>,
    /// PSI memory `some avg10` (percent); `Ok(None)` without PSI.
    pub pressure: Result<Option<f64>, String>,
    pub meminfo: Result<MemInfo, String>,
    pub load1: Result<f64, String>,
    pub cpus: usize,
    /// The agent's own restarts within the restart window.
    pub restarts: u64,
    /// Task launches that failed on this host among the tasks it still
    /// reports.
    pub launch_failures: u64,
    /// The job of each of those failed launches.
    pub failed_launch_jobs: Vec<String>,
    /// Kernel OOM kills within the window that were not of this agent's
    /// tasks; `None` when the kernel does not count them.
    pub oom_kills_outside_tasks: Option<u64>,
    /// The operator's command: `Ok(())` when it exited 0, else why not.
    pub command: Option<Result<(), String>>,
}

/// Most job ids a `launch_failures` check names.
const MAX_FAILED_JOBS: usize = 32;

/// [`HostCheck::bound`]: the value must stay at or above the limit.
pub const AT_LEAST: &str = "at_least";
/// [`HostCheck::bound`]: the value must stay at or below the limit.
pub const AT_MOST: &str = "at_most";

/// A check judged by a number against a limit (`bound` is [`AT_LEAST`] or
/// [`AT_MOST`]), so the masters' side can judge it again with another
/// limit (healing's limits per tree node).
fn judged(
    name: impl Into<String>,
    bound: &'static str,
    value: f64,
    limit: f64,
    message: String,
) -> HostCheck {
    let ok = if bound == AT_LEAST {
        value >= limit
    } else {
        value <= limit
    };
    HostCheck {
        name: name.into(),
        ok,
        value,
        limit,
        message,
        bound: bound.into(),
        jobs: Vec::new(),
    }
}

/// A check without a number: only its verdict can be judged.
fn verdict_only(name: impl Into<String>, ok: bool, message: String) -> HostCheck {
    HostCheck {
        name: name.into(),
        ok,
        message,
        ..HostCheck::default()
    }
}

fn failed(name: impl Into<String>, message: String) -> HostCheck {
    verdict_only(name, false, message)
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        100.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// Judges `r` against `cfg`'s limits, one check per concern, in a fixed
/// order.
pub fn evaluate(cfg: &HostChecksConfig, r: &Readings) -> Vec<HostCheck> {
    let mut out = Vec::new();
    for (dir, space) in &r.fs {
        let (disk, inodes) = (
            format!("disk:{}", dir.display()),
            format!("inodes:{}", dir.display()),
        );
        match space {
            Ok(s) => {
                let free = percent(s.avail_bytes, s.total_bytes);
                out.push(judged(
                    disk,
                    AT_LEAST,
                    free,
                    cfg.min_free_disk_percent,
                    format!(
                        "{free:.1}% free ({} of {} MiB), at least {}% wanted",
                        s.avail_bytes >> 20,
                        s.total_bytes >> 20,
                        cfg.min_free_disk_percent
                    ),
                ));
                let free = percent(s.free_inodes, s.total_inodes);
                out.push(judged(
                    inodes,
                    AT_LEAST,
                    free,
                    cfg.min_free_inodes_percent,
                    format!(
                        "{free:.1}% of inodes free ({} of {}), at least {}% wanted",
                        s.free_inodes, s.total_inodes, cfg.min_free_inodes_percent
                    ),
                ));
            }
            Err(e) => {
                out.push(failed(disk, format!("cannot read the file system: {e}")));
                out.push(failed(inodes, format!("cannot read the file system: {e}")));
            }
        }
    }
    out.push(match (&r.pressure, &r.meminfo) {
        (Ok(Some(p)), _) => judged(
            "memory",
            AT_MOST,
            *p,
            cfg.max_memory_pressure_percent,
            format!(
                "memory pressure (PSI some avg10) {p:.1}%, at most {}% accepted",
                cfg.max_memory_pressure_percent
            ),
        ),
        (Ok(None), Ok(m)) | (Err(_), Ok(m)) => {
            let avail = percent(m.available_kib, m.total_kib);
            judged(
                "memory",
                AT_LEAST,
                avail,
                cfg.min_available_memory_percent,
                format!(
                    "{avail:.1}% of memory available ({} of {} MiB; no PSI), at least {}% wanted",
                    m.available_kib >> 10,
                    m.total_kib >> 10,
                    cfg.min_available_memory_percent
                ),
            )
        }
        (_, Err(e)) => failed("memory", format!("cannot read memory: {e}")),
    });
    out.push(match &r.load1 {
        Ok(l) => {
            let per_cpu = l / r.cpus.max(1) as f64;
            judged(
                "load",
                AT_MOST,
                per_cpu,
                cfg.max_load_per_cpu,
                format!(
                    "load {l:.2} on {} cpus ({per_cpu:.2} per cpu), at most {} accepted",
                    r.cpus, cfg.max_load_per_cpu
                ),
            )
        }
        Err(e) => failed("load", format!("cannot read the load: {e}")),
    });
    out.push(judged(
        "restarts",
        AT_MOST,
        r.restarts as f64,
        cfg.max_restarts as f64,
        format!(
            "the agent restarted {} time(s) in the last {} s, at most {} accepted",
            r.restarts,
            cfg.restart_window.as_secs(),
            cfg.max_restarts
        ),
    ));
    let mut launches = judged(
        "launch_failures",
        AT_MOST,
        r.launch_failures as f64,
        cfg.max_launch_failures as f64,
        format!(
            "{} recent task launch(es) failed on this host, at most {} accepted",
            r.launch_failures, cfg.max_launch_failures
        ),
    );
    // Which jobs failed, so launches failing on every host (a bad job, not
    // a bad host) can be told apart from this host's own.
    launches.jobs = r
        .failed_launch_jobs
        .iter()
        .take(MAX_FAILED_JOBS)
        .cloned()
        .collect();
    out.push(launches);
    if let Some(n) = r.oom_kills_outside_tasks {
        out.push(judged(
            "oom_kills",
            AT_MOST,
            n as f64,
            cfg.max_oom_kills_outside_tasks as f64,
            format!(
                "the kernel OOM-killed {n} process(es) other than tasks in the last {} s, at most {} accepted",
                cfg.oom_window.as_secs(),
                cfg.max_oom_kills_outside_tasks
            ),
        ));
    }
    if let Some(result) = &r.command {
        out.push(match result {
            Ok(()) => verdict_only("command", true, "the check command exited 0".into()),
            Err(e) => failed("command", e.clone()),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readings() -> Readings {
        Readings {
            fs: vec![(
                PathBuf::from("/data"),
                Ok(FsSpace {
                    total_bytes: 100 << 20,
                    avail_bytes: 50 << 20,
                    total_inodes: 1000,
                    free_inodes: 900,
                }),
            )],
            pressure: Ok(None),
            meminfo: Ok(MemInfo {
                total_kib: 1000,
                available_kib: 500,
            }),
            load1: Ok(2.0),
            cpus: 2,
            restarts: 0,
            launch_failures: 0,
            failed_launch_jobs: Vec::new(),
            oom_kills_outside_tasks: Some(0),
            command: None,
        }
    }

    #[test]
    fn numbers_carry_their_direction_and_launches_their_jobs() {
        let mut r = readings();
        r.launch_failures = 2;
        r.failed_launch_jobs = vec!["web".into(), "db".into()];
        r.command = Some(Err("exit 1".into()));
        let checks = evaluate(&HostChecksConfig::new("/data".into()), &r);
        assert_eq!(verdict(&checks, "disk:/data").bound, AT_LEAST);
        assert_eq!(verdict(&checks, "load").bound, AT_MOST);
        let launches = verdict(&checks, "launch_failures");
        assert_eq!((launches.bound.as_str(), launches.value), (AT_MOST, 2.0));
        assert_eq!(launches.jobs, ["web", "db"]);
        // No number: nothing the masters' side could judge again.
        assert_eq!(verdict(&checks, "command").bound, "");
        r.meminfo = Err("gone".into());
        let checks = evaluate(&HostChecksConfig::new("/data".into()), &r);
        assert_eq!(verdict(&checks, "memory").bound, "");
    }

    fn verdict<'a>(checks: &'a [HostCheck], name: &str) -> &'a HostCheck {
        checks.iter().find(|c| c.name == name).expect(name)
    }

    #[test]
    fn a_healthy_host_passes_every_check() {
        let cfg = HostChecksConfig::new("/data".into());
        let checks = evaluate(&cfg, &readings());
        let names: Vec<_> = checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "disk:/data",
                "inodes:/data",
                "memory",
                "load",
                "restarts",
                "launch_failures",
                "oom_kills"
            ]
        );
        assert!(checks.iter().all(|c| c.ok), "{checks:?}");
        assert_eq!(verdict(&checks, "disk:/data").value, 50.0);
    }

    #[test]
    fn each_limit_fails_its_own_check() {
        let cfg = HostChecksConfig::new("/data".into());
        let mut r = readings();
        r.fs[0].1 = Ok(FsSpace {
            total_bytes: 100 << 20,
            avail_bytes: 5 << 20,
            total_inodes: 1000,
            free_inodes: 10,
        });
        r.load1 = Ok(100.0);
        r.restarts = 9;
        r.launch_failures = 9;
        r.oom_kills_outside_tasks = Some(1);
        r.command = Some(Err("exit status 3: broken".into()));
        let checks = evaluate(&cfg, &r);
        for name in [
            "disk:/data",
            "inodes:/data",
            "load",
            "restarts",
            "launch_failures",
            "command",
        ] {
            assert!(!verdict(&checks, name).ok, "{name} should fail");
        }
        assert!(verdict(&checks, "memory").ok);
        assert!(verdict(&checks, "disk:/data")
            .message
            .starts_with("5.0% free"));
    }

    #[test]
    fn psi_wins_over_meminfo_and_unreadable_disks_fail() {
        let cfg = HostChecksConfig::new("/data".into());
        let mut r = readings();
        r.pressure = Ok(Some(80.0));
        r.fs[0].1 = Err("ENOENT".into());
        let checks = evaluate(&cfg, &r);
        let mem = verdict(&checks, "memory");
        assert!(!mem.ok && mem.value == 80.0 && mem.message.contains("PSI"));
        assert!(!verdict(&checks, "disk:/data").ok);
        // Without PSI, little available memory fails.
        r.pressure = Ok(None);
        r.meminfo = Ok(MemInfo {
            total_kib: 1000,
            available_kib: 10,
        });
        assert!(!verdict(&evaluate(&cfg, &r), "memory").ok);
    }
}
