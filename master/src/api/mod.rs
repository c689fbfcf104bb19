//! The masters' APIs: REST+JSON ([`http`]), gRPC ([`grpc`]) and the watch
//! stream both of them serve ([`watch`]). Errors are mapped to HTTP and gRPC
//! status codes in one place ([`error`]).

pub mod agent;
pub mod agents;
pub mod convert;
pub mod deployments;
pub mod error;
pub mod extract;
pub mod frameworks;
pub mod grpc;
pub mod grpc_api;
pub mod http;
pub mod in_process;
pub mod jobs;
pub mod summary;
pub mod tasks;
pub mod usage;
pub mod watch;
