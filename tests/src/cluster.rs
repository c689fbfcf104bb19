//! Real `ocean master` processes on loopback.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::http::Api;

/// The `ocean` binary built next to the running test (target/<profile>/ocean),
/// or `$OCEAN_BIN`.
pub fn ocean_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("OCEAN_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().map(Path::to_path_buf);
    while let Some(d) = dir {
        let candidate = d.join("ocean");
        if candidate.is_file() {
            return candidate;
        }
        dir = d.parent().map(Path::to_path_buf);
    }
    panic!("the ocean binary was not found next to {}; run `cargo build --bin ocean` first or set OCEAN_BIN", exe.display());
}

/// A block of host ports for one agent's tasks (`LOW-HIGH`), held by this
/// test process until it exits. Every agent defaults to the same range and
/// placement takes each agent's lowest free port, so agents of tests running
/// side by side on one host would hand their tasks the same ports; the
/// blocks are claimed with a file lock, so no two live processes share one.
/// They lie below the kernel's ephemeral range, which `free_addr` uses.
pub fn agent_ports() -> String {
    const LOW: u32 = 10_000;
    const SIZE: u32 = 64;
    const BLOCKS: u32 = (32_000 - LOW) / SIZE;
    static HELD: std::sync::Mutex<Vec<std::fs::File>> = std::sync::Mutex::new(Vec::new());
    let dir = std::env::temp_dir().join("ocean-test-ports");
    let _ = std::fs::create_dir_all(&dir);
    let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
    let start = std::process::id() % BLOCKS;
    for i in 0..BLOCKS {
        let block = (start + i) % BLOCKS;
        let Ok(file) = std::fs::File::create(dir.join(format!("{block}.lock"))) else {
            continue;
        };
        if file.try_lock().is_ok() {
            held.push(file);
            let low = LOW + block * SIZE;
            return format!("{low}-{}", low + SIZE - 1);
        }
    }
    panic!("no free block of agent ports under {}", dir.display());
}

/// A free loopback port (bound, then released), never the same one twice in
/// this test process: the kernel may hand a just-released port out again,
/// and two masters of one cluster must not be given the same port.
pub fn free_addr() -> SocketAddr {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let addr = l.local_addr().expect("local addr");
        let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
        if !given.contains(&addr.port()) {
            given.push(addr.port());
            return addr;
        }
    }
}

/// An `ocean` child process with its log file; killed (after a SIGCONT, in
/// case it was stopped) when dropped.
#[derive(Debug)]
pub struct Process {
    log: PathBuf,
    child: Option<Child>,
    /// The network namespace (`ip netns` name) it runs in, if not the
    /// test's own.
    netns: Option<String>,
}

impl Process {
    /// Where the process logs.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// A process that logs to `log` once started.
    pub fn new(log: PathBuf) -> Self {
        Process {
            log,
            child: None,
            netns: None,
        }
    }

    /// A process that runs in network namespace `netns` (entered with
    /// `nsenter`, which then executes `ocean`, so the pid is ocean's).
    pub fn in_netns(log: PathBuf, netns: &str) -> Self {
        Process {
            log,
            child: None,
            netns: Some(netns.to_string()),
        }
    }

    /// Starts `ocean ARGS...`, appending its output to the log.
    pub fn spawn(&mut self, args: &[std::ffi::OsString]) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .context("open log")?;
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/var/run/netns/{ns}"))
                    .arg("--")
                    .arg(ocean_bin());
                c
            }
            None => Command::new(ocean_bin()),
        };
        let child = cmd
            .args(args)
            // A test or benchmark killed before its handles drop must not
            // leave masters and agents running.
            .env("OCEAN_EXIT_WITH_PARENT", "1")
            // `OCEAN_TEST_LOG` (e.g. `ocean_master::reconcile=debug,info`)
            // turns up the processes' logging when chasing a problem.
            .env(
                "OCEAN_LOG",
                std::env::var("OCEAN_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawn ocean {:?}", args.first()))?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends a signal (SIGSTOP, SIGCONT, ...).
    pub fn signal(&self, sig: Signal) {
        if let Some(c) = &self.child {
            let _ = kill(Pid::from_raw(c.id() as i32), sig);
            if sig == Signal::SIGSTOP {
                wait_stopped(c.id());
            }
        }
    }

    /// Whether the process was started and has since exited by itself.
    pub fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    /// Whether the process was started and not killed.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The last 30 lines of the log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // A stopped process must be continued to die promptly.
        self.signal(Signal::SIGCONT);
        self.kill();
    }
}

fn os(args: &[&str]) -> Vec<std::ffi::OsString> {
    args.iter().map(std::ffi::OsString::from).collect()
}

/// One master process.
#[derive(Debug)]
pub struct MasterProc {
    /// Raft id.
    pub id: u64,
    /// REST address.
    pub http: SocketAddr,
    /// gRPC address.
    pub grpc: SocketAddr,
    /// Data dir.
    pub data_dir: PathBuf,
    /// Extra flags (for example --join).
    pub args: Vec<String>,
    /// The process.
    pub process: Process,
}

