//! [`Operator`]: forms and heals each database's replication. It runs
//! beside the framework's [`ocean_framework::Runner`] and acts only while
//! that runner's instance (same holder) holds the framework's lease.
//!
//! ```text
//!  watch (jobs, tasks, mysql keys) ──► View ──► members per database (running tasks)
//!        task ended ─► round now             │ MysqlAdmin::observe (parallel, bounded)
//!        else every `every`                  ▼
//!     no primary ─► bootstrap() ─► topology/<db> (CAS) ─► Promote
//!     primary answers ─► steady() ─► commands
//!     primary lost (task ended, or unanswered for `hung_after`)
//!        ─► failover_step() until Promote ─► topology/<db> (CAS, epoch+1) ─► Promote, Follow
//!     switchover/<db> requested (primary answers) ─► switchover::step() until Promote
//!        ─► topology/<db> (CAS, epoch+1) ─► Promote, Follow ─► switchover/<db> done | failed
//!     rebuilds (primary answers) ─► seeds/<db>/<task> for instances waiting for a seed,
//!        Condemn for replicas broken for good or asked for (operator_seed.rs)
//!     backups/<db>/<id> running, its batch task ended ─► done | failed (operator_backup.rs)
//!     schedule/<db>, a backup due ─► backups/<db>/<id> (pruning those past retention)
//!     allowed jobs (primary writable) ─► job accounts on the primary follow their
//!        tasks' hosts (operator_grants.rs)
//!     status() ─► status/<db>
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use ocean_client::api::KvPutRequest;
use ocean_client::Client;
use ocean_framework::failover::{self, FailoverRecord};
use ocean_framework::runner::now_ms;
use ocean_framework::View;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::admin::{AdminCmd, MysqlAdmin, Secrets};
use crate::decide::{bootstrap, failover_step, steady, FailoverStep, Member};
use crate::framework::{databases, topology, DatabaseRecord, Topology, NAME, STATUSES, TOPOLOGIES};
use crate::jobs::job_id;
use crate::status::{status, DatabaseStatus};

/// How often the operator looks, and how patient it is.
#[derive(Debug, Clone)]
pub struct OperatorOptions {
    /// The lease holder this operator goes with (the runner's).
    pub holder: String,
    /// A round at least this often.
    pub every: Duration,
    /// How often a status whose shape did not change is written again.
    pub status_every: Duration,
    /// A primary whose task runs but that has not answered for this long
    /// is hung: it is fenced and replaced.
    pub hung_after: Duration,
    /// How long one failover may take before it gives up (and is tried
    /// again next round).
    pub failover_budget: Duration,
    /// How long a switchover may wait for its target to catch up before
    /// it is abandoned (the old primary is made writable again).
    pub switchover_budget: Duration,
}

impl OperatorOptions {
    /// Defaults for `holder`: a round every 200 ms, a primary hung after
    /// 600 ms without an answer.
    pub fn new(holder: impl Into<String>) -> Self {
        OperatorOptions {
            holder: holder.into(),
            every: Duration::from_millis(200),
            status_every: Duration::from_secs(2),
            hung_after: Duration::from_millis(600),
            failover_budget: Duration::from_secs(10),
            switchover_budget: Duration::from_secs(10),
        }
    }
}

/// The operator (see the module docs).
#[derive(Debug)]
pub struct Operator {
    client: Arc<dyn Client>,
    admin: Arc<dyn MysqlAdmin>,
    opts: OperatorOptions,
    written: BTreeMap<String, (DatabaseStatus, Instant)>,
    /// Since when each task has not answered.
    silent_since: BTreeMap<String, Instant>,
    /// Topologies this operator wrote, with their revisions: newer than
    /// the view until the watch brings them.
    topos: BTreeMap<String, (Topology, u64)>,
    /// Ids of the switchover, rebuild and backup requests this operator
    /// acted on: the view may still show them as pending until the watch
    /// brings the outcome it wrote.
    handled: BTreeSet<String>,
    /// Seeds this operator started, by target task: newer than the view
    /// until the watch brings them.
    seeding: BTreeMap<String, Instant>,
    /// Since when (ms) each replica has been broken for good.
    broken_since: BTreeMap<String, u64>,
    /// The newest scheduled backup this operator started, per database
    /// (ms): newer than the view until the watch brings it.
    scheduled: BTreeMap<String, u64>,
    /// The job accounts each database's primary held when last seen.
    grants_seen: BTreeMap<String, Vec<crate::grants::JobGrants>>,
}

