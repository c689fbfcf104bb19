//! `/ui/jobs`: jobs under a service-tree node, sorted and paged on the
//! server (a browser never receives more than one page of rows).

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ocean_master::service::summary::JobPageQuery;
use ocean_master::Master;
use serde::Deserialize;

use super::{Frame, Paging, Seen};
use crate::error::{render, Result};
use crate::forms::FieldErrors;
use crate::summary::percent;

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
    let svc = m.service();
    // The service pages over its indexes: only this page's rows are built.
    let mut query = JobPageQuery {
        prefix: Some(q.prefix.clone()),
        sort: Some(if errors.get("sort").is_some() {
            "id".into()
        } else {
            sort.clone()
        }),
        page: Some(page_no),
        per_page: Some(PER_PAGE),
    };
    let mut list = match svc.job_page(&query, seen.options()).await {
        Ok(list) => Some(list),
        Err(e) => {
            // The service checks the prefix (boundary-aware, as the API).
            errors.add("prefix", invalid_reason(e)?);
            None
        }
    };
    let paging = Paging::new(list.as_ref().map_or(0, |l| l.total), PER_PAGE, page_no);
    if paging.page != page_no {
        // A page past the end shows the last one.
        query.page = Some(paging.page);
        list = Some(svc.job_page(&query, seen.options()).await?);
    }
    let version = match &list {
        Some(l) => l.version,
        None => svc.status().version,
    };
    let rows: Vec<JobRow> = list
        .map(|l| l.jobs)
        .unwrap_or_default()
        .into_iter()
        .map(|r| JobRow {
            state: r.state,
            running: r.tasks.running as usize,
            live: r.tasks.live as usize,
            instances: r.instances,
            percent: percent(r.tasks.running as f64, r.instances as f64),
            spec_version: r.job.spec_version,
            updated_version: r.job.updated_version,
            waiting: r.job.waiting.clone().unwrap_or_default(),
            id: r.job.id,
        })
        .collect();
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
