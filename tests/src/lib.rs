//! Helpers shared by the workspace tests and benchmark drivers: start real
//! `ocean master` processes on loopback, signal them, and talk to them.
//!
//! Every process started here is killed when its handle drops, so a failing
//! test leaves nothing running.

pub mod browser;
pub mod caches;
pub mod chaos;
pub mod cluster;
pub mod databases;
pub mod dns;
pub mod docker;
pub mod elb_net;
pub mod events;
pub mod http;
pub mod linearizability;
pub mod netns;
pub mod partition;
pub mod tasks;
pub mod tls;

/// The generated etcd v3 KV client (benchmarks only).
#[allow(missing_debug_implementations, clippy::all)]
pub mod etcd {
    tonic::include_proto!("etcdserverpb");
}

pub use cluster::{ocean_bin, AgentProc, Cluster, MasterProc};
pub use http::Api;
