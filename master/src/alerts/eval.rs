//! The pure half of alerting: given the rules, what the cluster looks like
//! now ([`Facts`]) and the alerts already recorded, which alerts fire and
//! which resolve. No clock, no I/O: [`super::run`] gathers the facts and
//! writes the transitions.
//!
//! A rule covers whatever lies under its node when it is evaluated
//! (`TreeNode::covers_id` for jobs and tasks, the agent's tree tags for
//! agents), so jobs and agents added after the rule are watched like the
//! others. A condition must hold `for_seconds` before its alert fires; how
//! long it has held is this leader's memory ([`Evaluator`]), so after a
//! failover a condition not yet fired waits its duration again (it is
//! late, never lost), while fired alerts are in the replicated records and
//! are neither fired twice nor forgotten.

use std::collections::{BTreeMap, HashMap, HashSet};

use ocean_framework::failover::FailoverRecord;
use ocean_spec::TreeNode;

use super::record::{AlertRecord, AlertState, Kind, Rule, DEFAULT_FAILOVER_WINDOW_MINUTES};

/// A job as the rules see it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobFact {
    pub id: String,
    pub instances: u64,
    /// RUNNING and not being stopped.
    pub running: u64,
    /// Leader-clock times of its recent task failures (the back-off's).
    pub failures_ms: Vec<u64>,
}

/// A live task with a usage sample.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskFact {
    pub id: String,
    pub rss_bytes: u64,
    /// The limit its cgroup enforces (0: none known).
    pub limit_bytes: u64,
}

/// An agent as the rules see it.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentFact {
    pub id: String,
    /// Its service-tree tags (`cop`, `owt`, `pdl`, ...), from attributes.
    pub tags: BTreeMap<String, String>,
    /// Connected to the leader (or the leader is too new to tell).
    pub connected: bool,
}

/// The newest failover of a database or cache, as a framework recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct FailoverFact {
    /// `<framework namespace>:<name>`, e.g. `redis:sessions`.
    pub subject: String,
    pub record: FailoverRecord,
}

/// The healing framework's storm alert while it is raised.
#[derive(Debug, Clone, PartialEq)]
pub struct StormFact {
    /// What the framework says (how many hosts of how many are ill).
    pub message: String,
    /// The service-tree tags of each ill host.
    pub ill_hosts: Vec<BTreeMap<String, String>>,
}

/// The cluster as one evaluation sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    pub jobs: Vec<JobFact>,
    pub tasks: Vec<TaskFact>,
    pub agents: Vec<AgentFact>,
    pub failovers: Vec<FailoverFact>,
    pub storm: Option<StormFact>,
}

/// The subject of a `healing_storm` alert.
pub const STORM_SUBJECT: &str = "healing:storm";

/// A change to write: the record as it must be stored.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    Fire(AlertRecord),
    Resolve(AlertRecord),
}

/// Whether an agent with `tags` lies under `node`: it carries every tag of
/// the node with the same value.
pub fn agent_under(node: &TreeNode, tags: &BTreeMap<String, String>) -> bool {
    node.tags()
        .all(|(t, v)| tags.get(t).is_some_and(|x| x == v))
}

