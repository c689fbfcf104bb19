//! Ocean's RDS framework: MySQL (MariaDB) databases as a service. A
//! database (name, cluster, product line, department, full name,
//! template, instances) is a key of the `mysql` namespace; its instances
//! are the ordinary Ocean tasks of one job, each a real `mariadbd` with
//! its datadir in the job's persistent volume.
//!
//! ```text
//!  REST /v1/databases (api) ──► databases/<name> ──► MysqlFramework::reconcile (pure)
//!                                                      └─► one job per database (jobs)
//!  tasks + databases ──► Operator (same lease holder as the runner)
//!                          MysqlAdmin::observe ──► bootstrap/steady/failover_step (pure)
//!                          ──► MysqlAdmin::execute; topology/<name> (CAS)
//!                          status() (pure) ──► status/<name> ──► GET /v1/databases/{id}, CLI
//! ```
//!
//! - [`spec`]: [`DatabaseSpec`] and its validation, errors naming the field;
//! - [`templates`]: `mysql-general`, `mysql-large`;
//! - [`jobs`]: the database's job: `hostname UNIQUE`, persistent volume,
//!   mariadbd configured on its command line, a health check that passes
//!   on the primary only (so DNS `primary.<db>...` follows it);
//! - [`framework`]: [`MysqlFramework`], the SDK's reconcile over the keys;
//! - [`gtid`]: GTID positions and containment;
//! - [`decide`](mod@decide): the operator's pure decisions;
//! - [`admin`]: [`MysqlAdmin`], the I/O boundary, and [`RealAdmin`];
//!   [`admin_mem`]: the in-memory double;
//! - [`operator`]: [`Operator`], the loop, the failover and carrying out
//!   switchovers;
//! - [`switchover`]: a planned change of primary, as a stored request and
//!   the operator's pure step;
//! - [`manual`]: what a manual action (switchover, scale-in, rebuild)
//!   acts on, chosen from the observed status;
//! - [`archive`]: continuous binlog archiving and the replay of a
//!   restore to a point in time;
//! - [`backup`]: full backups by `mariadb-backup` on a replica, their
//!   off-site copy and checksums, and restores into a new database
//!   ([`backup_api`]: its REST side);
//! - [`seed`]: rebuilding an instance from a healthy one's
//!   `mariadb-backup` stream (the pure side; the operator's in
//!   `operator_seed.rs`);
//! - [`status`]: what a database looks like now;
//! - [`grants`]: the users of the jobs allowed to use a database, kept
//!   at the hosts where those jobs' tasks run (the operator's side in
//!   `operator_grants.rs`);
//! - [`api`]: the REST routes; [`actions`]: switchover and scale;
//!   [`grants_api`]: the allowed jobs and their credentials.

pub mod actions;
pub mod admin;
pub mod admin_mem;
pub mod api;
pub mod archive;
pub mod archive_api;
pub mod backup;
pub mod backup_api;
pub mod decide;
pub mod framework;
pub mod grants;
pub mod grants_api;
pub mod gtid;
pub mod jobs;
pub mod manual;
pub mod operator;
pub mod seed;
pub mod spec;
pub mod status;
pub mod switchover;
pub mod templates;

use std::sync::Arc;
use std::time::Duration;

pub use admin::{MysqlAdmin, RealAdmin, Secrets};
pub use framework::{DatabaseRecord, MysqlFramework, Topology, NAME};
pub use operator::{Operator, OperatorOptions};
pub use spec::{DatabaseSpec, InvalidDatabase};
pub use status::{DatabaseStatus, NodeStatus};
pub use templates::Template;

/// How long one admin call to an instance may take: the probe deadline
/// of a hung primary.
pub const ADMIN_TIMEOUT: Duration = Duration::from_millis(300);

/// Starts the operator over `client` with the real admin, acting while
/// `holder` holds the framework's lease, until `shutdown`.
pub fn spawn_operator(
    client: Arc<dyn ocean_client::Client>,
    holder: String,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let admin: Arc<dyn MysqlAdmin> = Arc::new(RealAdmin::new(ADMIN_TIMEOUT));
    let op = Operator::new(client, admin, OperatorOptions::new(holder));
    tokio::spawn(op.run(shutdown))
}
