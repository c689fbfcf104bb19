//! [`Model`]: the agent's view of the ELBs and their backends, turned into
//! the desired data plane incrementally: a watch event names the job,
//! task or ELB it changed, and only the ELBs it concerns are recomputed.
//!
//! ```text
//!  note(event) ─► dirty jobs / dirty ELB keys (a snapshot: everything)
//!  update(view) ─► ELBs fronting a dirty job, dirty ELBs ─► virtual_servers(elb)
//!               ─► PlaneState::set / remove per VS ─► Changes { delta }
//! ```
//!
//! A VS key belongs to one ELB (the first that claims it; the masters
//! refuse conflicting ELBs, so two claim one only through a stale spec).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use ocean_client::api::{event, Event};
use ocean_framework::View;
use tracing::warn;

use crate::backends::{has_health_checks, JobTasks};
use crate::plane::{virtual_servers, DataPlane, VirtualServer, VsKey};
use crate::plane_state::{Delta, PlaneState};
use crate::spec::ElbSpec;
use crate::store::{decode, PREFIX};
use crate::NAMESPACE;

/// What an [`Model::update`] changed in the plane.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// The plane was rebuilt from scratch: diff all of it.
    pub full: bool,
    /// Otherwise the only keys that may differ.
    pub delta: Delta,
    /// An ELB object itself changed (so may its VIPs).
    pub elbs_changed: bool,
}

/// What one ELB contributes, as last computed.
#[derive(Debug, Clone, Default)]
struct ElbPart {
    /// Its VS keys (claimed or not).
    vs: Vec<VsKey>,
    /// The backend jobs it fronts.
    jobs: Vec<String>,
}

/// The agent's model (see the module docs).
#[derive(Debug)]
pub struct Model {
    idc: Option<String>,
    /// Decoded ELBs by key, with the revision they were decoded at;
    /// unreadable ones as `None` (logged once per revision).
    elbs: BTreeMap<String, (u64, Option<ElbSpec>)>,
    /// Whether each job has health checks, by the job's updated version.
    checked: RefCell<HashMap<String, (u64, bool)>>,
    parts: HashMap<String, ElbPart>,
    /// ELB keys by the backend job they front.
    fronts: HashMap<String, BTreeSet<String>>,
    /// The ELB key each VS belongs to.
    owner: HashMap<VsKey, String>,
    state: PlaneState,
    dirty_jobs: HashSet<String>,
    dirty_elbs: BTreeSet<String>,
    full: bool,
}

impl Model {
    /// A model of the ELBs of `idc` (`None`: all); the first update
    /// computes everything.
    pub fn new(idc: Option<String>) -> Self {
        Model {
            idc,
            elbs: BTreeMap::new(),
            checked: RefCell::default(),
            parts: HashMap::new(),
            fronts: HashMap::new(),
            owner: HashMap::new(),
            state: PlaneState::default(),
            dirty_jobs: HashSet::new(),
            dirty_elbs: BTreeSet::new(),
            full: true,
        }
    }

    /// The desired plane as of the last update.
    pub fn plane(&self) -> &DataPlane {
        self.state.plane()
    }

    /// Notes what `ev` changes; call it before `view` applies it (a
    /// removed task's job is read from the view).
    pub fn note(&mut self, view: &View, ev: &Event) {
        match &ev.kind {
            Some(event::Kind::Snapshot(_)) => self.full = true,
            Some(event::Kind::JobPut(j)) => {
                self.dirty_jobs.insert(j.id.clone());
            }
            Some(event::Kind::JobDeleted(id)) => {
                self.checked.borrow_mut().remove(id);
                self.dirty_jobs.insert(id.clone());
            }
            Some(event::Kind::TaskPut(t)) => {
                self.dirty_jobs.insert(t.job_id.clone());
            }
            Some(event::Kind::TaskRemoved(id)) => {
                if let Some(t) = view.tasks.get(id) {
                    self.dirty_jobs.insert(t.job_id.clone());
                }
            }
            Some(event::Kind::KvPut(e)) | Some(event::Kind::KvDeleted(e))
                if e.namespace == NAMESPACE && e.key.starts_with(PREFIX) =>
            {
                self.dirty_elbs.insert(e.key.clone());
            }
            _ => {}
        }
    }