/// The subjects for which `rule`'s condition holds now, with what was seen.
pub fn holding(rule: &Rule, facts: &Facts, now_ms: u64) -> Vec<(String, String)> {
    let Ok(node) = TreeNode::parse(&rule.node) else {
        return Vec::new();
    };
    match rule.kind {
        Kind::JobBelowInstances => facts
            .jobs
            .iter()
            .filter(|j| node.covers_id(&j.id) && j.running < j.instances)
            .map(|j| {
                (
                    j.id.clone(),
                    format!("{} of {} instances RUNNING", j.running, j.instances),
                )
            })
            .collect(),
        Kind::TaskFlapping => {
            let max = u64::from(rule.max_restarts.unwrap_or(0));
            let window_ms = u64::from(rule.window_minutes.unwrap_or(1)) * 60_000;
            facts
                .jobs
                .iter()
                .filter(|j| node.covers_id(&j.id))
                .filter_map(|j| {
                    let n = j
                        .failures_ms
                        .iter()
                        .filter(|t| now_ms.saturating_sub(**t) < window_ms)
                        .count() as u64;
                    (n > max).then(|| {
                        (
                            j.id.clone(),
                            format!(
                                "{n} task failures in {} min (more than {max})",
                                window_ms / 60_000
                            ),
                        )
                    })
                })
                .collect()
        }
        Kind::MemoryAbove => {
            let p = rule.percent.unwrap_or(100.0);
            facts
                .tasks
                .iter()
                .filter(|t| t.limit_bytes > 0 && node.covers_id(&t.id))
                .filter_map(|t| {
                    let used = t.rss_bytes as f64 * 100.0 / t.limit_bytes as f64;
                    (used > p).then(|| {
                        (
                            t.id.clone(),
                            format!("RSS {used:.1}% of the memory limit (above {p}%)"),
                        )
                    })
                })
                .collect()
        }
        Kind::AgentLost => facts
            .agents
            .iter()
            .filter(|a| !a.connected && agent_under(&node, &a.tags))
            .map(|a| (a.id.clone(), "not connected to the leader".to_string()))
            .collect(),
        Kind::HealingStorm => facts
            .storm
            .iter()
            .filter_map(|s| {
                let under = s
                    .ill_hosts
                    .iter()
                    .filter(|tags| agent_under(&node, tags))
                    .count();
                (under > 0).then(|| {
                    (
                        STORM_SUBJECT.to_string(),
                        format!(
                            "{}; {under} of the ill hosts under {}",
                            s.message,
                            if rule.node.is_empty() {
                                "the tree"
                            } else {
                                &rule.node
                            }
                        ),
                    )
                })
            })
            .collect(),
        Kind::Failover => {
            let window_ms = u64::from(
                rule.window_minutes
                    .unwrap_or(DEFAULT_FAILOVER_WINDOW_MINUTES),
            ) * 60_000;
            facts
                .failovers
                .iter()
                // A record stamped ahead of this clock (skew) counts as now.
                .filter(|f| {
                    node.covers_id(&f.record.job)
                        && now_ms.saturating_sub(f.record.at_ms) < window_ms
                })
                .map(|f| {
                    let r = &f.record;
                    let from = if r.from.is_empty() { "?" } else { &r.from };
                    (
                        f.subject.clone(),
                        format!(
                            "{} failover ({}): primary {from} -> {}; {} failover(s) so far",
                            r.kind, r.reason, r.to, r.count
                        ),
                    )
                })
                .collect()
        }
    }
}

/// This leader's memory of conditions not yet fired: since when each has
/// held.
#[derive(Debug, Default)]
pub struct Evaluator {
    since: HashMap<String, u64>,
}

