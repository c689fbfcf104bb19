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

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use super::*;
    use crate::api::*;

    /// Each watch call takes the next list of events and ends its stream
    /// after them (as a master that dies would); with none left it stays
    /// open. Every other call is refused.
    #[derive(Debug, Default)]
    struct Scripted {
        script: Mutex<VecDeque<Vec<Event>>>,
        asked_from: Mutex<Vec<u64>>,
    }

    fn refused<T>() -> Result<T> {
        Err(Error::Other {
            code: tonic::Code::Unimplemented,
            message: "scripted".into(),
        })
    }

    /// `async_trait` must see the expanded methods, so the macro writes the
    /// whole impl (as in `grpc.rs`).
    macro_rules! scripted_impl {
        ($($name:ident($req:ty) -> $resp:ty;)* ;) => {
            #[async_trait::async_trait]
            impl Client for Scripted {
                $(async fn $name(&self, _: $req) -> Result<$resp> { refused() })*

                async fn watch(&self, req: WatchRequest) -> Result<BoxStream<'static, Result<Event>>> {
                    self.asked_from.lock().unwrap().push(req.from_version);
                    match self.script.lock().unwrap().pop_front() {
                        Some(events) => Ok(futures::stream::iter(events.into_iter().map(Ok)).boxed()),
                        None => Ok(futures::stream::pending().boxed()),
                    }
                }

                async fn task_logs(&self, _: TaskLogsRequest) -> Result<BoxStream<'static, Result<LogChunk>>> {
                    refused()
                }
            }
        };
    }

    crate::with_unary_calls! { scripted_impl {} }

    fn snapshot(version: u64) -> Event {
        Event {
            version,
            kind: Some(event::Kind::Snapshot(Snapshot {
                version,
                ..Default::default()
            })),
            last_of_version: true,
        }
    }

    /// A change of `version` (`id` tells the changes apart), `last` on the
    /// last one of its version.
    fn change(version: u64, id: &str, last: bool) -> Event {
        Event {
            version,
            kind: Some(event::Kind::JobDeleted(id.into())),
            last_of_version: last,
        }
    }

    fn ids(batch: &[Event]) -> Vec<String> {
        batch
            .iter()
            .map(|ev| match &ev.kind {
                Some(event::Kind::JobDeleted(id)) => id.clone(),
                Some(event::Kind::Snapshot(s)) => format!("snapshot@{}", s.version),
                other => format!("{other:?}"),
            })
            .collect()
    }

    async fn take(
        stream: &mut BoxStream<'static, Result<Vec<Event>>>,
        n: usize,
    ) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        for _ in 0..n {
            let next = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
            let batch = next
                .expect("a version in time")
                .expect("not ended")
                .unwrap();
            out.push(ids(&batch));
        }
        out
    }

    #[tokio::test]
    async fn versions_come_whole_and_a_half_one_comes_again_after_a_break() {
        let fake = Arc::new(Scripted::default());
        fake.script.lock().unwrap().extend([
            vec![snapshot(10), change(11, "a", true), change(12, "b", false)],
            vec![
                change(12, "b", false),
                change(12, "c", true),
                change(13, "d", true),
            ],
        ]);
        let mut versions = follow_versions(fake.clone(), WatchRequest::default());
        assert_eq!(
            take(&mut versions, 4).await,
            [
                vec!["snapshot@10".to_string()],
                vec!["a".into()],
                vec!["b".into(), "c".into()],
                vec!["d".into()],
            ]
        );
        // Resumed after 11, the last version seen whole.
        assert_eq!(&fake.asked_from.lock().unwrap()[..2], &[0, 11]);
    }

    #[tokio::test]
    async fn a_snapshot_drops_the_half_version_before_it() {
        let fake = Arc::new(Scripted::default());
        fake.script.lock().unwrap().extend([
            vec![snapshot(10), change(11, "a", false)],
            vec![snapshot(20), change(21, "b", true)],
        ]);
        let mut versions = follow_versions(fake.clone(), WatchRequest::default());
        assert_eq!(
            take(&mut versions, 3).await,
            [
                vec!["snapshot@10".to_string()],
                vec!["snapshot@20".into()],
                vec!["b".into()],
            ]
        );
    }

    #[test]
    fn only_errors_a_retry_would_repeat_end_a_follow() {
        let invalid = Error::Invalid {
            message: "bad node".into(),
            errors: vec![],
        };
        assert!(permanent(&invalid));
        assert!(permanent(&Error::Other {
            code: tonic::Code::Unimplemented,
            message: "no such call".into(),
        }));
        assert!(!permanent(&Error::Unavailable("no leader".into())));
        assert!(!permanent(&Error::NotCommitted("slow".into())));
    }
}
