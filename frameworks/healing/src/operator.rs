//! [`Operator`]: the shell around the pure machine. It runs beside the
//! framework's runner and acts only while that runner's instance (same
//! holder) holds the `healing` lease.
//!
//! ```text
//!  every round: config, tickets (kv) + agents (host checks) + tasks
//!     ─► observations ─► guard::storm / guard::allowed ─► machine::step per host
//!     ─► ticket written (compare-and-set) ─► then its commands: agent status,
//!        repair job (create only), repair job deleted
//!     ─► alert key written when a storm starts or ends
//! ```
//!
//! A ticket is written before its commands run and the commands are
//! level-triggered, so an instance that takes over mid-repair (a leader
//! change) repeats nothing: it finds the ticket where it stood and the
//! repair job under its name.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use ocean_client::api::{
    AgentInfo, DeleteJobResponse, JobRef, KvKeyRequest, KvListRequest, KvPutRequest, LeaseRef,
    ListAgentsRequest, ListTasksRequest, PutJobRequest, SetAgentStatusRequest, Task,
};
use ocean_client::{Client, Error};
use ocean_framework::runner::{now_ms, LEASE_NAME};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::config::HealingConfig;
use crate::guard::{self, TasksByJob};
use crate::judge;
use crate::machine::{step, Checks, Command, Observation, RepairSeen};
use crate::repair::{is_repair_job, repair_spec};
use crate::ticket::{Ticket, TICKETS};
use crate::NAME;

/// The key of the settings.
pub const CONFIG_KEY: &str = "config";
/// The key of the storm alert.
pub const ALERT_KEY: &str = "alert";

/// The storm alert as stored (and shown by `GET /v1/healing`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub active: bool,
    pub message: String,
    pub since_ms: u64,
    /// The ill hosts (agent ids) when it was raised.
    pub ill_hosts: Vec<String>,
}

/// How often the operator looks.
#[derive(Debug, Clone)]
pub struct OperatorOptions {
    /// The lease holder this operator goes with (the runner's).
    pub holder: String,
    /// A round this often.
    pub every: Duration,
}

impl OperatorOptions {
    /// A round every 500 ms for `holder`.
    pub fn new(holder: impl Into<String>) -> Self {
        OperatorOptions {
            holder: holder.into(),
            every: Duration::from_millis(500),
        }
    }
}

/// The operator (see the module docs).
#[derive(Debug)]
pub struct Operator {
    client: Arc<dyn Client>,
    opts: OperatorOptions,
}

const ENDED: [&str; 4] = ["FINISHED", "FAILED", "KILLED", "LOST"];

fn is_live(t: &Task) -> bool {
    !ENDED.contains(&t.state.as_str())
}

/// How the master shows a host. `failing_elsewhere`: the jobs whose
/// launches fail on several hosts ([`judge::jobs_failing_on_several_hosts`]).
pub fn observe(
    a: &AgentInfo,
    tasks: &[Task],
    repair_job: Option<&str>,
    cfg: &HealingConfig,
    now: u64,
    failing_elsewhere: &BTreeSet<String>,
) -> Option<Observation> {
    let agent = a.agent.as_ref()?;
    let node = agent
        .attributes
        .get(&cfg.node_attribute)
        .map(|v| format!("{}.{v}", cfg.node_attribute))
        .unwrap_or_else(|| "-".into());
    let checks = match &a.host_checks {
        Some(h) if judge::fresh(a, cfg, now) => {
            let failing: Vec<String> = h
                .checks
                .iter()
                .filter(|c| !cfg.ignores(&node, &c.name))
                .filter_map(|c| judge::judge(c, &node, cfg, failing_elsewhere).err())
                .collect();
            if failing.is_empty() {
                Checks::Pass {
                    received_ms: h.received_ms,
                }
            } else {
                Checks::Fail {
                    received_ms: h.received_ms,
                    failing,
                }
            }
        }
        _ => Checks::Unknown,
    };
    let live_tasks = tasks
        .iter()
        .filter(|t| t.agent_id == agent.id && is_live(t) && !is_repair_job(&t.job_id))
        .count();
    let repair = match repair_job {
        None => RepairSeen::Waiting,
        Some(job) => repair_seen(tasks.iter().filter(|t| t.job_id == job)),
    };
    Some(Observation {
        agent_id: agent.id.clone(),
        hostname: agent.hostname.clone(),
        node,
        status: a.status.clone(),
        checks,
        live_tasks,
        repair,
        data_dir: a
            .host_checks
            .as_ref()
            .map(|h| h.data_dir.clone())
            .unwrap_or_default(),
    })
}

