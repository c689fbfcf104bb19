//! Frameworks' stores in the replicated state: a key/value map per
//! framework (its namespace) with compare-and-set on revisions, and a
//! leader lease per framework kept as one of its keys.
//!
//! Revisions are state versions, so a key's revision says when it was last
//! written and is the same on every master. A lease is taken, renewed or
//! released by a `Lease` command whose `now_ms` the leader stamps when it
//! proposes it: every master judges expiry by that one clock reading, and
//! a new leader's clock takes over from the next command (masters' clocks
//! may differ by their skew, as for restart back-off).

use std::sync::Arc;

use ocean_proto::internal::{DeleteKv, KvEntry, Lease, LeaseRecord, PutKv};
use prost::Message as _;

use super::{Change, ClusterState, Outcome};

/// The key of a namespace's lease `name` (keys starting with `.` are the
/// system's; users cannot write them).
pub fn lease_key(name: &str) -> String {
    format!(".lease/{name}")
}

/// The state's map key of a namespace's key. Namespaces never contain `/`,
/// so a namespace's keys are one contiguous range.
pub fn kv_map_key(namespace: &str, key: &str) -> String {
    format!("{namespace}/{key}")
}

/// Decodes a lease record stored as a key's value.
pub fn lease_record(entry: &KvEntry) -> Option<LeaseRecord> {
    LeaseRecord::decode(entry.value.as_slice()).ok()
}

impl ClusterState {
    /// A namespace's key.
    pub fn kv_get(&self, namespace: &str, key: &str) -> Option<&Arc<KvEntry>> {
        self.kv.get(&kv_map_key(namespace, key))
    }

