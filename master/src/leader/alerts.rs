//! The leader's alerting controller: every [`TICK`], gather the facts the
//! rules need, evaluate ([`crate::alerts::eval`]), write each transition to its
//! `firing/<id>` record (compare-and-set on the revision read), then send
//! what the records say is undelivered ([`crate::alerts::deliver`]) and record
//! each acknowledgement.
//!
//! ```text
//!  state (jobs, back-off, agents) ─┐
//!  usage rings (RSS, limits) ──────┼─► Facts ─► Evaluator::step ─► PutKv firing/<id>
//!  sessions (agents connected) ────┤                                   │ (watch: KvPut)
//!  frameworks' failovers/ keys ────┘
//!  records with undelivered transitions ─► POST webhook ─► 2xx ─► PutKv delivered
//! ```
//!
//! Started per term by the leader supervisor; only the leader runs it, so
//! only one master writes the records at a time, and the compare-and-set
//! keeps a deposed leader's late write from overwriting its successor's.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use ocean_framework::failover::{self, FailoverRecord};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::alerts::deliver::{self, Outbox};
use crate::alerts::eval::{
    AgentFact, Evaluator, Facts, FailoverFact, JobFact, StormFact, TaskFact, Transition,
};
use crate::alerts::record::{records, rules, AlertRecord, AlertState, Kind, Rule, NAMESPACE};
use crate::kernel::now_ms;
use crate::kernel::state::{
    agent_status, delete_kv_command, is_terminal, put_kv_command, ClusterState, Outcome,
};
use crate::reconcile::Leading;

/// How often rules are evaluated.
pub const TICK: Duration = Duration::from_millis(250);
/// Resolved alerts are kept this long for `GET /v1/alerts`, then deleted
/// (delivered or not: a receiver down for an hour has missed the point).
pub const KEEP_RESOLVED_MS: u64 = 3_600_000;
/// A usage sample older than this says nothing about memory now.
const SAMPLE_FRESH_MS: u64 = 60_000;

/// The controller of term `term`, until `stop`.
pub async fn run(master: Leading, term: u64, mut stop: watch::Receiver<bool>) {
    let client = match reqwest::Client::builder()
        .timeout(deliver::SEND_TIMEOUT)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            warn!(term, error = %e, "alerts: no HTTP client; webhooks are not sent");
            reqwest::Client::new()
        }
    };
    let grace = master.scheduler().agent_settings().heartbeat_timeout();
    let started = Instant::now();
    let mut eval = Evaluator::default();
    let mut outbox = Outbox::default();
    let mut sends: JoinSet<(String, String, AlertState, Result<(), String>)> = JoinSet::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    info!(term, "alert rules evaluated on this leader");
    loop {
        // The arms only say what happened: the stop signal's guard must
        // not live across the awaits below.
        let next = tokio::select! {
            _ = stop.wait_for(|s| *s) => None,
            Some(done) = sends.join_next(), if !sends.is_empty() => Some(done.ok()),
            _ = tick.tick() => Some(None),
        };
        match next {
            None => break,
            Some(Some((key, id, transition, result))) => {
                let failures = outbox.finish(&key, result.is_ok(), now_ms());
                match result {
                    Ok(()) => {
                        info!(alert = %id, transition = transition.as_str(), "alert delivered");
                        mark_delivered(&master, &mut outbox, &id, transition, &key).await;
                    }
                    Err(e) => warn!(alert = %id, transition = transition.as_str(), failures,
                        retry_ms = deliver::backoff_ms(failures), error = %e, "webhook failed"),
                }
            }
            Some(None) => {
                let agents_known = started.elapsed() >= grace;
                evaluate(&master, &mut eval, agents_known).await;
                dispatch(&master, &client, &mut outbox, &mut sends).await;
            }
        }
    }
    sends.abort_all();
    info!(term, "alert evaluation stopped");
}