/// The outcome of a repair job's tasks.
pub fn repair_seen<'a>(tasks: impl Iterator<Item = &'a Task>) -> RepairSeen {
    let mut seen = RepairSeen::Waiting;
    for t in tasks {
        match t.state.as_str() {
            "FINISHED" if t.exit_code.unwrap_or(0) == 0 => {
                return RepairSeen::Succeeded {
                    ended_ms: t.ended_ms,
                }
            }
            s if ENDED.contains(&s) => {
                let code = t
                    .exit_code
                    .map(|c| format!(" exit {c}"))
                    .unwrap_or_default();
                seen = RepairSeen::Failed {
                    why: format!("task {} ended {s}{code} {} {}", t.id, t.reason, t.message)
                        .trim_end()
                        .to_string(),
                };
            }
            _ if seen == RepairSeen::Waiting => seen = RepairSeen::Running,
            _ => {}
        }
    }
    seen
}

impl Operator {
    /// An operator acting through `client`.
    pub fn new(client: Arc<dyn Client>, opts: OperatorOptions) -> Self {
        Operator { client, opts }
    }

    async fn leading(&self) -> bool {
        match self
            .client
            .lease_get(LeaseRef {
                namespace: NAME.into(),
                name: LEASE_NAME.into(),
                read: None,
            })
            .await
        {
            Ok(l) => l.holder == self.opts.holder && l.expires_ms > now_ms(),
            Err(e) => {
                debug!(error = %e, "healing operator: lease not readable");
                false
            }
        }
    }

