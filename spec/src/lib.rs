//! Ocean's job spec: the document a user submits to run a job.
//!
//! A spec names the job by its service-tree id, says what to run (a shell
//! command, an argument vector or a Docker image), how many instances, with
//! which resources, ports, health checks, placement constraints and rollout
//! settings. The master and the CLI both use this crate, so a spec is judged
//! the same way everywhere.
//!
//! ```text
//!   JSON / YAML bytes
//!        |  parse::parse_job_spec(input, Format)
//!        v
//!   serde (+ serde_path_to_error) ---> spec::JobSpec (defaults filled in)
//!        |                                  |  validate::JobSpec::validate
//!        v                                  v
//!   error::SpecError { errors: [FieldError { field: "ports[1].name", reason }] }
//! ```
//!
//! Modules:
//! - [`spec`]: [`JobSpec`] and its small sections (resources, back-off,
//!   upgrade strategy, flapping, placement policy) with named defaults;
//! - [`ports`], [`health`], [`container`], [`constraint`]: the larger
//!   sections; constraints keep Marathon's array form on the wire;
//! - [`artifact`], [`template`]: the release an agent lays out and the
//!   configuration files it renders for every task;
//! - [`unreachable`]: waiting for an unreachable agent before replacing;
//! - [`id`]: the service-tree id `cop.<c>_owt.<o>_pdl.<p>..._cluster.<cl>`;
//! - [`tree`]: [`TreeNode`], a node of the service tree and what it covers;
//! - [`tag_query`]: machine tags (`idc.c3_status.online`) and the query
//!   language selecting agents and tasks (`pdl.im !status.offline`);
//! - [`dns`]: the DNS names derived from it (shared by masters and `ocean-dns`);
//! - [`validate`]: `JobSpec::validate`, which runs every rule and collects
//!   all errors at once; the rules of constraints, health checks and
//!   containers live beside their types and are called from here;
//! - [`parse`]: JSON/YAML input and the mapping of serde errors to field paths;
//! - [`error`]: [`FieldError`] and [`SpecError`].
//!
//! ```
//! use ocean_spec::{parse_job_spec, Format};
//!
//! let yaml = b"id: cop.example_owt.dev_pdl.demo_service.tools_job.sleep_cluster.dev\ncmd: sleep 3600\n";
//! let spec = parse_job_spec(yaml, Format::Auto).expect("valid spec");
//! assert_eq!(spec.resources.mem, 128); // defaults are filled in
//! assert_eq!(spec.service_tree_id().job, "sleep");
//! let again = parse_job_spec(&spec.to_canonical_json(), Format::Auto).expect("canonical");
//! assert_eq!(again, spec);
//!
//! let err = parse_job_spec(b"{\"id\": \"cop.x\", \"cmd\": \"true\"}", Format::Auto).unwrap_err();
//! assert_eq!(err.errors[0].field, "id");
//! ```
//!
//! The user-facing reference is `docs/job-spec.md`, the machine-readable one
//! `docs/job-spec.schema.json`; tests keep both in step with this code.

pub mod artifact;
pub mod constraint;
pub mod container;
pub mod diff;
pub mod dns;
pub mod error;
pub mod health;
pub mod id;
pub mod parse;
pub mod ports;
pub mod rollout;
pub mod spec;
pub mod tag_query;
pub mod template;
pub mod tree;
pub mod unreachable;
pub mod validate;

pub use artifact::Artifact;
pub use constraint::{Constraint, ConstraintOperator};
pub use container::{Container, DockerContainer, DockerNetwork, PortMapping, Volume};
pub use error::{FieldError, SpecError};
pub use health::{HealthCheck, HealthCheckProtocol};
pub use id::ServiceTreeId;
pub use parse::{deserialize_job_spec, parse_job_spec, Format};
pub use ports::{PortProtocol, PortSpec};
pub use rollout::{Amount, Limits};
pub use spec::{Backoff, Flapping, JobSpec, JobType, PlacementPolicy, Resources, UpgradeStrategy};
pub use template::Template;
pub use tree::TreeNode;
pub use unreachable::UnreachableStrategy;
