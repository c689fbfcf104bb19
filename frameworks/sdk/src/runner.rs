//! [`Runner`]: runs one framework against the masters. Only the instance
//! that holds the framework's lease acts; the others wait to take it, so
//! a framework runs active/standby whether its instances are in-process
//! on the leading master or standalone processes.
//!
//! ```text
//!  standby ── lease_acquire ok ──► leading: follow the watch into a View,
//!     ▲                              reconcile on change / wake / resync,
//!     │                              execute the plan, renew the lease
//!     └── lease held by another, renewal refused, or expired while unrenewed
//! ```
//!
//! Safety rests on compare-and-set, not on the lease alone: two instances
//! that both believe they lead (one paused past its lease) write with the
//! versions they saw, and the stale one is refused.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ocean_client::api::{KvKeyRequest, KvPutRequest, LeaseRequest, PutJobRequest};
use ocean_client::{Client, Error};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::framework::{Action, Framework};
use crate::view::View;

/// The lease every framework's instances compete for.
pub const LEASE_NAME: &str = "leader";

/// How a runner holds its lease and how often it looks again.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// Who this instance is (shown as the lease's holder): unique per
    /// instance, e.g. `master-2` or `host:pid`.
    pub holder: String,
    /// How long a lease lasts unless renewed: how long a dead leader's
    /// framework stays without an active instance.
    pub lease_ttl: Duration,
    /// How often the holder renews (well under the ttl).
    pub renew_every: Duration,
    /// Reconcile at least this often, changes or not.
    pub resync_every: Duration,
}

impl RunnerOptions {
    /// Defaults for `holder`: a 1 s lease renewed every 250 ms, so a
    /// framework moves within about a second of its leader's death.
    pub fn new(holder: impl Into<String>) -> Self {
        RunnerOptions {
            holder: holder.into(),
            lease_ttl: Duration::from_millis(1_000),
            renew_every: Duration::from_millis(250),
            resync_every: Duration::from_secs(1),
        }
    }
}

/// Runs one framework (see the module docs).
#[derive(Debug, Clone)]
pub struct Runner {
    framework: Arc<dyn Framework>,
    client: Arc<dyn Client>,
    opts: RunnerOptions,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Runner {
    /// A runner of `framework` over `client`.
    pub fn new(
        framework: Arc<dyn Framework>,
        client: Arc<dyn Client>,
        opts: RunnerOptions,
    ) -> Self {
        Runner {
            framework,
            client,
            opts,
        }
    }

    fn lease_request(&self) -> LeaseRequest {
        LeaseRequest {
            namespace: self.framework.name().to_string(),
            name: LEASE_NAME.into(),
            holder: self.opts.holder.clone(),
            ttl_ms: self.opts.lease_ttl.as_millis() as u64,
        }
    }

    /// Runs until `shutdown` turns true; releases the lease on the way out
    /// so a standby takes over at once.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let name = self.framework.name().to_string();
        loop {
            if *shutdown.borrow() {
                return;
            }
            match self.client.lease_acquire(self.lease_request()).await {
                Ok(lease) => {
                    info!(framework = %name, holder = %self.opts.holder, epoch = lease.epoch, "framework active");
                    let stopped = self.lead(&mut shutdown).await;
                    if stopped {
                        let _ = self.client.lease_release(self.lease_request()).await;
                        info!(framework = %name, "framework stopped; lease released");
                        return;
                    }
                    info!(framework = %name, holder = %self.opts.holder, "framework standby: lease lost");
                }
                Err(Error::LeaseHeld { holder, .. }) => {
                    debug!(framework = %name, %holder, "standby: lease held elsewhere")
                }
                Err(e) => warn!(framework = %name, error = %e, "standby: cannot reach the masters"),
            }
            tokio::select! {
                _ = shutdown.changed() => {}
                _ = tokio::time::sleep(self.opts.renew_every) => {}
            }
        }
    }

