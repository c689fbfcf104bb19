//! What the dashboard's handlers share: the master (through which every
//! read and write goes), the cluster's scheduler settings (quotas and
//! fair-share weights, which the master's replicated state does not hold),
//! and the product lines' usage history the sampler keeps.

use std::sync::Arc;

use axum::extract::FromRef;
use ocean_master::{Master, SchedulerSettings};

use crate::history::History;

/// The state of the dashboard's router.
#[derive(Debug, Clone)]
pub struct UiState {
    pub master: Master,
    pub scheduler: Arc<SchedulerSettings>,
    pub history: Arc<History>,
}

impl FromRef<UiState> for Master {
    fn from_ref(s: &UiState) -> Master {
        s.master.clone()
    }
}
