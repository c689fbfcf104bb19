//! The DNS server's view of the cluster, kept from the watch stream, and the
//! records each part of it produces.
//!
//! Records are grouped by [`Owner`]: a job owns its name, its tasks' names
//! and its SRV names; an agent its name; the masters `leader.` and
//! `masters.`. A change marks owners dirty and only their records are
//! recomputed, so one task's status change touches one job.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use ocean_proto::v1::{event, Agent, Event, Job, Task};
use ocean_spec::dns::{self as names, AGENTS_LABEL};
use ocean_spec::{JobSpec, PortProtocol};

use crate::views::Views;

/// Who a set of records belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    /// A job: its name, its serving tasks' names, its SRV names.
    Job(String),
    /// An agent's name.
    Agent(String),
    /// `leader.<domain>` and `masters.<domain>`.
    Masters,
    /// A load balancer of the ELB framework: its domain name, at its VIPs.
    Elb(String),
}

/// The ELB framework's namespace and key prefix: its objects are read here
/// as plain JSON (`domain`, `vips`, `views`), so the DNS server needs nothing of the
/// framework's crate.
pub const ELB_NAMESPACE: &str = "elb";
const ELB_PREFIX: &str = "elbs/";

/// What the DNS server keeps of a load balancer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ElbInfo {
    /// Its domain name (lowercase, no final dot).
    domain: String,
    /// Its VIPs, sorted.
    vips: Vec<IpAddr>,
    /// Its answers by client network.
    views: Option<Arc<Views>>,
}

/// One SRV target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    /// The host port.
    pub port: u16,
    /// The task's own name.
    pub target: String,
}

/// The records at one name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    /// A and AAAA.
    pub addrs: Vec<IpAddr>,
    /// SRV.
    pub srv: Vec<Srv>,
    /// Other A/AAAA answers for some client networks (`addrs` is the
    /// answer for the rest).
    pub views: Option<Arc<Views>>,
}

/// What the DNS server keeps of a job.
#[derive(Debug, Clone)]
struct JobInfo {
    /// Full name in the zone (lowercase, no final dot), if it has one.
    name: Option<String>,
    /// Tasks then need `healthy == Some(true)` to be served.
    has_health_checks: bool,
    /// Port names and protocols, in spec order (tasks' ports match by name).
    ports: Vec<(String, PortProtocol)>,
}

/// The cluster as the DNS server needs it.
#[derive(Debug)]
pub struct Model {
    domain: String,
    jobs: HashMap<String, JobInfo>,
    tasks: HashMap<String, Task>,
    by_job: HashMap<String, BTreeSet<String>>,
    agents: HashMap<String, Agent>,
    /// Job name -> every job claiming it (the smallest id owns it).
    claims: HashMap<String, BTreeSet<String>>,
    /// Load balancers with a domain name, by ELB name.
    elbs: HashMap<String, ElbInfo>,
    /// Address of the leader, and of every master.
    leader: Option<IpAddr>,
    masters: Vec<IpAddr>,
}

/// Whether a task gets records: running, not being stopped or drained
/// before its stop, and healthy when its job has health checks.
pub fn serves(task: &Task, job_has_health_checks: bool) -> bool {
    task.state == "RUNNING"
        && !task.kill_requested
        && task.draining_since_ms == 0
        && (!job_has_health_checks || task.healthy == Some(true))
}

/// The ELB's name when `namespace`/`key` is an ELB object.
fn elb_name<'a>(namespace: &str, key: &'a str) -> Option<&'a str> {
    (namespace == ELB_NAMESPACE)
        .then(|| key.strip_prefix(ELB_PREFIX))
        .flatten()
        .filter(|n| !n.is_empty())
}

/// The task's address: `address`, else `host` when that is an IP.
fn task_addr(task: &Task) -> Option<IpAddr> {
    task.address.parse().ok().or_else(|| task.host.parse().ok())
}

