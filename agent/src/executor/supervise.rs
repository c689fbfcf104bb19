//! One supervisor per task: waits for the task's end (reaping our child, or
//! polling `/proc` for a re-adopted one), reports RUNNING once the process
//! is inside its cgroup, carries out kills (SIGTERM to the process group,
//! SIGKILL to the group and the whole cgroup after the grace period),
//! enforces the log cap, and on the end reads the OOM counter, removes the
//! cgroup, frees the ports and the checkpoint, and reports the final status.
//!
//! ```text
//!            ┌── kill request ──► SIGTERM group ── grace ──► SIGKILL group + cgroup
//! watch() ───┼── join tick ─────► pid in cgroup.procs? ──► RUNNING
//!            ├── log tick ──────► copy-truncate stdout/stderr over the cap
//!            └── exit ──────────► finish(): OOM counter, destroy cgroup, ports,
//!                                  checkpoint, terminal status, sandbox GC timer
//! ```

use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use tokio::sync::mpsc;
use tokio::time::{sleep, sleep_until, Instant};
use tracing::{debug, info, warn};

use super::Inner;
use crate::checkpoint::{self, TaskCheckpoint};
use crate::procfs;
use crate::sandbox;
use crate::task::{classify_exit, ExitFacts, ExitInfo, Reason, TaskState, TaskStatus};
use crate::wrapper::EXIT_WRAPPER_FAILED;

/// How often a starting task's cgroup membership is checked.
const JOIN_POLL: Duration = Duration::from_millis(2);

/// What the supervisor waits on.
#[derive(Debug)]
pub(crate) enum Waiter {
    /// Our own child: its exit status is known.
    Child(tokio::process::Child),
    /// A task re-adopted after a restart: only liveness can be observed.
    Adopted,
}

impl Waiter {
    async fn wait(&mut self, pid: i32, start_time: u64, poll: Duration) -> ExitInfo {
        match self {
            Waiter::Child(child) => match child.wait().await {
                Ok(status) => match (status.code(), status.signal()) {
                    (Some(code), _) => ExitInfo::Code(code),
                    (None, Some(signal)) => ExitInfo::Signal(signal),
                    (None, None) => ExitInfo::Unknown,
                },
                Err(error) => {
                    warn!(%error, pid, "waiting for task failed");
                    ExitInfo::Unknown
                }
            },
            Waiter::Adopted => loop {
                if let Some(exit) = adopted_exit(pid, start_time) {
                    return exit;
                }
                sleep(poll).await;
            },
        }
    }
}

/// `None` while a re-adopted process runs; once it ended, its exit when it
/// is this process's own child (an agent that re-executed itself keeps its
/// children, and reaps them here), else [`ExitInfo::Unknown`]. A zombie is
/// reaped only when its start time is the task's, so a recycled pid of
/// another child is never taken.
pub(crate) fn adopted_exit(pid: i32, start_time: u64) -> Option<ExitInfo> {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    match procfs::read_stat(pid) {
        Some(s) if s.start_time == start_time && !matches!(s.state, 'Z' | 'X') => None,
        Some(s) if s.start_time == start_time => Some(
            match waitpid(nix::unistd::Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, code)) => ExitInfo::Code(code),
                Ok(WaitStatus::Signaled(_, signal, _)) => ExitInfo::Signal(signal as i32),
                // Not our child (its parent reaps it), or not yet waitable.
                _ => ExitInfo::Unknown,
            },
        ),
        _ => Some(ExitInfo::Unknown),
    }
}

