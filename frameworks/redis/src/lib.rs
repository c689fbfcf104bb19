//! Ocean's Redis framework: caches as a service on Redis Cluster. A cache
//! (name, product line, shards, replicas, memory per instance,
//! persistence) is a key of the `redis` namespace; its instances are
//! ordinary Ocean tasks running a real `redis-server`.
//!
//! ```text
//!  REST /v1/caches (api) ──► caches/<name> ──► RedisFramework::reconcile (pure)
//!                                                 └─► one job per shard (jobs)
//!  tasks + caches ──► Operator (same lease holder as the runner)
//!                        RedisAdmin::observe ──► decide() (pure) ──► RedisAdmin::execute
//!                        status() (pure) ──► status/<name> ──► GET /v1/caches/{id}, CLI, UI
//! ```
//!
//! - [`spec`]: [`CacheSpec`] and its validation, errors naming the field;
//! - [`jobs`]: each shard's job: one job per shard under `hostname
//!   UNIQUE`, redis-server configured on its command line;
//! - [`framework`]: [`RedisFramework`], the SDK's reconcile over the keys;
//! - [`topology`]: parsing what a node says (`CLUSTER NODES`, `INFO`);
//! - [`decide`](mod@decide): the operator's pure decisions (meet, slots,
//!   replicate, fast failover, forget);
//! - [`admin`]: [`RedisAdmin`], the I/O boundary, and [`RealAdmin`];
//!   [`admin_mem`]: the in-memory double;
//! - [`operator`]: [`Operator`], the loop;
//! - [`backup`]: backups as RDB snapshots per shard and their manifest;
//!   [`rdb`]: a node's snapshot over the replication protocol;
//!   [`rdb_check`]: a snapshot loaded in a throwaway server for its digest;
//!   [`backup_api`]: backup and restore into a new cache, verified;
//! - [`manual`]: what an operator's failover or rebuild acts on;
//! - [`spread`]: keeping primaries on distinct hosts;
//! - [`status`]: what a cache looks like now;
//! - [`api`]: the REST routes.

pub mod admin;
pub mod admin_mem;
pub mod api;
pub mod backup;
pub mod backup_api;
pub mod decide;
pub mod framework;
pub mod jobs;
pub mod manual;
pub mod mover;
pub mod operator;
pub mod rdb;
pub mod rdb_check;
pub mod reshard;
pub mod spec;
pub mod spread;
pub mod status;
pub mod topology;

use std::sync::Arc;
use std::time::Duration;

pub use admin::{RealAdmin, RedisAdmin};
pub use decide::{decide, AdminCmd, Member};
pub use framework::{CacheRecord, RedisFramework, NAME};
pub use operator::{Operator, OperatorOptions};
pub use spec::{CacheSpec, InvalidCache, Persistence};
pub use status::{CacheStatus, NodeStatus};

/// How long one admin call to a Redis node may take.
pub const ADMIN_TIMEOUT: Duration = Duration::from_millis(500);

/// Starts the operator over `client` with the real admin, acting while
/// `holder` holds the framework's lease, until `shutdown`.
pub fn spawn_operator(
    client: Arc<dyn ocean_client::Client>,
    holder: String,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let admin: Arc<dyn RedisAdmin> = Arc::new(RealAdmin::new(ADMIN_TIMEOUT));
    let op = Operator::new(client, admin, OperatorOptions::new(holder));
    tokio::spawn(op.run(shutdown))
}