/// One evaluation: facts, transitions, their writes, and pruning.
async fn evaluate(master: &Leading, eval: &mut Evaluator, agents_known: bool) {
    let now = now_ms();
    let (rules, records, mut facts) = master.read(|st| {
        let rules = rules(st);
        let facts = from_state(st, &rules);
        (rules, records(st), facts)
    });
    // The leader's memories are read after the state's lock is released.
    facts.tasks.retain_mut(|t| {
        let Some((at, u)) = master.usage().task(&t.id) else {
            return false;
        };
        if now.saturating_sub(at) > SAMPLE_FRESH_MS {
            return false;
        }
        t.rss_bytes = u.memory_rss_bytes;
        if u.memory_limit_bytes > 0 {
            t.limit_bytes = u.memory_limit_bytes;
        }
        true
    });
    for a in &mut facts.agents {
        a.connected = !agents_known
            || master
                .sessions()
                .liveness(&a.id)
                .is_some_and(|l| l.connected && !l.unreachable);
    }
    let plain: HashMap<String, AlertRecord> = records
        .iter()
        .map(|(id, (r, _))| (id.clone(), r.clone()))
        .collect();
    for t in eval.step(&rules, &facts, &plain, now) {
        let (Transition::Fire(r) | Transition::Resolve(r)) = &t;
        let rev = records.get(&r.id).map_or(0, |(_, rev)| *rev);
        info!(alert = %r.id, state = r.state.as_str(), rule = %r.rule, subject = %r.subject,
            message = %r.message, "alert transition");
        write(master, r, rev).await;
    }
    for (r, rev) in records.values() {
        let done = r.state == AlertState::Resolved
            && r.resolved_ms
                .is_some_and(|at| now.saturating_sub(at) >= KEEP_RESOLVED_MS);
        if done {
            let cmd = delete_kv_command(NAMESPACE, &AlertRecord::key_of(&r.id), Some(*rev));
            if let Err(e) = master.propose(cmd).await {
                debug!(alert = %r.id, error = %e, "pruning a resolved alert failed");
            }
        }
    }
}

/// What the rules need from the state: only jobs, tasks and agents under
/// some rule's node. Tasks carry their asked memory as the limit until
/// their sample says otherwise; agents are connected until the sessions
/// say otherwise.
fn from_state(st: &ClusterState, rules: &[Rule]) -> Facts {
    let nodes = |kinds: &[Kind]| -> Vec<ocean_spec::TreeNode> {
        rules
            .iter()
            .filter(|r| kinds.contains(&r.kind))
            .filter_map(|r| ocean_spec::TreeNode::parse(&r.node).ok())
            .collect()
    };
    let mut facts = Facts::default();
    let job_nodes = nodes(&[Kind::JobBelowInstances, Kind::TaskFlapping]);
    let task_nodes = nodes(&[Kind::MemoryAbove]);
    let agent_nodes = nodes(&[Kind::AgentLost]);
    if !job_nodes.is_empty() || !task_nodes.is_empty() {
        for (id, job) in &st.jobs {
            if job_nodes.iter().any(|n| n.covers_id(id)) {
                let counts = st.summary.job(id);
                facts.jobs.push(JobFact {
                    id: id.clone(),
                    instances: counts.as_ref().map_or(0, |c| c.instances),
                    running: counts.as_ref().map_or(0, |c| c.held.running),
                    failures_ms: job
                        .backoff
                        .as_ref()
                        .map(|b| b.recent_failures_ms.clone())
                        .unwrap_or_default(),
                });
            }
            if task_nodes.iter().any(|n| n.covers_id(id)) {
                for t in st.tasks_of(id).filter(|t| !is_terminal(&t.state)) {
                    facts.tasks.push(TaskFact {
                        id: t.id.clone(),
                        rss_bytes: 0,
                        limit_bytes: t.mem_mib * 1024 * 1024,
                    });
                }
            }
        }
    }
    if rules.iter().any(|r| r.kind == Kind::Failover) {
        facts.failovers = failovers(st);
    }
    if rules.iter().any(|r| r.kind == Kind::HealingStorm) {
        facts.storm = storm(st);
    }
    if !agent_nodes.is_empty() {
        // Agents taken out of service are expected to go.
        for a in st.agents.values().filter(|a| agent_status(a) != "offline") {
            facts.agents.push(AgentFact {
                id: a.id.clone(),
                tags: a
                    .attributes
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                connected: true,
            });
        }
    }
    facts
}

