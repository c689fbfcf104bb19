//! The watch stream shared by gRPC `Watch`, REST `GET /v1/events` and
//! in-process consumers: a snapshot when the consumer is too far behind (or
//! new), then every change in version order, re-synced with a new snapshot
//! if the consumer lags or the master installs a snapshot.
//!
//! One version may hold many changes (a scheduling round places many tasks
//! in one command). Only the last delivered change of a version is marked
//! `last`, so a consumer that resumes "after version v" never skips half of
//! version v: SSE puts an event id on the last one only.
//!
//! A [`WatchFilter`] narrows the stream to a service-tree node, a set of
//! kinds and framework namespaces; it is applied here, before anything is
//! encoded, so an excluded change costs a watcher one test and no bytes.

use futures::Stream;
use std::collections::VecDeque;
use std::sync::{Arc, RwLock};

use ocean_proto::internal::{Agent, Job, KvEntry, Task};
use ocean_spec::TreeNode;
use tokio::sync::broadcast::error::RecvError;

use crate::error::{Error, Result};
use crate::kernel::feed::{tree_id, Changes, Feed, FeedItem, Start};
use crate::kernel::state::{Change, ClusterState};
use crate::service::acl::{Grants, Right};

/// One item of a watch.
#[derive(Debug, Clone)]
pub enum WatchItem {
    /// Replace everything with this state at `version` (filtered).
    Snapshot {
        version: u64,
        jobs: Vec<Arc<Job>>,
        agents: Vec<Arc<Agent>>,
        tasks: Vec<Arc<Task>>,
        kv: Vec<Arc<KvEntry>>,
    },
    /// One change of `version`; `last` on the last delivered change of that
    /// version.
    Change {
        version: u64,
        change: Change,
        last: bool,
    },
}

/// The kinds of change a watch may ask for.
pub const KINDS: [&str; 4] = ["job", "task", "agent", "kv"];

/// What a watcher wants to see.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchFilter {
    /// Only jobs and tasks under this node. Agents and framework keys are
    /// under no node, so a watch with a node leaves them out.
    node: TreeNode,
    /// Bits of [`KINDS`]; 0 = all.
    kinds: u8,
    /// Only keys of these namespaces; empty = all.
    namespaces: Vec<String>,
    /// The node's `tag.value` pieces, to look candidates up in a version's
    /// index ([`crate::kernel::feed::ChangeSet::carrying`]).
    pieces: Vec<String>,
    /// What the watcher's token may read (`None`: everything).
    grants: Option<Arc<Grants>>,
}

impl WatchFilter {
    /// Everything.
    pub fn all() -> Self {
        WatchFilter::default()
    }

    /// Parses the filter's parts as the APIs receive them; errors name the
    /// field (`node`, `kinds`, `namespaces`).
    pub fn parse(node: &str, kinds: &[String], namespaces: &[String]) -> Result<Self> {
        let node = TreeNode::parse_field(node, "node").map_err(|e| Error::Invalid {
            field: e.field,
            reason: e.reason,
        })?;
        let mut bits = 0u8;
        for k in kinds
            .iter()
            .flat_map(|k| k.split(','))
            .filter(|k| !k.is_empty())
        {
            let Some(i) = KINDS.iter().position(|x| *x == k) else {
                return Err(Error::Invalid {
                    field: "kinds".into(),
                    reason: format!("'{k}' is not one of {}", KINDS.join(", ")),
                });
            };
            bits |= 1 << i;
        }
        let namespaces: Vec<String> = namespaces
            .iter()
            .flat_map(|n| n.split(','))
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect();
        if let Some(bad) = namespaces.iter().find(|n| !ocean_spec::id::is_dns_label(n)) {
            return Err(Error::Invalid {
                field: "namespaces".into(),
                reason: format!("'{bad}' is not a framework name (an RFC 1123 label)"),
            });
        }
        let pieces = node.tags().map(|(t, v)| format!("{t}.{v}")).collect();
        Ok(WatchFilter {
            node,
            kinds: bits,
            namespaces,
            pieces,
            grants: None,
        })
    }

