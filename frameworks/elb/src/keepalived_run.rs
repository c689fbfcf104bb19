//! keepalived as the LB agent's supervised child (VRRP only, `-P`): the
//! agent hands it the VIPs it serves; it writes keepalived.conf
//! atomically and SIGHUPs keepalived when the config changes, restarts it
//! (with back-off) when it dies, and stops it (SIGTERM: keepalived drops
//! its VIPs and tells the backup) when the agent stops.
//!
//! ```text
//!  agent ─ set_vips ─► watch ─► supervise: write conf (tmp + rename) ─► SIGHUP
//!                                  │ no child yet / it died ─► clean_stale ─► spawn
//!                                  │ no VIP left ─► SIGTERM
//! ```
//!
//! **Stale VIPs.** Every VIP this agent's keepalived adds carries the
//! label `<interface>:elb` (see [`crate::vrrp`]). A VIP this node holds is
//! one its running keepalived put there; so before keepalived starts (at
//! the agent's start, and before every restart), the agent stops a
//! keepalived left by an earlier run (its pid files in the data dir, checked
//! against its command line) and removes every address so labelled on the
//! interface: what a crashed run or a SIGKILLed keepalived left behind.
//! The keepalived it then starts adds them back only if it wins the
//! election. Addresses without the label (an operator's own) are never
//! touched.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::vrrp::{vip_label, InvalidVrrp, VrrpConfig};

/// The first restart's delay after keepalived died; doubles per death.
const MIN_BACKOFF: Duration = Duration::from_millis(200);
/// The longest delay between restarts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// keepalived that ran this long before dying restarts at once again.
const STABLE: Duration = Duration::from_secs(30);
/// How long keepalived gets to drop its VIPs after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// keepalived could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum KeepalivedError {
    /// A VRRP setting is wrong.
    #[error(transparent)]
    Invalid(#[from] InvalidVrrp),
    /// A file of the data dir.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// `ip` failed or said something unexpected.
    #[error("--vrrp-interface {interface}{}: {message}", netns.as_ref().map(|n| format!(" (netns {n})")).unwrap_or_default())]
    Interface {
        /// The interface.
        interface: String,
        /// The namespace it was looked for in.
        netns: Option<String>,
        /// What `ip` said.
        message: String,
    },
}

/// A `Result` of this module.
pub type Result<T> = std::result::Result<T, KeepalivedError>;

/// Where and how keepalived runs on this LB host.
#[derive(Debug, Clone)]
struct Host {
    netns: Option<String>,
    interface: String,
    conf: PathBuf,
    pid: PathBuf,
    vrrp_pid: PathBuf,
    log: PathBuf,
}

/// The running supervisor (see the module docs).
#[derive(Debug)]
pub struct Keepalived {
    config: VrrpConfig,
    conf: watch::Sender<Option<String>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Keepalived {
    /// Validates `config`, removes stale VIPs (see the module docs) and
    /// starts supervising; keepalived itself starts with the first VIP.
    /// `netns`: the LB's network namespace when it is not the agent's own.
    pub async fn start(config: VrrpConfig, netns: Option<String>) -> Result<Self> {
        config.validate()?;
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir).map_err(|source| KeepalivedError::Io {
            what: "creating the keepalived data dir",
            path: dir.clone(),
            source,
        })?;
        let host = Host {
            netns,
            interface: config.interface.clone(),
            conf: dir.join("keepalived.conf"),
            pid: dir.join("keepalived.pid"),
            vrrp_pid: dir.join("vrrp.pid"),
            log: dir.join("keepalived.log"),
        };
        let removed = host.clean_stale().await?;
        info!(
            interface = %host.interface,
            stale_vips = removed.len(),
            "keepalived supervisor ready"
        );
        let (conf, conf_rx) = watch::channel(None);
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(supervise(host, conf_rx, stop_rx));
        Ok(Keepalived {
            config,
            conf,
            stop,
            task,
        })
    }

    /// Makes keepalived hold `vips` (none: keepalived stops); nothing
    /// happens when its config would not change.
    pub fn set_vips(&self, vips: &BTreeSet<Ipv4Addr>) {
        let want = self.config.render(vips);
        self.conf.send_if_modified(|cur| {
            if *cur == want {
                return false;
            }
            *cur = want;
            true
        });
    }

