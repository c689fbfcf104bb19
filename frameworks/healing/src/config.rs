//! [`HealingConfig`]: the framework's settings, kept as the key `config` of
//! the `healing` namespace (`PUT /v1/frameworks/healing/kv/config`); every
//! field has a default, so no key at all is a working setup.

use serde::{Deserialize, Serialize};

/// A setting that is wrong: which field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidConfig {
    pub field: String,
    pub reason: String,
}

/// One remediation, run as a task pinned to the ill host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepairAction {
    /// Its name in tickets (`clean`, `restart-agent`, ...): a lowercase DNS
    /// label.
    pub name: String,
    /// The command (`/bin/sh -c`). `{data_dir}` is replaced by the agent's
    /// data dir. Empty for the built-ins: `clean` (the agent's cache and
    /// rotated sandbox logs) and `restart-agent` (the agent starts again
    /// in place, its tasks kept).
    #[serde(default)]
    pub cmd: String,
    /// How long it may run before it counts as failed.
    #[serde(default = "default_action_timeout")]
    pub timeout_seconds: u64,
}

/// The settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealingConfig {
    /// Only open tickets and record what would be done; never act.
    #[serde(default)]
    pub dry_run: bool,
    /// How long a check must fail before the host is a problem.
    #[serde(default = "default_problem_after")]
    pub problem_after_seconds: u64,
    /// Host checks older than this are not trusted (the agent's liveness is
    /// the master's business).
    #[serde(default = "default_stale")]
    pub stale_after_seconds: u64,
    /// After a repair ends well, how long fresh checks may keep failing
    /// before the repair counts as failed.
    #[serde(default = "default_verify")]
    pub verify_seconds: u64,
    /// Failed repairs before the host goes offline for a person.
    #[serde(default = "default_max_repairs")]
    pub max_repairs: u32,
    /// The repairs, tried in turn.
    #[serde(default = "default_actions")]
    pub actions: Vec<RepairAction>,
    /// The agent attribute naming a host's tree node for the drain guard
    /// (hosts without it share one node).
    #[serde(default = "default_node_attribute")]
    pub node_attribute: String,
    /// Most of a node's hosts out of service (draining, repairing,
    /// offline) at once, as a share (at least one host of a node of two or
    /// more).
    #[serde(default = "default_node_share")]
    pub max_node_drain_share: f64,
    /// Most of a job's live tasks on hosts being drained at once, as a
    /// share (at least one task).
    #[serde(default = "default_job_share")]
    pub max_job_drain_share: f64,
    /// More than this share of the hosts ill at once (and at least
    /// `min_hosts_for_storm` of them) is a storm: healing stops acting and
    /// raises an alert.
    #[serde(default = "default_ill_share")]
    pub max_ill_share: f64,
    #[serde(default = "default_min_storm")]
    pub min_hosts_for_storm: u32,
    /// Checks that do not make a host ill, per tree node (`node_attribute`
    /// value, e.g. `idc.c3`; `*` for every node): a check is named whole
    /// (`load`) or by prefix ending in `:` (`disk:`).
    #[serde(default)]
    pub ignore_checks: std::collections::BTreeMap<String, Vec<String>>,
    /// Limits per tree node (`node_attribute` value, e.g. `idc.c3`; `*`
    /// for every node) and check (a name such as `load`, or a prefix
    /// ending in `:` such as `disk:`): the value the agent measured is
    /// judged again against this limit, in the agent's direction (at least
    /// for free space, at most for pressure, load and counts). The node's
    /// own entry wins over `*`; an exact name over a prefix, a longer
    /// prefix over a shorter.
    #[serde(default)]
    pub check_limits: std::collections::BTreeMap<String, std::collections::BTreeMap<String, f64>>,
}

fn default_action_timeout() -> u64 {
    120
}
fn default_problem_after() -> u64 {
    10
}
fn default_stale() -> u64 {
    30
}
fn default_verify() -> u64 {
    30
}
fn default_max_repairs() -> u32 {
    3
}
fn default_actions() -> Vec<RepairAction> {
    vec![RepairAction {
        name: "clean".into(),
        cmd: String::new(),
        timeout_seconds: default_action_timeout(),
    }]
}
fn default_node_attribute() -> String {
    "idc".into()
}
fn default_node_share() -> f64 {
    0.25
}
fn default_job_share() -> f64 {
    0.5
}
fn default_ill_share() -> f64 {
    0.5
}
fn default_min_storm() -> u32 {
    2
}

impl Default for HealingConfig {
    fn default() -> Self {
        HealingConfig {
            dry_run: false,
            problem_after_seconds: default_problem_after(),
            stale_after_seconds: default_stale(),
            verify_seconds: default_verify(),
            max_repairs: default_max_repairs(),
            actions: default_actions(),
            node_attribute: default_node_attribute(),
            max_node_drain_share: default_node_share(),
            max_job_drain_share: default_job_share(),
            max_ill_share: default_ill_share(),
            min_hosts_for_storm: default_min_storm(),
            ignore_checks: Default::default(),
            check_limits: Default::default(),
        }
    }
}

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// What a key naming checks must be (`ignore_checks`, `check_limits`).
const CHECK_NAME: &str = "a check name or a prefix ending in ':' (1 to 128 bytes)";

fn is_check_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= 128
}

impl HealingConfig {
    /// Whether the failing check `name` is ignored on hosts of `node`.
    pub fn ignores(&self, node: &str, name: &str) -> bool {
        [node, "*"]
            .iter()
            .filter_map(|n| self.ignore_checks.get(*n))
            .flatten()
            .any(|i| {
                if i.ends_with(':') {
                    name.starts_with(i.as_str())
                } else {
                    name == i
                }
            })
    }

