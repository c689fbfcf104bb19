//! Cluster-wide planning settings.

/// Settings of a planning round that do not come from the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields, default))]
pub struct Config {
    /// Policy for jobs that name none (`binpack` unless changed).
    pub default_policy: String,
    /// Cluster-wide switch for preemption. Even when on, only jobs whose
    /// request says `preemption: true` preempt, and only strictly
    /// lower-priority tasks.
    pub preemption: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            default_policy: default_policy(),
            preemption: true,
        }
    }
}

/// The default policy's name.
pub fn default_policy() -> String {
    "binpack".to_string()
}
