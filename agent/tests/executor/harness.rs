//! Shared test harness: a temp data dir, a cgroup parent unique to the test
//! (`ocean-test-<name>-<pid>`), an executor wired to the real cgroups of
//! this host, and an RAII guard that kills every process left in the test's
//! cgroups and removes them, even when the test fails.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};
use std::time::Duration;

use anyhow::{anyhow, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use ocean_agent::{
    CgroupDriver, Executor, ExecutorConfig, PortRange, TaskState, TaskStatus, WrapperCommand,
};
use tokio::sync::mpsc::UnboundedReceiver;

/// Every test body is bounded by this.
pub const TEST_DEADLINE: Duration = Duration::from_secs(60);

static TRACING: Once = Once::new();

fn init_tracing() {
    TRACING.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("ocean_agent=debug")),
            )
            .with_test_writer()
            .try_init();
    });
}

/// Removes the test's cgroup parents (and everything in them) on drop.
pub struct CgroupGuard {
    parents: Vec<PathBuf>,
}

impl CgroupGuard {
    fn cleanup(&self) {
        for _ in 0..200 {
            let mut left = false;
            for parent in &self.parents {
                let children: Vec<PathBuf> = std::fs::read_dir(parent)
                    .map(|rd| {
                        rd.flatten()
                            .filter(|e| e.path().is_dir())
                            .map(|e| e.path())
                            .collect()
                    })
                    .unwrap_or_default();
                for dir in children.iter().chain(std::iter::once(parent)) {
                    for pid in procs(dir) {
                        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                    }
                }
                for dir in children.iter().chain(std::iter::once(parent)) {
                    if dir.exists() && std::fs::remove_dir(dir).is_err() {
                        left = true;
                    }
                }
            }
            if !left {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        eprintln!(
            "warning: test cgroups not fully removed: {:?}",
            self.parents
        );
    }
}

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// The pids in `dir/cgroup.procs` (none if it is gone).
pub fn procs(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// One test's world.
pub struct Harness {
    pub data: tempfile::TempDir,
    pub cgroups: Arc<dyn CgroupDriver>,
    // Dropped last: kills and removes whatever the test left.
    _guard: CgroupGuard,
}

impl Harness {
    /// A harness for `test`, or `None` (after printing why) when this host's
    /// cgroups are not writable.
    pub fn new(test: &str) -> anyhow::Result<Option<Self>> {
        init_tracing();
        let parent = format!("ocean-test-{test}-{}", std::process::id());
        let cgroups = ocean_agent::detect_cgroups(&parent).context("detect cgroups")?;
        let probe = cgroups.task_cgroup("probe");
        let parents: Vec<PathBuf> = probe
            .dirs()
            .iter()
            .filter_map(|d| d.parent().map(Path::to_path_buf))
            .collect();
        let guard = CgroupGuard {
            parents: parents.clone(),
        };
        for parent in &parents {
            if let Err(error) = std::fs::create_dir_all(parent) {
                eprintln!(
                    "SKIP {test}: cgroups not writable ({}: {error})",
                    parent.display()
                );
                return Ok(None);
            }
        }
        let data = tempfile::tempdir()?;
        Ok(Some(Self {
            data,
            cgroups,
            _guard: guard,
        }))
    }

    /// Executor settings for this test: the test wrapper binary, fast polling.
    pub fn config(&self) -> ExecutorConfig {
        let wrapper = WrapperCommand {
            program: PathBuf::from(env!("CARGO_BIN_EXE_ocean-task-wrapper")),
            args: Vec::new(),
        };
        let mut config = ExecutorConfig::new(self.data.path(), wrapper);
        config.poll_interval = Duration::from_millis(100);
        config.hostname = "test-host".into();
        config
    }

    /// An executor over this harness's data dir and cgroups.
    pub fn executor(&self) -> (Executor, UnboundedReceiver<TaskStatus>) {
        self.executor_with(self.config())
    }

    /// An executor with custom settings.
    pub fn executor_with(
        &self,
        config: ExecutorConfig,
    ) -> (Executor, UnboundedReceiver<TaskStatus>) {
        Executor::new(
            config,
            Arc::clone(&self.cgroups),
            PortRange {
                low: 31000,
                high: 31099,
            },
        )
    }
}

/// Waits for the first status of `task` in `state`, failing on a terminal
/// status in another state and after `within`.
pub async fn wait_for(
    rx: &mut UnboundedReceiver<TaskStatus>,
    task: &str,
    state: TaskState,
    within: Duration,
) -> anyhow::Result<TaskStatus> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let status = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .map_err(|_| anyhow!("timed out waiting for {task} to be {state:?}"))?
            .ok_or_else(|| anyhow!("status channel closed"))?;
        if status.task_id != task {
            continue;
        }
        if status.state == state {
            return Ok(status);
        }
        if status.state.is_terminal() {
            return Err(anyhow!(
                "{task} ended {:?} while waiting for {state:?}: {status:?}",
                status.state
            ));
        }
    }
}

/// Waits until each `(task, state)` has been reported, whatever the order
/// of the statuses (`wait_for` skips other tasks' statuses, so two
/// `wait_for`s in a row can miss the second task's status). Returns the
/// statuses in the order asked.
pub async fn wait_each(
    rx: &mut UnboundedReceiver<TaskStatus>,
    wanted: &[(&str, TaskState)],
    within: Duration,
) -> anyhow::Result<Vec<TaskStatus>> {
    let deadline = tokio::time::Instant::now() + within;
    let mut found: Vec<Option<TaskStatus>> = vec![None; wanted.len()];
    while found.iter().any(Option::is_none) {
        let status = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .map_err(|_| anyhow!("timed out waiting for {wanted:?}; got {found:?}"))?
            .ok_or_else(|| anyhow!("status channel closed"))?;
        if let Some(i) = wanted
            .iter()
            .position(|(t, s)| *t == status.task_id && *s == status.state)
        {
            found[i] = Some(status);
        }
    }
    Ok(found.into_iter().flatten().collect())
}

/// Waits until `check` holds, polling every 20 ms, up to `within`.
pub async fn eventually(
    within: Duration,
    what: &str,
    mut check: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    while !check() {
        if tokio::time::Instant::now() >= deadline {
            return Err(anyhow!("timed out waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// True if a process with this pid exists and is not a zombie.
pub fn process_exists(pid: i32) -> bool {
    ocean_agent::procfs::read_stat(pid).is_some_and(|s| s.state != 'Z')
}

/// Runs a test body under [`TEST_DEADLINE`].
pub async fn bounded<F: std::future::Future<Output = anyhow::Result<()>>>(
    body: F,
) -> anyhow::Result<()> {
    tokio::time::timeout(TEST_DEADLINE, body)
        .await
        .map_err(|_| anyhow!("test exceeded {TEST_DEADLINE:?}"))?
}
