//! Bin-pack: best fit, the default policy.

use super::{AgentSlot, Candidates, Policy, ScanOrder};

/// Puts each task on the feasible agent with the LEAST free capacity (the
/// sum of free cpus, mem and disk, each relative to the largest agent).
/// Filling the fullest agents first leaves whole agents empty for large
/// tasks and keeps fragmentation low. The scan starts at the task's lower
/// bound in the index and stops at the first feasible agent.
#[derive(Debug, Clone, Copy, Default)]
pub struct BinPack;

impl Policy for BinPack {
    fn name(&self) -> &str {
        "binpack"
    }

    fn scan_order(&self) -> Option<ScanOrder> {
        Some(ScanOrder::MostAllocatedFirst)
    }

    fn choose(&self, candidates: &Candidates<'_>) -> Option<AgentSlot> {
        candidates.most_allocated_first().next().map(|a| a.slot())
    }
}
