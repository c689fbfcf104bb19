//! A planned, lossless change of primary (a switchover), as a request the
//! API stores and the operator carries out, and the operator's pure step.
//!
//! ```text
//!  POST /v1/databases/{id}/switchover ──► switchover/<db> {state: requested, to, from, epoch}
//!  operator round (the primary answers, the request is for this epoch):
//!     step(): primary writable          ─► Demote it (its clients' sessions end, read_only=1)
//!             target behind the primary ─► Wait (it applies what it received)
//!             target holds everything   ─► Promote: topology/<db> (CAS, epoch+1), then
//!                                          steady() promotes it and points the others at it
//!     ─► switchover/<db> {state: done | failed, message, took_ms} ◄── the API waits for it
//! ```
//!
//! Lossless: once the old primary is read-only nothing more commits on
//! it, and the target is promoted only when its applied position contains
//! everything the old primary binlogged. A switchover that does not
//! finish within its budget is abandoned; the old primary is still the
//! recorded one, so the next round makes it writable again.

use serde::{Deserialize, Serialize};

use crate::admin::AdminCmd;
use crate::decide::{follows, Member};
use crate::gtid::GtidPos;

/// Prefix of the switchover requests (`switchover/<db>`).
pub const SWITCHOVERS: &str = "switchover/";

/// A request that has not been picked up for this long is abandoned (its
/// operator was not leading): ms.
pub const EXPIRE_MS: u64 = 30_000;

/// A switchover as stored: asked for by the API, then finished by the
/// operator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchoverRequest {
    /// Unique per request (`s-<requested_ms>`).
    pub id: String,
    /// The replica's task to promote.
    pub to: String,
    /// The primary's task when it was asked for.
    pub from: String,
    /// The topology's epoch when it was asked for: a request for an
    /// older epoch is stale (the primary moved meanwhile).
    pub epoch: u64,
    /// When it was asked for (ms since the epoch).
    pub requested_ms: u64,
    /// `requested`, `done` or `failed`.
    pub state: String,
    /// Why it failed, or what it did.
    #[serde(default)]
    pub message: String,
    /// How long the operator took, ms.
    #[serde(default)]
    pub took_ms: u64,
}

impl SwitchoverRequest {
    /// Whether the operator still has to act on it.
    pub fn pending(&self) -> bool {
        self.state == "requested"
    }

    /// Whether it has waited for an operator longer than [`EXPIRE_MS`].
    pub fn expired(&self, now_ms: u64) -> bool {
        self.pending() && now_ms.saturating_sub(self.requested_ms) > EXPIRE_MS
    }
}

/// The operator's next step of a switchover from primary `p` to `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwitchStep {
    /// It cannot go on: why.
    Refuse(String),
    /// Stop writes on the old primary first.
    Demote(AdminCmd),
    /// The target is still applying: how far it is.
    Wait(String),
    /// The target holds every transaction of the old primary: promote it.
    Promote,
}

/// The next step (see the module docs). Both as observed just now.
pub fn step(p: &Member, target: &Member) -> SwitchStep {
    let Some(po) = &p.obs else {
        return SwitchStep::Refuse(format!("the primary {} does not answer", p.task));
    };
    let Some(to) = &target.obs else {
        return SwitchStep::Refuse(format!("{} does not answer", target.task));
    };
    if !follows(target, p) {
        return SwitchStep::Refuse(format!(
            "{} is not replicating from the primary {}",
            target.task, p.task
        ));
    }
    if !po.read_only {
        return SwitchStep::Demote(AdminCmd::Demote { on: p.addr() });
    }
    let written = GtidPos::parse(&po.gtid_binlog_pos);
    let applied = GtidPos::parse(&to.gtid_current_pos);
    if applied.contains(&written) {
        SwitchStep::Promote
    } else {
        SwitchStep::Wait(format!(
            "{} applied {applied}, the primary wrote {written}",
            target.task
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::{Observed, ReplicaObs};

    fn member(task: &str, port: u16, obs: Option<Observed>) -> Member {
        Member {
            task: task.into(),
            host: "h".into(),
            ip: "10.0.0.1".into(),
            port,
            seed_port: 0,
            obs,
        }
    }

    fn replica_of(port: u16, pos: &str) -> Observed {
        Observed {
            read_only: true,
            gtid_current_pos: pos.into(),
            replica: Some(ReplicaObs {
                master_host: "10.0.0.1".into(),
                master_port: port,
                io_running: true,
                sql_running: true,
                gtid_io_pos: pos.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn primary(read_only: bool, pos: &str) -> Observed {
        Observed {
            read_only,
            gtid_binlog_pos: pos.into(),
            gtid_current_pos: pos.into(),
            semi_sync_clients: 1,
            ..Default::default()
        }
    }

    #[test]
    fn demote_then_wait_for_the_target_then_promote() {
        let t = member("b", 2, Some(replica_of(1, "0-1-5")));
        let p = member("a", 1, Some(primary(false, "0-1-7")));
        assert_eq!(
            step(&p, &t),
            SwitchStep::Demote(AdminCmd::Demote {
                on: "10.0.0.1:1".into()
            })
        );
        let p = member("a", 1, Some(primary(true, "0-1-7")));
        assert!(
            matches!(step(&p, &t), SwitchStep::Wait(w) if w.contains("0-1-5") && w.contains("0-1-7"))
        );
        let t = member("b", 2, Some(replica_of(1, "0-1-7")));
        assert_eq!(step(&p, &t), SwitchStep::Promote);
    }

    #[test]
    fn a_target_that_does_not_replicate_from_the_primary_is_refused() {
        let p = member("a", 1, Some(primary(false, "0-1-7")));
        let elsewhere = member("b", 2, Some(replica_of(9, "0-1-7")));
        assert!(
            matches!(step(&p, &elsewhere), SwitchStep::Refuse(w) if w.contains("not replicating"))
        );
        let mut stopped = replica_of(1, "0-1-7");
        if let Some(r) = stopped.replica.as_mut() {
            r.io_running = false;
        }
        assert!(matches!(
            step(&p, &member("b", 2, Some(stopped))),
            SwitchStep::Refuse(_)
        ));
        assert!(matches!(
            step(&p, &member("b", 2, None)),
            SwitchStep::Refuse(w) if w.contains("does not answer")
        ));
        assert!(matches!(
            step(&member("a", 1, None), &member("b", 2, Some(replica_of(1, "")))),
            SwitchStep::Refuse(w) if w.contains("primary a")
        ));
    }

    #[test]
    fn a_request_expires_only_while_pending() {
        let mut r = SwitchoverRequest {
            requested_ms: 1_000,
            state: "requested".into(),
            ..Default::default()
        };
        assert!(!r.expired(1_000 + EXPIRE_MS));
        assert!(r.expired(1_001 + EXPIRE_MS));
        r.state = "done".into();
        assert!(!r.expired(1_001 + EXPIRE_MS));
    }
}