    /// Stops keepalived (its VIPs go with it) and the supervisor.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn supervise(
    host: Host,
    mut conf: watch::Receiver<Option<String>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut child: Option<Child> = None;
    let mut started = Instant::now();
    let mut backoff = MIN_BACKOFF;
    let mut restart_at: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            r = conf.changed() => {
                if r.is_err() {
                    break;
                }
                let want = conf.borrow_and_update().clone();
                let Some(text) = want else {
                    if let Some(c) = child.take() {
                        info!("no VIP left: stopping keepalived");
                        host.terminate(c).await;
                    }
                    restart_at = None;
                    continue;
                };
                if let Err(error) = write_atomically(&host.conf, &text) {
                    warn!(%error, "keepalived config not written");
                    continue;
                }
                match &child {
                    Some(c) => {
                        info!("keepalived config changed: reloading (SIGHUP)");
                        signal(c, Signal::SIGHUP);
                    }
                    None if restart_at.is_none() => restart_at = Some(Instant::now()),
                    None => {}
                }
            }
            status = wait(&mut child) => {
                child = None;
                if started.elapsed() >= STABLE {
                    backoff = MIN_BACKOFF;
                }
                warn!(%status, restart_in_ms = backoff.as_millis() as u64, "keepalived exited; restarting");
                restart_at = Some(Instant::now() + backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            _ = tokio::time::sleep_until(restart_at.unwrap_or_else(Instant::now)), if restart_at.is_some() => {
                restart_at = None;
                if conf.borrow().is_none() {
                    continue;
                }
                match host.spawn().await {
                    Ok(c) => {
                        info!(pid = c.id(), "keepalived started");
                        started = Instant::now();
                        child = Some(c);
                    }
                    Err(error) => {
                        warn!(%error, "keepalived did not start");
                        restart_at = Some(Instant::now() + backoff);
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
        }
    }
    if let Some(c) = child {
        host.terminate(c).await;
    }
}

/// The exit of `child`; never, without one.
async fn wait(child: &mut Option<Child>) -> ExitStatus {
    match child {
        Some(c) => match c.wait().await {
            Ok(s) => s,
            Err(error) => {
                warn!(%error, "waiting for keepalived");
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

fn signal(child: &Child, sig: Signal) {
    if let Some(pid) = child.id() {
        let _ = kill(Pid::from_raw(pid as i32), sig);
    }
}

/// Writes `text` to `path` through a temporary file and a rename, so
/// keepalived never reads half a config.
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("conf.tmp");
    let io = |what, source| KeepalivedError::Io {
        what,
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(&tmp, text).map_err(|e| io("writing", e))?;
    std::fs::rename(&tmp, path).map_err(|e| io("renaming into place", e))
}

impl Host {
    /// `ip [-n NETNS] ARGS...`, its stdout or what it said.
    async fn ip(&self, args: &[&str]) -> std::result::Result<String, String> {
        let mut cmd = Command::new("ip");
        if let Some(ns) = &self.netns {
            cmd.args(["-n", ns]);
        }
        let out = cmd
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| format!("running ip: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn interface_error(&self, message: String) -> KeepalivedError {
        KeepalivedError::Interface {
            interface: self.interface.clone(),
            netns: self.netns.clone(),
            message,
        }
    }

    /// Stops a keepalived an earlier run left, then removes the labelled
    /// VIPs from the interface; the addresses it removed.
    async fn clean_stale(&self) -> Result<Vec<String>> {
        self.stop_previous().await;
        let json = self
            .ip(&["-j", "-4", "addr", "show", "dev", &self.interface])
            .await
            .map_err(|m| self.interface_error(m))?;
        let stale = labelled(&json, &vip_label(&self.interface))
            .map_err(|m| self.interface_error(format!("reading `ip -j addr`: {m}")))?;
        for addr in &stale {
            self.ip(&["addr", "del", addr, "dev", &self.interface])
                .await
                .map_err(|m| self.interface_error(format!("removing {addr}: {m}")))?;
            warn!(vip = %addr, interface = %self.interface, "removed a stale VIP left by an earlier run");
        }
        Ok(stale)
    }

    /// SIGTERMs (then SIGKILLs) the keepalived processes named by the pid
    /// files, if they still run this data dir's config.
    async fn stop_previous(&self) {
        for file in [&self.pid, &self.vrrp_pid] {
            let Some(pid) = std::fs::read_to_string(file)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
            else {
                continue;
            };
            if !runs_config(pid, &self.conf) {
                continue;
            }
            warn!(pid, "stopping a keepalived left by an earlier run");
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            let deadline = Instant::now() + STOP_GRACE;
            while runs_config(pid, &self.conf) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if runs_config(pid, &self.conf) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }

    /// Removes stale VIPs, then starts keepalived in the LB's namespace.
    async fn spawn(&self) -> Result<Child> {
        self.clean_stale().await?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|source| KeepalivedError::Io {
                what: "opening the keepalived log",
                path: self.log.clone(),
                source,
            })?;
        let err = log.try_clone().map_err(|source| KeepalivedError::Io {
            what: "opening the keepalived log",
            path: self.log.clone(),
            source,
        })?;
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "keepalived"]);
                c
            }
            None => Command::new("keepalived"),
        };
        cmd.args(["-P", "-n", "-l", "-f"])
            .arg(&self.conf)
            .arg("-p")
            .arg(&self.pid)
            .arg("-r")
            .arg(&self.vrrp_pid)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            // Its own process group: a terminal's Ctrl-C reaches the agent,
            // which stops keepalived itself.
            .process_group(0)
            .kill_on_drop(true);
        cmd.spawn().map_err(|source| KeepalivedError::Io {
            what: "starting keepalived with",
            path: self.conf.clone(),
            source,
        })
    }

    /// SIGTERM, then SIGKILL after the grace period.
    async fn terminate(&self, mut child: Child) {
        signal(&child, Signal::SIGTERM);
        if tokio::time::timeout(STOP_GRACE, child.wait())
            .await
            .is_err()
        {
            warn!("keepalived did not stop after SIGTERM; killing it");
            let _ = child.kill().await;
        }
    }
}

/// Whether process `pid` runs keepalived with config `conf`.
fn runs_config(pid: i32, conf: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let mut args = cmdline.split(|b| *b == 0);
    let is_keepalived = args.next().is_some_and(|a| a.ends_with(b"keepalived"));
    let conf = conf.as_os_str().as_encoded_bytes();
    is_keepalived && cmdline.split(|b| *b == 0).any(|a| a == conf)
}

/// The `address/prefix` of every IPv4 address labelled `label` in
/// `ip -j addr show` output.
fn labelled(json: &str, label: &str) -> std::result::Result<Vec<String>, String> {
    #[derive(serde::Deserialize)]
    struct Link {
        #[serde(default)]
        addr_info: Vec<Addr>,
    }
    #[derive(serde::Deserialize)]
    struct Addr {
        family: Option<String>,
        local: Option<String>,
        prefixlen: Option<u8>,
        label: Option<String>,
    }
    let links: Vec<Link> = serde_json::from_str(json).map_err(|e| e.to_string())?;
    Ok(links
        .into_iter()
        .flat_map(|l| l.addr_info)
        .filter(|a| a.family.as_deref() == Some("inet") && a.label.as_deref() == Some(label))
        .filter_map(|a| Some(format!("{}/{}", a.local?, a.prefixlen?)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_labelled_addresses_are_stale() {
        let json = r#"[{"ifindex":2,"ifname":"eth0","addr_info":[
            {"family":"inet","local":"10.60.0.1","prefixlen":24,"label":"eth0"},
            {"family":"inet","local":"10.60.0.100","prefixlen":32,"label":"eth0:elb"},
            {"family":"inet","local":"10.60.0.101","prefixlen":32,"label":"eth0:other"},
            {"family":"inet","local":"10.60.0.102","prefixlen":32,"label":"eth0:elb"}]}]"#;
        assert_eq!(
            labelled(json, "eth0:elb").unwrap(),
            ["10.60.0.100/32", "10.60.0.102/32"]
        );
        assert_eq!(labelled("[]", "eth0:elb").unwrap(), Vec::<String>::new());
        assert!(labelled("not json", "eth0:elb").is_err());
    }

    #[test]
    fn a_pid_that_runs_something_else_is_not_ours() {
        let me = std::process::id() as i32;
        assert!(!runs_config(me, Path::new("/x/keepalived.conf")));
        assert!(!runs_config(i32::MAX, Path::new("/x/keepalived.conf")));
    }
}
