//! What the `ocean.alerts` namespace holds: rules (`rule/<id>`) and the
//! alerts they raised (`firing/<alert id>`), as JSON, and the checks a new
//! rule passes before it is written.

use std::collections::HashMap;

use ocean_spec::id::is_dns_label;
use ocean_spec::TreeNode;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::kernel::state::ClusterState;

/// The reserved KV namespace (not a DNS label: no framework can name it).
pub const NAMESPACE: &str = "ocean.alerts";
/// Prefix of rule keys.
pub const RULE_PREFIX: &str = "rule/";
/// Prefix of alert keys.
pub const ALERT_PREFIX: &str = "firing/";

/// The longest `for_seconds` (a day).
pub const MAX_FOR_SECONDS: u64 = 86_400;
/// The longest flapping window, minutes (a day).
pub const MAX_WINDOW_MINUTES: u32 = 1_440;

/// What a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A job has fewer RUNNING tasks than its instances.
    JobBelowInstances,
    /// A job's tasks failed (and were restarted) more than `max_restarts`
    /// times in `window_minutes`.
    TaskFlapping,
    /// A task's RSS is above `percent` of its memory limit.
    MemoryAbove,
    /// An agent is not connected to the leader.
    AgentLost,
    /// A database or cache moved its primary within the last
    /// `window_minutes` (the frameworks' `failovers/` records).
    Failover,
    /// The healing framework stopped acting because many hosts fell ill
    /// at once (its `alert` key), and an ill host lies under the node.
    HealingStorm,
}

/// Every kind, as the API names them.
pub const KINDS: [(&str, Kind); 6] = [
    ("job_below_instances", Kind::JobBelowInstances),
    ("task_flapping", Kind::TaskFlapping),
    ("memory_above", Kind::MemoryAbove),
    ("agent_lost", Kind::AgentLost),
    ("failover", Kind::Failover),
    ("healing_storm", Kind::HealingStorm),
];

/// A `failover` rule's window when none is given, minutes.
pub const DEFAULT_FAILOVER_WINDOW_MINUTES: u32 = 10;

impl Kind {
    /// The API's name.
    pub fn as_str(self) -> &'static str {
        KINDS
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("unknown", |(n, _)| n)
    }
}

/// A rule as stored and shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rule {
    pub id: String,
    /// The tree node it watches (`""`: the whole tree), canonical form.
    pub node: String,
    #[schema(value_type = String)]
    pub kind: Kind,
    /// How long the condition must hold before the alert fires.
    pub for_seconds: u64,
    /// `task_flapping`: restarts allowed in the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_restarts: Option<u32>,
    /// `task_flapping`: the window, minutes; `failover`: how long an
    /// alert stays firing after the newest failover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_minutes: Option<u32>,
    /// `memory_above`: percent of the task's memory limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    /// Where transitions are POSTed (none: only the API and the events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    #[serde(default)]
    pub description: String,
    pub created_ms: u64,
}

/// A rule as a client writes it (`POST /v1/alerts/rules`).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleRequest {
    /// A DNS label; generated when left out.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub node: String,
    /// `job_below_instances`, `task_flapping`, `memory_above`, `agent_lost`,
    /// `failover` or `healing_storm`.
    pub kind: String,
    #[serde(default)]
    pub for_seconds: u64,
    #[serde(default)]
    pub max_restarts: Option<u32>,
    #[serde(default)]
    pub window_minutes: Option<u32>,
    #[serde(default)]
    pub percent: Option<f64>,
    #[serde(default)]
    pub webhook: Option<String>,
    #[serde(default)]
    pub description: String,
}

fn invalid(field: &str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        field: field.to_string(),
        reason: reason.into(),
    }
}

