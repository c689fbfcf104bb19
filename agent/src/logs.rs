//! Task logs over HTTP: `GET /v1/tasks/{id}/logs?stream=stdout|stderr&tail=N&follow=true`
//! serves a task's sandbox `stdout` or `stderr` as `text/plain`.
//!
//! ```text
//!  request ─► check id, stream, tail, follow ─► sandbox exists? ─ no ─► 404 not_found
//!                                                    │ yes
//!   <stream>.1 + <stream> (or their last N lines) ───┴─► follow: poll every 100 ms,
//!   send new bytes; file shrank (copy-truncate) → from 0; task ended and drained → end
//! ```
//!
//! Running containers' output comes from the engine's log API instead
//! ([`LiveLogs`]); an ended container's output is copied into its sandbox
//! and served like any other.
//!
//! The files are the task's own (it writes them directly, see [`crate::sandbox`]),
//! so reading them never slows the task down. Following polls rather than
//! using inotify: simple, portable, and 100 ms is well below what a human
//! watching a log notices. Bytes written between two polls in the instant
//! of a rotation may be missed by a follower; they remain in `<stream>.1`.

use std::collections::HashMap;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::stream::BoxStream;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::sandbox::{self, LOG_FILES};

/// Answers whether a task has ended (or is unknown), so a follower knows
/// that its log will not grow any more.
pub type HasEnded = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// The output of a task that is not a file in a sandbox (a running
/// container): given the task id, the stream (`stdout`/`stderr`), `tail`
/// and `follow`, the bytes to send, or `None` to serve the sandbox.
pub type LiveLogs = Arc<
    dyn Fn(
            &str,
            &'static str,
            Option<u64>,
            bool,
        ) -> Option<BoxStream<'static, std::io::Result<Bytes>>>
        + Send
        + Sync,
>;

/// How often a followed log is polled.
pub const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// Bytes read and sent at a time.
const CHUNK: u64 = 64 * 1024;

#[derive(Clone)]
struct LogState {
    data_dir: PathBuf,
    has_ended: HasEnded,
    live: Option<LiveLogs>,
}

/// The log server's routes over the sandboxes under `data_dir`.
pub fn router(data_dir: PathBuf, has_ended: HasEnded) -> Router {
    router_with_live(data_dir, has_ended, None)
}

/// Like [`router`], asking `live` first (running containers' output comes
/// from the engine's log API, not from a file).
pub fn router_with_live(data_dir: PathBuf, has_ended: HasEnded, live: Option<LiveLogs>) -> Router {
    Router::new()
        .route("/v1/tasks/{id}/logs", get(task_logs))
        .with_state(LogState {
            data_dir,
            has_ended,
            live,
        })
}

fn text_response(body: Body) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// What a request asks for, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LogQuery {
    stream: &'static str,
    tail: Option<u64>,
    follow: bool,
}

fn error(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        Json(serde_json::json!({"error": message, "code": code})),
    )
        .into_response()
}

fn bad_request(message: String) -> Response {
    error(StatusCode::BAD_REQUEST, "invalid_request", message)
}

/// Parses the query, naming the parameter that is wrong.
fn parse_query(q: &HashMap<String, String>) -> Result<LogQuery, String> {
    let mut query = LogQuery {
        stream: LOG_FILES[0],
        tail: None,
        follow: false,
    };
    for (key, value) in q {
        match key.as_str() {
            "stream" => {
                query.stream = LOG_FILES
                    .into_iter()
                    .find(|s| s == value)
                    .ok_or_else(|| format!("stream: must be stdout or stderr, got {value:?}"))?;
            }
            "tail" => {
                query.tail = Some(value.parse().map_err(|_| {
                    format!("tail: must be a number of lines (0 or more), got {value:?}")
                })?);
            }
            "follow" => {
                query.follow = match value.as_str() {
                    "true" | "1" | "" => true,
                    "false" | "0" => false,
                    _ => return Err(format!("follow: must be true or false, got {value:?}")),
                };
            }
            other => {
                return Err(format!(
                    "{other}: unknown parameter; expected stream, tail or follow"
                ))
            }
        }
    }
    Ok(query)
}

/// Task ids become paths: refuse anything that could leave the sandboxes.
fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty()
        || id.contains('/')
        || id.contains("..")
        || id.starts_with('.')
        || id.contains('\0')
    {
        return Err(format!(
            "task id {id:?}: must be non-empty, without '/' or '..', not starting with '.'"
        ));
    }
    Ok(())
}

async fn task_logs(
    State(state): State<LogState>,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(message) = check_id(&id) {
        return bad_request(message);
    }
    let query = match parse_query(&q) {
        Ok(q) => q,
        Err(message) => return bad_request(message),
    };
    if let Some(live) = &state.live {
        if let Some(stream) = live(&id, query.stream, query.tail, query.follow) {
            return text_response(Body::from_stream(stream));
        }
    }
    let dir = sandbox::sandbox_dir(&state.data_dir, &id);
    if !tokio::fs::metadata(&dir).await.is_ok_and(|m| m.is_dir()) {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no sandbox for task {id} on this agent"),
        );
    }
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(8);
    let has_ended = Arc::clone(&state.has_ended);
    tokio::spawn(async move {
        if let Err(e) = send_log(&tx, &dir, &query, &id, &has_ended).await {
            let _ = tx.send(Err(e)).await;
        }
    });
    text_response(Body::from_stream(ReceiverStream::new(rx)))
}

type Tx = mpsc::Sender<std::io::Result<Bytes>>;

