//! Task lifecycle types: what the executor is asked to run ([`TaskSpec`]),
//! the states a task goes through ([`TaskState`]) and what it reports
//! ([`TaskStatus`]), plus the pure rule that turns an exit into a final
//! state ([`classify_exit`]).
//!
//! ```text
//! Staging ─► Starting ─► Running ─┬─► Finished  (exit 0)
//!    │           │                ├─► Failed    (exit != 0, signal, oom_killed)
//!    └───────────┴─► Failed       ├─► Killed    (kill requested)
//!     (launch_failed)             └─► Lost      (ended while the agent was down)
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// What to execute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskCommand {
    /// Run through `/bin/sh -c`.
    Shell(String),
    /// `argv[0]` is looked up in `PATH` and exec'd with the rest as arguments.
    Args(Vec<String>),
}

/// One port the task asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRequest {
    /// Name; the task sees the port as `PORT_<NAME>` (uppercased, `-` → `_`).
    pub name: String,
    /// 0 = any free port of the agent's range, else exactly this port.
    pub port: u16,
}

/// Everything the executor needs to launch one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// Unique task id; also the name of its cgroup, sandbox and checkpoint.
    pub task_id: String,
    /// The job the task belongs to (`OCEAN_JOB_ID`).
    pub job_id: String,
    /// The program.
    pub command: TaskCommand,
    /// The job's environment.
    pub env: BTreeMap<String, String>,
    /// CPU cores (cfs quota); 0 = no quota.
    pub cpus: f64,
    /// Memory hard limit in MiB; 0 = no limit.
    pub mem_mib: u64,
    /// `pids.max`; `None` = the executor's default.
    pub pids_limit: Option<u64>,
    /// Ports, in `PORT0..N` order.
    pub ports: Vec<PortRequest>,
    /// Time between SIGTERM and SIGKILL when the task is killed.
    pub kill_grace: Duration,
    /// Health checks the agent runs while the task runs.
    #[serde(default)]
    pub health_checks: Vec<crate::health::HealthCheckSpec>,
    /// The release to lay out and the templates to render before the
    /// task starts; `None` when the job has neither.
    #[serde(default)]
    pub release: Option<crate::release::ReleaseSpec>,
    /// The job keeps `<data>/volumes/<job id>` across its tasks
    /// (`OCEAN_VOLUME`).
    #[serde(default)]
    pub persistent_volume: bool,
}

impl TaskSpec {
    /// A shell task with no limits, ports or environment (for tests and tools).
    pub fn shell(task_id: &str, job_id: &str, cmd: &str) -> Self {
        Self {
            task_id: task_id.to_string(),
            job_id: job_id.to_string(),
            command: TaskCommand::Shell(cmd.to_string()),
            env: BTreeMap::new(),
            cpus: 0.0,
            mem_mib: 0,
            pids_limit: None,
            ports: Vec::new(),
            kill_grace: Duration::from_secs(5),
            health_checks: Vec::new(),
            release: None,
            persistent_volume: false,
        }
    }
}

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskState {
    /// Accepted; sandbox, ports and cgroup being prepared.
    Staging,
    /// The process exists and is joining its cgroup.
    Starting,
    /// The user's program runs inside its cgroup.
    Running,
    /// Exited with code 0.
    Finished,
    /// Exited non-zero, died of a signal, was OOM-killed or could not start.
    Failed,
    /// Ended because a kill was requested.
    Killed,
    /// Ended while nobody watched; the outcome is unknown.
    Lost,
}

impl TaskState {
    /// The upper-case name used in JSON and on the wire (`RUNNING`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Staging => "STAGING",
            Self::Starting => "STARTING",
            Self::Running => "RUNNING",
            Self::Finished => "FINISHED",
            Self::Failed => "FAILED",
            Self::Killed => "KILLED",
            Self::Lost => "LOST",
        }
    }

    /// True for the states a task never leaves.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Finished | Self::Failed | Self::Killed | Self::Lost
        )
    }
}

/// Why a task is in its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The process exited on its own (see the exit code).
    Exited,
    /// The process died of a signal nobody asked for.
    Signal,
    /// Killed on request.
    Killed,
    /// The kernel's OOM killer acted in the task's memory cgroup.
    OomKilled,
    /// The task ended while the agent was down: the exit status is unknowable.
    ExitedWhileAgentDown,
    /// The task could not be started.
    LaunchFailed,
    /// Re-adopted by a restarted agent.
    Recovered,
    /// A kill named a task this agent does not know; reported KILLED so the
    /// master can settle it.
    UnknownTask,
}

impl Reason {
    /// The snake_case name used in JSON and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exited => "exited",
            Self::Signal => "signal",
            Self::Killed => "killed",
            Self::OomKilled => "oom_killed",
            Self::ExitedWhileAgentDown => "exited_while_agent_down",
            Self::LaunchFailed => "launch_failed",
            Self::Recovered => "recovered",
            Self::UnknownTask => "unknown_task",
        }
    }
}

