//! The REST side of backups (see [`crate::backup`]):
//!
//! ```text
//!  POST .../backup ─► per shard, on its synced replica furthest ahead:
//!      RDB snapshot over SYNC (rdb) ─► shard-<i>.rdb ─► loaded in a throwaway
//!      redis-server (rdb_check): keys + digest ─► manifest.json
//!  POST .../restore {"from", "backup"} ─► files checked against the manifest's
//!      SHA-256 ─► a NEW cache (the source's shape) whose shard nodes start from
//!      the files (jobs: one node per shard loads its RDB) ─► the operator gives
//!      each shard its backed-up slots ─► each shard's primary read back:
//!      keys and digest must equal the manifest's
//! ```

use std::path::Path;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use ocean_client::api::KvPutRequest;
use ocean_client::Error;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::{observed_status, record, status_of, Api, ApiError, ApiResult};
use crate::backup::{
    cache_digest, connect, digest, dir_of, dump_all, read_manifest, write_atomically, BackupError,
    Manifest, ShardManifest,
};
use crate::framework::{CacheRecord, RestoreShard, RestoreSource, CACHES, NAME};
use crate::manual::{failover_target, primary_of};
use crate::spec::{CacheSpec, Persistence};
use crate::status::CacheStatus;
use crate::topology::{parse_nodes, SLOTS};

/// How long one shard's snapshot may take to arrive.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(300);
/// How long loading one snapshot into the throwaway server may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a restore waits for the new cache to serve every slot.
pub const RESTORE_WAIT: Duration = Duration::from_secs(120);

/// `POST /v1/caches/{id}/restore`: `{id}` is the new cache.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restore {
    /// The cache the backup was taken of.
    pub from: String,
    /// The backup's id.
    pub backup: String,
}

pub(crate) fn backup_error(e: BackupError) -> ApiError {
    let status = match e {
        BackupError::Node { .. } => StatusCode::BAD_GATEWAY,
        BackupError::File { .. } | BackupError::Check { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, "backup_failed", "backup", e.to_string())
}

fn now_ms() -> u64 {
    ocean_framework::runner::now_ms()
}

/// Backs cache `id` up: each shard's RDB snapshot from its synced replica
/// furthest ahead (its primary when it has none), checked by loading it,
/// then the manifest.
pub async fn backup(api: &Api, id: &str) -> ApiResult<Value> {
    let (rec, _) = record(&api.client, id).await?;
    if rec.resharding.is_some() {
        // A slot moving between shards could be in two snapshots or none.
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "id",
            format!("cache {id} is resharding: back it up once its slots have settled"),
        ));
    }
    let st = observed_status(&api.client, id).await?;
    let created_ms = now_ms();
    let bid = format!("b-{created_ms}");
    let dir = dir_of(&api.backups, id, &bid);
    std::fs::create_dir_all(&dir).map_err(|e| {
        backup_error(BackupError::File {
            path: dir.display().to_string(),
            reason: e.to_string(),
        })
    })?;
    let started = Instant::now();
    let mut shards = Vec::new();
    for shard in 0..rec.spec.shards {
        let primary = primary_of(&st, shard).ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "shard",
                format!("shard {shard} has no reachable primary: not backed up"),
            )
        })?;
        // The synced replica furthest ahead, as a failover would pick;
        // the primary itself when the shard has none.
        let source = failover_target(&st, rec.spec.shards, shard, None)
            .map_or(primary, |(replica, _)| replica);
        let slots = slots_of(&source.addr).await.map_err(backup_error)?;
        let file = format!("shard-{shard}.rdb");
        let path = dir.join(&file);
        let fetched = crate::rdb::fetch(&source.addr, &path, FETCH_TIMEOUT)
            .await
            .map_err(backup_error)?;
        let loaded = crate::rdb_check::check(&path, CHECK_TIMEOUT)
            .await
            .map_err(backup_error)?;
        tracing::info!(cache = %id, shard, task = %source.task, bytes = fetched.bytes, keys = loaded.keys, "redis shard snapshot");
        shards.push(ShardManifest {
            shard,
            task: source.task.clone(),
            role: source.role.clone(),
            keys: loaded.keys,
            bytes: fetched.bytes,
            digest: loaded.digest,
            file,
            sha256: fetched.sha256,
            slots,
        });
    }
    let manifest = Manifest {
        cache: id.to_string(),
        id: bid,
        created_ms,
        format: "rdb".into(),
        spec: rec.spec.clone(),
        keys: shards.iter().map(|s| s.keys).sum(),
        digest: cache_digest(shards.iter().map(|s| s.digest.as_str())),
        shards,
    };
    let m = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    write_atomically(&dir.join("manifest.json"), &m).map_err(backup_error)?;
    tracing::info!(cache = %id, backup = %manifest.id, keys = manifest.keys, took_ms = started.elapsed().as_millis() as u64, "redis backup");
    let mut out = json!(manifest);
    // Where it is: on this master's disk.
    out["dir"] = dir.display().to_string().into();
    out["took_ms"] = (started.elapsed().as_millis() as u64).into();
    Ok(out)
}

