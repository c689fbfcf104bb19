//! A ticket: one episode of a host's illness, from the first failing check
//! to its return (or to a person), with every transition and its cause and
//! every action with its verdict. Kept as the key `tickets/<id>` of the
//! `healing` namespace, so it outlives the framework's instances and shows
//! on the masters' event stream.

use serde::{Deserialize, Serialize};

/// Where a host stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostState {
    /// Its checks pass (or it has no open ticket).
    Online,
    /// A check fails; not yet for long enough to act.
    Suspect,
    /// Failing past the grace: no new tasks; waiting for the guards.
    Problem,
    /// Its tasks are being moved off (the master's drain).
    Draining,
    /// A repair action runs on it.
    Repairing,
    /// Repairs failed: out of service, waiting for a person.
    Offline,
}

impl HostState {
    /// The word used in tickets, the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            HostState::Online => "online",
            HostState::Suspect => "suspect",
            HostState::Problem => "problem",
            HostState::Draining => "draining",
            HostState::Repairing => "repairing",
            HostState::Offline => "offline",
        }
    }

    /// Out of service for the guards: its tasks leave or have left.
    pub fn out_of_service(self) -> bool {
        matches!(
            self,
            HostState::Draining | HostState::Repairing | HostState::Offline
        )
    }
}

/// One change of state and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub at_ms: u64,
    pub from: HostState,
    pub to: HostState,
    pub cause: String,
}

/// One action taken (or, in dry-run, that would have been).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// `drain`, `repair:<name>`, `hold`, `dry_run`, `set_status`, `close`.
    pub kind: String,
    pub at_ms: u64,
    /// What it did or would do.
    pub detail: String,
    /// The repair's job, for repairs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// `succeeded`, `failed: why`, `timed out after N s`; absent while it
    /// runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
}

/// A host's ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    pub id: String,
    /// The agent's id and host name.
    pub host: String,
    pub hostname: String,
    /// The host's service-tree node for the guards (e.g. `idc.c3`).
    pub node: String,
    pub opened_ms: u64,
    pub state: HostState,
    /// Since when its checks fail (leader clock of the report).
    pub failing_since_ms: u64,
    /// The failing checks as last seen.
    pub failing: Vec<String>,
    pub transitions: Vec<Transition>,
    pub actions: Vec<ActionRecord>,
    /// Repairs that did not bring the host back.
    pub repairs_failed: u32,
    /// The repair under way (1-based), 0 before the first.
    pub repair_attempt: u32,
    /// Opened in dry-run: records what would be done, does nothing.
    pub dry_run: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_ms: Option<u64>,
    /// Why it closed (`the host passes its checks again`, or a person's
    /// message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_reason: Option<String>,
}

/// The key prefix of tickets.
pub const TICKETS: &str = "tickets/";

impl Ticket {
    /// Whether it is still open.
    pub fn is_open(&self) -> bool {
        self.closed_ms.is_none()
    }

    /// Its key in the namespace.
    pub fn key(&self) -> String {
        format!("{TICKETS}{}", self.id)
    }

    /// Moves to `to`, recording why.
    pub fn go(&mut self, to: HostState, at_ms: u64, cause: impl Into<String>) {
        self.transitions.push(Transition {
            at_ms,
            from: self.state,
            to,
            cause: cause.into(),
        });
        self.state = to;
    }

    /// Records an action.
    pub fn act(&mut self, kind: impl Into<String>, at_ms: u64, detail: impl Into<String>) {
        self.actions.push(ActionRecord {
            kind: kind.into(),
            at_ms,
            detail: detail.into(),
            job_id: None,
            verdict: None,
            finished_ms: None,
        });
    }

    /// The latest action of `kind`, if any.
    pub fn last_action(&self, kind: &str) -> Option<&ActionRecord> {
        self.actions.iter().rev().find(|a| a.kind == kind)
    }

    /// The repair under way, if one is.
    pub fn current_repair(&self) -> Option<&ActionRecord> {
        self.actions
            .iter()
            .rev()
            .find(|a| a.kind.starts_with("repair:"))
            .filter(|a| a.verdict.is_none())
    }

    /// Closes it.
    pub fn close(&mut self, at_ms: u64, reason: impl Into<String>) {
        self.closed_ms = Some(at_ms);
        self.closed_reason = Some(reason.into());
    }
}

/// A ticket id for `host` opened at `at_ms`: sortable by time, unique per
/// host and millisecond, and a valid key.
pub fn ticket_id(host: &str, at_ms: u64) -> String {
    let safe: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{at_ms}-{safe}")
}
