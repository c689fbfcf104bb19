//! The LB host's loop: follow the masters' watch (tasks, and the keys of
//! the `elb` namespace), and after every complete version make the kernel
//! hold the data plane they imply.
//!
//! ```text
//!  follow_versions ─► View ─► (ELBs of this idc, tasks) ─► plane::desired ─► Programmer::sync
//!        ▲ versions that arrived meanwhile are folded in before the sync
//!        └── resync: read the kernel back every `resync`, repair drift
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use ocean_client::api::WatchRequest;
use ocean_client::Client;
use ocean_framework::View;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::plane::{desired, virtual_servers, DataPlane};
use crate::programmer::{Applied, ProgramError, Programmer};
use crate::spec::ElbSpec;
use crate::store::{decode, PREFIX};
use crate::NAMESPACE;

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// Only ELBs of this data center (`None`: all).
    pub idc: Option<String>,
    /// Read the kernel back and repair it this often.
    pub resync: Duration,
}

impl Default for AgentOptions {
    fn default() -> Self {
        AgentOptions {
            idc: None,
            resync: Duration::from_secs(30),
        }
    }
}

/// What one sync of the agent did, for whoever watches it (tests, metrics).
#[derive(Debug, Clone)]
pub struct SyncReport {
    /// The state version the data plane reflects.
    pub version: u64,
    /// From the version's arrival to the kernel holding it.
    pub latency: Duration,
    /// What the programmer did.
    pub applied: Applied,
    /// Elements in the data plane.
    pub elements: usize,
}

/// The ELBs of `view`, filtered to `idc`; unreadable ones are skipped
/// (and logged).
pub fn elbs_of(view: &View, idc: Option<&str>) -> Vec<ElbSpec> {
    view.keys_under(PREFIX)
        .filter_map(|e| match decode(&e.key, &e.value) {
            Ok(s) => Some(s),
            Err(error) => {
                warn!(%error, "skipping an ELB");
                None
            }
        })
        .filter(|s| idc.is_none_or(|i| s.idc == i))
        .collect()
}

/// The tasks of `job` in `view` (task ids are `<job id>.<suffix>`).
pub fn tasks_of<'v>(view: &'v View, job: &str) -> Vec<&'v ocean_client::api::Task> {
    let prefix = format!("{job}.");
    view.tasks
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(_, t)| t)
        .filter(|t| t.job_id == job)
        .collect()
}

/// The data plane `view` implies, given what is installed.
pub fn plane_of(view: &View, idc: Option<&str>, installed: Option<&DataPlane>) -> DataPlane {
    let elbs = elbs_of(view, idc);
    let vss = virtual_servers(&elbs, &|job| tasks_of(view, job));
    desired(&vss, installed)
}

async fn sync(
    programmer: Programmer,
    plane: DataPlane,
) -> (Programmer, Result<Applied, ProgramError>) {
    let mut p = programmer;
    match tokio::task::spawn_blocking(move || {
        let r = p.sync(&plane);
        (p, r)
    })
    .await
    {
        Ok(out) => out,
        Err(e) => panic!("the nft worker panicked: {e}"),
    }
}

/// Runs until `shutdown` turns true. Every sync is reported on `reports`
/// (if given).
pub async fn run(
    client: Arc<dyn Client>,
    mut programmer: Programmer,
    opts: AgentOptions,
    mut shutdown: watch::Receiver<bool>,
    reports: Option<tokio::sync::mpsc::UnboundedSender<SyncReport>>,
) {
    let req = WatchRequest {
        kinds: vec!["task".into(), "kv".into()],
        namespaces: vec![NAMESPACE.into()],
        ..Default::default()
    };
    let mut versions = ocean_client::follow_versions(client, req);
    let mut view = View::new(NAMESPACE);
    let mut ready = false;
    let mut resync = tokio::time::interval(opts.resync);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let arrived;
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = resync.tick() => {
                if !ready {
                    continue;
                }
                arrived = Instant::now();
                // Repair drift: read the kernel back before the diff.
                let (p, r) = tokio::task::spawn_blocking(move || {
                    let mut p = programmer;
                    let r = p.refresh();
                    (p, r)
                }).await.unwrap_or_else(|e| panic!("the nft worker panicked: {e}"));
                programmer = p;
                if let Err(error) = r {
                    warn!(%error, "reading the data plane back failed");
                }
            }
            v = versions.next() => match v {
                Some(Ok(events)) => {
                    arrived = Instant::now();
                    for ev in events {
                        ready |= matches!(ev.kind, Some(ocean_client::api::event::Kind::Snapshot(_)));
                        view.apply(ev);
                    }
                    // Fold in whatever else already arrived: one sync for a burst.
                    while let Some(Some(Ok(more))) = versions.next().now_or_never() {
                        for ev in more {
                            view.apply(ev);
                        }
                    }
                    if !ready {
                        continue;
                    }
                }
                Some(Err(error)) => {
                    warn!(%error, "watch failed; following again");
                    continue;
                }
                None => return,
            },
        }
        let plane = plane_of(&view, opts.idc.as_deref(), programmer.installed());
        let elements = plane.elements();
        let (p, r) = sync(programmer, plane).await;
        programmer = p;
        match r {
            Ok(applied) => {
                let latency = arrived.elapsed();
                if applied.changes > 0 {
                    info!(
                        version = view.version,
                        changes = applied.changes,
                        full = applied.full,
                        latency_ms = latency.as_millis() as u64,
                        "data plane updated"
                    );
                }
                if let Some(tx) = &reports {
                    let _ = tx.send(SyncReport {
                        version: view.version,
                        latency,
                        applied,
                        elements,
                    });
                }
            }
            Err(error) => warn!(%error, version = view.version, "data plane not updated"),
        }
    }
}
