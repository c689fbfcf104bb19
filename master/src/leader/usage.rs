//! The leader records the upper tree's finished usage minutes through
//! raft (`RecordUsage`, applied by `kernel/state/usage.rs`), so the
//! utilisation reports' history survives a leader change.

use std::time::Duration;

use ocean_proto::internal::{command, Command, RecordUsage};
use tokio::sync::watch;
use tracing::{debug, info};

use crate::reconcile::Leading;
use crate::usage::now_ms;

/// How often finished minutes are looked for.
const TICK: Duration = Duration::from_secs(5);

/// Proposes each finished minute until `stop`.
pub async fn run(master: Leading, term: u64, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    info!(term, "usage minutes recorded through raft by this leader");
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tick.tick() => {}
        }
        for minute in master.usage().finished_minutes(now_ms()) {
            let start_s = minute.start_s;
            let cmd = Command {
                kind: Some(command::Kind::RecordUsage(RecordUsage {
                    minute: Some(minute),
                })),
                min_version: 0,
            };
            // A minute lost here (no quorum) is a gap in the history, as
            // a leader's death mid-minute is; it is not retried.
            if let Err(e) = master.propose(cmd).await {
                debug!(term, start_s, error = %e, "recording a usage minute failed");
            }
        }
    }
}
