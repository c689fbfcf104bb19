//! Ocean's ELB framework: load balancers that follow a job's healthy
//! tasks. ELB objects live as keys of the `elb` namespace of the masters'
//! store; LB hosts run an agent that turns them, with the tasks, into an
//! nftables data plane; keepalived moves the VIPs.
//!
//! ```text
//!  REST /v1/elbs (http) ──► store (kv `elb/elbs/<name>`, CAS) ──► masters
//!                                                                  │ watch
//!  agent: View (ELBs + tasks) ─► model: only the ELBs an event touched ─► plane::virtual_servers
//!         ─► plane_state (per VS, maglev) ─► programmer: nft_script::script_delta(installed,
//!            desired, the keys that changed) ─► libnftables (one transaction)
//!  keepalived: VRRP config for the VIPs (run by the agent); LVS export of the same VS/RS
//! ```
//!
//! - [`spec`]: the ELB object, validation naming the field, conflicts.
//! - [`backends`]: which tasks take traffic (the one rule).
//! - [`maglev`]: consistent-hash slot tables (client-hash VS).
//! - [`rr`]: exact weighted tables (counter-dispatched VS).
//! - [`plane`]: the desired data plane (pure).
//! - [`plane_state`], [`model`]: the plane kept up to date per VS, and
//!   the agent's model that recomputes only what a watch event touched.
//! - [`nft_script`], [`nft_read`]: the table as text, diffs, and reading back.
//! - [`vs_ids`]: the small id per served VS that keys its slots.
//! - [`nft`]: the OS boundary (real `nft`, a test double).
//! - [`programmer`]: one transaction per change, read back on failure.
//! - [`status`]: each VS with its real servers and their health.
//! - [`store`], [`http`]: the objects through the masters, the REST API.
//! - [`agent`]: the LB host's loop.
//! - [`metrics`]: per-VS series on the agent's `/metrics`.
//! - [`keepalived`]: VRRP and LVS configuration.
//! - [`vrrp`], [`keepalived_run`]: the LB host's VRRP settings, and
//!   keepalived run by the agent as a supervised child (stale VIPs removed
//!   before it starts).

pub mod agent;
pub mod backends;
pub mod http;
pub mod keepalived;
pub mod keepalived_run;
pub mod maglev;
pub mod metrics;
pub mod model;
pub mod nft;
pub mod nft_lib;
pub mod nft_read;
pub mod nft_script;
pub mod plane;
pub mod plane_state;
pub mod programmer;
pub mod rr;
pub mod spec;
pub mod status;
pub mod store;
pub mod vrrp;
pub mod vs_ids;

/// The framework namespace ELB objects are kept in.
pub const NAMESPACE: &str = "elb";
