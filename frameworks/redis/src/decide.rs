//! The operator's decisions, pure: a cache's shards, the tasks that run
//! them and what each answered -> the admin commands to send, in order.
//!
//! ```text
//!  Members (task, shard, address, Observed?) ──► decide() ──► [AdminCmd]
//!    1. FAILOVER FORCE  a shard's primary task ended, or the cluster flagged it `fail`,
//!                       or it is silent and most primaries suspect it (`fail?`), or
//!                       it is silent for the node timeout and one node suspects it:
//!                       its most up-to-date replica
//!    2. MEET            a live node the anchor does not know yet
//!    3a. ADDSLOTS       a restored cache: unserved slots to their backed-up shard, once
//!                       each shard's loading node serves the slots of its keys
//!    3. ADDSLOTS        nothing serves slots yet and every shard has a node:
//!                       the first node of each shard takes its even range
//!    4. REPLICATE       a shard's other nodes follow its slot-serving node (a shard
//!                       added by a scale-out: the primary chosen for it)
//!    5. FORGET          a node no running task answers for (and serving no slots)
//! ```
//!
//! A task that ended is never trusted again: its replacement is a new
//! process with a new id and no slots, so step 4 makes it a replica of
//! whichever node serves the shard now; a crashed primary never comes back
//! as an empty primary. Host or network loss (tasks still `RUNNING` but
//! unreachable) is left to Redis' own detection until the cluster suspects
//! it (`fail?` from a majority of primaries, or from one node once the
//! operator too has not reached it for the node timeout): then the
//! operator promotes at once, before the cluster's `fail` schedules the
//! replica's slower election.

use std::collections::{BTreeMap, BTreeSet};

use crate::framework::RestoreShard;
use crate::topology::{initial_range, NodeLine, Observed, SLOTS};

/// One task of a cache as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The shard (its job's index).
    pub shard: u32,
    /// The task's id.
    pub task: String,
    /// The agent's host name.
    pub host: String,
    /// The agent's address.
    pub ip: String,
    /// The redis port (task port 0).
    pub port: u16,
    /// The cluster bus port (task port 1).
    pub bus: u16,
    /// What the node answered (`None`: unreachable this round).
    pub obs: Option<Observed>,
    /// How long (ms) it has not answered the operator, from the first
    /// round it missed (0: it answered this round).
    pub silent_ms: u64,
}

impl Member {
    /// `ip:port`.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }
}

/// An admin command, sent to the node at `on` (`ip:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminCmd {
    /// `CLUSTER MEET ip port bus`.
    Meet {
        on: String,
        ip: String,
        port: u16,
        bus: u16,
    },
    /// `CLUSTER ADDSLOTSRANGE lo hi ...`.
    AddSlots { on: String, ranges: Vec<(u16, u16)> },
    /// `CLUSTER REPLICATE primary`.
    Replicate { on: String, primary: String },
    /// `CLUSTER FAILOVER FORCE` on a replica whose primary's task ended.
    FailoverForce { on: String, replaces: String },
    /// `CLUSTER FAILOVER TAKEOVER`: a forced failover that has not
    /// happened within [`TAKEOVER_AFTER_MS`] (most primaries are down with
    /// one host, so no majority can vote), taken without a vote.
    FailoverTakeover { on: String, replaces: String },
    /// `CLUSTER FORGET id`.
    Forget { on: String, id: String },
    /// `CLUSTER FAILOVER` (graceful): an operator's manual failover; the
    /// primary pauses writes until this replica has caught up.
    Failover { on: String },
    /// `CLUSTER RESET HARD`: an operator's rebuild of a replica (its data
    /// and node id dropped; the rounds that follow make it a replica again).
    ResetHard { on: String },
    /// `CLUSTER SETSLOT slot STABLE`: clears a slot's MIGRATING or
    /// IMPORTING state (a move that cannot go on: the receiver never
    /// learned who serves the slot, so it would refuse every key).
    SetSlotStable { on: String, slot: u16 },
}

impl AdminCmd {
    /// The node it is sent to.
    pub fn on(&self) -> &str {
        match self {
            AdminCmd::Meet { on, .. }
            | AdminCmd::AddSlots { on, .. }
            | AdminCmd::Replicate { on, .. }
            | AdminCmd::FailoverForce { on, .. }
            | AdminCmd::FailoverTakeover { on, .. }
            | AdminCmd::Forget { on, .. }
            | AdminCmd::Failover { on }
            | AdminCmd::ResetHard { on }
            | AdminCmd::SetSlotStable { on, .. } => on,
        }
    }
}

fn observed(members: &[Member]) -> impl Iterator<Item = (&Member, &Observed)> {
    members
        .iter()
        .filter_map(|m| m.obs.as_ref().map(|o| (m, o)))
}

