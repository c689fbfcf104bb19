//! Quotas and fair-share weights on service-tree nodes as replicated
//! state, and the tags agents and tasks carry for tag queries.
//!
//! A node's settings are a key of the reserved KV namespace
//! [`TREE_NAMESPACE`] (the node is the key, the value a JSON
//! [`NodeSettings`]), so they travel through the log, snapshots and the
//! feed like any framework key, and no command of their own was needed.
//! Frameworks cannot write the namespace: theirs must be DNS labels and
//! this one holds a dot. The master config's `scheduler` section keeps only
//! defaults: a replicated field wins over the config's for its node.

use std::collections::BTreeMap;

use ocean_proto::internal::{Agent, KvEntry};
use serde::{Deserialize, Serialize};

use super::{agent_status, ClusterState};
use crate::config::SchedulerSettings;

/// The KV namespace of the tree's settings (not a DNS label, so no
/// framework can name it).
pub const TREE_NAMESPACE: &str = "ocean.tree";

/// What a node's key holds. A field left out falls back to the config.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem: Option<u64>,
    /// Fair-share weight (product-line nodes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
}

/// A quota as placement takes it: either bound may be absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct QuotaLimits {
    pub cpus: Option<f64>,
    /// MiB.
    pub mem: Option<u64>,
}

/// The settings in force: the config's defaults overlaid by the
/// replicated ones, node by node and field by field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TreeSettings {
    /// By node.
    pub quotas: BTreeMap<String, QuotaLimits>,
    /// By product line (`cop.<c>_owt.<o>_pdl.<p>`).
    pub weights: BTreeMap<String, f64>,
    /// How many replicated keys and their newest revision: a change to
    /// either means the settings may have changed.
    pub replicated: (usize, u64),
}

impl TreeSettings {
    /// The quota set on exactly `node`.
    pub fn quota(&self, node: &str) -> Option<QuotaLimits> {
        self.quotas.get(node).copied()
    }

    /// The fair-share weight of the product line `node` lies in (or is):
    /// `None` above product lines; unnamed product lines weigh 1.
    pub fn weight(&self, node: &str) -> Option<f64> {
        let pdl = pdl_of(node)?;
        Some(self.weights.get(&pdl).copied().unwrap_or(1.0))
    }
}

/// The product line (`cop.c_owt.o_pdl.p`) a node or job id lies in, if it
/// reaches that deep.
pub fn pdl_of(node: &str) -> Option<String> {
    let p: Vec<&str> = node.split('_').take(3).collect();
    (p.len() == 3
        && p[0].starts_with("cop.")
        && p[1].starts_with("owt.")
        && p[2].starts_with("pdl."))
    .then(|| p.join("_"))
}

/// Whether `node` is a product line itself (where weights are set).
pub fn is_pdl(node: &str) -> bool {
    pdl_of(node).is_some_and(|p| p == node)
}

/// A node's replicated settings, if its key holds a readable value.
pub fn node_settings(entry: &KvEntry) -> Option<NodeSettings> {
    serde_json::from_slice(&entry.value).ok()
}

impl ClusterState {
    /// The replicated settings by node.
    pub fn tree_entries(&self) -> impl Iterator<Item = (&str, NodeSettings)> + '_ {
        self.kv_list(TREE_NAMESPACE, "")
            .filter_map(|e| Some((e.key.as_str(), node_settings(e)?)))
    }

    /// The settings in force over `defaults`.
    pub fn tree_settings(&self, defaults: &SchedulerSettings) -> TreeSettings {
        let entries: Vec<&std::sync::Arc<KvEntry>> = self.kv_list(TREE_NAMESPACE, "").collect();
        let replicated = (
            entries.len(),
            entries.iter().map(|e| e.revision).max().unwrap_or(0),
        );
        overlay(
            defaults,
            entries
                .iter()
                .filter_map(|e| Some((e.key.as_str(), node_settings(e)?))),
            replicated,
        )
    }
}

