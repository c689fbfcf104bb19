//! The [`Framework`] trait: a pure function from what the masters hold to
//! what should change.

use ocean_client::api::WatchRequest;

use crate::view::View;

/// One change a framework asks for. Every write names the version it
/// expects (compare-and-set), so a decision taken on a stale view is
/// refused instead of applied twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Store a job spec (JSON). `expected_spec_version: Some(0)` creates
    /// it only if no such job exists: a tick's run is launched once even
    /// if two leaders of the framework race.
    PutJob {
        spec_json: Vec<u8>,
        expected_spec_version: Option<u64>,
    },
    /// Delete a job.
    DeleteJob {
        id: String,
        expected_spec_version: Option<u64>,
    },
    /// Write a key of the framework's namespace (`Some(0)`: create only).
    PutKey {
        key: String,
        value: Vec<u8>,
        expected_revision: Option<u64>,
    },
    /// Delete a key of the framework's namespace.
    DeleteKey {
        key: String,
        expected_revision: Option<u64>,
    },
}

/// What one reconcile decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// In order: a later action may rely on an earlier one (launch a run,
    /// then record it).
    pub actions: Vec<Action>,
    /// When to reconcile again even if nothing changes (ms since the
    /// epoch); the runner also reconciles on every change it sees.
    pub wake_at_ms: Option<u64>,
}

/// A framework: a name, what it follows, and a pure reconcile.
pub trait Framework: Send + Sync + std::fmt::Debug + 'static {
    /// Its name: the namespace of its keys and of its lease (an RFC 1123
    /// label).
    fn name(&self) -> &str;

    /// What the runner follows for it. The runner always adds the
    /// framework's own namespace; the default follows jobs and tasks
    /// everywhere.
    fn watch(&self) -> WatchRequest {
        WatchRequest {
            kinds: vec!["job".into(), "task".into(), "kv".into()],
            ..Default::default()
        }
    }

    /// Decides what should change. Must be pure: no I/O, no clock (use
    /// `now_ms`), so it is tested with a view and a number.
    fn reconcile(&self, view: &View, now_ms: u64) -> Plan;
}
