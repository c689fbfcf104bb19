//! What runs only on the leader: one supervisor per master that starts a
//! term's controllers when this master becomes leader of the term and
//! stops them, with a structured shutdown, when it stops leading.
//!
//! ```text
//!  node status ──► supervisor: leader of term T and read index applied?
//!                     │ yes: Scheduler::begin_term(T), then in one JoinSet,
//!                     │      each with T and the term's stop signal (watch):
//!                     │        reconcile::run        jobs to tasks, launches, kills
//!                     │        liveness::run         silent agents declared unreachable
//!                     │        reports::batch_updates agents' statuses to raft entries
//!                     │        alerts::run           alert rules, records, webhooks
//!                     │        usage::run            finished usage minutes to raft
//!                     │        a Runner per hosted framework (in-process client)
//!                     ▼
//!                  leads(T) no longer, or shutdown ──► signal stop ──► join within
//!                  STOP_WITHIN (abort the rest) ──► wait for the next term
//! ```
//!
//! The controllers do not look at leadership themselves: they run until
//! their stop signal. The status queue outlives terms: the supervisor holds
//! it and each term's batcher borrows it, so updates queued between terms
//! wait for the next one instead of being dropped with a stopped task.

pub mod alerts;
pub mod usage;

use std::sync::Arc;
use std::time::Duration;

use ocean_framework::{Framework, Runner, RunnerOptions};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::reconcile::Leading;
use crate::reconcile::{self, liveness, reports};

/// How long a term's controllers get to stop before they are aborted.
const STOP_WITHIN: Duration = Duration::from_secs(2);
/// How often leadership is checked besides on status changes.
const CHECK_LEADS_EVERY: Duration = Duration::from_millis(100);

/// Runs the leader's controllers on `master` whenever it leads, hosting
/// `frameworks` too, until `shutdown`. The frameworks act through `client`
/// (the in-process client in `ocean master`: given, not built here, so the
/// leader layer does not import the edge).
pub async fn supervise(
    master: Leading,
    frameworks: Vec<Arc<dyn Framework>>,
    client: Arc<dyn ocean_client::Client>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(updates) = master.scheduler().take_updates() else {
        warn!("the status queue is taken: another supervisor runs on this master");
        return;
    };
    let mut status = master.status_watch();
    loop {
        let term = tokio::select! {
            s = status.wait_for(|s| s.leader == s.id && s.role == "leader") => match s {
                Ok(s) => s.term,
                Err(_) => return,
            },
            _ = shutdown.wait_for(|s| *s) => return,
        };
        // Everything of the previous terms applied before anything acts:
        // a reconciler planning from a state that misses its
        // predecessor's last placements would place them twice.
        if let Err(e) = master.linearizable().await {
            debug!(term, error = %e, "leader controllers wait for a read index");
            tokio::time::sleep(CHECK_LEADS_EVERY).await;
            continue;
        }
        if !master.leads(term) {
            // Removed from the cluster while its status still names it.
            tokio::time::sleep(CHECK_LEADS_EVERY).await;
            continue;
        }
        master.scheduler().begin_term(term);
        let (stop_tx, stop_rx) = watch::channel(false);
        let set = start(&master, term, &frameworks, &client, &updates, stop_rx);
        info!(
            term,
            controllers = set.len(),
            frameworks = frameworks.len(),
            "leader controllers started"
        );
        let shut = wait_term_end(&master, term, &mut status, &mut shutdown).await;
        stop(
            term,
            stop_tx,
            set,
            if shut { "shutdown" } else { "term ended" },
        )
        .await;
        if shut {
            return;
        }
    }
}

