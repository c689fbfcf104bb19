//! Shared helpers: snapshot builders and an independent, brute-force
//! checker of every plan invariant (it re-derives everything from the
//! snapshot; it shares no code with the planner beyond the public types).

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ocean_scheduler_policies::*;

pub fn agent(id: &str, cpus: f64, mem: u64) -> Agent {
    Agent::new(id, Resources::new(cpus, mem, 0))
}

pub fn job(name: &str, tasks: usize, cpus: f64, mem: u64) -> JobRequest {
    JobRequest {
        job: name.into(),
        tasks: (0..tasks).map(|i| format!("{name}.{i}")).collect(),
        resources: Resources::new(cpus, mem, 0),
        pdl: "pdl.default".into(),
        service_path: format!("cop.x_owt.y_pdl.default_job.{name}"),
        ..JobRequest::default()
    }
}

pub fn running(id: &str, job: &str, agent: &str, cpus: f64, mem: u64) -> RunningTask {
    RunningTask {
        id: id.into(),
        job: job.into(),
        agent: agent.into(),
        resources: Resources::new(cpus, mem, 0),
        pdl: "pdl.default".into(),
        service_path: format!("cop.x_owt.y_pdl.default_job.{job}"),
        ..RunningTask::default()
    }
}

pub fn c(attr: &str, op: Operator, value: Option<&str>) -> Constraint {
    Constraint::new(attr, op, value)
}

/// Agent id of each placement of `job`, in order.
pub fn agents_of<'s>(plan: &Plan<'s>, job: &str) -> Vec<&'s str> {
    plan.placements_of(job).map(|p| p.agent).collect()
}

/// Value of an attribute per agent id.
pub fn attr_of<'s>(snap: &'s Snapshot, agent: &str, key: &str) -> Option<&'s str> {
    snap.agents
        .iter()
        .find(|a| a.id == agent)
        .and_then(|a| a.attribute(key))
}

fn regex_full(pattern: &str, value: &str) -> bool {
    thread_local! {
        static CACHE: std::cell::RefCell<HashMap<String, Option<regex::Regex>>> =
            std::cell::RefCell::new(HashMap::new());
    }
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        let re = cache
            .entry(pattern.to_string())
            .or_insert_with(|| regex::Regex::new(&format!("^(?:{pattern})$")).ok());
        re.as_ref().is_some_and(|re| re.is_match(value))
    })
}

/// Does `agent` pass a STATIC constraint?
fn static_ok(agent: &Agent, con: &Constraint) -> bool {
    let v = agent.attribute(&con.attribute);
    match con.operator {
        Operator::Cluster if con.value.is_none() => true, // dynamic: checked in the replay
        Operator::Is | Operator::Cluster => v.is_some() && v == con.value.as_deref(),
        Operator::Like => v.is_some_and(|v| regex_full(con.value.as_deref().unwrap_or(""), v)),
        Operator::Unlike => v.is_none_or(|v| !regex_full(con.value.as_deref().unwrap_or(""), v)),
        _ => true,
    }
}

