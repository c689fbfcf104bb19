//! Access control: who is calling ([`Caller`]), what a token may do
//! ([`Grants`]: rights on service-tree nodes) and the checks every service
//! method makes before it reads or proposes.
//!
//! ```text
//!  REST / SSE / dashboard ─┐  (api::auth: Authorization: Bearer <secret>,
//!  gRPC ───────────────────┤   or the ocean_token cookie)
//!                          ▼
//!        Service::authenticate(secret) ─► Caller ─► scope(caller, handler)
//!                                                      │
//!        Master::service() picks the scoped Caller ◄───┘
//!        Service::{authorize, may_read, authenticated}  ─► 401 / 403 / ok
//! ```
//!
//! The caller travels in a task-local ([`scope`]) so the ~80 call sites of
//! `master.service()` in the API and dashboard need no extra argument;
//! code that runs outside any request (the leader's controllers, hosted
//! frameworks' operators) is the cluster itself ([`Caller::System`]).
//! Streams answered to a request (SSE, gRPC watch) capture the caller when
//! the request is served, not when the stream is polled.
//!
//! Rights are ordered: `read` < `write` < `operate` < `admin`, each
//! implying the ones before it. A right on a node covers its subtree,
//! boundary-aware (`pdl.demo` never covers `pdl.demo2`):
//! - `read`: see jobs, tasks, deployments, logs and events under the node;
//! - `write`: create, replace, scale and delete jobs under it, roll back;
//! - `operate`: deployment actions (pause, resume, promote, fail, cancel),
//!   reset back-off; on the root also agents' status and drain, and
//!   frameworks' stores and leases;
//! - `admin`: on the root, tokens, policies and masters.
//!
//! Cluster-wide reads (agents, members' summary, the job counts, usage)
//! need any valid token; `GET /v1/leader` and `/v1/status` need none, so
//! clients can find the leader before they authenticate.

pub mod store;

use std::fmt;
use std::sync::Arc;

use ocean_spec::TreeNode;
use serde::{Deserialize, Serialize};

use super::{Kernel, Service};
use crate::error::{Error, Result};

/// A right on a node; each implies the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Right {
    /// See what is under the node.
    Read,
    /// Change jobs under the node.
    Write,
    /// Act on running things: deployments, back-off, agents, frameworks.
    Operate,
    /// Manage tokens, policies and masters.
    Admin,
}

/// Every right, weakest first.
pub const RIGHTS: [Right; 4] = [Right::Read, Right::Write, Right::Operate, Right::Admin];

impl Right {
    /// Its name as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Right::Read => "read",
            Right::Write => "write",
            Right::Operate => "operate",
            Right::Admin => "admin",
        }
    }

    /// Parses a right, naming `field` when it is none of them.
    pub fn parse(s: &str, field: &str) -> Result<Self> {
        RIGHTS
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| Error::Invalid {
                field: field.to_string(),
                reason: format!("'{s}' is not one of read, write, operate, admin"),
            })
    }
}

impl fmt::Display for Right {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a token may do: the rules of its policies, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    rules: Vec<(TreeNode, Right)>,
}

impl Grants {
    /// Grants from `(node, right)` rules.
    pub fn new(rules: Vec<(TreeNode, Right)>) -> Self {
        Grants { rules }
    }

    /// Whether `right` is held on `id` (a job or task id, or a node written
    /// as one): some rule's node covers it with at least that right.
    pub fn allows(&self, id: &str, right: Right) -> bool {
        self.rules
            .iter()
            .any(|(node, r)| *r >= right && node.covers_id(id))
    }

    /// Whether `right` is held on a whole node: some rule's node is the
    /// node itself or one of its ancestors.
    pub fn allows_node(&self, node: &TreeNode, right: Right) -> bool {
        self.rules
            .iter()
            .any(|(n, r)| *r >= right && n.tags().all(|t| node.tags().any(|u| u == t)))
    }
}

/// A token the cluster knows, as a request presents it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The token's public id.
    pub accessor: String,
    /// Its human name.
    pub name: String,
    /// What it may do.
    pub grants: Grants,
}

/// Who is calling the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The cluster itself: controllers, hosted operators, tests of the
    /// service layer. Never a request from the network.
    System,
    /// A request without a token.
    Anonymous,
    /// A request with a token the cluster does not know (the reason, never
    /// the secret).
    Invalid(String),
    /// A request with a valid token.
    Token(Arc<Identity>),
}

impl Caller {
    /// Who, for the audit log and errors: the token's name and accessor.
    pub fn who(&self) -> String {
        match self {
            Caller::System => "system".into(),
            Caller::Anonymous => "anonymous".into(),
            Caller::Invalid(_) => "invalid-token".into(),
            Caller::Token(id) => format!("{} ({})", id.name, id.accessor),
        }
    }
}

tokio::task_local! {
    static CALLER: Caller;
}

/// Runs `fut` as `caller`: every `Master::service()` inside it (not in
/// tasks it spawns) acts for that caller.
pub async fn scope<F: std::future::Future>(caller: Caller, fut: F) -> F::Output {
    CALLER.scope(caller, fut).await
}

/// The caller of the request being served; the cluster itself outside any.
pub fn current() -> Caller {
    CALLER.try_with(Clone::clone).unwrap_or(Caller::System)
}

const NO_TOKEN: &str = "this cluster requires a token: send 'Authorization: Bearer <secret>' \
     (the CLI reads --token or OCEAN_TOKEN)";

