//! [`follow`]: a watch that does not end when a stream breaks or a master
//! dies.
//!
//! ```text
//!  watch(from = complete) ──► events ──► drop if version <= complete
//!        ▲                               (snapshots always pass)
//!        │ stream error or end:          ──► consumer; complete = version
//!        │ back-off 50 ms .. 1 s             of a snapshot or of an event
//!        └───────────────────────────        with last_of_version
//! ```
//!
//! One version can hold many events (a scheduling round places many tasks
//! in one command), and a watch resumes "after version v". So the stream
//! resumes after the last version the consumer has seen *completely*: the
//! events of a version that was cut in half arrive again, whole, from the
//! new stream (they are puts and deletes of whole records, so seeing one
//! twice is harmless), and no complete version is ever delivered twice.
//!
//! [`follow_versions`] goes one step further for consumers that must never
//! act on half a version (the DNS server publishes each as one zone
//! update): it holds a version's events back until the last of them, hands
//! the version over as one batch, and forgets a half version when the
//! stream breaks (the resumed stream sends it again, whole).

use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;
use tracing::warn;

use crate::api::{event, Event, WatchRequest};
use crate::{Client, Error, Result};

const FIRST_RETRY: Duration = Duration::from_millis(50);
const LAST_RETRY: Duration = Duration::from_secs(1);

/// Follows `req` from `req.from_version` until the consumer drops the
/// stream. It ends only with an error that no retry can mend (a bad filter,
/// a call the masters do not know); everything else reconnects, through
/// the client's own failover, and is logged.
pub fn follow(client: Arc<dyn Client>, req: WatchRequest) -> BoxStream<'static, Result<Event>> {
    futures::stream::unfold(Follow::new(client, req), |mut st| async move {
        let item = st.next().await?;
        Some((item, st))
    })
    .boxed()
}

/// Like [`follow()`], but one item per complete version: its events in
/// order, or a snapshot alone. A version cut in half by a broken stream is
/// never handed over; it comes whole from the next stream.
pub fn follow_versions(
    client: Arc<dyn Client>,
    req: WatchRequest,
) -> BoxStream<'static, Result<Vec<Event>>> {
    futures::stream::unfold(Follow::new(client, req), |mut st| async move {
        let item = st.next_version().await?;
        Some((item, st))
    })
    .boxed()
}

struct Follow {
    client: Arc<dyn Client>,
    req: WatchRequest,
    /// Every event of every version up to this one was delivered.
    complete: u64,
    stream: Option<BoxStream<'static, Result<Event>>>,
    backoff: Duration,
    /// A permanent error was delivered: the stream is over.
    done: bool,
    /// The events of the version being received ([`follow_versions`]).
    pending: Vec<Event>,
}

impl Follow {
    fn new(client: Arc<dyn Client>, req: WatchRequest) -> Self {
        Follow {
            complete: req.from_version,
            client,
            req,
            stream: None,
            backoff: FIRST_RETRY,
            done: false,
            pending: Vec::new(),
        }
    }

    /// The next complete version (see [`follow_versions`]).
    async fn next_version(&mut self) -> Option<Result<Vec<Event>>> {
        loop {
            let ev = match self.next().await? {
                Ok(ev) => ev,
                Err(e) => return Some(Err(e)),
            };
            if matches!(ev.kind, Some(event::Kind::Snapshot(_))) {
                // It replaces everything, a half version before it included.
                self.pending.clear();
                return Some(Ok(vec![ev]));
            }
            let last = ev.last_of_version;
            self.pending.push(ev);
            if last {
                return Some(Ok(std::mem::take(&mut self.pending)));
            }
        }
    }

    async fn next(&mut self) -> Option<Result<Event>> {
        while !self.done {
            let stream = match &mut self.stream {
                Some(stream) => stream,
                None => {
                    let mut req = self.req.clone();
                    req.from_version = self.complete;
                    match self.client.watch(req).await {
                        Ok(stream) => self.stream.insert(stream),
                        Err(e) => {
                            if let Some(e) = self.failed(e).await {
                                return Some(Err(e));
                            }
                            continue;
                        }
                    }
                }
            };
            match stream.next().await {
                Some(Ok(ev)) => {
                    // The connection works again: the next break starts
                    // the back-off over.
                    self.backoff = FIRST_RETRY;
                    if let Some(ev) = self.accept(ev) {
                        return Some(Ok(ev));
                    }
                }
                Some(Err(e)) => {
                    self.broke();
                    if let Some(e) = self.failed(e).await {
                        return Some(Err(e));
                    }
                }
                None => {
                    self.broke();
                    let ended = Error::Unavailable("the watch stream ended".into());
                    self.failed(ended).await;
                }
            }
        }
        None
    }

    /// The stream broke: the next one resumes after `complete`, so a half
    /// version held back comes again, whole.
    fn broke(&mut self) {
        self.stream = None;
        self.pending.clear();
    }

    /// Decides what the consumer sees of one event, and moves `complete`.
    fn accept(&mut self, ev: Event) -> Option<Event> {
        // A snapshot replaces the consumer's state, whatever its version.
        if matches!(ev.kind, Some(event::Kind::Snapshot(_))) {
            self.complete = ev.version;
            return Some(ev);
        }
        if ev.version <= self.complete {
            return None;
        }
        if ev.last_of_version {
            self.complete = ev.version;
        }
        Some(ev)
    }

    /// After a failed call or stream: the error to end with, or `None`
    /// once the back-off has passed and a reconnect is due.
    async fn failed(&mut self, error: Error) -> Option<Error> {
        if permanent(&error) {
            self.done = true;
            return Some(error);
        }
        warn!(
            %error,
            from_version = self.complete,
            retry_in_ms = self.backoff.as_millis() as u64,
            "watch broke; reconnecting"
        );
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(LAST_RETRY);
        None
    }
}

/// Errors that a reconnect would only repeat.
fn permanent(error: &Error) -> bool {
    match error {
        Error::Invalid { .. } | Error::NotFound(_) => true,
        Error::Other { code, .. } => matches!(
            code,
            tonic::Code::Unimplemented
                | tonic::Code::PermissionDenied
                | tonic::Code::Unauthenticated
        ),
        _ => false,
    }
}
