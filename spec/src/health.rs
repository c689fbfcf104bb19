//! Health checks: how the agent decides that a running task is healthy.
//! Holds the types and their checks (which fields each protocol needs, the
//! named port exists and is tcp, ranges).

use serde::{Deserialize, Serialize};

use crate::ports::{PortProtocol, PortSpec};
use crate::validate::{check_command, find_port, Collector};

/// One health check, run against every task of the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// What kind of check: `http`, `tcp` or `command`.
    pub protocol: HealthCheckProtocol,
    /// For `http` and `tcp`: the name of the job port to check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_name: Option<String>,
    /// For `http`: the path requested, starting with `/`.
    #[serde(default = "default_path")]
    pub path: String,
    /// For `http`: lowest status code counted as healthy.
    #[serde(default = "default_status_min")]
    pub status_min: u16,
    /// For `http`: highest status code counted as healthy.
    #[serde(default = "default_status_max")]
    pub status_max: u16,
    /// For `command`: run by `/bin/sh -c`; exit status 0 is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Failures are ignored this long after the task started.
    #[serde(default = "default_grace_period_seconds")]
    pub grace_period_seconds: u32,
    /// Seconds between two checks.
    #[serde(default = "default_interval_seconds")]
    pub interval_seconds: u32,
    /// Milliseconds between two checks, `100..=86_400_000`: when set, it
    /// replaces `interval_seconds` (a check that must notice a change
    /// within a second, e.g. a database's new primary entering DNS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u32>,
    /// A check that takes longer than this fails.
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u32,
    /// The task is killed and replaced after this many failures in a row;
    /// 0 = never kill, only report.
    #[serde(default = "default_max_consecutive_failures")]
    pub max_consecutive_failures: u32,
}

impl HealthCheck {
    /// The time between two checks, ms: `interval_ms` if set, else
    /// `interval_seconds`.
    pub fn interval_ms(&self) -> u64 {
        self.interval_ms
            .map_or(u64::from(self.interval_seconds) * 1000, u64::from)
    }
}

/// Default for [`HealthCheck::path`].
pub fn default_path() -> String {
    "/".to_owned()
}

/// Default for [`HealthCheck::status_min`].
pub fn default_status_min() -> u16 {
    200
}

/// Default for [`HealthCheck::status_max`].
pub fn default_status_max() -> u16 {
    399
}

/// Default for [`HealthCheck::grace_period_seconds`].
pub fn default_grace_period_seconds() -> u32 {
    300
}

/// Default for [`HealthCheck::interval_seconds`].
pub fn default_interval_seconds() -> u32 {
    10
}

/// Default for [`HealthCheck::timeout_seconds`].
pub fn default_timeout_seconds() -> u32 {
    20
}

/// Default for [`HealthCheck::max_consecutive_failures`].
pub fn default_max_consecutive_failures() -> u32 {
    3
}

/// The kind of health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthCheckProtocol {
    /// HTTP GET of `path` on the named port; healthy if the status is in
    /// `status_min..=status_max`.
    Http,
    /// TCP connect to the named port.
    Tcp,
    /// Run `command` in the task's environment.
    Command,
}

impl HealthCheckProtocol {
    /// `http`, `tcp` or `command`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthCheckProtocol::Http => "http",
            HealthCheckProtocol::Tcp => "tcp",
            HealthCheckProtocol::Command => "command",
        }
    }
}

/// Checks one health check; `path` is e.g. `health_checks[0]`.
pub(crate) fn check_health(
    check: &HealthCheck,
    path: &str,
    ports: &[PortSpec],
    errors: &mut Collector,
) {
    let protocol = check.protocol.as_str();
    match check.protocol {
        HealthCheckProtocol::Http | HealthCheckProtocol::Tcp => {
            let field = format!("{path}.port_name");
            match &check.port_name {
                None => errors.push(field, format!("required for {protocol} checks")),
                Some(name) => {
                    if let Some(port) = find_port(&field, name, ports, errors) {
                        if port.protocol != PortProtocol::Tcp {
                            errors.push(
                                field,
                                format!("{protocol} checks need a tcp port; '{name}' is udp"),
                            );
                        }
                    }
                }
            }
            if check.command.is_some() {
                errors.push(
                    format!("{path}.command"),
                    format!("only used by command checks, not {protocol}"),
                );
            }
        }
        HealthCheckProtocol::Command => {
            let field = format!("{path}.command");
            match &check.command {
                None => errors.push(field, "required for command checks"),
                Some(cmd) => check_command(&field, cmd, errors),
            }
            if check.port_name.is_some() {
                errors.push(
                    format!("{path}.port_name"),
                    "only used by http and tcp checks",
                );
            }
        }
    }
    if !check.path.starts_with('/') || check.path.len() > 2048 {
        errors.push(
            format!("{path}.path"),
            "must start with '/' and be at most 2048 bytes",
        );
    } else if check
        .path
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        errors.push(
            format!("{path}.path"),
            "must not contain spaces or control characters (percent-encode them)",
        );
    }
    if !(100..=599).contains(&check.status_min) {
        errors.push(
            format!("{path}.status_min"),
            format!("must be an HTTP status 100..=599; got {}", check.status_min),
        );
    }
    if !(100..=599).contains(&check.status_max) || check.status_max < check.status_min {
        errors.push(
            format!("{path}.status_max"),
            format!(
                "must be an HTTP status 100..=599 and at least status_min ({}); got {}",
                check.status_min, check.status_max
            ),
        );
    }
    let ranges = [
        (
            "grace_period_seconds",
            check.grace_period_seconds,
            0,
            86_400,
        ),
        ("interval_seconds", check.interval_seconds, 1, 86_400),
        (
            "interval_ms",
            check.interval_ms.unwrap_or(100),
            100,
            86_400_000,
        ),
        ("timeout_seconds", check.timeout_seconds, 1, 86_400),
        (
            "max_consecutive_failures",
            check.max_consecutive_failures,
            0,
            1_000,
        ),
    ];
    for (name, value, lo, hi) in ranges {
        if value < lo || value > hi {
            errors.push(
                format!("{path}.{name}"),
                format!("must be {lo}..={hi}; got {value}"),
            );
        }
    }
}
