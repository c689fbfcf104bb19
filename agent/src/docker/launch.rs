//! The Docker executor's settings and the translation of a `LaunchTask`
//! with a `docker` section into a [`ContainerSpec`]: the agent's own rules
//! (volume allow-list, privileged switch) are checked here, and every
//! refusal names the job-spec field it is about.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use ocean_proto::agent as pb;
use serde::{Deserialize, Serialize};

use super::engine::ContainerSpec;
use crate::executor::port_env_name;
use crate::health::HealthCheckSpec;
use crate::runtime::convert::{self, DEFAULT_KILL_GRACE};

/// Label holding the id of the agent that runs a container.
pub const LABEL_AGENT: &str = "io.ocean.agent";
/// Label holding the task id.
pub const LABEL_TASK: &str = "io.ocean.task";
/// Label holding the job id.
pub const LABEL_JOB: &str = "io.ocean.job";
/// Label holding the kill grace in milliseconds (for re-adopted containers).
pub const LABEL_KILL_GRACE_MS: &str = "io.ocean.kill-grace-ms";

/// Label holding the task's health checks and host ports as JSON
/// ([`ContainerHealth`]), so a restarted agent checks re-adopted
/// containers again.
pub const LABEL_HEALTH: &str = "io.ocean.health";

/// Default path of the engine's socket.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// Settings of the Docker executor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerConfig {
    /// The engine's unix socket.
    pub socket: PathBuf,
    /// Host directories under which volumes may be mounted; none = no volumes.
    pub volume_roots: Vec<PathBuf>,
    /// Whether privileged containers may run here.
    pub allow_privileged: bool,
    /// Pids limit of containers whose job sets none.
    pub default_pids_limit: u64,
    /// Size cap of a container's log file (two are kept).
    pub log_cap_bytes: u64,
    /// The host name containers see in `HOST`.
    pub hostname: String,
}

impl DockerConfig {
    /// Defaults: the standard socket, no volumes, no privileged containers,
    /// pids 4096, 10 MiB of log.
    pub fn new(hostname: &str) -> Self {
        Self {
            socket: PathBuf::from(DEFAULT_SOCKET),
            volume_roots: Vec::new(),
            allow_privileged: false,
            default_pids_limit: crate::cgroup::DEFAULT_PIDS_LIMIT,
            log_cap_bytes: 10 << 20,
            hostname: hostname.to_string(),
        }
    }
}

/// A container task, ready for the engine.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerTask {
    /// Task id.
    pub task_id: String,
    /// Job id.
    pub job_id: String,
    /// Time between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// Pull before creating.
    pub force_pull: bool,
    /// What to create.
    pub spec: ContainerSpec,
    /// Its health checks and host ports.
    pub health: ContainerHealth,
}

/// A container task's health checks, with the host ports their
/// `port_index` refers to (the launch's ports, in order).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerHealth {
    /// Host ports of the task, as the leader chose them.
    pub ports: Vec<u16>,
    /// The checks; none = the task is not checked.
    pub checks: Vec<HealthCheckSpec>,
}

impl ContainerHealth {
    /// Reads the [`LABEL_HEALTH`] label; `None` when absent or unreadable.
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Option<Self> {
        serde_json::from_str(labels.get(LABEL_HEALTH)?).ok()
    }
}

/// The container name of a task on an agent: unique per engine even with
/// several agents (or test clusters) on one host.
pub fn container_name(agent_id: &str, task_id: &str) -> String {
    format!("ocean-{agent_id}-{task_id}")
}