    /// The limit set for the check `name` on hosts of `node`, if any.
    pub fn limit_for(&self, node: &str, name: &str) -> Option<f64> {
        [node, "*"].iter().find_map(|n| {
            let limits = self.check_limits.get(*n)?;
            limits.get(name).copied().or_else(|| {
                limits
                    .iter()
                    .filter(|(k, _)| k.ends_with(':') && name.starts_with(k.as_str()))
                    .max_by_key(|(k, _)| k.len())
                    .map(|(_, v)| *v)
            })
        })
    }

    /// Parses and validates a stored config.
    pub fn parse(bytes: &[u8]) -> Result<Self, InvalidConfig> {
        let cfg: HealingConfig = serde_json::from_slice(bytes).map_err(|e| InvalidConfig {
            field: "config".into(),
            reason: e.to_string(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every field, naming the first that is wrong.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let bad = |field: &str, reason: &str| {
            Err(InvalidConfig {
                field: field.into(),
                reason: reason.into(),
            })
        };
        for (field, v) in [
            ("max_node_drain_share", self.max_node_drain_share),
            ("max_job_drain_share", self.max_job_drain_share),
            ("max_ill_share", self.max_ill_share),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                return bad(field, "a share above 0 and at most 1");
            }
        }
        if self.max_repairs == 0 {
            return bad("max_repairs", "at least 1");
        }
        if self.stale_after_seconds == 0 {
            return bad("stale_after_seconds", "at least 1");
        }
        if self.actions.is_empty() {
            return bad("actions", "at least one repair action");
        }
        for (i, a) in self.actions.iter().enumerate() {
            if !is_label(&a.name) {
                return bad(
                    &format!("actions[{i}].name"),
                    "a lowercase DNS label of at most 40 characters",
                );
            }
            if a.cmd.trim().is_empty() && !crate::repair::BUILT_IN.contains(&a.name.as_str()) {
                return bad(
                    &format!("actions[{i}].cmd"),
                    "a command (only the built-in `clean` and `restart-agent` may omit it)",
                );
            }
            if a.timeout_seconds == 0 || a.timeout_seconds > 86_400 {
                return bad(&format!("actions[{i}].timeout_seconds"), "1 to 86400");
            }
        }
        for (node, names) in &self.ignore_checks {
            for (i, n) in names.iter().enumerate() {
                if !is_check_name(n) {
                    return bad(&format!("ignore_checks.{node}[{i}]"), CHECK_NAME);
                }
            }
        }
        for (node, limits) in &self.check_limits {
            for (name, limit) in limits {
                let field = format!("check_limits.{node}.{name}");
                if !is_check_name(name) {
                    return bad(&field, CHECK_NAME);
                }
                if matches!(name.as_str(), "command" | "clock_skew") {
                    return bad(
                        &field,
                        "has no number to judge again (the command's exit, the agent's \
                         --host-check-max-clock-skew-ms)",
                    );
                }
                if !(limit.is_finite() && *limit >= 0.0) {
                    return bad(&field, "a finite number, at least 0");
                }
            }
        }
        if self.node_attribute.is_empty() {
            return bad("node_attribute", "an agent attribute name");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_errors_name_the_field() {
        assert!(HealingConfig::default().validate().is_ok());
        assert_eq!(HealingConfig::parse(b"{}"), Ok(HealingConfig::default()));
        let e = HealingConfig::parse(br#"{"max_ill_share": 0}"#).unwrap_err();
        assert_eq!(e.field, "max_ill_share");
        let e = HealingConfig::parse(br#"{"actions": [{"name": "Bad_Name", "cmd": "x"}]}"#)
            .unwrap_err();
        assert_eq!(e.field, "actions[0].name");
        let e = HealingConfig::parse(br#"{"actions": [{"name": "reboot"}]}"#).unwrap_err();
        assert_eq!(e.field, "actions[0].cmd");
        let e = HealingConfig::parse(br#"{"ignore_checks": {"idc.x": [""]}}"#).unwrap_err();
        assert_eq!(e.field, "ignore_checks.idc.x[0]");
        let cfg =
            HealingConfig::parse(br#"{"ignore_checks": {"idc.x": ["disk:"], "*": ["load"]}}"#)
                .expect("valid");
        assert!(cfg.ignores("idc.x", "disk:/data") && cfg.ignores("idc.y", "load"));
        assert!(!cfg.ignores("idc.y", "disk:/data") && !cfg.ignores("idc.x", "loadx"));
        let e =
            HealingConfig::parse(br#"{"check_limits": {"idc.x": {"command": 1}}}"#).unwrap_err();
        assert_eq!(e.field, "check_limits.idc.x.command");
        let e = HealingConfig::parse(br#"{"check_limits": {"*": {"load": -1}}}"#).unwrap_err();
        assert_eq!(e.field, "check_limits.*.load");
        let cfg = HealingConfig::parse(
            br#"{"check_limits": {"idc.x": {"disk:": 20, "disk:/data/sandboxes": 30},
                                  "*": {"load": 4, "disk:": 5}}}"#,
        )
        .expect("valid");
        assert_eq!(cfg.limit_for("idc.x", "disk:/data"), Some(20.0));
        assert_eq!(cfg.limit_for("idc.x", "disk:/data/sandboxes"), Some(30.0));
        assert_eq!(cfg.limit_for("idc.y", "disk:/data"), Some(5.0));
        assert_eq!(cfg.limit_for("idc.x", "load"), Some(4.0));
        assert_eq!(cfg.limit_for("idc.x", "memory"), None);
        let e = HealingConfig::parse(br#"{"dry_rn": true}"#).unwrap_err();
        assert!(e.reason.contains("unknown field"), "{e}");
    }
}
