//! Scale-down: which running tasks of a job to stop to reach N instances
//! while keeping `GROUP_BY` and `MAX_PER` balanced.
//!
//! Each victim is the task with the largest key, where the key is, in order:
//! 1. whether its agent is unknown or not online (those go first),
//! 2. for each `GROUP_BY` / `MAX_PER` constraint in the job's order, how many
//!    of the job's tasks share its attribute value (most loaded first),
//! 3. how many of the job's tasks share its agent,
//! 4. its task id (the greatest first; ids usually grow with time, so the
//!    newest instance goes first).
//!
//! Keys only decrease as tasks are removed, so a lazy max-heap (re-check the
//! top, push it back if its key went stale) picks victims in O(k log n).

use std::collections::{BinaryHeap, HashMap};

use crate::constraint::{Constraint, Operator};
use crate::snapshot::{Agent, RunningTask};

type Key<'s> = (bool, Vec<u32>, u32, &'s str);

/// Chooses which running tasks of `job` to stop so that `instances` remain.
/// Returns task ids in the order they were chosen (empty when the job has
/// `instances` tasks or fewer). Deterministic.
pub fn scale_down<'s>(
    agents: &[Agent],
    running: &'s [RunningTask],
    job: &str,
    constraints: &[Constraint],
    instances: usize,
) -> Vec<&'s str> {
    let tasks: Vec<&'s RunningTask> = running.iter().filter(|t| t.job == job).collect();
    if tasks.len() <= instances {
        return Vec::new();
    }
    let by_id: HashMap<&str, &Agent> = agents.iter().rev().map(|a| (a.id.as_str(), a)).collect();
    let balanced: Vec<&str> = constraints
        .iter()
        .filter(|c| matches!(c.operator, Operator::GroupBy | Operator::MaxPer))
        .map(|c| c.attribute.as_str())
        .collect();

    // values[t][c]: the attribute value of task t's agent for constraint c.
    let values: Vec<Vec<Option<&str>>> = tasks
        .iter()
        .map(|t| {
            let agent = by_id.get(t.agent.as_str());
            balanced
                .iter()
                .map(|attr| agent.and_then(|a| a.attribute(attr)))
                .collect()
        })
        .collect();
    let mut counts: Vec<HashMap<Option<&str>, u32>> = vec![HashMap::new(); balanced.len()];
    let mut per_agent: HashMap<&str, u32> = HashMap::new();
    for (t, vals) in tasks.iter().zip(&values) {
        for (c, v) in vals.iter().enumerate() {
            *counts[c].entry(*v).or_default() += 1;
        }
        *per_agent.entry(t.agent.as_str()).or_default() += 1;
    }

    let key = |k: usize,
               counts: &[HashMap<Option<&str>, u32>],
               per_agent: &HashMap<&str, u32>|
     -> Key<'s> {
        let t = tasks[k];
        let offline = by_id.get(t.agent.as_str()).is_none_or(|a| !a.is_online());
        let loads = values[k]
            .iter()
            .enumerate()
            .map(|(c, v)| counts[c].get(v).copied().unwrap_or(0))
            .collect();
        let here = per_agent.get(t.agent.as_str()).copied().unwrap_or(0);
        (offline, loads, here, t.id.as_str())
    };

    let mut heap: BinaryHeap<(Key<'s>, usize)> = (0..tasks.len())
        .map(|k| (key(k, &counts, &per_agent), k))
        .collect();
    let mut victims = Vec::with_capacity(tasks.len() - instances);
    while victims.len() < tasks.len() - instances {
        let Some((stale, k)) = heap.pop() else { break };
        let fresh = key(k, &counts, &per_agent);
        if fresh != stale {
            heap.push((fresh, k));
            continue;
        }
        for (c, v) in values[k].iter().enumerate() {
            if let Some(n) = counts[c].get_mut(v) {
                *n = n.saturating_sub(1);
            }
        }
        if let Some(n) = per_agent.get_mut(tasks[k].agent.as_str()) {
            *n = n.saturating_sub(1);
        }
        victims.push(tasks[k].id.as_str());
    }
    victims
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Resources;

    fn agents() -> Vec<Agent> {
        let mut v = Vec::new();
        for (i, idc) in ["a", "a", "b", "b", "c", "c"].iter().enumerate() {
            v.push(
                Agent::new(format!("h{i}"), Resources::new(8.0, 8192, 0)).with_attr("idc", *idc),
            );
        }
        v
    }

    fn task(id: &str, agent: &str) -> RunningTask {
        RunningTask {
            id: id.into(),
            job: "j".into(),
            agent: agent.into(),
            ..RunningTask::default()
        }
    }

    #[test]
    fn kills_from_the_most_loaded_group_first() {
        let agents = agents();
        // idc a: 4 tasks, b: 2, c: 1.
        let running = vec![
            task("t1", "h0"),
            task("t2", "h0"),
            task("t3", "h1"),
            task("t4", "h1"),
            task("t5", "h2"),
            task("t6", "h3"),
            task("t7", "h4"),
        ];
        let c = [Constraint::new("idc", Operator::GroupBy, None)];
        let victims = scale_down(&agents, &running, "j", &c, 3);
        assert_eq!(victims.len(), 4);
        let left: Vec<&str> = running
            .iter()
            .filter(|t| !victims.contains(&t.id.as_str()))
            .map(|t| agents.iter().find(|a| a.id == t.agent).unwrap().attributes["idc"].as_str())
            .collect();
        let mut left_sorted = left.clone();
        left_sorted.sort();
        assert_eq!(left_sorted, vec!["a", "b", "c"]);
        // Deterministic.
        assert_eq!(victims, scale_down(&agents, &running, "j", &c, 3));
    }

    #[test]
    fn offline_agents_lose_their_tasks_first_and_nothing_below_target() {
        let mut agents = agents();
        agents[5] = agents[5].clone().with_attr("status", "offline");
        let running = vec![task("t1", "h0"), task("t2", "h5"), task("t3", "h2")];
        let victims = scale_down(&agents, &running, "j", &[], 2);
        assert_eq!(victims, vec!["t2"]);
        assert!(scale_down(&agents, &running, "j", &[], 3).is_empty());
        assert!(scale_down(&agents, &running, "other", &[], 0).is_empty());
    }

    #[test]
    fn max_per_is_reduced_from_the_top() {
        let agents = agents();
        let running = vec![
            task("t1", "h0"),
            task("t2", "h0"),
            task("t3", "h0"),
            task("t4", "h2"),
        ];
        let c = [Constraint::new("hostname", Operator::MaxPer, Some("3"))];
        let victims = scale_down(&agents, &running, "j", &c, 2);
        assert_eq!(victims, vec!["t3", "t2"]);
    }
}
