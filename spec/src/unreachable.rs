//! `unreachable_strategy`: what happens to a job's tasks when their agent
//! stops answering. By default they are replaced as soon as the leader
//! declares the agent unreachable; a stateful job may instead wait for its
//! agent to come back for a while before its tasks are replaced.

use serde::{Deserialize, Serialize};

use crate::validate::Collector;

/// Longest wait for an unreachable agent, seconds (a week).
pub const MAX_REPLACE_AFTER_SECONDS: u32 = 7 * 86_400;

/// How long tasks on an unreachable agent wait before they are replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnreachableStrategy {
    /// Seconds after the agent was declared unreachable before its tasks
    /// are declared LOST and replaced; `0` replaces them at once. While
    /// they wait they count as the job's instances, and if the agent comes
    /// back they simply carry on.
    #[serde(default = "default_replace_after_seconds")]
    pub replace_after_seconds: u32,
}

/// Default for [`UnreachableStrategy::replace_after_seconds`].
pub fn default_replace_after_seconds() -> u32 {
    0
}

impl Default for UnreachableStrategy {
    fn default() -> Self {
        UnreachableStrategy {
            replace_after_seconds: default_replace_after_seconds(),
        }
    }
}

pub(crate) fn check_unreachable(u: &UnreachableStrategy, errors: &mut Collector) {
    if u.replace_after_seconds > MAX_REPLACE_AFTER_SECONDS {
        errors.push(
            "unreachable_strategy.replace_after_seconds",
            format!(
                "must be 0..={MAX_REPLACE_AFTER_SECONDS} (a week); got {}",
                u.replace_after_seconds
            ),
        );
    }
}