/// Watches one task until it ends. `joined` is true when the process is
/// already known to be inside its cgroup (re-adopted tasks).
pub(crate) async fn watch(
    inner: Arc<Inner>,
    mut checkpoint: TaskCheckpoint,
    mut waiter: Waiter,
    mut kill_rx: mpsc::UnboundedReceiver<Duration>,
    mut joined: bool,
) {
    let task = checkpoint.task_id.clone();
    let pid = checkpoint.pid;
    let start_time = checkpoint.start_time;
    let adopted = matches!(waiter, Waiter::Adopted);
    let poll = inner.config.poll_interval;
    let last_dir = checkpoint.cgroup.dirs().pop().unwrap_or_default();
    let mut sigkill_at: Option<Instant> = None;
    let mut sigkill_sent = false;
    let mut log_tick = tokio::time::interval(poll);
    log_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let exit = loop {
        tokio::select! {
            exit = waiter.wait(pid, start_time, poll) => break exit,
            Some(grace) = kill_rx.recv() => {
                if !checkpoint.kill_requested {
                    checkpoint.kill_requested = true;
                    if let Err(error) = checkpoint::write(&inner.config.data_dir, &checkpoint) {
                        warn!(%error, %task, "cannot record the kill in the checkpoint");
                    }
                }
                info!(%task, pid, grace_ms = grace.as_millis() as u64, "killing task: SIGTERM");
                signal_group(pid, start_time, adopted, Signal::SIGTERM);
                let at = Instant::now() + grace;
                sigkill_at = Some(sigkill_at.map_or(at, |old| old.min(at)));
            }
            _ = sleep_until(sigkill_at.unwrap_or_else(Instant::now)), if sigkill_at.is_some() && !sigkill_sent => {
                info!(%task, pid, "grace period over: SIGKILL");
                signal_group(pid, start_time, adopted, Signal::SIGKILL);
                kill_cgroup(&inner, &checkpoint);
                sigkill_sent = true;
            }
            _ = sleep(JOIN_POLL), if !joined => {
                if super::in_cgroup(&last_dir, pid) {
                    joined = true;
                    let mut status = TaskStatus::new(&task, TaskState::Running);
                    status.pid = Some(pid);
                    inner.emit(status);
                }
            }
            _ = log_tick.tick() => {
                sandbox::enforce_log_cap(&checkpoint.sandbox, inner.config.log_cap_bytes);
            }
        }
    };
    finish(&inner, &checkpoint, exit, joined).await;
}

/// Sends `signal` to the task's process group (its pid: the wrapper called
/// setsid), or to the pid alone if the group is gone. A re-adopted pid is
/// only signalled while it still is the same process.
fn signal_group(pid: i32, start_time: u64, adopted: bool, signal: Signal) {
    if adopted && !procfs::is_alive(pid, start_time) {
        return;
    }
    match killpg(Pid::from_raw(pid), signal) {
        Ok(()) => {}
        Err(Errno::ESRCH) => {
            if let Err(error) = kill(Pid::from_raw(pid), signal) {
                if error != Errno::ESRCH {
                    warn!(%error, pid, ?signal, "cannot signal task");
                }
            }
        }
        Err(error) => warn!(%error, pid, ?signal, "cannot signal task's process group"),
    }
}

/// SIGKILLs everything in the task's cgroup (processes that left the group).
fn kill_cgroup(inner: &Inner, checkpoint: &TaskCheckpoint) {
    match inner.cgroups.procs(&checkpoint.cgroup) {
        Ok(procs) => {
            for p in procs {
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            }
        }
        Err(error) => warn!(%error, task = %checkpoint.task_id, "cannot list task cgroup"),
    }
}

