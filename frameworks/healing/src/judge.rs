//! Which of a host's checks fail, as healing sees them: the agent's own
//! verdicts, judged again where the settings give the host's tree node
//! another limit, and with launches that fail on several hosts at once not
//! held against any one of them (a bad job is not a bad host).

use std::collections::{BTreeMap, BTreeSet};

use ocean_client::api::{AgentHostCheck, AgentInfo};

use crate::config::HealingConfig;

/// The check counting failed launches.
pub const LAUNCH_FAILURES: &str = "launch_failures";

/// Whether `a`'s checks are recent enough to act on at `now`.
pub fn fresh(a: &AgentInfo, cfg: &HealingConfig, now: u64) -> bool {
    a.connected != Some(false)
        && a.unreachable != Some(true)
        && a.host_checks
            .as_ref()
            .is_some_and(|h| now.saturating_sub(h.received_ms) <= cfg.stale_after_seconds * 1000)
}

/// Jobs whose launches failed on two or more hosts with fresh checks.
pub fn jobs_failing_on_several_hosts(
    agents: &[AgentInfo],
    cfg: &HealingConfig,
    now: u64,
) -> BTreeSet<String> {
    let mut hosts_of: BTreeMap<&str, usize> = BTreeMap::new();
    for a in agents.iter().filter(|a| fresh(a, cfg, now)) {
        let jobs: BTreeSet<&str> = a
            .host_checks
            .iter()
            .flat_map(|h| &h.checks)
            .filter(|c| c.name == LAUNCH_FAILURES)
            .flat_map(|c| c.jobs.iter().map(String::as_str))
            .collect();
        for j in jobs {
            *hosts_of.entry(j).or_default() += 1;
        }
    }
    hosts_of
        .into_iter()
        .filter(|(_, n)| *n >= 2)
        .map(|(j, _)| j.to_string())
        .collect()
}

/// `c` as healing judges it on a host of `node`: `Err(why)` when it fails.
pub fn judge(
    c: &AgentHostCheck,
    node: &str,
    cfg: &HealingConfig,
    failing_elsewhere: &BTreeSet<String>,
) -> Result<(), String> {
    let limit = cfg.limit_for(node, &c.name);
    let (value, shared) = if c.name == LAUNCH_FAILURES && !c.jobs.is_empty() {
        let shared = c
            .jobs
            .iter()
            .filter(|j| failing_elsewhere.contains(*j))
            .count();
        ((c.jobs.len() - shared) as f64, shared)
    } else {
        (c.value, 0)
    };
    if shared == 0 && limit.is_none() {
        return if c.ok {
            Ok(())
        } else {
            Err(format!("{}: {}", c.name, c.message))
        };
    }
    let limit = limit.unwrap_or(c.limit);
    let ok = match c.bound.as_str() {
        "at_least" => value >= limit,
        "at_most" => value <= limit,
        // No number to judge: the agent's verdict stands.
        _ => c.ok,
    };
    if ok {
        return Ok(());
    }
    let mut why = if c.name == LAUNCH_FAILURES {
        format!(
            "{}: {value} launch(es) failed on this host only, at most {limit} accepted",
            c.name
        )
    } else {
        format!(
            "{}: {} (judged against {limit} for {node})",
            c.name, c.message
        )
    };
    if shared > 0 {
        why.push_str(&format!(
            "; {shared} more of jobs failing on other hosts too, not counted"
        ));
    }
    Err(why)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, ok: bool, value: f64, limit: f64, bound: &str) -> AgentHostCheck {
        AgentHostCheck {
            name: name.into(),
            ok,
            value,
            limit,
            message: format!("{name} is {value}"),
            bound: bound.into(),
            jobs: Vec::new(),
        }
    }

    #[test]
    fn a_node_limit_judges_the_measured_value_again_in_the_agents_direction() {
        let cfg = HealingConfig::parse(
            br#"{"check_limits": {"idc.strict": {"disk:": 30, "load": 1},
                                  "idc.lax": {"disk:": 2, "load": 20}}}"#,
        )
        .expect("cfg");
        let none = BTreeSet::new();
        // 15% free passes the agent's 10% but not the strict node's 30%.
        let disk = check("disk:/d", true, 15.0, 10.0, "at_least");
        assert!(judge(&disk, "idc.other", &cfg, &none).is_ok());
        let e = judge(&disk, "idc.strict", &cfg, &none).unwrap_err();
        assert!(e.contains("judged against 30 for idc.strict"), "{e}");
        // 5% free fails the agent's limit but passes the lax node's 2%.
        let low = check("disk:/d", false, 5.0, 10.0, "at_least");
        assert!(judge(&low, "idc.lax", &cfg, &none).is_ok());
        assert!(judge(&low, "idc.other", &cfg, &none).is_err());
        // Load: at most.
        let load = check("load", true, 3.0, 8.0, "at_most");
        assert!(judge(&load, "idc.strict", &cfg, &none).is_err());
        assert!(judge(&load, "idc.lax", &cfg, &none).is_ok());
        // No number (a read that failed): the agent's verdict stands.
        let unread = check("disk:/d", false, 0.0, 0.0, "");
        assert!(judge(&unread, "idc.lax", &cfg, &none).is_err());
    }

    #[test]
    fn launches_failing_on_several_hosts_are_the_jobs_fault_not_the_hosts() {
        let cfg = HealingConfig::default();
        let mut bad = check(LAUNCH_FAILURES, false, 7.0, 5.0, "at_most");
        bad.jobs = ["web", "web", "web", "web", "db", "db", "db"]
            .map(String::from)
            .to_vec();
        let host = |id: &str, jobs: &[&str]| {
            let mut c = bad.clone();
            c.jobs = jobs.iter().map(|j| j.to_string()).collect();
            AgentInfo {
                agent: Some(ocean_client::api::Agent {
                    id: id.into(),
                    ..Default::default()
                }),
                connected: Some(true),
                host_checks: Some(ocean_client::api::AgentHostChecks {
                    received_ms: 1_000,
                    checks: vec![c],
                    ..Default::default()
                }),
                ..Default::default()
            }
        };
        // `web` fails on two hosts: a bad job. `db` only on this one.
        let fleet = [
            host("a", &["web", "db"]),
            host("b", &["web"]),
            host("c", &[]),
        ];
        let elsewhere = jobs_failing_on_several_hosts(&fleet, &cfg, 2_000);
        assert_eq!(elsewhere, BTreeSet::from(["web".to_string()]));
        // 3 of this host's own: within the 5 allowed.
        assert!(judge(&bad, "-", &cfg, &elsewhere).is_ok());
        // With none shared, all 7 count.
        let e = judge(&bad, "-", &cfg, &BTreeSet::new()).unwrap_err();
        assert!(
            e.starts_with("launch_failures: launch_failures is 7"),
            "{e}"
        );
        bad.jobs.extend(["db", "db", "db"].map(String::from));
        let e = judge(&bad, "-", &cfg, &elsewhere).unwrap_err();
        assert!(
            e.contains("6 launch(es) failed on this host only") && e.contains("4 more"),
            "{e}"
        );
        // Stale hosts do not count as others.
        let elsewhere = jobs_failing_on_several_hosts(&fleet, &cfg, 1_000 + 31_000);
        assert!(elsewhere.is_empty());
    }
}