impl Evaluator {
    /// One evaluation at `now_ms`: the transitions to write, given the
    /// recorded alerts by id.
    pub fn step(
        &mut self,
        rules: &[Rule],
        facts: &Facts,
        records: &HashMap<String, AlertRecord>,
        now_ms: u64,
    ) -> Vec<Transition> {
        let mut out = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        for rule in rules {
            for (subject, message) in holding(rule, facts, now_ms) {
                let id = AlertRecord::id_of(&rule.id, &subject);
                let since = *self.since.entry(id.clone()).or_insert(now_ms);
                seen.insert(id.clone());
                // A resolved alert whose transitions are not all delivered
                // fires again only once they are: a new firing replaces
                // the record, and with it what was left to send.
                let held = records
                    .get(&id)
                    .is_some_and(|r| r.state == AlertState::Firing || !r.undelivered().is_empty());
                if held || now_ms.saturating_sub(since) < rule.for_seconds * 1000 {
                    continue;
                }
                out.push(Transition::Fire(AlertRecord {
                    id,
                    rule: rule.id.clone(),
                    kind: rule.kind,
                    node: rule.node.clone(),
                    subject,
                    state: AlertState::Firing,
                    message,
                    since_ms: since,
                    fired_ms: now_ms,
                    resolved_ms: None,
                    webhook: rule.webhook.clone(),
                    delivered: Vec::new(),
                }));
            }
        }
        self.since.retain(|id, _| seen.contains(id));
        let live_rules: HashSet<&str> = rules.iter().map(|r| r.id.as_str()).collect();
        for r in records.values() {
            if r.state != AlertState::Firing || seen.contains(&r.id) {
                continue;
            }
            let mut resolved = r.clone();
            resolved.state = AlertState::Resolved;
            resolved.resolved_ms = Some(now_ms);
            resolved.message = if live_rules.contains(r.rule.as_str()) {
                "the condition no longer holds".to_string()
            } else {
                "the rule was deleted".to_string()
            };
            out.push(Transition::Resolve(resolved));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOB: &str = "cop.c_owt.o_pdl.web_service.s_job.api_cluster.c1";
    const OTHER: &str = "cop.c_owt.o_pdl.web2_service.s_job.api_cluster.c1";

    fn rule(kind: Kind, node: &str, for_seconds: u64) -> Rule {
        Rule {
            id: "r1".into(),
            node: node.into(),
            kind,
            for_seconds,
            max_restarts: None,
            window_minutes: None,
            percent: None,
            webhook: Some("http://h/".into()),
            description: String::new(),
            created_ms: 0,
        }
    }

    fn job(id: &str, instances: u64, running: u64) -> JobFact {
        JobFact {
            id: id.into(),
            instances,
            running,
            failures_ms: vec![],
        }
    }

    fn apply(records: &mut HashMap<String, AlertRecord>, ts: Vec<Transition>) {
        for t in ts {
            let (Transition::Fire(r) | Transition::Resolve(r)) = t;
            records.insert(r.id.clone(), r);
        }
    }

    #[test]
    fn fires_after_its_duration_once_and_resolves_for_jobs_added_later() {
        let rules = vec![rule(Kind::JobBelowInstances, "pdl.web", 5)];
        let mut ev = Evaluator::default();
        let mut records = HashMap::new();
        // No job yet; then one appears under the node, and one that is not.
        let facts = Facts {
            jobs: vec![job(JOB, 2, 1), job(OTHER, 2, 0)],
            ..Default::default()
        };
        assert!(ev.step(&rules, &Facts::default(), &records, 0).is_empty());
        assert!(ev.step(&rules, &facts, &records, 1_000).is_empty());
        assert!(ev.step(&rules, &facts, &records, 5_999).is_empty());
        let t = ev.step(&rules, &facts, &records, 6_000);
        assert_eq!(t.len(), 1, "{t:?}");
        let Transition::Fire(fired) = &t[0] else {
            panic!("expected a firing, got {t:?}");
        };
        assert_eq!(fired.subject, JOB);
        assert_eq!((fired.since_ms, fired.fired_ms), (1_000, 6_000));
        assert_eq!(fired.message, "1 of 2 instances RUNNING");
        apply(&mut records, t);
        // Still below: not fired again.
        assert!(ev.step(&rules, &facts, &records, 7_000).is_empty());
        // A new leader (a fresh evaluator) does not fire it again either.
        assert!(Evaluator::default()
            .step(&rules, &facts, &records, 8_000)
            .is_empty());
        let well = Facts {
            jobs: vec![job(JOB, 2, 2)],
            ..Default::default()
        };
        let t = ev.step(&rules, &well, &records, 9_000);
        match &t[..] {
            [Transition::Resolve(r)] => {
                assert_eq!((r.resolved_ms, r.fired_ms), (Some(9_000), 6_000));
                assert_eq!(r.state, AlertState::Resolved);
            }
            other => panic!("expected a resolution, got {other:?}"),
        }
        apply(&mut records, t);
        assert!(ev.step(&rules, &well, &records, 10_000).is_empty());
        // Not again while the resolution is undelivered (it would be
        // overwritten), then as soon as it is.
        assert!(ev.step(&rules, &facts, &records, 10_500).is_empty());
        assert!(ev.step(&rules, &facts, &records, 16_000).is_empty());
        if let Some(r) = records.values_mut().next() {
            r.delivered = vec!["firing".into(), "resolved".into()];
        }
        assert_eq!(ev.step(&rules, &facts, &records, 16_100).len(), 1);
        assert!(ev.step(&rules, &well, &records, 16_200).is_empty());
        // A short dip below does not fire: the duration starts over.
        assert!(ev.step(&rules, &facts, &records, 21_000).is_empty());
        assert!(ev.step(&rules, &well, &records, 22_000).is_empty());
        assert!(ev.step(&rules, &facts, &records, 23_000).is_empty());
        assert!(ev.step(&rules, &facts, &records, 27_000).is_empty());
        assert_eq!(ev.step(&rules, &facts, &records, 28_000).len(), 1);
    }

    #[test]
    fn a_deleted_rule_resolves_its_alerts() {
        let rules = vec![rule(Kind::JobBelowInstances, "", 0)];
        let mut ev = Evaluator::default();
        let mut records = HashMap::new();
        let facts = Facts {
            jobs: vec![job(JOB, 1, 0)],
            ..Default::default()
        };
        let t = ev.step(&rules, &facts, &records, 0);
        apply(&mut records, t);
        assert_eq!(records.len(), 1);
        match &ev.step(&[], &facts, &records, 1)[..] {
            [Transition::Resolve(r)] => assert_eq!(r.message, "the rule was deleted"),
            other => panic!("expected a resolution, got {other:?}"),
        }
    }

    #[test]
    fn flapping_memory_and_lost_agents() {
        let mut flap = rule(Kind::TaskFlapping, "pdl.web", 0);
        flap.max_restarts = Some(2);
        flap.window_minutes = Some(1);
        let mut j = job(JOB, 1, 1);
        j.failures_ms = vec![10_000, 50_000, 60_000];
        let facts = Facts {
            jobs: vec![j],
            tasks: vec![
                TaskFact {
                    id: format!("{JOB}.0001"),
                    rss_bytes: 95,
                    limit_bytes: 100,
                },
                TaskFact {
                    id: format!("{OTHER}.0001"),
                    rss_bytes: 99,
                    limit_bytes: 100,
                },
                TaskFact {
                    id: format!("{JOB}.0002"),
                    rss_bytes: 50,
                    limit_bytes: 0,
                },
            ],
            agents: vec![
                AgentFact {
                    id: "a1".into(),
                    tags: [("pdl".to_string(), "web".to_string())].into(),
                    connected: false,
                },
                AgentFact {
                    id: "a2".into(),
                    tags: [("pdl".to_string(), "web".to_string())].into(),
                    connected: true,
                },
                AgentFact {
                    id: "a3".into(),
                    tags: BTreeMap::new(),
                    connected: false,
                },
            ],
            failovers: Vec::new(),
            storm: None,
        };
        // 3 failures within the minute before 65 s: more than 2.
        assert_eq!(holding(&flap, &facts, 65_000).len(), 1);
        // At 75 s the first has left the window: 2, not more than 2.
        assert!(holding(&flap, &facts, 75_000).is_empty());
        let mut mem = rule(Kind::MemoryAbove, "pdl.web", 0);
        mem.percent = Some(90.0);
        let held = holding(&mem, &facts, 0);
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].0, format!("{JOB}.0001"));
        let lost = rule(Kind::AgentLost, "pdl.web", 0);
        let held: Vec<String> = holding(&lost, &facts, 0).into_iter().map(|h| h.0).collect();
        assert_eq!(held, vec!["a1".to_string()]);
        let everywhere = rule(Kind::AgentLost, "", 0);
        assert_eq!(holding(&everywhere, &facts, 0).len(), 2);
    }

