//! [`Operator`]: forms and heals each cache's Redis Cluster. It runs beside
//! the framework's [`ocean_framework::Runner`] and acts only while that
//! runner's instance (same holder) holds the framework's lease.
//!
//! ```text
//!  watch (jobs, tasks, redis keys) ──► View ──► members per cache (running tasks)
//!        task ended ─► round now            │ RedisAdmin::observe (parallel, bounded)
//!        else every `every`                 ▼
//!                                  decide() ──► RedisAdmin::execute, in order
//!                                  status() ──► status/<name> (when its shape changes,
//!                                               or every `status_every`)
//! ```

use std::collections::BTreeMap;
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

use crate::admin::RedisAdmin;
use crate::decide::{decide_restored, AdminCmd, Member};
use crate::framework::{caches, CacheRecord, CACHES, NAME, STATUSES};
use crate::jobs::shard_job_id;
use crate::mover::{Mover, Step};
use crate::status::{status, CacheStatus};

/// How often the operator looks, and how often it writes.
#[derive(Debug, Clone)]
pub struct OperatorOptions {
    /// The lease holder this operator goes with (the runner's).
    pub holder: String,
    /// A round at least this often.
    pub every: Duration,
    /// How often a status whose shape did not change is written again.
    pub status_every: Duration,
    /// How long a round may spend moving slots for a cache being
    /// resharded (failovers of other caches wait at most this long).
    pub reshard_budget: Duration,
}

impl OperatorOptions {
    /// Defaults for `holder`: a round every 100 ms (a silent primary's
    /// failover is decided on the round after most primaries suspect it,
    /// and must land before the cluster's own `fail` schedules the
    /// replica's slower election), the status at least
    /// every 2 s.
    pub fn new(holder: impl Into<String>) -> Self {
        OperatorOptions {
            holder: holder.into(),
            every: Duration::from_millis(100),
            status_every: Duration::from_secs(2),
            reshard_budget: Duration::from_millis(500),
        }
    }
}

/// The operator (see the module docs).
#[derive(Debug)]
pub struct Operator {
    client: Arc<dyn Client>,
    admin: Arc<dyn RedisAdmin>,
    opts: OperatorOptions,
    written: BTreeMap<String, (CacheStatus, Instant)>,
    /// Since when (ms) a forced failover has been asked for in place of
    /// each primary id.
    forced: BTreeMap<String, u64>,
    /// When (ms) primaries were last spread (a graceful failover sent).
    spread_ms: u64,
    /// Resharding plans and progress.
    mover: Mover,
    /// Nodes that did not answer last round (asked within
    /// [`SILENT_TIMEOUT`] next), with the time (ms) of the first round
    /// they missed.
    silent: BTreeMap<String, u64>,
}

/// How long a node that did not answer last round is waited for: a frozen
/// host's nodes would otherwise hold every round for the full admin limit
/// (500 ms), and with it the failover of the primary they lost.
pub const SILENT_TIMEOUT: Duration = Duration::from_millis(100);

/// How long after spreading primaries the operator waits before it spreads
/// again (a graceful failover takes well under a second; the status it
/// reads must show the result first).
pub const SPREAD_EVERY_MS: u64 = 5_000;

/// The running tasks of a cache as members (not yet observed), in the
/// shards that have jobs (a shard being drained included).
pub fn members_of(view: &View, rec: &CacheRecord) -> Vec<Member> {
    let spec = &rec.spec;
    let mut out = Vec::new();
    for shard in 0..rec.job_shards() {
        let job = shard_job_id(spec, shard);
        for t in view.tasks_of(&job) {
            if t.state != "RUNNING" || t.ports.len() < 2 || t.kill_requested {
                continue;
            }
            out.push(Member {
                shard,
                task: t.id.clone(),
                host: t.host.clone(),
                ip: t.address.clone(),
                port: t.ports[0].port as u16,
                bus: t.ports[1].port as u16,
                obs: None,
                silent_ms: 0,
            });
        }
    }
    out
}

impl Operator {
    /// An operator acting through `client` on the masters and `admin` on
    /// the Redis nodes.
    pub fn new(client: Arc<dyn Client>, admin: Arc<dyn RedisAdmin>, opts: OperatorOptions) -> Self {
        Operator {
            client,
            admin,
            opts,
            written: BTreeMap::new(),
            forced: BTreeMap::new(),
            spread_ms: 0,
            mover: Mover::default(),
            silent: BTreeMap::new(),
        }
    }

