//! Generated protocol code for Ocean.
//!
//! - [`v1`]: the client gRPC API (`OceanApi`) and its public messages.
//! - [`internal`]: the replicated `Command`s and the records they build
//!   (raft log, RocksDB, snapshots); never sent to clients as they are.
//! - [`raft`]: master-to-master transport (raft messages, forwarded writes).
//! - [`agent`]: the agent protocol (one stream per agent, to the leader).

#![allow(missing_debug_implementations, clippy::all)]

/// The client API.
pub mod v1 {
    tonic::include_proto!("ocean.v1");
}

/// The masters' replicated commands and records.
pub mod internal {
    tonic::include_proto!("ocean.internal.v1");
}

/// Master-to-master transport.
pub mod raft {
    tonic::include_proto!("ocean.raft.v1");
}

/// The agent protocol.
pub mod agent {
    tonic::include_proto!("ocean.agent.v1");
}