    /// Leads until the lease is lost (false) or shutdown (true).
    async fn lead(&self, shutdown: &mut watch::Receiver<bool>) -> bool {
        let fw = &self.framework;
        let mut req = fw.watch();
        req.from_version = 0;
        if !req.namespaces.is_empty() && !req.namespaces.iter().any(|n| n == fw.name()) {
            req.namespaces.push(fw.name().to_string());
        }
        let mut events = ocean_client::follow(self.client.clone(), req);
        let mut view = View::new(fw.name());
        let mut ready = false;
        let mut dirty = true;
        // After our own writes, wait for the view to include them before
        // deciding again (a decision on the older view would only be
        // refused by compare-and-set).
        let mut wait_for_version = 0u64;
        let mut wake_at: Option<u64> = None;
        let mut renew = tokio::time::interval(self.opts.renew_every);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut lease_until = Instant::now() + self.opts.lease_ttl;
        loop {
            let sleep_for = wake_at
                .map(|w| Duration::from_millis(w.saturating_sub(now_ms())))
                .unwrap_or(self.opts.resync_every)
                .min(self.opts.resync_every);
            tokio::select! {
                _ = shutdown.changed() => return true,
                _ = renew.tick() => {
                    match self.client.lease_acquire(self.lease_request()).await {
                        Ok(_) => lease_until = Instant::now() + self.opts.lease_ttl,
                        Err(Error::LeaseHeld { .. }) => return false,
                        Err(e) => {
                            warn!(framework = %fw.name(), error = %e, "lease renewal failed");
                            if Instant::now() >= lease_until {
                                return false;
                            }
                        }
                    }
                }
                ev = events.next() => match ev {
                    Some(Ok(ev)) => {
                        let complete = ev.last_of_version;
                        let snapshot = matches!(ev.kind, Some(ocean_client::api::event::Kind::Snapshot(_)));
                        dirty |= view.apply(ev);
                        ready |= snapshot;
                        if !complete {
                            continue;
                        }
                    }
                    Some(Err(e)) => {
                        warn!(framework = %fw.name(), error = %e, "watch failed");
                        return false;
                    }
                    None => return false,
                },
                _ = tokio::time::sleep(sleep_for) => dirty = true,
            }
            if !ready || !dirty || view.version < wait_for_version || Instant::now() >= lease_until
            {
                continue;
            }
            dirty = false;
            let plan = fw.reconcile(&view, now_ms());
            wake_at = plan.wake_at_ms;
            for action in plan.actions {
                match self.execute(action).await {
                    Ok(v) => wait_for_version = wait_for_version.max(v),
                    Err(Error::VersionConflict { .. }) => {
                        // Someone wrote first (or our view is behind): the
                        // watch brings the news, then we decide again.
                        debug!(framework = %fw.name(), "write refused as stale; waiting for the view");
                        break;
                    }
                    Err(e) => {
                        warn!(framework = %fw.name(), error = %e, "action failed");
                        break;
                    }
                }
            }
        }
    }

    /// Executes one action; the state version it was applied at.
    async fn execute(&self, action: Action) -> Result<u64, Error> {
        let ns = self.framework.name().to_string();
        let c = &self.client;
        match action {
            Action::PutJob {
                spec_json,
                expected_spec_version,
            } => c
                .put_job(PutJobRequest {
                    spec: spec_json,
                    format: "json".into(),
                    expected_spec_version,
                })
                .await
                .map(|r| r.version),
            Action::DeleteJob {
                id,
                expected_spec_version,
            } => c
                .delete_job(ocean_client::api::JobRef {
                    id,
                    read: None,
                    expected_spec_version,
                })
                .await
                .map(|r| r.version),
            Action::PutKey {
                key,
                value,
                expected_revision,
            } => c
                .kv_put(KvPutRequest {
                    namespace: ns,
                    key,
                    value,
                    expected_revision,
                })
                .await
                .map(|r| r.version),
            Action::DeleteKey {
                key,
                expected_revision,
            } => c
                .kv_delete(KvKeyRequest {
                    namespace: ns,
                    key,
                    read: None,
                    expected_revision,
                })
                .await
                .map(|r| r.version),
        }
    }
}
