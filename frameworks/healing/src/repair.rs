//! Repairs as ordinary batch jobs of one task pinned to the ill host
//! (`["hostname", "CLUSTER", host]`), one job per attempt, named after the
//! ticket so a new instance of the framework finds it again.

use serde_json::json;

use crate::config::RepairAction;

/// The service-tree node of every repair job.
pub const REPAIR_PREFIX: &str = "cop.ocean_owt.healing_pdl.healing_service.repair_job.";

/// The job of a ticket's `attempt`-th repair.
pub fn repair_job_id(ticket: &str, attempt: u32) -> String {
    let mut label: String = format!("r{attempt}-{ticket}")
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    label.truncate(63);
    while label.ends_with('-') {
        label.pop();
    }
    format!("{REPAIR_PREFIX}{label}_cluster.default")
}

/// Whether a job is one of healing's repairs.
pub fn is_repair_job(job: &str) -> bool {
    job.starts_with(REPAIR_PREFIX)
}

/// The actions that need no command.
pub const BUILT_IN: [&str; 2] = ["clean", "restart-agent"];

/// `s` quoted for `/bin/sh`.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The built-in cleanup: empties the agent's `cache/` and removes rotated
/// task logs (`sandboxes/*/*.1`); running tasks' current files are kept.
pub fn clean_command(data_dir: &str) -> String {
    let d = sh_quote(data_dir);
    format!(
        "set -e; d={d}; test -d \"$d\"; \
         if [ -d \"$d/cache\" ]; then find \"$d/cache\" -mindepth 1 -delete; fi; \
         if [ -d \"$d/sandboxes\" ]; then find \"$d/sandboxes\" -mindepth 2 -maxdepth 2 -type f -name '*.1' -delete; fi; \
         df -P \"$d\""
    )
}

/// The built-in agent restart: SIGHUP to the agent (`OCEAN_AGENT_PID`),
/// which starts again in place, keeping its tasks (this one included);
/// done when the agent recorded a new start in `<data>/agent-starts`,
/// failed when none came within `wait_seconds`.
pub fn restart_agent_command(data_dir: &str, wait_seconds: u64) -> String {
    let d = sh_quote(data_dir);
    let tries = wait_seconds.max(1) * 10;
    format!(
        "set -e; f={d}/agent-starts; test -n \"$OCEAN_AGENT_PID\"; \
         last() {{ tail -n 1 \"$f\" 2>/dev/null || true; }}; before=$(last); \
         kill -HUP \"$OCEAN_AGENT_PID\"; i=0; \
         while [ \"$(last)\" = \"$before\" ]; do i=$((i+1)); \
         if [ $i -gt {tries} ]; then echo \"the agent did not start again within {wait_seconds} s\" >&2; exit 1; fi; \
         sleep 0.1; done; echo \"the agent started again at $(last)\""
    )
}

/// The repair job's spec (JSON) for `action` on `hostname`.
pub fn repair_spec(job_id: &str, hostname: &str, action: &RepairAction, data_dir: &str) -> Vec<u8> {
    let cmd = if action.cmd.trim().is_empty() && action.name == "restart-agent" {
        // Leaves a tenth of the action's time for the verdict to travel.
        restart_agent_command(data_dir, action.timeout_seconds * 9 / 10)
    } else if action.cmd.trim().is_empty() {
        clean_command(data_dir)
    } else {
        action.cmd.replace("{data_dir}", &sh_quote(data_dir))
    };
    let spec = json!({
        "id": job_id,
        "type": "batch",
        "instances": 1,
        "cmd": cmd,
        "resources": {"cpus": 0.05, "mem": 32},
        "constraints": [["hostname", "CLUSTER", hostname]],
        // Placed on the host while it is closed to every other task.
        "maintenance": true,
        "labels": {"healing_action": action.name},
    });
    serde_json::to_vec(&spec).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_valid_labels_per_attempt() {
        let id = repair_job_id("1765000000000-Agent_0123456789abcdef", 2);
        assert_eq!(
            id,
            "cop.ocean_owt.healing_pdl.healing_service.repair_job.r2-1765000000000-agent-0123456789abcdef_cluster.default"
        );
        assert!(is_repair_job(&id));
        let long = repair_job_id(&format!("1-{}", "x".repeat(100)), 1);
        let label = long
            .strip_prefix(REPAIR_PREFIX)
            .and_then(|l| l.strip_suffix("_cluster.default"))
            .unwrap_or_default();
        assert!(label.len() <= 63 && !label.ends_with('-'));
    }

    #[test]
    fn specs_pin_the_host_and_quote_the_dir() {
        let clean = RepairAction {
            name: "clean".into(),
            cmd: String::new(),
            timeout_seconds: 60,
        };
        let spec: serde_json::Value =
            serde_json::from_slice(&repair_spec("j", "h1", &clean, "/d'x")).unwrap_or_default();
        assert_eq!(spec["constraints"][0], json!(["hostname", "CLUSTER", "h1"]));
        assert_eq!(spec["maintenance"], true);
        assert!(spec["cmd"].as_str().unwrap_or("").contains(r"d='/d'\''x'"));
        let script = RepairAction {
            name: "reinit".into(),
            cmd: "/usr/local/bin/reinit {data_dir}".into(),
            timeout_seconds: 60,
        };
        let spec: serde_json::Value =
            serde_json::from_slice(&repair_spec("j", "h1", &script, "/data")).unwrap_or_default();
        assert_eq!(spec["cmd"], "/usr/local/bin/reinit '/data'");
        let restart = RepairAction {
            name: "restart-agent".into(),
            cmd: String::new(),
            timeout_seconds: 60,
        };
        let spec: serde_json::Value =
            serde_json::from_slice(&repair_spec("j", "h1", &restart, "/data")).unwrap_or_default();
        let cmd = spec["cmd"].as_str().unwrap_or("");
        assert!(
            cmd.contains(r#"kill -HUP "$OCEAN_AGENT_PID""#)
                && cmd.contains("f='/data'/agent-starts")
                && cmd.contains("within 54 s"),
            "{cmd}"
        );
    }

    /// The built-in restart against a stand-in agent, a real shell that
    /// records a start when it gets SIGHUP (and one that ignores it).
    #[test]
    fn the_restart_waits_for_the_agents_new_start() {
        use std::process::{Command, Stdio};
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().display().to_string();
        std::fs::write(dir.path().join("agent-starts"), "1000\n").expect("starts");
        let agent = |on_hup: &str| {
            let script = format!("trap '{on_hup}' HUP; while :; do sleep 0.05; done");
            Command::new("sh")
                .args(["-c", &script])
                .env("F", dir.path().join("agent-starts"))
                .spawn()
                .expect("stand-in agent")
        };
        let run = |pid: u32, wait: u64| {
            Command::new("sh")
                .args(["-c", &restart_agent_command(&data, wait)])
                .env("OCEAN_AGENT_PID", pid.to_string())
                .stdin(Stdio::null())
                .output()
                .expect("run")
        };
        let mut good = agent("echo 2000 >> \"$F\"");
        let out = run(good.id(), 5);
        let _ = good.kill();
        let _ = good.wait();
        assert!(out.status.success(), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("started again at 2000"));
        let mut deaf = agent("");
        let out = run(deaf.id(), 1);
        let _ = deaf.kill();
        let _ = deaf.wait();
        assert!(!out.status.success(), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("did not start again within 1 s"));
    }
}