impl Model {
    /// An empty view for `domain`.
    pub fn new(domain: &str) -> Self {
        Model {
            domain: domain.to_string(),
            jobs: HashMap::new(),
            tasks: HashMap::new(),
            by_job: HashMap::new(),
            agents: HashMap::new(),
            claims: HashMap::new(),
            elbs: HashMap::new(),
            leader: None,
            masters: Vec::new(),
        }
    }

    /// Every owner that has (or may have) records.
    pub fn owners(&self) -> Vec<Owner> {
        let mut out: Vec<Owner> = self.jobs.keys().cloned().map(Owner::Job).collect();
        out.extend(self.agents.keys().cloned().map(Owner::Agent));
        out.extend(self.elbs.keys().cloned().map(Owner::Elb));
        out.push(Owner::Masters);
        out
    }

    /// Applies one event of the watch stream; returns the owners whose
    /// records may have changed. A snapshot replaces everything and marks
    /// every owner, old and new, dirty.
    pub fn apply(&mut self, ev: Event) -> Vec<Owner> {
        match ev.kind {
            Some(event::Kind::Snapshot(s)) => {
                let mut dirty = self.owners();
                let (leader, masters) = (self.leader.take(), std::mem::take(&mut self.masters));
                *self = Model::new(&self.domain);
                self.leader = leader;
                self.masters = masters;
                for j in s.jobs {
                    self.put_job(j);
                }
                for a in s.agents {
                    self.agents.insert(a.id.clone(), a);
                }
                for t in s.tasks {
                    self.put_task(t);
                }
                for kv in s.kv {
                    self.put_kv(&kv.namespace, &kv.key, &kv.value);
                }
                dirty.extend(self.owners());
                dirty.sort();
                dirty.dedup();
                dirty
            }
            Some(event::Kind::JobPut(j)) => self.put_job(j),
            Some(event::Kind::JobDeleted(id)) => self.delete_job(&id),
            Some(event::Kind::AgentPut(a)) => {
                let owner = Owner::Agent(a.id.clone());
                self.agents.insert(a.id.clone(), a);
                vec![owner]
            }
            Some(event::Kind::TaskPut(t)) => self.put_task(t),
            Some(event::Kind::TaskRemoved(id)) => match self.tasks.remove(&id) {
                Some(t) => {
                    if let Some(set) = self.by_job.get_mut(&t.job_id) {
                        set.remove(&id);
                    }
                    vec![Owner::Job(t.job_id)]
                }
                None => Vec::new(),
            },
            Some(event::Kind::KvPut(kv)) => self.put_kv(&kv.namespace, &kv.key, &kv.value),
            Some(event::Kind::KvDeleted(kv)) => self.delete_kv(&kv.namespace, &kv.key),
            None => Vec::new(),
        }
    }

    /// Records where the leader and the masters are; returns whether that
    /// changed anything.
    pub fn set_masters(&mut self, leader: Option<IpAddr>, mut masters: Vec<IpAddr>) -> bool {
        masters.sort();
        masters.dedup();
        let changed = self.leader != leader || self.masters != masters;
        self.leader = leader;
        self.masters = masters;
        changed
    }

    fn put_job(&mut self, job: Job) -> Vec<Owner> {
        let spec: Option<JobSpec> = serde_json::from_slice(&job.spec_json).ok();
        let info = JobInfo {
            name: names::job_name(&job.id, &self.domain),
            has_health_checks: spec.as_ref().is_some_and(|s| !s.health_checks.is_empty()),
            ports: spec
                .map(|s| s.ports.into_iter().map(|p| (p.name, p.protocol)).collect())
                .unwrap_or_default(),
        };
        let mut dirty = self.unclaim(&job.id);
        if let Some(name) = &info.name {
            let set = self.claims.entry(name.clone()).or_default();
            set.insert(job.id.clone());
            dirty.extend(set.iter().cloned().map(Owner::Job));
        }
        dirty.push(Owner::Job(job.id.clone()));
        if let Some(name) = &info.name {
            dirty.extend(self.elbs_named(name).map(Owner::Elb));
        }
        self.jobs.insert(job.id, info);
        dirty
    }

