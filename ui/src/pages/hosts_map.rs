//! `GET /ui/hosts/map.json`: every agent for the hosts page's canvas, in
//! a compact form that stays small for 10,000 hosts: one status digit per
//! host in one string, and the hostnames coded against the one before
//! (`prefix,suffix,middle`: the lengths of the prefix and suffix it
//! shares with it, and what differs), since hostnames sorted by agent id
//! share most of their text (`host-00412.c3.example.com`).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use ocean_master::kernel::state::AGENT_STATUSES;
use ocean_master::service::views::AgentView;
use ocean_master::service::ReadOptions;
use ocean_master::Master;
use serde::Serialize;

use crate::error::Result;

/// The map's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostsMap {
    /// The state version it reflects.
    pub v: u64,
    /// What each status digit means: the agent statuses, then
    /// `unreachable` (an agent the leader cannot hear; leader only).
    pub statuses: Vec<&'static str>,
    /// One digit per host, in agent-id order.
    pub s: String,
    /// Hostnames, `|`-separated, each `<prefix>,<suffix>,<middle>`: the
    /// lengths it shares with the one before at each end, and the rest.
    pub names: String,
}

/// The code of `unreachable` in [`HostsMap::s`].
pub const UNREACHABLE: u8 = AGENT_STATUSES.len() as u8;

/// Encodes hosts given as (hostname, status, unreachable), in their order.
pub fn encode<'a>(v: u64, hosts: impl IntoIterator<Item = (&'a str, &'a str, bool)>) -> HostsMap {
    let mut s = String::new();
    let mut names = String::new();
    let mut prev = String::new();
    for (i, (name, status, unreachable)) in hosts.into_iter().enumerate() {
        let code = if unreachable {
            UNREACHABLE
        } else {
            // An unknown status shows as the last one (problem).
            AGENT_STATUSES
                .iter()
                .position(|x| *x == status)
                .unwrap_or(AGENT_STATUSES.len() - 1) as u8
        };
        s.push(char::from(b'0' + code));
        let name = name.replace(['|', '\n', '\r'], " ");
        let (p, sfx) = shared(&prev, &name);
        if i > 0 {
            names.push('|');
        }
        names.push_str(&format!("{p},{sfx},{}", &name[p..name.len() - sfx]));
        prev = name;
    }
    let mut statuses: Vec<&'static str> = AGENT_STATUSES.to_vec();
    statuses.push("unreachable");
    HostsMap {
        v,
        statuses,
        s,
        names,
    }
}

/// The prefix and then the suffix (of what is left) that `a` and `b`
/// share, in bytes. Names that are not ASCII share nothing: the script
/// counts UTF-16 units, so lengths agree only on ASCII.
fn shared(a: &str, b: &str) -> (usize, usize) {
    if !a.is_ascii() || !b.is_ascii() {
        return (0, 0);
    }
    let p = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    let (ra, rb) = (&a.as_bytes()[p..], &b.as_bytes()[p..]);
    let s = ra
        .iter()
        .rev()
        .zip(rb.iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    (p, s)
}

/// Decodes [`HostsMap::names`] (as `hosts-map.js` does), for tests.
pub fn decode_names(names: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for entry in names.split('|').filter(|l| !l.is_empty()) {
        let mut parts = entry.splitn(3, ',');
        let p: usize = parts.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        let s: usize = parts.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        let middle = parts.next().unwrap_or("");
        let prev = out.last().map(String::as_str).unwrap_or("");
        let p = p.min(prev.len());
        let s = s.min(prev.len() - p);
        out.push(format!("{}{middle}{}", &prev[..p], &prev[prev.len() - s..]));
    }
    out
}

/// `GET /ui/hosts/map.json`.
pub async fn json(State(m): State<Master>) -> Result<impl IntoResponse> {
    let (v, agents) = m.service().list_agents(ReadOptions::default()).await?;
    let mut agents: Vec<_> = agents
        .iter()
        .map(|(a, l)| {
            (
                AgentView::from(a.as_ref()),
                l.is_some_and(|l| l.unreachable),
            )
        })
        .collect();
    agents.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    let map = encode(
        v,
        agents
            .iter()
            .map(|(a, u)| (a.hostname.as_str(), a.status.as_str(), *u)),
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        serde_json::to_string(&map).unwrap_or_default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_thousand_hosts_stay_small_and_decode_back() {
        let names: Vec<String> = (0..10_000)
            .map(|i| format!("host-{i:05}.c3.example.com"))
            .collect();
        let statuses = ["online", "draining", "offline", "problem"];
        let map = encode(
            7,
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.as_str(), statuses[i % 4], i % 97 == 0)),
        );
        let json = serde_json::to_string(&map).unwrap();
        // Plain names alone would be ~270 KB.
        assert!(json.len() < 100_000, "{} bytes", json.len());
        assert_eq!(map.s.len(), 10_000);
        // Host 0 is unreachable (4), then draining, offline, problem, online.
        assert_eq!(&map.s[..5], "41230");
        assert_eq!(decode_names(&map.names), names);
        let odd = ["a", "ab", "b", "bb", "b", "é", "éé", "xé"];
        let map = encode(1, odd.iter().map(|n| (*n, "online", false)));
        assert_eq!(decode_names(&map.names), odd);
    }
}