/// Checks `req` and makes the rule (its id given), every error naming its
/// field. Pure.
pub fn check_rule(req: RuleRequest, id: String, now_ms: u64) -> Result<Rule> {
    if !is_dns_label(&id) {
        return Err(invalid(
            "id",
            format!("'{id}' must be 1 to 63 lowercase letters, digits or inner '-'"),
        ));
    }
    let node = TreeNode::parse_field(&req.node, "node")
        .map_err(|e| invalid(&e.field, e.reason))?
        .to_string();
    let Some(kind) = KINDS.iter().find(|(n, _)| *n == req.kind).map(|(_, k)| *k) else {
        let names: Vec<&str> = KINDS.iter().map(|(n, _)| *n).collect();
        return Err(invalid(
            "kind",
            format!("'{}' is not one of {}", req.kind, names.join(", ")),
        ));
    };
    if req.for_seconds > MAX_FOR_SECONDS {
        return Err(invalid(
            "for_seconds",
            format!("{} is over a day ({MAX_FOR_SECONDS})", req.for_seconds),
        ));
    }
    let only = |field: &str, set: bool, kinds: &str| -> Result<()> {
        if set {
            Err(invalid(field, format!("applies only to {kinds} rules")))
        } else {
            Ok(())
        }
    };
    if kind != Kind::TaskFlapping {
        only("max_restarts", req.max_restarts.is_some(), "task_flapping")?;
    }
    if !matches!(kind, Kind::TaskFlapping | Kind::Failover) {
        only(
            "window_minutes",
            req.window_minutes.is_some(),
            "task_flapping and failover",
        )?;
    }
    let window = |w: u32| -> Result<u32> {
        if w == 0 || w > MAX_WINDOW_MINUTES {
            return Err(invalid(
                "window_minutes",
                format!("{w} must be from 1 to {MAX_WINDOW_MINUTES}"),
            ));
        }
        Ok(w)
    };
    if kind != Kind::MemoryAbove {
        only("percent", req.percent.is_some(), "memory_above")?;
    }
    let (mut max_restarts, mut window_minutes, mut percent) = (None, None, None);
    match kind {
        Kind::TaskFlapping => {
            max_restarts = Some(
                req.max_restarts
                    .ok_or_else(|| invalid("max_restarts", "required for task_flapping"))?,
            );
            let w = req
                .window_minutes
                .ok_or_else(|| invalid("window_minutes", "required for task_flapping"))?;
            window_minutes = Some(window(w)?);
        }
        Kind::Failover => {
            window_minutes = Some(window(
                req.window_minutes
                    .unwrap_or(DEFAULT_FAILOVER_WINDOW_MINUTES),
            )?);
        }
        Kind::MemoryAbove => {
            let p = req
                .percent
                .ok_or_else(|| invalid("percent", "required for memory_above"))?;
            if !(p > 0.0 && p <= 100.0) {
                return Err(invalid(
                    "percent",
                    format!("{p} must be above 0 and at most 100"),
                ));
            }
            percent = Some(p);
        }
        Kind::JobBelowInstances | Kind::AgentLost | Kind::HealingStorm => {}
    }
    let webhook = match req.webhook.filter(|w| !w.trim().is_empty()) {
        Some(w) => Some(check_webhook(w.trim())?),
        None => None,
    };
    if req.description.len() > 1024 || req.description.chars().any(char::is_control) {
        return Err(invalid(
            "description",
            "must be at most 1024 bytes of printable characters",
        ));
    }
    Ok(Rule {
        id,
        node,
        kind,
        for_seconds: req.for_seconds,
        max_restarts,
        window_minutes,
        percent,
        webhook,
        description: req.description,
        created_ms: now_ms,
    })
}

fn check_webhook(w: &str) -> Result<String> {
    let url = reqwest::Url::parse(w).map_err(|e| invalid("webhook", format!("'{w}': {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(
            "webhook",
            format!("'{w}' must be an http:// or https:// URL with a host"),
        ));
    }
    Ok(url.to_string())
}

/// Where an alert stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Firing,
    Resolved,
}

impl AlertState {
    /// The transition's name (`firing`, `resolved`).
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

/// An alert as stored at `firing/<id>` and shown by `GET /v1/alerts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AlertRecord {
    /// `<rule id>/<subject>`.
    pub id: String,
    pub rule: String,
    #[schema(value_type = String)]
    pub kind: Kind,
    /// The rule's node.
    pub node: String,
    /// The job, task or agent the condition holds for.
    pub subject: String,
    #[schema(value_type = String)]
    pub state: AlertState,
    /// What was seen when it fired, or why it resolved.
    pub message: String,
    /// When the condition was first seen true by the leader that fired it.
    pub since_ms: u64,
    pub fired_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_ms: Option<u64>,
    /// The rule's webhook when it fired (kept: the rule may go).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    /// Transitions the webhook acknowledged (`firing`, `resolved`).
    #[serde(default)]
    pub delivered: Vec<String>,
}

impl AlertRecord {
    /// The alert id of `rule` for `subject`.
    pub fn id_of(rule: &str, subject: &str) -> String {
        format!("{rule}/{subject}")
    }

    /// The key of an alert id.
    pub fn key_of(id: &str) -> String {
        format!("{ALERT_PREFIX}{id}")
    }

    /// The idempotency key of one transition: the alert, the firing it
    /// belongs to (an alert may fire again after resolving) and the
    /// transition.
    pub fn idempotency_key(&self, transition: AlertState) -> String {
        format!("{}@{}:{}", self.id, self.fired_ms, transition.as_str())
    }

    /// The transitions still to be delivered, oldest first: none without a
    /// webhook; `resolved` only after `firing`.
    pub fn undelivered(&self) -> Vec<AlertState> {
        if self.webhook.is_none() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for t in [AlertState::Firing, AlertState::Resolved] {
            if t == AlertState::Resolved && self.state != AlertState::Resolved {
                break;
            }
            if !self.delivered.iter().any(|d| d == t.as_str()) {
                out.push(t);
            }
        }
        out
    }
}

