//! `/ui/tickets`: the healing framework's tickets per tree node and per
//! host, the storm alert, and with `?host=` one host's history (every
//! ticket with its transitions and actions). Read from the `healing`
//! namespace of the state this master holds.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Html;
use ocean_healing::operator::{Alert, ALERT_KEY};
use ocean_healing::ticket::TICKETS;
use ocean_healing::{Ticket, NAME};
use ocean_master::Master;
use serde::Deserialize;

use super::{Frame, Seen};
use crate::error::{render, Result};
use crate::state::UiState;

/// Tickets of one tree node (or one host).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub name: String,
    pub node: String,
    pub open: usize,
    pub closed: usize,
    /// The open tickets' states.
    pub states: String,
}

#[derive(Template)]
#[template(path = "tickets.html")]
struct TicketsPage {
    frame: Frame,
    alert: Option<Alert>,
    nodes: Vec<Tally>,
    hosts: Vec<Tally>,
    tickets: Vec<Ticket>,
    /// The host whose history is shown (`?host=`), if any.
    host: Option<String>,
}

impl TicketsPage {
    fn open(&self, t: &Ticket) -> bool {
        t.is_open()
    }
}

/// `?host=` and `?v=`.
#[derive(Debug, Default, Deserialize)]
pub struct TicketsQuery {
    pub host: Option<String>,
    pub v: Option<u64>,
}

/// Counts tickets per node and per host (open ones' states listed).
pub fn tallies(tickets: &[Ticket]) -> (Vec<Tally>, Vec<Tally>) {
    let mut nodes: BTreeMap<String, Tally> = BTreeMap::new();
    let mut hosts: BTreeMap<String, Tally> = BTreeMap::new();
    for t in tickets {
        for (map, name) in [
            (&mut nodes, t.node.clone()),
            (&mut hosts, t.hostname.clone()),
        ] {
            let e = map.entry(name.clone()).or_insert_with(|| Tally {
                name,
                node: t.node.clone(),
                ..Default::default()
            });
            if t.is_open() {
                e.open += 1;
                if !e.states.is_empty() {
                    e.states.push_str(", ");
                }
                e.states.push_str(t.state.as_str());
            } else {
                e.closed += 1;
            }
        }
    }
    (nodes.into_values().collect(), hosts.into_values().collect())
}

/// The page.
pub async fn page(State(s): State<UiState>, Query(q): Query<TicketsQuery>) -> Result<Html<String>> {
    let m: &Master = &s.master;
    let seen = Seen { v: q.v };
    let svc = m.service();
    let list = svc.kv_list(NAME, TICKETS, seen.options()).await?;
    let mut tickets: Vec<Ticket> = list
        .keys
        .iter()
        .filter_map(|k| k.value.clone())
        .filter_map(|v| serde_json::from_value::<Ticket>(v).ok())
        .collect();
    tickets.sort_by(|a, b| b.opened_ms.cmp(&a.opened_ms).then(a.id.cmp(&b.id)));
    let alert = svc
        .kv_list(NAME, ALERT_KEY, seen.options())
        .await?
        .keys
        .into_iter()
        .find(|k| k.key == ALERT_KEY)
        .and_then(|k| k.value)
        .and_then(|v| serde_json::from_value::<Alert>(v).ok())
        .filter(|a| a.active);
    let (nodes, hosts) = tallies(&tickets);
    if let Some(h) = &q.host {
        tickets.retain(|t| t.hostname == *h || t.host == *h);
    }
    let page = TicketsPage {
        frame: Frame::new(m, "tickets", list.version, &seen),
        alert,
        nodes,
        hosts,
        tickets,
        host: q.host,
    };
    render("tickets", &page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocean_healing::HostState;

    fn ticket(host: &str, node: &str, state: HostState, open: bool) -> Ticket {
        Ticket {
            id: format!("1-{host}"),
            host: host.into(),
            hostname: host.into(),
            node: node.into(),
            opened_ms: 1,
            state,
            failing_since_ms: 0,
            failing: vec![],
            transitions: vec![],
            actions: vec![],
            repairs_failed: 0,
            repair_attempt: 0,
            dry_run: false,
            closed_ms: (!open).then_some(2),
            closed_reason: None,
        }
    }

    #[test]
    fn tallies_count_per_node_and_host() {
        let ts = [
            ticket("a", "idc.x", HostState::Draining, true),
            ticket("a", "idc.x", HostState::Online, false),
            ticket("b", "idc.x", HostState::Offline, true),
            ticket("c", "idc.y", HostState::Online, false),
        ];
        let (nodes, hosts) = tallies(&ts);
        assert_eq!(nodes.len(), 2);
        assert_eq!(
            (
                nodes[0].name.as_str(),
                nodes[0].open,
                nodes[0].closed,
                nodes[0].states.as_str()
            ),
            ("idc.x", 2, 1, "draining, offline")
        );
        assert_eq!(
            (hosts[2].name.as_str(), hosts[2].open, hosts[2].closed),
            ("c", 0, 1)
        );
    }
}