/// Everything after the main process is gone; also used by recovery for
/// tasks that ended while the agent was down.
pub(crate) async fn finish(
    inner: &Arc<Inner>,
    checkpoint: &TaskCheckpoint,
    exit: ExitInfo,
    joined: bool,
) -> TaskStatus {
    let task = &checkpoint.task_id;
    let events = inner.cgroups.oom_events(&checkpoint.cgroup);
    let facts = ExitFacts {
        exit,
        oom_killed: false,
        kill_requested: checkpoint.kill_requested,
    };
    let oom_killed = match &events {
        Ok(events) => events.killed(facts.ended_by_sigkill()),
        Err(error) => {
            debug!(%error, %task, "no OOM counter for task");
            false
        }
    };
    let facts = ExitFacts {
        oom_killed,
        ..facts
    };
    let (state, reason) = match classify_exit(&facts) {
        (TaskState::Failed, Reason::Exited)
            if !joined && exit == ExitInfo::Code(EXIT_WRAPPER_FAILED) =>
        {
            (TaskState::Failed, Reason::LaunchFailed)
        }
        other => other,
    };

    // Remove the cgroup (and whatever is left in it) off the async threads.
    let cgroups = Arc::clone(&inner.cgroups);
    let cgroup = checkpoint.cgroup.clone();
    let destroyed = tokio::task::spawn_blocking(move || cgroups.destroy(&cgroup)).await;
    let mut message = events
        .ok()
        .map(|e| format!("oom_kills={:?} limit_hits={}", e.oom_kills, e.limit_hits));
    match destroyed {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            warn!(%error, %task, "cannot remove task cgroup");
            message = Some(format!("cgroup cleanup failed: {error}"));
        }
        Err(error) => warn!(%error, %task, "cgroup cleanup panicked"),
    }
    sandbox::enforce_log_cap(&checkpoint.sandbox, inner.config.log_cap_bytes);
    inner.release_ports(&checkpoint.ports);
    if let Err(error) = checkpoint::remove(&inner.config.data_dir, task) {
        warn!(%error, %task, "cannot remove task checkpoint");
    }
    inner.forget(task);
    inner.schedule_sandbox_removal(checkpoint.sandbox.clone());

    let mut status = TaskStatus::new(task, state);
    status.reason = Some(reason);
    status.pid = Some(checkpoint.pid);
    status.message = message;
    match exit {
        ExitInfo::Code(code) => status.exit_code = Some(code),
        ExitInfo::Signal(signal) => status.signal = Some(signal),
        ExitInfo::Unknown => {}
    }
    info!(%task, state = ?state, reason = reason.as_str(), exit_code = ?status.exit_code, signal = ?status.signal, "task ended");
    inner.emit(status.clone());
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start_time(pid: i32) -> u64 {
        procfs::read_stat(pid).map(|s| s.start_time).unwrap_or(0)
    }

    /// Polls [`adopted_exit`] for up to 2 s.
    fn ended(pid: i32, start: u64) -> Option<ExitInfo> {
        for _ in 0..200 {
            if let Some(exit) = adopted_exit(pid, start) {
                return Some(exit);
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        None
    }

    /// A child of this process (as a task is of an agent restarted in
    /// place): running is `None`, ended is its real exit once reaped here.
    #[test]
    fn an_own_childs_end_is_reaped_with_its_exit() {
        let mut sleeper = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let pid = sleeper.id() as i32;
        let start = start_time(pid);
        assert_eq!(adopted_exit(pid, start), None, "running");
        let _ = sleeper.kill();
        assert_eq!(ended(pid, start), Some(ExitInfo::Signal(9)));
        // Reaped here, so the handle finds nothing left to wait for.
        assert!(sleeper.try_wait().is_err());

        let mut quits = std::process::Command::new("sh")
            .args(["-c", "exit 3"])
            .spawn()
            .expect("sh");
        let pid = quits.id() as i32;
        // A zombie keeps its start time, so even an end before the first
        // look is read back with its code.
        assert_eq!(ended(pid, start_time(pid)), Some(ExitInfo::Code(3)));
        assert!(quits.try_wait().is_err(), "reaped here");
    }

    /// Not our child, or a recycled pid: never reaped, never mistaken.
    #[test]
    fn another_process_or_start_time_is_not_taken() {
        let me = std::process::id() as i32;
        assert_eq!(adopted_exit(me, start_time(me)), None, "alive");
        assert_eq!(
            adopted_exit(me, start_time(me) + 1),
            Some(ExitInfo::Unknown),
            "same pid, another start: that task is gone"
        );
    }
}
