//! # ocean-agent: the native executor
//!
//! The library half of `ocean agent`: it turns a [`TaskSpec`] into a real
//! process in its own session, cgroup and sandbox, reports its life on a
//! channel, kills it with a grace period, and survives its own death: every
//! task is checkpointed, and [`Executor::recover`] re-adopts the survivors.
//! No networking here; the agent's gRPC shell drives this API.
//!
//! ```text
//!                       ┌────────────── Executor ───────────────┐
//!  launch(TaskSpec) ───►│ ports ─ sandbox ─ CgroupDriver(v1|v2)  │──► mpsc<TaskStatus>
//!  kill(id, grace)  ───►│ spawn wrapper ─ checkpoint ─ supervise │     STAGING … RUNNING
//!  recover()        ───►│ checkpoints ─► adopt or report ended   │     … FINISHED/FAILED/
//!                       └──────┬─────────────────────────────────┘       KILLED/LOST
//!                              │ spawn
//!                   ocean-task-wrapper: setsid, join cgroup.procs, execvp(task)
//! ```
//!
//! Modules: [`cgroup`] (the trait, v1, v2, detection), [`executor`] (launch,
//! kill, recover, per-task supervisors), [`task`] (spec, states, statuses),
//! [`wrapper`] (the exec wrapper), [`checkpoint`], [`sandbox`], [`ports`],
//! [`resources`], [`procfs`].

pub mod cgroup;
pub mod checkpoint;
pub mod error;
pub mod executor;
pub mod ports;
pub mod procfs;
pub mod resources;
pub mod sandbox;
pub mod session;
pub mod task;
pub mod wrapper;

pub use cgroup::{detect as detect_cgroups, CgroupDriver, CgroupLimits, CgroupVersion, TaskCgroup};
pub use error::{Error, Result};
pub use executor::{Executor, ExecutorConfig, Recovery, RunningTask, WrapperCommand};
pub use ports::{PortAllocator, PortRange};
pub use resources::{HostResources, ResourceOverrides};
pub use task::{PortRequest, Reason, TaskCommand, TaskSpec, TaskState, TaskStatus};
pub use wrapper::wrapper_main;