    /// Narrows the filter to what a token may read
    /// ([`crate::service::Service::read_filter`]).
    pub fn with_grants(mut self, grants: Option<Arc<Grants>>) -> Self {
        self.grants = grants;
        self
    }

    fn may_read(&self, id: &str) -> bool {
        self.grants
            .as_ref()
            .is_none_or(|g| g.allows(id, Right::Read))
    }

    fn wants(&self, kind: usize) -> bool {
        self.kinds == 0 || self.kinds & (1 << kind) != 0
    }

    fn admits_job(&self, id: &str) -> bool {
        self.wants(0) && self.node.covers_id(id) && self.may_read(id)
    }

    fn admits_task(&self, job: &str) -> bool {
        self.wants(1) && self.node.covers_id(job) && self.may_read(job)
    }

    fn admits_agent(&self) -> bool {
        self.wants(2) && self.node.is_root()
    }

    fn admits_kv(&self, e: &KvEntry) -> bool {
        // The system's namespaces (`ocean.acl`: token hashes) are never
        // watched, but for alerts (`ocean.alerts` `firing/...`): their
        // writes are how firing and resolved alerts reach the event stream
        // (no raft command of their own). Frameworks' stores and alerts
        // belong to the root.
        let alert = e.namespace == crate::alerts::record::NAMESPACE
            && e.key.starts_with(crate::alerts::record::ALERT_PREFIX);
        self.wants(3)
            && (alert || !e.namespace.starts_with("ocean."))
            && self.may_read("")
            && self.node.is_root()
            && (self.namespaces.is_empty() || self.namespaces.contains(&e.namespace))
    }

    /// Whether `change` passes the filter.
    pub fn admits(&self, change: &Change) -> bool {
        match change {
            Change::JobPut(_) | Change::JobDeleted(_) => {
                tree_id(change).is_some_and(|id| self.admits_job(id))
            }
            Change::TaskPut(_) | Change::TaskRemoved(_) => {
                tree_id(change).is_some_and(|id| self.admits_task(id))
            }
            Change::AgentPut(_) => self.admits_agent(),
            Change::KvPut(e) | Change::KvDeleted(e) => self.admits_kv(e),
        }
    }
}

fn expand(queue: &mut VecDeque<WatchItem>, version: u64, changes: &Changes, filter: &WatchFilter) {
    let start = queue.len();
    let mut push = |c: &Change| {
        if filter.admits(c) {
            queue.push_back(WatchItem::Change {
                version,
                change: c.clone(),
                last: false,
            });
        }
    };
    if filter.pieces.is_empty() {
        changes.iter().for_each(push);
    } else {
        // Every piece must match, so the changes carrying the rarest one
        // hold every match: test only those.
        let candidates = filter
            .pieces
            .iter()
            .map(|p| changes.carrying(p))
            .min_by_key(|c| c.len())
            .unwrap_or(&[]);
        candidates.iter().for_each(|&i| push(&changes[i as usize]));
    }
    if queue.len() > start {
        if let Some(WatchItem::Change { last, .. }) = queue.back_mut() {
            *last = true;
        }
    }
}