/// True if `path` lies under `root` (component-wise; both absolute and
/// without `..`, which the job spec guarantees for volumes).
fn is_under(path: &Path, root: &Path) -> bool {
    let clean = |p: &Path| -> Vec<String> {
        p.components()
            .filter_map(|c| match c {
                Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect()
    };
    let (p, r) = (clean(path), clean(root));
    p.len() >= r.len() && p[..r.len()] == r[..]
}

/// Checks a volume's host path against the allow-list, following symlinks
/// of paths that exist so a link cannot lead outside.
fn volume_allowed(host: &str, roots: &[PathBuf]) -> bool {
    let path = Path::new(host);
    if path.components().any(|c| c == Component::ParentDir) || !path.is_absolute() {
        return false;
    }
    let real = std::fs::canonicalize(path).ok();
    roots.iter().any(|root| {
        let real_root = std::fs::canonicalize(root).unwrap_or_else(|_| root.clone());
        is_under(path, root)
            && real
                .as_deref()
                .is_none_or(|real| is_under(real, &real_root))
    })
}

/// Turns a launch with a `docker` section into a [`ContainerTask`], or says
/// which field this agent refuses and why.
pub fn container_task(
    t: &pb::LaunchTask,
    agent_id: &str,
    config: &DockerConfig,
) -> Result<ContainerTask, String> {
    let Some(d) = &t.docker else {
        return Err("container.docker: missing".into());
    };
    if d.image.is_empty() {
        return Err("container.docker.image: must not be empty".into());
    }
    let network = match d.network.as_str() {
        "" | "bridge" => "bridge",
        "host" => "host",
        other => {
            return Err(format!(
                "container.docker.network: must be bridge or host, got {other:?}"
            ))
        }
    };
    if d.privileged && !config.allow_privileged {
        return Err("container.docker.privileged: this agent does not allow privileged containers (start it with --docker-allow-privileged)".into());
    }
    let cmd = match (t.cmd.is_empty(), t.args.is_empty()) {
        (true, true) => None,
        (false, true) => Some(vec!["/bin/sh".to_string(), "-c".to_string(), t.cmd.clone()]),
        (true, false) => Some(t.args.clone()),
        (false, false) => return Err("cmd/args: set at most one of cmd and args".into()),
    };
    if !t.cpus.is_finite() || t.cpus < 0.0 {
        return Err(format!(
            "cpus: must be a finite number >= 0, got {}",
            t.cpus
        ));
    }
    let mut host_ports = Vec::with_capacity(t.ports.len());
    for (i, p) in t.ports.iter().enumerate() {
        let port = u16::try_from(p.port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("ports[{i}].port: {} is not a port number", p.port))?;
        host_ports.push((p.name.as_str(), port));
    }
    let mut ports = Vec::with_capacity(d.port_mappings.len());
    for (i, m) in d.port_mappings.iter().enumerate() {
        let field = format!("container.docker.port_mappings[{i}]");
        if network == "host" {
            return Err(format!("{field}: port mappings need the bridge network"));
        }
        let container = u16::try_from(m.container_port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{field}.container_port: must be 1..=65535"))?;
        let host = host_ports
            .iter()
            .find(|(name, _)| *name == m.port_name)
            .map(|(_, port)| *port)
            .ok_or_else(|| {
                format!(
                    "{field}.port_name: no port named {:?} was given to the task",
                    m.port_name
                )
            })?;
        let proto = if m.protocol.is_empty() {
            "tcp"
        } else {
            m.protocol.as_str()
        };
        if proto != "tcp" && proto != "udp" {
            return Err(format!("{field}.protocol: must be tcp or udp"));
        }
        ports.push((container, proto.to_string(), host));
    }
    let mut binds = Vec::with_capacity(d.volumes.len());
    for (i, v) in d.volumes.iter().enumerate() {
        let field = format!("container.docker.volumes[{i}]");
        if config.volume_roots.is_empty() {
            return Err(format!("{field}.host_path: this agent allows no volumes (start it with --docker-volume-root DIR)"));
        }
        if !volume_allowed(&v.host_path, &config.volume_roots) {
            let roots: Vec<String> = config
                .volume_roots
                .iter()
                .map(|r| r.display().to_string())
                .collect();
            return Err(format!(
                "{field}.host_path: {} is not under an allowed volume root of this agent ({})",
                v.host_path,
                roots.join(", ")
            ));
        }
        if !v.container_path.starts_with('/')
            || v.container_path.contains(':')
            || v.host_path.contains(':')
        {
            return Err(format!("{field}: paths must be absolute and without ':'"));
        }
        let mode = if v.read_only { ":ro" } else { "" };
        binds.push(format!("{}:{}{mode}", v.host_path, v.container_path));
    }

    let mut env: BTreeMap<String, String> = t.env.clone().into_iter().collect();
    env.insert("OCEAN_TASK_ID".into(), t.task_id.clone());
    env.insert("OCEAN_JOB_ID".into(), t.job_id.clone());
    env.insert("HOST".into(), config.hostname.clone());
    if let Some((_, first)) = host_ports.first() {
        env.insert("PORT".into(), first.to_string());
    }
    for (i, (name, port)) in host_ports.iter().enumerate() {
        env.insert(format!("PORT{i}"), port.to_string());
        if !name.is_empty() {
            env.insert(port_env_name(name), port.to_string());
        }
    }
    let kill_grace = match t.kill_grace_ms {
        0 => DEFAULT_KILL_GRACE,
        ms => Duration::from_millis(ms),
    };
    let mut labels: BTreeMap<String, String> = t.labels.clone().into_iter().collect();
    // Only the agent writes this one: it is what a restart checks.
    labels.remove(LABEL_HEALTH);
    labels.insert(LABEL_AGENT.into(), agent_id.to_string());
    labels.insert(LABEL_TASK.into(), t.task_id.clone());
    labels.insert(LABEL_JOB.into(), t.job_id.clone());
    labels.insert(
        LABEL_KILL_GRACE_MS.into(),
        kill_grace.as_millis().to_string(),
    );
    let health = ContainerHealth {
        ports: host_ports.iter().map(|(_, p)| *p).collect(),
        checks: convert::health_checks(t)?,
    };
    if !health.checks.is_empty() {
        let json = serde_json::to_string(&health)
            .map_err(|e| format!("health_checks: cannot encode them: {e}"))?;
        labels.insert(LABEL_HEALTH.into(), json);
    }
    let pids = if t.pids_limit > 0 {
        t.pids_limit
    } else {
        config.default_pids_limit
    };
    let spec = ContainerSpec {
        name: container_name(agent_id, &t.task_id),
        image: d.image.clone(),
        entrypoint: d.entrypoint_set.then(|| d.entrypoint.clone()),
        cmd,
        env: env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
        labels,
        nano_cpus: (t.cpus * 1e9).round() as i64,
        memory_bytes: i64::try_from(t.mem_mib.saturating_mul(1 << 20)).unwrap_or(i64::MAX),
        pids_limit: i64::try_from(pids).unwrap_or(i64::MAX),
        network: network.to_string(),
        ports,
        binds,
        privileged: d.privileged,
        log_max_bytes: config.log_cap_bytes,
    };
    Ok(ContainerTask {
        task_id: t.task_id.clone(),
        job_id: t.job_id.clone(),
        kill_grace,
        force_pull: d.force_pull,
        spec,
        health,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch() -> pb::LaunchTask {
        pb::LaunchTask {
            task_id: "web.1".into(),
            job_id: "web".into(),
            cpus: 0.5,
            mem_mib: 64,
            ports: vec![pb::Port {
                name: "http".into(),
                port: 31005,
            }],
            docker: Some(pb::DockerTask {
                image: "ocean/busybox:1".into(),
                network: "bridge".into(),
                port_mappings: vec![pb::DockerPortMapping {
                    container_port: 80,
                    port_name: "http".into(),
                    protocol: String::new(),
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_launch_becomes_a_container() -> Result<(), String> {
        let mut t = launch();
        t.env.insert("A".into(), "1".into());
        t.labels.insert("team".into(), "shop".into());
        t.labels.insert(LABEL_AGENT.into(), "spoofed".into());
        t.cmd = "echo hi".into();
        let c = container_task(&t, "agent-1", &DockerConfig::new("h1"))?;
        let s = &c.spec;
        assert_eq!(s.name, "ocean-agent-1-web.1");
        assert_eq!(
            s.cmd.as_deref(),
            Some(&["/bin/sh".to_string(), "-c".into(), "echo hi".into()][..])
        );
        assert_eq!(s.entrypoint, None);
        assert_eq!(
            (s.nano_cpus, s.memory_bytes, s.pids_limit),
            (500_000_000, 64 << 20, 4096)
        );
        assert_eq!(s.ports, vec![(80, "tcp".to_string(), 31005)]);
        assert!(
            s.env.contains(&"PORT_HTTP=31005".to_string()) && s.env.contains(&"A=1".to_string())
        );
        assert_eq!(
            s.labels.get(LABEL_AGENT).map(String::as_str),
            Some("agent-1")
        );
        assert_eq!(s.labels.get("team").map(String::as_str), Some("shop"));
        assert_eq!(c.kill_grace, DEFAULT_KILL_GRACE);
        t.cmd.clear();
        let c = container_task(&t, "agent-1", &DockerConfig::new("h1"))?;
        assert_eq!(c.spec.cmd, None, "neither cmd nor args: the image's CMD");
        Ok(())
    }

    #[test]
    fn the_agent_refuses_what_it_does_not_allow() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let allowed = dir.path().join("data");
        std::fs::create_dir_all(&allowed).unwrap_or_else(|e| panic!("{e}"));
        let mut config = DockerConfig::new("h1");
        let with = |f: &dyn Fn(&mut pb::DockerTask)| {
            let mut t = launch();
            if let Some(d) = t.docker.as_mut() {
                f(d);
            }
            t
        };
        let privileged = with(&|d| d.privileged = true);
        let err = container_task(&privileged, "a", &config)
            .err()
            .unwrap_or_default();
        assert!(err.starts_with("container.docker.privileged:"), "{err}");
        let volume = |host: &str| {
            let host = host.to_string();
            with(&move |d| {
                d.volumes = vec![pb::DockerVolume {
                    host_path: host.clone(),
                    container_path: "/data".into(),
                    read_only: true,
                }]
            })
        };
        let inside = allowed.join("x").display().to_string();
        let err = container_task(&volume(&inside), "a", &config)
            .err()
            .unwrap_or_default();
        assert!(err.contains("allows no volumes"), "{err}");
        config.volume_roots = vec![allowed.clone()];
        config.allow_privileged = true;
        assert!(container_task(&privileged, "a", &config).is_ok());
        let ok = container_task(&volume(&inside), "a", &config).map(|c| c.spec.binds);
        assert_eq!(ok, Ok(vec![format!("{inside}:/data:ro")]));
        // A symlink inside the root that points outside it is refused.
        let link = allowed.join("escape");
        std::os::unix::fs::symlink("/etc", &link).unwrap_or_else(|e| panic!("{e}"));
        for bad in [
            "/etc",
            &link.display().to_string(),
            &format!("{}-other", allowed.display()),
        ] {
            let err = container_task(&volume(bad), "a", &config)
                .err()
                .unwrap_or_default();
            assert!(
                err.starts_with("container.docker.volumes[0].host_path:"),
                "{bad}: {err}"
            );
        }
        let unmapped = with(&|d| d.port_mappings[0].port_name = "admin".into());
        let err = container_task(&unmapped, "a", &config)
            .err()
            .unwrap_or_default();
        assert!(
            err.starts_with("container.docker.port_mappings[0].port_name:"),
            "{err}"
        );
    }
}
