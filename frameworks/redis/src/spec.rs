//! [`CacheSpec`]: what a developer asks for (`POST /v1/caches`,
//! `ocean cache create`), and its `validate()`, every error naming its
//! field.

use serde::{Deserialize, Serialize};

/// Most shards a cache may have (16384 slots; more shards than this only
/// cost memory and gossip on a machine of this size).
pub const MAX_SHARDS: u32 = 64;
/// Most replicas per shard.
pub const MAX_REPLICAS: u32 = 5;
/// Memory per instance, MiB.
pub const MIN_MEMORY_MB: u64 = 16;
/// Memory per instance, MiB (64 GiB).
pub const MAX_MEMORY_MB: u64 = 65_536;
/// The longest cache name: job names are `<name>-<shard>` and DNS labels
/// are at most 63 characters.
pub const MAX_NAME: usize = 50;

/// How an instance keeps its data on disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Persistence {
    /// Memory only (the replicas are the copy).
    #[default]
    Off,
    /// RDB snapshots (`save 60 1000`).
    Rdb,
    /// Append-only file, fsync every second.
    Aof,
}

impl Persistence {
    /// The redis-server flags for it.
    pub fn flags(self) -> &'static str {
        match self {
            Persistence::Off => "--save '' --appendonly no",
            Persistence::Rdb => "--save '60 1000' --appendonly no",
            Persistence::Aof => "--save '' --appendonly yes --appendfsync everysec",
        }
    }
}

/// A cache: a Redis Cluster of `shards` primaries, each with `replicas`
/// replicas, every instance an Ocean task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSpec {
    /// The cache's id: a lowercase DNS label of at most 50 characters.
    pub name: String,
    /// The owning product line (the `pdl` of its jobs' service-tree ids).
    pub product_line: String,
    /// Number of shards (primaries), `1..=64`.
    pub shards: u32,
    /// Replicas per shard, `0..=5`.
    #[serde(default = "default_replicas")]
    pub replicas: u32,
    /// Memory per instance in MiB, `16..=65536`: redis' `maxmemory`; the
    /// task's memory limit adds room for buffers and fork (see
    /// [`CacheSpec::task_mem_mb`]).
    pub memory_mb: u64,
    /// `off`, `rdb` or `aof`.
    #[serde(default)]
    pub persistence: Persistence,
}

fn default_replicas() -> u32 {
    1
}

/// A spec that cannot be run: the field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidCache {
    /// The field, as named in the JSON.
    pub field: &'static str,
    /// What is wrong and what is allowed.
    pub reason: String,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> InvalidCache {
    InvalidCache {
        field,
        reason: reason.into(),
    }
}

/// Whether `s` is a lowercase RFC 1123 label (the service tree's values).
pub fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

impl CacheSpec {
    /// Checks every field; the first error names its field.
    pub fn validate(&self) -> Result<(), InvalidCache> {
        if !is_label(&self.name) || self.name.len() > MAX_NAME {
            return Err(invalid(
                "name",
                format!(
                    "must be 1 to {MAX_NAME} characters of a-z, 0-9 and '-', not starting or ending with '-'; got '{}'",
                    self.name
                ),
            ));
        }
        if !is_label(&self.product_line) {
            return Err(invalid(
                "product_line",
                format!(
                    "must be a lowercase DNS label (a-z, 0-9, '-', at most 63); got '{}'",
                    self.product_line
                ),
            ));
        }
        if !(1..=MAX_SHARDS).contains(&self.shards) {
            return Err(invalid(
                "shards",
                format!("must be 1..={MAX_SHARDS}; got {}", self.shards),
            ));
        }
        if self.replicas > MAX_REPLICAS {
            return Err(invalid(
                "replicas",
                format!("must be 0..={MAX_REPLICAS}; got {}", self.replicas),
            ));
        }
        if !(MIN_MEMORY_MB..=MAX_MEMORY_MB).contains(&self.memory_mb) {
            return Err(invalid(
                "memory_mb",
                format!(
                    "must be {MIN_MEMORY_MB}..={MAX_MEMORY_MB} (MiB per instance); got {}",
                    self.memory_mb
                ),
            ));
        }
        Ok(())
    }

    /// The task's memory limit: maxmemory plus a quarter (replication and
    /// client buffers, a fork's copy-on-write) plus 32 MiB of base.
    pub fn task_mem_mb(&self) -> u64 {
        self.memory_mb + self.memory_mb / 4 + 32
    }

    /// Instances in all: shards x (1 + replicas).
    pub fn instances(&self) -> u64 {
        u64::from(self.shards) * u64::from(1 + self.replicas)
    }
}

/// Parses and validates a spec from JSON, naming the field of a bad value
/// or of an unknown field.
pub fn parse(bytes: &[u8]) -> Result<CacheSpec, InvalidCache> {
    let spec: CacheSpec =
        serde_json::from_slice(bytes).map_err(|e| invalid("body", e.to_string()))?;
    spec.validate()?;
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> CacheSpec {
        CacheSpec {
            name: "sessions".into(),
            product_line: "shop".into(),
            shards: 3,
            replicas: 1,
            memory_mb: 64,
            persistence: Persistence::Off,
        }
    }

    #[test]
    fn a_good_spec_passes_and_sizes_its_tasks() {
        let s = ok();
        assert_eq!(s.validate(), Ok(()));
        assert_eq!(s.task_mem_mb(), 64 + 16 + 32);
        assert_eq!(s.instances(), 6);
    }

    #[test]
    fn every_bad_field_is_named() {
        let cases: Vec<(CacheSpec, &str)> = vec![
            (
                CacheSpec {
                    name: "Bad_Name".into(),
                    ..ok()
                },
                "name",
            ),
            (
                CacheSpec {
                    name: "a".repeat(51),
                    ..ok()
                },
                "name",
            ),
            (
                CacheSpec {
                    product_line: "".into(),
                    ..ok()
                },
                "product_line",
            ),
            (CacheSpec { shards: 0, ..ok() }, "shards"),
            (CacheSpec { shards: 65, ..ok() }, "shards"),
            (
                CacheSpec {
                    replicas: 6,
                    ..ok()
                },
                "replicas",
            ),
            (
                CacheSpec {
                    memory_mb: 8,
                    ..ok()
                },
                "memory_mb",
            ),
        ];
        for (spec, field) in cases {
            assert_eq!(spec.validate().unwrap_err().field, field, "{spec:?}");
        }
    }

    #[test]
    fn json_defaults_and_unknown_fields() {
        let s = parse(br#"{"name":"c","product_line":"p","shards":2,"memory_mb":32}"#).unwrap();
        assert_eq!((s.replicas, s.persistence), (1, Persistence::Off));
        let e = parse(br#"{"name":"c","product_line":"p","shards":2,"memory_mb":32,"shard":1}"#)
            .unwrap_err();
        assert_eq!(e.field, "body");
        assert!(e.reason.contains("unknown field `shard`"), "{e}");
        let e = parse(
            br#"{"name":"c","product_line":"p","shards":2,"memory_mb":32,"persistence":"disk"}"#,
        )
        .unwrap_err();
        assert!(e.reason.contains("unknown variant `disk`"), "{e}");
    }
}