/// Whether a running task answers for node `line`: one at its address
/// that is that node, or that could not be asked this round.
fn alive(members: &[Member], line: &NodeLine) -> bool {
    members.iter().any(|m| {
        m.ip == line.ip && m.port == line.port && m.obs.as_ref().is_none_or(|o| o.id() == line.id)
    })
}

/// The primary of a shard that serves no slots and is not failing over
/// (none of its nodes replicates a node with slots): the empty primary
/// most of its nodes already follow, else one on a host without another
/// shard's primary, else the first by task id.
fn new_shard_primary<'a>(
    in_shard: &[&'a (&'a Member, &'a Observed)],
    lines: &[&NodeLine],
    primary_hosts: &BTreeSet<&str>,
) -> Option<&'a (&'a Member, &'a Observed)> {
    let failing_over = in_shard.iter().any(|(_, o)| {
        o.replicates()
            .is_some_and(|p| lines.iter().any(|l| l.id == p && !l.slots.is_empty()))
    });
    if failing_over {
        return None;
    }
    let followers = |id: &str| {
        in_shard
            .iter()
            .filter(|(_, o)| o.replicates() == Some(id))
            .count()
    };
    in_shard
        .iter()
        .filter(|(_, o)| o.me().is_some_and(|n| n.primary))
        .min_by_key(|(m, o)| {
            (
                std::cmp::Reverse(followers(o.id())),
                primary_hosts.contains(m.host.as_str()),
                m.task.clone(),
            )
        })
        .copied()
}

/// Whether primary `line` is down, read straight from every node's view
/// while its node does not answer the operator, by either of two rules:
///
/// - Redis' own: a majority of the primaries that serve slots (it counts
///   among them) each flag it failing (`fail?` or `fail`), i.e. each saw
///   no pong within the node timeout. Redis marks it `fail` on this same
///   majority, but only once the failure reports have reached one of them
///   by gossip; the operator sees every view at once.
/// - Two witnesses: it has not answered the operator for
///   [`SILENT_FOR_MS`] (the node timeout) and at least one live node of
///   the cluster (a primary or a replica) flags it failing. This is what
///   beats the cluster's own `fail`: once the replica has seen `fail` it
///   schedules its election 0.5-1 s out, and a `FAILOVER FORCE` arriving
///   after that waits for it (Redis starts a forced election at once only
///   when none is scheduled); the majority rule fires at about the moment
///   the cluster agrees, so it lost that race about half the time, the
///   first node's suspicion comes up to 0.5 s earlier.
///
/// The promotion is still a `FAILOVER FORCE`, elected by a majority of
/// primaries, so two replicas cannot both win one epoch; a primary that
/// was only cut off stops taking writes on its minority side after the
/// node timeout, as with Redis' own failover, and none of its writes
/// could be acknowledged by `WAIT` (its replica left it).
fn suspected(
    members: &[Member],
    live: &[(&Member, &Observed)],
    lines: &[&NodeLine],
    line: &NodeLine,
) -> bool {
    let silent_ms = members
        .iter()
        .filter(|m| m.ip == line.ip && m.port == line.port && m.obs.is_none())
        .map(|m| m.silent_ms)
        .max();
    let Some(silent_ms) = silent_ms else {
        return false;
    };
    let flags = |o: &Observed| o.nodes.iter().any(|n| n.id == line.id && n.failing);
    let voters = lines
        .iter()
        .filter(|l| l.primary && !l.slots.is_empty())
        .count();
    let reports = live
        .iter()
        .filter(|(_, o)| o.serves_slots() && flags(o))
        .count();
    reports * 2 > voters || (silent_ms >= SILENT_FOR_MS && live.iter().any(|(_, o)| flags(o)))
}

/// How long a primary must not have answered the operator before one
/// node's suspicion is enough to replace it (see [`suspected`]): the
/// cluster's node timeout, the time Redis itself gives a node.
pub const SILENT_FOR_MS: u64 = crate::jobs::NODE_TIMEOUT_MS;

/// How long a forced failover may wait for the primaries' votes before
/// the replica takes over without them.
pub const TAKEOVER_AFTER_MS: u64 = 1_500;

/// The admin commands that move a cache of `shards` shards towards a
/// formed, healthy cluster. `members` are its running tasks; `forced`
/// says since when (ms) a FAILOVER FORCE has been sent in place of each
/// primary id.
pub fn decide(
    shards: u32,
    members: &[Member],
    forced: &BTreeMap<String, u64>,
    now_ms: u64,
) -> Vec<AdminCmd> {
    decide_restored(shards, None, members, forced, now_ms)
}

