//! The job page's "why tasks wait" part: the job's `waiting` text read
//! into parts (see [`crate::waiting`]). Rendered into the page, and served
//! alone at `GET /ui/jobs/{id}/waiting` so `live.js` can replace it when
//! the job's waiting text changes, without a reload.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Html;
use ocean_master::service::ReadOptions;
use ocean_master::Master;

use crate::error::{render, Result};
use crate::waiting::{self, Waiting};

#[derive(Debug, Template)]
#[template(path = "job_waiting.html")]
pub struct WaitingPart {
    pub job: String,
    pub waiting: Option<Waiting>,
}

impl WaitingPart {
    pub fn of(job: &str, text: Option<&str>) -> WaitingPart {
        WaitingPart {
            job: job.to_string(),
            waiting: text.map(waiting::parse),
        }
    }
}

/// `GET /ui/jobs/{id}/waiting`: the part alone, for `live.js`.
pub async fn fragment(State(m): State<Master>, Path(id): Path<String>) -> Result<Html<String>> {
    let (_, job) = m.service().get_job(&id, ReadOptions::default()).await?;
    render(
        "job_waiting",
        &WaitingPart::of(&id, job.job.waiting.as_deref()),
    )
}
