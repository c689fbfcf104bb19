//! `/ui/jobs`: jobs under a service-tree node, sorted and paged on the
//! server (a browser never receives more than one page of rows).

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ocean_master::service::tasks::TaskFilter;
use ocean_master::Master;
use serde::Deserialize;

use super::{Frame, Paging, Seen};
use crate::error::{render, Result};
use crate::forms::FieldErrors;
use crate::summary::{instances, job_state, percent, task_views, TaskCounts};

/// Rows per page.
pub const PER_PAGE: usize = 50;

/// The orders a list can be sorted in.
pub const SORTS: [&str; 3] = ["id", "updated", "state"];

/// The list's query, as typed: every field is checked here and a bad one
/// is shown next to its input, never a 500.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub sort: String,
    #[serde(default)]
    pub page: String,
    pub v: Option<u64>,
}

/// One row.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: String,
    pub state: &'static str,
    pub running: usize,
    pub live: usize,
    pub instances: u64,
    pub percent: u32,
    pub spec_version: u64,
    pub updated_version: u64,
    pub waiting: String,
}

#[derive(Template)]
#[template(path = "jobs.html")]
struct JobsPage {
    frame: Frame,
    prefix: String,
    sort: String,
    sorts: [&'static str; 3],
    errors: FieldErrors,
    rows: Vec<JobRow>,
    paging: Paging,
}

impl JobsPage {
    /// Whether the list is sorted by `s`.
    fn sorted_by(&self, s: &str) -> bool {
        self.sort == s
    }

    /// The link to another page of the same list.
    fn page_href(&self, page: usize) -> String {
        let q = [
            ("prefix", self.prefix.as_str()),
            ("sort", self.sort.as_str()),
            ("page", &page.to_string()),
        ];
        format!("/ui/jobs?{}", serde_urlencoded_pairs(&q))
    }
}

fn serde_urlencoded_pairs(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", super::path_segment(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `GET /ui/jobs?prefix=&sort=&page=`.
pub async fn page(State(m): State<Master>, Query(q): Query<ListQuery>) -> Result<Response> {
    let mut errors = FieldErrors::none();
    let sort = if q.sort.is_empty() {
        "id".to_string()
    } else {
        q.sort.clone()
    };
    if !SORTS.contains(&sort.as_str()) {
        errors.add(
            "sort",
            format!("'{sort}' is not one of {}", SORTS.join(", ")),
        );
    }
    let page_no = if q.page.is_empty() {
        1
    } else {
        match q.page.parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => {
                errors.add(
                    "page",
                    format!("'{}' is not a page number (1, 2, ...)", q.page),
                );
                1
            }
        }
    };
    let seen = Seen { v: q.v };
    let prefix = (!q.prefix.trim().is_empty()).then(|| q.prefix.trim());
    let svc = m.service();
    let jobs = match svc.list_jobs(prefix, seen.options()).await {
        Ok(jobs) => Some(jobs),
        Err(e) => {
            // The service checks the prefix (boundary-aware, as the API).
            errors.add("prefix", invalid_reason(e)?);
            None
        }
    };
    let live = TaskFilter {
        ended: Some(false),
        ..Default::default()
    };
    let (tasks_v, tasks) = svc.list_tasks(&live, seen.options()).await?;
    let counts = TaskCounts::of(&task_views(&tasks));
    let version = jobs.as_ref().map_or(tasks_v, |j| j.version.min(tasks_v));
    let mut rows: Vec<JobRow> = jobs
        .map(|j| j.jobs)
        .unwrap_or_default()
        .iter()
        .map(|j| {
            let c = counts.job(&j.id);
            let instances = instances(j);
            JobRow {
                id: j.id.clone(),
                state: job_state(j, c.running),
                running: c.running,
                live: c.live,
                instances,
                percent: percent(c.running as f64, instances as f64),
                spec_version: j.spec_version,
                updated_version: j.updated_version,
                waiting: j.waiting.clone().unwrap_or_default(),
            }
        })
        .collect();
    match sort.as_str() {
        "updated" => rows.sort_by_key(|r| std::cmp::Reverse(r.updated_version)),
        "state" => rows.sort_by(|a, b| a.state.cmp(b.state).then(a.id.cmp(&b.id))),
        _ => rows.sort_by(|a, b| a.id.cmp(&b.id)),
    }
    let paging = Paging::new(rows.len(), PER_PAGE, page_no);
    let rows = rows[paging.range()].to_vec();
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page = JobsPage {
        frame: Frame::new(&m, "jobs", version, &seen),
        prefix: q.prefix.clone(),
        sort,
        sorts: SORTS,
        errors,
        rows,
        paging,
    };
    Ok((status, render("jobs", &page)?).into_response())
}

/// The reason of an `Invalid` error; any other error is the page's.
fn invalid_reason(e: ocean_master::Error) -> Result<String> {
    match e {
        ocean_master::Error::Invalid { reason, .. } => Ok(reason),
        other => Err(other.into()),
    }
}