    #[test]
    fn a_failover_fires_for_its_window_under_the_node_only() {
        let fo = |subject: &str, job: &str, at_ms: u64| FailoverFact {
            subject: subject.into(),
            record: FailoverRecord {
                kind: "cache".into(),
                name: subject.into(),
                job: job.into(),
                from: String::new(),
                to: "t2".into(),
                reason: "primary lost".into(),
                at_ms,
                count: 1,
            },
        };
        let facts = Facts {
            failovers: vec![fo("redis:a", JOB, 100_000), fo("redis:b", OTHER, 100_000)],
            ..Default::default()
        };
        let mut r = rule(Kind::Failover, "pdl.web", 0);
        r.window_minutes = Some(1);
        let held = holding(&r, &facts, 130_000);
        assert_eq!(held.len(), 1, "pdl.web covers a, never pdl.web2's b");
        assert_eq!(held[0].0, "redis:a");
        assert!(held[0].1.contains("primary ? -> t2"), "{}", held[0].1);
        // Clock skew: a record stamped ahead of the leader's clock holds.
        assert_eq!(holding(&r, &facts, 90_000).len(), 1);
        // The window passed: the alert resolves.
        let rules = vec![r];
        let mut ev = Evaluator::default();
        let mut records = HashMap::new();
        let t = ev.step(&rules, &facts, &records, 130_000);
        apply(&mut records, t);
        assert_eq!(records.len(), 1);
        assert!(ev.step(&rules, &facts, &records, 159_000).is_empty());
        match &ev.step(&rules, &facts, &records, 160_000)[..] {
            [Transition::Resolve(a)] => assert_eq!(a.subject, "redis:a"),
            other => panic!("expected a resolution, got {other:?}"),
        }
    }

    #[test]
    fn a_healing_storm_fires_under_the_nodes_of_its_ill_hosts() {
        let tags = |pdl: &str| BTreeMap::from([("pdl".to_string(), pdl.to_string())]);
        let mut facts = Facts {
            storm: Some(StormFact {
                message: "3 of 4 hosts ill".into(),
                ill_hosts: vec![tags("web"), tags("web"), tags("db")],
            }),
            ..Default::default()
        };
        let web = rule(Kind::HealingStorm, "pdl.web", 0);
        let held = holding(&web, &facts, 0);
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].0, STORM_SUBJECT);
        assert!(
            held[0].1.contains("2 of the ill hosts under pdl.web"),
            "{}",
            held[0].1
        );
        assert!(holding(&rule(Kind::HealingStorm, "pdl.web2", 0), &facts, 0).is_empty());
        assert_eq!(
            holding(&rule(Kind::HealingStorm, "", 0), &facts, 0).len(),
            1
        );
        // The storm ends: the alert resolves.
        let rules = vec![web];
        let mut ev = Evaluator::default();
        let mut records = HashMap::new();
        let t = ev.step(&rules, &facts, &records, 1_000);
        apply(&mut records, t);
        assert_eq!(records.len(), 1);
        facts.storm = None;
        match &ev.step(&rules, &facts, &records, 2_000)[..] {
            [Transition::Resolve(a)] => assert_eq!(a.subject, STORM_SUBJECT),
            other => panic!("expected a resolution, got {other:?}"),
        }
    }
}
