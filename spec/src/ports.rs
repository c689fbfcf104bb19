//! Ports a task needs. Each has a name that health checks and Docker port
//! mappings refer to, and from which DNS SRV names are derived.

use serde::{Deserialize, Serialize};

/// One port of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSpec {
    /// Name, unique in the job: `[a-z][a-z0-9-]{0,14}`, not ending in `-`.
    pub name: String,
    /// 0 = any free host port chosen by the agent, else this fixed host port;
    /// tasks find it in `$PORT<index>`.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Transport protocol.
    #[serde(default)]
    pub protocol: PortProtocol,
}

/// Default for [`PortSpec::port`]: dynamic.
pub fn default_port() -> u16 {
    0
}

/// Transport protocol of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortProtocol {
    /// TCP (the default).
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl PortProtocol {
    /// `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            PortProtocol::Tcp => "tcp",
            PortProtocol::Udp => "udp",
        }
    }
}
