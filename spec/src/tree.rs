//! Nodes of the service tree: what filters, quotas and access rights hang
//! off.
//!
//! A node is a run of `tag.value` pieces joined by `_`, in the tree's tag
//! order, such as `pdl.browser`, `cop.xiaomi_owt.inf` or a whole job id. It
//! covers every id that carries each of its tags with the same value, so a
//! right on `pdl.browser` covers everything of the browser product line and
//! `pdl.demo` never covers `pdl.demo2` (a string prefix would).
//!
//! ```
//! use ocean_spec::{ServiceTreeId, TreeNode};
//!
//! let id: ServiceTreeId = "cop.x_owt.y_pdl.demo_service.web_job.api_cluster.c3".parse().unwrap();
//! assert!(TreeNode::parse("pdl.demo").unwrap().covers(&id));
//! assert!(!TreeNode::parse("pdl.demo2").unwrap().covers(&id));
//! assert!(id.covers(&TreeNode::parse("cop.x_owt.y").unwrap()));
//! // Task ids (`<job id>.<suffix>`) are covered as their job is.
//! assert!(TreeNode::parse("cluster.c3").unwrap().covers_id(&format!("{id}.0001")));
//! ```

use std::fmt;

use crate::error::FieldError;
use crate::id::{is_dns_label, ServiceTreeId, TAGS};

/// A node of the service tree (see the module docs). The empty node is the
/// root and covers everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TreeNode {
    /// `(tag, value)` pairs in the tree's tag order, each tag at most once.
    tags: Vec<(&'static str, String)>,
}

impl TreeNode {
    /// The root: covers every id.
    pub fn root() -> Self {
        TreeNode::default()
    }

    /// Parses `tag.value[_tag.value...]`. The error's field is `node`; use
    /// [`TreeNode::parse_field`] to name the field the caller read it from.
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        Self::parse_field(s, "node")
    }

    /// Parses a node read from `field` (e.g. `prefix` or `node`).
    pub fn parse_field(s: &str, field: &str) -> Result<Self, FieldError> {
        let err = |reason: String| FieldError::new(field, reason);
        // `cop.x_owt.y_` reads as the node `cop.x_owt.y` (a prefix typed
        // up to the separator).
        let s = s.strip_suffix('_').unwrap_or(s);
        if s.is_empty() {
            return Ok(TreeNode::root());
        }
        if s.len() > 1024 {
            return Err(err(format!("is {} bytes long; at most 1024", s.len())));
        }
        let mut tags: Vec<(&'static str, String)> = Vec::new();
        for piece in s.split('_') {
            let Some((tag, value)) = piece.split_once('.') else {
                return Err(err(format!(
                    "'{piece}' is not of the form <tag>.<value> (pieces are joined by '_', e.g. pdl.demo or cop.x_owt.y)"
                )));
            };
            let Some(tag) = TAGS.iter().copied().find(|t| *t == tag) else {
                return Err(err(format!(
                    "unknown tag '{tag}'; expected one of {}",
                    TAGS.join(", ")
                )));
            };
            if !is_dns_label(value) {
                return Err(err(format!(
                    "{tag} value '{value}' must be 1 to 63 lowercase letters, digits or inner '-'"
                )));
            }
            if let Some((last, _)) = tags.last() {
                if rank(tag) <= rank(last) {
                    return Err(err(format!(
                        "tag '{tag}' must come after '{last}' and at most once (order: {})",
                        TAGS.join(", ")
                    )));
                }
            }
            tags.push((tag, value.to_string()));
        }
        Ok(TreeNode { tags })
    }

    /// True for the root node.
    pub fn is_root(&self) -> bool {
        self.tags.is_empty()
    }

    /// The node's `(tag, value)` pairs in tree order.
    pub fn tags(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.tags.iter().map(|(t, v)| (*t, v.as_str()))
    }

    /// Whether `id` lies under this node: it carries every tag of the node
    /// with the same value.
    pub fn covers(&self, id: &ServiceTreeId) -> bool {
        self.tags.iter().all(|(tag, value)| {
            id.tags()
                .iter()
                .any(|(t, v)| t == tag && *v == value.as_str())
        })
    }

    /// [`TreeNode::covers`] for an id in string form: a job id or a task id
    /// (`<job id>.<suffix>`). Strings that are not ids are covered only by
    /// the root.
    pub fn covers_id(&self, id: &str) -> bool {
        if self.is_root() {
            return true;
        }
        self.tags
            .iter()
            .all(|(tag, value)| tag_value(id, tag) == Some(value.as_str()))
    }
}