/// Length of a file, 0 if it does not exist.
async fn file_len(path: &Path) -> std::io::Result<u64> {
    match tokio::fs::metadata(path).await {
        Ok(m) => Ok(m.len()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// Sends the whole response; returns early (Ok) when the client is gone.
async fn send_log(
    tx: &Tx,
    dir: &Path,
    query: &LogQuery,
    id: &str,
    has_ended: &HasEnded,
) -> std::io::Result<()> {
    let path = dir.join(query.stream);
    let rotated = dir.join(format!("{}.1", query.stream));
    let len = file_len(&path).await?;
    let rotated_len = file_len(&rotated).await?;
    // Where to start in the rotated file and in the current one.
    let (rotated_from, from) = match query.tail {
        None => (0, 0),
        Some(n) => {
            let (from, found) = tail_start(&path, len, n).await?;
            if found < n && from == 0 {
                let (rfrom, _) = tail_start(&rotated, rotated_len, n - found).await?;
                (rfrom, 0)
            } else {
                (rotated_len, from)
            }
        }
    };
    if !send_range(tx, &rotated, rotated_from, rotated_len).await?
        || !send_range(tx, &path, from, len).await?
    {
        return Ok(());
    }
    if !query.follow {
        return Ok(());
    }
    let mut offset = len;
    loop {
        // Asked before reading: whatever the task wrote before it ended is
        // in the file by now and is drained below.
        let ended = has_ended(id);
        let len = file_len(&path).await?;
        if len < offset {
            offset = 0;
        }
        if len > offset {
            if !send_range(tx, &path, offset, len).await? {
                return Ok(());
            }
            offset = len;
            continue;
        }
        if ended {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(FOLLOW_POLL) => {}
            _ = tx.closed() => return Ok(()),
        }
    }
}

/// Sends bytes `from..to` of `path` in chunks; false if the client is gone.
/// A file that is missing or shorter than `to` sends what there is.
async fn send_range(tx: &Tx, path: &Path, from: u64, to: u64) -> std::io::Result<bool> {
    if from >= to {
        return Ok(true);
    }
    let mut file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(e),
    };
    file.seek(SeekFrom::Start(from)).await?;
    let mut left = to - from;
    while left > 0 {
        let mut buf = Vec::with_capacity(usize::try_from(left.min(CHUNK)).unwrap_or(0));
        let n = (&mut file)
            .take(left.min(CHUNK))
            .read_to_end(&mut buf)
            .await?;
        if n == 0 {
            break;
        }
        left -= n as u64;
        if tx.send(Ok(Bytes::from(buf))).await.is_err() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The offset where the last `n` lines of the first `len` bytes of `path`
/// begin, and how many lines were found (fewer than `n` when the file
/// holds fewer). A final newline ends the last line; it does not start one.
async fn tail_start(path: &Path, len: u64, n: u64) -> std::io::Result<(u64, u64)> {
    if n == 0 {
        return Ok((len, 0));
    }
    let mut file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(e),
    };
    let mut newlines = 0u64;
    let mut end = len;
    let mut last_byte = true;
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let mut buf = vec![0u8; usize::try_from(end - start).unwrap_or(0)];
        file.seek(SeekFrom::Start(start)).await?;
        file.read_exact(&mut buf).await?;
        for (i, b) in buf.iter().enumerate().rev() {
            let at_end = std::mem::take(&mut last_byte);
            if *b != b'\n' || at_end {
                continue;
            }
            newlines += 1;
            if newlines == n {
                return Ok((start + i as u64 + 1, n));
            }
        }
        end = start;
    }
    // The whole file: its first line has no newline before it.
    let lines = if len == 0 { 0 } else { newlines + 1 };
    Ok((0, lines))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tail_finds_the_last_lines() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("stdout");
        std::fs::write(&path, b"a\nb\nc\n")?;
        let len = 6;
        assert_eq!(tail_start(&path, len, 1).await?, (4, 1));
        assert_eq!(tail_start(&path, len, 2).await?, (2, 2));
        assert_eq!(tail_start(&path, len, 3).await?, (0, 3));
        assert_eq!(tail_start(&path, len, 9).await?, (0, 3));
        assert_eq!(tail_start(&path, len, 0).await?, (6, 0));
        std::fs::write(&path, b"a\nb")?;
        assert_eq!(tail_start(&path, 3, 1).await?, (2, 1));
        assert_eq!(tail_start(&path, 3, 5).await?, (0, 2));
        assert_eq!(tail_start(&dir.path().join("none"), 0, 5).await?, (0, 0));
        Ok(())
    }

    #[test]
    fn queries_name_the_bad_parameter() {
        let q = |pairs: &[(&str, &str)]| {
            parse_query(
                &pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        };
        assert_eq!(
            q(&[("stream", "stderr"), ("tail", "5"), ("follow", "true")]),
            Ok(LogQuery {
                stream: "stderr",
                tail: Some(5),
                follow: true
            })
        );
        for (pairs, name) in [
            (vec![("stream", "stdin")], "stream"),
            (vec![("tail", "-1")], "tail"),
            (vec![("follow", "maybe")], "follow"),
            (vec![("lines", "3")], "lines"),
        ] {
            let err = q(&pairs).err().unwrap_or_default();
            assert!(err.starts_with(name), "{err:?} should name {name}");
        }
        assert!(check_id("../etc").is_err() && check_id("a/b").is_err() && check_id("").is_err());
        assert!(check_id("web.1").is_ok());
    }
}
