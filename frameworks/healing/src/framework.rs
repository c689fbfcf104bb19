//! [`HealingFramework`]: the SDK side. Its runner holds the `healing`
//! lease (in-process on the leading master, or standalone); the
//! [`crate::Operator`] beside it acts while that runner holds it. The
//! reconcile itself only keeps the framework's repair jobs in step with
//! its tickets: a repair job no open ticket waits on is deleted.

use ocean_client::api::WatchRequest;
use ocean_framework::{Action, Framework, Plan, View};

use crate::repair::is_repair_job;
use crate::ticket::{Ticket, TICKETS};
use crate::NAME;

/// The healing framework.
#[derive(Debug, Default, Clone, Copy)]
pub struct HealingFramework;

impl Framework for HealingFramework {
    fn name(&self) -> &str {
        NAME
    }

    fn watch(&self) -> WatchRequest {
        WatchRequest {
            // Keys are under no tree node, so jobs are followed everywhere.
            kinds: vec!["job".into(), "kv".into()],
            ..Default::default()
        }
    }

    fn reconcile(&self, view: &View, _now_ms: u64) -> Plan {
        let wanted: Vec<String> = view
            .keys_under(TICKETS)
            .filter_map(|e| serde_json::from_slice::<Ticket>(&e.value).ok())
            .filter(Ticket::is_open)
            .filter_map(|t| t.current_repair().and_then(|r| r.job_id.clone()))
            .collect();
        let actions = view
            .jobs
            .keys()
            .filter(|id| is_repair_job(id) && !wanted.contains(id))
            .map(|id| Action::DeleteJob {
                id: id.clone(),
                expected_spec_version: None,
            })
            .collect();
        Plan {
            actions,
            wake_at_ms: None,
        }
    }
}
