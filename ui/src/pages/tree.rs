//! `/ui/tree?node=`: the service tree from the company down to the job —
//! per node its jobs, live tasks, the resources they hold, its quota and
//! the product line's fair-share weight; each row sums its children.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Html;
use ocean_master::Master;
use serde::Deserialize;

use super::{Frame, Seen};
use crate::error::{render, Result};
use crate::state::UiState;
use crate::tree::{NodeView, Quota};

/// `?node=`.
#[derive(Debug, Default, Deserialize)]
pub struct TreeQuery {
    #[serde(default)]
    pub node: String,
    pub v: Option<u64>,
}

#[derive(Template)]
#[template(path = "tree.html")]
struct TreePage {
    frame: Frame,
    view: NodeView,
}

impl TreePage {
    fn quota(q: &Option<Quota>) -> String {
        match q {
            None => "none".into(),
            Some(q) => {
                let mut parts = Vec::new();
                if let Some(c) = q.cpus {
                    parts.push(format!("{c:.1} cores"));
                }
                if let Some(m) = q.mem {
                    parts.push(format!("{m} MiB"));
                }
                parts.join(", ")
            }
        }
    }

    fn weight(w: &Option<f64>) -> String {
        w.map_or_else(|| "—".into(), |w| format!("{w}"))
    }
}

/// The node asked for, checked: a run of `tag.value` pieces from `cop.`.
pub(crate) fn rooted_node(node: &str) -> Result<String> {
    Ok(ocean_master::service::tree::rooted_node(node, "node")?)
}

/// `GET /ui/tree`.
pub async fn page(State(s): State<UiState>, Query(q): Query<TreeQuery>) -> Result<Html<String>> {
    let node = rooted_node(&q.node)?;
    let m: &Master = &s.master;
    let seen = Seen { v: q.v };
    let view = m
        .service()
        .tree_over(&node, &s.scheduler, seen.options())
        .await?;
    let page = TreePage {
        frame: Frame::new(m, "tree", view.version, &seen),
        view,
    };
    render("tree", &page)
}
