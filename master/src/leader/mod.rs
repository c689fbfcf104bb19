//! What runs only on the leader, started when this master becomes leader
//! of a term and stopped, with a structured shutdown, when it stops
//! leading.
//!
//! ```text
//!  node status ──► supervisor: leader of term T and read index applied?
//!                     │ yes: start the term's controllers (a stop signal + a JoinSet)
//!                     │      frameworks: a Runner per hosted framework, in-process client
//!                     ▼
//!                  leads(T) no longer ──► signal stop ──► join (bounded) ──► wait for the next term
//! ```
//!
//! The reconciler, the heartbeat check and the status batcher still run
//! their own per-term loops (`reconcile::spawn`), keyed on the same
//! condition; moving them under this supervisor is the next step of the
//! layering (ARCHITECTURE.md).

use std::sync::Arc;
use std::time::Duration;

use ocean_framework::{Framework, Runner, RunnerOptions};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::api::in_process::InProcess;
use crate::master::Master;

/// How long a term's controllers get to stop before they are aborted.
const STOP_WITHIN: Duration = Duration::from_secs(2);

fn leads(master: &Master, term: u64) -> bool {
    let s = master.status();
    s.leader == master.id() && s.term == term && !s.removed
}

/// Hosts `frameworks` on whichever master leads, until `shutdown`.
pub async fn supervise(
    master: Master,
    frameworks: Vec<Arc<dyn Framework>>,
    mut shutdown: watch::Receiver<bool>,
) {
    if frameworks.is_empty() {
        return;
    }
    let mut status = master.status_watch();
    loop {
        let term = tokio::select! {
            s = status.wait_for(|s| s.leader == s.id && s.role == "leader") => match s {
                Ok(s) => s.term,
                Err(_) => return,
            },
            _ = shutdown.wait_for(|s| *s) => return,
        };
        // Everything of the previous terms applied before anything acts.
        if let Err(e) = master.linearizable().await {
            warn!(term, error = %e, "leader controllers wait for a read index");
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut set = JoinSet::new();
        let client: Arc<dyn ocean_client::Client> = Arc::new(InProcess::new(master.clone()));
        for fw in &frameworks {
            let opts = RunnerOptions::new(format!("master-{}", master.id()));
            let runner = Runner::new(fw.clone(), client.clone(), opts);
            set.spawn(runner.run(stop_rx.clone()));
        }
        info!(
            term,
            frameworks = frameworks.len(),
            "leader controllers started"
        );
        let mut ended = false;
        while leads(&master, term) && !ended {
            tokio::select! {
                _ = status.changed() => {}
                _ = shutdown.wait_for(|s| *s) => ended = true,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
        let _ = stop_tx.send(true);
        let joined = tokio::time::timeout(STOP_WITHIN, async {
            while set.join_next().await.is_some() {}
        })
        .await;
        if joined.is_err() {
            warn!(term, "leader controllers did not stop in time; aborted");
            set.abort_all();
        }
        info!(term, "leader controllers stopped");
        if ended {
            return;
        }
    }
}
