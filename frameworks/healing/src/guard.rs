//! The guards that keep healing from making an outage worse (Marathon
//! #3317: health checks killed many services at once on overloaded
//! hosts): a storm of ill hosts stops all action, and a host starts
//! draining only within its tree node's and its jobs' shares.

use std::collections::BTreeMap;

use crate::config::HealingConfig;
use crate::machine::{Allowed, Checks, Observation};
use crate::ticket::Ticket;

/// A storm: `Some(why)` when more than `max_ill_share` of the hosts with
/// checks fail them at once (and at least `min_hosts_for_storm`).
pub fn storm(hosts: &[Observation], cfg: &HealingConfig) -> Option<String> {
    let known = hosts.iter().filter(|h| h.checks != Checks::Unknown).count();
    let ill = hosts
        .iter()
        .filter(|h| matches!(h.checks, Checks::Fail { .. }))
        .count();
    if known == 0 || (ill as u32) < cfg.min_hosts_for_storm {
        return None;
    }
    (ill as f64 / known as f64 > cfg.max_ill_share).then(|| {
        format!(
            "{ill} of {known} hosts are ill at once (more than {:.0}%): likely a shared cause (network, masters, a bad deploy); healing holds every action",
            cfg.max_ill_share * 100.0
        )
    })
}

/// The live tasks of the cluster's jobs (healing's own left out): job →
/// the agents its tasks run on.
pub type TasksByJob = BTreeMap<String, Vec<String>>;

/// What the guards allow `host` this round, given every host, the open
/// tickets by agent and the live tasks.
pub fn allowed(
    host: &Observation,
    hosts: &[Observation],
    open: &BTreeMap<String, Ticket>,
    tasks: &TasksByJob,
    storm: &Option<String>,
    cfg: &HealingConfig,
) -> Allowed {
    let out = |agent: &str| {
        agent != host.agent_id && open.get(agent).is_some_and(|t| t.state.out_of_service())
    };
    let node: Vec<&Observation> = hosts.iter().filter(|h| h.node == host.node).collect();
    let n = node.len();
    let limit = if n >= 2 {
        ((cfg.max_node_drain_share * n as f64).floor() as usize).max(1)
    } else {
        0
    };
    let busy = node.iter().filter(|h| out(&h.agent_id)).count();
    let mut drain_held = None;
    if busy + 1 > limit {
        drain_held = Some(format!(
            "node {:?}: {busy} of its {n} host(s) already out of service, at most {limit} at once",
            host.node
        ));
    }
    if drain_held.is_none() {
        for (job, agents) in tasks {
            let here = agents.iter().filter(|a| **a == host.agent_id).count();
            if here == 0 {
                continue;
            }
            let others = agents.iter().filter(|a| out(a)).count();
            let total = agents.len();
            let limit = ((cfg.max_job_drain_share * total as f64).floor() as usize).max(1);
            // A host alone is always allowed: the master's drain places
            // each replacement before it stops anything.
            if others > 0 && others + here > limit {
                drain_held = Some(format!(
                    "job {job}: {others} of its {total} task(s) already on hosts out of service; draining this host would take {} out at once, at most {limit}",
                    others + here
                ));
                break;
            }
        }
    }
    Allowed {
        storm: storm.clone(),
        drain_held,
    }
}