/// What a webhook receives: the alert and the transition, with the key a
/// receiver dedupes by (also sent as the `Idempotency-Key` header).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub idempotency_key: String,
    /// `firing` or `resolved`.
    pub transition: String,
    pub alert: AlertRecord,
}

/// The rules in the state.
pub fn rules(st: &ClusterState) -> Vec<Rule> {
    st.kv_list(NAMESPACE, RULE_PREFIX)
        .filter_map(|e| serde_json::from_slice(&e.value).ok())
        .collect()
}

/// The alert records in the state, with their revisions.
pub fn records(st: &ClusterState) -> HashMap<String, (AlertRecord, u64)> {
    st.kv_list(NAMESPACE, ALERT_PREFIX)
        .filter_map(|e| {
            let r: AlertRecord = serde_json::from_slice(&e.value).ok()?;
            Some((r.id.clone(), (r, e.revision)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(kind: &str) -> RuleRequest {
        RuleRequest {
            node: "pdl.demo".into(),
            kind: kind.into(),
            ..Default::default()
        }
    }

    #[test]
    fn rules_are_checked_field_by_field() {
        let ok = check_rule(req("job_below_instances"), "r1".into(), 5).unwrap();
        assert_eq!(
            (ok.node.as_str(), ok.kind),
            ("pdl.demo", Kind::JobBelowInstances)
        );
        let cases: Vec<(RuleRequest, &str)> = vec![
            (req("nope"), "kind"),
            (
                RuleRequest {
                    node: "pdl.Demo".into(),
                    ..req("agent_lost")
                },
                "node",
            ),
            (req("task_flapping"), "max_restarts"),
            (
                RuleRequest {
                    max_restarts: Some(3),
                    window_minutes: Some(0),
                    ..req("task_flapping")
                },
                "window_minutes",
            ),
            (req("memory_above"), "percent"),
            (
                RuleRequest {
                    percent: Some(120.0),
                    ..req("memory_above")
                },
                "percent",
            ),
            (
                RuleRequest {
                    percent: Some(50.0),
                    ..req("agent_lost")
                },
                "percent",
            ),
            (
                RuleRequest {
                    webhook: Some("ftp://x/y".into()),
                    ..req("agent_lost")
                },
                "webhook",
            ),
            (
                RuleRequest {
                    for_seconds: MAX_FOR_SECONDS + 1,
                    ..req("agent_lost")
                },
                "for_seconds",
            ),
            (
                RuleRequest {
                    window_minutes: Some(5),
                    ..req("agent_lost")
                },
                "window_minutes",
            ),
            (
                RuleRequest {
                    window_minutes: Some(MAX_WINDOW_MINUTES + 1),
                    ..req("failover")
                },
                "window_minutes",
            ),
            (
                RuleRequest {
                    max_restarts: Some(1),
                    ..req("failover")
                },
                "max_restarts",
            ),
        ];
        for (r, field) in cases {
            match check_rule(r, "r1".into(), 0) {
                Err(Error::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("expected invalid {field}, got {other:?}"),
            }
        }
        let f = check_rule(req("failover"), "f".into(), 0).unwrap();
        assert_eq!(
            (f.kind, f.window_minutes),
            (Kind::Failover, Some(DEFAULT_FAILOVER_WINDOW_MINUTES))
        );
        let f = check_rule(
            RuleRequest {
                window_minutes: Some(2),
                ..req("failover")
            },
            "f".into(),
            0,
        )
        .unwrap();
        assert_eq!(f.window_minutes, Some(2));
        match check_rule(req("agent_lost"), "Bad_Id".into(), 0) {
            Err(Error::Invalid { field, .. }) => assert_eq!(field, "id"),
            other => panic!("expected invalid id, got {other:?}"),
        }
    }

    #[test]
    fn resolved_is_delivered_only_after_firing() {
        let mut a = AlertRecord {
            id: "r/j".into(),
            rule: "r".into(),
            kind: Kind::JobBelowInstances,
            node: String::new(),
            subject: "j".into(),
            state: AlertState::Firing,
            message: String::new(),
            since_ms: 1,
            fired_ms: 2,
            resolved_ms: None,
            webhook: Some("http://h/".into()),
            delivered: vec![],
        };
        assert_eq!(a.undelivered(), vec![AlertState::Firing]);
        a.state = AlertState::Resolved;
        assert_eq!(
            a.undelivered(),
            vec![AlertState::Firing, AlertState::Resolved]
        );
        a.delivered.push("firing".into());
        assert_eq!(a.undelivered(), vec![AlertState::Resolved]);
        assert_eq!(a.idempotency_key(AlertState::Resolved), "r/j@2:resolved");
        a.webhook = None;
        assert!(a.undelivered().is_empty());
    }
}
