//! Which tasks receive traffic: the one rule every part of the ELB (data
//! plane, status, keepalived export) shares.

use std::net::Ipv4Addr;

use ocean_client::api::Task;

use crate::plane::RealServer;

/// The tasks of one backend job, and whether the job has health checks.
#[derive(Debug, Clone, Default)]
pub struct JobTasks<'a> {
    /// Its tasks.
    pub tasks: Vec<&'a Task>,
    /// Whether its spec has health checks: a task of such a job serves
    /// only once a check has found it healthy, not when it merely runs
    /// (its process may not listen yet).
    pub checked: bool,
}

/// Tasks of a job without health checks.
impl<'a> FromIterator<&'a Task> for JobTasks<'a> {
    fn from_iter<I: IntoIterator<Item = &'a Task>>(iter: I) -> Self {
        JobTasks {
            tasks: iter.into_iter().collect(),
            checked: false,
        }
    }
}

/// Whether a job spec (canonical JSON) has health checks. Unreadable
/// specs count as checked: waiting for a verdict is the safe side.
pub fn has_health_checks(spec_json: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Checks {
        #[serde(default)]
        health_checks: Vec<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Checks>(spec_json).map_or(true, |c| !c.health_checks.is_empty())
}

/// Why a task of the backend job is out of rotation, or `None` when it is
/// in. A task is in while it is RUNNING, found healthy by its checks (or
/// its job has none: `checked` false), and not being stopped (so it
/// leaves the rotation before it is killed and its established
/// connections finish).
pub fn out_of_rotation(task: &Task, checked: bool) -> Option<&'static str> {
    if task.state != "RUNNING" {
        return Some("not running");
    }
    if task.healthy == Some(false) {
        return Some("unhealthy");
    }
    if checked && task.healthy.is_none() {
        return Some("awaiting its first health check");
    }
    if task.kill_requested {
        return Some("stopping");
    }
    // Its job's shutdown delay: out of service before the kill follows.
    if task.draining_since_ms != 0 {
        return Some("draining");
    }
    None
}

/// The task's address (its own, else its agent's).
pub fn address(task: &Task) -> Option<Ipv4Addr> {
    task.address.parse().ok().or_else(|| task.host.parse().ok())
}

/// The port the task has under `port_name`.
pub fn port(task: &Task, port_name: &str) -> Option<u16> {
    task.ports
        .iter()
        .find(|p| p.name == port_name)
        .and_then(|p| u16::try_from(p.port).ok())
        .filter(|p| *p != 0)
}

/// The task as a real server for a listener on `port_name`, if it is in
/// rotation and has an IPv4 address and that port.
pub fn real_server_of(task: &Task, port_name: &str, checked: bool) -> Option<RealServer> {
    if out_of_rotation(task, checked).is_some() {
        return None;
    }
    Some(RealServer {
        addr: address(task)?,
        port: port(task, port_name)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocean_client::api::TaskPort;

    fn task() -> Task {
        Task {
            id: "j.1".into(),
            job_id: "j".into(),
            state: "RUNNING".into(),
            host: "10.9.0.1".into(),
            ports: vec![TaskPort {
                name: "http".into(),
                port: 31000,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_running_task_without_checks_is_a_backend_at_its_hosts_address() {
        assert_eq!(
            real_server_of(&task(), "http", false),
            Some(RealServer {
                addr: "10.9.0.1".parse().unwrap(),
                port: 31000
            })
        );
        assert_eq!(real_server_of(&task(), "admin", false), None);
    }

    #[test]
    fn unhealthy_stopping_or_not_running_tasks_are_out() {
        let mut t = task();
        t.healthy = Some(false);
        assert_eq!(out_of_rotation(&t, false), Some("unhealthy"));
        let mut t = task();
        t.kill_requested = true;
        assert_eq!(out_of_rotation(&t, false), Some("stopping"));
        let mut t = task();
        t.draining_since_ms = 7;
        assert_eq!(out_of_rotation(&t, false), Some("draining"));
        let mut t = task();
        t.state = "STARTING".into();
        assert_eq!(out_of_rotation(&t, false), Some("not running"));
        assert_eq!(real_server_of(&t, "http", false), None);
        let mut t = task();
        t.healthy = Some(true);
        assert_eq!(out_of_rotation(&t, false), None);
        assert_eq!(out_of_rotation(&t, true), None);
    }

    #[test]
    fn a_task_of_a_checked_job_waits_for_its_first_verdict() {
        let t = task();
        assert_eq!(
            out_of_rotation(&t, true),
            Some("awaiting its first health check")
        );
        assert_eq!(real_server_of(&t, "http", true), None);
        assert!(has_health_checks(
            br#"{"id":"j","health_checks":[{"protocol":"tcp"}]}"#
        ));
        assert!(!has_health_checks(br#"{"id":"j","health_checks":[]}"#));
        assert!(!has_health_checks(br#"{"id":"j"}"#));
        assert!(has_health_checks(b"not json"));
    }
}
