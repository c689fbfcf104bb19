//! Applying committed entries: commands to the state machine, membership
//! changes to raft, persistence staged into the Ready's batch, and the
//! answers to waiting proposers once that batch is written.

use ocean_proto::internal::{command, Command, Member};
use prost::Message as _;
use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeType, Entry, EntryType};
use tracing::{info, warn};

use super::{Announce, Driver, Pending, Transport, Waiter};
use crate::error::{corrupt, Error, Result};
use std::sync::Arc;

use crate::kernel::feed::Changes;
use crate::kernel::state::{format, Applied, Change};
use crate::kernel::storage::StoreBatch;

impl<T: Transport> Driver<T> {
    /// Applies committed entries to the state, stages their persistence in
    /// `batch`, and returns what to announce once the batch is written.
    pub(super) fn apply(
        &mut self,
        entries: Vec<Entry>,
        batch: &mut StoreBatch,
    ) -> Result<Announce> {
        if entries.is_empty() {
            return Ok(Announce::default());
        }
        let state = self.store.state();
        let mut changes: Vec<(u64, Changes)> = Vec::new();
        let mut plain_changes: Vec<Change> = Vec::new();
        let mut members = Vec::new();
        let mut removed = Vec::new();
        let mut conf_state = None;
        let mut replies: Vec<(Pending, Option<Result<Applied>>, u64)> = Vec::new();
        // Decoded before taking the state's write lock: a round's entry
        // holds thousands of tasks, and readers (APIs, the reconciler)
        // should not wait for their decoding.
        let mut decoded = Vec::with_capacity(entries.len());
        for entry in &entries {
            decoded.push(match entry.get_entry_type() {
                EntryType::EntryNormal if !entry.data.is_empty() => {
                    let cmd = Command::decode(&*entry.data)
                        .map_err(|e| corrupt("command in the raft log", e))?;
                    // Checked for the whole batch before any of it applies.
                    if let Some(why) = format::command_problem(&cmd, entry.index) {
                        return Err(corrupt("raft log", why));
                    }
                    Some(cmd)
                }
                _ => None,
            });
        }
        let (applied_index, version) = {
            let mut st = state.write().unwrap_or_else(|p| p.into_inner());
            for (entry, cmd) in entries.into_iter().zip(decoded) {
                let index = entry.index;
                let mut result = None;
                match entry.get_entry_type() {
                    EntryType::EntryNormal if entry.data.is_empty() => {}
                    EntryType::EntryNormal => {
                        let Some(cmd) = cmd else {
                            return Err(corrupt("raft log", "an entry was not decoded"));
                        };
                        if let Some(command::Kind::SetMember(m)) = &cmd.kind {
                            members.push(m.clone());
                        }
                        let applied = st.apply_owned(cmd);
                        let placed = applied
                            .changes
                            .iter()
                            .filter(|c| matches!(c, Change::TaskPut(t) if t.created_version == applied.version && t.state == crate::kernel::state::STAGING))
                            .count();
                        self.metrics.tasks_placed.inc_by(placed as u64);
                        if !applied.changes.is_empty() {
                            plain_changes.extend(applied.changes.iter().cloned());
                            changes
                                .push((applied.version, Arc::new(applied.changes.clone().into())));
                        }
                        result = Some(Ok(applied));
                    }
                    EntryType::EntryConfChange => {
                        let cc = ConfChange::parse_from_bytes(&entry.data)
                            .map_err(|e| corrupt("conf change in the raft log", e))?;
                        let cs = self.raw.apply_conf_change(&cc)?;
                        match cc.get_change_type() {
                            ConfChangeType::AddNode | ConfChangeType::AddLearnerNode => {
                                if let Ok(m) = Member::decode(&*cc.context) {
                                    st.set_member(m.clone());
                                    members.push(m);
                                }
                            }
                            ConfChangeType::RemoveNode => {
                                st.remove_member(cc.node_id);
                                removed.push(cc.node_id);
                                if cc.node_id == self.id {
                                    warn!(id = self.id, "this master was removed from the cluster");
                                    self.removed = true;
                                }
                            }
                        }
                        info!(voters = ?cs.voters, "membership changed");
                        conf_state = Some(cs);
                        result = Some(Ok(Applied {
                            outcome: crate::kernel::state::Outcome::Noop,
                            version: st.version,
                            changes: Vec::new(),
                        }));
                    }
                    EntryType::EntryConfChangeV2 => {
                        return Err(corrupt("raft log", "unexpected ConfChangeV2 entry"));
                    }
                }
                st.applied_index = index;
                self.metrics.applied_entries.inc();
                if let Some(p) = self.pending.remove(&index) {
                    let mine = entry.context.len() == 8
                        && entry.context[..] == p.proposal.to_be_bytes()[..];
                    replies.push((p, if mine { result } else { None }, index));
                }
            }
            self.metrics.jobs.set(st.jobs.len() as i64);
            self.metrics
                .tasks_running
                .set(st.count(crate::kernel::state::RUNNING) as i64);
            self.metrics.tasks_live.set(st.live_count() as i64);
            (st.applied_index, st.version)
        };
        batch.applied(
            &plain_changes,
            &members,
            &removed,
            conf_state.as_ref(),
            applied_index,
            version,
        )?;
        // Proposals at indexes below the applied one that never came back
        // were overwritten by another leader's entries.
        let stale: Vec<u64> = self
            .pending
            .range(..=applied_index)
            .map(|(i, _)| *i)
            .collect();
        for i in stale {
            if let Some(p) = self.pending.remove(&i) {
                replies.push((p, None, i));
            }
        }
        Ok(Announce { changes, replies })
    }

    /// Publishes applied changes and answers proposers, after their batch
    /// is written.
    pub(super) fn announce(&mut self, a: Announce) {
        self.feed.publish(a.changes);
        for (p, result, index) in a.replies {
            match (p.waiter, result) {
                (Waiter::Command(tx), Some(r)) => {
                    let _ = tx.send(r);
                }
                (Waiter::Members(tx), Some(_)) => {
                    let _ = tx.send(Ok(index));
                }
                (Waiter::Command(tx), None) => {
                    let _ = tx.send(Err(Error::NotCommitted(
                        "leadership changed before the write committed; retry".into(),
                    )));
                }
                (Waiter::Members(tx), None) => {
                    let _ = tx.send(Err(Error::NotCommitted(
                        "leadership changed before the membership change committed; retry".into(),
                    )));
                }
            }
        }
    }
}