/// The running tasks of a database's job as members (not yet observed).
pub fn members_of(view: &View, rec: &DatabaseRecord) -> Vec<Member> {
    let job = job_id(&rec.spec);
    view.tasks_of(&job)
        .filter(|t| t.state == "RUNNING" && !t.kill_requested && !t.ports.is_empty())
        .map(|t| Member {
            task: t.id.clone(),
            host: t.host.clone(),
            ip: t.address.clone(),
            port: t.ports[0].port as u16,
            seed_port: t.ports.get(1).map_or(0, |p| p.port as u16),
            obs: None,
        })
        .collect()
}

async fn observe_all(admin: &dyn MysqlAdmin, members: &mut [Member], secrets: &Secrets) {
    let seen = futures::future::join_all(members.iter().map(|m| {
        let addr = m.addr();
        async move {
            match admin.observe(&addr, secrets).await {
                Ok(o) => Some(o),
                Err(e) => {
                    debug!(error = %e, "mariadb instance not observed");
                    None
                }
            }
        }
    }))
    .await;
    for (m, o) in members.iter_mut().zip(seen) {
        m.obs = o;
    }
}

async fn execute_all(admin: &dyn MysqlAdmin, db: &str, cmds: &[AdminCmd], secrets: &Secrets) {
    let done = futures::future::join_all(cmds.iter().map(|c| admin.execute(c, secrets))).await;
    for (cmd, r) in cmds.iter().zip(done) {
        match r {
            Ok(()) => info!(database = %db, ?cmd, "mariadb admin"),
            Err(e) => warn!(database = %db, ?cmd, error = %e, "mariadb admin failed"),
        }
    }
}

impl Operator {
    /// An operator acting through `client` on the masters and `admin` on
    /// the instances.
    pub fn new(client: Arc<dyn Client>, admin: Arc<dyn MysqlAdmin>, opts: OperatorOptions) -> Self {
        Operator {
            client,
            admin,
            opts,
            written: BTreeMap::new(),
            silent_since: BTreeMap::new(),
            topos: BTreeMap::new(),
            handled: BTreeSet::new(),
            seeding: BTreeMap::new(),
            broken_since: BTreeMap::new(),
            scheduled: BTreeMap::new(),
            grants_seen: BTreeMap::new(),
        }
    }

    async fn leading(&self) -> bool {
        ocean_framework::holds_lease(self.client.as_ref(), NAME, &self.opts.holder).await
    }

    /// The newest topology of `name`: the view's or the one this operator
    /// wrote after it.
    /// Records a primary change of `rec` from `old_primary` to `now`'s
    /// (the masters' `failover` alert rules read it); a failed write is
    /// logged, never fatal: the change itself has happened.
    async fn record_failover(
        &self,
        rec: &DatabaseRecord,
        old_primary: &str,
        now: &Topology,
        reason: &str,
    ) {
        let fo = FailoverRecord {
            kind: "database".into(),
            name: rec.spec.name.clone(),
            job: job_id(&rec.spec),
            from: old_primary.to_string(),
            to: now.primary.clone(),
            reason: reason.into(),
            at_ms: now.since_ms,
            count: 0,
        };
        if let Err(e) = failover::record(self.client.as_ref(), NAME, fo).await {
            warn!(database = %rec.spec.name, reason, error = %e, "failover record not written");
        }
    }

    fn topology(&self, view: &View, name: &str) -> (Option<Topology>, u64) {
        let (t, rev) = topology(view, name);
        match self.topos.get(name) {
            Some((mine, mine_rev)) if *mine_rev > rev => (Some(mine.clone()), *mine_rev),
            _ => (t, rev),
        }
    }