    fn delete_job(&mut self, id: &str) -> Vec<Owner> {
        let mut dirty = self.unclaim(id);
        self.jobs.remove(id);
        dirty.push(Owner::Job(id.to_string()));
        dirty
    }

    /// Drops `id`'s claim on its current name; the other claimants are
    /// dirty (one of them may own the name now).
    fn unclaim(&mut self, id: &str) -> Vec<Owner> {
        let Some(name) = self.jobs.get(id).and_then(|j| j.name.clone()) else {
            return Vec::new();
        };
        let Some(set) = self.claims.get_mut(&name) else {
            return Vec::new();
        };
        set.remove(id);
        let mut dirty: Vec<Owner> = set.iter().cloned().map(Owner::Job).collect();
        if set.is_empty() {
            self.claims.remove(&name);
            // An ELB of that domain may answer for it now.
            dirty.extend(self.elbs_named(&name).map(Owner::Elb));
        }
        dirty
    }

    /// An ELB object written: its name and VIPs when it has a domain in
    /// the zone. Unreadable objects and names outside the zone give no
    /// records (the framework validates what it stores).
    fn put_kv(&mut self, namespace: &str, key: &str, value: &[u8]) -> Vec<Owner> {
        let Some(name) = elb_name(namespace, key) else {
            return Vec::new();
        };
        #[derive(serde::Deserialize)]
        struct Elb {
            #[serde(default)]
            domain: Option<String>,
            #[serde(default)]
            vips: Vec<String>,
            #[serde(default)]
            views: Vec<View>,
        }
        #[derive(serde::Deserialize)]
        struct View {
            #[serde(default)]
            subnets: Vec<String>,
            #[serde(default)]
            vips: Vec<String>,
        }
        fn parsed<T: std::str::FromStr>(v: &[String]) -> Vec<T> {
            v.iter().filter_map(|x| x.parse().ok()).collect()
        }
        let info = serde_json::from_slice::<Elb>(value).ok().and_then(|e| {
            let domain = e.domain?.trim_end_matches('.').to_ascii_lowercase();
            let in_zone = domain
                .strip_suffix(&self.domain)
                .is_some_and(|head| head.ends_with('.') && head.len() > 1);
            let mut vips: Vec<IpAddr> = parsed(&e.vips);
            vips.sort();
            vips.dedup();
            let views = Views::new(
                e.views
                    .iter()
                    .map(|v| (parsed(&v.subnets), parsed(&v.vips))),
            )
            .map(Arc::new);
            in_zone.then_some(ElbInfo {
                domain,
                vips,
                views,
            })
        });
        let mut dirty = self.delete_kv(namespace, key);
        if let Some(info) = info {
            dirty.extend(self.elbs_named(&info.domain).map(Owner::Elb));
            self.elbs.insert(name.to_string(), info);
            dirty.push(Owner::Elb(name.to_string()));
        }
        dirty.sort();
        dirty.dedup();
        dirty
    }

    fn delete_kv(&mut self, namespace: &str, key: &str) -> Vec<Owner> {
        let Some(name) = elb_name(namespace, key) else {
            return Vec::new();
        };
        let Some(old) = self.elbs.remove(name) else {
            return Vec::new();
        };
        // Another ELB of the same domain may own the name now.
        let mut dirty: Vec<Owner> = self.elbs_named(&old.domain).map(Owner::Elb).collect();
        dirty.push(Owner::Elb(name.to_string()));
        dirty
    }

    /// The ELBs whose domain is `domain`.
    fn elbs_named<'a>(&'a self, domain: &'a str) -> impl Iterator<Item = String> + 'a {
        self.elbs
            .iter()
            .filter(move |(_, e)| e.domain == domain)
            .map(|(n, _)| n.clone())
    }

    fn put_task(&mut self, task: Task) -> Vec<Owner> {
        let owner = Owner::Job(task.job_id.clone());
        self.by_job
            .entry(task.job_id.clone())
            .or_default()
            .insert(task.id.clone());
        self.tasks.insert(task.id.clone(), task);
        vec![owner]
    }