impl MasterProc {
    /// Starts (or restarts) the process.
    pub fn start(&mut self) -> anyhow::Result<()> {
        let id = self.id.to_string();
        let http = self.http.to_string();
        let grpc = self.grpc.to_string();
        let mut args = os(&["master", "--id", &id, "--http", &http, "--grpc", &grpc]);
        args.push("--data-dir".into());
        args.push(self.data_dir.clone().into_os_string());
        args.extend(self.args.iter().map(Into::into));
        self.process.spawn(&args)
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Sends a signal (SIGSTOP, SIGCONT, ...).
    pub fn signal(&self, sig: Signal) {
        self.process.signal(sig);
    }

    /// Whether the process is running.
    pub fn is_running(&self) -> bool {
        self.process.is_running()
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// A REST client for this master.
    pub fn api(&self) -> Api {
        Api::new(&self.http.to_string())
    }

    /// The tail of this master's log, for failure messages.
    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }
}

/// One `ocean agent` process.
#[derive(Debug)]
pub struct AgentProc {
    /// Its data dir (holds its stable id).
    pub data_dir: PathBuf,
    /// Flags after `ocean agent`.
    pub args: Vec<String>,
    /// The process.
    pub process: Process,
}

impl AgentProc {
    /// Starts (or restarts) the agent.
    pub fn start(&mut self) -> anyhow::Result<()> {
        let mut args = os(&["agent", "--data-dir"]);
        args.push(self.data_dir.clone().into_os_string());
        args.extend(self.args.iter().map(Into::into));
        self.process.spawn(&args)
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// The agent's stable id, once it has written it.
    pub fn id(&self) -> Option<String> {
        std::fs::read_to_string(self.data_dir.join("agent-id"))
            .ok()
            .map(|s| s.trim().to_string())
    }

    /// The tail of the agent's log.
    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    /// The cgroup (under each controller's root) that holds the agent's
    /// task cgroups: one per agent, `ocean-<agent id>`.
    pub fn cgroup_parent(&self) -> String {
        format!("ocean-{}", self.id().unwrap_or_default())
    }
}

impl Drop for AgentProc {
    /// Tasks outlive their agent by design, so a test's agent takes its
    /// tasks and their cgroups with it.
    fn drop(&mut self) {
        self.process.kill();
        if self.id().is_some() {
            crate::tasks::reap_cgroups(&self.cgroup_parent());
        }
    }
}

/// A cluster of master processes sharing one temp dir.
#[derive(Debug)]
pub struct Cluster {
    /// The masters, index i has id i+1.
    pub masters: Vec<MasterProc>,
    /// The `--peers` value they were bootstrapped with.
    pub peers: String,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` masters with extra flags.
    pub fn start(n: u64, extra: &[&str]) -> anyhow::Result<Self> {
        Self::start_each(n, |_| extra.iter().map(|s| s.to_string()).collect())
    }

    /// Starts `n` masters, each with the extra flags `extra(id)` gives.
    pub fn start_each(n: u64, extra: impl Fn(u64) -> Vec<String>) -> anyhow::Result<Self> {
        // Another test process may grab a port between our probe and the
        // master's bind: if any master could not bind, start over on new ports.
        let mut last = String::new();
        for _ in 0..3 {
            let mut c = Self::try_start(n, &extra)?;
            match c.wait_listening(Duration::from_secs(10)) {
                Ok(()) => return Ok(c),
                Err(e) => last = format!("{e:#}"),
            }
        }
        bail!("masters did not start in three attempts: {last}")
    }

    fn try_start(n: u64, extra: &impl Fn(u64) -> Vec<String>) -> anyhow::Result<Self> {
        let mut dir = tempfile::tempdir()?;
        // `OCEAN_TEST_KEEP=1` keeps the dir (the processes' logs, data
        // dirs) after the test, when chasing a failure.
        if std::env::var_os("OCEAN_TEST_KEEP").is_some() {
            dir.disable_cleanup(true);
            eprintln!("OCEAN_TEST_KEEP: keeping {}", dir.path().display());
        }
        let addrs: Vec<(SocketAddr, SocketAddr)> =
            (0..n).map(|_| (free_addr(), free_addr())).collect();
        let peers = addrs
            .iter()
            .enumerate()
            .map(|(i, (_, g))| format!("{}={g}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut masters = Vec::new();
        for (i, (http, grpc)) in addrs.into_iter().enumerate() {
            let id = i as u64 + 1;
            let mut args = vec!["--peers".to_string(), peers.clone()];
            args.extend(extra(id));
            let mut m = MasterProc {
                id,
                http,
                grpc,
                data_dir: dir.path().join(format!("m{id}")),
                args,
                process: Process::new(dir.path().join(format!("m{id}.log"))),
            };
            m.start()?;
            masters.push(m);
        }
        Ok(Cluster {
            masters,
            peers,
            dir,
        })
    }

    /// Waits until every master accepts connections on its REST port; fails
    /// as soon as one has exited.
    fn wait_listening(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        for m in &mut self.masters {
            loop {
                if std::net::TcpStream::connect_timeout(&m.http, Duration::from_millis(200)).is_ok()
                {
                    break;
                }
                if m.process.exited() {
                    bail!("master {} exited at start:\n{}", m.id, m.log_tail());
                }
                if Instant::now() > deadline {
                    bail!("master {} is not listening:\n{}", m.id, m.log_tail());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// A new, not yet started master that will join through the others.
    pub fn new_joiner(&self, id: u64, extra: &[&str]) -> MasterProc {
        let join = self
            .masters
            .iter()
            .map(|m| m.grpc.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let mut args = vec!["--join".to_string(), join];
        args.extend(extra.iter().map(|s| s.to_string()));
        MasterProc {
            id,
            http: free_addr(),
            grpc: free_addr(),
            data_dir: self.dir.path().join(format!("m{id}")),
            args,
            process: Process::new(self.dir.path().join(format!("m{id}.log"))),
        }
    }

    /// A new, not yet started agent pointed at every master, with extra
    /// flags (for example `--attr idc=a`).
    pub fn new_agent(&self, name: &str, extra: &[&str]) -> AgentProc {
        let masters = self
            .masters
            .iter()
            .map(|m| m.grpc.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let mut args = vec!["--master".to_string(), masters];
        args.extend(extra.iter().map(|s| s.to_string()));
        if !extra.contains(&"--ports") {
            args.extend(["--ports".to_string(), agent_ports()]);
        }
        AgentProc {
            data_dir: self.dir.path().join(format!("agent-{name}")),
            args,
            process: Process::new(self.dir.path().join(format!("agent-{name}.log"))),
        }
    }

    /// The master with raft id `id`.
    pub fn master(&self, id: u64) -> &MasterProc {
        &self.masters[(id - 1) as usize]
    }

    /// Mutable access by id.
    pub fn master_mut(&mut self, id: u64) -> &mut MasterProc {
        &mut self.masters[(id - 1) as usize]
    }

    /// Waits until every running master in `among` agrees on one leader
    /// that is itself among them, and returns its id.
    pub async fn wait_leader(&self, among: &[u64], timeout: Duration) -> anyhow::Result<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut seen = Vec::new();
            for id in among {
                let m = self.master(*id);
                if let Ok(r) = m.api().get("/v1/status").await {
                    seen.push(r.body["leader"].as_u64().unwrap_or(0));
                } else {
                    seen.push(0);
                }
            }
            if let Some(first) = seen.first() {
                if *first != 0 && among.contains(first) && seen.iter().all(|l| l == first) {
                    return Ok(*first);
                }
            }
            if Instant::now() > deadline {
                let logs: Vec<String> =
                    among.iter().map(|id| self.master(*id).log_tail()).collect();
                bail!(
                    "no agreed leader among {among:?} (saw {seen:?}); logs:\n{}",
                    logs.join("\n---\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The temp dir everything lives in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// An `ocean dev` process on a data dir of the test's, killed on drop with
/// its agent's tasks and cgroups (they outlive the agent by design).
#[derive(Debug)]
pub struct DevProc {
    child: std::process::Child,
    data_dir: PathBuf,
}

impl DevProc {
    /// Starts `ocean dev ARGS` with `OCEAN_DATA_DIR=data_dir`, output
    /// discarded.
    pub fn spawn(data_dir: &Path, args: &[&str]) -> anyhow::Result<Self> {
        let child = std::process::Command::new(ocean_bin())
            .arg("dev")
            .args(args)
            .env("OCEAN_EXIT_WITH_PARENT", "1")
            .env("OCEAN_DATA_DIR", data_dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("spawn ocean dev")?;
        Ok(DevProc {
            child,
            data_dir: data_dir.to_path_buf(),
        })
    }
}

impl Drop for DevProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Ok(id) = std::fs::read_to_string(self.data_dir.join("agent/agent-id")) {
            crate::tasks::reap_cgroups(&format!("ocean-{}", id.trim()));
        }
    }
}

/// Waits (up to 5 s) until every thread of `pid` is stopped. A SIGSTOP
/// stops a multi-threaded process only once the thread that takes it
/// runs and stops the others: on a loaded machine its other threads can
/// go on working for milliseconds after `kill` returns (a raft follower
/// acknowledged a write that way, so a test meant to find no quorum found
/// one).
pub fn wait_stopped(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let tasks = format!("/proc/{pid}/task");
    while Instant::now() < deadline {
        let Ok(dir) = std::fs::read_dir(&tasks) else {
            return;
        };
        let all = dir.flatten().all(|t| {
            std::fs::read_to_string(t.path().join("stat")).map_or(true, |stat| {
                // The state follows the command name, which may hold ')'.
                let state = stat
                    .rfind(')')
                    .and_then(|i| stat[i + 1..].split_whitespace().next());
                matches!(state, Some("T" | "t" | "Z" | "X"))
            })
        });
        if all {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
