//! The events a seed draws: processes starting, finishing and failing,
//! agents refusing launches, lost and back, drained and undrained, jobs
//! scaled, the leader changing.

use ocean_master::kernel::state::{
    agent_unreachable_command, scale_job_command, set_agent_status_command, task_updates_command,
    RUNNING,
};
use ocean_master::reconcile::{liveness, reports, Host};
use ocean_proto::agent::TaskStatus;
use rand::Rng;

use super::agent::status;
use super::host::new_leader;
use super::SimCluster;

/// What kinds of events a simulation draws, by weight (0: never).
#[derive(Debug, Clone, Copy, Default)]
pub struct Mix {
    pub start: u32,
    pub finish: u32,
    pub fail: u32,
    pub refuse: u32,
    pub lose_agent: u32,
    pub agent_back: u32,
    pub drain: u32,
    pub undrain: u32,
    pub scale: u32,
    pub leader_change: u32,
}

impl SimCluster {
    /// Draws and applies one event of `mix`; returns its description.
    pub fn event(&mut self, mix: &Mix) -> Option<String> {
        let weights = [
            mix.start,
            mix.finish,
            mix.fail,
            mix.refuse,
            mix.lose_agent,
            mix.agent_back,
            mix.drain,
            mix.undrain,
            mix.scale,
            mix.leader_change,
        ];
        let total: u32 = weights.iter().sum();
        let mut pick = self.rng.gen_range(0..total.max(1));
        let mut kind = 0;
        for (i, w) in weights.iter().enumerate() {
            if pick < *w {
                kind = i;
                break;
            }
            pick -= w;
        }
        let e = match kind {
            0 => self.start_some(),
            1 => self.end_one("FINISHED", "exited"),
            2 => self.end_one("FAILED", "exited"),
            3 => self.toggle_refusal(),
            4 => self.lose_agent(),
            5 => self.agent_back(),
            6 => self.set_status("draining"),
            7 => self.set_status("online"),
            8 => self.scale(),
            _ => Some(self.change_leader()),
        };
        if let Some(e) = &e {
            self.note(e.clone());
        }
        e
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> Option<T> {
        if items.is_empty() {
            return None;
        }
        Some(items[self.rng.gen_range(0..items.len())].clone())
    }

    /// Processes that are not lost, as (agent, task).
    fn procs(&self, state: &str) -> Vec<(String, String)> {
        self.agents
            .iter()
            .filter(|(_, a)| !a.lost)
            .flat_map(|(id, a)| {
                a.procs
                    .iter()
                    .filter(|(_, p)| p.state == state)
                    .map(move |(t, _)| (id.clone(), t.clone()))
            })
            .collect()
    }

    /// Starts some launched processes: they report RUNNING.
    pub fn start_some(&mut self) -> Option<String> {
        let staging = self.procs("STAGING");
        let mut started = Vec::new();
        for (agent, task) in staging {
            if self.rng.gen_bool(0.5) {
                continue;
            }
            if let Some(p) = self
                .agents
                .get_mut(&agent)
                .and_then(|a| a.procs.get_mut(&task))
            {
                p.state = "RUNNING";
            }
            self.reports
                .push((agent.clone(), status(&task, RUNNING, "")));
            started.push(task);
        }
        (!started.is_empty()).then(|| format!("started {}", started.len()))
    }

    /// Starts every launched process.
    pub fn start_all(&mut self) {
        for (agent, task) in self.procs("STAGING") {
            if let Some(p) = self
                .agents
                .get_mut(&agent)
                .and_then(|a| a.procs.get_mut(&task))
            {
                p.state = "RUNNING";
            }
            self.reports.push((agent, status(&task, RUNNING, "")));
        }
    }

    fn end_one(&mut self, state: &'static str, reason: &str) -> Option<String> {
        let running = self.procs("RUNNING");
        let (agent, task) = self.pick(&running)?;
        self.agents.get_mut(&agent)?.end(&task, state);
        self.reports
            .push((agent.clone(), status(&task, state, reason)));
        Some(format!("task {task} on {agent}: {state}"))
    }

    fn toggle_refusal(&mut self) -> Option<String> {
        let ids: Vec<String> = self.agents.keys().cloned().collect();
        let id = self.pick(&ids)?;
        let a = self.agents.get_mut(&id)?;
        a.refuses = !a.refuses;
        Some(format!("{id} refuses launches: {}", a.refuses))
    }

    /// An agent goes silent: the leader's heartbeat check declares it
    /// unreachable (the real verdict: jobs without an unreachable strategy
    /// lose their tasks at once). Its processes keep running there.
    fn lose_agent(&mut self) -> Option<String> {
        let up: Vec<String> = self
            .agents
            .iter()
            .filter(|(_, a)| !a.lost)
            .map(|(id, _)| id.clone())
            .collect();
        // Keep most of the cluster up, so jobs can be placed.
        if up.len() * 2 <= self.agents.len() {
            return None;
        }
        let id = self.pick(&up)?;
        self.agents.get_mut(&id)?.lost = true;
        self.shared.connected.lock().unwrap().remove(&id);
        let now = self.leader.now_ms();
        let v = self
            .read(|st| liveness::verdict(&id, st.tasks_on(&id).map(|t| t.as_ref()), |_| 0, now));
        let lost = v.lost.len();
        self.commit(agent_unreachable_command(v));
        Some(format!("{id} lost ({lost} tasks LOST)"))
    }

    /// A lost agent registers again with a full report, handled as the
    /// real session does (reports::compare): updates, kills of tasks
    /// nobody wants, relaunches of tasks it never got.
    pub(super) fn agent_back(&mut self) -> Option<String> {
        let lost: Vec<String> = self
            .agents
            .iter()
            .filter(|(_, a)| a.lost)
            .map(|(id, _)| id.clone())
            .collect();
        let id = self.pick(&lost)?;
        self.agents.get_mut(&id)?.lost = false;
        self.register(&id);
        let statuses: Vec<TaskStatus> = self.agents[&id]
            .procs
            .iter()
            .map(|(t, p)| status(t, p.state, ""))
            .collect();
        let report = self.read(|st| reports::compare(&id, &statuses, st));
        let (updates, kills) = (report.updates.len(), report.kill.len());
        let now = self.leader.now_ms();
        let mut ups = report.updates;
        for u in &mut ups {
            u.received_ms = now;
        }
        if !ups.is_empty() {
            self.commit(task_updates_command(ups));
        }
        let a = self.agents.get_mut(&id)?;
        for t in &report.kill {
            a.end(t, "KILLED");
        }
        self.leader.scheduler().forget_launches(&report.relaunch);
        Some(format!(
            "{id} back: {updates} updates, {kills} unwanted tasks stopped"
        ))
    }

    fn set_status(&mut self, status: &str) -> Option<String> {
        let ids: Vec<String> = self.read(|st| {
            st.agents
                .values()
                .filter(|a| a.status != status)
                .map(|a| a.id.clone())
                .collect()
        });
        if status == "draining" {
            // Keep room for the replacements.
            let draining = self.read(|st| {
                st.agents
                    .values()
                    .filter(|a| a.status == "draining")
                    .count()
            });
            if (draining + 2) * 2 > self.agents.len() {
                return None;
            }
        }
        let id = self.pick(&ids)?;
        self.commit(set_agent_status_command(
            id.clone(),
            status.into(),
            String::new(),
        ));
        Some(format!("{id} set {status}"))
    }

    fn scale(&mut self) -> Option<String> {
        let jobs = self.jobs.clone();
        let job = self.pick(&jobs)?;
        let n = self.rng.gen_range(0..=6);
        self.commit(scale_job_command(job.clone(), n));
        Some(format!("scale {job} to {n}"))
    }

    /// The leader changes: the old reconciler is stopped (its memory is
    /// gone; messages it sent but the network had not delivered are lost
    /// with its streams, or some arrive late), and a fresh one leads the
    /// next term over the same replicated state.
    pub fn change_leader(&mut self) -> String {
        let next = self.leader.term + 1;
        {
            let mut inbox = self.shared.inbox.lock().unwrap();
            let rng = &mut self.rng;
            inbox.retain(|_| rng.gen_bool(0.5));
        }
        self.leader = new_leader(&self.shared, next);
        format!("leader change: term {next}")
    }
}
