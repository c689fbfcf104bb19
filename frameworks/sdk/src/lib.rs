//! The framework SDK: how ELB, MySQL, Redis, cron and self-healing are
//! built on Ocean. A framework is a client of the masters like any other:
//! it reads through a filtered watch, writes through `ocean-client`, keeps
//! its own state in its namespace of the masters' store, and runs its
//! instances as ordinary jobs.
//!
//! ```text
//!              filtered watch (jobs, tasks, its keys)
//!  masters ────────────────────────────────► View ──► Framework::reconcile(view, now)   (pure)
//!     ▲                                                        │
//!     │  Client: put/delete jobs, put/delete keys (CAS)        ▼
//!     └──────────────────────────────────────────────── Plan { actions, wake_at }
//!                 Runner: acts only while it holds the framework's lease
//! ```
//!
//! - [`framework`]: the [`Framework`] trait, [`Plan`] and [`Action`];
//! - [`view`]: [`View`], the state a framework sees, built from events;
//! - [`runner`]: [`Runner`], which takes the lease (active/standby across
//!   instances: in-process on the leader, or standalone), follows the
//!   watch, reconciles and executes;
//! - [`failover`]: the one record of a failover every framework writes, so
//!   the masters' `failover` alert rules can read it.

pub mod api_error;
pub mod failover;
pub mod follow;
pub mod framework;
pub mod runner;
pub mod view;

pub use api_error::{ApiError, ApiResult, Refused};
pub use follow::{holds_lease, ViewFollower};
pub use framework::{Action, Framework, Plan};
pub use runner::{Runner, RunnerOptions};
pub use view::View;
