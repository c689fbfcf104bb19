//! Rebuilding an instance from a healthy one (a seed), the operator's
//! pure side.
//!
//! ```text
//!  why an instance needs one:  its datadir is gone (disk replaced), or the operator
//!                              condemned it (a diverged replica, `POST .../rebuild`):
//!                              Condemn = unlogged schema ocean_rebuild + SHUTDOWN
//!  its next task:              no usable datadir ─► listens on its seed port ($PORT1)
//!  operator round:             seed port open ─► seeds/<db>/<task> {source, to}
//!  framework reconcile:        seeds/<db>/<task> ─► a batch job pinned to the source's host:
//!                              token line + mariadb-backup --backup --stream=xbstream | socat
//!  the instance:               mbstream -x, mariadb-backup --prepare, gtid_slave_pos = the
//!                              backup's position, starts; steady() makes it follow the primary
//!  operator round:             it answers ─► seeds/<db>/<task> deleted ─► the batch job goes
//! ```
//!
//! The source is a replica when there is one (the primary's clients never
//! wait on a backup's locks), else the primary.

use serde::{Deserialize, Serialize};

use crate::decide::{follows, Member};
use crate::gtid::GtidPos;

/// Prefix of the seeds under way: `seeds/<db>/<target task>`.
pub const SEEDS: &str = "seeds/";

/// Prefix of the rebuilds asked for through the API: `rebuild/<db>`.
pub const REBUILDS: &str = "rebuild/";

/// How long a seed may take before it is given up and started again, ms.
pub const SEED_TIMEOUT_MS: u64 = 30 * 60 * 1000;

/// A replica stopped on a fatal replication error this long is rebuilt.
pub const BROKEN_FOR_MS: u64 = 5_000;

/// `Last_IO_Errno` of a replica whose primary cannot serve its position:
/// it holds transactions the primary lacks, or wants ones the primary's
/// binlog no longer has.
pub const ER_MASTER_FATAL_READING_BINLOG: u32 = 1236;

/// A seed under way (`seeds/<db>/<target task>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedRecord {
    /// The database.
    pub database: String,
    /// The task that waits for it.
    pub target: String,
    /// Where it listens: `ip:seed port`.
    pub to: String,
    /// The task it is taken from, its host and its mysql port.
    pub source: String,
    pub source_host: String,
    pub source_port: u16,
    /// When it was started (ms since the epoch).
    pub started_ms: u64,
}

/// A rebuild asked for through the API (`rebuild/<db>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebuildRequest {
    /// Unique per request.
    pub id: String,
    /// The instance to rebuild.
    pub task: String,
    /// When it was asked for (ms since the epoch).
    pub requested_ms: u64,
    /// `requested`, `started` (the instance was condemned and shut down)
    /// or `failed`.
    pub state: String,
    /// What happened.
    #[serde(default)]
    pub message: String,
}

/// The key of a seed.
pub fn seed_key(database: &str, target: &str) -> String {
    format!("{SEEDS}{database}/{target}")
}

/// The instance a seed of `target` is taken from: the replicating replica
/// of `p` furthest ahead, else `p` itself (when it answers).
pub fn seed_source<'a>(p: &'a Member, members: &'a [Member], target: &str) -> Option<&'a Member> {
    members
        .iter()
        .filter(|m| m.task != target && m.task != p.task && follows(m, p))
        .max_by(|a, b| {
            let pos = |m: &Member| {
                m.obs
                    .as_ref()
                    .map_or(0, |o| GtidPos::parse(&o.gtid_current_pos).total())
            };
            pos(a).cmp(&pos(b)).then(b.task.cmp(&a.task))
        })
        .or_else(|| p.obs.is_some().then_some(p))
}

/// Whether `m`, configured to replicate from `p`, stopped on an error
/// that retrying will not cure: its IO thread on 1236 (diverged, or the
/// primary lacks what it needs), or its SQL thread on any error (its data
/// differs from the primary's).
pub fn broken(m: &Member, p: &Member) -> bool {
    m.obs
        .as_ref()
        .and_then(|o| o.replica.as_ref())
        .is_some_and(|r| {
            r.master_host == p.ip
                && r.master_port == p.port
                && ((!r.io_running && r.last_io_errno == ER_MASTER_FATAL_READING_BINLOG)
                    || (!r.sql_running && r.last_sql_errno != 0))
        })
}

