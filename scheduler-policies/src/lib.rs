//! Pure placement for Ocean: an immutable [`Snapshot`] goes in, a [`Plan`]
//! comes out. No I/O, no async, no clocks, no randomness: the same snapshot
//! and [`Config`] always give the same plan, so the leader can plan a whole
//! round in one call and commit it as one raft entry.
//!
//! ```text
//!   Snapshot                 compile (once per round)          place (per task)                  Plan
//!  ┌──────────┐   ┌─────────────────────────────────┐   ┌──────────────────────────────┐   ┌────────────┐
//!  │ agents   │──►│ agents: free, ports, interned   │   │ priority levels, high first  │   │ placements │
//!  │ running  │   │   attributes, index by request  │   │  └ product lines: weighted   │   │ task→agent │
//!  │ pending  │   │   size then free score          │──►│    DRF, lowest share first   │──►│ +host ports│
//!  │ weights  │   │ jobs: static constraints →      │   │    └ jobs in request order   │   │ unplaced + │
//!  │ quotas   │   │   eligibility bitset (shared);  │   │ over a quota? ─► it waits    │   │   why      │
//!  └──────────┘   │   dynamic ones → counts/value   │   │ FILTER+RANK: the policy scans│   │ preemptions│
//!                 └─────────────────────────────────┘   │  the index from its cursor;  │   └────────────┘
//!                                                       │  yields feasible agents only │
//!                                                       │ none? preempt (if allowed)   │
//!                                                       │ still none? explain, once    │
//!                                                       │  per job; its rest wait too  │
//!                                                       └──────────────────────────────┘
//! ```
//!
//! * [`plan`] / [`plan_with`]: the round (`planner.rs`).
//! * [`Policy`]: `binpack` (default, best fit) and `spread` (worst fit),
//!   chosen per job or cluster-wide by name (`policy/`).
//! * [`Constraint`]: Marathon's `UNIQUE`, `CLUSTER`, `GROUP_BY`, `LIKE`,
//!   `UNLIKE`, `MAX_PER`, `IS` on any agent attribute (`constraint.rs`,
//!   evaluated in `filter.rs` and `dynamic.rs`).
//! * Fair share between product lines (`fairshare.rs`), quotas on
//!   service-tree nodes (`quota.rs`), priorities and preemption
//!   (`preempt.rs`).
//! * [`WaitReason`]: why a task waits, e.g. `0 of 10000 agents fit: 9000
//!   insufficient mem, 800 hostname:UNIQUE, 200 not online` (`explain.rs`).
//! * [`scale_down`]: which tasks to stop to reach N instances, keeping
//!   `GROUP_BY` and `MAX_PER` balanced (`scale_down.rs`).
//! * [`synthetic`]: the deterministic benchmark workload.
//!
//! Resources are integers (milli-cpus, MiB) so arithmetic is exact.
//!
//! # Example
//! ```
//! use ocean_scheduler_policies::*;
//!
//! let mut snap = Snapshot::default();
//! for h in ["h1", "h2", "h3"] {
//!     snap.agents.push(Agent::new(h, Resources::new(4.0, 8192, 0)).with_ports(31000, 31099));
//! }
//! snap.pending.push(JobRequest {
//!     job: "web".into(),
//!     tasks: (0..4).map(|i| format!("web.{i}")).collect(),
//!     resources: Resources::new(1.0, 1024, 0),
//!     ports: vec![PortRequest::dynamic("http")],
//!     constraints: vec![Constraint::new("hostname", Operator::Unique, None)],
//!     ..JobRequest::default()
//! });
//! let plan = plan(&snap, &Config::default());
//! assert_eq!(plan.placements.len(), 3);
//! assert_eq!(plan.placements[0].ports[0].port, 31000);
//! let waiting = &plan.unplaced[0];
//! assert_eq!(waiting.tasks, vec!["web.3"]);
//! assert_eq!(waiting.reason.to_string(), "0 of 3 agents fit: 3 hostname:UNIQUE");
//! ```

mod cluster;
mod config;
mod constraint;
mod dynamic;
mod explain;
mod fairshare;
mod filter;
mod hash;
mod index;
mod job;
mod plan;
mod planner;
mod policy;
mod ports;
mod preempt;
mod quota;
mod resources;
mod scale_down;
mod snapshot;
pub mod synthetic;

pub use config::Config;
pub use constraint::{Constraint, ConstraintError, Operator};
pub use explain::{FitExplanation, QuotaExceeded, QuotaResource, Reason, WaitReason};
pub use plan::{AssignedPort, Placement, Plan, PlanStats, Preemption, Unplaced};
pub use planner::{plan, plan_with};
pub use policy::{AgentSlot, AgentView, BinPack, Candidates, Policies, Policy, ScanOrder, Spread};
pub use resources::{PortRange, PortRequest, Resources};
pub use scale_down::scale_down;
pub use snapshot::{
    node_covers, Agent, JobRequest, Quota, RunningTask, Snapshot, ATTR_HOSTNAME, ATTR_STATUS,
    STATUS_ONLINE,
};
