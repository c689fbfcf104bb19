//! A job as the reconciler sees it: its parsed spec, its version hash, and
//! the conversions to a placement request and to agent launches.

use std::sync::Arc;

use std::collections::BTreeSet;

use ocean_proto::agent::{
    Artifact, DnsNames, DockerPortMapping, DockerTask, DockerVolume, HealthCheck, LaunchTask, Port,
    Template,
};
use ocean_proto::internal::{Agent, Deployment, Job, Task};
use ocean_scheduler_policies as sp;
use ocean_spec::container::{DockerContainer, DockerNetwork};
use ocean_spec::{JobSpec, JobType};

/// Jobs at this priority or above are the system class: when their tasks
/// fit nowhere, tasks of lower priority are preempted for them. Ordinary
/// jobs never preempt.
pub const SYSTEM_PRIORITY: i32 = 1000;

/// A job with its spec parsed once per version.
#[derive(Debug, Clone)]
pub struct JobView {
    /// The job's id.
    pub id: String,
    /// The state version that last changed the job.
    pub updated_version: u64,
    /// The job's spec version (names the release agents lay out).
    pub spec_version: u64,
    /// The spec.
    pub spec: Arc<JobSpec>,
    /// [`config_hash`] of the spec.
    pub hash: u64,
    /// The spec's constraints for the placement crate (invalid ones are
    /// reported as the job's waiting reason instead).
    pub constraints: Result<Vec<sp::Constraint>, String>,
    /// For a batch job, the state version since which its config hash has
    /// been [`JobView::hash`]: its current run began then, and only tasks
    /// placed since count towards it ([`run_since`]). 0 for services.
    pub run_since: u64,
    /// The job's newest deployment when it rolls out the current spec
    /// version (active, or ended: a failed one holds the job as it is).
    pub deployment: Option<Arc<Deployment>>,
    /// The product-line node, computed once (every task of every round
    /// needs it).
    pdl: String,
}

