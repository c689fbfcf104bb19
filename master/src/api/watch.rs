//! The watch stream shared by gRPC `Watch` and REST `GET /v1/events`: a
//! snapshot when the consumer is too far behind (or new), then every change
//! in version order, re-synced with a new snapshot if the consumer lags or
//! the master installs a snapshot.
//!
//! One version may hold many changes (a scheduling round places many tasks
//! in one command). Only the last change of a version is marked `last`, so a
//! consumer that resumes "after version v" never skips half of version v:
//! SSE puts an event id on the last one only.

use futures::Stream;
use std::collections::VecDeque;
use std::sync::Arc;

use ocean_proto::v1::{Agent, Job, Task};
use tokio::sync::broadcast::error::RecvError;

use crate::feed::{Changes, FeedItem, Start};
use crate::master::Master;
use crate::state::Change;

/// One item of a watch.
#[derive(Debug, Clone)]
pub enum WatchItem {
    /// Replace everything with this state at `version`.
    Snapshot {
        version: u64,
        jobs: Vec<Arc<Job>>,
        agents: Vec<Arc<Agent>>,
        tasks: Vec<Arc<Task>>,
    },
    /// One change of `version`; `last` on the last change of that version.
    Change {
        version: u64,
        change: Change,
        last: bool,
    },
}

fn expand(queue: &mut VecDeque<WatchItem>, version: u64, changes: &Changes) {
    let n = changes.len();
    for (i, c) in changes.iter().enumerate() {
        queue.push_back(WatchItem::Change {
            version,
            change: c.clone(),
            last: i + 1 == n,
        });
    }
}

/// Follows the state from `from` (exclusive; 0 = start with a snapshot).
pub fn watch(master: Master, from: u64) -> impl Stream<Item = WatchItem> + Send + 'static {
    futures::stream::unfold(
        (master, from, None, VecDeque::new()),
        |(master, mut have, mut live, mut queue)| async move {
            loop {
                if let Some(item) = queue.pop_front() {
                    return Some((item, (master, have, live, queue)));
                }
                let rx: &mut tokio::sync::broadcast::Receiver<FeedItem> = match &mut live {
                    Some(rx) => rx,
                    None => {
                        let sub = master.feed().subscribe(have, master.state());
                        let backlog = match sub.start {
                            Start::Backlog(items) => items,
                            Start::Snapshot {
                                version,
                                jobs,
                                agents,
                                tasks,
                                backlog,
                            } => {
                                have = version;
                                queue.push_back(WatchItem::Snapshot {
                                    version,
                                    jobs,
                                    agents,
                                    tasks,
                                });
                                backlog
                            }
                        };
                        for (v, c) in backlog {
                            have = v;
                            expand(&mut queue, v, &c);
                        }
                        live = Some(sub.live);
                        continue;
                    }
                };
                match rx.recv().await {
                    Ok(FeedItem::Changes(v, c)) if v > have => {
                        have = v;
                        expand(&mut queue, v, &c);
                    }
                    Ok(FeedItem::Changes(..)) => {}
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