impl<K: Kernel> Service<K> {
    /// The caller this service acts for.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// This service acting for `caller`.
    pub fn with_caller(mut self, caller: Caller) -> Self {
        self.caller = caller;
        self
    }

    /// Ok when ACLs are off or the caller holds `right` on `id` (a job or
    /// task id, or a node); 401 for no or an unknown token, 403 naming the
    /// node and the right otherwise.
    pub fn authorize(&self, id: &str, right: Right) -> Result<()> {
        self.check(right, id, |g| g.allows(id, right))
    }

    /// [`Service::authorize`] on a whole node (a list under a prefix).
    pub fn authorize_node(&self, node: &TreeNode, right: Right) -> Result<()> {
        self.check(right, &node.to_string(), |g| g.allows_node(node, right))
    }

    /// Ok when ACLs are off or the caller has any valid token (the
    /// cluster-wide reads).
    pub fn authenticated(&self) -> Result<()> {
        self.check(Right::Read, "", |_| true)
    }

    /// Whether the caller may read `id`: what lists and watches filter by.
    pub fn may_read(&self, id: &str) -> bool {
        self.authorize(id, Right::Read).is_ok()
    }

    /// What a watch opened now may see: 401 without a valid token, else
    /// the grants its changes are filtered by (captured here, when the
    /// request is served, not when the stream is polled).
    pub fn watch_grants(&self) -> Result<Option<Arc<Grants>>> {
        self.authenticated()?;
        Ok(self.read_filter())
    }

    /// A filter for lists and watches: `None` when everything may be read.
    pub fn read_filter(&self) -> Option<Arc<Grants>> {
        if !self.kernel.acl_enabled() {
            return None;
        }
        match &self.caller {
            Caller::System => None,
            Caller::Token(id) => Some(Arc::new(id.grants.clone())),
            Caller::Anonymous | Caller::Invalid(_) => Some(Arc::new(Grants::default())),
        }
    }

    fn check(&self, right: Right, node: &str, ok: impl FnOnce(&Grants) -> bool) -> Result<()> {
        if !self.kernel.acl_enabled() {
            return Ok(());
        }
        match &self.caller {
            Caller::System => Ok(()),
            Caller::Anonymous => Err(Error::Unauthenticated(NO_TOKEN.into())),
            Caller::Invalid(reason) => Err(Error::Unauthenticated(reason.clone())),
            Caller::Token(id) if ok(&id.grants) => Ok(()),
            Caller::Token(id) => Err(Error::Forbidden {
                who: format!("{} ({})", id.name, id.accessor),
                node: if node.is_empty() {
                    "the root".into()
                } else {
                    node.to_string()
                },
                right: right.as_str(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(rules: &[(&str, Right)]) -> Grants {
        Grants::new(
            rules
                .iter()
                .map(|(n, r)| (TreeNode::parse(n).unwrap(), *r))
                .collect(),
        )
    }

    const DEMO: &str = "cop.c_owt.o_pdl.demo_service.s_job.j_cluster.c";
    const DEMO2: &str = "cop.c_owt.o_pdl.demo2_service.s_job.j_cluster.c";

    #[test]
    fn each_right_implies_the_ones_before_it() {
        let g = grants(&[("pdl.demo", Right::Operate)]);
        assert!(g.allows(DEMO, Right::Read));
        assert!(g.allows(DEMO, Right::Write));
        assert!(g.allows(DEMO, Right::Operate));
        assert!(!g.allows(DEMO, Right::Admin));
        let r = grants(&[("pdl.demo", Right::Read)]);
        assert!(r.allows(DEMO, Right::Read));
        assert!(!r.allows(DEMO, Right::Write));
    }

    #[test]
    fn a_right_covers_the_subtree_and_respects_boundaries() {
        let g = grants(&[("pdl.demo", Right::Write)]);
        assert!(g.allows(DEMO, Right::Write));
        assert!(g.allows(&format!("{DEMO}.0001"), Right::Write), "a task id");
        assert!(
            !g.allows(DEMO2, Right::Read),
            "pdl.demo never covers pdl.demo2"
        );
        assert!(
            !g.allows("agent-1", Right::Read),
            "only the root covers non-ids"
        );
        let root = grants(&[("", Right::Read)]);
        assert!(root.allows(DEMO2, Right::Read));
        assert!(root.allows("agent-1", Right::Read));
        // Whole nodes: a rule on an ancestor covers them, one on a child not.
        let node = |s| TreeNode::parse(s).unwrap();
        assert!(g.allows_node(&node("pdl.demo_service.s"), Right::Read));
        assert!(!g.allows_node(&node("pdl.demo2"), Right::Read));
        assert!(!g.allows_node(&TreeNode::root(), Right::Read));
        assert!(root.allows_node(&node("pdl.demo2"), Right::Read));
        assert!(!Grants::default().allows_node(&node("pdl.demo"), Right::Read));
    }

    #[test]
    fn rights_parse_and_print_by_name() {
        for r in RIGHTS {
            assert_eq!(Right::parse(r.as_str(), "rights").unwrap(), r);
        }
        match Right::parse("root", "rules[0].rights") {
            Err(Error::Invalid { field, .. }) => assert_eq!(field, "rules[0].rights"),
            other => panic!("expected invalid, got {other:?}"),
        }
    }
}
