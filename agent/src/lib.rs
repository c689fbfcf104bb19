//! # ocean-agent: the agent
//!
//! The library half of `ocean agent`. At its core the native executor turns
//! a [`TaskSpec`] into a real process in its own session, cgroup and
//! sandbox, reports its life on a channel, kills it with a grace period, and
//! survives its own death: every task is checkpointed, and
//! [`Executor::recover`] re-adopts the survivors. Around it, the
//! [`runtime`] keeps a session with the leader (register with a full task
//! report, carry out launch / kill / reconcile, report status changes) and
//! serves task logs over HTTP ([`logs`]).
//!
//! ```text
//!  leader ══ gRPC stream (session) ══► runtime ──► Executor ──► tasks
//!         ◄═ Register{tasks}, TaskReport ═╝  ▲ table of latest statuses
//!  HTTP GET /v1/tasks/{id}/logs ──► logs ────┘ (sandbox stdout/stderr)
//!
//!                       ┌────────────── Executor ───────────────┐
//!  launch(TaskSpec) ───►│ ports ─ sandbox ─ CgroupDriver(v1|v2)  │──► mpsc<TaskStatus>
//!  kill(id, grace)  ───►│ spawn wrapper ─ checkpoint ─ supervise │     STAGING … RUNNING
//!  recover()        ───►│ checkpoints ─► adopt or report ended   │     … FINISHED/FAILED/
//!                       └──────┬─────────────────────────────────┘       KILLED/LOST
//!                              │ spawn
//!                   ocean-task-wrapper: setsid, join cgroup.procs, execvp(task)
//! ```
//!
//! | module | holds |
//! | --- | --- |
//! | [`runtime`] | [`runtime::run`]: recovery, the command loop, the task table, protocol conversions |
//! | [`session`] | the gRPC stream to the leader: register, heartbeats, redirects, reconnects |
//! | [`logs`] | the task log HTTP server (whole, tail, follow) |
//! | [`executor`] | launch, kill, recover, per-task supervisors |
//! | [`docker`] | the Docker executor: containers through the engine (bollard), events, logs, re-adoption |
//! | [`cgroup`] | the [`CgroupDriver`] trait, v1, v2, detection |
//! | [`release`] | artifacts laid out as `releases/<version>/` per job (fetch, sha256, extract, keep 3), config templates rendered per task |
//! | [`usage`] | per-task usage from cgroups every interval: pushed to the leader, served at `/metrics` |
//! | [`health`] | health checks of running tasks: probes, the checker, reporting only changes |
//! | [`host_checks`] | checks of the host itself (disk, memory, load, restarts, launches, a command), reported on the session |
//! | [`task`] | spec, states, statuses, exit classification |
//! | [`wrapper`] | the exec wrapper (`ocean agent exec-wrapper`, `ocean-task-wrapper`) |
//! | [`checkpoint`], [`sandbox`], [`ports`], [`resources`], [`procfs`] | one concern each |

pub mod cgroup;
pub mod checkpoint;
pub mod docker;
pub mod error;
pub mod executor;
pub mod health;
pub mod host_checks;
pub mod logs;
pub mod ports;
pub mod procfs;
pub mod release;
pub mod resources;
pub mod runtime;
pub mod sandbox;
pub mod session;
pub mod task;
pub mod usage;
pub mod wrapper;

pub use cgroup::{detect as detect_cgroups, CgroupDriver, CgroupLimits, CgroupVersion, TaskCgroup};
pub use error::{Error, Result};
pub use executor::{Executor, ExecutorConfig, Recovery, RunningTask, WrapperCommand};
pub use ports::{PortAllocator, PortRange};
pub use resources::{HostResources, ResourceOverrides};
pub use runtime::AgentConfig;
pub use task::{PortRequest, Reason, TaskCommand, TaskSpec, TaskState, TaskStatus};
pub use wrapper::wrapper_main;
