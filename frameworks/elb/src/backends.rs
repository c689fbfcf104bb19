//! Which tasks receive traffic: the one rule every part of the ELB (data
//! plane, status, keepalived export) shares.

use std::net::Ipv4Addr;

use ocean_client::api::Task;

use crate::plane::RealServer;

/// A task that is (or could be) a real server, and where it listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// The task's id.
    pub task: String,
    /// Its address and the port named by the listener.
    pub rs: RealServer,
}

/// Why a task of the backend job is out of rotation, or `None` when it is
/// in. A task is in while it is RUNNING, not found unhealthy by its
/// checks, and not being stopped (so it leaves the rotation before it is
/// killed and its established connections finish).
pub fn out_of_rotation(task: &Task) -> Option<&'static str> {
    if task.state != "RUNNING" {
        return Some("not running");
    }
    if task.healthy == Some(false) {
        return Some("unhealthy");
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
pub fn backend_of(task: &Task, port_name: &str) -> Option<Backend> {
    if out_of_rotation(task).is_some() {
        return None;
    }
    Some(Backend {
        task: task.id.clone(),
        rs: RealServer {
            addr: address(task)?,
            port: port(task, port_name)?,
        },
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
            backend_of(&task(), "http"),
            Some(Backend {
                task: "j.1".into(),
                rs: RealServer {
                    addr: "10.9.0.1".parse().unwrap(),
                    port: 31000
                }
            })
        );
        assert_eq!(backend_of(&task(), "admin"), None);
    }

    #[test]
    fn unhealthy_stopping_or_not_running_tasks_are_out() {
        let mut t = task();
        t.healthy = Some(false);
        assert_eq!(out_of_rotation(&t), Some("unhealthy"));
        let mut t = task();
        t.kill_requested = true;
        assert_eq!(out_of_rotation(&t), Some("stopping"));
        let mut t = task();
        t.draining_since_ms = 7;
        assert_eq!(out_of_rotation(&t), Some("draining"));
        let mut t = task();
        t.state = "STARTING".into();
        assert_eq!(out_of_rotation(&t), Some("not running"));
        assert_eq!(backend_of(&t, "http"), None);
        let mut t = task();
        t.healthy = Some(true);
        assert_eq!(out_of_rotation(&t), None);
    }
}
