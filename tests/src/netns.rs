//! Network namespaces made by a test and removed when it ends: a [`Netns`]
//! deletes its namespace on drop (processes started in it are killed
//! first), and [`in_netns`] runs a closure on a thread that has entered a
//! namespace, so the test's own sockets are the client's.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{bail, Context};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A named network namespace, deleted on drop with everything started in it.
#[derive(Debug)]
pub struct Netns {
    /// Its name (unique per process and test).
    pub name: String,
    children: Vec<Child>,
}

/// Runs `cmd` with `args`, failing with its stderr.
pub fn run(cmd: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("running {cmd}"))?;
    if !out.status.success() {
        bail!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Netns {
    /// Creates `o<pid>-<n>-<role>` with its loopback up.
    pub fn new(role: &str) -> anyhow::Result<Self> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("o{}-{n}-{role}", std::process::id());
        run("ip", &["netns", "add", &name])?;
        let ns = Netns {
            name,
            children: Vec::new(),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// `ip -n NAME ARGS...`.
    pub fn ip(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut a = vec!["-n", self.name.as_str()];
        a.extend_from_slice(args);
        run("ip", &a)
    }

    /// Runs a command inside (`ip netns exec`), waiting for it.
    pub fn exec(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut a = vec!["netns", "exec", self.name.as_str()];
        a.extend_from_slice(args);
        run("ip", &a)
    }

    /// Loads an nftables script inside (`nft -f -`): its tables are the
    /// namespace's own and go with it.
    pub fn nft(&self, script: &str) -> anyhow::Result<()> {
        use std::io::Write;
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning nft")?;
        child
            .stdin
            .take()
            .context("nft stdin")?
            .write_all(script.as_bytes())?;
        let out = child.wait_with_output().context("waiting for nft")?;
        if !out.status.success() {
            bail!(
                "nft in {}: {}\n{script}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// Starts a command inside; killed when the namespace drops.
    pub fn spawn(&mut self, args: &[&str]) -> anyhow::Result<u32> {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning in a netns")?;
        let pid = child.id();
        self.children.push(child);
        Ok(pid)
    }

    /// Kills what [`Netns::spawn`] started with pid `pid`.
    pub fn kill(&mut self, pid: u32, signal: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal);
        if let Some(i) = self.children.iter().position(|c| c.id() == pid) {
            let mut c = self.children.remove(i);
            let _ = c.wait();
        }
    }

    /// Connects `self` (interface `self_if`, address `self_addr`/24) to
    /// `peer` (`peer_if`, `peer_addr`/24) with a veth pair made inside
    /// `self`, so parallel tests never collide on interface names.
    pub fn link(
        &self,
        self_if: &str,
        self_addr: &str,
        peer: &Netns,
        peer_if: &str,
        peer_addr: &str,
    ) -> anyhow::Result<()> {
        self.ip(&[
            "link", "add", self_if, "type", "veth", "peer", "name", peer_if, "netns", &peer.name,
        ])?;
        self.ip(&["addr", "add", &format!("{self_addr}/24"), "dev", self_if])?;
        self.ip(&["link", "set", self_if, "up"])?;
        peer.ip(&["addr", "add", &format!("{peer_addr}/24"), "dev", peer_if])?;
        peer.ip(&["link", "set", peer_if, "up"])?;
        Ok(())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Anything else still inside (a process's own children).
        delete(&self.name);
    }
}

/// Deletes the namespaces [`Netns::new`] made in test processes that no
/// longer run (`o<pid>-...` with that pid gone): a test killed by its
/// runner's time limit never runs its drop guards. Namespaces of live
/// processes, and any not named so, are never touched.
pub fn reap_orphans() {
    let Ok(list) = run("ip", &["netns", "list"]) else {
        return;
    };
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(pid) = name
            .strip_prefix('o')
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let alive = std::path::Path::new(&format!("/proc/{pid}")).exists();
        if !alive && name.matches('-').count() >= 2 {
            delete(name);
        }
    }
}

/// SIGKILLs every process in namespace `name`, then deletes it.
fn delete(name: &str) {
    if let Ok(pids) = run("ip", &["netns", "pids", name]) {
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    let _ = run("ip", &["netns", "del", name]);
}

/// Runs `f` on a thread that has entered network namespace `name`.
pub fn in_netns<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    let path = format!("/var/run/netns/{name}");
    std::thread::spawn(move || -> anyhow::Result<T> {
        let file = std::fs::File::open(&path).with_context(|| path.clone())?;
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).context("setns")?;
        Ok(f())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the netns thread panicked"))?
}
