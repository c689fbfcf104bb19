//! [`View`]: what a framework sees, rebuilt from its watch: a snapshot,
//! then every change.

use std::collections::BTreeMap;

use ocean_client::api::{event, Event, Job, KvEntry, Task};

/// The jobs, tasks and keys a framework follows, at a version.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct View {
    /// The state version the view reflects.
    pub version: u64,
    /// Jobs by id.
    pub jobs: BTreeMap<String, Job>,
    /// Tasks by id.
    pub tasks: BTreeMap<String, Task>,
    /// The framework's keys (its namespace only) by key.
    pub keys: BTreeMap<String, KvEntry>,
    namespace: String,
}

impl View {
    /// An empty view of `namespace`'s keys.
    pub fn new(namespace: &str) -> Self {
        View {
            namespace: namespace.to_string(),
            ..Default::default()
        }
    }

    /// Applies one event of the watch; returns whether anything changed.
    pub fn apply(&mut self, ev: Event) -> bool {
        self.version = self.version.max(ev.version);
        match ev.kind {
            Some(event::Kind::Snapshot(s)) => {
                self.version = s.version;
                self.jobs = s.jobs.into_iter().map(|j| (j.id.clone(), j)).collect();
                self.tasks = s.tasks.into_iter().map(|t| (t.id.clone(), t)).collect();
                self.keys =
                    s.kv.into_iter()
                        .filter(|e| e.namespace == self.namespace)
                        .map(|e| (e.key.clone(), e))
                        .collect();
                true
            }
            Some(event::Kind::JobPut(j)) => {
                self.jobs.insert(j.id.clone(), j);
                true
            }
            Some(event::Kind::JobDeleted(id)) => self.jobs.remove(&id).is_some(),
            Some(event::Kind::TaskPut(t)) => {
                self.tasks.insert(t.id.clone(), t);
                true
            }
            Some(event::Kind::TaskRemoved(id)) => self.tasks.remove(&id).is_some(),
            Some(event::Kind::KvPut(e)) if e.namespace == self.namespace => {
                self.keys.insert(e.key.clone(), e);
                true
            }
            Some(event::Kind::KvDeleted(e)) if e.namespace == self.namespace => {
                self.keys.remove(&e.key).is_some()
            }
            _ => false,
        }
    }

    /// The tasks of a job.
    pub fn tasks_of<'a>(&'a self, job: &'a str) -> impl Iterator<Item = &'a Task> + 'a {
        let prefix = format!("{job}.");
        self.tasks
            .range(prefix.clone()..)
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .map(|(_, t)| t)
            .filter(move |t| t.job_id == job)
    }

    /// The keys starting with `prefix`.
    pub fn keys_under<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a KvEntry> + 'a {
        self.keys
            .range(prefix.to_string()..)
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(|(_, e)| e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocean_client::api::Snapshot;

    fn ev(version: u64, kind: event::Kind) -> Event {
        Event {
            version,
            kind: Some(kind),
            last_of_version: true,
        }
    }

    #[test]
    fn a_view_follows_a_snapshot_and_changes_of_its_namespace_only() {
        let mut v = View::new("cron");
        let key = |ns: &str, k: &str| KvEntry {
            namespace: ns.into(),
            key: k.into(),
            value: b"1".to_vec(),
            revision: 1,
            created_revision: 1,
        };
        v.apply(ev(
            5,
            event::Kind::Snapshot(Snapshot {
                version: 5,
                jobs: vec![Job {
                    id: "j".into(),
                    ..Default::default()
                }],
                kv: vec![key("cron", "crons/a"), key("elb", "x")],
                ..Default::default()
            }),
        ));
        assert_eq!(v.keys.len(), 1);
        assert!(!v.apply(ev(6, event::Kind::KvPut(key("elb", "y")))));
        assert!(v.apply(ev(7, event::Kind::KvPut(key("cron", "crons/b")))));
        assert_eq!(v.keys_under("crons/").count(), 2);
        v.apply(ev(
            8,
            event::Kind::TaskPut(Task {
                id: "j.1".into(),
                job_id: "j".into(),
                ..Default::default()
            }),
        ));
        v.apply(ev(
            9,
            event::Kind::TaskPut(Task {
                id: "j2.1".into(),
                job_id: "j2".into(),
                ..Default::default()
            }),
        ));
        assert_eq!(v.tasks_of("j").count(), 1);
        assert!(v.apply(ev(10, event::Kind::JobDeleted("j".into()))));
        assert_eq!(v.version, 10);
        assert!(v.jobs.is_empty());
    }
}