/// Every framework's `failovers/` records: one pass over the frameworks'
/// keys, made only while some `failover` rule exists (a record that does
/// not decode is skipped).
fn failovers(st: &ClusterState) -> Vec<FailoverFact> {
    st.kv
        .values()
        .filter(|e| e.key.starts_with(failover::KEY_PREFIX))
        .filter_map(|e| {
            let record: FailoverRecord = serde_json::from_slice(&e.value).ok()?;
            Some(FailoverFact {
                subject: format!("{}:{}", e.namespace, record.name),
                record,
            })
        })
        .collect()
}

/// The healing framework's `alert` key while a storm is raised, with the
/// tree tags of its ill hosts. The framework's record is read as plain
/// JSON: the masters do not link the framework.
fn storm(st: &ClusterState) -> Option<StormFact> {
    #[derive(serde::Deserialize)]
    struct Alert {
        active: bool,
        #[serde(default)]
        message: String,
        #[serde(default)]
        ill_hosts: Vec<String>,
    }
    let e = st.kv_get(HEALING_NAMESPACE, HEALING_ALERT_KEY)?;
    let alert: Alert = serde_json::from_slice(&e.value).ok()?;
    alert.active.then(|| StormFact {
        message: alert.message,
        ill_hosts: alert
            .ill_hosts
            .iter()
            .filter_map(|id| st.agents.get(id))
            .map(|a| {
                a.attributes
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .collect(),
    })
}

/// Where the healing framework keeps its storm alert.
const HEALING_NAMESPACE: &str = "healing";
const HEALING_ALERT_KEY: &str = "alert";

/// Writes `r` over the revision `rev` read (0: it must not exist).
async fn write(master: &Leading, r: &AlertRecord, rev: u64) -> bool {
    let value = match serde_json::to_vec(r) {
        Ok(v) => v,
        Err(e) => {
            warn!(alert = %r.id, error = %e, "alert record not encoded");
            return false;
        }
    };
    let cmd = put_kv_command(NAMESPACE, &AlertRecord::key_of(&r.id), value, Some(rev));
    match master.propose(cmd).await {
        Ok(a) if matches!(a.outcome, Outcome::Conflict { .. }) => {
            debug!(alert = %r.id, "alert record changed meanwhile; next tick");
            false
        }
        Ok(_) => true,
        Err(e) => {
            warn!(alert = %r.id, error = %e, "alert record not written");
            false
        }
    }
}

/// Starts a send for every due undelivered transition (the oldest of each
/// alert), and records acknowledgements not yet recorded.
async fn dispatch(
    master: &Leading,
    client: &reqwest::Client,
    outbox: &mut Outbox,
    sends: &mut JoinSet<(String, String, AlertState, Result<(), String>)>,
) {
    let now = now_ms();
    let records = master.read(records);
    let mut live = HashSet::new();
    for (r, _) in records.values() {
        let Some(&t) = r.undelivered().first() else {
            continue;
        };
        let key = r.idempotency_key(t);
        live.insert(key.clone());
        if outbox.acked(&key) {
            mark_delivered(master, outbox, &r.id, t, &key).await;
            continue;
        }
        if !outbox.due(&key, now) {
            continue;
        }
        let Some(url) = r.webhook.clone() else {
            continue;
        };
        outbox.start(&key);
        let n = deliver::notification(r, t);
        let (client, id) = (client.clone(), r.id.clone());
        sends.spawn(async move {
            let result = deliver::send(&client, &url, &n).await;
            (n.idempotency_key, id, t, result)
        });
    }
    outbox.retain(&live);
}

/// Records that `transition` of alert `id` was acknowledged (if the record
/// is still of the same firing).
async fn mark_delivered(
    master: &Leading,
    outbox: &mut Outbox,
    id: &str,
    transition: AlertState,
    key: &str,
) {
    let key_of = AlertRecord::key_of(id);
    let current = master.read(|st| {
        let e = st.kv_get(NAMESPACE, &key_of)?;
        let r: AlertRecord = serde_json::from_slice(&e.value).ok()?;
        Some((r, e.revision))
    });
    let Some((mut r, rev)) = current else {
        outbox.recorded(key);
        return;
    };
    if r.idempotency_key(transition) != key {
        // Fired again since: that firing has its own key.
        outbox.recorded(key);
        return;
    }
    if r.delivered.iter().any(|d| d == transition.as_str()) {
        outbox.recorded(key);
        return;
    }
    r.delivered.push(transition.as_str().to_string());
    if write(master, &r, rev).await {
        outbox.recorded(key);
    }
}