    /// The tasks of `job` in `view` (task ids are `<job id>.<suffix>`),
    /// and whether the job has health checks (unknown job: assumed to).
    pub fn tasks_of<'v>(&self, view: &'v View, job: &str) -> JobTasks<'v> {
        let prefix = format!("{job}.");
        let tasks = view
            .tasks
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(_, t)| t)
            .filter(|t| t.job_id == job)
            .collect();
        let checked = match view.jobs.get(job) {
            None => true,
            Some(j) => {
                let mut cache = self.checked.borrow_mut();
                match cache.get(job) {
                    Some((v, c)) if *v == j.updated_version => *c,
                    _ => {
                        let c = has_health_checks(&j.spec_json);
                        cache.insert(job.to_string(), (j.updated_version, c));
                        c
                    }
                }
            }
        };
        JobTasks { tasks, checked }
    }

    /// Brings the plane up to `view`, recomputing only what the noted
    /// events touched (everything after a snapshot). `installed` (the
    /// kernel's plane) lends table sizes to a plane built from scratch.
    pub fn update(&mut self, view: &View, installed: Option<&DataPlane>) -> Changes {
        let mut delta = Delta::default();
        if std::mem::take(&mut self.full) {
            self.dirty_jobs.clear();
            self.dirty_elbs.clear();
            self.parts.clear();
            self.fronts.clear();
            self.owner.clear();
            self.state = PlaneState::default();
            self.checked
                .borrow_mut()
                .retain(|job, _| view.jobs.contains_key(job));
            let keys: BTreeSet<String> = view.keys_under(PREFIX).map(|e| e.key.clone()).collect();
            self.elbs.retain(|k, _| keys.contains(k));
            for key in &keys {
                self.refresh_elb(view, key);
            }
            for key in &keys {
                self.recompute(view, key, installed, &mut delta);
            }
            return Changes {
                full: true,
                delta,
                elbs_changed: true,
            };
        }
        let mut todo = std::mem::take(&mut self.dirty_elbs);
        let elbs_changed = !todo.is_empty();
        for key in &todo {
            self.refresh_elb(view, key);
        }
        for job in std::mem::take(&mut self.dirty_jobs) {
            if let Some(elbs) = self.fronts.get(&job) {
                todo.extend(elbs.iter().cloned());
            }
        }
        for key in &todo {
            self.recompute(view, key, installed, &mut delta);
        }
        Changes {
            full: false,
            delta,
            elbs_changed,
        }
    }

    /// Every VS of the plane with its ELB and real servers in rotation.
    pub fn virtual_servers(&self) -> impl Iterator<Item = &VirtualServer> {
        self.state.virtual_servers()
    }

    /// The VIPs of the ELBs this model serves (its idc's), as of the last
    /// update: what the LB host's keepalived moves.
    pub fn vips(&self) -> BTreeSet<std::net::Ipv4Addr> {
        self.elbs
            .values()
            .filter_map(|(_, s)| s.as_ref())
            .filter(|s| self.idc.as_deref().is_none_or(|i| s.idc == i))
            .flat_map(|s| s.vip_addrs())
            .collect()
    }

    /// Decodes the ELB under `key` again if its revision moved; drops it
    /// when the view no longer has it.
    fn refresh_elb(&mut self, view: &View, key: &str) {
        let Some(e) = view.keys.get(key) else {
            self.elbs.remove(key);
            return;
        };
        if self
            .elbs
            .get(key)
            .is_some_and(|(rev, _)| *rev == e.revision)
        {
            return;
        }
        let spec = decode(&e.key, &e.value)
            .map_err(|error| warn!(%error, "skipping an ELB"))
            .ok();
        self.elbs.insert(key.to_string(), (e.revision, spec));
    }

    /// Recomputes the VS of the ELB under `key` and puts them in the plane.
    fn recompute(
        &mut self,
        view: &View,
        key: &str,
        installed: Option<&DataPlane>,
        delta: &mut Delta,
    ) {
        let spec = self
            .elbs
            .get(key)
            .and_then(|(_, s)| s.as_ref())
            .filter(|s| self.idc.as_deref().is_none_or(|i| s.idc == i));
        let (vss, jobs): (Vec<VirtualServer>, Vec<String>) = match spec {
            None => Default::default(),
            Some(s) => (
                virtual_servers([s], &|job| self.tasks_of(view, job)),
                s.listeners.iter().map(|l| l.backend_job.clone()).collect(),
            ),
        };
        let old = self.parts.remove(key).unwrap_or_default();
        for job in &old.jobs {
            if let Some(set) = self.fronts.get_mut(job) {
                set.remove(key);
                if set.is_empty() {
                    self.fronts.remove(job);
                }
            }
        }
        let mut released = Vec::new();
        for k in &old.vs {
            if !vss.iter().any(|v| v.key == *k)
                && self.owner.get(k).map(String::as_str) == Some(key)
            {
                self.owner.remove(k);
                self.state.remove(k, delta);
                released.push(*k);
            }
        }
        for vs in &vss {
            let owner = self.owner.entry(vs.key).or_insert_with(|| key.to_string());
            if owner.as_str() == key {
                self.state.set(vs, installed, delta);
            } else {
                warn!(vs = %vs.key, elb = key, owner = %owner, "VS claimed by another ELB; skipped");
            }
        }
        for job in &jobs {
            self.fronts
                .entry(job.clone())
                .or_default()
                .insert(key.to_string());
        }
        self.parts.insert(
            key.to_string(),
            ElbPart {
                vs: vss.iter().map(|v| v.key).collect(),
                jobs,
            },
        );
        // A VS this ELB let go of may be another's to serve now.
        for k in released {
            let heirs: Vec<String> = self
                .parts
                .iter()
                .filter(|(e, p)| e.as_str() != key && p.vs.contains(&k))
                .map(|(e, _)| e.clone())
                .collect();
            if let Some(heir) = heirs.into_iter().min() {
                self.recompute(view, &heir, installed, delta);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plane::desired;
    use crate::spec::{Algorithm, Listener, Network, Protocol};
    use ocean_client::api::{KvEntry, Snapshot, Task, TaskPort};

    fn job(v: usize) -> String {
        format!("cop.x_owt.y_pdl.web_servicegroup.g_service.s{v}_job.j{v}_cluster.c3")
    }

    fn elb(v: usize, idc: &str) -> ElbSpec {
        ElbSpec {
            name: format!("pdl.web_service.s{v}"),
            idc: idc.into(),
            network: Network::Internal,
            vips: vec![format!("10.0.0.{}", v + 1)],
            listeners: vec![Listener {
                port: 80,
                protocol: Protocol::Tcp,
                backend_job: job(v),
                backend_port_name: "http".into(),
                algorithm: Algorithm::Rr,
                weight: 1,
            }],
            domain: None,
            views: Vec::new(),
        }
    }

    fn kv(spec: &ElbSpec, revision: u64) -> KvEntry {
        KvEntry {
            namespace: NAMESPACE.into(),
            key: crate::store::key(&spec.name),
            value: serde_json::to_vec(spec).unwrap(),
            revision,
            created_revision: 1,
        }
    }

    fn task(v: usize, n: usize) -> Task {
        Task {
            id: format!("{}.{n}", job(v)),
            job_id: job(v),
            state: "RUNNING".into(),
            address: format!("10.1.{v}.{}", n + 10),
            // No job record in these views: its tasks wait for a verdict.
            healthy: Some(true),
            ports: vec![TaskPort {
                name: "http".into(),
                port: 8080,
            }],
            ..Default::default()
        }
    }

    fn ev(version: u64, kind: event::Kind) -> Event {
        Event {
            version,
            kind: Some(kind),
            last_of_version: true,
        }
    }

    /// Applies `e` as the agent does: noted, then applied.
    fn apply(m: &mut Model, view: &mut View, e: Event) {
        m.note(view, &e);
        view.apply(e);
    }

    /// The plane computed from scratch over `view`, as before incremental
    /// updates existed.
    fn from_scratch(view: &View, idc: Option<&str>, installed: Option<&DataPlane>) -> DataPlane {
        let m = Model::new(None);
        let elbs: Vec<ElbSpec> = view
            .keys_under(PREFIX)
            .filter_map(|e| decode(&e.key, &e.value).ok())
            .filter(|s| idc.is_none_or(|i| s.idc == i))
            .collect();
        desired(&virtual_servers(&elbs, &|j| m.tasks_of(view, j)), installed)
    }

    fn snapshot(elbs: &[ElbSpec], tasks: Vec<Task>) -> Event {
        ev(
            1,
            event::Kind::Snapshot(Snapshot {
                version: 1,
                tasks,
                kv: elbs.iter().map(|e| kv(e, 1)).collect(),
                ..Default::default()
            }),
        )
    }

    #[test]
    fn the_vips_are_those_of_the_idc_served_and_follow_the_elbs() {
        let elbs = [elb(0, "c3"), elb(1, "c4"), elb(2, "c3")];
        let mut view = View::new(NAMESPACE);
        let mut m = Model::new(Some("c3".into()));
        apply(&mut m, &mut view, snapshot(&elbs, vec![]));
        assert!(m.update(&view, None).elbs_changed);
        let ips = |m: &Model| m.vips().iter().map(|v| v.to_string()).collect::<Vec<_>>();
        assert_eq!(ips(&m), ["10.0.0.1", "10.0.0.3"]);
        // A task change touches no ELB object.
        apply(&mut m, &mut view, ev(2, event::Kind::TaskPut(task(0, 0))));
        assert!(!m.update(&view, None).elbs_changed);
        // An ELB deleted: its VIP goes.
        let gone = kv(&elbs[2], 1);
        apply(&mut m, &mut view, ev(3, event::Kind::KvDeleted(gone)));
        assert!(m.update(&view, None).elbs_changed);
        assert_eq!(ips(&m), ["10.0.0.1"]);
    }

    #[test]
    fn a_task_change_recomputes_its_elb_only_and_matches_a_full_computation() {
        let elbs: Vec<ElbSpec> = (0..3).map(|v| elb(v, "c3")).collect();
        let tasks = (0..3)
            .flat_map(|v| (0..4).map(move |n| task(v, n)))
            .collect();
        let mut view = View::new(NAMESPACE);
        let mut m = Model::new(None);
        apply(&mut m, &mut view, snapshot(&elbs, tasks));
        let first = m.update(&view, None);
        assert!(first.full);
        assert_eq!(m.plane(), &from_scratch(&view, None, None));
        let before = m.plane().clone();

        // Task 2 of ELB 1 turns unhealthy.
        let mut t = task(1, 2);
        t.healthy = Some(false);
        apply(&mut m, &mut view, ev(2, event::Kind::TaskPut(t.clone())));
        let c = m.update(&view, None);
        assert!(!c.full);
        assert_eq!(
            c.delta.vs,
            BTreeSet::from([elb(1, "c3").endpoints_keys()[0]])
        );
        assert_eq!(
            c.delta.addrs,
            BTreeSet::from(["10.1.1.12".parse().unwrap()])
        );
        assert_eq!(m.plane(), &from_scratch(&view, None, Some(&before)));
        // Its tables are the very ones of before, but ELB 1's.
        for v in [0, 2] {
            let k = elb(v, "c3").endpoints_keys()[0];
            assert!(m.plane().slots[&k].same(&before.slots[&k]));
        }

        // A task removed, an unrelated job's task: the same rule.
        let mid = m.plane().clone();
        apply(
            &mut m,
            &mut view,
            ev(3, event::Kind::TaskRemoved(task(2, 0).id)),
        );
        let mut other = task(9, 0);
        other.job_id = "cop.other_job.x".into();
        other.id = "cop.other_job.x.1".into();
        apply(&mut m, &mut view, ev(4, event::Kind::TaskPut(other)));
        let c = m.update(&view, None);
        assert_eq!(
            c.delta.vs,
            BTreeSet::from([elb(2, "c3").endpoints_keys()[0]])
        );
        assert_eq!(m.plane(), &from_scratch(&view, None, Some(&mid)));

        // Nothing noted: nothing to do.
        assert!(m.update(&view, None).delta.is_empty());
    }

    #[test]
    fn elbs_come_go_and_move_between_idcs() {
        let elbs: Vec<ElbSpec> = (0..2).map(|v| elb(v, "c3")).collect();
        let tasks = (0..3)
            .flat_map(|v| (0..2).map(move |n| task(v, n)))
            .collect();
        let mut view = View::new(NAMESPACE);
        let mut m = Model::new(Some("c3".into()));
        apply(&mut m, &mut view, snapshot(&elbs, tasks));
        m.update(&view, None);
        // A new ELB of this idc, one moved to another idc, one deleted.
        apply(
            &mut m,
            &mut view,
            ev(2, event::Kind::KvPut(kv(&elb(2, "c3"), 2))),
        );
        apply(
            &mut m,
            &mut view,
            ev(3, event::Kind::KvPut(kv(&elb(1, "c4"), 3))),
        );
        let c = m.update(&view, None);
        assert_eq!(
            c.delta.vs,
            BTreeSet::from([
                elb(1, "c3").endpoints_keys()[0],
                elb(2, "c3").endpoints_keys()[0]
            ])
        );
        let before = m.plane().clone();
        assert_eq!(m.plane(), &from_scratch(&view, Some("c3"), None));
        assert_eq!(m.plane().services.len(), 2);
        apply(
            &mut m,
            &mut view,
            ev(4, event::Kind::KvDeleted(kv(&elb(0, "c3"), 4))),
        );
        m.update(&view, None);
        assert_eq!(m.plane(), &from_scratch(&view, Some("c3"), Some(&before)));
        assert_eq!(m.plane().services.len(), 1);
        assert!(m.plane().rs_addrs.iter().all(|a| a.octets()[2] == 2));
    }

    #[test]
    fn a_vs_claimed_twice_serves_one_elb_and_passes_on_when_it_leaves() {
        // ELB "a" and a stale ELB "b" on the same VIP:port.
        let a = elb(0, "c3");
        let mut b = elb(1, "c3");
        b.vips = a.vips.clone();
        let tasks = (0..2)
            .flat_map(|v| (0..2).map(move |n| task(v, n)))
            .collect();
        let mut view = View::new(NAMESPACE);
        let mut m = Model::new(None);
        apply(&mut m, &mut view, snapshot(&[a.clone(), b.clone()], tasks));
        m.update(&view, None);
        let k = a.endpoints_keys()[0];
        let owner_addr = |m: &Model| m.plane().slots[&k].slots[&0].addr.octets()[2];
        assert_eq!(owner_addr(&m), 0, "the first key in order serves");
        apply(&mut m, &mut view, ev(2, event::Kind::KvDeleted(kv(&a, 2))));
        let c = m.update(&view, None);
        assert!(c.delta.vs.contains(&k));
        assert_eq!(owner_addr(&m), 1, "the other ELB takes over");
        assert_eq!(m.plane().rs_addrs.len(), 2);
    }

    /// Random watch events against a model of idc c3: after every update
    /// the plane equals a computation from scratch, and the delta's script
    /// equals the whole diff's (nothing the change touched is missed).
    #[test]
    fn random_events_keep_the_incremental_plane_and_script_exact() {
        use crate::nft::MemoryNft;
        use crate::nft_script::{script, script_delta};
        use crate::programmer::Programmer;
        use ocean_client::api::Job;

        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let elbs: Vec<ElbSpec> = (0..6)
            .map(|v| elb(v, if v % 3 == 2 { "c4" } else { "c3" }))
            .collect();
        let mut tasks: Vec<Task> = (0..6)
            .flat_map(|v| (0..4).map(move |n| task(v, n)))
            .collect();
        let mut view = View::new(NAMESPACE);
        let mut m = Model::new(Some("c3".into()));
        apply(&mut m, &mut view, snapshot(&elbs, tasks.clone()));
        let mut prog = Programmer::new(Box::new(MemoryNft::default()));
        let c = m.update(&view, prog.installed());
        assert!(c.full);
        prog.sync(m.plane()).unwrap();
        let mut version = 2;
        let mut rev = 2;
        let mut next_task = 10;
        for step in 0..400 {
            for _ in 0..=rnd(3) {
                version += 1;
                let kind = match rnd(7) {
                    0 | 1 => {
                        let i = rnd(tasks.len());
                        let t = &mut tasks[i];
                        t.healthy = Some(t.healthy != Some(true));
                        event::Kind::TaskPut(t.clone())
                    }
                    2 if tasks.len() > 4 => {
                        let t = tasks.swap_remove(rnd(tasks.len()));
                        event::Kind::TaskRemoved(t.id)
                    }
                    2 | 3 => {
                        let v = rnd(6);
                        let mut t = task(v, next_task);
                        t.address = format!("10.2.{v}.{}", next_task % 250);
                        // Without a verdict yet: in only if its job has
                        // no health checks.
                        if rnd(2) == 0 {
                            t.healthy = None;
                        }
                        next_task += 1;
                        tasks.push(t.clone());
                        event::Kind::TaskPut(t)
                    }
                    4 => {
                        // An ELB changes idc or the job it fronts.
                        let v = rnd(6);
                        let mut e = elb(v, if rnd(3) == 0 { "c4" } else { "c3" });
                        e.listeners[0].backend_job = job(rnd(6));
                        rev += 1;
                        event::Kind::KvPut(kv(&e, rev))
                    }
                    5 => {
                        rev += 1;
                        event::Kind::KvDeleted(kv(&elb(rnd(6), "c3"), rev))
                    }
                    _ => {
                        // A job gains or loses health checks: its tasks
                        // without a verdict come or go.
                        let v = rnd(6);
                        let checks = if rnd(2) == 0 { "[{}]" } else { "[]" };
                        event::Kind::JobPut(Job {
                            id: job(v),
                            spec_json: format!(r#"{{"health_checks":{checks}}}"#).into_bytes(),
                            updated_version: version,
                            ..Default::default()
                        })
                    }
                };
                apply(&mut m, &mut view, ev(version, kind));
            }
            let before = prog.installed().cloned().unwrap();
            let ids = prog.ids().clone();
            let c = m.update(&view, prog.installed());
            assert!(!c.full);
            assert_eq!(
                m.plane(),
                &from_scratch(&view, Some("c3"), Some(&before)),
                "step {step}"
            );
            assert_eq!(
                script_delta(&before, &ids, m.plane(), &c.delta),
                script(Some((&before, &ids)), m.plane()),
                "step {step}"
            );
            prog.sync_delta(m.plane(), &c.delta).unwrap();
            assert_eq!(prog.installed(), Some(m.plane()), "step {step}");
        }
    }

    trait Keys {
        fn endpoints_keys(&self) -> Vec<VsKey>;
    }

    impl Keys for ElbSpec {
        fn endpoints_keys(&self) -> Vec<VsKey> {
            self.endpoints()
                .into_iter()
                .map(|(vip, proto, port)| VsKey { vip, proto, port })
                .collect()
        }
    }
}