/// [`decide`] for a cache restored from a backup (`restore`: the backed-up
/// shards, in order): one node of each shard loaded its shard's RDB at
/// start and took the slots it has keys in, so the cluster does not start
/// without slots; the slots no node serves go to their backed-up shard
/// (see [`restored_slots`]) before anything else is assigned.
pub fn decide_restored(
    shards: u32,
    restore: Option<&[RestoreShard]>,
    members: &[Member],
    forced: &BTreeMap<String, u64>,
    now_ms: u64,
) -> Vec<AdminCmd> {
    let mut out = Vec::new();
    let live: Vec<(&Member, &Observed)> = observed(members).collect();
    if live.is_empty() {
        return out;
    }
    // Every line any live node reports, by id (the first report wins).
    let mut lines: Vec<&NodeLine> = Vec::new();
    for (_, o) in &live {
        for n in &o.nodes {
            if !n.handshake && !lines.iter().any(|l| l.id == n.id) {
                lines.push(n);
            }
        }
    }

    // 1. Fast failover: a replica whose primary no running task answers
    // for, per shard, the one that has processed the most.
    let mut promoting = BTreeSet::new();
    for shard in 0..shards {
        let in_shard: Vec<_> = live.iter().filter(|(m, _)| m.shard == shard).collect();
        if in_shard.iter().any(|(_, o)| o.serves_slots()) {
            continue;
        }
        let best = in_shard
            .iter()
            .filter_map(|(m, o)| {
                let p = o.replicates()?;
                let line = o.nodes.iter().find(|n| n.id == p)?;
                // Its task ended, or (host or network loss) the cluster
                // agreed it is down: promote now instead of waiting out
                // the replicas' own election delay (0.5-1 s and more).
                let down =
                    !alive(members, line) || line.failed || suspected(members, &live, &lines, line);
                (!line.slots.is_empty() && down).then_some((m, o, line))
            })
            .max_by(|a, b| a.1.offset.cmp(&b.1.offset).then(b.0.task.cmp(&a.0.task)));
        if let Some((m, _, line)) = best {
            let p = line.id.as_str();
            promoting.insert(p.to_string());
            let (on, replaces) = (m.addr(), p.to_string());
            let waited = forced
                .get(p)
                .is_some_and(|since| now_ms.saturating_sub(*since) >= TAKEOVER_AFTER_MS);
            out.push(if waited {
                AdminCmd::FailoverTakeover { on, replaces }
            } else {
                AdminCmd::FailoverForce { on, replaces }
            });
        }
    }

    // 2. Meet: the anchor (a slot-serving node if any) meets every live
    // node it does not know; gossip tells the rest.
    let (anchor, anchor_obs) = live
        .iter()
        .find(|(_, o)| o.serves_slots())
        .unwrap_or(&live[0]);
    let mut meeting = false;
    for (m, o) in &live {
        if m.task != anchor.task && !anchor_obs.knows(o.id()) {
            meeting = true;
            out.push(AdminCmd::Meet {
                on: anchor.addr(),
                ip: m.ip.clone(),
                port: m.port,
                bus: m.bus,
            });
        }
    }

    // 3a. A restored cluster: the slots nobody serves yet go to their
    // shard as the backup had them.
    if let Some(layout) = restore {
        if let Some(cmds) = restored_slots(shards, layout, &live, &lines, meeting) {
            out.extend(cmds);
            return out;
        }
    }

    // 3. A new cluster: once every shard has a node and every node knows
    // every other, the first node of each shard takes its range.
    let any_slots = lines.iter().any(|l| !l.slots.is_empty());
    if !any_slots {
        let all_known = live
            .iter()
            .all(|(_, o)| live.iter().all(|(_, p)| o.knows(p.id())));
        // Primaries on distinct hosts where the shards allow it: one host
        // lost then takes few primaries (and their votes) with it.
        let mut used: BTreeSet<&str> = BTreeSet::new();
        let mut firsts = Vec::new();
        for s in 0..shards {
            let mut of_shard = live.iter().filter(|(m, _)| m.shard == s);
            let pick = of_shard
                .clone()
                .find(|(m, _)| !used.contains(m.host.as_str()))
                .or_else(|| of_shard.next());
            if let Some(p) = pick {
                used.insert(p.0.host.as_str());
                firsts.push(p);
            }
        }
        if !meeting && all_known && firsts.len() == shards as usize {
            for (i, (m, _)) in firsts.iter().enumerate() {
                out.push(AdminCmd::AddSlots {
                    on: m.addr(),
                    ranges: vec![initial_range(i as u32, shards)],
                });
            }
        }
        return out;
    }

    // 4. Replicate: a shard's other nodes follow its slot-serving node,
    // or, in a shard added by a scale-out that serves nothing yet, the
    // primary chosen for it (resharding then moves slots to it).
    let primary_hosts: BTreeSet<&str> = live
        .iter()
        .filter(|(_, o)| o.serves_slots())
        .map(|(m, _)| m.host.as_str())
        .collect();
    for shard in 0..shards {
        let in_shard: Vec<_> = live.iter().filter(|(m, _)| m.shard == shard).collect();
        let serving = in_shard.iter().find(|(_, o)| o.serves_slots()).copied();
        let Some((_, p)) = serving.or_else(|| new_shard_primary(&in_shard, &lines, &primary_hosts))
        else {
            continue;
        };
        let pid = p.id();
        for (m, o) in &in_shard {
            let id = o.id();
            if id == pid || o.replicates() == Some(pid) || o.serves_slots() {
                continue;
            }
            // A replica of the shard's old primary follows the promoted one
            // by itself; only empty primaries and strays are told.
            if o.knows(pid) && o.replicates().is_none_or(|old| !promoting.contains(old)) {
                out.push(AdminCmd::Replicate {
                    on: m.addr(),
                    primary: pid.to_string(),
                });
            }
        }
    }

    // 5. Forget nodes no running task answers for, once they serve no
    // slots (a failed primary's slots move to its replica first).
    let live_ids: BTreeSet<&str> = live.iter().map(|(_, o)| o.id()).collect();
    for (m, o) in &live {
        for n in &o.nodes {
            let gone = !n.myself
                && !n.handshake
                && !live_ids.contains(n.id.as_str())
                && !alive(members, n)
                && n.slots.is_empty()
                && o.replicates() != Some(n.id.as_str())
                && !promoting.contains(&n.id);
            if gone {
                out.push(AdminCmd::Forget {
                    on: m.addr(),
                    id: n.id.clone(),
                });
            }
        }
    }
    out
}

