//! The environment a task sees. The agent's own environment is not passed
//! on (it may hold the agent's secrets); a task gets `PATH`, its job's `env`,
//! and Ocean's variables, which win over the job's on a clash.

use std::collections::BTreeMap;
use std::path::Path;

use crate::task::TaskSpec;

/// `PATH` used when the agent itself has none.
pub(crate) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The variable name for a named port: `PORT_` + the name uppercased, with
/// every character that is not `[A-Z0-9_]` replaced by `_`.
pub fn port_env_name(name: &str) -> String {
    let suffix: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("PORT_{suffix}")
}

/// Builds the task's environment.
///
/// `PATH` (the agent's, else a default) < the job's `env` < `OCEAN_TASK_ID`,
/// `OCEAN_JOB_ID`, `OCEAN_SANDBOX`, `OCEAN_AGENT_PID`, `OCEAN_VOLUME` (with a persistent
/// volume), `HOST`, `PORT` (= `PORT0`), `PORT0..N`,
/// `PORT_<NAME>`.
pub fn task_env(
    spec: &TaskSpec,
    ports: &[u16],
    host: &str,
    sandbox: &Path,
    agent_path: Option<&str>,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert(
        "PATH".to_string(),
        agent_path.unwrap_or(DEFAULT_PATH).to_string(),
    );
    env.extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.insert("OCEAN_TASK_ID".into(), spec.task_id.clone());
    env.insert("OCEAN_JOB_ID".into(), spec.job_id.clone());
    env.insert("OCEAN_SANDBOX".into(), sandbox.display().to_string());
    // Lets a maintenance task ask the agent to restart itself (SIGHUP:
    // healing's built-in `restart-agent` repair).
    env.insert("OCEAN_AGENT_PID".into(), std::process::id().to_string());
    if spec.persistent_volume {
        if let Some(v) = crate::sandbox::volume_of_sandbox(sandbox, &spec.job_id) {
            env.insert("OCEAN_VOLUME".into(), v.display().to_string());
        }
    }
    env.insert("HOST".into(), host.to_string());
    if let Some(first) = ports.first() {
        env.insert("PORT".into(), first.to_string());
    }
    for (index, port) in ports.iter().enumerate() {
        env.insert(format!("PORT{index}"), port.to_string());
        if let Some(request) = spec.ports.get(index) {
            if !request.name.is_empty() {
                env.insert(port_env_name(&request.name), port.to_string());
            }
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::PortRequest;

    #[test]
    fn ocean_variables_win_and_ports_are_indexed_and_named() {
        let mut spec = TaskSpec::shell("t1", "j1", "true");
        spec.env.insert("HOST".into(), "spoofed".into());
        spec.env.insert("GREETING".into(), "hi".into());
        spec.ports = vec![
            PortRequest {
                name: "http".into(),
                port: 0,
            },
            PortRequest {
                name: "admin-ui".into(),
                port: 0,
            },
        ];
        let env = task_env(
            &spec,
            &[31000, 31001],
            "node1",
            Path::new("/data/sandboxes/t1"),
            None,
        );
        assert_eq!(env["HOST"], "node1");
        assert_eq!(env["GREETING"], "hi");
        assert_eq!(env["PORT"], "31000");
        assert_eq!(env["PORT0"], "31000");
        assert_eq!(env["PORT1"], "31001");
        assert_eq!(env["PORT_HTTP"], "31000");
        assert_eq!(env["PORT_ADMIN_UI"], "31001");
        assert_eq!(env["OCEAN_TASK_ID"], "t1");
        assert_eq!(env["OCEAN_AGENT_PID"], std::process::id().to_string());
        assert!(!env.contains_key("OCEAN_VOLUME"));
        let kept = TaskSpec {
            persistent_volume: true,
            ..spec.clone()
        };
        let env = task_env(&kept, &[], "node1", Path::new("/data/sandboxes/t1"), None);
        assert_eq!(env["OCEAN_VOLUME"], "/data/volumes/j1");
        assert_eq!(env["OCEAN_JOB_ID"], "j1");
        assert_eq!(env["PATH"], DEFAULT_PATH);
    }
}
