//! The agents' host checks as the leader last received them (leader
//! memory: a new leader hears every agent's latest on its new stream), with
//! the clock skew check, which only the leader can judge, added.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ocean_proto::agent as pb;
use ocean_proto::v1 as api;
use serde::Serialize;

/// Most checks kept from one report, and longest name and message: an
/// agent cannot make the leader hold unbounded memory.
const MAX_CHECKS: usize = 64;
const MAX_NAME: usize = 128;
const MAX_MESSAGE: usize = 1024;
const MAX_JOBS: usize = 32;

/// One check, as `GET /v1/agents/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostCheckView {
    pub name: String,
    pub ok: bool,
    pub value: f64,
    pub limit: f64,
    pub message: String,
    /// `at_least`, `at_most`, or empty: how `value` meets `limit`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub bound: String,
    /// `launch_failures`: the job of each failed launch.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<String>,
}

/// An agent's latest host checks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostChecksView {
    /// Leader clock at receipt, ms since the epoch.
    pub received_ms: u64,
    /// Agent clock minus leader clock at receipt.
    pub clock_skew_ms: i64,
    pub interval_ms: u64,
    pub data_dir: String,
    /// Every check passes.
    pub ok: bool,
    pub checks: Vec<HostCheckView>,
}

fn cut(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// The view of a report received at `received_ms` (leader clock).
pub fn from_report(r: &pb::HostChecks, received_ms: u64) -> HostChecksView {
    let mut checks: Vec<HostCheckView> = r
        .checks
        .iter()
        .take(MAX_CHECKS)
        .map(|c| HostCheckView {
            name: cut(&c.name, MAX_NAME),
            ok: c.ok,
            value: c.value,
            limit: c.limit,
            message: cut(&c.message, MAX_MESSAGE),
            bound: match c.bound.as_str() {
                b @ ("at_least" | "at_most") => b.to_string(),
                _ => String::new(),
            },
            jobs: c
                .jobs
                .iter()
                .take(MAX_JOBS)
                .map(|j| cut(j, MAX_NAME * 2))
                .collect(),
        })
        .collect();
    let skew = r.timestamp_ms as i64 - received_ms as i64;
    if r.max_clock_skew_ms > 0 {
        let ok = skew.unsigned_abs() <= r.max_clock_skew_ms;
        checks.push(HostCheckView {
            name: "clock_skew".into(),
            ok,
            value: skew as f64,
            limit: r.max_clock_skew_ms as f64,
            // Judged on the absolute value; nothing to judge again.
            bound: String::new(),
            jobs: Vec::new(),
            message: format!(
                "the agent's clock is {skew} ms off the leader's, at most {} ms accepted",
                r.max_clock_skew_ms
            ),
        });
    }
    HostChecksView {
        received_ms,
        clock_skew_ms: skew,
        interval_ms: r.interval_ms,
        data_dir: cut(&r.data_dir, 4096),
        ok: checks.iter().all(|c| c.ok),
        checks,
    }
}

/// The public message of a view.
pub fn to_proto(v: &HostChecksView) -> api::AgentHostChecks {
    api::AgentHostChecks {
        received_ms: v.received_ms,
        clock_skew_ms: v.clock_skew_ms,
        interval_ms: v.interval_ms,
        data_dir: v.data_dir.clone(),
        ok: v.ok,
        checks: v
            .checks
            .iter()
            .map(|c| api::AgentHostCheck {
                name: c.name.clone(),
                ok: c.ok,
                value: c.value,
                limit: c.limit,
                message: c.message.clone(),
                bound: c.bound.clone(),
                jobs: c.jobs.clone(),
            })
            .collect(),
    }
}

/// The latest host checks per agent.
#[derive(Debug, Default)]
pub struct Store {
    latest: Mutex<HashMap<String, Arc<HostChecksView>>>,
}

impl Store {
    /// Keeps `r`, received now, as `agent`'s latest.
    pub fn put(&self, agent: &str, r: &pb::HostChecks) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let view = Arc::new(from_report(r, now));
        let mut m = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        m.insert(agent.to_string(), view);
    }

    /// `agent`'s latest, if it reported any to this leader.
    pub fn get(&self, agent: &str) -> Option<Arc<HostChecksView>> {
        let m = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        m.get(agent).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(ts: u64, ok: bool) -> pb::HostChecks {
        pb::HostChecks {
            timestamp_ms: ts,
            checks: vec![pb::HostCheck {
                name: "disk:/d".into(),
                ok,
                value: 50.0,
                limit: 10.0,
                message: "x".repeat(5000),
                bound: "at_least".into(),
                jobs: vec!["j".repeat(1000); 100],
            }],
            interval_ms: 1000,
            data_dir: "/d".into(),
            max_clock_skew_ms: 500,
        }
    }

    #[test]
    fn the_leader_adds_clock_skew() {
        let v = from_report(&report(10_000, true), 10_200);
        assert!(v.ok);
        assert_eq!(v.clock_skew_ms, -200);
        assert_eq!(v.checks.len(), 2);
        assert_eq!(v.checks[0].message.len(), MAX_MESSAGE);
        // An agent cannot make the leader hold unbounded job lists.
        assert_eq!(v.checks[0].bound, "at_least");
        assert_eq!(v.checks[0].jobs.len(), MAX_JOBS);
        assert!(v.checks[0].jobs.iter().all(|j| j.len() <= MAX_NAME * 2));
        let v = from_report(&report(10_000, true), 11_000);
        assert!(!v.ok);
        let skew = &v.checks[1];
        assert_eq!(
            (skew.name.as_str(), skew.ok, skew.value),
            ("clock_skew", false, -1000.0)
        );
        assert!(!from_report(&report(10_000, false), 10_000).ok);
    }

    #[test]
    fn the_store_keeps_the_latest() {
        let s = Store::default();
        assert!(s.get("a").is_none());
        s.put("a", &report(1, true));
        s.put("a", &report(2, false));
        assert_eq!(s.get("a").map(|v| v.checks[0].ok), Some(false));
    }
}
