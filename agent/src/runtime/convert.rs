//! Translation between the agent protocol's messages and the executor's
//! types: a `LaunchTask` becomes a [`TaskSpec`] (or an error naming the
//! field that is wrong), a [`TaskStatus`] becomes its wire form.

use std::time::Duration;

use ocean_proto::agent as pb;

use crate::task::{PortRequest, TaskCommand, TaskSpec, TaskStatus};

/// Kill grace of a task whose launch does not set one (`kill_grace_ms = 0`).
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(5);

/// Checks a `LaunchTask` and turns it into a [`TaskSpec`]. The error names
/// the field (`cmd/args`, `cpus`, `ports[1].port`, ...) so the master's
/// operator sees what it sent wrong.
pub fn task_spec(t: &pb::LaunchTask) -> Result<TaskSpec, String> {
    if t.task_id.is_empty() {
        return Err("task_id: must not be empty".into());
    }
    let command = match (t.cmd.is_empty(), t.args.is_empty()) {
        (false, true) => TaskCommand::Shell(t.cmd.clone()),
        (true, false) => TaskCommand::Args(t.args.clone()),
        (false, false) => return Err("cmd/args: set exactly one of cmd and args, not both".into()),
        (true, true) => return Err("cmd/args: set exactly one of cmd and args".into()),
    };
    if !t.cpus.is_finite() || t.cpus < 0.0 {
        return Err(format!(
            "cpus: must be a finite number >= 0, got {}",
            t.cpus
        ));
    }
    let mut ports = Vec::with_capacity(t.ports.len());
    for (i, p) in t.ports.iter().enumerate() {
        let port = u16::try_from(p.port)
            .map_err(|_| format!("ports[{i}].port: {} is not a port number", p.port))?;
        ports.push(PortRequest {
            name: p.name.clone(),
            port,
        });
    }
    let kill_grace = match t.kill_grace_ms {
        0 => DEFAULT_KILL_GRACE,
        ms => Duration::from_millis(ms),
    };
    Ok(TaskSpec {
        task_id: t.task_id.clone(),
        job_id: t.job_id.clone(),
        command,
        env: t.env.clone().into_iter().collect(),
        cpus: t.cpus,
        mem_mib: t.mem_mib,
        pids_limit: (t.pids_limit > 0).then_some(t.pids_limit),
        ports,
        kill_grace,
    })
}

/// The wire form of a status: state upper-case, reason snake_case, absent
/// fields empty or zero.
pub fn status_to_proto(s: &TaskStatus) -> pb::TaskStatus {
    pb::TaskStatus {
        task_id: s.task_id.clone(),
        state: s.state.as_str().to_string(),
        reason: s.reason.map(|r| r.as_str().to_string()).unwrap_or_default(),
        exit_code: s.exit_code,
        signal: s.signal,
        message: s.message.clone().unwrap_or_default(),
        timestamp_ms: s.timestamp_ms,
        pid: s.pid.unwrap_or(0),
        healthy: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{Reason, TaskState};

    fn launch(id: &str) -> pb::LaunchTask {
        pb::LaunchTask {
            task_id: id.into(),
            job_id: "web".into(),
            cmd: "sleep 1".into(),
            cpus: 0.5,
            mem_mib: 64,
            ports: vec![pb::Port {
                name: "http".into(),
                port: 31005,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_launch_becomes_a_spec() -> Result<(), String> {
        let mut t = launch("t1");
        t.env.insert("A".into(), "1".into());
        let spec = task_spec(&t)?;
        assert_eq!(spec.command, TaskCommand::Shell("sleep 1".into()));
        assert_eq!(spec.pids_limit, None);
        assert_eq!(spec.kill_grace, DEFAULT_KILL_GRACE);
        assert_eq!(spec.ports[0].port, 31005);
        assert_eq!(spec.env.get("A").map(String::as_str), Some("1"));
        t.cmd.clear();
        t.args = vec!["/bin/true".into()];
        t.pids_limit = 10;
        t.kill_grace_ms = 250;
        let spec = task_spec(&t)?;
        assert_eq!(spec.command, TaskCommand::Args(vec!["/bin/true".into()]));
        assert_eq!(spec.pids_limit, Some(10));
        assert_eq!(spec.kill_grace, Duration::from_millis(250));
        Ok(())
    }

    #[test]
    fn bad_launches_name_the_field() {
        let cases: Vec<(pb::LaunchTask, &str)> = vec![
            (launch(""), "task_id"),
            (
                pb::LaunchTask {
                    args: vec!["x".into()],
                    ..launch("t")
                },
                "cmd/args",
            ),
            (
                pb::LaunchTask {
                    cmd: String::new(),
                    ..launch("t")
                },
                "cmd/args",
            ),
            (
                pb::LaunchTask {
                    cpus: f64::NAN,
                    ..launch("t")
                },
                "cpus",
            ),
            (
                pb::LaunchTask {
                    ports: vec![pb::Port {
                        name: "p".into(),
                        port: 70000,
                    }],
                    ..launch("t")
                },
                "ports[0].port",
            ),
        ];
        for (t, field) in cases {
            match task_spec(&t) {
                Err(e) => assert!(e.starts_with(field), "{e:?} should name {field}"),
                Ok(_) => panic!("{t:?} accepted"),
            }
        }
    }

    #[test]
    fn statuses_go_on_the_wire_as_strings() {
        let mut s = TaskStatus::new("t1", TaskState::Failed);
        s.reason = Some(Reason::OomKilled);
        s.exit_code = Some(137);
        s.pid = Some(42);
        let p = status_to_proto(&s);
        assert_eq!(p.state, "FAILED");
        assert_eq!(p.reason, "oom_killed");
        assert_eq!((p.exit_code, p.signal, p.pid), (Some(137), None, 42));
    }
}
