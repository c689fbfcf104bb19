//! The planner's view of the cluster, kept by the leader across rounds.
//!
//! At 100,000 tasks, building every task's [`sp::RunningTask`] afresh each
//! round cost 100–160 ms of allocation (ids, job, agent, product line,
//! ports), and rounds run back to back while jobs arrive. The state hands
//! out tasks and agents as `Arc`s that are replaced whenever they change,
//! so a pointer comparison tells which entries are still valid: a round
//! now rebuilds only what changed since the previous one, and the vectors
//! are lent to the planner and given back rather than copied.
//!
//! Not replicated: a new leader starts empty and builds everything once.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use ocean_proto::internal::{Agent, Task};
use ocean_scheduler_policies as sp;

use super::job::JobView;

/// Live tasks as the planner charges them.
#[derive(Debug, Default)]
pub struct RunningCache {
    /// What the planner reads; order is not meaningful.
    tasks: Vec<sp::RunningTask>,
    /// Per entry of `tasks`: the task it was built from, and the version
    /// of its job's spec (the priority comes from the spec).
    src: Vec<(Arc<Task>, u64)>,
    /// Entry index by task id.
    by_id: foldhash::HashMap<String, usize>,
    /// Scratch: which entries this round's tasks matched.
    seen: Vec<bool>,
}

impl RunningCache {
    /// Brings the entries in line with `live` (every task not ended) and
    /// the current job specs. Returns how many entries were (re)built or
    /// dropped: zero means the planner sees the same tasks as before.
    pub fn update(
        &mut self,
        live: &[Arc<Task>],
        specs: &foldhash::HashMap<String, Arc<JobView>>,
    ) -> usize {
        self.seen.clear();
        self.seen.resize(self.tasks.len(), false);
        let mut built = 0;
        for t in live {
            let spec = specs.get(&t.job_id);
            let job_version = spec.map_or(0, |s| s.updated_version);
            match self.by_id.get(&t.id) {
                Some(&i) => {
                    self.seen[i] = true;
                    let (src, v) = &self.src[i];
                    if *v == job_version && (Arc::ptr_eq(src, t) || same_charge(src, t)) {
                        // A status report replaces the task's Arc but not
                        // what it holds: at 100,000 tasks, RUNNING reports
                        // arrive by the thousand between rounds.
                        self.src[i].0 = t.clone();
                        continue;
                    }
                    self.tasks[i] = running_task(t, spec.map(|s| s.as_ref()));
                    self.src[i] = (t.clone(), job_version);
                    built += 1;
                }
                None => {
                    self.by_id.insert(t.id.clone(), self.tasks.len());
                    self.tasks.push(running_task(t, spec.map(|s| s.as_ref())));
                    self.src.push((t.clone(), job_version));
                    self.seen.push(true);
                    built += 1;
                }
            }
        }
        // Entries no task matched have ended or were forgotten. Removed
        // from the back so that each swap moves an entry already checked.
        for i in (0..self.seen.len()).rev() {
            if self.seen[i] {
                continue;
            }
            built += 1;
            self.by_id.remove(&self.tasks[i].id);
            self.tasks.swap_remove(i);
            self.src.swap_remove(i);
            self.seen.swap_remove(i);
            if let Some(moved) = self.tasks.get(i) {
                self.by_id.insert(moved.id.clone(), i);
            }
        }
        built
    }

    /// Lends the entries to a snapshot; give them back with [`Self::restore`].
    pub fn take(&mut self) -> Vec<sp::RunningTask> {
        std::mem::take(&mut self.tasks)
    }