/// The slot ranges a node's shard serves: its own as a primary, its
/// primary's as a replica.
async fn slots_of(addr: &str) -> crate::backup::Result<Vec<(u16, u16)>> {
    let mut con = connect(addr, Duration::from_secs(5)).await?;
    let text: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut con)
        .await
        .map_err(|e| BackupError::Node {
            addr: addr.to_string(),
            reason: e.to_string(),
        })?;
    let lines = parse_nodes(&text);
    let me = lines.iter().find(|l| l.myself);
    let owner = match me.and_then(|m| m.primary_id.as_deref()) {
        Some(p) => lines.iter().find(|l| l.id == p),
        None => me,
    };
    Ok(owner.map(|l| l.slots.clone()).unwrap_or_default())
}

/// Each shard's file must still be what the manifest says it is.
fn check_files(dir: &Path, m: &Manifest) -> ApiResult<()> {
    if m.format != "rdb" || m.shards.len() != m.spec.shards as usize {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "backup",
            format!(
                "backup '{}' is not one RDB snapshot per shard (format '{}', {} of {} shards)",
                m.id,
                m.format,
                m.shards.len(),
                m.spec.shards
            ),
        ));
    }
    for s in &m.shards {
        let path = dir.join(&s.file);
        let sha = crate::rdb::sha256_of(&path).map_err(backup_error)?;
        if sha != s.sha256 {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "backup_corrupt",
                "backup",
                format!(
                    "backup '{}' shard {}: {} has sha256 {sha}, its manifest says {}: \
                     the file changed since the backup, not restored",
                    m.id,
                    s.shard,
                    path.display(),
                    s.sha256
                ),
            ));
        }
    }
    Ok(())
}

/// Restores backup `r.backup` of cache `r.from` into a new cache `id` of
/// the source's shape: one node per shard starts from its shard's RDB
/// file; once every slot is served, each shard's primary must hold the
/// manifest's key count and digest.
pub async fn restore(api: &Api, id: &str, r: Restore) -> ApiResult<Value> {
    match record(&api.client, id).await {
        Ok(_) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "id",
                format!(
                    "cache '{id}' exists: a restore creates its cache from the backup, \
                     name one that does not exist"
                ),
            ))
        }
        Err(e) if e.status() == StatusCode::NOT_FOUND => {}
        Err(e) => return Err(e),
    }
    let dir = dir_of(&api.backups, &r.from, &r.backup);
    let manifest = read_manifest(&dir).map_err(|e| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "backup",
            format!("no backup '{}' of cache '{}' here: {e}", r.backup, r.from),
        )
    })?;
    check_files(&dir, &manifest)?;
    let spec = CacheSpec {
        name: id.to_string(),
        ..manifest.spec.clone()
    };
    spec.validate()?;
    let created_ms = now_ms();
    let claims = dir.join("claims").join(format!("{id}-{created_ms}"));
    std::fs::create_dir_all(&claims).map_err(|e| {
        backup_error(BackupError::File {
            path: claims.display().to_string(),
            reason: e.to_string(),
        })
    })?;
    let rec = CacheRecord {
        spec,
        created_ms,
        resharding: None,
        restore: Some(RestoreSource {
            cache: r.from.clone(),
            backup: r.backup.clone(),
            dir: dir.display().to_string(),
            claims: claims.display().to_string(),
            shards: manifest
                .shards
                .iter()
                .map(|s| RestoreShard {
                    file: s.file.clone(),
                    sha256: s.sha256.clone(),
                    slots: s.slots.clone(),
                    keys: s.keys,
                })
                .collect(),
        }),
    };
    let put = api
        .client
        .kv_put(KvPutRequest {
            namespace: NAME.into(),
            key: format!("{CACHES}{id}"),
            value: serde_json::to_vec(&rec).unwrap_or_default(),
            expected_revision: Some(0),
        })
        .await;
    match put {
        Ok(_) => {}
        Err(Error::VersionConflict { .. }) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "id",
                format!("a cache named '{id}' already exists"),
            ))
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(cache = %id, from = %r.from, backup = %r.backup, "redis restore started");
    let started = Instant::now();
    let deadline = started + RESTORE_WAIT;
    // The status is the operator's latest observation: a node it named a
    // shard's primary may have handed the slots on since, and then answers
    // the read-back with MOVED (a node error, 502). Observe again and read
    // again until the deadline; a digest that differs is final.
    let (st, shards) = loop {
        let st = wait_formed(api, id, &manifest, deadline).await?;
        for s in 0..rec.spec.shards {
            if let Some(p) = primary_of(&st, s) {
                wait_state_ok(id, &p.addr, deadline).await?;
            }
        }
        match verify(id, &st, &manifest).await {
            Err(e) if e.status() == StatusCode::BAD_GATEWAY && Instant::now() < deadline => {
                tracing::debug!(cache = %id, error = ?e, "restore read-back failed; observing again");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            done => break (st, done?),
        }
    };
    if rec.spec.persistence == Persistence::Aof {
        // The loading nodes started with AOF off (redis-server ignores the
        // RDB file when it is on); their data is in now.
        for s in 0..rec.spec.shards {
            if let Some(p) = primary_of(&st, s) {
                appendonly_on(&p.addr).await.map_err(backup_error)?;
            }
        }
    }
    let got = cache_digest(shards.iter().map(|s| s["digest"].as_str().unwrap_or("")));
    tracing::info!(cache = %id, from = %r.from, backup = %r.backup, keys = manifest.keys, "redis restore verified");
    Ok(json!({
        "cache": id,
        "restored": manifest.keys,
        "from": r.from,
        "backup": r.backup,
        "digest": got,
        "verified": true,
        "shards": shards,
        "took_ms": started.elapsed().as_millis() as u64,
    }))
}

