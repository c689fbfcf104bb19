//! Translation between the agent protocol's messages and the executor's
//! types: a `LaunchTask` becomes a [`TaskSpec`] (or an error naming the
//! field that is wrong), a [`TaskStatus`] becomes its wire form.

use std::time::Duration;

use ocean_proto::agent as pb;

use crate::health::{HealthCheckSpec, Protocol, TaskHealth};
use crate::release::{ArtifactSpec, DnsFacts, ReleaseSpec, TemplateSpec};
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
    let health_checks = health_checks(t)?;
    let release = release(t)?;
    if t.persistent_volume && t.docker.is_some() {
        return Err("persistent_volume: native tasks only".into());
    }
    Ok(TaskSpec {
        persistent_volume: t.persistent_volume,
        release,
        health_checks,
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

/// The release and templates of a launch, `None` when it has neither;
/// errors name the field.
pub fn release(t: &pb::LaunchTask) -> Result<Option<ReleaseSpec>, String> {
    if t.artifacts.is_empty() && t.templates.is_empty() {
        return Ok(None);
    }
    let artifacts = t
        .artifacts
        .iter()
        .enumerate()
        .map(|(i, a)| {
            if a.sha256.len() != 64 || !a.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("artifacts[{i}].sha256: must be 64 hex digits"));
            }
            if a.dest.starts_with('/') || a.dest.split('/').any(|p| p == "..") {
                return Err(format!("artifacts[{i}].dest: must stay inside the release"));
            }
            Ok(ArtifactSpec {
                url: a.url.clone(),
                sha256: a.sha256.to_ascii_lowercase(),
                extract: a.extract,
                dest: a.dest.clone(),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let templates = t
        .templates
        .iter()
        .enumerate()
        .map(|(i, tpl)| {
            let values = if tpl.values_json.is_empty() {
                Default::default()
            } else {
                serde_json::from_str(&tpl.values_json)
                    .map_err(|e| format!("templates[{i}].values: {e}"))?
            };
            if tpl.dest.is_empty()
                || tpl.dest.starts_with('/')
                || tpl.dest.split('/').any(|p| p == "..")
            {
                return Err(format!("templates[{i}].dest: must stay inside the sandbox"));
            }
            Ok(TemplateSpec {
                source: tpl.source.clone(),
                inline: tpl.inline.clone(),
                dest: tpl.dest.clone(),
                values,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let dns = t.dns.clone().unwrap_or_default();
    Ok(Some(ReleaseSpec {
        version: t.spec_version,
        environment: t.environment.clone(),
        artifacts,
        templates,
        dns: DnsFacts {
            job: dns.job,
            task: dns.task,
            srv: dns.srv.into_iter().collect(),
            domain: t.dns_domain.clone(),
        },
    }))
}

/// Checks a launch's health checks (native or container), naming the
/// field that is wrong.
pub fn health_checks(t: &pb::LaunchTask) -> Result<Vec<HealthCheckSpec>, String> {
    t.health_checks
        .iter()
        .enumerate()
        .map(|(i, h)| health_check(i, h, &t.ports))
        .collect()
}

/// Checks one health check of a launch, naming the field that is wrong.
fn health_check(
    i: usize,
    h: &pb::HealthCheck,
    ports: &[pb::Port],
) -> Result<HealthCheckSpec, String> {
    let field = |name: &str| format!("health_checks[{i}].{name}");
    let protocol = Protocol::parse(&h.protocol).ok_or_else(|| {
        format!(
            "{}: '{}' is not one of http, tcp, command",
            field("protocol"),
            h.protocol
        )
    })?;
    let port_index = match protocol {
        Protocol::Command => {
            if h.command.is_empty() {
                return Err(format!("{}: required for command checks", field("command")));
            }
            0
        }
        Protocol::Http | Protocol::Tcp => ports
            .iter()
            .position(|p| p.name == h.port_name)
            .ok_or_else(|| {
                format!(
                    "{}: no port named '{}' in the launch",
                    field("port_name"),
                    h.port_name
                )
            })?,
    };
    let status = |name: &str, v: u32| {
        u16::try_from(v)
            .ok()
            .filter(|s| (100..=599).contains(s))
            .ok_or_else(|| format!("{}: {v} is not an HTTP status", field(name)))
    };
    let (status_min, status_max) = match protocol {
        Protocol::Http => (
            status("status_min", h.status_min)?,
            status("status_max", h.status_max)?,
        ),
        _ => (200, 399),
    };
    if h.interval_ms == 0 || h.timeout_ms == 0 {
        return Err(format!(
            "{}: interval_ms and timeout_ms must be positive",
            field("interval_ms")
        ));
    }
    Ok(HealthCheckSpec {
        protocol,
        port_index,
        path: if h.path.is_empty() {
            "/".into()
        } else {
            h.path.clone()
        },
        status_min,
        status_max,
        command: h.command.clone(),
        grace_period: Duration::from_millis(h.grace_period_ms),
        interval: Duration::from_millis(h.interval_ms),
        timeout: Duration::from_millis(h.timeout_ms),
        max_consecutive_failures: h.max_consecutive_failures,
    })
}

/// The wire form of a status with the task's health.
pub fn status_with_health(s: &TaskStatus, health: &TaskHealth) -> pb::TaskStatus {
    let mut wire = status_to_proto(s);
    wire.healthy = health.healthy;
    wire.health_message = health.message.clone();
    wire.health_failed = health.failed;
    wire
}

/// The wire form of a status: state upper-case, reason snake_case, absent
/// fields empty or zero, health unknown.
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
        health_message: String::new(),
        health_failed: false,
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
    fn health_checks_resolve_their_port_or_name_the_field() -> Result<(), String> {
        let mut t = launch("t1");
        let check = pb::HealthCheck {
            protocol: "http".into(),
            port_name: "http".into(),
            path: "/health".into(),
            status_min: 200,
            status_max: 299,
            interval_ms: 1000,
            timeout_ms: 500,
            max_consecutive_failures: 3,
            ..Default::default()
        };
        t.health_checks = vec![check.clone()];
        let spec = task_spec(&t)?;
        assert_eq!(spec.health_checks[0].port_index, 0);
        assert_eq!(spec.health_checks[0].interval, Duration::from_secs(1));
        let bad = |f: &dyn Fn(&mut pb::HealthCheck)| {
            let mut c = check.clone();
            f(&mut c);
            let mut t = launch("t1");
            t.health_checks = vec![c];
            task_spec(&t).err().unwrap_or_default()
        };
        assert!(bad(&|c| c.port_name = "nope".into()).starts_with("health_checks[0].port_name"));
        assert!(bad(&|c| c.protocol = "udp".into()).starts_with("health_checks[0].protocol"));
        assert!(bad(&|c| c.status_max = 9000).starts_with("health_checks[0].status_max"));
        assert!(bad(&|c| c.protocol = "command".into()).starts_with("health_checks[0].command"));
        Ok(())
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