    /// Takes back what [`Self::take`] lent (unchanged by the planner).
    pub fn restore(&mut self, tasks: Vec<sp::RunningTask>) {
        if tasks.len() == self.src.len() {
            self.tasks = tasks;
        } else {
            // Never expected; start over rather than mismatch entries.
            *self = RunningCache::default();
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}

/// One live task as the planner charges it.
/// Whether two versions of a task hold the same for the planner.
fn same_charge(a: &Task, b: &Task) -> bool {
    a.id == b.id
        && a.job_id == b.job_id
        && a.agent_id == b.agent_id
        && a.cpus == b.cpus
        && a.mem_mib == b.mem_mib
        && a.disk_mib == b.disk_mib
        && a.ports.len() == b.ports.len()
        && a.ports.iter().zip(&b.ports).all(|(x, y)| x.port == y.port)
}

fn running_task(t: &Task, spec: Option<&JobView>) -> sp::RunningTask {
    sp::RunningTask {
        id: t.id.clone(),
        job: t.job_id.clone(),
        agent: t.agent_id.clone(),
        resources: sp::Resources::new(t.cpus, t.mem_mib, t.disk_mib),
        ports: t.ports.iter().map(|p| p.port as u16).collect(),
        priority: spec.map(|s| s.spec.priority).unwrap_or(0),
        pdl: spec.map(|s| s.pdl().to_string()).unwrap_or_default(),
        service_path: t.job_id.clone(),
    }
}

/// The agents as the planner sees them, rebuilt only when an agent or
/// its connection to this leader changed.
#[derive(Debug, Default)]
pub struct AgentCache {
    /// What the rebuild was made from: each agent and whether it was
    /// connected.
    key: Vec<(Arc<Agent>, bool)>,
    /// Agents for the planner, in the state's order.
    agents: Vec<sp::Agent>,
    /// Agents whose status moves their tasks off (draining, offline).
    leaving: HashSet<String>,
}

impl AgentCache {
    /// Brings the view in line with `agents` and the connected set;
    /// returns whether it was rebuilt.
    pub fn update(&mut self, agents: &[Arc<Agent>], connected: &HashSet<String>) -> bool {
        let same = self.key.len() == agents.len()
            && self
                .key
                .iter()
                .zip(agents)
                .all(|((k, c), a)| Arc::ptr_eq(k, a) && *c == connected.contains(&a.id));
        if same {
            return false;
        }
        self.key = agents
            .iter()
            .map(|a| (a.clone(), connected.contains(&a.id)))
            .collect();
        self.leaving = agents
            .iter()
            .filter(|a| {
                crate::kernel::state::moves_tasks_off(crate::kernel::state::agent_status(a))
            })
            .map(|a| a.id.clone())
            .collect();
        self.agents = self
            .key
            .iter()
            .map(|(a, connected)| planner_agent(a, *connected))
            .collect();
        true
    }

    /// The agents for the planner.
    pub fn agents(&self) -> &[sp::Agent] {
        &self.agents
    }

    /// Lends the agents to a snapshot; give them back with [`Self::restore`].
    pub fn take(&mut self) -> Vec<sp::Agent> {
        std::mem::take(&mut self.agents)
    }

    /// Takes back what [`Self::take`] lent.
    pub fn restore(&mut self, agents: Vec<sp::Agent>) {
        if agents.len() == self.key.len() {
            self.agents = agents;
        } else {
            *self = AgentCache::default();
        }
    }

    /// Agents whose status moves their tasks off.
    pub fn leaving(&self) -> &HashSet<String> {
        &self.leaving
    }
}

/// One agent as the planner sees it.
fn planner_agent(a: &Agent, connected: bool) -> sp::Agent {
    let mut attributes: BTreeMap<String, String> = a
        .attributes
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    attributes
        .entry(sp::ATTR_HOSTNAME.to_string())
        .or_insert_with(|| a.hostname.clone());
    // An agent without a stream to this leader gets nothing new;
    // otherwise the operator's status (else its own) decides.
    let status = if connected {
        crate::kernel::state::agent_status(a)
    } else {
        "disconnected"
    };
    attributes.insert(sp::ATTR_STATUS.into(), status.to_string());
    sp::Agent {
        id: a.id.clone(),
        capacity: sp::Resources::new(a.cpus, a.mem_mib, a.disk_mib),
        reserved: sp::Resources::default(),
        port_ranges: vec![sp::PortRange::new(a.port_low as u16, a.port_high as u16)],
        reserved_ports: Vec::new(),
        attributes,
        executors: super::job::offered_executors(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocean_proto::internal::TaskPort;

    fn task(id: &str, agent: &str, cpus: f64) -> Arc<Task> {
        Arc::new(Task {
            id: id.into(),
            job_id: "j".into(),
            agent_id: agent.into(),
            cpus,
            mem_mib: 64,
            ports: vec![TaskPort {
                name: "http".into(),
                port: 31_000,
            }],
            ..Default::default()
        })
    }

    fn sorted(c: &RunningCache) -> Vec<(String, String, u64)> {
        let mut v: Vec<_> = c
            .tasks
            .iter()
            .map(|t| (t.id.clone(), t.agent.clone(), t.resources.cpus_milli))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_status_report_rebuilds_nothing_but_a_move_does() {
        let specs = foldhash::HashMap::default();
        let mut c = RunningCache::default();
        let live = vec![task("t0", "a", 1.0), task("t1", "a", 1.0)];
        assert_eq!(c.update(&live, &specs), 2);
        // RUNNING: a new Arc holding the same charge.
        let mut running = Task::clone(&live[0]);
        running.state = "RUNNING".into();
        let live = vec![Arc::new(running), live[1].clone()];
        assert_eq!(c.update(&live, &specs), 0);
        // Another agent or another size is a different charge.
        let live = vec![live[0].clone(), task("t1", "b", 1.0)];
        assert_eq!(c.update(&live, &specs), 1);
        let live = vec![task("t0", "a", 2.0), live[1].clone()];
        assert_eq!(c.update(&live, &specs), 1);
        let mut fresh = RunningCache::default();
        fresh.update(&live, &specs);
        assert_eq!(sorted(&c), sorted(&fresh));
    }

    #[test]
    fn running_cache_matches_a_fresh_build_after_changes() {
        let specs = foldhash::HashMap::default();
        let mut c = RunningCache::default();
        let mut live: Vec<Arc<Task>> = (0..6).map(|i| task(&format!("t{i}"), "a", 1.0)).collect();
        assert_eq!(c.update(&live, &specs), 6);
        // Nothing changed: nothing rebuilt.
        assert_eq!(c.update(&live, &specs), 0);
        // One changed, two ended (one in the middle, the last), one new.
        live[1] = task("t1", "b", 2.0);
        live.remove(5);
        live.remove(2);
        live.push(task("t9", "c", 0.5));
        assert_eq!(c.update(&live, &specs), 4);
        let mut fresh = RunningCache::default();
        fresh.update(&live, &specs);
        assert_eq!(sorted(&c), sorted(&fresh));
        for (id, &i) in &c.by_id {
            assert_eq!(&c.tasks[i].id, id);
            assert_eq!(&c.src[i].0.id, id);
        }
        assert_eq!(c.by_id.len(), c.len());
        // Lent and given back.
        let lent = c.take();
        assert!(c.is_empty());
        c.restore(lent);
        assert_eq!(c.len(), 5);
        // Everything ended.
        assert_eq!(c.update(&[], &specs), 5);
        assert!(c.is_empty() && c.by_id.is_empty());
    }

    #[test]
    fn agent_cache_rebuilds_on_a_change_or_a_connection() {
        let a = Arc::new(Agent {
            id: "a".into(),
            hostname: "h".into(),
            cpus: 4.0,
            mem_mib: 1024,
            port_low: 31_000,
            port_high: 31_999,
            ..Default::default()
        });
        let mut c = AgentCache::default();
        let mut connected = HashSet::new();
        assert!(c.update(std::slice::from_ref(&a), &connected));
        assert_eq!(c.agents()[0].attributes[sp::ATTR_STATUS], "disconnected");
        assert!(!c.update(std::slice::from_ref(&a), &connected));
        connected.insert("a".to_string());
        assert!(c.update(std::slice::from_ref(&a), &connected));
        assert_eq!(c.agents()[0].attributes[sp::ATTR_HOSTNAME], "h");
        assert_ne!(c.agents()[0].attributes[sp::ATTR_STATUS], "disconnected");
        let changed = Arc::new(Agent {
            hostname: "h2".into(),
            ..Agent::clone(&a)
        });
        assert!(c.update(&[changed], &connected));
        assert_eq!(c.agents()[0].attributes[sp::ATTR_HOSTNAME], "h2");
    }
}
