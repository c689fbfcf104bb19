//! Ocean's host healing framework (issue 25): hosts that fall ill are
//! found, drained, repaired and returned, without healing ever causing an
//! outage. Agents judge their own hosts (`ocean_agent::host_checks`) and
//! report on their session; the leader shows the latest on each agent.
//!
//! ```text
//!  agents ─host checks─► leader ─GET agents─┐
//!                                            ▼
//!  tickets/<id> (kv) ◄──write──  Operator: guard (storm, node share, job share)
//!        │                                  └► machine::step per host (pure)
//!        │                                       └► set status (drain) / repair job pinned
//!        ▼                                          to the host / delete repair job
//!  REST /v1/tickets (api), ocean ticket, event stream (kv_put of namespace healing)
//! ```
//!
//! - [`ticket`]: [`Ticket`], [`HostState`], transitions and actions;
//! - [`config`]: [`HealingConfig`] (the `config` key) and its validation;
//! - [`machine`]: the pure per-host state machine;
//! - [`guard`]: storm, node and job shares (pure);
//! - [`judge`]: checks judged again per tree node, launches failing on several hosts (pure);
//! - [`repair`]: repair jobs pinned to the host;
//! - [`operator`]: [`Operator`], the loop that reads, steps and executes;
//! - [`framework`]: [`HealingFramework`], the SDK side (lease, stray repair jobs);
//! - [`api`]: the REST routes.

pub mod api;
pub mod config;
pub mod framework;
pub mod guard;
pub mod judge;
pub mod machine;
pub mod operator;
pub mod repair;
pub mod ticket;

#[cfg(test)]
mod machine_tests;
#[cfg(test)]
mod operator_tests;

use std::sync::Arc;

pub use config::{HealingConfig, InvalidConfig, RepairAction};
pub use framework::HealingFramework;
pub use machine::{step, Allowed, Checks, Command, Observation, RepairSeen};
pub use operator::{Operator, OperatorOptions};
pub use ticket::{HostState, Ticket};

/// The framework's name: its namespace and lease.
pub const NAME: &str = "healing";

/// Starts the operator over `client`, acting while `holder` holds the
/// framework's lease, until `shutdown`.
pub fn spawn_operator(
    client: Arc<dyn ocean_client::Client>,
    holder: String,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let op = Operator::new(client, OperatorOptions::new(holder));
    tokio::spawn(op.run(shutdown))
}
