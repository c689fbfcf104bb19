//! Helpers for tests against the real Docker engine: the images they need,
//! built once from local files (a lock keeps parallel test processes from
//! racing), reading containers back with `docker inspect`, and removing
//! every container a test's agents started.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;
use serde_json::Value;

/// The busybox image the tests run (`deploy/images/busybox/build.sh`).
pub const BUSYBOX: &str = "ocean/busybox:latest";

/// Label holding the agent id of an Ocean container.
pub const LABEL_AGENT: &str = "io.ocean.agent";
/// Label holding the task id of an Ocean container.
pub const LABEL_TASK: &str = "io.ocean.task";

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// Runs a command, failing with its output when it fails.
pub fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    anyhow::ensure!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Builds an image with one of `deploy/images/*/build.sh` unless it exists,
/// holding a lock so concurrent test processes build it once. The images
/// are kept between runs (they are small, and cached like base images).
pub fn ensure_image(script: &str, image: &str, env: &[(&str, &str)]) -> anyhow::Result<()> {
    let root = repo_root();
    let mut cmd = Command::new("flock");
    cmd.arg("/tmp/ocean-test-images.lock")
        .arg(root.join("deploy/images").join(script).join("build.sh"))
        .arg(image)
        .current_dir(&root);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd).map(|_| ())
}

/// The busybox test image, built if missing.
pub fn ensure_busybox() -> anyhow::Result<()> {
    ensure_image("busybox", BUSYBOX, &[])
}

/// `docker inspect` of one container, or `None` if it does not exist.
pub fn inspect(container: &str) -> Option<Value> {
    let out = Command::new("docker")
        .args(["inspect", container])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    v.as_array().and_then(|a| a.first()).cloned()
}

/// Ids of all containers (running or not) labelled `key=value`.
pub fn containers(key: &str, value: &str) -> Vec<String> {
    Command::new("docker")
        .args(["ps", "-aq", "--no-trunc", "--filter"])
        .arg(format!("label={key}={value}"))
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_string)
                .filter(|l| !l.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// Removes, on drop, every container labelled with one of the agent ids
/// it was given: containers outlive their agent by design, tests must not.
#[derive(Debug, Default)]
pub struct ContainerReaper {
    agents: Vec<String>,
}

impl ContainerReaper {
    /// Reaps `agent`'s containers when dropped.
    pub fn watch(&mut self, agent: &str) {
        if !agent.is_empty() && !self.agents.iter().any(|a| a == agent) {
            self.agents.push(agent.to_string());
        }
    }
}

impl Drop for ContainerReaper {
    fn drop(&mut self) {
        for agent in &self.agents {
            let ids = containers(LABEL_AGENT, agent);
            if !ids.is_empty() {
                let _ = Command::new("docker")
                    .args(["rm", "-f", "-v"])
                    .args(&ids)
                    .output();
            }
        }
    }
}

/// A `docker-compose` project of `deploy/compose/docker-compose.yml`, taken
/// down on drop: its containers, its network and the cgroups its agents
/// made on the host (they share the host's cgroup v1 hierarchy).
#[derive(Debug)]
pub struct Compose {
    project: String,
    env: Vec<(String, String)>,
    /// Agent ids whose cgroup parents to remove at the end.
    pub agents: Vec<String>,
}

impl Compose {
    fn command(&self) -> Command {
        let mut cmd = Command::new("docker-compose");
        cmd.arg("-f")
            .arg(repo_root().join("deploy/compose/docker-compose.yml"))
            .args(["-p", &self.project])
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd
    }

    /// Starts the project `project` with `env` (OCEAN_IMAGE, OCEAN_HTTP1..3).
    pub fn up(project: &str, env: &[(&str, String)]) -> anyhow::Result<Self> {
        let compose = Self {
            project: project.to_string(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            agents: Vec::new(),
        };
        run(compose.command().args(["up", "-d", "--no-build"]))?;
        Ok(compose)
    }

    /// The last lines of every service's log.
    pub fn logs(&self) -> String {
        run(self.command().args(["logs", "--no-color", "--tail", "20"])).unwrap_or_default()
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        let _ = self
            .command()
            .args(["down", "-v", "--remove-orphans", "-t", "2"])
            .output();
        for id in &self.agents {
            crate::tasks::reap_cgroups(&format!("ocean-{id}"));
        }
    }
}
