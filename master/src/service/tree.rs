//! The service tree as an API: a node's children with what lies under
//! each (jobs, live tasks, agents, the resources the tasks hold) and the
//! quota and fair-share weight in force, and the replicated quotas and
//! weights themselves (`PUT`/`DELETE /v1/tree/{node}/quota`).
//!
//! One implementation serves `GET /v1/tree`, `ocean tree` and the
//! dashboard's tree and product-line pages. A node's numbers are built by
//! adding every job and agent to the node and to the one child it lies
//! under, so `totals` = `here` + the sum of `children` by construction:
//! `here` holds what sits on the node itself (agents tagged down to the
//! node and no further, or the job when the node is a job id).

use std::collections::HashMap;

use ocean_proto::internal::{Agent, Task};
use serde::Serialize;

use super::types::WriteResult;
use super::{invalid, Kernel, ReadOptions, Service};
use crate::config::SchedulerSettings;
use crate::error::Result;
use crate::kernel::state::tree::{
    agent_tags, is_pdl, NodeSettings, QuotaLimits, TreeSettings, TREE_NAMESPACE,
};
use crate::kernel::state::{delete_kv_command, is_terminal, put_kv_command, ClusterState, RUNNING};

/// What lies under a node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Totals {
    pub jobs: usize,
    /// Live (not ended) tasks.
    pub tasks: usize,
    /// Serving tasks (RUNNING, not being stopped).
    pub running: usize,
    /// Agents whose tree tags lie under the node.
    pub agents: usize,
    /// Cores the live tasks hold.
    pub cpus: f64,
    /// MiB the live tasks hold.
    pub mem: u64,
}

impl Totals {
    fn add(&mut self, o: &Totals) {
        self.jobs += o.jobs;
        self.tasks += o.tasks;
        self.running += o.running;
        self.agents += o.agents;
        self.cpus += o.cpus;
        self.mem += o.mem;
    }

    /// One job's own numbers from its tasks.
    pub fn of_job<'a>(tasks: impl IntoIterator<Item = &'a Task>) -> Totals {
        let mut t = Totals {
            jobs: 1,
            ..Totals::default()
        };
        for task in tasks.into_iter().filter(|t| !is_terminal(&t.state)) {
            t.tasks += 1;
            t.running += usize::from(task.state == RUNNING && !task.kill_requested);
            t.cpus += task.cpus;
            t.mem += task.mem_mib;
        }
        t
    }
}

/// One child of the node shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Child {
    /// The child's full path (`cop.a_owt.b`), or the job id.
    pub node: String,
    /// Its own piece (`owt.b`).
    pub piece: String,
    /// True when the child is a whole job id.
    pub is_job: bool,
    pub totals: Totals,
    pub quota: Option<QuotaLimits>,
    /// The product line's weight (product lines and below).
    pub weight: Option<f64>,
}

/// `GET /v1/tree?node=`: a node, its own numbers and its children's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeView {
    /// The state version the numbers reflect.
    pub version: u64,
    /// The node (`""`: the root).
    pub node: String,
    /// `(path, piece)` from the root down to the node.
    pub crumbs: Vec<(String, String)>,
    /// Everything under the node: `here` plus every child's.
    pub totals: Totals,
    /// What sits on the node itself rather than under a child.
    pub here: Totals,
    pub quota: Option<QuotaLimits>,
    pub weight: Option<f64>,
    pub children: Vec<Child>,
}

/// A node's replicated settings: `GET` of a node's quota.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuotaView {
    pub node: String,
    /// What the replicated key holds (none: config defaults only).
    pub replicated: Option<NodeSettings>,
    /// What is in force (replicated over the config's defaults).
    pub quota: Option<QuotaLimits>,
    pub weight: Option<f64>,
}

fn pieces(node: &str) -> Vec<&str> {
    if node.is_empty() {
        Vec::new()
    } else {
        node.split('_').collect()
    }
}