    async fn leading(&self) -> bool {
        ocean_framework::holds_lease(self.client.as_ref(), NAME, &self.opts.holder).await
    }

    /// One round (see [`round`]), then the statuses written.
    pub async fn round(&mut self, view: &View) -> Vec<AdminCmd> {
        let now = now_ms();
        let spread_ok = now.saturating_sub(self.spread_ms) >= SPREAD_EVERY_MS;
        let budget = self.opts.reshard_budget;
        let out = round(
            self.admin.as_ref(),
            view,
            &Past {
                forced: self.forced.clone(),
                silent: self.silent.clone(),
            },
            now,
            spread_ok,
            &mut self.mover,
            budget,
        )
        .await;
        let RoundOut {
            sent,
            statuses,
            resharded,
            silent,
        } = out;
        self.silent = silent;
        for (rec, revision) in resharded {
            self.end_resharding(rec, revision).await;
        }
        if sent.iter().any(|c| matches!(c, AdminCmd::Failover { .. })) {
            self.spread_ms = now;
        }
        // Remember when each failover was first forced (recording it then);
        // forget those no longer needed.
        let mut forced = BTreeMap::new();
        for cmd in &sent {
            if let AdminCmd::FailoverForce { on, replaces }
            | AdminCmd::FailoverTakeover { on, replaces } = cmd
            {
                let since = match self.forced.get(replaces) {
                    Some(since) => *since,
                    None => {
                        self.record_failover(view, on, replaces, now).await;
                        now
                    }
                };
                forced.insert(replaces.clone(), since);
            }
        }
        self.forced = forced;
        for (name, st) in statuses {
            self.write_status(&name, st).await;
        }
        sent
    }

    /// Records the failover the first forced promotion of the replica at
    /// `on` starts (the masters' `failover` alert rules read it).
    async fn record_failover(&self, view: &View, on: &str, replaces: &str, now: u64) {
        let found = caches(view).into_iter().find_map(|(rec, _)| {
            let m = members_of(view, &rec)
                .into_iter()
                .find(|m| m.addr() == on)?;
            Some((rec.spec, m))
        });
        let Some((spec, m)) = found else {
            return;
        };
        let fo = FailoverRecord {
            kind: "cache".into(),
            name: spec.name.clone(),
            job: shard_job_id(&spec, m.shard),
            from: format!("node {replaces}"),
            to: m.task,
            reason: "primary lost".into(),
            at_ms: now,
            count: 0,
        };
        if let Err(e) = failover::record(self.client.as_ref(), NAME, fo).await {
            warn!(cache = %spec.name, error = %e, "failover record not written");
        }
    }

    /// Clears a finished resharding from the cache's record (compare and
    /// set: a newer change of shard count is kept); the framework then
    /// removes the jobs of shards that were drained.
    async fn end_resharding(&mut self, rec: CacheRecord, revision: u64) {
        let name = rec.spec.name.clone();
        let started_ms = rec.resharding.as_ref().map_or(0, |r| r.started_ms);
        let done = CacheRecord {
            resharding: None,
            ..rec
        };
        let put = self
            .client
            .kv_put(KvPutRequest {
                namespace: NAME.into(),
                key: format!("{CACHES}{name}"),
                value: serde_json::to_vec(&done).unwrap_or_default(),
                expected_revision: Some(revision),
            })
            .await;
        match put {
            Ok(_) => {
                info!(cache = %name, shards = done.spec.shards, "resharding done");
                self.mover.ended(&name, started_ms);
            }
            Err(e) => warn!(cache = %name, error = %e, "resharding not marked done"),
        }
    }

    async fn write_status(&mut self, name: &str, st: CacheStatus) {
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
            Err(e) => warn!(cache = %name, error = %e, "redis status not written"),
        }
    }

    /// Runs until `shutdown` turns true. The watch is followed by a task
    /// of its own, so a slow round (nodes that hang) never leaves the
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
                // A task that ended (or started) is acted on at once: this
                // is the fast failover's trigger.
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
                let t = Instant::now();
                let sent = self.round(&view).await;
                debug!(
                    took_ms = t.elapsed().as_millis() as u64,
                    sent = sent.len(),
                    "redis operator round"
                );
            }
        }
    }
}

