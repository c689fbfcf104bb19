//! Follows a master's change feed (`GET /v1/events`, server-sent events)
//! in the background and keeps every event with the time it arrived, so a
//! test can check the order of changes (e.g. a replacement healthy before
//! the old task's kill was requested).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;
use serde_json::Value;
use tokio::task::JoinHandle;

/// One event of the feed.
#[derive(Debug, Clone)]
pub struct Event {
    /// When the follower read it.
    pub at: Instant,
    /// `task_put`, `job_put`, ...
    pub name: String,
    /// The event's JSON data.
    pub data: Value,
}

/// A background follower of one master's feed; stops when dropped.
#[derive(Debug)]
pub struct EventLog {
    events: Arc<Mutex<Vec<Event>>>,
    task: JoinHandle<()>,
}

impl EventLog {
    /// Follows `http://{addr}/v1/events?from={from}`.
    pub fn follow(addr: &str, from: u64) -> EventLog {
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&events);
        let url = format!("http://{addr}/v1/events?from={from}");
        let task = tokio::spawn(async move {
            let Ok(resp) = reqwest::get(url).await else {
                return;
            };
            let mut body = resp.bytes_stream();
            let mut buf = String::new();
            let mut name = String::new();
            while let Some(Ok(chunk)) = body.next().await {
                let at = Instant::now();
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(nl) = buf.find('\n') {
                    let line: String = buf.drain(..=nl).collect();
                    let line = line.trim_end();
                    if let Some(e) = line.strip_prefix("event:") {
                        name = e.trim().to_string();
                    } else if let Some(d) = line.strip_prefix("data:") {
                        if let Ok(data) = serde_json::from_str::<Value>(d.trim()) {
                            let ev = Event {
                                at,
                                name: name.clone(),
                                data,
                            };
                            sink.lock().unwrap_or_else(|p| p.into_inner()).push(ev);
                        }
                    }
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

    /// The `task_put` events of one task, in order.
    pub fn task_puts(&self, task: &str) -> Vec<Event> {
        self.events()
            .into_iter()
            .filter(|e| e.name == "task_put" && e.data["task"]["id"] == task)
            .collect()
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        self.task.abort();
    }
}