    /// Rounds until `shutdown`, acting while this instance holds the lease.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        info!(holder = %self.opts.holder, "healing operator started");
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.opts.every) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
            if !self.leading().await {
                continue;
            }
            if let Err(error) = self.round(now_ms()).await {
                warn!(%error, "healing round failed");
            }
        }
    }

    /// The settings: the `config` key, else the defaults. An invalid key
    /// stops healing (it says why) rather than act on guesses.
    pub async fn config(&self) -> Result<HealingConfig, String> {
        match self
            .client
            .kv_get(KvKeyRequest {
                namespace: NAME.into(),
                key: CONFIG_KEY.into(),
                ..Default::default()
            })
            .await
        {
            Ok(e) => HealingConfig::parse(&e.value).map_err(|e| format!("config {e}")),
            Err(Error::NotFound(_)) => Ok(HealingConfig::default()),
            Err(e) => Err(format!("cannot read the config: {e}")),
        }
    }

    /// Every ticket with its revision.
    pub async fn tickets(&self) -> Result<Vec<(Ticket, u64)>, Error> {
        let list = self
            .client
            .kv_list(KvListRequest {
                namespace: NAME.into(),
                prefix: TICKETS.into(),
                read: None,
            })
            .await?;
        Ok(list
            .entries
            .into_iter()
            .filter_map(|e| match serde_json::from_slice::<Ticket>(&e.value) {
                Ok(t) => Some((t, e.revision)),
                Err(error) => {
                    warn!(key = %e.key, %error, "not a ticket; skipped");
                    None
                }
            })
            .collect())
    }

    /// One round (see the module docs); `now` is the framework's clock.
    pub async fn round(&self, now: u64) -> Result<(), String> {
        let cfg = self.config().await?;
        let tickets = self.tickets().await.map_err(|e| e.to_string())?;
        let agents = self
            .client
            .list_agents(ListAgentsRequest::default())
            .await
            .map_err(|e| e.to_string())?
            .agents;
        // Live tasks only (the cost of a round does not grow with the
        // ended tasks kept), plus every task of the repairs under way.
        let mut tasks = self
            .client
            .list_tasks(ListTasksRequest {
                ended: Some(false),
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?
            .tasks;
        let mut open: BTreeMap<String, (Ticket, u64)> = BTreeMap::new();
        for (t, rev) in &tickets {
            if t.is_open()
                && open
                    .get(&t.host)
                    .is_none_or(|(o, _)| o.opened_ms < t.opened_ms)
            {
                open.insert(t.host.clone(), (t.clone(), *rev));
            }
        }
        for job in open
            .values()
            .filter_map(|(t, _)| t.current_repair().and_then(|r| r.job_id.clone()))
        {
            let of_job = self
                .client
                .list_tasks(ListTasksRequest {
                    job: job.clone(),
                    ..Default::default()
                })
                .await;
            match of_job {
                Ok(r) => {
                    tasks.retain(|t| t.job_id != job);
                    tasks.extend(r.tasks);
                }
                // Not created yet.
                Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        let failing_elsewhere = judge::jobs_failing_on_several_hosts(&agents, &cfg, now);
        let hosts: Vec<Observation> = agents
            .iter()
            .filter_map(|a| {
                let id = a.agent.as_ref().map(|x| x.id.as_str()).unwrap_or("");
                let job = open
                    .get(id)
                    .and_then(|(t, _)| t.current_repair())
                    .and_then(|r| r.job_id.clone());
                observe(a, &tasks, job.as_deref(), &cfg, now, &failing_elsewhere)
            })
            .collect();
        let mut by_job: TasksByJob = BTreeMap::new();
        for t in tasks
            .iter()
            .filter(|t| is_live(t) && !is_repair_job(&t.job_id))
        {
            by_job
                .entry(t.job_id.clone())
                .or_default()
                .push(t.agent_id.clone());
        }
        let storm = guard::storm(&hosts, &cfg);
        self.write_alert(&storm, &hosts, now).await;
        let mut open_tickets: BTreeMap<String, Ticket> = open
            .iter()
            .map(|(k, (t, _))| (k.clone(), t.clone()))
            .collect();
        for obs in &hosts {
            let current = open.get(&obs.agent_id);
            let allowed = guard::allowed(obs, &hosts, &open_tickets, &by_job, &storm, &cfg);
            let (new, cmds) = step(current.map(|(t, _)| t), obs, &allowed, &cfg, now);
            if let Some(t) = new {
                let rev = current.map_or(0, |(_, r)| *r);
                if let Err(e) = self.put_ticket(&t, rev).await {
                    warn!(ticket = %t.id, error = %e, "ticket not written; its commands wait for the next round");
                    continue;
                }
                info!(ticket = %t.id, host = %t.hostname, state = t.state.as_str(), "ticket");
                // Later hosts of this round see this one's new state.
                if t.is_open() {
                    open_tickets.insert(t.host.clone(), t);
                } else {
                    open_tickets.remove(&t.host);
                }
            }
            for c in cmds {
                self.execute(c).await;
            }
        }
        Ok(())
    }

    async fn put_ticket(&self, t: &Ticket, revision: u64) -> Result<(), Error> {
        self.client
            .kv_put(KvPutRequest {
                namespace: NAME.into(),
                key: t.key(),
                value: serde_json::to_vec(t).unwrap_or_default(),
                expected_revision: Some(revision),
            })
            .await
            .map(|_| ())
    }

    async fn execute(&self, c: Command) {
        let result = match &c {
            Command::SetStatus {
                agent,
                status,
                message,
            } => self
                .client
                .set_agent_status(SetAgentStatusRequest {
                    id: agent.clone(),
                    status: (*status).to_string(),
                    message: message.clone(),
                })
                .await
                .map(|_| ()),
            Command::StartRepair {
                job_id,
                hostname,
                action,
                data_dir,
            } => match self
                .client
                .put_job(PutJobRequest {
                    spec: repair_spec(job_id, hostname, action, data_dir),
                    format: "json".into(),
                    expected_spec_version: Some(0),
                })
                .await
            {
                // Created by an earlier round or instance: nothing to do.
                Err(Error::VersionConflict { .. }) => Ok(()),
                other => other.map(|_| ()),
            },
            Command::DeleteRepair { job_id } => self.delete_job(job_id).await.map(|_| ()),
        };
        match result {
            Ok(()) => debug!(command = ?c, "done"),
            Err(error) => warn!(command = ?c, %error, "healing command failed; retried next round"),
        }
    }

    async fn delete_job(&self, id: &str) -> Result<Option<DeleteJobResponse>, Error> {
        match self
            .client
            .delete_job(JobRef {
                id: id.into(),
                ..Default::default()
            })
            .await
        {
            Ok(r) => Ok(Some(r)),
            Err(Error::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn write_alert(&self, storm: &Option<String>, hosts: &[Observation], now: u64) {
        let current = self
            .client
            .kv_get(KvKeyRequest {
                namespace: NAME.into(),
                key: ALERT_KEY.into(),
                ..Default::default()
            })
            .await
            .ok()
            .and_then(|e| {
                serde_json::from_slice::<Alert>(&e.value)
                    .ok()
                    .map(|a| (a, e.revision))
            });
        let active = storm.is_some();
        let (was_active, rev) = current.as_ref().map_or((false, 0), |(a, r)| (a.active, *r));
        let now_ill = ill(hosts);
        let grew = active
            && current
                .as_ref()
                .is_some_and(|(a, _)| now_ill.iter().any(|h| !a.ill_hosts.contains(h)));
        if active == was_active && !grew {
            return;
        }
        let since_ms = match &current {
            Some((a, _)) if grew => a.since_ms,
            _ => now,
        };
        let alert = Alert {
            active,
            message: storm
                .clone()
                .unwrap_or_else(|| "the storm is over: healing acts again".into()),
            since_ms,
            ill_hosts: now_ill,
        };
        if active {
            warn!(message = %alert.message, "healing storm alert raised");
        } else {
            info!("healing storm alert cleared");
        }
        let put = self
            .client
            .kv_put(KvPutRequest {
                namespace: NAME.into(),
                key: ALERT_KEY.into(),
                value: serde_json::to_vec(&alert).unwrap_or_default(),
                expected_revision: Some(rev),
            })
            .await;
        if let Err(error) = put {
            warn!(%error, "cannot write the healing alert");
        }
    }
}

fn ill(hosts: &[Observation]) -> Vec<String> {
    hosts
        .iter()
        .filter(|h| matches!(h.checks, Checks::Fail { .. }))
        .map(|h| h.agent_id.clone())
        .collect()
}