    /// The records `owner` has now: names (lowercase, no final dot) and
    /// what they hold.
    pub fn records(&self, owner: &Owner) -> Vec<(String, Node)> {
        match owner {
            Owner::Job(id) => self.job_records(id),
            Owner::Agent(id) => self.agent_records(id),
            Owner::Masters => self.master_records(),
            Owner::Elb(name) => self.elb_records(name),
        }
    }

    /// An ELB's domain at its VIPs. A job's name always wins (jobs' names
    /// are the zone's own); between ELBs of one domain, the smallest ELB
    /// name owns it, so the answer never depends on event order.
    fn elb_records(&self, name: &str) -> Vec<(String, Node)> {
        let Some(elb) = self.elbs.get(name) else {
            return Vec::new();
        };
        let owner = self.elbs_named(&elb.domain).min();
        if elb.vips.is_empty()
            || self.claims.contains_key(&elb.domain)
            || owner.as_deref() != Some(name)
        {
            return Vec::new();
        }
        vec![(
            elb.domain.clone(),
            Node {
                addrs: elb.vips.clone(),
                srv: Vec::new(),
                views: elb.views.clone(),
            },
        )]
    }

    fn job_records(&self, id: &str) -> Vec<(String, Node)> {
        let Some(job) = self.jobs.get(id) else {
            return Vec::new();
        };
        let Some(name) = &job.name else {
            return Vec::new();
        };
        let owns = self
            .claims
            .get(name)
            .and_then(|c| names::owner(c.iter().map(String::as_str)))
            == Some(id);
        if !owns {
            return Vec::new();
        }
        let mut job_node = Node::default();
        let mut srv: Vec<(String, Node)> = job
            .ports
            .iter()
            .filter_map(|(p, proto)| names::srv_name(p, *proto, name))
            .map(|n| (n, Node::default()))
            .collect();
        let mut out = Vec::new();
        let tasks = self.by_job.get(id).into_iter().flatten();
        for task in tasks.filter_map(|t| self.tasks.get(t)) {
            if !serves(task, job.has_health_checks) {
                continue;
            }
            let (Some(addr), Some(label)) = (task_addr(task), names::task_label(&task.id, id))
            else {
                continue;
            };
            let Some(task_name) = names::absolute(&label, name) else {
                continue;
            };
            job_node.addrs.push(addr);
            for (i, (port_name, _)) in job.ports.iter().enumerate() {
                let port = task.ports.iter().find(|p| &p.name == port_name);
                let Some(port) = port.and_then(|p| u16::try_from(p.port).ok()) else {
                    continue;
                };
                if let Some((_, node)) = srv.get_mut(i) {
                    node.srv.push(Srv {
                        port,
                        target: task_name.clone(),
                    });
                }
            }
            out.push((
                task_name,
                Node {
                    addrs: vec![addr],
                    srv: Vec::new(),
                    views: None,
                },
            ));
        }
        job_node.addrs.sort();
        job_node.addrs.dedup();
        if !job_node.addrs.is_empty() {
            out.push((name.clone(), job_node));
        }
        out.extend(srv.into_iter().filter(|(_, n)| !n.srv.is_empty()));
        out
    }

    fn agent_records(&self, id: &str) -> Vec<(String, Node)> {
        let Some(agent) = self.agents.get(id) else {
            return Vec::new();
        };
        let (Some(label), Ok(addr)) = (names::agent_label(id), agent.address.parse::<IpAddr>())
        else {
            return Vec::new();
        };
        let name = format!("{label}.{AGENTS_LABEL}.{}", self.domain);
        match names::absolute(&format!("{label}.{AGENTS_LABEL}"), &self.domain) {
            Some(_) => vec![(
                name,
                Node {
                    addrs: vec![addr],
                    srv: Vec::new(),
                    views: None,
                },
            )],
            None => Vec::new(),
        }
    }

