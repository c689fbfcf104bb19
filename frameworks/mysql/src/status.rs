//! [`DatabaseStatus`]: what the operator last saw of a database (stored
//! at `status/<name>`, shown by `GET /v1/databases/{id}`, the CLI and the
//! dashboard). Pure: built from the members the operator observed.

use serde::{Deserialize, Serialize};

use crate::decide::{diverged, follows, Member};
use crate::framework::Topology;

/// One instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Its task.
    pub task: String,
    /// Its agent's host name.
    pub host: String,
    /// `ip:port`.
    pub addr: String,
    /// `primary`, `replica` (replicating from the primary), `diverged`
    /// (stopped on an error: needs a rebuild), `fenced` (writable but
    /// replaced: a former primary that woke up), `starting` (answers, not
    /// replicating yet), `rebuilding` (waiting for or receiving a seed)
    /// or `unreachable`.
    pub role: String,
    /// `@@gtid_current_pos`.
    #[serde(default)]
    pub gtid: String,
    /// `Seconds_Behind_Master` (replicas).
    #[serde(default)]
    pub lag_seconds: Option<u64>,
    /// The replication error, if any.
    #[serde(default)]
    pub last_error: String,
}

/// A database as observed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseStatus {
    /// `creating` (no primary yet), `ok` (a writable primary and every
    /// instance replicating), `degraded` (a writable primary, instances
    /// missing or diverged), `blocked` (the primary has no standby
    /// acknowledging: commits wait rather than replicate asynchronously)
    /// or `failing` (the primary does not answer).
    pub state: String,
    /// A sentence for people, when the state is not `ok`.
    #[serde(default)]
    pub message: String,
    /// The primary's task.
    #[serde(default)]
    pub primary: String,
    /// Failovers so far.
    #[serde(default)]
    pub epoch: u64,
    /// Instances answering.
    pub running: u32,
    /// Instances wanted.
    pub instances: u32,
    /// Standbys acknowledging to the primary.
    #[serde(default)]
    pub semi_sync_clients: u32,
    /// Commits waiting for an acknowledgement.
    #[serde(default)]
    pub waiting_commits: u32,
    /// Every instance, by task.
    pub nodes: Vec<NodeStatus>,
    /// When it was observed (ms since the epoch).
    pub observed_ms: u64,
    /// Each allowed job, its user and the hosts it is granted on (as the
    /// primary holds them, last time it answered).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<crate::grants::JobGrants>,
}

impl DatabaseStatus {
    /// The same status but for what moves all the time (positions, lag,
    /// the time): whether it is worth a write.
    pub fn shape(&self) -> DatabaseStatus {
        DatabaseStatus {
            observed_ms: 0,
            waiting_commits: 0,
            nodes: self
                .nodes
                .iter()
                .map(|n| NodeStatus {
                    gtid: String::new(),
                    lag_seconds: None,
                    ..n.clone()
                })
                .collect(),
            ..self.clone()
        }
    }
}

/// The status of a database of `instances` from its observed `members`.
pub fn status(
    instances: u32,
    topo: Option<&Topology>,
    members: &[Member],
    now_ms: u64,
) -> DatabaseStatus {
    let p = topo.and_then(|t| members.iter().find(|m| m.task == t.primary));
    let mut nodes: Vec<NodeStatus> = members
        .iter()
        .map(|m| {
            let mut n = NodeStatus {
                task: m.task.clone(),
                host: m.host.clone(),
                addr: m.addr(),
                role: "unreachable".into(),
                ..Default::default()
            };
            if let Some(o) = &m.obs {
                n.gtid = o.gtid_current_pos.clone();
                if let Some(r) = &o.replica {
                    n.lag_seconds = r.lag_seconds;
                    n.last_error = r.last_error.clone();
                }
                n.role = match p {
                    Some(p) if p.task == m.task && !o.read_only => "primary",
                    Some(p) if follows(m, p) => "replica",
                    Some(p) if diverged(m, p) => "diverged",
                    // Writable but not the primary: a former primary that
                    // woke up after it was replaced (its standbys are gone,
                    // so it commits nothing; DNS leaves it out).
                    Some(_) if !o.read_only => "fenced",
                    _ => "starting",
                }
                .into();
            }
            n
        })
        .collect();
    nodes.sort_by(|a, b| a.task.cmp(&b.task));
    let running = nodes.iter().filter(|n| n.role != "unreachable").count() as u32;
    let replicas = nodes.iter().filter(|n| n.role == "replica").count() as u32;
    let po = p.and_then(|p| p.obs.as_ref());
    let (state, message) = match (topo, po) {
        (None, _) => (
            "creating",
            "waiting for instances to choose a primary".to_string(),
        ),
        (Some(t), None) => ("failing", format!("primary {} does not answer", t.primary)),
        (Some(_), Some(o)) if o.read_only => ("creating", "promoting the primary".to_string()),
        (Some(_), Some(o)) if instances > 1 && o.semi_sync_clients == 0 => (
            "blocked",
            "no standby acknowledges: commits wait (never asynchronous)".to_string(),
        ),
        _ if replicas + 1 >= instances => ("ok", String::new()),
        _ => (
            "degraded",
            format!(
                "{} of {} standbys replicating",
                replicas,
                instances.saturating_sub(1)
            ),
        ),
    };
    DatabaseStatus {
        state: state.into(),
        message,
        primary: topo.map(|t| t.primary.clone()).unwrap_or_default(),
        epoch: topo.map_or(0, |t| t.epoch),
        running,
        instances,
        semi_sync_clients: po.map_or(0, |o| o.semi_sync_clients),
        waiting_commits: po.map_or(0, |o| o.semi_sync_waiting),
        nodes,
        observed_ms: now_ms,
        grants: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::{Observed, ReplicaObs};

    fn m(task: &str, port: u16, obs: Option<Observed>) -> Member {
        Member {
            task: task.into(),
            host: "h".into(),
            ip: "10.0.0.1".into(),
            port,
            seed_port: 0,
            obs,
        }
    }

    #[test]
    fn roles_and_state_follow_what_was_observed() {
        let topo = Topology {
            primary: "a".into(),
            ..Default::default()
        };
        let p = Observed {
            semi_sync_clients: 1,
            ..Default::default()
        };
        let r = Observed {
            read_only: true,
            replica: Some(ReplicaObs {
                master_host: "10.0.0.1".into(),
                master_port: 1,
                io_running: true,
                sql_running: true,
                ..Default::default()
            }),
            ..Default::default()
        };
        let ms = vec![
            m("a", 1, Some(p.clone())),
            m("b", 2, Some(r)),
            m("c", 3, None),
        ];
        let s = status(3, Some(&topo), &ms, 9);
        assert_eq!(s.state, "degraded");
        let roles: Vec<&str> = s.nodes.iter().map(|n| n.role.as_str()).collect();
        assert_eq!(roles, ["primary", "replica", "unreachable"]);
        assert_eq!(status(2, Some(&topo), &ms, 9).state, "ok");
        assert_eq!(status(2, None, &ms, 9).state, "creating");
        assert_eq!(status(2, Some(&topo), &ms[1..], 9).state, "failing");
        let lonely = vec![m("a", 1, Some(Observed::default()))];
        assert_eq!(status(3, Some(&topo), &lonely, 9).state, "blocked");
    }
}
