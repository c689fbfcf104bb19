//! The LB host's loop: follow the masters' watch (tasks, and the keys of
//! the `elb` namespace), and after every complete version make the kernel
//! hold the data plane they imply.
//!
//! ```text
//!  follow_versions ─► View ─► (ELBs of this idc, tasks) ─► plane::desired ─► Programmer::sync
//!        ▲ versions that arrived meanwhile are folded in before the sync
//!        └── resync: read the kernel back every `resync`, repair drift
//! ```

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use ocean_client::api::WatchRequest;
use ocean_client::Client;
use ocean_framework::View;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::backends::{has_health_checks, JobTasks};
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

/// What the agent keeps between syncs so that a change costs what
/// changed: each ELB decoded once per revision of its key, and whether
/// each backend job has health checks once per update of the job.
#[derive(Debug, Default)]
pub struct Model {
    /// By key, in key order (as the view lists them).
    elbs: BTreeMap<String, (u64, Option<ElbSpec>)>,
    checked: RefCell<HashMap<String, (u64, bool)>>,
}

impl Model {
    /// Brings the decoded ELBs up to `view`: a key decodes again only
    /// when its revision moved; unreadable ones are kept as `None` (and
    /// logged once per revision); deleted keys are dropped.
    fn refresh_elbs(&mut self, view: &View) {
        let mut seen = HashSet::new();
        for e in view.keys_under(PREFIX) {
            seen.insert(e.key.as_str());
            if self
                .elbs
                .get(&e.key)
                .is_some_and(|(rev, _)| *rev == e.revision)
            {
                continue;
            }
            let spec = decode(&e.key, &e.value)
                .map_err(|error| warn!(%error, "skipping an ELB"))
                .ok();
            self.elbs.insert(e.key.clone(), (e.revision, spec));
        }
        self.elbs.retain(|k, _| seen.contains(k.as_str()));
    }

    /// The tasks of `job` in `view` (task ids are `<job id>.<suffix>`),
    /// and whether the job has health checks (unknown job: assumed to).
    pub fn tasks_of<'v>(&self, view: &'v View, job: &str) -> JobTasks<'v> {
        let prefix = format!("{job}.");
        let tasks = view
            .tasks
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(_, t)| t)
            .filter(|t| t.job_id == job)
            .collect();
        let checked = match view.jobs.get(job) {
            None => true,
            Some(j) => {
                let mut cache = self.checked.borrow_mut();
                match cache.get(job) {
                    Some((v, c)) if *v == j.updated_version => *c,
                    _ => {
                        let c = has_health_checks(&j.spec_json);
                        cache.insert(job.to_string(), (j.updated_version, c));
                        c
                    }
                }
            }
        };
        JobTasks { tasks, checked }
    }

    /// The data plane `view` implies, given what is installed.
    pub fn plane(
        &mut self,
        view: &View,
        idc: Option<&str>,
        installed: Option<&DataPlane>,
    ) -> DataPlane {
        self.refresh_elbs(view);
        // Borrowed, not cloned: a sync walks every ELB, a change touches one.
        let elbs = self
            .elbs
            .values()
            .filter_map(|(_, spec)| spec.as_ref())
            .filter(|s| idc.is_none_or(|i| s.idc == i));
        let vss = virtual_servers(elbs, &|job| self.tasks_of(view, job));
        self.checked
            .borrow_mut()
            .retain(|job, _| view.jobs.contains_key(job));
        desired(&vss, installed)
    }
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
        // Jobs too: whether a job has health checks decides when its new
        // tasks may serve.
        kinds: vec!["job".into(), "task".into(), "kv".into()],
        namespaces: vec![NAMESPACE.into()],
        ..Default::default()
    };
    let mut versions = ocean_client::follow_versions(client, req);
    let mut view = View::new(NAMESPACE);
    let mut model = Model::default();
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
        let plane = model.plane(&view, opts.idc.as_deref(), programmer.installed());
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