/// `defaults` with `replicated` laid over them.
pub fn overlay<'a>(
    defaults: &SchedulerSettings,
    replicated: impl IntoIterator<Item = (&'a str, NodeSettings)>,
    fingerprint: (usize, u64),
) -> TreeSettings {
    let mut quotas: BTreeMap<String, QuotaLimits> = defaults
        .quotas
        .iter()
        .map(|q| {
            (
                q.node.clone(),
                QuotaLimits {
                    cpus: q.cpus,
                    mem: q.mem,
                },
            )
        })
        .collect();
    let mut weights = defaults.pdl_weights.clone();
    for (node, s) in replicated {
        if s.cpus.is_some() || s.mem.is_some() {
            let q = quotas.entry(node.to_string()).or_default();
            q.cpus = s.cpus.or(q.cpus);
            q.mem = s.mem.or(q.mem);
        }
        if let Some(w) = s.weight {
            weights.insert(node.to_string(), w);
        }
    }
    TreeSettings {
        quotas,
        weights,
        replicated: fingerprint,
    }
}

/// An agent's tags as tag queries see them: its attributes named like
/// tags (`cop`, ..., `idc`, `loc`), its host name, and `status` as it is
/// (the operator's, else the agent's own, else online), never the
/// attribute an agent registered with once an operator set another.
pub fn agent_tags(a: &Agent) -> Vec<(&str, &str)> {
    let mut tags: Vec<(&str, &str)> = a
        .attributes
        .iter()
        .filter(|(k, _)| {
            ocean_spec::tag_query::is_known_tag(k) && *k != "status" && *k != "hostname"
        })
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if !a.hostname.is_empty() {
        tags.push(("hostname", &a.hostname));
    }
    tags.push(("status", agent_status(a)));
    tags
}

/// [`agent_tags`] as a tags string (`cop.x_owt.y_idc.c3_status.online`).
pub fn agent_tags_string(a: &Agent) -> String {
    let tags = agent_tags(a);
    ocean_spec::tag_query::format_tags(tags.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::QuotaSetting;

    #[test]
    fn replicated_fields_win_over_the_config_node_by_node() {
        let defaults = SchedulerSettings {
            pdl_weights: [("cop.a_owt.b_pdl.c".to_string(), 2.0)].into(),
            quotas: vec![QuotaSetting {
                node: "cop.a_owt.b_pdl.c".into(),
                cpus: Some(4.0),
                mem: Some(1024),
            }],
        };
        let t = overlay(
            &defaults,
            [
                (
                    "cop.a_owt.b_pdl.c",
                    NodeSettings {
                        cpus: Some(1.0),
                        mem: None,
                        weight: Some(5.0),
                    },
                ),
                (
                    "cop.a_owt.d",
                    NodeSettings {
                        mem: Some(64),
                        ..Default::default()
                    },
                ),
            ],
            (2, 9),
        );
        let q = t.quota("cop.a_owt.b_pdl.c").unwrap();
        assert_eq!((q.cpus, q.mem), (Some(1.0), Some(1024)));
        assert_eq!(t.quota("cop.a_owt.d").unwrap().mem, Some(64));
        assert_eq!(t.weight("cop.a_owt.b_pdl.c_service.s"), Some(5.0));
        assert_eq!(t.weight("cop.a_owt.b_pdl.z"), Some(1.0));
        assert_eq!(t.weight("cop.a_owt.b"), None);
        assert!(is_pdl("cop.a_owt.b_pdl.c"));
        assert!(!is_pdl("cop.a_owt.b_pdl.c_service.s"));
    }

    #[test]
    fn an_agents_status_tag_is_its_status_now() {
        let mut a = Agent {
            id: "h1".into(),
            hostname: "web1.bj".into(),
            attributes: [
                ("idc".to_string(), "c3".to_string()),
                ("status".to_string(), "online".to_string()),
                ("rack".to_string(), "r9".to_string()),
            ]
            .into(),
            ..Default::default()
        };
        assert_eq!(
            agent_tags_string(&a),
            "idc.c3_status.online_hostname.web1.bj"
        );
        a.status = "draining".into();
        assert!(agent_tags(&a).contains(&("status", "draining")));
        assert!(!agent_tags(&a).contains(&("status", "online")));
    }
}
