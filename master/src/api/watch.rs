//! The watch stream shared by gRPC `Watch` and REST `GET /v1/events`: a
//! snapshot when the consumer is too far behind (or new), then every change
//! in version order, re-synced with a new snapshot if the consumer lags or
//! the master installs a snapshot.

use futures::Stream;
use std::sync::Arc;

use ocean_proto::v1::{Agent, Job};
use tokio::sync::broadcast::error::RecvError;

use crate::feed::{FeedItem, Start};
use crate::master::Master;
use crate::state::Change;

/// One item of a watch.
#[derive(Debug, Clone)]
pub enum WatchItem {
    /// Replace everything with these jobs at `version`.
    Snapshot {
        version: u64,
        jobs: Vec<Arc<Job>>,
        agents: Vec<Arc<Agent>>,
    },
    /// One change.
    Change(u64, Change),
}

/// Follows the state from `from` (exclusive; 0 = start with a snapshot).
pub fn watch(master: Master, from: u64) -> impl Stream<Item = WatchItem> + Send + 'static {
    async_stream(master, from)
}

fn async_stream(master: Master, from: u64) -> impl Stream<Item = WatchItem> + Send + 'static {
    futures::stream::unfold(
        (master, from, None, std::collections::VecDeque::new()),
        |(master, mut have, mut live, mut queue)| async move {
            loop {
                if let Some(item) = queue.pop_front() {
                    return Some((item, (master, have, live, queue)));
                }
                let rx: &mut tokio::sync::broadcast::Receiver<FeedItem> = match &mut live {
                    Some(rx) => rx,
                    None => {
                        let sub = master.feed().subscribe(have, master.state());
                        match sub.start {
                            Start::Backlog(items) => {
                                for (v, c) in items {
                                    have = v;
                                    queue.push_back(WatchItem::Change(v, c));
                                }
                            }
                            Start::Snapshot {
                                version,
                                jobs,
                                agents,
                                backlog,
                            } => {
                                have = version;
                                queue.push_back(WatchItem::Snapshot {
                                    version,
                                    jobs,
                                    agents,
                                });
                                for (v, c) in backlog {
                                    have = v;
                                    queue.push_back(WatchItem::Change(v, c));
                                }
                            }
                        }
                        live = Some(sub.live);
                        continue;
                    }
                };
                match rx.recv().await {
                    Ok(FeedItem::Change(v, c)) if v > have => {
                        have = v;
                        return Some((WatchItem::Change(v, c), (master, have, live, queue)));
                    }
                    Ok(FeedItem::Change(..)) => {}
                    Ok(FeedItem::Reset) => {
                        // Force a snapshot on resubscribe.
                        have = 0;
                        live = None;
                    }
                    Err(RecvError::Lagged(_)) => live = None,
                    Err(RecvError::Closed) => return None,
                }
            }
        },
    )
}