/// [`RedisAdmin::observe`] (within `timeout` if given) with the error
/// logged and dropped.
async fn observe(
    admin: &dyn RedisAdmin,
    addr: String,
    timeout: Option<Duration>,
) -> Option<crate::topology::Observed> {
    let seen = match timeout {
        Some(t) => admin.observe_within(&addr, t).await,
        None => admin.observe(&addr).await,
    };
    match seen {
        Ok(o) => Some(o),
        Err(e) => {
            debug!(error = %e, "redis node not observed");
            None
        }
    }
}

/// What one [`round`] did.
#[derive(Debug, Default)]
pub struct RoundOut {
    /// The admin commands sent.
    pub sent: Vec<AdminCmd>,
    /// Each cache's status as observed before them (with its resharding
    /// progress).
    pub statuses: Vec<(String, CacheStatus)>,
    /// Caches whose resharding is done, with their record's revision.
    pub resharded: Vec<(CacheRecord, u64)>,
    /// Nodes that did not answer, with the time (ms) of the first round
    /// they missed.
    pub silent: BTreeMap<String, u64>,
}

/// What earlier rounds left for the next one.
#[derive(Debug, Clone, Default)]
pub struct Past {
    /// Since when (ms) a forced failover has been asked for in place of
    /// each primary id.
    pub forced: BTreeMap<String, u64>,
    /// Nodes that did not answer last round (asked within
    /// [`SILENT_TIMEOUT`]), with the time (ms) of the first round they
    /// missed.
    pub silent: BTreeMap<String, u64>,
}

/// One round over every cache of `view`: observe its running tasks (in
/// parallel), decide, send the commands in order; with nothing else to
/// do, move slots of a cache being resharded (within `budget`), or, with
/// `spread_ok`, spread its primaries over hosts (one graceful failover at
/// most).
pub async fn round(
    admin: &dyn RedisAdmin,
    view: &View,
    past: &Past,
    now_ms: u64,
    mut spread_ok: bool,
    mover: &mut Mover,
    budget: Duration,
) -> RoundOut {
    let (forced, silent) = (&past.forced, &past.silent);
    let mut out = RoundOut::default();
    for (rec, revision) in caches(view) {
        let spec = rec.spec.clone();
        let mut members = members_of(view, &rec);
        let seen = futures::future::join_all(members.iter().map(|m| {
            let addr = m.addr();
            let t = silent.contains_key(&addr).then_some(SILENT_TIMEOUT);
            observe(admin, addr, t)
        }))
        .await;
        for (m, obs) in members.iter_mut().zip(seen) {
            if obs.is_none() {
                let addr = m.addr();
                let since = silent.get(&addr).copied().unwrap_or(now_ms);
                m.silent_ms = now_ms.saturating_sub(since);
                out.silent.insert(addr, since);
            }
            m.obs = obs;
        }
        let restore = rec.restore.as_ref().map(|r| r.shards.as_slice());
        let mut cmds = decide_restored(rec.job_shards(), restore, &members, forced, now_ms);
        let mut st = status(&spec, &members, now_ms);
        if rec.resharding.is_some() {
            if cmds.is_empty() && mover.step(admin, &rec, &members, budget).await == Step::Done {
                out.resharded.push((rec.clone(), revision));
            }
            st.resharding = mover.progress(&spec.name);
        } else if cmds.is_empty()
            && spread_ok
            && now_ms >= crate::framework::held_until(view, &spec.name)
        {
            if let Some(c) = crate::spread::spread(spec.shards, &members) {
                cmds.push(c);
                spread_ok = false;
            }
        }
        for cmd in cmds {
            match admin.execute(&cmd).await {
                Ok(()) => info!(cache = %spec.name, ?cmd, "redis admin"),
                Err(e) => warn!(cache = %spec.name, ?cmd, error = %e, "redis admin failed"),
            }
            out.sent.push(cmd);
        }
        out.statuses.push((spec.name.clone(), st));
    }
    out
}

#[cfg(test)]
#[path = "operator_tests.rs"]
mod tests;