impl JobView {
    /// Parses a stored job; `None` when its spec does not parse (stored by
    /// an incompatible version), which leaves the job alone.
    pub fn parse(job: &Job) -> Option<JobView> {
        let spec: JobSpec = serde_json::from_slice(&job.spec_json).ok()?;
        let constraints = spec
            .constraints
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut parts = vec![c.attribute.clone(), c.operator.as_str().to_string()];
                parts.extend(c.value.clone());
                sp::Constraint::from_parts(&parts).map_err(|e| format!("constraints[{i}]: {e}"))
            })
            .collect();
        let t = spec.service_tree_id();
        let pdl = format!("cop.{}_owt.{}_pdl.{}", t.cop, t.owt, t.pdl);
        let hash = config_hash(&spec);
        let run_since = match spec.job_type {
            JobType::Batch => run_since(job, hash),
            JobType::Service => 0,
        };
        let deployment = job
            .deployments
            .first()
            .filter(|d| {
                d.spec_version == crate::kernel::state::jobs::spec_version(job)
                    && d.config_hash == hash
            })
            .map(|d| Arc::new(d.clone()));
        Some(JobView {
            deployment,
            pdl,
            id: job.id.clone(),
            updated_version: job.updated_version,
            spec_version: crate::kernel::state::jobs::spec_version(job),
            hash,
            spec: Arc::new(spec),
            constraints,
            run_since,
        })
    }

    /// Whether the job runs to completion (`type: batch`) rather than
    /// being kept running.
    pub fn is_batch(&self) -> bool {
        self.spec.job_type == JobType::Batch
    }

    /// The same job asking for `instances` tasks (the same hash: instances
    /// are not part of it). For a batch job's drain, which counts against
    /// what remains to run.
    pub fn with_instances(&self, instances: u32) -> JobView {
        let mut spec = JobSpec::clone(&self.spec);
        spec.instances = instances;
        JobView {
            spec: Arc::new(spec),
            ..self.clone()
        }
    }

    /// The resources one task reserves.
    pub fn resources(&self) -> sp::Resources {
        let r = &self.spec.resources;
        sp::Resources::new(r.cpus, r.mem, r.disk)
    }

    /// The product-line node of the service tree (`cop.c_owt.o_pdl.p`),
    /// the unit of fair share.
    pub fn pdl(&self) -> &str {
        &self.pdl
    }

    /// A placement request for `tasks` new task ids.
    pub fn request(&self, tasks: Vec<String>) -> sp::JobRequest {
        sp::JobRequest {
            job: self.id.clone(),
            tasks,
            resources: self.resources(),
            ports: self
                .spec
                .ports
                .iter()
                .map(|p| match p.port {
                    0 => sp::PortRequest::dynamic(p.name.clone()),
                    fixed => sp::PortRequest::fixed(p.name.clone(), fixed),
                })
                .collect(),
            constraints: self.constraints.clone().unwrap_or_default(),
            priority: self.spec.priority,
            preemption: self.spec.priority >= SYSTEM_PRIORITY,
            pdl: self.pdl.clone(),
            service_path: self.id.clone(),
            policy: self.spec.placement_policy.as_ref().and_then(|p| {
                serde_json::to_value(p)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
            }),
            needs: self.needs(),
            maintenance: self.spec.maintenance,
        }
    }

    /// What an agent must offer to run the job's tasks: the Docker executor
    /// for container jobs, and its privileged feature for privileged ones.
    pub fn needs(&self) -> Vec<String> {
        let Some(c) = &self.spec.container else {
            return Vec::new();
        };
        let mut needs = vec![DOCKER.to_string()];
        if c.docker.privileged {
            needs.push(format!("{DOCKER}-{PRIVILEGED}"));
        }
        needs
    }

    /// What the agent needs to start `task`.
    pub fn launch(&self, task: &Task) -> LaunchTask {
        let spec = &self.spec;
        LaunchTask {
            task_id: task.id.clone(),
            job_id: task.job_id.clone(),
            cmd: spec.cmd.clone().unwrap_or_default(),
            args: spec.args.clone().unwrap_or_default(),
            env: spec.env.clone().into_iter().collect(),
            cpus: spec.resources.cpus,
            mem_mib: spec.resources.mem,
            pids_limit: spec.resources.pids.map(u64::from).unwrap_or(0),
            ports: task
                .ports
                .iter()
                .map(|p| Port {
                    name: p.name.clone(),
                    port: p.port,
                })
                .collect(),
            kill_grace_ms: self.kill_grace_ms(),
            health_checks: spec.health_checks.iter().map(health_check).collect(),
            docker: spec
                .container
                .as_ref()
                .map(|c| docker_task(&c.docker, &spec.ports)),
            labels: spec.labels.clone().into_iter().collect(),
            artifacts: spec.artifacts.iter().map(artifact).collect(),
            templates: spec.templates.iter().map(template).collect(),
            spec_version: self.spec_version,
            environment: spec.service_tree_id().cluster,
            dns: Some(dns_names(spec, &task.id)),
            // Filled in by the dispatch, which knows the master's zone.
            dns_domain: String::new(),
            persistent_volume: spec.persistent_volume,
        }
    }

    /// Time between SIGTERM and SIGKILL.
    pub fn kill_grace_ms(&self) -> u64 {
        u64::from(self.spec.kill_grace_period_seconds) * 1000
    }
}

/// A spec's health check as the agent runs it.
fn health_check(h: &ocean_spec::HealthCheck) -> HealthCheck {
    let ms = |s: u32| u64::from(s) * 1000;
    HealthCheck {
        protocol: h.protocol.as_str().to_string(),
        port_name: h.port_name.clone().unwrap_or_default(),
        path: h.path.clone(),
        status_min: u32::from(h.status_min),
        status_max: u32::from(h.status_max),
        command: h.command.clone().unwrap_or_default(),
        grace_period_ms: ms(h.grace_period_seconds),
        interval_ms: h.interval_ms(),
        timeout_ms: ms(h.timeout_seconds),
        max_consecutive_failures: h.max_consecutive_failures,
    }
}

/// A release file as the agent fetches it.
fn artifact(a: &ocean_spec::Artifact) -> Artifact {
    Artifact {
        url: a.url.clone(),
        sha256: a.sha256.clone(),
        extract: a.extract,
        dest: a.dest_path().unwrap_or_default(),
    }
}

/// A configuration template as the agent renders it; its values travel as
/// JSON (they are free-form).
fn template(t: &ocean_spec::Template) -> Template {
    Template {
        source: t.source.clone(),
        inline: t.inline.clone(),
        dest: t.dest.clone(),
        values_json: serde_json::to_string(&t.values).unwrap_or_default(),
    }
}

