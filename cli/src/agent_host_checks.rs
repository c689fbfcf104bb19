//! The agent's host check flags (`ocean agent --host-check-...`), turned
//! into the agent library's [`HostChecksConfig`].

use std::path::Path;
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use ocean_agent::host_checks::HostChecksConfig;

/// Host checks reported to the masters (disk, memory, load, restarts,
/// failing launches, an operator's command).
#[derive(Debug, Clone, Args)]
pub struct HostCheckOptions {
    /// How often the agent checks its host, in ms (0: no host checks).
    #[arg(long, default_value_t = 5000)]
    pub host_check_interval_ms: u64,
    /// Least free disk space of the data and sandbox dirs, percent.
    #[arg(long, default_value_t = 10.0)]
    pub host_check_min_free_disk_pct: f64,
    /// Least free inodes of the data and sandbox dirs, percent.
    #[arg(long, default_value_t = 5.0)]
    pub host_check_min_free_inodes_pct: f64,
    /// Largest clock skew against the leader, ms (0: not checked).
    #[arg(long, default_value_t = 2000)]
    pub host_check_max_clock_skew_ms: u64,
    /// An operator's check, run by `/bin/sh -c` every round; the host is
    /// ill while it exits non-zero or takes over 10 s.
    #[arg(long)]
    pub host_check_command: Option<String>,
}

impl Default for HostCheckOptions {
    fn default() -> Self {
        HostCheckOptions {
            host_check_interval_ms: 5000,
            host_check_min_free_disk_pct: 10.0,
            host_check_min_free_inodes_pct: 5.0,
            host_check_max_clock_skew_ms: 2000,
            host_check_command: None,
        }
    }
}

impl HostCheckOptions {
    /// The config for an agent on `data_dir`, naming the flag that is wrong.
    pub fn config(&self, data_dir: &Path) -> anyhow::Result<Option<HostChecksConfig>> {
        if self.host_check_interval_ms == 0 {
            return Ok(None);
        }
        if self.host_check_interval_ms < 100 {
            bail!("--host-check-interval-ms: at least 100 (or 0 for none)");
        }
        for (flag, v) in [
            (
                "--host-check-min-free-disk-pct",
                self.host_check_min_free_disk_pct,
            ),
            (
                "--host-check-min-free-inodes-pct",
                self.host_check_min_free_inodes_pct,
            ),
        ] {
            if !(0.0..=100.0).contains(&v) {
                bail!("{flag}: a percentage from 0 to 100, not {v}");
            }
        }
        if self
            .host_check_command
            .as_deref()
            .is_some_and(|c| c.trim().is_empty())
        {
            bail!("--host-check-command: empty; leave the flag out for no command");
        }
        let mut cfg = HostChecksConfig::new(data_dir.to_path_buf());
        cfg.interval = Duration::from_millis(self.host_check_interval_ms);
        cfg.min_free_disk_percent = self.host_check_min_free_disk_pct;
        cfg.min_free_inodes_percent = self.host_check_min_free_inodes_pct;
        cfg.max_clock_skew_ms = self.host_check_max_clock_skew_ms;
        cfg.command = self.host_check_command.clone();
        Ok(Some(cfg))
    }
}