/// The slots of `ranges` no line serves, as inclusive ranges.
fn unserved(ranges: &[(u16, u16)], served: &[bool]) -> Vec<(u16, u16)> {
    let mut out: Vec<(u16, u16)> = Vec::new();
    for &(lo, hi) in ranges {
        for slot in lo..=hi.min((SLOTS - 1) as u16) {
            if served[slot as usize] {
                continue;
            }
            match out.last_mut() {
                Some((_, end)) if *end + 1 == slot => *end = slot,
                _ => out.push((slot, slot)),
            }
        }
    }
    out
}

/// A restored cluster's slot assignment: `None` once every slot of the
/// layout is served (nothing left to do here); else the `ADDSLOTSRANGE`s
/// due now, possibly none while waiting. Waits until every node knows
/// every other (as step 3 does) and, per shard, until the node that
/// loads its file serves the slots its keys are in (a shard whose file
/// has keys never gets them on an empty node: its loading node would
/// hold keys of slots another node serves, and could never become a
/// replica). A shard whose file has no keys takes a primary as step 3
/// would.
fn restored_slots(
    shards: u32,
    layout: &[RestoreShard],
    live: &[(&Member, &Observed)],
    lines: &[&NodeLine],
    meeting: bool,
) -> Option<Vec<AdminCmd>> {
    let mut served = vec![false; SLOTS as usize];
    for l in lines {
        for &(lo, hi) in &l.slots {
            for slot in lo..=hi {
                if let Some(s) = served.get_mut(slot as usize) {
                    *s = true;
                }
            }
        }
    }
    let todo: Vec<(u32, Vec<(u16, u16)>)> = layout
        .iter()
        .zip(0..shards)
        .map(|(s, i)| (i, unserved(&s.slots, &served)))
        .filter(|(_, r)| !r.is_empty())
        .collect();
    if todo.is_empty() {
        return None;
    }
    let all_known = live
        .iter()
        .all(|(_, o)| live.iter().all(|(_, p)| o.knows(p.id())));
    if meeting || !all_known {
        return Some(Vec::new());
    }
    let mut used: BTreeSet<&str> = live
        .iter()
        .filter(|(_, o)| o.serves_slots())
        .map(|(m, _)| m.host.as_str())
        .collect();
    let mut out = Vec::new();
    for (shard, ranges) in todo {
        let in_shard: Vec<_> = live.iter().filter(|(m, _)| m.shard == shard).collect();
        let serving = in_shard.iter().find(|(_, o)| o.serves_slots());
        let pick = match serving {
            Some(p) => p,
            None if layout[shard as usize].keys > 0 => continue,
            None => {
                let empty = || {
                    in_shard.iter().filter(|(_, o)| {
                        o.me().is_some_and(|n| n.primary) && o.replicates().is_none()
                    })
                };
                let Some(p) = empty()
                    .find(|(m, _)| !used.contains(m.host.as_str()))
                    .or_else(|| empty().next())
                else {
                    continue;
                };
                p
            }
        };
        used.insert(pick.0.host.as_str());
        out.push(AdminCmd::AddSlots {
            on: pick.0.addr(),
            ranges,
        });
    }
    Some(out)
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
