//! [`follow`]: a watch that does not end when a stream breaks or a master
//! dies. It reconnects (through the client's failover) and resumes after
//! the last version it delivered completely; a version's events are never
//! delivered twice.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;

use crate::api::{event, Event, WatchRequest};
use crate::{Client, Error, Result};

const FIRST_RETRY: Duration = Duration::from_millis(50);
const LAST_RETRY: Duration = Duration::from_secs(1);

struct State {
    client: Arc<dyn Client>,
    req: WatchRequest,
    /// Every event of versions up to this one has been delivered.
    complete: u64,
    stream: Option<BoxStream<'static, Result<Event>>>,
    backoff: Duration,
    done: bool,
}

fn fatal(e: &Error) -> bool {
    matches!(e, Error::Invalid { .. } | Error::NotFound(_))
}

/// Follows `req` (from `req.from_version`) until the consumer drops the
/// stream; ends only with an error a retry cannot mend (a bad filter).
pub fn follow(client: Arc<dyn Client>, req: WatchRequest) -> BoxStream<'static, Result<Event>> {
    let complete = req.from_version;
    let state = State {
        client,
        req,
        complete,
        stream: None,
        backoff: FIRST_RETRY,
        done: false,
    };
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if st.done {
                return None;
            }
            let stream = match st.stream.as_mut() {
                Some(s) => s,
                None => {
                    let mut req = st.req.clone();
                    req.from_version = st.complete;
                    match st.client.watch(req).await {
                        Ok(s) => {
                            st.stream = Some(s);
                            continue;
                        }
                        Err(e) if fatal(&e) => {
                            st.done = true;
                            return Some((Err(e), st));
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, retry_ms = st.backoff.as_millis() as u64, "watch: reconnecting");
                            tokio::time::sleep(st.backoff).await;
                            st.backoff = (st.backoff * 2).min(LAST_RETRY);
                            continue;
                        }
                    }
                }
            };
            match stream.next().await {
                Some(Ok(ev)) => {
                    st.backoff = FIRST_RETRY;
                    let snapshot = matches!(ev.kind, Some(event::Kind::Snapshot(_)));
                    if !snapshot && ev.version <= st.complete {
                        // Already delivered before the stream broke.
                        continue;
                    }
                    if snapshot || ev.last_of_version {
                        st.complete = st.complete.max(ev.version);
                        if snapshot {
                            st.complete = ev.version;
                        }
                    }
                    return Some((Ok(ev), st));
                }
                Some(Err(e)) if fatal(&e) => {
                    st.done = true;
                    return Some((Err(e), st));
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "watch broke; resuming from version {}", st.complete);
                    st.stream = None;
                }
                None => {
                    tracing::debug!("watch ended; resuming from version {}", st.complete);
                    st.stream = None;
                    tokio::time::sleep(st.backoff).await;
                    st.backoff = (st.backoff * 2).min(LAST_RETRY);
                }
            }
        }
    })
    .boxed()
}