/// The seed to start for `target` (a member that does not answer on its
/// mysql port but listens on its seed port), or None without a source.
pub fn plan_seed(
    database: &str,
    p: &Member,
    members: &[Member],
    target: &Member,
    now_ms: u64,
) -> Option<SeedRecord> {
    let src = seed_source(p, members, &target.task)?;
    Some(SeedRecord {
        database: database.to_string(),
        target: target.task.clone(),
        to: format!("{}:{}", target.ip, target.seed_port),
        source: src.task.clone(),
        source_host: src.host.clone(),
        source_port: src.port,
        started_ms: now_ms,
    })
}

/// What becomes of a seed under way, given the target as observed now
/// (`None`: its task no longer runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedFate {
    /// Still going.
    Going,
    /// The target answers: seeded (or it never needed one after all).
    Done,
    /// The target's task ended, or it took too long: start over.
    Abandon,
}

/// See [`SeedFate`].
pub fn seed_fate(seed: &SeedRecord, target: Option<&Member>, now_ms: u64) -> SeedFate {
    match target {
        None => SeedFate::Abandon,
        Some(t) if t.obs.is_some() => SeedFate::Done,
        Some(_) if now_ms.saturating_sub(seed.started_ms) > SEED_TIMEOUT_MS => SeedFate::Abandon,
        Some(_) => SeedFate::Going,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::{Observed, ReplicaObs};

    fn m(task: &str, port: u16, obs: Option<Observed>) -> Member {
        Member {
            task: task.into(),
            host: format!("h-{task}"),
            ip: "10.0.0.1".into(),
            port,
            seed_port: port + 1000,
            obs,
        }
    }

    fn replica(of: u16, pos: &str) -> Observed {
        Observed {
            read_only: true,
            gtid_current_pos: pos.into(),
            replica: Some(ReplicaObs {
                master_host: "10.0.0.1".into(),
                master_port: of,
                io_running: true,
                sql_running: true,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_seed_comes_from_the_replica_furthest_ahead_else_the_primary() {
        let p = m("a", 1, Some(Observed::default()));
        let ms = vec![
            p.clone(),
            m("b", 2, Some(replica(1, "0-1-5"))),
            m("c", 3, Some(replica(1, "0-1-7"))),
            m("d", 4, None),
        ];
        let s = plan_seed("db", &p, &ms, &ms[3], 9).unwrap();
        assert_eq!(
            (
                s.source.as_str(),
                s.source_host.as_str(),
                s.source_port,
                s.to.as_str()
            ),
            ("c", "h-c", 3, "10.0.0.1:1004")
        );
        // Rebuilding c itself: b is the source.
        assert_eq!(seed_source(&p, &ms, "c").unwrap().task, "b");
        let alone = vec![p.clone(), m("d", 4, None)];
        assert_eq!(seed_source(&p, &alone, "d").unwrap().task, "a");
        let gone = m("a", 1, None);
        assert_eq!(seed_source(&gone, std::slice::from_ref(&gone), "d"), None);
    }

    #[test]
    fn only_errors_that_a_retry_cannot_cure_make_a_replica_broken() {
        let p = m("a", 1, Some(Observed::default()));
        let with = |io: bool, io_errno: u32, sql: bool, sql_errno: u32| {
            let mut o = replica(1, "");
            if let Some(r) = o.replica.as_mut() {
                r.io_running = io;
                r.last_io_errno = io_errno;
                r.sql_running = sql;
                r.last_sql_errno = sql_errno;
                r.last_error = "x".into();
            }
            m("b", 2, Some(o))
        };
        assert!(broken(&with(false, 1236, true, 0), &p));
        assert!(broken(&with(true, 0, false, 1062), &p));
        // Reconnecting to a restarting primary: not broken.
        assert!(!broken(&with(false, 2003, true, 0), &p));
        assert!(!broken(&with(true, 0, true, 0), &p));
        // Configured for another primary: not this primary's to judge.
        let other = m("z", 9, Some(Observed::default()));
        assert!(!broken(&with(false, 1236, true, 0), &other));
    }

    #[test]
    fn a_seed_ends_when_its_target_answers_or_goes_or_takes_too_long() {
        let s = SeedRecord {
            started_ms: 1_000,
            ..Default::default()
        };
        let waiting = m("d", 4, None);
        let up = m("d", 4, Some(Observed::default()));
        assert_eq!(seed_fate(&s, Some(&waiting), 2_000), SeedFate::Going);
        assert_eq!(seed_fate(&s, Some(&up), 2_000), SeedFate::Done);
        assert_eq!(seed_fate(&s, None, 2_000), SeedFate::Abandon);
        assert_eq!(
            seed_fate(&s, Some(&waiting), 1_001 + SEED_TIMEOUT_MS),
            SeedFate::Abandon
        );
    }
}
