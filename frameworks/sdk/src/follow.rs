//! What a framework's operator (the part beside the [`crate::Runner`] that
//! talks to its instances) needs from the masters: a [`View`] of its
//! namespace kept current by a task of its own, so a slow round (instances
//! that hang) never leaves the watch unread, and whether its holder has
//! the framework's lease.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use ocean_client::api::event::Kind;
use ocean_client::api::{LeaseRef, WatchRequest};
use ocean_client::Client;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::runner::LEASE_NAME;
use crate::view::View;

/// A [`View`] of one namespace (its jobs, tasks and keys), followed in the
/// background; the task stops when this is dropped.
#[derive(Debug)]
pub struct ViewFollower {
    latest: Arc<Mutex<Option<View>>>,
    changed: Arc<Notify>,
    task: JoinHandle<()>,
}

impl ViewFollower {
    /// Starts following `namespace` through `client`.
    pub fn spawn(client: Arc<dyn Client>, namespace: &str) -> Self {
        let latest = Arc::new(Mutex::new(None));
        let changed = Arc::new(Notify::new());
        let task = tokio::spawn(follow(
            client,
            namespace.to_string(),
            latest.clone(),
            changed.clone(),
        ));
        ViewFollower {
            latest,
            changed,
            task,
        }
    }

    /// The view as of the last whole version (None until a snapshot came).
    pub fn latest(&self) -> Option<View> {
        self.latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Resolves when a whole version touched tasks (or a snapshot came):
    /// an operator's cue to act at once, not at its next tick.
    pub async fn tasks_changed(&self) {
        self.changed.notified().await;
    }
}

impl Drop for ViewFollower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn follow(
    client: Arc<dyn Client>,
    namespace: String,
    latest: Arc<Mutex<Option<View>>>,
    changed: Arc<Notify>,
) {
    loop {
        let req = WatchRequest {
            kinds: vec!["job".into(), "task".into(), "kv".into()],
            namespaces: vec![namespace.clone()],
            ..Default::default()
        };
        let mut events = ocean_client::follow(client.clone(), req);
        let mut view = View::new(&namespace);
        let mut ready = false;
        let mut tasks_moved = false;
        while let Some(ev) = events.next().await {
            let ev = match ev {
                Ok(ev) => ev,
                Err(e) => {
                    warn!(%namespace, error = %e, "operator: watch failed; following again");
                    break;
                }
            };
            let complete = ev.last_of_version;
            tasks_moved |= matches!(ev.kind, Some(Kind::TaskPut(_)) | Some(Kind::Snapshot(_)));
            ready |= matches!(ev.kind, Some(Kind::Snapshot(_)));
            view.apply(ev);
            if complete && ready {
                *latest.lock().unwrap_or_else(|p| p.into_inner()) = Some(view.clone());
                if tasks_moved {
                    changed.notify_one();
                    tasks_moved = false;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether `holder` holds `namespace`'s framework lease as the masters
/// say now (an unreadable lease counts as not held).
pub async fn holds_lease(client: &dyn Client, namespace: &str, holder: &str) -> bool {
    let req = LeaseRef {
        namespace: namespace.into(),
        name: LEASE_NAME.into(),
        read: None,
    };
    match client.lease_get(req).await {
        Ok(l) => l.holder == holder,
        Err(e) => {
            debug!(%namespace, error = %e, "operator: lease not readable");
            false
        }
    }
}