/// An agent's place in the tree: its tree tags in tree order
/// (`cop.x_owt.y_pdl.z`), empty when it carries none.
pub fn agent_path(a: &Agent) -> String {
    let tags = agent_tags(a);
    ocean_spec::id::TAGS
        .iter()
        .filter_map(|t| tags.iter().find(|(k, _)| k == t))
        .map(|(k, v)| format!("{k}.{v}"))
        .collect::<Vec<_>>()
        .join("_")
}

/// `node` and its children over `items` (a path, a job id or an agent's
/// [`agent_path`], with its numbers); items not under `node` are skipped.
/// Pure: the API and the dashboard both call it.
pub fn view<'a>(
    node: &str,
    items: impl IntoIterator<Item = (&'a str, bool, Totals)>,
    settings: &TreeSettings,
    version: u64,
) -> NodeView {
    let own = pieces(node);
    let mut totals = Totals::default();
    let mut here = Totals::default();
    let mut children: Vec<Child> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (path, is_job, t) in items {
        let p = pieces(path);
        if p.len() < own.len() || p[..own.len()] != own[..] {
            continue;
        }
        totals.add(&t);
        if p.len() == own.len() {
            here.add(&t);
            continue;
        }
        let child = p[..=own.len()].join("_");
        let at = *index.entry(child.clone()).or_insert_with(|| {
            children.push(Child {
                quota: settings.quota(&child),
                weight: settings.weight(&child),
                piece: p[own.len()].to_string(),
                node: child.clone(),
                is_job: false,
                totals: Totals::default(),
            });
            children.len() - 1
        });
        let c = &mut children[at];
        c.is_job |= is_job && p.len() == own.len() + 1;
        c.totals.add(&t);
    }
    children.sort_by(|a, b| a.node.cmp(&b.node));
    let crumbs = (1..=own.len())
        .map(|n| (own[..n].join("_"), own[n - 1].to_string()))
        .collect();
    NodeView {
        version,
        node: node.to_string(),
        crumbs,
        totals,
        here,
        quota: settings.quota(node),
        weight: settings.weight(node),
        children,
    }
}

/// The node asked for in `field`, checked: a run of `tag.value` pieces
/// starting at the company, in tree order (`""`: the root).
pub fn rooted_node(node: &str, field: &str) -> Result<String> {
    let node = node.trim();
    if node.is_empty() {
        return Ok(String::new());
    }
    let parsed =
        ocean_spec::TreeNode::parse_field(node, field).map_err(|e| invalid(e.field, e.reason))?;
    let s = parsed.to_string();
    if !s.starts_with("cop.") {
        return Err(invalid(
            field,
            format!("'{node}' does not start at the company (cop.<name>): the tree is walked from its root"),
        ));
    }
    Ok(s)
}

/// Every job and agent of `st` as [`view`] takes them.
fn items(st: &ClusterState) -> Vec<(String, bool, Totals)> {
    let mut out: Vec<(String, bool, Totals)> = st
        .jobs
        .keys()
        .map(|id| {
            let t = Totals::of_job(st.tasks_of(id).map(|t| t.as_ref()));
            (id.clone(), true, t)
        })
        .collect();
    out.extend(st.agents.values().map(|a| {
        let t = Totals {
            agents: 1,
            ..Totals::default()
        };
        (agent_path(a), false, t)
    }));
    out
}

fn check_settings(node: &str, s: &NodeSettings) -> Result<()> {
    if s.cpus.is_none() && s.mem.is_none() && s.weight.is_none() {
        return Err(invalid("body", "give cpus, mem, weight or several"));
    }
    if let Some(c) = s.cpus {
        if !(c.is_finite() && (0.0..=1e9).contains(&c)) {
            return Err(invalid(
                "cpus",
                format!("must be a number from 0 to 1e9; got {c}"),
            ));
        }
    }
    if let Some(w) = s.weight {
        if !(w.is_finite() && w > 0.0 && w <= 1e6) {
            return Err(invalid(
                "weight",
                format!("must be a positive number up to 1e6; got {w}"),
            ));
        }
        if !is_pdl(node) {
            return Err(invalid(
                "weight",
                format!("fair-share weights are per product line (cop.<c>_owt.<o>_pdl.<p>); '{node}' is not one"),
            ));
        }
    }
    Ok(())
}

