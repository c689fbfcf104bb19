//! Containers: running a task from a Docker image instead of as a plain
//! process on the agent.

use serde::{Deserialize, Serialize};

/// How the task is containerised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Container {
    /// Run the task in Docker.
    pub docker: DockerContainer,
}

/// A Docker container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerContainer {
    /// Image reference, e.g. `registry.example.com:5000/team/web:1.4.2`.
    pub image: String,
    /// Network mode.
    #[serde(default)]
    pub network: DockerNetwork,
    /// Container ports published on job ports (bridge network only).
    #[serde(default)]
    pub port_mappings: Vec<PortMapping>,
    /// Host directories mounted into the container.
    #[serde(default)]
    pub volumes: Vec<Volume>,
    /// Give the container extended privileges (use sparingly).
    #[serde(default = "default_false")]
    pub privileged: bool,
    /// Pull the image before every launch even if it is present.
    #[serde(default = "default_false")]
    pub force_pull: bool,
}

/// Default for the boolean switches: off.
pub fn default_false() -> bool {
    false
}

/// Docker network mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DockerNetwork {
    /// Own network namespace; ports published through `port_mappings`.
    #[default]
    Bridge,
    /// Share the agent's network namespace.
    Host,
}

/// Publishes a container port on one of the job's ports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortMapping {
    /// Port the program listens on inside the container; 1..=65535.
    pub container_port: u16,
    /// Name of the job port (in `ports`) it is published on.
    pub port_name: String,
}

/// A host directory mounted into the container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    /// Absolute path on the agent.
    pub host_path: String,
    /// Absolute path inside the container.
    pub container_path: String,
    /// Mount read-only.
    #[serde(default = "default_false")]
    pub read_only: bool,
}