/// The value of `tag` in an id or task id, without parsing the whole id:
/// watch filters run this on every change of a busy cluster.
fn tag_value<'a>(id: &'a str, tag: &str) -> Option<&'a str> {
    id_pieces(id).find_map(|piece| piece.strip_prefix(tag)?.strip_prefix('.'))
}

/// The `tag.value` pieces of a job or task id, a task's suffix left out
/// (`..._cluster.c3.0001` gives `cluster.c3`): what a node's pieces are
/// compared with.
pub fn id_pieces(id: &str) -> impl Iterator<Item = &str> {
    id.split('_')
        .map(|piece| match piece.strip_prefix("cluster.") {
            // A task id's suffix follows the cluster value after a dot.
            Some(rest) => &piece[..piece.len() - rest.len() + rest.find('.').unwrap_or(rest.len())],
            None => piece,
        })
}

fn rank(tag: &str) -> usize {
    TAGS.iter().position(|t| *t == tag).unwrap_or(usize::MAX)
}

impl fmt::Display for TreeNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (tag, value)) in self.tags.iter().enumerate() {
            if i > 0 {
                f.write_str("_")?;
            }
            write!(f, "{tag}.{value}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for TreeNode {
    type Err = FieldError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TreeNode::parse(s)
    }
}

impl ServiceTreeId {
    /// Whether this id lies under `node` (see [`TreeNode::covers`]).
    pub fn covers(&self, node: &TreeNode) -> bool {
        node.covers(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "cop.xiaomi_owt.inf_pdl.demo_servicegroup.g_service.web_job.api_cluster.c3";

    fn node(s: &str) -> TreeNode {
        TreeNode::parse(s).unwrap()
    }

    #[test]
    fn nodes_cover_by_whole_tag_values_not_string_prefixes() {
        let id: ServiceTreeId = ID.parse().unwrap();
        for yes in [
            "",
            "cop.xiaomi",
            "pdl.demo",
            "cop.xiaomi_owt.inf_pdl.demo",
            "service.web_cluster.c3",
            ID,
        ] {
            assert!(node(yes).covers(&id), "{yes} should cover");
            assert!(node(yes).covers_id(ID), "{yes} should cover the string");
            assert!(node(yes).covers_id(&format!("{ID}.00af")), "{yes}: task id");
        }
        for no in [
            "pdl.demo2",
            "pdl.dem",
            "cop.xiaomi_owt.infra",
            "cluster.c",
            "job.api_cluster.c4",
        ] {
            assert!(!node(no).covers(&id), "{no} must not cover");
            assert!(!node(no).covers_id(ID), "{no} must not cover the string");
            assert!(!node(no).covers_id(&format!("{ID}.00af")), "{no}: task id");
        }
        // Not an id at all: only the root covers it.
        assert!(node("").covers_id("h00001"));
        assert!(!node("pdl.demo").covers_id("h00001"));
    }

    #[test]
    fn bad_nodes_name_the_field_and_the_reason() {
        let e = TreeNode::parse_field("pdl", "prefix").unwrap_err();
        assert_eq!(e.field, "prefix");
        assert!(e.reason.contains("<tag>.<value>"), "{e}");
        let e = TreeNode::parse("team.x").unwrap_err();
        assert!(e.reason.contains("unknown tag 'team'"), "{e}");
        let e = TreeNode::parse("pdl.Demo").unwrap_err();
        assert!(e.reason.contains("lowercase"), "{e}");
        let e = TreeNode::parse("pdl.a_owt.b").unwrap_err();
        assert!(e.reason.contains("must come after"), "{e}");
        let e = TreeNode::parse("pdl.a_pdl.b").unwrap_err();
        assert!(e.reason.contains("at most once"), "{e}");
    }

    #[test]
    fn display_round_trips() {
        for s in ["", "pdl.demo", "cop.a_owt.b_pdl.c", ID] {
            assert_eq!(node(s).to_string(), s);
        }
    }
}