/// Checks every invariant of `plan` against `snap`; panics with a message.
pub fn check_plan(snap: &Snapshot, plan: &Plan<'_>) {
    let first_agent: HashMap<&str, usize> = {
        let mut m = HashMap::new();
        for (i, a) in snap.agents.iter().enumerate() {
            m.entry(a.id.as_str()).or_insert(i);
        }
        m
    };
    let jobs: HashMap<&str, &JobRequest> = {
        let mut m = HashMap::new();
        for j in &snap.pending {
            m.entry(j.job.as_str()).or_insert(j);
        }
        m
    };

    // Completeness: every pending task exactly once.
    let mut seen: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for p in &plan.placements {
        *seen.entry((p.job, p.task)).or_default() += 1;
    }
    for u in &plan.unplaced {
        for t in &u.tasks {
            *seen.entry((u.job, *t)).or_default() += 1;
        }
        if let WaitReason::NoFit(e) = &u.reason {
            let sum: u32 = e.rejected.iter().map(|(_, n)| n).sum();
            assert_eq!(
                sum + e.agents_fit,
                e.agents_total,
                "explanation counts: {e}"
            );
            assert_eq!(e.agents_total as usize, snap.agents.len());
        }
    }
    let mut expected: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for j in &snap.pending {
        for t in &j.tasks {
            *expected.entry((j.job.as_str(), t.as_str())).or_default() += 1;
        }
    }
    assert_eq!(
        seen, expected,
        "every pending task is placed or unplaced exactly once"
    );
    assert_eq!(plan.stats.placed, plan.placements.len());
    assert_eq!(plan.stats.preempted, plan.preemptions.len());

    // Preemptions: lower priority, allowed, each victim once.
    let victims: BTreeSet<&str> = plan.preemptions.iter().map(|p| p.victim).collect();
    assert_eq!(
        victims.len(),
        plan.preemptions.len(),
        "a victim is preempted once"
    );
    for pr in &plan.preemptions {
        let victim = snap
            .running
            .iter()
            .find(|t| t.id == pr.victim)
            .expect("victim runs");
        let for_job = jobs[pr.for_job];
        assert!(for_job.preemption, "only jobs allowed to preempt do");
        assert!(
            victim.priority < for_job.priority,
            "only lower priorities are preempted"
        );
        assert_eq!(victim.agent, pr.agent);
        assert!(
            plan.placements
                .iter()
                .any(|p| p.task == pr.for_task && p.agent == pr.agent),
            "the preemptor is placed where room was made"
        );
    }

    // Replay: resources, ports and constraints, placement by placement.
    let n = snap.agents.len();
    let mut used: Vec<Resources> = snap.agents.iter().map(|a| a.reserved).collect();
    let mut ports: Vec<BTreeSet<u16>> = snap
        .agents
        .iter()
        .map(|a| a.reserved_ports.iter().copied().collect())
        .collect();
    let mut live: Vec<(&str, &str, usize, &RunningTask)> = Vec::new(); // (job, task, agent idx)
    for t in &snap.running {
        if let Some(&i) = first_agent.get(t.agent.as_str()) {
            used[i] = used[i].saturating_add(t.resources);
            ports[i].extend(t.ports.iter().copied());
            live.push((t.job.as_str(), t.id.as_str(), i, t));
        }
    }
    let mut placed: Vec<(&str, usize)> = Vec::new(); // (job, agent idx)
    let mut eligible_of: HashMap<&str, Vec<usize>> = HashMap::new();

    for p in &plan.placements {
        // Victims for this task leave first.
        for pr in plan
            .preemptions
            .iter()
            .filter(|pr| pr.for_task == p.task && pr.for_job == p.job)
        {
            let k = live
                .iter()
                .position(|(_, id, _, _)| *id == pr.victim)
                .expect("victim is live");
            let (_, _, i, t) = live.remove(k);
            used[i] = used[i].saturating_sub(t.resources);
            for port in &t.ports {
                ports[i].remove(port);
            }
        }
        let j = jobs[p.job];
        let i = *first_agent.get(p.agent).expect("placed on a known agent");
        let a = &snap.agents[i];
        assert!(
            a.is_online() || j.maintenance && a.is_maintainable(),
            "{} placed on agent {} which is not online",
            p.task,
            a.id
        );
        for need in &j.needs {
            assert!(
                a.executors.contains(need),
                "{} placed on agent {} without {need}",
                p.task,
                a.id
            );
        }

        // Constraints, given running + earlier placements of the job.
        let mut job_agents: Vec<usize> = live
            .iter()
            .filter(|(jn, ..)| *jn == p.job)
            .map(|(_, _, i, _)| *i)
            .collect();
        job_agents.extend(
            placed
                .iter()
                .filter(|(jn, _)| *jn == p.job)
                .map(|(_, i)| *i),
        );
        let eligible = eligible_of.entry(p.job).or_insert_with(|| {
            (0..n)
                .filter(|&k| {
                    let b = &snap.agents[k];
                    first_agent[b.id.as_str()] == k
                        && (b.is_online() || j.maintenance && b.is_maintainable())
                        && j.needs.iter().all(|n| b.executors.contains(n))
                        && j.constraints.iter().all(|c| static_ok(b, c))
                })
                .collect()
        });
        for con in &j.constraints {
            let v = a.attribute(&con.attribute);
            let count = |value: Option<&str>| {
                job_agents
                    .iter()
                    .filter(|&&k| {
                        value.is_some() && snap.agents[k].attribute(&con.attribute) == value
                    })
                    .count()
            };
            let ok = match con.operator {
                Operator::Unique => v.is_some() && count(v) == 0,
                Operator::MaxPer => {
                    let max: usize = con.value.as_deref().unwrap_or("0").parse().unwrap_or(0);
                    v.is_some() && count(v) < max
                }
                Operator::GroupBy => {
                    let values: BTreeSet<&str> = eligible
                        .iter()
                        .filter_map(|&k| snap.agents[k].attribute(&con.attribute))
                        .collect();
                    let min = values.iter().map(|val| count(Some(val))).min().unwrap_or(0);
                    v.is_some_and(|v| values.contains(v)) && count(v) == min
                }
                Operator::Cluster if con.value.is_none() => {
                    let used_values: BTreeSet<&str> = job_agents
                        .iter()
                        .filter_map(|&k| snap.agents[k].attribute(&con.attribute))
                        .collect();
                    v.is_some() && (used_values.is_empty() || used_values.contains(v.unwrap_or("")))
                }
                _ => static_ok(a, con),
            };
            assert!(ok, "{} on {} violates {}", p.task, a.id, con);
        }

        // Resources: each dimension fits in what was free.
        let free = a.capacity.saturating_sub(used[i]);
        assert!(
            free.covers(&j.resources),
            "agent {} overcommitted: {} placed with only {} free",
            a.id,
            j.resources,
            free
        );
        used[i] = used[i].saturating_add(j.resources);

        // Ports: one per request, in range, free, not reused.
        assert_eq!(p.ports.len(), j.ports.len());
        for (assigned, req) in p.ports.iter().zip(&j.ports) {
            assert_eq!(assigned.name, req.name);
            if let Some(fixed) = req.fixed {
                assert_eq!(assigned.port, fixed);
            }
            let in_range = a
                .port_ranges
                .iter()
                .any(|r| r.begin <= assigned.port && assigned.port <= r.end);
            assert!(in_range, "port {} outside {}'s ranges", assigned.port, a.id);
            assert!(
                ports[i].insert(assigned.port),
                "port {} reused on {}",
                assigned.port,
                a.id
            );
        }
        placed.push((p.job, i));
    }
}