/// Starts term `term`'s controllers, each with the stop signal.
fn start(
    master: &Leading,
    term: u64,
    frameworks: &[Arc<dyn Framework>],
    client: &Arc<dyn ocean_client::Client>,
    updates: &reports::UpdatesQueue,
    stop: watch::Receiver<bool>,
) -> JoinSet<()> {
    let mut set = JoinSet::new();
    set.spawn(reconcile::run(master.clone(), term, stop.clone()));
    set.spawn(liveness::run(master.clone(), term, stop.clone()));
    set.spawn(reports::batch_updates(
        master.clone(),
        updates.clone(),
        term,
        stop.clone(),
    ));
    set.spawn(alerts::run(master.clone(), term, stop.clone()));
    set.spawn(usage::run(master.clone(), term, stop.clone()));
    if !frameworks.is_empty() {
        for fw in frameworks {
            let opts = RunnerOptions::new(format!("master-{}", master.id()));
            let runner = Runner::new(fw.clone(), client.clone(), opts);
            set.spawn(runner.run(stop.clone()));
        }
    }
    set
}

/// Waits until this master no longer leads `term` (false) or shutdown is
/// asked for (true).
async fn wait_term_end(
    master: &Leading,
    term: u64,
    status: &mut watch::Receiver<crate::kernel::node::NodeStatus>,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    while master.leads(term) {
        tokio::select! {
            r = status.changed() => if r.is_err() { return true },
            _ = shutdown.wait_for(|s| *s) => return true,
            _ = tokio::time::sleep(CHECK_LEADS_EVERY) => {}
        }
    }
    false
}

/// Signals the term's controllers to stop and joins them, aborting those
/// still running after [`STOP_WITHIN`].
async fn stop(term: u64, stop_tx: watch::Sender<bool>, mut set: JoinSet<()>, why: &str) {
    let _ = stop_tx.send(true);
    let started = tokio::time::Instant::now();
    let joined = tokio::time::timeout(STOP_WITHIN, async {
        let mut failed = 0usize;
        while let Some(r) = set.join_next().await {
            if let Err(e) = r {
                failed += 1;
                warn!(term, error = %e, "a leader controller ended abnormally");
            }
        }
        failed
    })
    .await;
    match joined {
        Ok(failed) => info!(
            term,
            reason = why,
            failed,
            stop_ms = started.elapsed().as_millis() as u64,
            "leader controllers stopped"
        ),
        Err(_) => {
            let left = set.len();
            set.abort_all();
            while set.join_next().await.is_some() {}
            warn!(
                term,
                reason = why,
                aborted = left,
                "leader controllers did not stop in time; aborted"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_term_stops_at_once_when_its_controllers_obey() {
        let (tx, rx) = watch::channel(false);
        let mut set = JoinSet::new();
        let obeyed = Arc::new(AtomicBool::new(false));
        for _ in 0..3 {
            let (mut rx, obeyed) = (rx.clone(), obeyed.clone());
            set.spawn(async move {
                let _ = rx.wait_for(|s| *s).await;
                obeyed.store(true, Ordering::SeqCst);
            });
        }
        let t0 = tokio::time::Instant::now();
        stop(1, tx, set, "test").await;
        assert!(obeyed.load(Ordering::SeqCst));
        assert!(t0.elapsed() < STOP_WITHIN);
    }

    #[tokio::test(start_paused = true)]
    async fn a_controller_that_ignores_its_stop_is_aborted_at_the_bound() {
        let (tx, rx) = watch::channel(false);
        let mut set = JoinSet::new();
        let obeyed = Arc::new(AtomicBool::new(false));
        let (mut polite, o) = (rx.clone(), obeyed.clone());
        set.spawn(async move {
            let _ = polite.wait_for(|s| *s).await;
            o.store(true, Ordering::SeqCst);
        });
        // Stuck, say, in a write that outlives the term.
        set.spawn(std::future::pending::<()>());
        let t0 = tokio::time::Instant::now();
        stop(2, tx, set, "test").await;
        assert!(obeyed.load(Ordering::SeqCst));
        let took = t0.elapsed();
        assert!(took >= STOP_WITHIN && took < STOP_WITHIN + Duration::from_millis(100));
    }
}