    async fn put_topology(&mut self, name: &str, t: Topology, expected: u64) -> bool {
        let put = self
            .client
            .kv_put(KvPutRequest {
                namespace: NAME.into(),
                key: format!("{TOPOLOGIES}{name}"),
                value: serde_json::to_vec(&t).unwrap_or_default(),
                expected_revision: Some(expected),
            })
            .await;
        match put {
            Ok(w) => {
                info!(database = %name, primary = %t.primary, epoch = t.epoch, "primary recorded");
                self.topos.insert(name.to_string(), (t, w.version));
                true
            }
            Err(e) => {
                warn!(database = %name, error = %e, "primary not recorded");
                false
            }
        }
    }

    /// One round over every database of `view`.
    pub async fn round(&mut self, view: &View) {
        let dbs = databases(view);
        self.topos
            .retain(|n, _| dbs.iter().any(|(r, _)| &r.spec.name == n));
        self.grants_seen
            .retain(|n, _| dbs.iter().any(|(r, _)| &r.spec.name == n));
        // Bounded: an id matters only until the watch brings the outcome
        // written for it, long past once a thousand more came.
        while self.handled.len() > 1024 {
            self.handled.pop_first();
        }
        for (rec, _) in dbs {
            let mut st = self.round_db(view, &rec).await;
            st.grants = self
                .grants_seen
                .get(&rec.spec.name)
                .cloned()
                .unwrap_or_default();
            self.write_status(&rec.spec.name, st).await;
            self.tend_backups(view, &rec).await;
        }
    }

    async fn round_db(&mut self, view: &View, rec: &DatabaseRecord) -> DatabaseStatus {
        let name = rec.spec.name.clone();
        let instances = rec.spec.instances;
        let secrets = &rec.secrets;
        let admin = self.admin.clone();
        let mut members = members_of(view, rec);
        let mut rebuilding = BTreeSet::new();
        observe_all(admin.as_ref(), &mut members, secrets).await;
        let now = Instant::now();
        for m in &members {
            if m.obs.is_some() {
                self.silent_since.remove(&m.task);
            } else {
                self.silent_since.entry(m.task.clone()).or_insert(now);
            }
        }
        let (topo, rev) = self.topology(view, &name);
        match &topo {
            None => {
                if let Some(p) = bootstrap(instances, &members).cloned() {
                    let t = Topology {
                        primary: p.task.clone(),
                        addr: p.addr(),
                        epoch: 0,
                        since_ms: now_ms(),
                    };
                    if self.put_topology(&name, t, rev).await {
                        let cmds = steady(instances, &p, &members);
                        execute_all(admin.as_ref(), &name, &cmds, secrets).await;
                    }
                }
            }
            Some(t) => {
                let p = members.iter().find(|m| m.task == t.primary).cloned();
                let lost = match &p {
                    None => true,
                    Some(p) if p.obs.is_some() => false,
                    Some(p) => self
                        .silent_since
                        .get(&p.task)
                        .is_some_and(|s| s.elapsed() >= self.opts.hung_after),
                };
                if lost {
                    let candidates: Vec<Member> = members
                        .iter()
                        .filter(|m| m.task != t.primary)
                        .cloned()
                        .collect();
                    if let Some(new) = self.fail_over(rec, t, rev, candidates).await {
                        return status(instances, Some(&new), &members, now_ms());
                    }
                } else if let Some(p) = &p {
                    if let Some((req, req_rev)) = self.switchover_request(view, &name).await {
                        if let Some(new) =
                            self.switch_over(rec, t, rev, &members, req, req_rev).await
                        {
                            return status(instances, Some(&new), &members, now_ms());
                        }
                    } else {
                        let cmds = steady(instances, p, &members);
                        execute_all(admin.as_ref(), &name, &cmds, secrets).await;
                        if p.obs.is_some() {
                            self.tend_grants(view, rec, p).await;
                            rebuilding = self.tend_seeds(view, rec, p, &members).await;
                            self.schedule_backups(view, rec, p, &members).await;
                        }
                    }
                }
            }
        }
        let mut st = status(instances, topo.as_ref(), &members, now_ms());
        for n in &mut st.nodes {
            if rebuilding.contains(&n.task) && n.role == "unreachable" {
                n.role = "rebuilding".into();
            }
        }
        st
    }