/// One status change of a task, as sent on the executor's channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStatus {
    /// The task.
    pub task_id: String,
    /// Its new state.
    pub state: TaskState,
    /// Why, when there is more to say than the state.
    pub reason: Option<Reason>,
    /// The process id, once there is a process.
    pub pid: Option<i32>,
    /// Exit code, when the process exited normally and we were its parent.
    pub exit_code: Option<i32>,
    /// The signal that ended the process, when known.
    pub signal: Option<i32>,
    /// Human-readable detail (errors, counters).
    pub message: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
}

impl TaskStatus {
    /// A status with only the state set, stamped now.
    pub fn new(task_id: &str, state: TaskState) -> Self {
        Self {
            task_id: task_id.to_string(),
            state,
            reason: None,
            pid: None,
            exit_code: None,
            signal: None,
            message: None,
            timestamp_ms: now_ms(),
        }
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// How a process ended, when we know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitInfo {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
    /// Not our child (re-adopted after a restart): the status is gone.
    Unknown,
}

/// Facts gathered when a task's main process is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitFacts {
    /// How the main process ended.
    pub exit: ExitInfo,
    /// The cgroup's OOM counter says the OOM killer acted.
    pub oom_killed: bool,
    /// A kill had been requested before the end.
    pub kill_requested: bool,
}

/// SIGKILL's number, for the OOM heuristics.
pub(crate) const SIGKILL: i32 = 9;

impl ExitFacts {
    /// True if the main process ended by SIGKILL (directly, or as a shell
    /// reporting `128 + 9` for its child).
    pub fn ended_by_sigkill(&self) -> bool {
        matches!(self.exit, ExitInfo::Signal(SIGKILL) | ExitInfo::Code(137))
    }
}

/// The final state and reason of a task: a requested kill wins, then an OOM
/// kill recorded by the cgroup (unless the task still succeeded), then the
/// exit itself.
pub fn classify_exit(facts: &ExitFacts) -> (TaskState, Reason) {
    if facts.kill_requested {
        return (TaskState::Killed, Reason::Killed);
    }
    let succeeded = facts.exit == ExitInfo::Code(0);
    if facts.oom_killed && !succeeded {
        return (TaskState::Failed, Reason::OomKilled);
    }
    match facts.exit {
        ExitInfo::Code(0) => (TaskState::Finished, Reason::Exited),
        ExitInfo::Code(_) => (TaskState::Failed, Reason::Exited),
        ExitInfo::Signal(_) => (TaskState::Failed, Reason::Signal),
        ExitInfo::Unknown => (TaskState::Lost, Reason::ExitedWhileAgentDown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(exit: ExitInfo, oom_killed: bool, kill_requested: bool) -> ExitFacts {
        ExitFacts {
            exit,
            oom_killed,
            kill_requested,
        }
    }

    #[test]
    fn exits_are_classified() {
        use ExitInfo::*;
        assert_eq!(
            classify_exit(&facts(Code(0), false, false)),
            (TaskState::Finished, Reason::Exited)
        );
        assert_eq!(
            classify_exit(&facts(Code(3), false, false)),
            (TaskState::Failed, Reason::Exited)
        );
        assert_eq!(
            classify_exit(&facts(Signal(11), false, false)),
            (TaskState::Failed, Reason::Signal)
        );
        assert_eq!(
            classify_exit(&facts(Code(137), true, false)),
            (TaskState::Failed, Reason::OomKilled)
        );
        assert_eq!(
            classify_exit(&facts(Code(0), true, false)),
            (TaskState::Finished, Reason::Exited)
        );
        assert_eq!(
            classify_exit(&facts(Signal(15), true, true)),
            (TaskState::Killed, Reason::Killed)
        );
        assert_eq!(
            classify_exit(&facts(Unknown, false, false)),
            (TaskState::Lost, Reason::ExitedWhileAgentDown)
        );
        assert_eq!(
            classify_exit(&facts(Unknown, true, false)),
            (TaskState::Failed, Reason::OomKilled)
        );
    }

    #[test]
    fn states_serialize_upper_case_and_reasons_snake_case() -> anyhow::Result<()> {
        assert_eq!(serde_json::to_string(&TaskState::Running)?, "\"RUNNING\"");
        assert_eq!(serde_json::to_string(&Reason::OomKilled)?, "\"oom_killed\"");
        assert_eq!(
            Reason::ExitedWhileAgentDown.as_str(),
            "exited_while_agent_down"
        );
        assert!(TaskState::Lost.is_terminal() && !TaskState::Running.is_terminal());
        for state in [TaskState::Staging, TaskState::Running, TaskState::Lost] {
            assert_eq!(
                serde_json::to_string(&state)?,
                format!("\"{}\"", state.as_str())
            );
        }
        Ok(())
    }
}
