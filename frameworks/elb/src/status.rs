//! An ELB's status as the API and the dashboard show it: each virtual
//! server with every task of its jobs, in rotation or not and why.

use serde::Serialize;

use crate::backends::{address, out_of_rotation, port, JobTasks};
use crate::spec::ElbSpec;

/// One virtual server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VsStatus {
    /// The VIP.
    pub vip: String,
    /// The port on it.
    pub port: u32,
    /// tcp or udp.
    pub protocol: String,
    /// rr, wrr or hash.
    pub algorithm: String,
    /// Real servers in rotation.
    pub in_rotation: usize,
    /// Every task of the listeners' jobs.
    pub real_servers: Vec<RsStatus>,
}

/// One task behind a virtual server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RsStatus {
    /// The task.
    pub task: String,
    /// Its job.
    pub job: String,
    /// Its address and port (empty when it has none yet).
    pub address: String,
    /// Its port of the listener's name (0: none).
    pub port: u32,
    /// Its state.
    pub state: String,
    /// As its health checks last found it (`None`: no checks or no verdict).
    pub healthy: Option<bool>,
    /// Its wrr weight.
    pub weight: u32,
    /// Whether new connections reach it.
    pub in_rotation: bool,
    /// Why not, when it is out.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// The status of `elb`, given the tasks of each backend job.
pub fn status<'a>(elb: &ElbSpec, tasks_of: &dyn Fn(&str) -> JobTasks<'a>) -> Vec<VsStatus> {
    let mut out = Vec::new();
    for vip in &elb.vips {
        let mut seen: Vec<(u32, String)> = Vec::new();
        for l in &elb.listeners {
            let key = (l.port, l.protocol.to_string());
            if seen.contains(&key) {
                continue;
            }
            seen.push(key);
            let mut rss = Vec::new();
            for same in elb
                .listeners
                .iter()
                .filter(|o| o.port == l.port && o.protocol == l.protocol)
            {
                let job = tasks_of(&same.backend_job);
                for t in job.tasks {
                    let p = port(t, &same.backend_port_name);
                    let a = address(t);
                    let reason = match (out_of_rotation(t, job.checked), a, p) {
                        (Some(r), _, _) => r.to_string(),
                        (None, None, _) => "no IPv4 address".to_string(),
                        (None, _, None) => format!("no port named {}", same.backend_port_name),
                        _ => String::new(),
                    };
                    rss.push(RsStatus {
                        task: t.id.clone(),
                        job: t.job_id.clone(),
                        address: a.map(|a| a.to_string()).unwrap_or_default(),
                        port: p.map(u32::from).unwrap_or(0),
                        state: t.state.clone(),
                        healthy: t.healthy,
                        weight: same.weight,
                        in_rotation: reason.is_empty(),
                        reason,
                    });
                }
            }
            out.push(VsStatus {
                vip: vip.clone(),
                port: l.port,
                protocol: l.protocol.to_string(),
                algorithm: l.algorithm.as_str().to_string(),
                in_rotation: rss.iter().filter(|r| r.in_rotation).count(),
                real_servers: rss,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Algorithm, Listener, Network, Protocol};
    use ocean_client::api::{Task, TaskPort};

    #[test]
    fn each_task_is_shown_with_why_it_is_out() {
        let job = "cop.x_owt.y_pdl.w_servicegroup.g_service.s_job.api_cluster.c3";
        let elb = ElbSpec {
            name: "pdl.w".into(),
            idc: "c3".into(),
            network: Network::External,
            vips: vec!["10.0.0.1".into()],
            listeners: vec![Listener {
                port: 80,
                protocol: Protocol::Tcp,
                backend_job: job.into(),
                backend_port_name: "http".into(),
                algorithm: Algorithm::Rr,
                weight: 1,
            }],
            domain: None,
            views: Vec::new(),
        };
        let t = |id: &str, healthy: Option<bool>| Task {
            id: id.into(),
            job_id: job.into(),
            state: "RUNNING".into(),
            address: "10.1.0.2".into(),
            healthy,
            ports: vec![TaskPort {
                name: "http".into(),
                port: 8080,
            }],
            ..Default::default()
        };
        let tasks = [t("a", Some(true)), t("b", Some(false))];
        let s = status(&elb, &|_| tasks.iter().collect());
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].in_rotation, 1);
        assert_eq!(
            serde_json::to_value(&s[0].real_servers[1]).unwrap(),
            serde_json::json!({"task": "b", "job": job, "address": "10.1.0.2", "port": 8080,
                "state": "RUNNING", "healthy": false, "weight": 1, "in_rotation": false,
                "reason": "unhealthy"})
        );
    }
}