impl<K: Kernel> Service<K> {
    /// The settings in force: the kernel's config defaults overlaid by the
    /// replicated ones.
    pub fn tree_settings(&self) -> TreeSettings {
        let defaults = self.kernel.scheduler_defaults();
        self.kernel.read(|st| st.tree_settings(defaults))
    }

    /// `GET /v1/tree?node=`: `node` and its children.
    pub async fn tree(&self, node: &str, opts: ReadOptions) -> Result<NodeView> {
        let defaults = self.kernel.scheduler_defaults().clone();
        self.tree_over(node, &defaults, opts).await
    }

    /// [`Service::tree`] over other config defaults (the dashboard is
    /// handed the cluster's settings by its host).
    pub async fn tree_over(
        &self,
        node: &str,
        defaults: &SchedulerSettings,
        opts: ReadOptions,
    ) -> Result<NodeView> {
        let node = rooted_node(node, "node")?;
        self.kernel.wait_read(opts).await?;
        let (version, items, settings) = self
            .kernel
            .read(|st| (st.version, items(st), st.tree_settings(defaults)));
        Ok(view(
            &node,
            items.iter().map(|(p, j, t)| (p.as_str(), *j, *t)),
            &settings,
            version,
        ))
    }

    /// A node's replicated settings and what is in force.
    pub async fn get_quota(&self, node: &str, opts: ReadOptions) -> Result<(u64, QuotaView)> {
        let node = rooted_node(node, "node")?;
        self.kernel.wait_read(opts).await?;
        let defaults = self.kernel.scheduler_defaults();
        Ok(self.kernel.read(|st| {
            let settings = st.tree_settings(defaults);
            let replicated = st
                .kv_get(TREE_NAMESPACE, &node)
                .and_then(|e| crate::kernel::state::tree::node_settings(e));
            (
                st.version,
                QuotaView {
                    quota: settings.quota(&node),
                    weight: settings.weight(&node),
                    replicated,
                    node,
                },
            )
        }))
    }

    /// Sets a node's quota and weight (replacing what was set before);
    /// every master's scheduler takes them from the next round.
    pub async fn put_quota(&self, node: &str, settings: NodeSettings) -> Result<WriteResult> {
        let node = rooted_node(node, "node")?;
        if node.is_empty() {
            return Err(invalid("node", "the root takes no quota; name a node"));
        }
        check_settings(&node, &settings)?;
        let value = serde_json::to_vec(&settings).map_err(|e| invalid("body", e.to_string()))?;
        let cmd = put_kv_command(TREE_NAMESPACE, &node, value, None);
        let applied = self.commit("quota", &node, cmd).await?;
        Ok(write_result(node, applied))
    }

    /// Clears a node's replicated quota and weight (the config's defaults
    /// apply again).
    pub async fn delete_quota(&self, node: &str) -> Result<WriteResult> {
        let node = rooted_node(node, "node")?;
        let cmd = delete_kv_command(TREE_NAMESPACE, &node, None);
        let applied = self.commit("quota", &node, cmd).await?;
        Ok(write_result(node, applied))
    }
}

