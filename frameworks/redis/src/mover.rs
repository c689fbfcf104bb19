//! [`Mover`]: the operator's resharding step for a cache whose record
//! asks for a new shard count. It measures the slots on replicas, plans
//! the moves ([`crate::reshard::plan`], balanced by bytes) and moves slots
//! a time budget at a time, so a round never blocks the operator's
//! failovers for long. Clients keep working throughout: a slot being moved
//! answers `ASK`, a moved one `MOVED`.
//!
//! ```text
//!  record.resharding ─► primaries settled? ─► finish moves left half-done
//!                       (MIGRATING/IMPORTING)  ─► plan (once, from sampled
//!                       bytes) ─► move slots within the budget ─► Done when
//!                       nothing is left and removed shards serve nothing
//! ```
//!
//! The plan lives in memory: a new leader plans again from what it
//! observes, so the moves already made are kept and none is made twice.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::admin::{RedisAdmin, SlotMigration};
use crate::decide::AdminCmd;
use crate::decide::Member;
use crate::framework::CacheRecord;
use crate::reshard::{bytes_per_shard, plan, slots_of, SlotMove};
use crate::topology::{Observed, SLOTS};

/// Most slots moved in one batch (one pipeline of `SETSLOT`s per node).
pub const BATCH_SLOTS: usize = 128;
/// A batch stops growing past this many estimated bytes, so one batch
/// never holds a round for long.
pub const BATCH_BYTES: u64 = 32 << 20;

/// A resharding as the status shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReshardStatus {
    /// Shards before.
    pub from_shards: u32,
    /// Shards after.
    pub to_shards: u32,
    /// When it was asked for (ms since the epoch).
    #[serde(default)]
    pub started_ms: u64,
    /// Slots the current plan moves.
    pub slots_planned: u32,
    /// Slots moved so far by this operator.
    pub slots_moved: u32,
    /// Keys moved so far.
    pub keys_moved: u64,
    /// Estimated bytes moved so far.
    pub bytes_moved: u64,
    /// Estimated bytes per shard once the plan is done.
    pub planned_bytes: Vec<u64>,
    /// Why it is not moving, when it waits.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub waiting: String,
}

/// What a step came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Not moving this round; the reason is in the status.
    Waiting,
    /// Moved what the budget allowed; more to do.
    Moving,
    /// Every slot is where it belongs: the record's resharding may end.
    Done,
}

#[derive(Debug)]
struct Planned {
    key: (u32, u32, u64),
    moves: VecDeque<SlotMove>,
}

/// Resharding plans and progress per cache.
#[derive(Debug, Default)]
pub struct Mover {
    plans: BTreeMap<String, Planned>,
    progress: BTreeMap<String, ReshardStatus>,
    /// Reshardings this operator ended, by cache: their `started_ms`.
    ended: BTreeMap<String, u64>,
}

/// A node as observed this round.
type Node<'a> = (&'a Member, &'a Observed);

/// The primary of each shard: the one node serving slots, or, for a
/// shard serving none, its only primary (others follow it). `None` for a
/// shard not settled yet.
fn primaries(members: &[Member], shards: u32) -> Vec<Option<(&Member, &Observed)>> {
    (0..shards)
        .map(|shard| {
            let ps: Vec<(&Member, &Observed)> = members
                .iter()
                .filter(|m| m.shard == shard)
                .filter_map(|m| m.obs.as_ref().map(|o| (m, o)))
                .filter(|(_, o)| o.me().is_some_and(|n| n.primary))
                .collect();
            let serving: Vec<_> = ps.iter().filter(|(_, o)| o.serves_slots()).collect();
            match (serving.as_slice(), ps.as_slice()) {
                ([one], _) => Some(**one),
                ([], [only]) => Some(*only),
                _ => None,
            }
        })
        .collect()
}

/// Whether `to` already knows that the node `from_id` serves every one of
/// `slots`. A node learns owners by gossip, and stops listening for the
/// owner of a slot once it imports it: moving a slot to a node that does
/// not know its owner yet would leave it refusing the slot's keys
/// (`CLUSTERDOWN Hash slot not served`) for good.
fn knows_owner(to: &Observed, from_id: &str, slots: &[u16]) -> bool {
    let Some(line) = to.nodes.iter().find(|n| n.id == from_id) else {
        return false;
    };
    let owned: BTreeSet<u16> = slots_of(&line.slots).collect();
    slots.iter().all(|s| owned.contains(s))
}

impl Mover {
    /// The progress to show for cache `name`, while it reshards.
    pub fn progress(&self, name: &str) -> Option<ReshardStatus> {
        self.progress.get(name).cloned()
    }

    /// Cache `name`'s resharding asked for at `started_ms` is over (its
    /// record says so): its plan and progress go, and until the watch
    /// shows the cleared record, steps for it do nothing (no second
    /// sampling, no second write of the record).
    pub fn ended(&mut self, name: &str, started_ms: u64) {
        self.plans.remove(name);
        self.progress.remove(name);
        self.ended.insert(name.to_string(), started_ms);
    }

