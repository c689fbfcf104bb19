//! Generated protocol code for Ocean.
//!
//! - [`v1`]: the replicated `Command`s and the client gRPC API (`OceanApi`).
//! - [`raft`]: master-to-master transport (raft messages, forwarded writes).
//! - [`agent`]: the agent protocol (one stream per agent, to the leader).

#![allow(missing_debug_implementations, clippy::all)]

/// Client API and replicated commands.
pub mod v1 {
    tonic::include_proto!("ocean.v1");
}

/// Master-to-master transport.
pub mod raft {
    tonic::include_proto!("ocean.raft.v1");
}

/// The agent protocol.
pub mod agent {
    tonic::include_proto!("ocean.agent.v1");
}