/// The names Ocean's DNS serves for the job and for `task_id`, relative to
/// the zone (empty where the id gives none).
fn dns_names(spec: &JobSpec, task_id: &str) -> DnsNames {
    let job = ocean_spec::dns::job_relative_name(&spec.service_tree_id());
    DnsNames {
        task: ocean_spec::dns::task_label(task_id, &spec.id)
            .map(|label| format!("{label}.{job}"))
            .unwrap_or_default(),
        srv: spec
            .ports
            .iter()
            .filter_map(|p| {
                let srv = ocean_spec::dns::srv_name(&p.name, p.protocol, &job)?;
                Some((p.name.clone(), srv))
            })
            .collect(),
        job,
    }
}

/// The executor name agents report for Docker.
pub const DOCKER: &str = "docker";
/// The Docker executor's feature for privileged containers.
pub const PRIVILEGED: &str = "privileged";

/// What an agent offers the planner: each available executor by name, and
/// `<executor>-<feature>` for each of its features.
pub fn offered_executors(agent: &Agent) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for e in agent.executors.iter().filter(|e| e.available) {
        out.insert(e.name.clone());
        for f in &e.features {
            out.insert(format!("{}-{f}", e.name));
        }
    }
    out
}

fn docker_task(d: &DockerContainer, ports: &[ocean_spec::ports::PortSpec]) -> DockerTask {
    DockerTask {
        image: d.image.clone(),
        network: match d.network {
            DockerNetwork::Bridge => "bridge",
            DockerNetwork::Host => "host",
        }
        .to_string(),
        port_mappings: d
            .port_mappings
            .iter()
            .map(|m| DockerPortMapping {
                container_port: u32::from(m.container_port),
                port_name: m.port_name.clone(),
                protocol: ports
                    .iter()
                    .find(|p| p.name == m.port_name)
                    .map(|p| p.protocol.as_str().to_string())
                    .unwrap_or_default(),
            })
            .collect(),
        volumes: d
            .volumes
            .iter()
            .map(|v| DockerVolume {
                host_path: v.host_path.clone(),
                container_path: v.container_path.clone(),
                read_only: v.read_only,
            })
            .collect(),
        privileged: d.privileged,
        force_pull: d.force_pull,
        entrypoint_set: d.entrypoint.is_some(),
        entrypoint: d.entrypoint.clone().unwrap_or_default(),
    }
}

/// A hash of everything in a spec that a running task embodies
/// ([`JobSpec::embodied`]): scaling, or changing only the upgrade
/// strategy, back-off, priority or health-check timings, never replaces
/// tasks, while any other change does (and starts a deployment). FNV-1a
/// over the canonical JSON ([`JobSpec::config_hash`]).
pub fn config_hash(spec: &JobSpec) -> u64 {
    spec.config_hash()
}

/// The state version since which `job`'s spec has had config hash `hash`:
/// when the newest of its specs with that hash in an unbroken line became
/// its spec (a change of `unreachable_strategy` alone keeps the run going;
/// a change back to an earlier hash starts a new one). When every kept
/// older spec has the hash too, older ones may have had it as well, so
/// the job's creation is taken: the earliest the run can have begun.
pub fn run_since(job: &Job, hash: u64) -> u64 {
    let mut since = crate::kernel::state::jobs::spec_since_version(job);
    for older in &job.history {
        let same = serde_json::from_slice::<JobSpec>(&older.spec_json)
            .is_ok_and(|s| config_hash(&s) == hash);
        if !same {
            return since;
        }
        since = older.version;
    }
    if job.history.is_empty() {
        since
    } else {
        job.created_version
    }
}

/// The id of the `n`th task placed in the round at state `version`: unique
/// (versions only grow), and ordered by age, which scale-down uses to stop
/// the newest first. Of the form `state::task_id_in` describes (the suffix
/// is written in place, one allocation per task).
pub fn task_id(job: &str, version: u64, n: usize) -> String {
    format!("{job}.{version:010x}{n:05x}")
}

