//! The Ocean job of each shard: its service-tree id, and its spec running
//! a real `redis-server` with every setting on the command line.
//!
//! One job per shard, `1 + replicas` instances under `hostname UNIQUE`:
//! a shard's primary and its replicas are tasks of one job, so no replica
//! ever shares its primary's host, whichever task Redis has made primary
//! (roles move on failover; the job does not need to know). Shards are
//! separate jobs, so the scheduler's spread placement spreads them too.

use serde_json::{json, Value};

use crate::spec::CacheSpec;

/// Label naming the cache a job belongs to.
pub const LABEL_CACHE: &str = "redis.cache";
/// Label with the shard's index.
pub const LABEL_SHARD: &str = "redis.shard";
/// Label with a digest of the spec the framework built, so a changed
/// cache spec is noticed without comparing canonical forms.
pub const LABEL_DIGEST: &str = "redis.digest";

/// Redis' cluster node timeout (ms): how long until Redis itself declares
/// an unreachable node failed (host or network loss). Process exits are
/// faster: the operator promotes at once.
pub const NODE_TIMEOUT_MS: u64 = 1_000;

/// The job id of shard `shard` of `spec`.
pub fn shard_job_id(spec: &CacheSpec, shard: u32) -> String {
    format!(
        "cop.ocean_owt.redis_pdl.{}_servicegroup.cache_service.{}_job.shard-{}_cluster.default",
        spec.product_line, spec.name, shard
    )
}

/// The redis-server command line (a `/bin/sh -c` line: the ports come
/// from the task's environment).
pub fn command(spec: &CacheSpec) -> String {
    format!(
        "exec redis-server --port \"$PORT0\" --protected-mode no \
         --cluster-enabled yes --cluster-port \"$PORT1\" --cluster-config-file nodes.conf \
         --cluster-node-timeout {NODE_TIMEOUT_MS} --cluster-require-full-coverage no \
         --cluster-allow-replica-migration no \
         --cluster-announce-port \"$PORT0\" --cluster-announce-bus-port \"$PORT1\" \
         --repl-diskless-sync-delay 0 \
         --maxmemory {}mb --maxmemory-policy noeviction --dir . {}",
        spec.memory_mb,
        spec.persistence.flags()
    )
}

/// FNV-1a, 64 bits: a stable digest (std's hasher may change between
/// releases, and the digest is stored in job labels).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The job spec of shard `shard` (JSON), with its digest label.
pub fn shard_job(spec: &CacheSpec, shard: u32) -> Value {
    let mut job = json!({
        "id": shard_job_id(spec, shard),
        "cmd": command(spec),
        "instances": 1 + spec.replicas,
        "resources": {"cpus": 0.1, "mem": spec.task_mem_mb()},
        "ports": [{"name": "redis"}, {"name": "bus"}],
        "constraints": [["hostname", "UNIQUE"]],
        // Emptiest hosts first: shards spread over the hosts.
        "placement_policy": "spread",
        "health_checks": [{
            "protocol": "tcp", "port_name": "redis",
            "grace_period_seconds": 30, "interval_seconds": 5, "max_consecutive_failures": 3
        }],
        "kill_grace_period_seconds": 3,
        // A crashed instance comes back quickly (as a replica), and crashes
        // (or a failover drill) do not freeze the shard as flapping.
        "backoff": {"backoff_seconds": 0.5, "backoff_factor": 1.5, "max_launch_delay_seconds": 30.0},
        "flapping": {"max_failures": 1000, "window_seconds": 60},
        "labels": {
            LABEL_CACHE: spec.name,
            LABEL_SHARD: shard.to_string(),
        },
    });
    let digest = format!("{:016x}", fnv1a(job.to_string().as_bytes()));
    job["labels"][LABEL_DIGEST] = digest.into();
    job
}

/// The labels of a stored job (from its canonical spec JSON).
pub fn labels_of(spec_json: &[u8]) -> Option<serde_json::Map<String, Value>> {
    let v: Value = serde_json::from_slice(spec_json).ok()?;
    v.get("labels")?.as_object().cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Persistence;

    fn spec() -> CacheSpec {
        CacheSpec {
            name: "sessions".into(),
            product_line: "shop".into(),
            shards: 3,
            replicas: 1,
            memory_mb: 64,
            persistence: Persistence::Aof,
        }
    }

    #[test]
    fn a_shard_job_is_one_unique_host_job_with_two_ports() {
        let j = shard_job(&spec(), 2);
        assert_eq!(
            j["id"],
            "cop.ocean_owt.redis_pdl.shop_servicegroup.cache_service.sessions_job.shard-2_cluster.default"
        );
        assert_eq!(j["instances"], 2);
        assert_eq!(j["resources"]["mem"], 112);
        assert_eq!(j["constraints"], json!([["hostname", "UNIQUE"]]));
        assert_eq!(j["labels"][LABEL_SHARD], "2");
        let cmd = j["cmd"].as_str().unwrap();
        for flag in [
            "--cluster-port \"$PORT1\"",
            "--cluster-announce-bus-port \"$PORT1\"",
            "--maxmemory 64mb",
            "--appendonly yes",
            "--cluster-node-timeout 1000",
            "--cluster-require-full-coverage no",
        ] {
            assert!(cmd.contains(flag), "{flag} missing from {cmd}");
        }
    }

    #[test]
    fn the_digest_follows_the_spec() {
        let a = shard_job(&spec(), 0)["labels"][LABEL_DIGEST].clone();
        assert_eq!(a, shard_job(&spec(), 0)["labels"][LABEL_DIGEST]);
        let more = CacheSpec {
            replicas: 2,
            ..spec()
        };
        assert_ne!(a, shard_job(&more, 0)["labels"][LABEL_DIGEST]);
    }
}