/// Until the new cache serves every slot and every backed-up shard has a
/// primary (bounded by [`RESTORE_WAIT`]).
async fn wait_formed(
    api: &Api,
    id: &str,
    m: &Manifest,
    deadline: Instant,
) -> ApiResult<CacheStatus> {
    loop {
        let st = status_of(&api.client, id).await;
        let missing: Vec<u32> = match &st {
            Some(st) => (0..m.shards.len() as u32)
                .filter(|s| primary_of(st, *s).is_none())
                .collect(),
            None => (0..m.shards.len() as u32).collect(),
        };
        let served = st.as_ref().map_or(0, |s| s.slots_served);
        if let Some(st) = st {
            if served == SLOTS && missing.is_empty() {
                return Ok(st);
            }
        }
        if Instant::now() >= deadline {
            return Err(restore_timeout(format!(
                "restored cache '{id}' serves {served} of {SLOTS} slots after {RESTORE_WAIT:?} \
                 (shards without a primary: {missing:?})"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A restore that did not settle in time: 504, the cache left as it is.
fn restore_timeout(what: String) -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "restore_timeout",
        "id",
        format!("{what}; it is left for inspection"),
    )
}

/// Until node `addr` says `cluster_state:ok`: a primary that just started
/// keeps its cluster state `fail` (and answers CLUSTERDOWN) for two
/// seconds (Redis' writable delay), even once its slots are assigned.
async fn wait_state_ok(id: &str, addr: &str, deadline: Instant) -> ApiResult<()> {
    loop {
        let info = async {
            let mut con = connect(addr, Duration::from_secs(2)).await.ok()?;
            redis::cmd("CLUSTER")
                .arg("INFO")
                .query_async::<String>(&mut con)
                .await
                .ok()
        }
        .await;
        if info.is_some_and(|i| i.contains("cluster_state:ok")) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(restore_timeout(format!(
                "restored cache '{id}': {addr} did not report cluster_state:ok within \
                 {RESTORE_WAIT:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Each shard's primary read back and compared with the manifest; the
/// first shard that differs is the error.
async fn verify(id: &str, st: &CacheStatus, m: &Manifest) -> ApiResult<Vec<Value>> {
    let mut out = Vec::new();
    for s in &m.shards {
        let Some(p) = primary_of(st, s.shard) else {
            continue;
        };
        let mut con = connect(&p.addr, Duration::from_secs(10))
            .await
            .map_err(backup_error)?;
        let mut records = dump_all(&mut con, &p.addr, false)
            .await
            .map_err(backup_error)?;
        let d = digest(&mut records);
        let keys = records.len() as u64;
        if keys != s.keys || d != s.digest {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "verify_failed",
                "backup",
                format!(
                    "restored cache '{id}' shard {}: {} holds {keys} keys with digest {d}; \
                     the manifest says {} keys with {} (the cache is left for inspection)",
                    s.shard, p.task, s.keys, s.digest
                ),
            ));
        }
        out.push(json!({"shard": s.shard, "task": p.task, "keys": keys, "digest": d}));
    }
    Ok(out)
}

async fn appendonly_on(addr: &str) -> crate::backup::Result<()> {
    let mut con = connect(addr, Duration::from_secs(5)).await?;
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("appendonly")
        .arg("yes")
        .query_async::<()>(&mut con)
        .await
        .map_err(|e| BackupError::Node {
            addr: addr.to_string(),
            reason: e.to_string(),
        })
}