/// A job's view built from a default spec, for the reconciler's unit tests.
#[cfg(test)]
pub(crate) fn test_view(id: &str, instances: u32, cmd: &str) -> JobView {
    let mut spec = JobSpec::new(id, cmd);
    spec.instances = instances;
    JobView::parse(&Job {
        id: id.into(),
        spec_json: spec.to_canonical_json().into(),
        created_version: 1,
        updated_version: 1,
        ..Default::default()
    })
    .unwrap_or_else(|| panic!("a default spec for {id} parses"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_ignores_instances_only() {
        let a = JobSpec::new("cop.c_owt.o_pdl.p_service.s_job.j_cluster.c", "sleep 1");
        let mut b = a.clone();
        b.instances = 7;
        b.unreachable_strategy = Some(ocean_spec::UnreachableStrategy {
            replace_after_seconds: 60,
        });
        assert_eq!(config_hash(&a), config_hash(&b));
        b.cmd = Some("sleep 2".into());
        assert_ne!(config_hash(&a), config_hash(&b));
    }

    #[test]
    fn a_service_spec_keeps_the_hash_it_had_before_job_types() {
        // Computed by the code before `type` existed: a service's canonical
        // form leaves the field out, so no running task is replaced, and
        // no spec version moves, because the field was added.
        let plain = JobSpec::new("cop.c_owt.o_pdl.p_service.s_job.j_cluster.c", "sleep 1");
        assert_eq!(config_hash(&plain), 0x5f90_63d2_3a7f_8a1e);
        // The full example sets fields tasks do not embody (upgrade
        // strategy, back-off, priority, check timings): since deployments
        // they are left out of the hash, which moved once for such specs
        // (their tasks were replaced once, by the first leader of that
        // build); a spec that leaves them at their defaults kept its hash.
        let example = include_bytes!("../../../docs/examples/docker-web.json");
        let full = ocean_spec::parse_job_spec(example, ocean_spec::Format::Json).unwrap();
        assert_eq!(config_hash(&full), 0xdec3_9845_83f0_bdba);
        // A batch job is another config: switching type starts a new set.
        let mut batch = plain.clone();
        batch.job_type = JobType::Batch;
        assert_ne!(config_hash(&batch), config_hash(&plain));
    }

    fn job_with(specs: &[(&JobSpec, u64)]) -> Job {
        // Newest first, as the state keeps them.
        let (current, since) = specs[0];
        Job {
            id: current.id.clone(),
            spec_json: current.to_canonical_json().into(),
            created_version: 1,
            spec_since: since,
            history: specs[1..]
                .iter()
                .map(|(s, v)| ocean_proto::internal::JobSpecVersion {
                    spec_json: s.to_canonical_json().into(),
                    version: *v,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_batch_run_begins_when_its_hash_did() {
        let mut a = JobSpec::new("cop.c_owt.o_pdl.p_service.s_job.j_cluster.c", "true");
        a.job_type = JobType::Batch;
        let mut b = a.clone();
        b.cmd = Some("false".into());
        let mut a2 = a.clone();
        a2.unreachable_strategy = Some(ocean_spec::UnreachableStrategy {
            replace_after_seconds: 60,
        });
        let view = |job: &Job| JobView::parse(job).unwrap();
        // A new job: since its creation (its first spec).
        assert_eq!(view(&job_with(&[(&a, 1)])).run_since, 1);
        // A changed command: since the change.
        assert_eq!(view(&job_with(&[(&b, 40), (&a, 1)])).run_since, 40);
        // Only unreachable_strategy changed: the run goes on.
        assert_eq!(
            view(&job_with(&[(&a2, 50), (&a, 40), (&b, 1)])).run_since,
            40
        );
        // Back to an earlier spec: a new run.
        assert_eq!(
            view(&job_with(&[(&a, 60), (&b, 40), (&a, 1)])).run_since,
            60
        );
        // Every kept spec has the hash: older ones may have had it too.
        assert_eq!(view(&job_with(&[(&a2, 50), (&a, 40)])).run_since, 1);
        // Services have no runs.
        let service = JobSpec::new("cop.c_owt.o_pdl.p_service.s_job.j_cluster.c", "true");
        let v = view(&job_with(&[(&service, 7)]));
        assert!(!v.is_batch() && v.run_since == 0);
    }

    #[test]
    fn task_ids_sort_by_age() {
        let ids = [task_id("j", 9, 3), task_id("j", 10, 0), task_id("j", 10, 1)];
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(sorted, ids);
    }

    #[test]
    fn task_ids_name_their_job_and_give_back_their_suffix() {
        let job = "cop.c_owt.o_pdl.p_service.s_job.j_cluster.c";
        let id = task_id(job, 9, 3);
        assert_eq!(crate::kernel::state::job_of(&id), Some(job));
        let suffix = crate::kernel::state::id_suffix(&id, job).unwrap();
        assert_eq!(crate::kernel::state::task_id_in(job, suffix), id);
        assert_eq!(crate::kernel::state::id_suffix(&id, "cop.c_owt"), None);
    }

    #[test]
    fn view_converts_spec() {
        let mut spec = JobSpec::new("cop.c_owt.o_pdl.p_service.s_job.j_cluster.c", "sleep 1");
        spec.constraints = serde_json::from_str(r#"[["hostname","UNIQUE"]]"#).unwrap();
        let job = Job {
            id: spec.id.clone(),
            spec_json: spec.to_canonical_json().into(),
            created_version: 1,
            updated_version: 1,
            ..Default::default()
        };
        let v = JobView::parse(&job).unwrap();
        assert_eq!(v.pdl(), "cop.c_owt.o_pdl.p");
        assert_eq!(v.constraints.as_ref().unwrap().len(), 1);
        let r = v.request(vec!["t1".into()]);
        assert_eq!(r.tasks, vec!["t1".to_string()]);
        assert_eq!(v.kill_grace_ms(), 5000);
    }

    #[test]
    fn launches_carry_the_release_templates_and_names() {
        let mut spec = serde_json::from_value::<JobSpec>(serde_json::json!({
            "id": "cop.c_owt.o_pdl.p_service.s_job.j_cluster.production",
            "cmd": "sleep 1",
            "ports": [{"name": "http"}],
            "artifacts": [{"url": "http://h/app.tar.gz", "sha256": "ab".repeat(32), "extract": true},
                          {"url": "http://h/bin/tool", "sha256": "cd".repeat(32)}],
            "templates": [{"inline": "x={{ x }}", "dest": "a.conf",
                           "values": {"base": {"x": 1}, "production": {"x": 2}}}],
        }))
        .unwrap();
        spec.instances = 2;
        let job = Job {
            id: spec.id.clone(),
            spec_json: spec.to_canonical_json().into(),
            spec_version: 7,
            ..Default::default()
        };
        let task = Task {
            id: task_id(&spec.id, 3, 0),
            job_id: spec.id.clone(),
            ..Default::default()
        };
        let l = JobView::parse(&job).unwrap().launch(&task);
        assert_eq!((l.spec_version, l.environment.as_str()), (7, "production"));
        assert_eq!(l.artifacts[0].dest, "");
        assert!(l.artifacts[0].extract);
        assert_eq!(l.artifacts[1].dest, "tool");
        assert_eq!(l.templates[0].inline.as_deref(), Some("x={{ x }}"));
        let values: serde_json::Value = serde_json::from_str(&l.templates[0].values_json).unwrap();
        assert_eq!(values["production"]["x"], 2);
        let dns = l.dns.unwrap();
        assert_eq!(dns.job, "j.s.p.production");
        assert_eq!(dns.srv["http"], "_http._tcp.j.s.p.production");
        assert!(dns.task.ends_with(".j.s.p.production"), "{}", dns.task);
    }

    #[test]
    fn container_jobs_need_docker_and_launch_with_it() {
        let mut spec = JobSpec::new("cop.c_owt.o_pdl.p_service.s_job.j_cluster.c", "sleep 1");
        spec.cmd = None;
        spec.container = Some(
            serde_json::from_str(
                r#"{"docker": {"image": "busybox", "privileged": true, "entrypoint": []}}"#,
            )
            .unwrap(),
        );
        spec.labels.insert("team".into(), "a".into());
        let job = Job {
            id: spec.id.clone(),
            spec_json: spec.to_canonical_json().into(),
            ..Default::default()
        };
        let v = JobView::parse(&job).unwrap();
        assert_eq!(v.needs(), vec!["docker", "docker-privileged"]);
        let l = v.launch(&Task::default());
        let d = l.docker.unwrap();
        assert_eq!(
            (d.image.as_str(), d.network.as_str()),
            ("busybox", "bridge")
        );
        assert!(d.privileged && d.entrypoint_set && d.entrypoint.is_empty());
        assert_eq!(l.labels.get("team").map(String::as_str), Some("a"));

        let agent = Agent {
            executors: vec![
                ocean_proto::internal::AgentExecutor {
                    name: "docker".into(),
                    available: true,
                    features: vec!["privileged".into()],
                    ..Default::default()
                },
                ocean_proto::internal::AgentExecutor {
                    name: "gpu".into(),
                    available: false,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let offered: Vec<String> = offered_executors(&agent).into_iter().collect();
        assert_eq!(offered, vec!["docker", "docker-privileged"]);
    }
}
