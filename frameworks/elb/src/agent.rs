//! The LB host's loop: follow the masters' watch (tasks, and the keys of
//! the `elb` namespace), and after every complete version make the kernel
//! hold the data plane they imply.
//!
//! ```text
//!  follow_versions ─► Model::note(event) ─► View ─► Model::update (the ELBs the events
//!                     touched) ─► Programmer::sync_delta (those VS only)
//!        ▲ versions that arrived meanwhile are folded in before the sync
//!        └── resync: read the kernel back every `resync`, repair drift
//!  an ELB object changed ─► Keepalived::set_vips(Model::vips) (rewrite + SIGHUP)
//!  GET /metrics ─► a copy of the model's VS ─► counters read on their own nft context
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use ocean_client::api::WatchRequest;
use ocean_client::Client;
use ocean_framework::View;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::keepalived_run::Keepalived;
use crate::metrics::{self, MetricsServer};
use crate::model::Model;
use crate::nft::Nft;
use crate::plane::VirtualServer;
use crate::programmer::{Applied, ProgramError, Programmer};
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

/// What the nft worker thread takes and hands back on every sync: moved,
/// not cloned, so a change costs what changed.
struct Worker {
    programmer: Programmer,
    model: Model,
    view: View,
}

impl Worker {
    /// Brings the model up to the view and the kernel up to the model;
    /// also whether an ELB object changed.
    fn sync(&mut self) -> (Result<Applied, ProgramError>, usize, bool) {
        let changes = self.model.update(&self.view, self.programmer.installed());
        let plane = self.model.plane();
        let r = if changes.full {
            self.programmer.sync(plane)
        } else {
            self.programmer.sync_delta(plane, &changes.delta)
        };
        (r, plane.elements(), changes.elbs_changed)
    }
}

/// Runs `f` on the worker in a blocking thread (nft waits on netlink).
async fn on_worker<T: Send + 'static>(
    mut w: Worker,
    f: impl FnOnce(&mut Worker) -> T + Send + 'static,
) -> (Worker, T) {
    match tokio::task::spawn_blocking(move || {
        let out = f(&mut w);
        (w, out)
    })
    .await
    {
        Ok(out) => out,
        Err(e) => panic!("the nft worker panicked: {e}"),
    }
}

/// What the agent runs beside the data plane.
#[derive(Debug, Default)]
pub struct Extras {
    /// Every sync is reported here.
    pub reports: Option<tokio::sync::mpsc::UnboundedSender<SyncReport>>,
    /// Handed the VIPs of the ELBs served whenever they may have changed;
    /// stopped on the way out.
    pub keepalived: Option<Keepalived>,
    /// Serves `GET /metrics` (per-VS series, see [`crate::metrics`]).
    pub metrics: Option<MetricsServer>,
}

/// Runs until `shutdown` turns true.
pub async fn run(
    client: Arc<dyn Client>,
    programmer: Programmer,
    opts: AgentOptions,
    shutdown: watch::Receiver<bool>,
    extras: Extras,
) {
    let (scrape_tx, scrapes) = tokio::sync::mpsc::channel(4);
    let counters = extras.metrics.as_ref().map(|m| Arc::clone(&m.nft));
    let server = extras.metrics.map(|m| {
        let listener = m.listener;
        let router = metrics::router(scrape_tx.clone());
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                warn!(%error, "the /metrics server stopped");
            }
        })
    });
    follow(
        client,
        programmer,
        opts,
        shutdown,
        extras.reports,
        extras.keepalived.as_ref(),
        (scrapes, counters),
    )
    .await;
    // Held until here: without a server, scrapes never arrive.
    drop(scrape_tx);
    if let Some(s) = server {
        s.abort();
    }
    if let Some(k) = extras.keepalived {
        k.stop().await;
    }
}

async fn follow(
    client: Arc<dyn Client>,
    programmer: Programmer,
    opts: AgentOptions,
    mut shutdown: watch::Receiver<bool>,
    reports: Option<tokio::sync::mpsc::UnboundedSender<SyncReport>>,
    keepalived: Option<&Keepalived>,
    (mut scrapes, counters): (
        tokio::sync::mpsc::Receiver<metrics::Scrape>,
        Option<Arc<dyn Nft>>,
    ),
) {
    let req = WatchRequest {
        // Jobs too: whether a job has health checks decides when its new
        // tasks may serve.
        kinds: vec!["job".into(), "task".into(), "kv".into()],
        namespaces: vec![NAMESPACE.into()],
        ..Default::default()
    };
    let mut versions = ocean_client::follow_versions(client, req);
    let mut w = Worker {
        programmer,
        model: Model::new(opts.idc.clone()),
        view: View::new(NAMESPACE),
    };
    let mut ready = false;
    let mut resync = tokio::time::interval(opts.resync);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let arrived;
        tokio::select! {
            _ = shutdown.changed() => return,
            Some(reply) = scrapes.recv() => {
                // The VS from the model now; the counters read on their own
                // nft context, off this loop (a read takes tens of ms at
                // 2,000 VS; syncs must not wait for it).
                let vss: Vec<VirtualServer> = w.model.virtual_servers().cloned().collect();
                if let Some(nft) = counters.clone() {
                    tokio::task::spawn_blocking(move || {
                        let _ = reply.send(metrics::scrape(nft.as_ref(), &vss));
                    });
                }
                continue;
            }
            _ = resync.tick() => {
                if !ready {
                    continue;
                }
                arrived = Instant::now();
                // Repair drift: read the kernel back before the diff.
                let (back, r) = on_worker(w, |w| w.programmer.refresh()).await;
                w = back;
                if let Err(error) = r {
                    warn!(%error, "reading the data plane back failed");
                }
            }
            v = versions.next() => match v {
                Some(Ok(events)) => {
                    arrived = Instant::now();
                    for ev in events {
                        ready |= matches!(ev.kind, Some(ocean_client::api::event::Kind::Snapshot(_)));
                        w.model.note(&w.view, &ev);
                        w.view.apply(ev);
                    }
                    // Fold in whatever else already arrived: one sync for a burst.
                    while let Some(Some(Ok(more))) = versions.next().now_or_never() {
                        for ev in more {
                            w.model.note(&w.view, &ev);
                            w.view.apply(ev);
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
        let (back, (r, elements, elbs_changed)) = on_worker(w, Worker::sync).await;
        w = back;
        if let (true, Some(k)) = (elbs_changed, keepalived) {
            k.set_vips(&w.model.vips());
        }
        match r {
            Ok(applied) => {
                let latency = arrived.elapsed();
                if applied.changes > 0 {
                    info!(
                        version = w.view.version,
                        changes = applied.changes,
                        full = applied.full,
                        latency_ms = latency.as_millis() as u64,
                        "data plane updated"
                    );
                }
                if let Some(tx) = &reports {
                    let _ = tx.send(SyncReport {
                        version: w.view.version,
                        latency,
                        applied,
                        elements,
                    });
                }
            }
            Err(error) => warn!(%error, version = w.view.version, "data plane not updated"),
        }
    }
}
