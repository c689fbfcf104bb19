//! Database templates (`mysql-general`, `mysql-large`): the sizes a
//! database's instances get. Stored through the masters at
//! `templates/<name>` of the `mysql` namespace (the built-in ones are
//! written there when absent, so an operator may edit or add templates),
//! listed at `GET /v1/database-templates`.

use serde::{Deserialize, Serialize};

/// One template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// Its name, e.g. `mysql-general`.
    pub name: String,
    /// The task's memory limit, MiB.
    pub memory_mb: u64,
    /// `innodb_buffer_pool_size`, MiB (well under `memory_mb`).
    pub buffer_pool_mb: u64,
    /// `max_connections`.
    pub max_connections: u32,
    /// The task's disk reservation, MiB.
    pub disk_mb: u64,
}

impl Template {
    /// Checks the sizes against each other.
    pub fn validate(&self) -> Result<(), crate::spec::InvalidDatabase> {
        use crate::spec::invalid;
        if !crate::spec::is_label(&self.name) {
            return Err(invalid("name", "must be a lowercase DNS label"));
        }
        if self.buffer_pool_mb < 8 || self.buffer_pool_mb * 2 > self.memory_mb {
            return Err(invalid(
                "buffer_pool_mb",
                format!(
                    "must be at least 8 and at most half of memory_mb ({}); got {}",
                    self.memory_mb, self.buffer_pool_mb
                ),
            ));
        }
        if !(10..=100_000).contains(&self.max_connections) {
            return Err(invalid("max_connections", "must be 10..=100000"));
        }
        if self.disk_mb < 256 {
            return Err(invalid("disk_mb", "must be at least 256"));
        }
        Ok(())
    }
}

/// The templates Ocean ships.
pub fn builtin() -> Vec<Template> {
    vec![
        Template {
            name: "mysql-general".into(),
            memory_mb: 512,
            buffer_pool_mb: 128,
            max_connections: 200,
            disk_mb: 10_240,
        },
        Template {
            name: "mysql-large".into(),
            memory_mb: 4_096,
            buffer_pool_mb: 2_048,
            max_connections: 2_000,
            disk_mb: 102_400,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_templates_are_valid_and_bad_sizes_are_named() {
        for t in builtin() {
            assert_eq!(t.validate(), Ok(()), "{t:?}");
        }
        let mut t = builtin()[0].clone();
        t.buffer_pool_mb = t.memory_mb;
        assert_eq!(t.validate().unwrap_err().field, "buffer_pool_mb");
    }
}