    /// A namespace's keys that start with `prefix`, in key order.
    pub fn kv_list<'a>(
        &'a self,
        namespace: &str,
        prefix: &str,
    ) -> impl Iterator<Item = &'a Arc<KvEntry>> + 'a {
        let start = kv_map_key(namespace, prefix);
        self.kv
            .range(start.clone()..)
            .take_while(move |(k, _)| k.starts_with(&start))
            .map(|(_, v)| v)
    }

    fn kv_conflict(&self, namespace: &str, key: &str, expected: Option<u64>) -> Option<Outcome> {
        let expected = expected?;
        let actual = self.kv_get(namespace, key).map_or(0, |e| e.revision);
        (actual != expected).then_some(Outcome::Conflict { expected, actual })
    }

    fn kv_write(&mut self, namespace: &str, key: &str, value: Vec<u8>) -> (Outcome, Vec<Change>) {
        let next = self.version + 1;
        let map_key = kv_map_key(namespace, key);
        let (outcome, created) = match self.kv.get(&map_key) {
            Some(e) if e.value == value => return (Outcome::Unchanged, Vec::new()),
            Some(e) => (Outcome::Updated, e.created_revision),
            None => (Outcome::Created, next),
        };
        let entry = Arc::new(KvEntry {
            namespace: namespace.to_string(),
            key: key.to_string(),
            value,
            revision: next,
            created_revision: created,
        });
        self.kv.insert(map_key, entry.clone());
        self.version = next;
        (outcome, vec![Change::KvPut(entry)])
    }

    pub(super) fn put_kv(&mut self, put: &PutKv) -> (Outcome, Vec<Change>) {
        if let Some(c) = self.kv_conflict(&put.namespace, &put.key, put.expected_revision) {
            return (c, Vec::new());
        }
        self.kv_write(&put.namespace, &put.key, put.value.clone())
    }

    pub(super) fn delete_kv(&mut self, del: &DeleteKv) -> (Outcome, Vec<Change>) {
        if let Some(c) = self.kv_conflict(&del.namespace, &del.key, del.expected_revision) {
            return (c, Vec::new());
        }
        match self.kv.remove(&kv_map_key(&del.namespace, &del.key)) {
            Some(entry) => {
                self.version += 1;
                (Outcome::Deleted, vec![Change::KvDeleted(entry)])
            }
            None => (Outcome::NotFound, Vec::new()),
        }
    }

    /// Takes, renews or releases a lease (see the module docs). Refused
    /// with [`Outcome::Held`] while another holder's lease is unexpired.
    pub(super) fn lease(&mut self, l: &Lease) -> (Outcome, Vec<Change>) {
        let key = lease_key(&l.name);
        let current = self
            .kv_get(&l.namespace, &key)
            .and_then(|e| lease_record(e));
        let live_other = current
            .as_ref()
            .filter(|r| r.holder != l.holder && r.expires_ms > l.now_ms);
        if let Some(r) = live_other {
            return (
                Outcome::Held {
                    holder: r.holder.clone(),
                    expires_ms: r.expires_ms,
                },
                Vec::new(),
            );
        }
        if l.release {
            // The record stays, expired and without a holder, so the next
            // holder's epoch still grows: writes fenced by an epoch stay
            // fenced across a release.
            return match current {
                Some(r) if r.holder == l.holder => {
                    let released = LeaseRecord {
                        holder: String::new(),
                        expires_ms: l.now_ms,
                        ..r
                    };
                    self.kv_write(&l.namespace, &key, released.encode_to_vec())
                }
                _ => (Outcome::NotFound, Vec::new()),
            };
        }
        let same_holder = current.as_ref().filter(|r| r.holder == l.holder);
        let record = LeaseRecord {
            holder: l.holder.clone(),
            expires_ms: l.now_ms.saturating_add(l.ttl_ms),
            epoch: match (&same_holder, &current) {
                (Some(r), _) => r.epoch,
                (None, Some(r)) => r.epoch + 1,
                (None, None) => 1,
            },
            ttl_ms: l.ttl_ms,
            acquired_ms: same_holder.map_or(l.now_ms, |r| r.acquired_ms),
        };
        self.kv_write(&l.namespace, &key, record.encode_to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::state::{delete_kv_command, lease_command, put_kv_command};

    fn put(key: &str, value: &str, expected: Option<u64>) -> ocean_proto::internal::Command {
        put_kv_command("elb", key, value.as_bytes().to_vec(), expected)
    }

    #[test]
    fn keys_are_written_compared_and_listed_per_namespace() {
        let mut s = ClusterState::default();
        assert_eq!(
            s.apply(&put("lb/a", "1", Some(0))).outcome,
            Outcome::Created
        );
        let rev = s.kv_get("elb", "lb/a").unwrap().revision;
        assert_eq!(rev, s.version);
        // Another framework's namespace is separate.
        s.apply(&put_kv_command("redis", "lb/a", b"x".to_vec(), None));
        s.apply(&put("lb/b", "2", None));
        s.apply(&put("other", "3", None));
        let listed: Vec<&str> = s.kv_list("elb", "lb/").map(|e| e.key.as_str()).collect();
        assert_eq!(listed, vec!["lb/a", "lb/b"]);
        // A stale revision is refused with both numbers; nothing changes.
        let before = s.clone();
        let a = s.apply(&put("lb/a", "9", Some(rev + 100)));
        assert_eq!(
            a.outcome,
            Outcome::Conflict {
                expected: rev + 100,
                actual: rev
            }
        );
        assert_eq!(s, before);
        let a = s.apply(&put("lb/a", "9", Some(rev)));
        assert_eq!(a.outcome, Outcome::Updated);
        let e = s.kv_get("elb", "lb/a").unwrap();
        assert_eq!((e.created_revision, e.value.as_slice()), (rev, &b"9"[..]));
        // Writing the same value again is no new version.
        let v = s.version;
        assert_eq!(s.apply(&put("lb/a", "9", None)).outcome, Outcome::Unchanged);
        assert_eq!(s.version, v);
        // Delete with a stale revision conflicts; without one it deletes.
        let del = delete_kv_command("elb", "lb/a", Some(1));
        assert!(matches!(s.apply(&del).outcome, Outcome::Conflict { .. }));
        let a = s.apply(&delete_kv_command("elb", "lb/a", None));
        assert_eq!(a.outcome, Outcome::Deleted);
        assert!(matches!(a.changes[0], Change::KvDeleted(ref e) if e.key == "lb/a"));
        assert_eq!(
            s.apply(&delete_kv_command("elb", "lb/a", None)).outcome,
            Outcome::NotFound
        );
    }

    fn lease(holder: &str, now_ms: u64, release: bool) -> ocean_proto::internal::Command {
        lease_command("elb", "leader", holder, 3_000, now_ms, release)
    }

    fn record(s: &ClusterState) -> Option<LeaseRecord> {
        s.kv_get("elb", &lease_key("leader"))
            .and_then(|e| lease_record(e))
    }

    #[test]
    fn a_lease_has_one_holder_until_it_expires_or_is_released() {
        let mut s = ClusterState::default();
        assert_eq!(s.apply(&lease("a", 1_000, false)).outcome, Outcome::Created);
        let r = record(&s).unwrap();
        assert_eq!((r.holder.as_str(), r.expires_ms, r.epoch), ("a", 4_000, 1));
        // Another holder is refused while it is unexpired, and told who holds it.
        assert_eq!(
            s.apply(&lease("b", 3_999, false)).outcome,
            Outcome::Held {
                holder: "a".into(),
                expires_ms: 4_000
            }
        );
        // The holder renews: same epoch, later expiry, same acquisition time.
        assert_eq!(s.apply(&lease("a", 3_000, false)).outcome, Outcome::Updated);
        let r = record(&s).unwrap();
        assert_eq!((r.expires_ms, r.epoch, r.acquired_ms), (6_000, 1, 1_000));
        // Once expired, another takes it with a new epoch.
        assert_eq!(s.apply(&lease("b", 6_000, false)).outcome, Outcome::Updated);
        let r = record(&s).unwrap();
        assert_eq!((r.holder.as_str(), r.epoch), ("b", 2));
        // Only the holder releases it; then anyone may take it at once.
        assert!(matches!(
            s.apply(&lease("a", 6_001, true)).outcome,
            Outcome::Held { .. }
        ));
        assert_eq!(s.apply(&lease("b", 6_001, true)).outcome, Outcome::Updated);
        assert_eq!(record(&s).unwrap().holder, "");
        assert_eq!(s.apply(&lease("a", 6_002, false)).outcome, Outcome::Updated);
        // The epoch survives the release, so writes fenced by epoch 2 stay fenced.
        assert_eq!(record(&s).unwrap().epoch, 3);
    }
}
