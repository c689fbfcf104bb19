//! Follows a master's change feed (gRPC `Watch`, through `ocean-client`'s
//! [`follow`](ocean_client::follow())) in the background and keeps every
//! event, typed, with the time it arrived, so a test can check the order
//! of changes (e.g. a replacement healthy before the old task's kill was
//! requested).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;
use ocean_client::api::{event, Job, Task, WatchRequest};
use ocean_client::{Client, GrpcClient};
use tokio::task::JoinHandle;

/// One event of the feed.
#[derive(Debug, Clone)]
pub struct Event {
    /// When the follower read it.
    pub at: Instant,
    /// The state version it belongs to.
    pub version: u64,
    /// What changed.
    pub kind: event::Kind,
}

/// A record as one event put it.
#[derive(Debug, Clone)]
pub struct Put<T> {
    /// When the follower read it.
    pub at: Instant,
    /// The state version of the change.
    pub version: u64,
    /// The record.
    pub object: T,
}

/// A background follower of one master's feed; stops when dropped.
#[derive(Debug)]
pub struct EventLog {
    events: Arc<Mutex<Vec<Event>>>,
    task: JoinHandle<()>,
}

impl EventLog {
    /// Follows the master at `grpc_addr` (HOST:PORT) from version `from`
    /// (0: a snapshot first), resuming if the stream breaks.
    pub fn follow(grpc_addr: &str, from: u64) -> EventLog {
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&events);
        let client = GrpcClient::new([grpc_addr.to_string()]).expect("master gRPC address");
        let client: Arc<dyn Client> = Arc::new(client);
        let req = WatchRequest {
            from_version: from,
            ..Default::default()
        };
        let task = tokio::spawn(async move {
            let mut stream = ocean_client::follow(client, req);
            while let Some(Ok(ev)) = stream.next().await {
                let at = Instant::now();
                if let Some(kind) = ev.kind {
                    let ev = Event {
                        at,
                        version: ev.version,
                        kind,
                    };
                    sink.lock().unwrap_or_else(|p| p.into_inner()).push(ev);
                }
            }
        });
        EventLog { events, task }
    }

    /// Every event so far, in arrival order.
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Every task put so far, in order.
    pub fn tasks_put(&self) -> Vec<Put<Task>> {
        self.events()
            .into_iter()
            .filter_map(|e| match e.kind {
                event::Kind::TaskPut(task) => Some(Put {
                    at: e.at,
                    version: e.version,
                    object: task,
                }),
                _ => None,
            })
            .collect()
    }

    /// The puts of one task, in order.
    pub fn task_puts(&self, task: &str) -> Vec<Put<Task>> {
        self.tasks_put()
            .into_iter()
            .filter(|p| p.object.id == task)
            .collect()
    }

    /// Every job put so far, in order.
    pub fn jobs_put(&self) -> Vec<Put<Job>> {
        self.events()
            .into_iter()
            .filter_map(|e| match e.kind {
                event::Kind::JobPut(job) => Some(Put {
                    at: e.at,
                    version: e.version,
                    object: job,
                }),
                _ => None,
            })
            .collect()
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        self.task.abort();
    }
}
