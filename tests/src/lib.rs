//! Helpers shared by the workspace tests and benchmark drivers: start real
//! `ocean master` processes on loopback, signal them, and talk to them.
//!
//! Every process started here is killed when its handle drops, so a failing
//! test leaves nothing running.

pub mod cluster;
pub mod http;

pub use cluster::{ocean_bin, Cluster, MasterProc};
pub use http::Api;
