//! Masters: membership changes, validated here. Only the real master has
//! members, so these are operations of `Service<Master>`.

use ocean_proto::internal::Member;

use super::{invalid, Service};
use crate::error::{Error, Result};
use crate::kernel::node::MemberChange;
use crate::master::Master;

impl Service<Master> {
    /// Adds a master; start it with `--join`. Returns the raft index of the
    /// change.
    pub async fn add_member(&self, id: u64, grpc_addr: &str, http_addr: &str) -> Result<u64> {
        self.authorize("", super::acl::Right::Admin)?;
        if id == 0 {
            return Err(invalid("id", "must be a positive integer"));
        }
        if !grpc_addr.contains(':') {
            return Err(invalid("grpc_addr", "must be HOST:PORT"));
        }
        if !http_addr.is_empty() && !http_addr.contains(':') {
            return Err(invalid("http_addr", "must be HOST:PORT"));
        }
        let m = self.kernel();
        if m.status().voters.contains(&id) {
            return Err(Error::Conflict(format!("master {id} is already a member")));
        }
        m.change_members(MemberChange::Add(Member {
            id,
            grpc_addr: grpc_addr.to_string(),
            http_addr: http_addr.to_string(),
        }))
        .await
    }

    /// Removes a master.
    pub async fn remove_member(&self, id: u64) -> Result<u64> {
        self.authorize("", super::acl::Right::Admin)?;
        let m = self.kernel();
        if !m.status().voters.contains(&id) {
            return Err(Error::NotFound {
                kind: "master",
                id: id.to_string(),
            });
        }
        m.change_members(MemberChange::Remove(id)).await
    }
}

/// A master as `GET /v1/members` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct MemberView {
    pub id: u64,
    pub grpc_addr: String,
    pub http_addr: String,
    pub voter: bool,
}

/// A master as `GET /v1/status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct MemberStatusView {
    pub id: u64,
    pub grpc_addr: String,
    pub http_addr: String,
    pub voter: bool,
    pub leader: bool,
    pub healthy: bool,
    pub match_index: Option<u64>,
    pub last_contact_ms: Option<u64>,
}

/// This master's raft status (`GET /v1/status`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct StatusView {
    pub id: u64,
    pub role: &'static str,
    pub term: u64,
    pub leader: Option<u64>,
    pub commit_index: u64,
    pub applied_index: u64,
    pub first_index: u64,
    pub version: u64,
    pub jobs: usize,
    pub removed: bool,
    pub members: Vec<MemberStatusView>,
}

/// The leader and its addresses (`GET /v1/leader`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct LeaderView {
    pub id: u64,
    pub grpc_addr: String,
    pub http_addr: String,
    pub term: u64,
}

impl Service<Master> {
    /// The masters and whether each votes.
    pub fn members(&self) -> Vec<MemberView> {
        let m = self.kernel();
        let s = m.status();
        m.read(|st| {
            st.members
                .values()
                .map(|mem| MemberView {
                    id: mem.id,
                    grpc_addr: mem.grpc_addr.clone(),
                    http_addr: mem.http_addr.clone(),
                    voter: s.voters.contains(&mem.id),
                })
                .collect()
        })
    }

    /// This master's raft status and its view of the others' health.
    pub fn status(&self) -> StatusView {
        let m = self.kernel();
        let s = m.status();
        let (members, jobs) = m.read(|st| {
            let members = st
                .members
                .values()
                .map(|mem| {
                    let progress = s.progress.iter().find(|p| p.id == mem.id);
                    let since = if mem.id == m.id() {
                        Some(0)
                    } else {
                        m.peer_since_ok(mem.id)
                    };
                    let healthy = match progress {
                        Some(p) => p.recent_active,
                        None => since.is_some_and(|ms| ms < 2_000) || mem.id == m.id(),
                    };
                    MemberStatusView {
                        id: mem.id,
                        grpc_addr: mem.grpc_addr.clone(),
                        http_addr: mem.http_addr.clone(),
                        voter: s.voters.contains(&mem.id),
                        leader: mem.id == s.leader,
                        healthy,
                        match_index: progress.map(|p| p.matched),
                        last_contact_ms: since,
                    }
                })
                .collect();
            (members, st.jobs.len())
        });
        StatusView {
            id: s.id,
            role: s.role,
            term: s.term,
            leader: (s.leader != 0).then_some(s.leader),
            commit_index: s.commit_index,
            applied_index: s.applied_index,
            first_index: s.first_index,
            version: s.version,
            jobs,
            removed: s.removed,
            members,
        }
    }

    /// The leader, or why none is known.
    pub fn leader(&self) -> Result<LeaderView> {
        let m = self.kernel();
        let term = m.status().term;
        match m.leader() {
            Some(l) => Ok(LeaderView {
                id: l.id,
                grpc_addr: l.grpc_addr,
                http_addr: l.http_addr,
                term,
            }),
            None => Err(Error::NoLeader(format!(
                "master {} knows no leader (term {term}): an election is in progress or a majority is unreachable",
                m.id()
            ))),
        }
    }

    /// A task's log, streamed from its agent (which keeps the sandbox).
    pub async fn task_logs(
        &self,
        id: &str,
        stream: &str,
        tail: Option<u64>,
        follow: bool,
    ) -> Result<reqwest::Response> {
        if stream != "stdout" && stream != "stderr" {
            return Err(invalid(
                "stream",
                format!("'{stream}' is not one of stdout, stderr"),
            ));
        }
        self.authorize(id, super::acl::Right::Read)?;
        let m = self.kernel();
        let addr = m.read(|st| {
            st.tasks
                .get(id)
                .map(|t| st.agents.get(&t.agent_id).map(|a| a.http_addr.clone()))
        });
        let addr = match addr {
            None => {
                return Err(Error::NotFound {
                    kind: "task",
                    id: id.to_string(),
                })
            }
            Some(Some(a)) if !a.is_empty() => a,
            Some(_) => {
                return Err(Error::Agent(format!(
                    "the agent of task {id} is unknown or serves no logs"
                )))
            }
        };
        let mut url = format!("http://{addr}/v1/tasks/{id}/logs?stream={stream}");
        if let Some(t) = tail {
            url.push_str(&format!("&tail={t}"));
        }
        if follow {
            url.push_str("&follow=true");
        }
        m.agent_http()
            .get(&url)
            .send()
            .await
            .map_err(|e| Error::Agent(format!("agent at {addr} for task {id}: {e}")))
    }
}
