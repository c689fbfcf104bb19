//! `/ui/tasks/{id}`: one task — state, where it runs, health, how it
//! ended — and the tail of its stdout and stderr, read through the same
//! service call as `GET /v1/tasks/{id}/logs`.

use std::time::Duration;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Html;
use ocean_master::service::views::TaskView;
use ocean_master::Master;

use super::{Frame, Seen};
use crate::error::{render, Result};

/// Lines of each stream shown.
pub const TAIL_LINES: u64 = 100;
/// Bytes of each stream shown at most (a line may be long).
pub const TAIL_BYTES: usize = 64 * 1024;
/// How long the page waits for the agent's log server.
const LOG_TIMEOUT: Duration = Duration::from_secs(3);

/// One stream's tail, or why it is not shown.
#[derive(Debug, Clone)]
pub struct LogTail {
    pub stream: &'static str,
    pub text: LogText,
}

/// The text, or the reason there is none.
pub type LogText = std::result::Result<String, String>;

#[derive(Template)]
#[template(path = "task.html")]
struct TaskPage {
    frame: Frame,
    task: TaskView,
    logs: Vec<LogTail>,
}

/// Reads the tail of one stream through the service (the agent keeps the
/// sandbox); an agent that is down or slow costs the page at most
/// [`LOG_TIMEOUT`] and shows as a message, not an error page.
async fn tail(m: &Master, id: &str, stream: &'static str) -> LogTail {
    let read = async {
        let resp = m
            .service()
            .task_logs(id, stream, Some(TAIL_LINES), false)
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| e.to_string())?;
        let start = body.len().saturating_sub(TAIL_BYTES);
        let text = String::from_utf8_lossy(&body[start..]).into_owned();
        if status.is_success() {
            Ok(text)
        } else {
            Err(format!("the agent answered {status}: {}", text.trim()))
        }
    };
    let text = match tokio::time::timeout(LOG_TIMEOUT, read).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "the agent did not answer within {} s",
            LOG_TIMEOUT.as_secs()
        )),
    };
    LogTail { stream, text }
}

/// `GET /ui/tasks/{id}`.
pub async fn page(
    State(m): State<Master>,
    Path(id): Path<String>,
    Query(seen): Query<Seen>,
) -> Result<Html<String>> {
    let (version, task) = m.service().get_task(&id, seen.options()).await?;
    let task = TaskView::from(task.as_ref());
    let logs = vec![tail(&m, &id, "stdout").await, tail(&m, &id, "stderr").await];
    let page = TaskPage {
        frame: Frame::new(&m, "jobs", version, &seen),
        task,
        logs,
    };
    render("task", &page)
}
