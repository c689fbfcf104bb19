//! The masters' APIs: REST+JSON ([`http`]), gRPC ([`grpc`]) and the watch
//! stream both of them serve ([`watch`]). Errors are mapped to HTTP and gRPC
//! status codes in one place ([`error`]).

pub mod acl;
pub mod agent;
pub mod agents;
pub mod alerts;
pub mod auth;
pub mod convert;
pub mod deployments;
pub mod error;
pub mod extract;
pub mod frameworks;
pub mod grpc;
pub mod grpc_api;
pub mod grpc_usage;
pub mod http;
pub mod https;
pub mod in_process;
pub mod jobs;
pub mod openapi;
pub mod snapshot;
pub mod summary;
pub mod tasks;
pub mod tree;
pub mod usage;
pub mod usage_latest;
pub mod usage_report;
pub mod watch;

/// `agent`'s latest host checks as `m` holds them while it leads (a
/// follower sees no agent streams: `None`).
pub(crate) fn host_checks_of(
    m: &crate::Master,
    agent: &str,
) -> Option<std::sync::Arc<crate::host_checks::HostChecksView>> {
    if m.status().leader != m.id() {
        return None;
    }
    m.sessions().host_checks.get(agent)
}
