//! The Ocean job of each shard: its service-tree id, and its spec running
//! a real `redis-server` with every setting on the command line.
//!
//! One job per shard, `1 + replicas` instances under `hostname UNIQUE`:
//! a shard's primary and its replicas are tasks of one job, so no replica
//! ever shares its primary's host, whichever task Redis has made primary
//! (roles move on failover; the job does not need to know). Shards are
//! separate jobs, so the scheduler's spread placement spreads them too.

use serde_json::{json, Value};

use crate::framework::RestoreSource;
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
    format!("exec {}", server_line(spec))
}

/// What a node of a restored cache runs first: the shard's one node that
/// wins the claim (`mkdir` is atomic) checks the backup's RDB file
/// against its SHA-256 and starts from it (AOF off for that start: with
/// it on, redis-server would ignore the RDB; the restore turns it on once
/// verified). Every other node, and any later replacement (the claim is
/// taken, or its `nodes.conf` exists), starts empty and syncs as a
/// replica.
const RESTORE_PREFIX: &str = r#"R=""
if [ -n "${REDIS_RESTORE_RDB:-}" ] && [ ! -e nodes.conf ] && mkdir "$REDIS_RESTORE_CLAIM" 2>/dev/null; then
  if ! echo "$REDIS_RESTORE_SHA256  $REDIS_RESTORE_RDB" | sha256sum -c --quiet - >&2; then
    echo "restore: $REDIS_RESTORE_RDB does not match its manifest's sha256" >&2
    rmdir "$REDIS_RESTORE_CLAIM"; exit 1
  fi
  cp "$REDIS_RESTORE_RDB" dump.rdb.part && mv dump.rdb.part dump.rdb
  R="--dbfilename dump.rdb --appendonly no"
fi
"#;

/// The command of a restored cache's node (see [`RESTORE_PREFIX`]).
pub fn restoring_command(spec: &CacheSpec) -> String {
    format!("{RESTORE_PREFIX}exec {} $R", server_line(spec))
}

fn server_line(spec: &CacheSpec) -> String {
    format!(
        "redis-server --port \"$PORT0\" --protected-mode no \
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
    shard_job_restoring(spec, shard, None)
}

/// The job spec of shard `shard` of a cache restored from `restore` (a
/// plain one without): the shard's file, its SHA-256 and its claim in the
/// environment.
pub fn shard_job_restoring(spec: &CacheSpec, shard: u32, restore: Option<&RestoreSource>) -> Value {
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
    if let Some(r) = restore {
        let file = r.shards.get(shard as usize);
        job["cmd"] = restoring_command(spec).into();
        job["env"] = json!({
            "REDIS_RESTORE_RDB": file.map_or(String::new(), |f| format!("{}/{}", r.dir, f.file)),
            "REDIS_RESTORE_SHA256": file.map_or("", |f| f.sha256.as_str()),
            "REDIS_RESTORE_CLAIM": format!("{}/shard-{shard}", r.claims),
        });
    }
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

    #[test]
    fn one_node_per_shard_starts_from_the_checked_file() {
        use sha2::{Digest, Sha256};
        let dir = std::env::temp_dir().join(format!("ocean-redis-claim-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for d in ["claims", "n1", "n2", "n3"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let rdb = dir.join("shard-0.rdb");
        std::fs::write(&rdb, b"REDIS0010 a snapshot").unwrap();
        let sha = format!("{:x}", Sha256::digest(b"REDIS0010 a snapshot"));
        let run = |node: &str, sha: &str, claim: &str| {
            std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("{RESTORE_PREFIX}echo \"R=$R\""))
                .current_dir(dir.join(node))
                .env("REDIS_RESTORE_RDB", &rdb)
                .env("REDIS_RESTORE_SHA256", sha)
                .env("REDIS_RESTORE_CLAIM", dir.join("claims").join(claim))
                .output()
                .unwrap()
        };
        // The first node claims and loads the file.
        let out = run("n1", &sha, "shard-0");
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("R=--dbfilename dump.rdb --appendonly no"),
            "{text}"
        );
        assert_eq!(
            std::fs::read(dir.join("n1/dump.rdb")).unwrap(),
            b"REDIS0010 a snapshot"
        );
        // A second node (or a replacement) starts empty.
        let out = run("n2", &sha, "shard-0");
        assert!(out.status.success(), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("R=\n"),
            "{out:?}"
        );
        assert!(!dir.join("n2/dump.rdb").exists());
        // A file that is not what the manifest says is refused, and the
        // claim given back.
        let out = run("n3", &"0".repeat(64), "shard-1");
        assert!(!out.status.success(), "{out:?}");
        assert!(!dir.join("n3/dump.rdb").exists());
        assert!(!dir.join("claims/shard-1").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_restoring_job_names_its_shards_file_and_claim() {
        let r = RestoreSource {
            cache: "src".into(),
            backup: "b-1".into(),
            dir: "/backups/src/b-1".into(),
            claims: "/backups/src/b-1/claims/dst-5".into(),
            shards: vec![crate::framework::RestoreShard {
                file: "shard-0.rdb".into(),
                sha256: "ab".into(),
                slots: vec![(0, 16383)],
                keys: 3,
            }],
        };
        let j = shard_job_restoring(&spec(), 0, Some(&r));
        assert_eq!(
            j["env"]["REDIS_RESTORE_RDB"],
            "/backups/src/b-1/shard-0.rdb"
        );
        assert_eq!(j["env"]["REDIS_RESTORE_SHA256"], "ab");
        assert_eq!(
            j["env"]["REDIS_RESTORE_CLAIM"],
            "/backups/src/b-1/claims/dst-5/shard-0"
        );
        assert!(j["cmd"].as_str().unwrap().ends_with(" $R"));
        // A shard the backup did not have (a later scale-out) loads nothing.
        let j = shard_job_restoring(&spec(), 1, Some(&r));
        assert_eq!(j["env"]["REDIS_RESTORE_RDB"], "");
        // A plain cache's job is unchanged.
        assert_eq!(shard_job_restoring(&spec(), 0, None), shard_job(&spec(), 0));
    }
}
