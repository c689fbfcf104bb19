//! Tasks and agents as reads: filtered lists and single records, with the
//! version they reflect.

use std::sync::Arc;

use ocean_proto::internal::{Agent, Task};

use super::acl::Right;
use super::{invalid, Kernel, ReadOptions, Service};
use crate::error::{Error, Result};
use crate::kernel::state::{is_terminal, STATES};

/// Which tasks a list wants.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub job: Option<String>,
    pub agent: Option<String>,
    /// One of [`STATES`].
    pub state: Option<String>,
    /// Include ended tasks (default true).
    pub ended: Option<bool>,
    /// A tag query over the job's and the agent's tags (`service::tags`).
    pub q: Option<String>,
}

/// What the leader knows of an agent's stream (nothing on a follower).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentLiveness {
    pub connected: bool,
    /// Milliseconds since its last message (never connected: none).
    pub last_heartbeat_ms: Option<u64>,
    pub unreachable: bool,
}

impl<K: Kernel> Service<K> {
    /// Tasks that pass `filter`, at a version.
    pub async fn list_tasks(
        &self,
        filter: &TaskFilter,
        opts: ReadOptions,
    ) -> Result<(u64, Vec<Arc<Task>>)> {
        if let Some(s) = &filter.state {
            if !STATES.contains(&s.as_str()) {
                return Err(invalid(
                    "state",
                    format!("'{s}' is not one of {}", STATES.join(", ")),
                ));
            }
        }
        match &filter.job {
            Some(job) => self.authorize(job, Right::Read)?,
            None => self.authenticated()?,
        }
        let grants = self.read_filter();
        let query = super::tags::parse_query(filter.q.as_deref())?;
        self.kernel.wait_read(opts).await?;
        Ok(self.kernel.read(|st| {
            let keep = |t: &Task| {
                grants
                    .as_ref()
                    .is_none_or(|g| g.allows(&t.job_id, Right::Read))
                    && filter.agent.as_ref().is_none_or(|a| &t.agent_id == a)
                    && filter.state.as_ref().is_none_or(|s| &t.state == s)
                    && (filter.ended.unwrap_or(true) || !is_terminal(&t.state))
                    && query.as_ref().is_none_or(|q| {
                        let agent = st.agents.get(&t.agent_id).map(|a| a.as_ref());
                        super::tags::task_matches(q, t, agent)
                    })
            };
            let tasks = match &filter.job {
                Some(job) => st.tasks_of(job).filter(|t| keep(t)).cloned().collect(),
                None => st.tasks.values().filter(|t| keep(t)).cloned().collect(),
            };
            (st.version, tasks)
        }))
    }

    /// One task.
    pub async fn get_task(&self, id: &str, opts: ReadOptions) -> Result<(u64, Arc<Task>)> {
        // A task id is its job's id and a suffix: the job's node covers it.
        self.authorize(id, Right::Read)?;
        self.kernel.wait_read(opts).await?;
        self.kernel
            .read(|st| st.tasks.get(id).map(|t| (st.version, t.clone())))
            .ok_or_else(|| Error::NotFound {
                kind: "task",
                id: id.to_string(),
            })
    }

    /// Every agent with the leader's knowledge of it.
    pub async fn list_agents(
        &self,
        opts: ReadOptions,
    ) -> Result<(u64, Vec<(Arc<Agent>, Option<AgentLiveness>)>)> {
        self.select_agents(None, opts).await
    }

    /// The agents a tag query `q` selects (none: every agent), with the
    /// leader's knowledge of each.
    pub async fn select_agents(
        &self,
        q: Option<&str>,
        opts: ReadOptions,
    ) -> Result<(u64, Vec<(Arc<Agent>, Option<AgentLiveness>)>)> {
        self.authenticated()?;
        let query = super::tags::parse_query(q)?;
        self.kernel.wait_read(opts).await?;
        let (version, agents) = self.kernel.read(|st| {
            let agents = st
                .agents
                .values()
                .filter(|a| {
                    query
                        .as_ref()
                        .is_none_or(|q| super::tags::agent_matches(q, a))
                })
                .cloned()
                .collect::<Vec<_>>();
            (st.version, agents)
        });
        let list = agents
            .into_iter()
            .map(|a| {
                let l = self.kernel.liveness(&a.id);
                (a, l)
            })
            .collect();
        Ok((version, list))
    }

    /// One agent with the leader's knowledge of it.
    pub async fn get_agent(
        &self,
        id: &str,
        opts: ReadOptions,
    ) -> Result<(u64, Arc<Agent>, Option<AgentLiveness>)> {
        self.authenticated()?;
        self.kernel.wait_read(opts).await?;
        let found = self
            .kernel
            .read(|st| st.agents.get(id).map(|a| (st.version, a.clone())));
        match found {
            Some((v, a)) => Ok((v, a, self.kernel.liveness(id))),
            None => Err(Error::NotFound {
                kind: "agent",
                id: id.to_string(),
            }),
        }
    }
}
