//! `/ui/tree?node=`: the service tree from the company down to the job —
//! per node its jobs, live tasks, the resources they hold, its quota and
//! the product line's fair-share weight; each row sums its children.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Html;
use ocean_master::service::tasks::TaskFilter;
use ocean_master::Master;
use serde::Deserialize;

use super::{Frame, Seen};
use crate::error::{render, Result};
use crate::state::UiState;
use crate::summary::{task_views, TaskCounts};
use crate::tree::{view, NodeView, Quota};

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
    let node = node.trim();
    if node.is_empty() {
        return Ok(String::new());
    }
    let parsed = ocean_spec::TreeNode::parse_field(node, "node").map_err(|e| {
        ocean_master::Error::Invalid {
            field: e.field,
            reason: e.reason,
        }
    })?;
    let s = parsed.to_string();
    if !s.starts_with("cop.") {
        return Err(ocean_master::Error::Invalid {
            field: "node".into(),
            reason: format!("'{node}' does not start at the company (cop.<name>): the tree is walked from its root"),
        }
        .into());
    }
    Ok(s)
}

/// `GET /ui/tree`.
pub async fn page(State(s): State<UiState>, Query(q): Query<TreeQuery>) -> Result<Html<String>> {
    let node = rooted_node(&q.node)?;
    let m: &Master = &s.master;
    let seen = Seen { v: q.v };
    let svc = m.service();
    let jobs = svc.list_jobs(None, seen.options()).await?;
    let live = TaskFilter {
        ended: Some(false),
        ..Default::default()
    };
    let (tasks_v, tasks) = svc.list_tasks(&live, seen.options()).await?;
    let counts = TaskCounts::of(&task_views(&tasks));
    let view = view(
        &node,
        jobs.jobs.iter().map(|j| (j.id.as_str(), counts.job(&j.id))),
        &s.scheduler,
    );
    let page = TreePage {
        frame: Frame::new(m, "tree", jobs.version.min(tasks_v), &seen),
        view,
    };
    render("tree", &page)
}