    /// Fences the standbys off the lost primary `old`, waits until they
    /// applied what they received, promotes the one holding everything and
    /// points the others at it. The new topology, or None when no standby
    /// could be promoted (tried again next round).
    async fn fail_over(
        &mut self,
        rec: &DatabaseRecord,
        old: &Topology,
        rev: u64,
        mut candidates: Vec<Member>,
    ) -> Option<Topology> {
        let name = &rec.spec.name;
        let secrets = &rec.secrets;
        let admin = self.admin.clone();
        let started = Instant::now();
        warn!(database = %name, primary = %old.primary, "primary lost: failing over");
        loop {
            observe_all(admin.as_ref(), &mut candidates, secrets).await;
            match failover_step(&candidates) {
                FailoverStep::StopIo(cmds) => {
                    execute_all(admin.as_ref(), name, &cmds, secrets).await;
                    continue;
                }
                FailoverStep::Wait(why) => {
                    debug!(database = %name, %why, "failover: standbys applying their relay logs");
                }
                FailoverStep::Promote(task) => {
                    let p = candidates.iter().find(|m| m.task == task)?.clone();
                    let t = Topology {
                        primary: p.task.clone(),
                        addr: p.addr(),
                        epoch: old.epoch + 1,
                        since_ms: now_ms(),
                    };
                    if !self.put_topology(name, t.clone(), rev).await {
                        return None;
                    }
                    self.record_failover(rec, &old.primary, &t, "primary lost")
                        .await;
                    let cmds = steady(rec.spec.instances, &p, &candidates);
                    execute_all(admin.as_ref(), name, &cmds, secrets).await;
                    info!(database = %name, primary = %t.primary, took_ms = started.elapsed().as_millis() as u64, "failover done");
                    return Some(t);
                }
                FailoverStep::NoCandidate => {
                    warn!(database = %name, "failover: no standby can be promoted");
                    return None;
                }
            }
            if started.elapsed() >= self.opts.failover_budget {
                warn!(database = %name, "failover: standbys did not catch up in time");
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn write_status(&mut self, name: &str, st: DatabaseStatus) {
        let shape = st.shape();
        if let Some((last, at)) = self.written.get(name) {
            if *last == shape && at.elapsed() < self.opts.status_every {
                return;
            }
        }
        let put = self
            .client
            .kv_put(KvPutRequest {
                namespace: NAME.into(),
                key: format!("{STATUSES}{name}"),
                value: serde_json::to_vec(&st).unwrap_or_default(),
                expected_revision: None,
            })
            .await;
        match put {
            Ok(_) => {
                self.written
                    .insert(name.to_string(), (shape, Instant::now()));
            }
            Err(e) => warn!(database = %name, error = %e, "mysql status not written"),
        }
    }

    /// Runs until `shutdown` turns true. The watch is followed by a task
    /// of its own, so a slow round (instances that hang) never leaves the
    /// watch unread.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let follower = ocean_framework::ViewFollower::spawn(self.client.clone(), NAME);
        let mut leading = false;
        let mut lease_checked: Option<Instant> = None;
        let mut tick = tokio::time::interval(self.opts.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tick.tick() => {}
                // A task that ended is acted on at once: the fast
                // failover's trigger.
                _ = follower.tasks_changed() => {}
            }
            let Some(view) = follower.latest() else {
                continue;
            };
            if lease_checked.is_none_or(|t| t.elapsed() >= Duration::from_millis(250)) {
                leading = self.leading().await;
                lease_checked = Some(Instant::now());
            }
            if leading {
                self.round(&view).await;
            }
        }
    }
}

#[path = "operator_switchover.rs"]
mod switchover_run;

#[path = "operator_seed.rs"]
mod seed_run;

#[path = "operator_backup.rs"]
mod backup_run;

#[path = "operator_grants.rs"]
mod grants_run;

#[cfg(test)]
#[path = "operator_tests.rs"]
mod tests;