    fn master_records(&self) -> Vec<(String, Node)> {
        let mut out = Vec::new();
        if let Some(l) = self.leader {
            out.push((
                format!("leader.{}", self.domain),
                Node {
                    addrs: vec![l],
                    srv: Vec::new(),
                    views: None,
                },
            ));
        }
        if !self.masters.is_empty() {
            out.push((
                format!("masters.{}", self.domain),
                Node {
                    addrs: self.masters.clone(),
                    srv: Vec::new(),
                    views: None,
                },
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocean_proto::v1::{Snapshot, TaskPort};

    const JOB: &str = "cop.example_owt.dev_pdl.demo_service.web_job.http_cluster.dev";
    const NAME: &str = "http.web.demo.dev.ocean";

    fn job(id: &str, checks: bool) -> Job {
        let mut spec = JobSpec::new(id, "true");
        spec.ports = vec![ocean_spec::PortSpec {
            name: "http".into(),
            port: 0,
            protocol: PortProtocol::Tcp,
        }];
        if checks {
            spec.health_checks = serde_json::from_value(serde_json::json!([
                {"protocol": "tcp", "port_name": "http"}
            ]))
            .unwrap();
        }
        Job {
            id: id.into(),
            spec_json: spec.to_canonical_json(),
            ..Default::default()
        }
    }

    fn task(n: u32, state: &str, healthy: Option<bool>) -> Task {
        Task {
            id: format!("{JOB}.{n:015x}"),
            job_id: JOB.into(),
            agent_id: "agent-1".into(),
            host: "h1".into(),
            address: format!("10.0.0.{n}"),
            state: state.into(),
            ports: vec![TaskPort {
                name: "http".into(),
                port: 31000 + n,
            }],
            healthy,
            ..Default::default()
        }
    }

    fn ev(kind: event::Kind) -> Event {
        Event {
            version: 1,
            kind: Some(kind),
            last_of_version: false,
        }
    }

    fn names_of(m: &Model, owner: &Owner) -> Vec<String> {
        let mut v: Vec<String> = m.records(owner).into_iter().map(|(n, _)| n).collect();
        v.sort();
        v
    }

    fn elb(name: &str, domain: &str, vips: &[&str]) -> event::Kind {
        event::Kind::KvPut(ocean_proto::v1::KvEntry {
            namespace: ELB_NAMESPACE.into(),
            key: format!("{ELB_PREFIX}{name}"),
            value: serde_json::to_vec(&serde_json::json!({
                "name": name, "domain": domain, "vips": vips, "listeners": []
            }))
            .unwrap(),
            ..Default::default()
        })
    }

    fn elb_records(m: &Model, name: &str) -> Vec<(String, Vec<IpAddr>)> {
        m.records(&Owner::Elb(name.into()))
            .into_iter()
            .map(|(n, node)| (n, node.addrs))
            .collect()
    }

    #[test]
    fn an_elb_domain_in_the_zone_answers_with_its_vips() {
        let mut m = Model::new("ocean");
        let dirty = m.apply(ev(elb(
            "pdl.web",
            "Front.Web.Ocean.",
            &["10.9.0.2", "10.9.0.1"],
        )));
        assert_eq!(dirty, vec![Owner::Elb("pdl.web".into())]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            elb_records(&m, "pdl.web"),
            vec![(
                "front.web.ocean".to_string(),
                vec![ip("10.9.0.1"), ip("10.9.0.2")]
            )]
        );
        // Outside the zone, or another namespace's key: nothing.
        m.apply(ev(elb("pdl.out", "front.example.com", &["10.9.0.3"])));
        assert!(elb_records(&m, "pdl.out").is_empty());
        let mut other = elb("pdl.x", "x.ocean", &["10.9.0.4"]);
        if let event::Kind::KvPut(kv) = &mut other {
            kv.namespace = "redis".into();
        }
        assert!(m.apply(ev(other)).is_empty());
        // Two ELBs of one domain: the smaller name owns it, whatever the
        // order; deleting it hands the name over.
        m.apply(ev(elb("pdl.a", "front.web.ocean", &["10.9.0.5"])));
        assert!(elb_records(&m, "pdl.web").is_empty());
        assert_eq!(elb_records(&m, "pdl.a").len(), 1);
        let dirty = m.apply(ev(event::Kind::KvDeleted(ocean_proto::v1::KvEntry {
            namespace: ELB_NAMESPACE.into(),
            key: format!("{ELB_PREFIX}pdl.a"),
            ..Default::default()
        })));
        assert!(dirty.contains(&Owner::Elb("pdl.web".into())), "{dirty:?}");
        assert_eq!(elb_records(&m, "pdl.web").len(), 1);
        // A job's name wins over an ELB's domain.
        m.apply(ev(elb("pdl.j", NAME, &["10.9.0.6"])));
        assert_eq!(elb_records(&m, "pdl.j").len(), 1);
        let dirty = m.apply(ev(event::Kind::JobPut(job(JOB, false))));
        assert!(dirty.contains(&Owner::Elb("pdl.j".into())), "{dirty:?}");
        assert!(elb_records(&m, "pdl.j").is_empty());
    }

    #[test]
    fn an_elb_with_views_gives_its_domain_views() {
        let mut m = Model::new("ocean");
        let mut put = elb("pdl.web", "front.ocean", &["10.9.0.1", "10.9.0.2"]);
        if let event::Kind::KvPut(kv) = &mut put {
            kv.value = serde_json::to_vec(&serde_json::json!({
                "name": "pdl.web", "domain": "front.ocean", "vips": ["10.9.0.1", "10.9.0.2"],
                "listeners": [],
                "views": [
                    {"name": "telecom", "subnets": ["58.32.0.0/11", "bad"], "vips": ["10.9.0.1"]},
                    {"name": "empty", "subnets": [], "vips": ["10.9.0.2"]}
                ]
            }))
            .unwrap();
        }
        m.apply(ev(put));
        let recs = m.records(&Owner::Elb("pdl.web".into()));
        let views = recs[0].1.views.as_ref().expect("views");
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            views.addrs(views.select(ip("58.40.1.1"))),
            Some(&[ip("10.9.0.1")][..])
        );
        assert_eq!(views.select(ip("9.9.9.9")), None);
        // Without views: none.
        m.apply(ev(elb("pdl.web", "front.ocean", &["10.9.0.1"])));
        assert!(m.records(&Owner::Elb("pdl.web".into()))[0]
            .1
            .views
            .is_none());
    }

    #[test]
    fn running_tasks_get_a_srv_and_task_names() {
        let mut m = Model::new("ocean");
        m.apply(ev(event::Kind::JobPut(job(JOB, false))));
        m.apply(ev(event::Kind::TaskPut(task(1, "RUNNING", None))));
        m.apply(ev(event::Kind::TaskPut(task(2, "STARTING", None))));
        let recs = m.records(&Owner::Job(JOB.into()));
        let get = |n: &str| {
            recs.iter()
                .find(|(x, _)| x == n)
                .map(|(_, node)| node.clone())
        };
        let node = get(NAME).expect("job name");
        assert_eq!(node.addrs, vec!["10.0.0.1".parse::<IpAddr>().unwrap()]);
        let task_name = format!("{:015x}.{NAME}", 1);
        assert!(get(&task_name).is_some());
        let srv = get(&format!("_http._tcp.{NAME}")).expect("srv");
        assert_eq!(
            srv.srv,
            vec![Srv {
                port: 31001,
                target: task_name
            }]
        );
        assert_eq!(recs.len(), 3, "{recs:?}");
    }

    #[test]
    fn jobs_with_health_checks_serve_only_healthy_tasks() {
        let mut m = Model::new("ocean");
        m.apply(ev(event::Kind::JobPut(job(JOB, true))));
        m.apply(ev(event::Kind::TaskPut(task(1, "RUNNING", None))));
        m.apply(ev(event::Kind::TaskPut(task(2, "RUNNING", Some(false)))));
        assert!(m.records(&Owner::Job(JOB.into())).is_empty());
        m.apply(ev(event::Kind::TaskPut(task(2, "RUNNING", Some(true)))));
        let recs = m.records(&Owner::Job(JOB.into()));
        let job_node = recs.iter().find(|(n, _)| n == NAME).unwrap();
        assert_eq!(
            job_node.1.addrs,
            vec!["10.0.0.2".parse::<IpAddr>().unwrap()]
        );
        // Turning unhealthy removes it again.
        m.apply(ev(event::Kind::TaskPut(task(2, "RUNNING", Some(false)))));
        assert!(m.records(&Owner::Job(JOB.into())).is_empty());
    }

    #[test]
    fn killed_and_stopping_tasks_disappear() {
        let mut m = Model::new("ocean");
        m.apply(ev(event::Kind::JobPut(job(JOB, false))));
        m.apply(ev(event::Kind::TaskPut(task(1, "RUNNING", None))));
        let mut stopping = task(1, "RUNNING", None);
        stopping.kill_requested = true;
        m.apply(ev(event::Kind::TaskPut(stopping)));
        assert!(m.records(&Owner::Job(JOB.into())).is_empty());
        // Drained before its stop (shutdown_delay_seconds): gone at once.
        m.apply(ev(event::Kind::TaskPut(task(2, "RUNNING", None))));
        assert!(!m.records(&Owner::Job(JOB.into())).is_empty());
        let mut draining = task(2, "RUNNING", None);
        draining.draining_since_ms = 5;
        m.apply(ev(event::Kind::TaskPut(draining)));
        assert!(m.records(&Owner::Job(JOB.into())).is_empty());
        m.apply(ev(event::Kind::TaskPut(task(1, "KILLED", None))));
        assert!(m.records(&Owner::Job(JOB.into())).is_empty());
        let dirty = m.apply(ev(event::Kind::TaskRemoved(task(1, "", None).id)));
        assert_eq!(dirty, vec![Owner::Job(JOB.into())]);
    }

    #[test]
    fn a_shared_name_belongs_to_the_smallest_id() {
        let other = "cop.aaa_owt.dev_pdl.demo_service.web_job.http_cluster.dev";
        let mut m = Model::new("ocean");
        m.apply(ev(event::Kind::JobPut(job(JOB, false))));
        m.apply(ev(event::Kind::TaskPut(task(1, "RUNNING", None))));
        assert_eq!(names_of(&m, &Owner::Job(JOB.into())).len(), 3);
        let dirty = m.apply(ev(event::Kind::JobPut(job(other, false))));
        assert!(dirty.contains(&Owner::Job(JOB.into())));
        // `cop.aaa...` sorts first: it owns the name, the first job has none.
        assert!(m.records(&Owner::Job(JOB.into())).is_empty());
        let dirty = m.apply(ev(event::Kind::JobDeleted(other.into())));
        assert!(dirty.contains(&Owner::Job(JOB.into())));
        assert_eq!(names_of(&m, &Owner::Job(JOB.into())).len(), 3);
    }

    #[test]
    fn a_snapshot_replaces_everything() {
        let mut m = Model::new("ocean");
        m.apply(ev(event::Kind::JobPut(job(JOB, false))));
        m.apply(ev(event::Kind::AgentPut(Agent {
            id: "agent-1".into(),
            address: "10.0.0.9".into(),
            ..Default::default()
        })));
        assert_eq!(
            names_of(&m, &Owner::Agent("agent-1".into())),
            vec!["agent-1.agents.ocean".to_string()]
        );
        let dirty = m.apply(ev(event::Kind::Snapshot(Snapshot {
            version: 9,
            jobs: vec![],
            agents: vec![],
            tasks: vec![task(1, "RUNNING", None)],
            kv: vec![],
        })));
        assert!(dirty.contains(&Owner::Job(JOB.into())));
        assert!(dirty.contains(&Owner::Agent("agent-1".into())));
        assert!(m.records(&Owner::Agent("agent-1".into())).is_empty());
        assert!(m.records(&Owner::Job(JOB.into())).is_empty());
    }

    #[test]
    fn masters_and_leader() {
        let mut m = Model::new("ocean");
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(m.set_masters(Some(a), vec![b, a, a]));
        assert!(!m.set_masters(Some(a), vec![a, b]));
        let recs = m.records(&Owner::Masters);
        assert_eq!(recs[0].0, "leader.ocean");
        assert_eq!(recs[1].1.addrs, vec![a, b]);
    }
}
