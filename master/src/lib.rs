//! Ocean's master: the replicated keeper of the cluster's intent.
//!
//! ```text
//!  REST (api::http) ─┐                          ┌─► RaftStore (RocksDB: log, hard state,
//!  gRPC (api::grpc) ─┼─► Master::propose ─► node::Driver (one thread owns RawNode)
//!                    │   (forwards to leader)   │     state machine, compaction)
//!                    │                          ├─► transport::GrpcTransport ─► peers
//!                    │                          └─► ClusterState::apply ─► feed ─► watchers
//!  watch / SSE ◄─────┴─────────────────────────────────────────────────────────┘
//! ```
//!
//! - [`config`]: settings and their validation.
//! - [`kernel`]: raft driver, storage, state machine and change feed; imports
//!   nothing above it.
//! - [`transport`]: gRPC between masters.
//! - [`reconcile`]: the leader's controllers (reconciler: jobs to tasks, launches, kills;
//!   liveness; status batching) and the [`reconcile::Host`] seam they act through.
//! - [`master`]: the handle the APIs use, and [`run`].
//! - [`sessions`]: the agents' streams as this master holds them.
//! - [`usage`]: the tasks' usage samples the agents push, in the leader's memory.
//! - [`service`]: the one place client writes are validated and proposed.
//! - [`leader`]: the per-term supervisor that starts and stops everything that runs
//!   only on the leader (the controllers of [`reconcile`], hosted frameworks).
//! - [`api`]: REST, gRPC, watch, the in-process client: adapters over [`service`].

pub mod alerts;
pub mod api;
pub mod config;
pub mod error;
pub mod host_checks;
pub mod kernel;
pub mod leader;
pub mod master;
pub mod metrics;
pub mod reconcile;
pub mod service;
pub mod sessions;
pub mod startup;
pub mod transport;
pub mod usage;

#[cfg(test)]
mod harness;

pub use config::{
    parse_peers, AgentSettings, MasterConfig, QuotaSetting, RaftSettings, SchedulerSettings,
};
pub use error::{Error, Result};
pub use master::Master;
pub use startup::{bind, run, run_mounted, run_with, start};
