//! Alert rules and alerts as an API (`/v1/alerts/rules`, `/v1/alerts`):
//! rules are written to the reserved namespace `ocean.alerts` through the
//! log; reads come from the replicated state, so any master answers.
//! Rights: writing a rule needs `write` on its node, reading needs `read`.

use serde::Serialize;

use super::acl::Right;
use super::types::WriteResult;
use super::{invalid, Kernel, ReadOptions, Service};
use crate::alerts::record::{
    check_rule, AlertRecord, AlertState, Rule, RuleRequest, ALERT_PREFIX, NAMESPACE, RULE_PREFIX,
};
use crate::error::{Error, Result};
use crate::kernel::state::{delete_kv_command, put_kv_command};

/// `GET /v1/alerts/rules`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RuleList {
    pub version: u64,
    pub rules: Vec<Rule>,
}

/// `GET /v1/alerts`: firing alerts, then the recently resolved, newest
/// first within each.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AlertList {
    pub version: u64,
    pub alerts: Vec<AlertRecord>,
}

fn rule_key(id: &str) -> String {
    format!("{RULE_PREFIX}{id}")
}

fn node_of(node: &str) -> Result<ocean_spec::TreeNode> {
    ocean_spec::TreeNode::parse_field(node, "node").map_err(|e| invalid(e.field, e.reason))
}

/// A fresh rule id: `r-` and 8 random hex digits.
fn new_id() -> String {
    format!("r-{:08x}", rand::random::<u32>())
}

impl<K: Kernel> Service<K> {
    /// Creates a rule (refused with a conflict when its id is taken).
    pub async fn alert_rule_create(&self, req: RuleRequest) -> Result<Rule> {
        let id = req.id.clone().unwrap_or_else(new_id);
        let rule = check_rule(req, id, crate::kernel::now_ms())?;
        self.authorize_node(&node_of(&rule.node)?, Right::Write)?;
        let value = serde_json::to_vec(&rule).map_err(|e| invalid("body", e.to_string()))?;
        let cmd = put_kv_command(NAMESPACE, &rule_key(&rule.id), value, Some(0));
        match self.commit("alert rule", &rule.id, cmd).await {
            Ok(_) => Ok(rule),
            Err(Error::VersionConflict { .. }) => Err(Error::Conflict(format!(
                "alert rule '{}' exists; delete it first or pick another id",
                rule.id
            ))),
            Err(e) => Err(e),
        }
    }

    /// The rules the caller may read, optionally only those on nodes
    /// under `node`.
    pub async fn alert_rules(&self, node: &str, opts: ReadOptions) -> Result<RuleList> {
        let under = node_of(node)?;
        self.kernel.wait_read(opts).await?;
        let (version, rules) = self
            .kernel
            .read(|st| (st.version, crate::alerts::record::rules(st)));
        let rules = rules
            .into_iter()
            .filter(|r| {
                let Ok(n) = node_of(&r.node) else {
                    return false;
                };
                under.tags().all(|t| n.tags().any(|u| u == t))
                    && self.authorize_node(&n, Right::Read).is_ok()
            })
            .collect();
        Ok(RuleList { version, rules })
    }

    /// One rule.
    pub async fn alert_rule(&self, id: &str, opts: ReadOptions) -> Result<Rule> {
        self.kernel.wait_read(opts).await?;
        let rule = self.stored_rule(id)?;
        self.authorize_node(&node_of(&rule.node)?, Right::Read)?;
        Ok(rule)
    }

    fn stored_rule(&self, id: &str) -> Result<Rule> {
        self.kernel
            .read(|st| {
                st.kv_get(NAMESPACE, &rule_key(id))
                    .and_then(|e| serde_json::from_slice::<Rule>(&e.value).ok())
            })
            .ok_or_else(|| Error::NotFound {
                kind: "alert rule",
                id: id.to_string(),
            })
    }

    /// Deletes a rule; its firing alerts resolve at the leader's next
    /// evaluation.
    pub async fn alert_rule_delete(&self, id: &str) -> Result<WriteResult> {
        let rule = self.stored_rule(id)?;
        self.authorize_node(&node_of(&rule.node)?, Right::Write)?;
        let applied = self
            .commit(
                "alert rule",
                id,
                delete_kv_command(NAMESPACE, &rule_key(id), None),
            )
            .await?;
        Ok(WriteResult {
            id: id.to_string(),
            version: applied.version,
            outcome: applied.outcome.as_str().to_string(),
            spec_version: None,
            instances: None,
            revision: None,
        })
    }

    /// Alerts the caller may read (of rules on nodes it may read),
    /// optionally only `state` (`firing`, `resolved`).
    pub async fn alerts(&self, state: Option<&str>, opts: ReadOptions) -> Result<AlertList> {
        let want = match state.unwrap_or("") {
            "" => None,
            "firing" => Some(AlertState::Firing),
            "resolved" => Some(AlertState::Resolved),
            other => {
                return Err(invalid(
                    "state",
                    format!("'{other}' is not one of firing, resolved"),
                ))
            }
        };
        self.kernel.wait_read(opts).await?;
        let (version, mut alerts) = self.kernel.read(|st| {
            let list: Vec<AlertRecord> = st
                .kv_list(NAMESPACE, ALERT_PREFIX)
                .filter_map(|e| serde_json::from_slice(&e.value).ok())
                .collect();
            (st.version, list)
        });
        alerts.retain(|a: &AlertRecord| {
            want.is_none_or(|w| a.state == w)
                && node_of(&a.node).is_ok_and(|n| self.authorize_node(&n, Right::Read).is_ok())
        });
        alerts.sort_by_key(|a| {
            (
                a.state != AlertState::Firing,
                std::cmp::Reverse(a.resolved_ms.unwrap_or(a.fired_ms)),
            )
        });
        Ok(AlertList { version, alerts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::LocalKernel;

    #[tokio::test]
    async fn rules_are_created_listed_under_a_node_and_deleted() {
        let s = Service::new(LocalKernel::new());
        let req = |id: &str, node: &str| RuleRequest {
            id: Some(id.into()),
            node: node.into(),
            kind: "job_below_instances".into(),
            for_seconds: 5,
            ..Default::default()
        };
        let r = s.alert_rule_create(req("web", "pdl.web")).await.unwrap();
        assert_eq!((r.id.as_str(), r.for_seconds), ("web", 5));
        s.alert_rule_create(req("db", "cop.c_owt.o_pdl.db"))
            .await
            .unwrap();
        assert!(matches!(
            s.alert_rule_create(req("web", "pdl.web")).await,
            Err(Error::Conflict(_))
        ));
        let all = s.alert_rules("", ReadOptions::default()).await.unwrap();
        assert_eq!(all.rules.len(), 2);
        let db = s
            .alert_rules("pdl.db", ReadOptions::default())
            .await
            .unwrap();
        let ids: Vec<&str> = db.rules.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, vec!["db"]);
        let got = s.alert_rule("web", ReadOptions::default()).await.unwrap();
        assert_eq!(got, r);
        assert_eq!(s.alert_rule_delete("web").await.unwrap().outcome, "deleted");
        assert!(matches!(
            s.alert_rule("web", ReadOptions::default()).await,
            Err(Error::NotFound { .. })
        ));
        match s.alerts(Some("open"), ReadOptions::default()).await {
            Err(Error::Invalid { field, .. }) => assert_eq!(field, "state"),
            other => panic!("expected invalid state, got {other:?}"),
        }
        assert!(s
            .alerts(None, ReadOptions::default())
            .await
            .unwrap()
            .alerts
            .is_empty());
    }
}