fn write_result(node: String, applied: crate::kernel::state::Applied) -> WriteResult {
    WriteResult {
        id: node,
        version: applied.version,
        outcome: applied.outcome.as_str().to_string(),
        spec_version: None,
        instances: None,
        revision: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::service::LocalKernel;

    fn t(tasks: usize, cpus: f64, mem: u64) -> Totals {
        Totals {
            jobs: 1,
            tasks,
            running: tasks,
            agents: 0,
            cpus,
            mem,
        }
    }

    const A: &str = "cop.x_owt.a_pdl.web_service.s1_job.j1_cluster.c3";
    const B: &str = "cop.x_owt.a_pdl.web_service.s2_job.j2_cluster.c3";
    const C: &str = "cop.x_owt.b_pdl.db_service.s3_job.j3_cluster.c3";

    fn items() -> Vec<(&'static str, bool, Totals)> {
        let agent = Totals {
            agents: 1,
            ..Totals::default()
        };
        vec![
            (A, true, t(2, 0.5, 128)),
            (B, true, t(1, 1.0, 256)),
            (C, true, t(3, 3.0, 64)),
            ("cop.x_owt.a_pdl.web", false, agent),
            ("cop.x_owt.a", false, agent),
            ("", false, agent),
        ]
    }

    #[test]
    fn totals_are_here_plus_the_children() {
        let s = TreeSettings::default();
        for node in [
            "",
            "cop.x",
            "cop.x_owt.a",
            "cop.x_owt.a_pdl.web",
            "cop.x_owt.a_pdl.web_service.s1",
            A,
        ] {
            let v = view(node, items(), &s, 1);
            let mut sum = v.here;
            for c in &v.children {
                sum.add(&c.totals);
            }
            assert_eq!(v.totals, sum, "{node}");
        }
        let root = view("", items(), &s, 1);
        assert_eq!((root.totals.tasks, root.totals.agents), (6, 3));
        assert_eq!(root.here.agents, 1);
        let owt = view("cop.x_owt.a", items(), &s, 1);
        assert_eq!((owt.totals.agents, owt.here.agents), (2, 1));
        let job = view("cop.x_owt.a_pdl.web_service.s1_job.j1", items(), &s, 1);
        assert!(job.children[0].is_job);
        // `pdl.we` is not `pdl.web`.
        assert_eq!(view("cop.x_owt.a_pdl.we", items(), &s, 1).totals.jobs, 0);
    }

    #[tokio::test]
    async fn quotas_are_checked_stored_and_cleared() {
        let k = LocalKernel::new();
        let s = Service::new(k.clone());
        let pdl = "cop.x_owt.a_pdl.web";
        for (node, body, field) in [
            ("pdl.web", NodeSettings::default(), "node"),
            (pdl, NodeSettings::default(), "body"),
            (
                pdl,
                NodeSettings {
                    cpus: Some(-1.0),
                    ..Default::default()
                },
                "cpus",
            ),
            (
                "cop.x",
                NodeSettings {
                    weight: Some(2.0),
                    ..Default::default()
                },
                "weight",
            ),
        ] {
            match s.put_quota(node, body).await {
                Err(Error::Invalid { field: f, .. }) => assert_eq!(f, field, "{node}"),
                other => panic!("{node}: expected invalid {field}, got {other:?}"),
            }
        }
        let set = NodeSettings {
            cpus: Some(2.0),
            mem: None,
            weight: Some(3.0),
        };
        assert_eq!(s.put_quota(pdl, set).await.unwrap().outcome, "created");
        let settings = s.tree_settings();
        assert_eq!(settings.quota(pdl).unwrap().cpus, Some(2.0));
        assert_eq!(settings.weight(pdl), Some(3.0));
        let v = s.tree("cop.x_owt.a", ReadOptions::default()).await.unwrap();
        assert_eq!(v.children.len(), 0);
        let (_, q) = s.get_quota(pdl, ReadOptions::default()).await.unwrap();
        assert_eq!(q.replicated, Some(set));
        assert_eq!(s.delete_quota(pdl).await.unwrap().outcome, "deleted");
        assert_eq!(s.tree_settings().quota(pdl), None);
        assert_eq!(s.tree_settings().weight(pdl), Some(1.0));
    }
}
