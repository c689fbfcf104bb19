//! Scaling a cache's shards online, end to end (a real master hosting the
//! redis framework, real agents, real `redis-server` tasks): 3 shards with
//! skewed data grow to 4 while a cluster-aware client keeps writing, the
//! slots move so the shards hold the same bytes within 10% (not the same
//! slot counts), then the cache shrinks back to 3 and the removed shard's
//! instances go. No key and no acknowledged write is lost either way, and
//! the client sees no error.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ocean_tests::caches::{
    addrs, cache, cluster_client, create_cache, formed, have_redis, held_bytes, nodes_with, slot,
    start, tag_per_slot, wait_cache,
};
use ocean_tests::tasks::bounded;
use serde_json::{json, Value};

const FORM: Duration = Duration::from_secs(60);
const RESHARD: Duration = Duration::from_secs(120);

/// Bytes of the values in the heavy slots (the lower quarter, all on
/// shard 0).
const HEAVY: usize = 2_000;
/// Bytes of the others.
const LIGHT: usize = 100;

fn value_of(s: usize) -> String {
    let n = if s < 4096 { HEAVY } else { LIGHT };
    format!("{s}:{}", "x".repeat(n))
}

/// A writer through a cluster-aware client until `stop`: the keys it had
/// acknowledged, and every error it saw.
async fn writer(seeds: Vec<String>, stop: Arc<AtomicBool>) -> (Vec<u64>, Vec<String>) {
    let mut acked = Vec::new();
    let mut errors = Vec::new();
    let Ok(mut con) = cluster_client(&seeds).await else {
        return (acked, vec!["no cluster connection".into()]);
    };
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let r = redis::cmd("SET")
            .arg(format!("w:{i}"))
            .arg(i)
            .query_async::<()>(&mut con)
            .await;
        match r {
            Ok(()) => acked.push(i),
            Err(e) => errors.push(e.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    (acked, errors)
}

/// Bytes (`MEMORY USAGE`, the writer's keys left out) and slots of each
/// primary, by shard.
async fn bytes_by_shard(detail: &Value) -> anyhow::Result<Vec<(u64, u64, u64)>> {
    let mut out = Vec::new();
    let mut primaries = nodes_with(detail, "primary");
    primaries.sort_by_key(|n| n["shard"].as_u64());
    for n in primaries {
        let addr = n["addr"].as_str().unwrap_or_default();
        out.push((
            n["shard"].as_u64().unwrap_or(0),
            n["slots"].as_u64().unwrap_or(0),
            held_bytes(addr, Some("w:")).await?,
        ));
    }
    Ok(out)
}

/// Every key of every slot still holds its value, and every write the
/// writer had acknowledged is there. 64 reads in flight over the one
/// multiplexed connection: one at a time, ~20,000 reads took minutes on a
/// loaded CI machine.
async fn check_all(seeds: &[String], acked: &[u64]) -> anyhow::Result<()> {
    use futures::{StreamExt, TryStreamExt};
    let con = cluster_client(seeds).await?;
    let lost_slots: Vec<usize> = futures::stream::iter(tag_per_slot().into_iter().enumerate())
        .map(|(s, t)| {
            let mut con = con.clone();
            async move {
                let v: Option<String> = redis::cmd("GET")
                    .arg(format!("{{{t}}}:k"))
                    .query_async(&mut con)
                    .await?;
                anyhow::Ok((v.as_deref() != Some(value_of(s).as_str())).then_some(s))
            }
        })
        .buffer_unordered(64)
        .try_filter_map(|x| async move { Ok(x) })
        .try_collect()
        .await?;
    anyhow::ensure!(
        lost_slots.is_empty(),
        "slots lost their key: {lost_slots:?}"
    );
    let mut lost: Vec<u64> = futures::stream::iter(acked.iter().copied())
        .map(|i| {
            let mut con = con.clone();
            async move {
                let v: Option<u64> = redis::cmd("GET")
                    .arg(format!("w:{i}"))
                    .query_async(&mut con)
                    .await?;
                anyhow::Ok((v != Some(i)).then_some(i))
            }
        })
        .buffer_unordered(64)
        .try_filter_map(|x| async move { Ok(x) })
        .try_collect()
        .await?;
    lost.sort_unstable();
    anyhow::ensure!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    Ok(())
}

fn resharded(shards: usize) -> impl Fn(&Value) -> bool {
    move |v: &Value| v["resharding"].is_null() && formed(shards, 1)(v)
}

/// The bytes of the shards are within 10% of each other: (max - min) is
/// at most a tenth of the mean.
fn assert_balanced(by_shard: &[(u64, u64, u64)]) {
    let bytes: Vec<u64> = by_shard.iter().map(|b| b.2).collect();
    let mean = bytes.iter().sum::<u64>() as f64 / bytes.len() as f64;
    let spread = (bytes.iter().max().unwrap_or(&0) - bytes.iter().min().unwrap_or(&0)) as f64;
    assert!(spread <= mean * 0.10, "bytes not within 10%: {by_shard:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn shards_scale_out_and_in_online_balanced_by_bytes() {
    if !have_redis() {
        return;
    }
    bounded(300, async {
        let (c, _agents) = start(&["a", "b", "c"]).await?;
        let api = c.master(1).api();
        create_cache(&api, "grow", 3, 1).await?;
        let detail = wait_cache(&api, "grow", FORM, "formed", formed(3, 1)).await?;
        let seeds = addrs(&detail);

        // One key per slot; the lower quarter of the slots (all on shard 0)
        // 20 times heavier.
        let mut con = cluster_client(&seeds).await?;
        for (s, t) in tag_per_slot().iter().enumerate() {
            let key = format!("{{{t}}}:k");
            assert_eq!(usize::from(slot(&key)), s);
            redis::cmd("SET")
                .arg(&key)
                .arg(value_of(s))
                .query_async::<()>(&mut con)
                .await?;
        }

        // Bad shard counts name the field and change nothing.
        for bad in [
            json!({"shards": 0}),
            json!({"shards": 65}),
            json!({"shards": "3"}),
        ] {
            let r = api.post("/v1/caches/grow/scale", &bad).await?;
            assert_eq!(r.status, 400, "{bad}: {}", r.body);
            let field = &r.body["errors"][0]["field"];
            assert!(field == "shards" || field == "body", "{}", r.body);
        }
        assert_eq!(cache(&api, "grow").await?["shards"], 3);

        let stop = Arc::new(AtomicBool::new(false));
        let load = tokio::spawn(writer(seeds.clone(), stop.clone()));
        tokio::time::sleep(Duration::from_millis(500)).await;

        // Out to 4 shards.
        let asked = Instant::now();
        let r = api
            .post("/v1/caches/grow/scale", &json!({"shards": 4}))
            .await?;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["resharding"]["from_shards"], 3, "{}", r.body);
        let detail = wait_cache(&api, "grow", RESHARD, "resharded to 4", resharded(4)).await?;
        eprintln!("3 -> 4 shards done {:?} after the request", asked.elapsed());
        let by_shard = bytes_by_shard(&detail).await?;
        eprintln!("after 3 -> 4: (shard, slots, bytes) {by_shard:?}");
        assert_eq!(by_shard.len(), 4, "{detail:#}");
        assert_balanced(&by_shard);
        // Balanced by bytes, not slot counts: the new shard took far fewer
        // than a quarter of the slots.
        assert!(by_shard[3].1 < 16384 / 4 - 1000, "{by_shard:?}");

        // Back in to 3: shard 3 is drained and its instances go.
        let asked = Instant::now();
        let r = api
            .post("/v1/caches/grow/scale", &json!({"shards": 3}))
            .await?;
        assert_eq!(r.status, 200, "{}", r.body);
        let detail = wait_cache(&api, "grow", RESHARD, "resharded to 3", |v| {
            resharded(3)(v)
                && v["jobs"].as_array().is_some_and(|j| j.len() == 3)
                && v["status"]["nodes"]
                    .as_array()
                    .is_some_and(|n| n.iter().all(|n| n["shard"].as_u64() < Some(3)))
        })
        .await?;
        eprintln!("4 -> 3 shards done {:?} after the request", asked.elapsed());
        let by_shard = bytes_by_shard(&detail).await?;
        eprintln!("after 4 -> 3: (shard, slots, bytes) {by_shard:?}");
        assert_eq!(by_shard.len(), 3, "{detail:#}");
        assert_balanced(&by_shard);
        let jobs = api.get("/v1/jobs").await?.body.to_string();
        assert!(!jobs.contains("grow_job.shard-3"), "shard 3's job is left");

        stop.store(true, Ordering::Relaxed);
        let (acked, errors) = load.await?;
        eprintln!(
            "writer: {} acknowledged, {} errors {:?}",
            acked.len(),
            errors.len(),
            errors.iter().take(5).collect::<Vec<_>>()
        );
        assert!(
            acked.len() > 100,
            "the writer hardly wrote: {}",
            acked.len()
        );
        assert!(errors.is_empty(), "clients saw errors: {errors:?}");
        check_all(&addrs(&detail), &acked).await?;
        Ok(())
    })
    .await;
}