    /// One step for the cache of `rec` (which must be resharding) whose
    /// running tasks are `members`, observed this round.
    pub async fn step(
        &mut self,
        admin: &dyn RedisAdmin,
        rec: &CacheRecord,
        members: &[Member],
        budget: Duration,
    ) -> Step {
        let Some(r) = &rec.resharding else {
            return Step::Done;
        };
        let name = rec.spec.name.clone();
        if self.ended.get(&name) == Some(&r.started_ms) {
            return Step::Waiting;
        }
        let target = rec.spec.shards;
        let all = rec.job_shards();
        let fresh = || ReshardStatus {
            from_shards: r.from_shards,
            to_shards: target,
            started_ms: r.started_ms,
            ..Default::default()
        };
        let progress = self.progress.entry(name.clone()).or_insert_with(fresh);
        if progress.started_ms != r.started_ms {
            // Another change of shard count: its own counters.
            *progress = fresh();
        }
        let prim = primaries(members, all);
        if let Some(shard) = (0..target).find(|s| prim[*s as usize].is_none()) {
            progress.waiting = format!("shard {shard} has no single primary yet");
            return Step::Waiting;
        }
        // Who serves each slot, by shard.
        let mut owner: BTreeMap<u16, u32> = BTreeMap::new();
        for (shard, p) in prim.iter().enumerate() {
            if let Some(me) = p.and_then(|(_, o)| o.me()) {
                for s in slots_of(&me.slots) {
                    owner.insert(s, shard as u32);
                }
            }
        }
        if owner.len() < SLOTS as usize {
            progress.waiting = format!(
                "{} slots are not served by a settled primary",
                SLOTS as usize - owner.len()
            );
            return Step::Waiting;
        }
        progress.waiting.clear();
        let deadline = Instant::now() + budget;
        // A move of `slots` between two primaries, the others told too.
        let migration = |slots: Vec<u16>, (from, fo): Node, (to, to_obs): Node| SlotMigration {
            slots,
            from: from.addr(),
            from_id: fo.id().to_string(),
            to: to.addr(),
            to_id: to_obs.id().to_string(),
            others: prim
                .iter()
                .flatten()
                .map(|(m, _)| m.addr())
                .filter(|a| *a != from.addr() && *a != to.addr())
                .collect(),
        };
        let by_id = |id: &str| {
            prim.iter()
                .flatten()
                .find(|(_, o)| o.id() == id)
                .map(|(m, o)| (*m, *o))
        };

        // Moves a leader before us (or an error) left half-done come first:
        // a slot left MIGRATING or IMPORTING would redirect clients forever.
        let mut half_done = Vec::new();
        for (node, obs) in prim.iter().flatten() {
            let Some(me) = obs.me() else { continue };
            for (slot, to_id) in &me.migrating {
                match by_id(to_id) {
                    Some(to) => half_done.push((*slot, (*node, *obs), to)),
                    // Its keys already moved went with that node (or its
                    // replica): a person decides where the slot goes.
                    None => {
                        progress.waiting = format!(
                            "slot {slot} is migrating to node {to_id}, which is no longer a primary"
                        );
                    }
                }
            }
            for (slot, from_id) in &me.importing {
                let from = by_id(from_id).filter(|(_, fo)| {
                    fo.me()
                        .is_some_and(|n| slots_of(&n.slots).any(|s| s == *slot))
                });
                if let Some(from) = from {
                    half_done.push((*slot, from, (*node, *obs)));
                }
            }
        }
        if let Some(&(_, (from, fo), (to, to_obs))) = half_done.first() {
            // The slots half-done between the first such pair, together.
            let mut slots: Vec<u16> = half_done
                .iter()
                .filter(|(_, f, t)| f.0.task == from.task && t.0.task == to.task)
                .map(|(s, _, _)| *s)
                .collect();
            slots.sort_unstable();
            slots.dedup();
            let m = migration(slots, (from, fo), (to, to_obs));
            if !knows_owner(to_obs, fo.id(), &m.slots) {
                // It can never take these keys: undo the move's marks on
                // both ends; the slots are planned again.
                for &slot in &m.slots {
                    for on in [&m.to, &m.from] {
                        let cmd = AdminCmd::SetSlotStable {
                            on: on.clone(),
                            slot,
                        };
                        if let Err(e) = admin.execute(&cmd).await {
                            warn!(cache = %name, slot, error = %e, "slot not made stable");
                        }
                    }
                }
                warn!(cache = %name, slots = ?m.slots, "undid slot moves to a node that did not know their owner");
                self.plans.remove(&name);
                return Step::Moving;
            }
            match admin.move_slots(&m).await {
                Ok(_) => {
                    info!(cache = %name, slots = ?m.slots, "finished slot moves left half-done")
                }
                Err(e) => {
                    warn!(cache = %name, slots = ?m.slots, error = %e, "half-done slot moves not finished")
                }
            }
            // Ownership changed under any plan: plan again next round.
            self.plans.remove(&name);
            return Step::Moving;
        }

        let key = (r.from_shards, target, r.started_ms);
        if self.plans.get(&name).is_none_or(|p| p.key != key) {
            let mut bytes = BTreeMap::new();
            for (shard, p) in prim.iter().enumerate() {
                let Some((pm, po)) = p else { continue };
                let Some(me) = po.me() else { continue };
                if me.slots.is_empty() {
                    continue;
                }
                // A synced replica reads the sizes; the primary only if
                // the shard has none.
                let reader = members
                    .iter()
                    .filter(|m| m.shard == shard as u32)
                    .find(|m| {
                        m.obs
                            .as_ref()
                            .is_some_and(|o| o.replicates() == Some(po.id()) && o.link_up)
                    })
                    .map_or_else(|| pm.addr(), Member::addr);
                match admin.slot_loads(&reader, &me.slots).await {
                    Ok(loads) => bytes.extend(loads.into_iter().map(|l| (l.slot, l.bytes))),
                    Err(e) => {
                        let progress = self.progress.get_mut(&name).expect("inserted above");
                        progress.waiting = format!("slot sizes not read: {e}");
                        return Step::Waiting;
                    }
                }
            }
            let moves = plan(&owner, &bytes, target);
            let mut after = owner.clone();
            for m in &moves {
                after.insert(m.slot, m.to);
            }
            let progress = self.progress.get_mut(&name).expect("inserted above");
            progress.slots_planned = moves.len() as u32;
            progress.planned_bytes = bytes_per_shard(&after, &bytes, target);
            info!(
                cache = %name, moves = moves.len(), planned_bytes = ?progress.planned_bytes,
                "resharding planned"
            );
            self.plans.insert(
                name.clone(),
                Planned {
                    key,
                    moves: moves.into(),
                },
            );
        }
        let planned = self.plans.get_mut(&name).expect("inserted above");
        let progress = self.progress.get_mut(&name).expect("inserted above");
        while let Some(first) = planned.moves.front().copied() {
            if Instant::now() >= deadline {
                return Step::Moving;
            }
            // A batch: the next moves between the same two shards, taken
            // from anywhere in the plan (it alternates between pairs as it
            // balances, and each batch costs every node involved a config
            // save: batches of one or two slots made a loaded machine's
            // resharding crawl). A slot moves once in a plan, so the order
            // between pairs does not change where slots end up.
            let mut batch: Vec<SlotMove> = Vec::new();
            let mut bytes = 0u64;
            let mut rest = std::collections::VecDeque::with_capacity(planned.moves.len());
            while let Some(mv) = planned.moves.pop_front() {
                let same = mv.from == first.from && mv.to == first.to;
                if !same
                    || batch.len() >= BATCH_SLOTS
                    || (bytes >= BATCH_BYTES && !batch.is_empty())
                {
                    rest.push_back(mv);
                    continue;
                }
                match owner.get(&mv.slot) {
                    Some(s) if *s == mv.to => continue,
                    Some(s) if *s == mv.from => {}
                    _ => {
                        // Someone else moved it: the plan no longer fits.
                        self.plans.remove(&name);
                        return Step::Moving;
                    }
                }
                bytes += mv.bytes;
                batch.push(mv);
            }
            planned.moves = rest;
            if batch.is_empty() {
                continue;
            }
            let (Some((from, fo)), Some((to, to_obs))) =
                (prim[first.from as usize], prim[first.to as usize])
            else {
                // Back in the queue for when the shard has its primary.
                for mv in batch.into_iter().rev() {
                    planned.moves.push_front(mv);
                }
                return Step::Waiting;
            };
            let slots: Vec<u16> = batch.iter().map(|mv| mv.slot).collect();
            if !knows_owner(to_obs, fo.id(), &slots) {
                for mv in batch.into_iter().rev() {
                    planned.moves.push_front(mv);
                }
                progress.waiting = format!(
                    "shard {}'s primary has not learned who serves the slots yet",
                    first.to
                );
                return Step::Waiting;
            }
            let m = migration(slots, (from, fo), (to, to_obs));
            match admin.move_slots(&m).await {
                Ok(keys) => {
                    for mv in &batch {
                        owner.insert(mv.slot, mv.to);
                    }
                    progress.slots_moved += batch.len() as u32;
                    progress.keys_moved += keys;
                    progress.bytes_moved += bytes;
                }
                Err(e) => {
                    warn!(cache = %name, slots = batch.len(), error = %e, "slots not moved");
                    // Whatever part was done shows as MIGRATING/IMPORTING
                    // next round and is finished first; the rest is planned
                    // again from what is observed then.
                    self.plans.remove(&name);
                    return Step::Moving;
                }
            }
        }
        // Nothing left to move: done once removed shards serve nothing
        // and no slot is mid-move anywhere.
        let drained = owner.values().all(|s| *s < target);
        let settled = prim.iter().flatten().all(|(_, o)| {
            o.me()
                .is_some_and(|n| n.migrating.is_empty() && n.importing.is_empty())
        });
        if drained && settled {
            Step::Done
        } else {
            if !drained {
                // A plan that left slots on a removed shard is stale.
                self.plans.remove(&name);
            }
            Step::Moving
        }
    }
}
