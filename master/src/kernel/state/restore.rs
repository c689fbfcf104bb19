//! Restoring a saved state image (`ocean operator snapshot restore`): one
//! command replaces the jobs, tasks, keys and agents by the image's, on
//! every master alike, and reports the replacement as ordinary changes so
//! storage, the feed and watchers follow it like any other write.

use std::sync::Arc;

use ocean_proto::internal::RestoreState;

use super::{summary, Applied, Change, ClusterState, Outcome};

impl ClusterState {
    /// Applies a restore. Refused (a conflict against version 0, nothing
    /// changed) when the cluster holds a job, a task or a key and the
    /// restore is not forced. The cluster keeps its own members and its own
    /// applied index; its version moves past both its own and the image's,
    /// so a watcher never sees it go backwards. Agents only this cluster
    /// knows are kept: agents are the truth about hosts and re-register.
    pub(super) fn restore(&mut self, r: &RestoreState) -> Applied {
        let refused = |st: &ClusterState, outcome| Applied {
            outcome,
            version: st.version,
            changes: Vec::new(),
        };
        // The usage history a fresh cluster records from its first minute
        // is not data a restore would lose by mistake.
        let usage = format!("{}/", super::usage::NAMESPACE);
        let holds_data = !self.jobs.is_empty()
            || !self.tasks.is_empty()
            || self.kv.keys().any(|k| !k.starts_with(&usage));
        if holds_data && !r.force {
            return refused(
                self,
                Outcome::Conflict {
                    expected: 0,
                    actual: self.version,
                },
            );
        }
        // The service checked the image before proposing it; a master
        // that cannot decode it changes nothing, like every other master.
        let Ok(mut next) = ClusterState::from_image(&r.image) else {
            return refused(self, Outcome::Unchanged);
        };
        let mut changes = Vec::new();
        for id in self.jobs.keys().filter(|id| !next.jobs.contains_key(*id)) {
            changes.push(Change::JobDeleted(id.clone()));
        }
        for id in self.tasks.keys().filter(|id| !next.tasks.contains_key(*id)) {
            changes.push(Change::TaskRemoved(id.clone()));
        }
        for (k, e) in &self.kv {
            if !next.kv.contains_key(k) {
                changes.push(Change::KvDeleted(e.clone()));
            }
        }
        for (id, a) in &self.agents {
            next.agents
                .entry(id.clone())
                .or_insert_with(|| Arc::clone(a));
        }
        changes.extend(next.jobs.values().cloned().map(Change::JobPut));
        changes.extend(next.agents.values().cloned().map(Change::AgentPut));
        changes.extend(next.tasks.values().cloned().map(Change::TaskPut));
        changes.extend(next.kv.values().cloned().map(Change::KvPut));
        next.members = std::mem::take(&mut self.members);
        next.applied_index = self.applied_index;
        next.version = self.version.max(next.version) + 1;
        next.summary = summary::Summary::recount(&next);
        *self = next;
        Applied {
            outcome: Outcome::Updated,
            version: self.version,
            changes,
        }
    }
}

#[cfg(test)]
mod tests {
    use ocean_proto::internal::{command, Command, PutKv};

    use super::*;

    fn put_kv(st: &mut ClusterState, key: &str) {
        st.apply(&Command {
            min_version: 0,
            kind: Some(command::Kind::PutKv(PutKv {
                namespace: "redis".into(),
                key: key.into(),
                value: b"1".to_vec(),
                expected_revision: None,
            })),
        });
    }

    fn restore(image: Vec<u8>, force: bool) -> RestoreState {
        RestoreState { image, force }
    }

    #[test]
    fn restore_refuses_a_cluster_with_data_unless_forced_and_replaces_it() {
        let mut saved = ClusterState::default();
        put_kv(&mut saved, "a");
        put_kv(&mut saved, "b");
        let image = saved.to_image();

        let mut fresh = ClusterState::default();
        let a = fresh.restore(&restore(image.clone(), false));
        assert_eq!(a.outcome, Outcome::Updated);
        assert_eq!(fresh.kv.len(), 2);
        assert!(fresh.version > saved.version);
        assert_eq!(a.changes.len(), 2);

        let mut busy = ClusterState::default();
        put_kv(&mut busy, "c");
        let before = busy.version;
        let a = busy.restore(&restore(image.clone(), false));
        assert!(matches!(a.outcome, Outcome::Conflict { .. }));
        assert_eq!(busy.version, before);
        assert!(busy.kv_get("redis", "c").is_some());

        let a = busy.restore(&restore(image, true));
        assert_eq!(a.outcome, Outcome::Updated);
        assert!(busy.kv_get("redis", "c").is_none());
        assert!(busy.kv_get("redis", "a").is_some());
        assert!(a
            .changes
            .iter()
            .any(|c| matches!(c, Change::KvDeleted(e) if e.key == "c")));
    }

    #[test]
    fn an_undecodable_image_changes_nothing() {
        let mut st = ClusterState::default();
        let a = st.restore(&restore(b"not an image".to_vec(), false));
        assert_eq!(a.outcome, Outcome::Unchanged);
        assert_eq!(st.version, 0);
    }
}
