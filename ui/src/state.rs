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
    /// Where the redis framework's backups live on this master (the same
    /// directory its REST API writes to and lists).
    pub cache_backups: CacheBackups,
}

/// The directory of the redis framework's backups.
#[derive(Debug, Clone)]
pub struct CacheBackups(pub Arc<std::path::PathBuf>);

impl FromRef<UiState> for CacheBackups {
    fn from_ref(s: &UiState) -> CacheBackups {
        s.cache_backups.clone()
    }
}

impl FromRef<UiState> for Master {
    fn from_ref(s: &UiState) -> Master {
        s.master.clone()
    }
}
