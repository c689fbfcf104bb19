//! Spread: worst fit, for jobs that want headroom and blast-radius spread.

use super::{AgentSlot, Candidates, Policy, ScanOrder};

/// Puts each task on the feasible agent with the MOST free capacity, so
/// load levels out across the cluster. Combine with `hostname:UNIQUE` or
/// `GROUP_BY` when instances must not share a host or a data center.
#[derive(Debug, Clone, Copy, Default)]
pub struct Spread;

impl Policy for Spread {
    fn name(&self) -> &str {
        "spread"
    }

    fn scan_order(&self) -> Option<ScanOrder> {
        Some(ScanOrder::LeastAllocatedFirst)
    }

    fn choose(&self, candidates: &Candidates<'_>) -> Option<AgentSlot> {
        candidates.least_allocated_first().next().map(|a| a.slot())
    }
}