/// Follows the state from `from` (exclusive; 0 = start with a snapshot),
/// delivering what `filter` admits.
pub fn watch(
    feed: Arc<Feed>,
    state: Arc<RwLock<ClusterState>>,
    from: u64,
    filter: WatchFilter,
) -> impl Stream<Item = WatchItem> + Send + 'static {
    futures::stream::unfold(
        (feed, state, filter, from, None, VecDeque::new()),
        |(feed, state, filter, mut have, mut live, mut queue)| async move {
            loop {
                if let Some(item) = queue.pop_front() {
                    return Some((item, (feed, state, filter, have, live, queue)));
                }
                let rx: &mut tokio::sync::broadcast::Receiver<FeedItem> = match &mut live {
                    Some(rx) => rx,
                    None => {
                        let sub = feed.subscribe(have, &state);
                        let backlog = match sub.start {
                            Start::Backlog(items) => items,
                            Start::Snapshot {
                                version,
                                mut jobs,
                                mut agents,
                                mut tasks,
                                mut kv,
                                backlog,
                            } => {
                                have = version;
                                jobs.retain(|j| filter.admits_job(&j.id));
                                tasks.retain(|t| filter.admits_task(&t.job_id));
                                agents.retain(|_| filter.admits_agent());
                                kv.retain(|e| filter.admits_kv(e));
                                queue.push_back(WatchItem::Snapshot {
                                    version,
                                    jobs,
                                    agents,
                                    tasks,
                                    kv,
                                });
                                backlog
                            }
                        };
                        for (v, c) in backlog {
                            have = v;
                            expand(&mut queue, v, &c, &filter);
                        }
                        live = Some(sub.live);
                        continue;
                    }
                };
                match rx.recv().await {
                    Ok(FeedItem::Changes(v, c)) if v > have => {
                        have = v;
                        expand(&mut queue, v, &c, &filter);
                    }
                    Ok(FeedItem::Changes(..)) => {}
                    Ok(FeedItem::Reset) => {
                        // Force a snapshot on resubscribe.
                        have = 0;
                        live = None;
                    }
                    Err(RecvError::Lagged(_)) => live = None,
                    Err(RecvError::Closed) => return None,
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::state::{put_job_command, put_kv_command};
    use crate::service::LocalKernel;
    use futures::StreamExt;

    fn job(pdl: &str) -> String {
        format!("cop.c_owt.o_pdl.{pdl}_service.s_job.j_cluster.c")
    }

    #[tokio::test]
    async fn a_filtered_watch_sees_only_its_node_and_kinds() {
        let k = LocalKernel::new();
        k.apply(put_job_command(job("demo"), b"{}".to_vec()));
        let filter = WatchFilter::parse("pdl.demo", &[], &[]).unwrap();
        let mut w = Box::pin(watch(k.feed().clone(), k.state().clone(), 0, filter));
        match w.next().await.unwrap() {
            WatchItem::Snapshot { jobs, kv, .. } => {
                assert_eq!(jobs.len(), 1);
                assert!(kv.is_empty());
            }
            other => panic!("expected a snapshot, got {other:?}"),
        }
        k.apply(put_job_command(job("demo2"), b"{}".to_vec()));
        k.apply(put_kv_command("elb", "k", b"1".to_vec(), None));
        k.apply(put_job_command(job("demo"), b"{\"x\":1}".to_vec()));
        match w.next().await.unwrap() {
            WatchItem::Change {
                version,
                change: Change::JobPut(j),
                last,
            } => {
                assert_eq!(
                    (version, j.id.as_str(), last),
                    (4, job("demo").as_str(), true)
                );
            }
            other => panic!("expected demo's job_put at version 4, got {other:?}"),
        }
        // Only framework keys of one namespace.
        let f = WatchFilter::parse("", &["kv".into()], &["elb".into()]).unwrap();
        let mut w = Box::pin(watch(k.feed().clone(), k.state().clone(), 1, f));
        match w.next().await.unwrap() {
            WatchItem::Change {
                change: Change::KvPut(e),
                version: 3,
                ..
            } => assert_eq!(e.key, "k"),
            other => panic!("expected the elb key, got {other:?}"),
        }
    }

    #[test]
    fn bad_filters_name_the_field() {
        for (node, kinds, ns, field) in [
            ("pdl", vec![], vec![], "node"),
            ("", vec!["jobs".to_string()], vec![], "kinds"),
            ("", vec![], vec!["El B".to_string()], "namespaces"),
        ] {
            match WatchFilter::parse(node, &kinds, &ns) {
                Err(Error::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("expected invalid {field}, got {other:?}"),
            }
        }
        assert_eq!(
            WatchFilter::parse("", &["job,task".into()], &[])
                .unwrap()
                .kinds,
            0b11
        );
    }
}
