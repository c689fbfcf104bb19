//! The redis framework end to end: a real master hosting it, real agents,
//! real `redis-server` tasks. A cache of 3 shards x 1 replica forms and
//! serves every slot to a cluster-aware client; a primary SIGKILLed under
//! `WAIT 1` writes loses no acknowledged write and comes back as a
//! replica with the data; a lost host (agent SIGKILLed, its Redis processes
//! frozen) fails over and its instances are placed on other hosts. A
//! failover raises the `failover` alert of a rule on the product line.

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use ocean_tests::caches::{
    addrs, cache, cluster_client, connect, create_cache, formed, have_redis, lost_writes,
    nodes_with, owner, slot, start, tag_per_slot, wait_cache, write_load,
};
use ocean_tests::tasks::{bounded, wait_newest};
use serde_json::{json, Value};

const FORM: Duration = Duration::from_secs(60);

/// Every shard's instances are on distinct hosts.
fn assert_anti_affinity(detail: &Value) {
    let nodes = detail["status"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for shard in 0..detail["shards"].as_u64().unwrap_or(0) {
        let hosts: Vec<&str> = nodes
            .iter()
            .filter(|n| n["shard"] == shard)
            .filter_map(|n| n["host"].as_str())
            .collect();
        let mut uniq = hosts.clone();
        uniq.sort_unstable();
        uniq.dedup();
        assert_eq!(
            uniq.len(),
            hosts.len(),
            "shard {shard} shares a host: {hosts:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cache_forms_and_serves_every_slot() {
    if !have_redis() {
        return;
    }
    bounded(150, async {
        let (c, _agents) = start(&["a", "b", "c"]).await?;
        let api = c.master(1).api();

        // Bad input names its field.
        let r = api
            .post(
                "/v1/caches",
                &json!({"name": "x", "product_line": "qa", "shards": 0, "memory_mb": 32}),
            )
            .await?;
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.body["errors"][0]["field"], "shards", "{}", r.body);

        let asked = Instant::now();
        create_cache(&api, "orders", 3, 1).await?;
        let r = api
            .post(
                "/v1/caches",
                &json!({"name": "orders", "product_line": "qa", "shards": 1, "memory_mb": 32}),
            )
            .await?;
        assert_eq!(r.status, 409, "a second cache of the same name: {}", r.body);
        let detail = wait_cache(&api, "orders", FORM, "formed", formed(3, 1)).await?;
        eprintln!("3x1 formed {:?} after the request", asked.elapsed());
        assert_anti_affinity(&detail);
        assert_eq!(detail["status"]["slots_served"], 16384);

        // A cluster-aware client writes one key in every slot and reads
        // them all back.
        let mut con = cluster_client(&addrs(&detail)).await?;
        let tags = tag_per_slot();
        for (s, t) in tags.iter().enumerate() {
            let key = format!("{{{t}}}:k");
            assert_eq!(usize::from(slot(&key)), s);
            redis::cmd("SET")
                .arg(&key)
                .arg(s)
                .query_async::<()>(&mut con)
                .await?;
        }
        for (s, t) in tags.iter().enumerate() {
            let v: Option<usize> = redis::cmd("GET")
                .arg(format!("{{{t}}}:k"))
                .query_async(&mut con)
                .await?;
            assert_eq!(v, Some(s), "slot {s}");
        }
        let keys = wait_cache(&api, "orders", Duration::from_secs(10), "counted", |v| {
            nodes_with(v, "primary")
                .iter()
                .map(|n| n["keys"].as_u64().unwrap_or(0))
                .sum::<u64>()
                == 16384
        })
        .await?;
        // The list shows it with its product line.
        let list = api.get("/v1/caches?product_line=qa").await?.body;
        assert_eq!(list["caches"][0]["name"], "orders", "{list}");
        assert_eq!(list["caches"][0]["running"], 6, "{list}");
        drop(keys);

        // Deleting the cache removes its jobs (and so its instances).
        let r = api.delete("/v1/caches/orders").await?;
        assert_eq!(r.status, 200, "{}", r.body);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let jobs = api.get("/v1/jobs").await?.body;
            if !jobs.to_string().contains("redis_pdl.qa") {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "jobs left: {jobs}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_primary_loses_no_acknowledged_write_and_rejoins_as_a_replica() {
    if !have_redis() {
        return;
    }
    bounded(180, async {
        let (c, _agents) = start(&["a", "b", "c"]).await?;
        let api = c.master(1).api();
        create_cache(&api, "sessions", 3, 1).await?;
        let detail = wait_cache(&api, "sessions", FORM, "formed", formed(3, 1)).await?;
        let seeds = addrs(&detail);
        // Failover alert rules: one on the cache's product line, one on a
        // sibling that must stay quiet.
        for (id, node) in [("qa-failover", "pdl.qa"), ("qa2-failover", "pdl.qa2")] {
            let r = api
                .post(
                    "/v1/alerts/rules",
                    &json!({"id": id, "node": node, "kind": "failover", "window_minutes": 5}),
                )
                .await?;
            assert_eq!(r.status, 201, "{}", r.body);
        }

        // A writer on one shard's slots; then its primary is SIGKILLed.
        let tag = "w".to_string();
        let victim_addr = owner(&seeds, &format!("{{{tag}}}:0"))
            .await
            .expect("an owner");
        let victim = detail["status"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["addr"] == victim_addr.as_str())
            .cloned()
            .expect("the owner is a node of the cache");
        let task = api
            .get(&format!("/v1/tasks/{}", victim["task"].as_str().unwrap()))
            .await?
            .body;
        let pid = task["pid"].as_i64().expect("a running task has a pid") as i32;

        let (killed_tx, killed_rx) = tokio::sync::watch::channel(None);
        let stop = Instant::now() + Duration::from_secs(8);
        let writer = tokio::spawn(write_load(seeds.clone(), tag.clone(), killed_rx, stop));
        tokio::time::sleep(Duration::from_secs(2)).await;
        kill(Pid::from_raw(pid), Signal::SIGKILL)?;
        let _ = killed_tx.send(Some(Instant::now()));
        let w = writer.await?;
        let resumed = w.resumed_after.expect("writes resumed after the kill");
        eprintln!(
            "primary SIGKILL -> writes OK in {resumed:?}; {} acknowledged writes",
            w.acked.len()
        );
        assert!(
            w.acked.len() > 10,
            "too few writes to judge: {}",
            w.acked.len()
        );

        // Nothing acknowledged is lost (the helper follows the slot if
        // the operator moves it while it reads).
        let lost = lost_writes(&seeds, &tag, &w.acked).await?;
        assert!(
            lost.is_empty(),
            "{} acknowledged writes lost: {lost:?}",
            lost.len()
        );

        // Healed: the killed node's replacement is a new task, the shard
        // has a primary and a synced replica holding the same keys, and the
        // dead node is forgotten.
        let shard = victim["shard"].clone();
        let dead_id = victim["node_id"].as_str().unwrap().to_string();
        let healed = wait_cache(&api, "sessions", FORM, "healed", |v| {
            let of_shard: Vec<&Value> = v["status"]["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|n| n["shard"] == shard)
                .collect();
            let keys = |role: &str| {
                of_shard
                    .iter()
                    .find(|n| n["role"] == role)
                    .and_then(|n| n["keys"].as_u64())
            };
            formed(3, 1)(v)
                && of_shard.iter().all(|n| n["task"] != victim["task"])
                && keys("primary").is_some_and(|k| k > 0)
                && keys("primary") == keys("replica")
                && !v.to_string().contains(&dead_id)
        })
        .await?;
        assert_anti_affinity(&healed);
        // The crashed process never serves again (a new node may, at the
        // same address, once handed the slots as a synced replica).
        let now_owner = owner(&seeds, &format!("{{{tag}}}:0"))
            .await
            .expect("an owner");
        let mut con = connect(&now_owner, Duration::from_secs(2)).await?;
        let id: String = redis::cmd("CLUSTER")
            .arg("MYID")
            .query_async(&mut con)
            .await?;
        assert_ne!(id, dead_id);
        let _ = cache(&api, "sessions").await?;

        // The failover raised the product line's alert, naming the cache
        // and the promoted replica; the sibling line heard nothing.
        let firing = wait_firing(&api, "qa-failover/redis:sessions").await?;
        assert_eq!(firing["kind"], "failover");
        let message = firing["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("cache failover (primary lost)")
                && message.contains(&format!("node {dead_id}")),
            "{firing}"
        );
        let all = api.get("/v1/alerts").await?.body;
        assert!(
            !all.to_string().contains("qa2-failover"),
            "a rule on pdl.qa2 does not cover pdl.qa: {all}"
        );
        Ok(())
    })
    .await;
}

/// Polls `GET /v1/alerts?state=firing` until alert `id` is listed.
async fn wait_firing(api: &ocean_tests::http::Api, id: &str) -> anyhow::Result<Value> {
    let firing = || async {
        let body = match api.get("/v1/alerts?state=firing").await {
            Ok(r) => r.body,
            Err(_) => Value::Null,
        };
        body["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["id"] == id)
            .cloned()
            .collect()
    };
    wait_newest(
        &format!("alert {id} firing"),
        Duration::from_secs(10),
        firing,
        |_| true,
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_primary_host_fails_over_and_its_replica_is_placed_elsewhere() {
    if !have_redis() {
        return;
    }
    bounded(180, async {
        let names = ["a", "b", "c", "d"];
        let (c, mut agents) = start(&names).await?;
        let api = c.master(1).api();
        create_cache(&api, "carts", 3, 1).await?;
        let detail = wait_cache(&api, "carts", FORM, "formed", formed(3, 1)).await?;
        let seeds = addrs(&detail);
        let tag = "h".to_string();
        let victim_addr = owner(&seeds, &format!("{{{tag}}}:0")).await.expect("an owner");
        let nodes = detail["status"]["nodes"].as_array().cloned().unwrap();
        let victim = nodes
            .iter()
            .find(|n| n["addr"] == victim_addr.as_str())
            .cloned()
            .unwrap();
        let lost_host = victim["host"].as_str().unwrap().to_string();

        // The host dies: its agent is SIGKILLed and every Redis process on
        // it freezes (SIGSTOP: no exit is ever reported, connections hang).
        let mut frozen = Vec::new();
        for n in nodes.iter().filter(|n| n["host"] == lost_host.as_str()) {
            let t = api
                .get(&format!("/v1/tasks/{}", n["task"].as_str().unwrap()))
                .await?
                .body;
            frozen.push(t["pid"].as_i64().expect("pid") as i32);
        }
        let (killed_tx, killed_rx) = tokio::sync::watch::channel(None);
        let stop = Instant::now() + Duration::from_secs(10);
        let writer = tokio::spawn(write_load(seeds.clone(), tag.clone(), killed_rx, stop));
        tokio::time::sleep(Duration::from_secs(2)).await;
        let idx = names
            .iter()
            .position(|n| format!("host-{n}") == lost_host)
            .expect("the host is one of the agents");
        agents[idx].kill();
        for pid in &frozen {
            kill(Pid::from_raw(*pid), Signal::SIGSTOP)?;
        }
        let _ = killed_tx.send(Some(Instant::now()));
        let w = writer.await?;
        if w.resumed_after.is_none() {
            let now = cache(&api, "carts").await?;
            let mut views = String::new();
            for a in addrs(&now) {
                if let Ok(mut con) = connect(&a, Duration::from_millis(300)).await {
                    if let Ok(t) = redis::cmd("CLUSTER").arg("NODES").query_async::<String>(&mut con).await {
                        views.push_str(&format!("{a}:\n{t}\n"));
                    }
                }
            }
            let tasks = api.get("/v1/tasks?ended=false").await?.body;
            let states: Vec<String> = tasks["tasks"].as_array().into_iter().flatten().map(|t| format!("{} {} {}", t["id"], t["host"], t["state"])).collect();
            let log = std::fs::read_to_string(c.master(1).process.log_path()).unwrap_or_default();
            let redis_log: Vec<&str> = log.lines().filter(|l| l.contains("redis") || l.contains("WARN") || l.contains("ERROR") || l.contains("panick")).collect();
            eprintln!("MASTER LOG redis lines:\n{}", redis_log.join("\n"));
            panic!("writes did not resume after the loss of {lost_host} ({} acked before)\nbefore: {detail:#}\nnow: {now:#}\n{views}\ntasks: {states:#?}", w.acked.len());
        }
        let resumed = w.resumed_after.expect("writes resumed after the host loss");
        eprintln!("host loss -> writes OK in {resumed:?}; {} acknowledged writes", w.acked.len());
        assert!(w.acked.len() > 10, "too few writes to judge: {}", w.acked.len());
        let lost = lost_writes(&seeds, &tag, &w.acked).await?;
        assert!(lost.is_empty(), "{} acknowledged writes lost: {lost:?}", lost.len());

        // Healed without the lost host: the shard's new replica is elsewhere.
        let healed = wait_cache(&api, "carts", FORM, "healed elsewhere", |v| {
            formed(3, 1)(v)
                && v["status"]["nodes"]
                    .as_array()
                    .is_some_and(|ns| ns.iter().all(|n| n["host"] != lost_host.as_str()))
        })
        .await?;
        assert_anti_affinity(&healed);
        for pid in &frozen {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
        Ok(())
    })
    .await;
}

/// The node of `detail`'s status running `task`.
fn node_of(detail: &Value, task: &str) -> Value {
    detail["status"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["task"] == task)
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_fails_a_shard_over_and_rebuilds_a_replica_losing_nothing() {
    if !have_redis() {
        return;
    }
    bounded(180, async {
        let (c, _agents) = start(&["a", "b", "c"]).await?;
        let api = c.master(1).api();
        create_cache(&api, "carts", 3, 1).await?;
        let detail = wait_cache(&api, "carts", FORM, "formed", formed(3, 1)).await?;
        let seeds = addrs(&detail);
        let tag = "m".to_string();
        let owner_addr = owner(&seeds, &format!("{{{tag}}}:0"))
            .await
            .expect("an owner");
        let primary = detail["status"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["addr"] == owner_addr.as_str())
            .cloned()
            .expect("the owner is a node of the cache");
        let shard = primary["shard"].as_u64().unwrap();
        let replica = nodes_with(&detail, "replica")
            .into_iter()
            .find(|n| n["shard"] == shard)
            .expect("the shard has a replica");

        // Refusals name their field.
        let path = "/v1/caches/carts";
        let r = api
            .post(&format!("{path}/failover"), &json!({"shard": 7}))
            .await?;
        assert_eq!(
            (r.status, &r.body["errors"][0]["field"]),
            (400, &json!("shard")),
            "{}",
            r.body
        );
        let r = api
            .post(
                &format!("{path}/failover"),
                &json!({"shard": shard, "task": primary["task"]}),
            )
            .await?;
        assert_eq!(r.status, 409, "the primary cannot be promoted: {}", r.body);
        let r = api
            .post(
                &format!("{path}/rebuild"),
                &json!({"task": primary["task"]}),
            )
            .await?;
        assert_eq!(r.status, 409, "a primary is not rebuilt: {}", r.body);
        assert!(
            r.body["error"]
                .as_str()
                .unwrap_or_default()
                .contains("fail it over first"),
            "{}",
            r.body
        );
        let r = api
            .post(&format!("{path}/rebuild"), &json!({"task": "nope"}))
            .await?;
        assert_eq!(r.status, 404, "{}", r.body);
        let r = api
            .post(&format!("{path}/rebuild"), &json!({"tsk": "x"}))
            .await?;
        assert_eq!(r.body["errors"][0]["field"], "body", "{}", r.body);

        // A graceful failover under WAIT 1 writes: the replica serves the
        // slots when the call returns, and no acknowledged write is lost.
        let (_tx, rx) = tokio::sync::watch::channel(None);
        let stop = Instant::now() + Duration::from_secs(6);
        let writer = tokio::spawn(write_load(seeds.clone(), tag.clone(), rx, stop));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let r = api
            .post(&format!("{path}/failover"), &json!({"shard": shard}))
            .await?;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["promoted"]["task"], replica["task"], "{}", r.body);
        assert_eq!(r.body["replaced"]["task"], primary["task"], "{}", r.body);
        eprintln!("manual failover took {} ms", r.body["took_ms"]);
        // The operator's own spreading of primaries leaves it be.
        let hold = api.get("/v1/frameworks/redis/kv/holds/carts").await?;
        assert!(
            hold.body["value"]["until_ms"].as_u64().unwrap_or(0) > 0,
            "{}",
            hold.body
        );
        let new_primary = connect(replica["addr"].as_str().unwrap(), Duration::from_secs(1)).await;
        let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut new_primary?).await?;
        assert_eq!(
            role.first(),
            Some(&redis::Value::BulkString(b"master".to_vec())),
            "the promoted replica is a primary: {role:?}"
        );
        let w = writer.await?;
        assert!(
            w.acked.len() > 10,
            "the writer got acknowledgements: {}",
            w.acked.len()
        );
        let lost = lost_writes(&seeds, &tag, &w.acked).await?;
        assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");

        // The old primary is now a synced replica; rebuild it.
        let old = primary["task"].as_str().unwrap().to_string();
        let d = wait_cache(&api, "carts", Duration::from_secs(15), "swapped", |v| {
            node_of(v, &old)["role"] == "replica" && node_of(v, &old)["link_up"] == true
        })
        .await?;
        let old_id = node_of(&d, &old)["node_id"].as_str().unwrap().to_string();
        let r = api
            .post(&format!("{path}/rebuild"), &json!({"task": old}))
            .await?;
        assert_eq!(r.status, 202, "{}", r.body);
        assert_eq!(r.body["old_node_id"], old_id.as_str(), "{}", r.body);
        let keys_of_primary = |v: &Value| {
            v["status"]["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|n| n["shard"] == shard && n["role"] == "primary")
                .map_or(0, |n| n["keys"].as_u64().unwrap_or(0))
        };
        let d = wait_cache(&api, "carts", Duration::from_secs(30), "rebuilt", |v| {
            let n = node_of(v, &old);
            n["role"] == "replica"
                && n["link_up"] == true
                && n["node_id"] != old_id.as_str()
                && n["keys"].as_u64() == Some(keys_of_primary(v))
                && v["state"] == "ok"
        })
        .await?;
        assert!(keys_of_primary(&d) > 0, "the shard holds the writer's keys");
        // The old id is forgotten everywhere.
        let forgotten = Instant::now() + Duration::from_secs(15);
        loop {
            let mut knowing = Vec::new();
            for a in &seeds {
                if let Ok(mut con) = connect(a, Duration::from_secs(1)).await {
                    let nodes: String = redis::cmd("CLUSTER")
                        .arg("NODES")
                        .query_async(&mut con)
                        .await?;
                    if nodes.contains(&old_id) {
                        knowing.push(a.clone());
                    }
                }
            }
            if knowing.is_empty() {
                break;
            }
            anyhow::ensure!(
                Instant::now() < forgotten,
                "{knowing:?} still know the rebuilt node's old id {old_id}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        // The dashboard lists the cache and shows its shards.
        let list = api.get_text("/ui/caches").await?;
        assert!(list.contains("data-cache=\"carts\""), "{list}");
        let page = api.get_text("/ui/caches/carts").await?;
        assert_eq!(page.matches("data-role=\"primary\"").count(), 3, "{page}");
        assert_eq!(page.matches("data-role=\"replica\"").count(), 3, "{page}");
        assert!(page.contains(&replica["task"].as_str().unwrap().to_string()));
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_restores_into_a_new_cache_verified_by_its_manifest() {
    if !have_redis() {
        return;
    }
    bounded(240, async {
        let (c, _agents) = start(&["a", "b", "c"]).await?;
        let api = c.master(1).api();
        create_cache(&api, "src", 2, 1).await?;
        let detail = wait_cache(&api, "src", FORM, "formed", formed(2, 1)).await?;
        let mut con = cluster_client(&addrs(&detail)).await?;
        for i in 0..2000 {
            redis::cmd("SET")
                .arg(format!("k{i}"))
                .arg(format!("value-{i}"))
                .query_async::<()>(&mut con)
                .await?;
        }
        for i in 0..20 {
            redis::cmd("HSET")
                .arg(format!("h{i}"))
                .arg("f")
                .arg(i)
                .arg("g")
                .arg("x")
                .query_async::<()>(&mut con)
                .await?;
        }
        redis::cmd("SET")
            .arg("ttl")
            .arg("soon")
            .arg("EX")
            .arg(600)
            .query_async::<()>(&mut con)
            .await?;
        let total = 2021u64;
        // Replicas caught up (the backup reads them, not the primaries).
        wait_cache(&api, "src", Duration::from_secs(20), "replicated", |v| {
            let keys = |role: &str| {
                nodes_with(v, role)
                    .iter()
                    .filter(|n| role == "primary" || n["link_up"] == true)
                    .map(|n| n["keys"].as_u64().unwrap_or(0))
                    .sum::<u64>()
            };
            keys("primary") == total && keys("replica") == total
        })
        .await?;

        let r = api.post("/v1/caches/src/backup", &json!({})).await?;
        assert_eq!(r.status, 201, "{}", r.body);
        let m = r.body.clone();
        assert_eq!(m["keys"], total, "{m}");
        assert_eq!(m["format"], "rdb", "{m}");
        let shards = m["shards"].as_array().cloned().unwrap_or_default();
        assert_eq!(shards.len(), 2, "{m}");
        assert!(
            shards.iter().all(|s| s["role"] == "replica"),
            "taken on replicas: {m}"
        );
        let dir = std::path::PathBuf::from(m["dir"].as_str().unwrap_or_default());
        let mut slots = 0u64;
        for s in &shards {
            // A real RDB file, as the manifest describes it.
            let file = dir.join(s["file"].as_str().unwrap_or_default());
            let bytes = std::fs::read(&file)?;
            assert!(
                bytes.starts_with(b"REDIS0"),
                "{} is an RDB file",
                file.display()
            );
            assert_eq!(s["bytes"], bytes.len() as u64, "{s}");
            assert_eq!(s["sha256"].as_str().map(str::len), Some(64), "{s}");
            assert!(s["keys"].as_u64().unwrap_or(0) > 0, "{s}");
            for r in s["slots"].as_array().cloned().unwrap_or_default() {
                slots += r[1].as_u64().unwrap_or(0) + 1 - r[0].as_u64().unwrap_or(1);
            }
        }
        assert_eq!(slots, 16384, "the shards' slots cover the cluster: {m}");
        let bid = m["id"].as_str().unwrap().to_string();
        let listed = api.get("/v1/caches/src/backups").await?.body;
        assert_eq!(listed["backups"][0]["id"], bid.as_str(), "{listed}");
        // Written after the snapshot: not in the restored cache.
        redis::cmd("SET")
            .arg("k0")
            .arg("after")
            .query_async::<()>(&mut con)
            .await?;

        // Restore into a new cache, started from the snapshots.
        let bad = api
            .post(
                "/v1/caches/dst/restore",
                &json!({"from": "src", "backup": "b-0"}),
            )
            .await?;
        assert_eq!(
            (bad.status, &bad.body["errors"][0]["field"]),
            (404, &json!("backup")),
            "{}",
            bad.body
        );
        let bad = api
            .post("/v1/caches/dst/restore", &json!({"backup": bid}))
            .await?;
        assert_eq!(bad.body["errors"][0]["field"], "body", "{}", bad.body);
        let r = api
            .post(
                "/v1/caches/dst/restore",
                &json!({"from": "src", "backup": bid}),
            )
            .await?;
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.body["verified"], true, "{}", r.body);
        assert_eq!(r.body["restored"], total, "{}", r.body);
        assert_eq!(r.body["digest"], m["digest"], "{}", r.body);
        let restored = r.body["shards"].as_array().cloned().unwrap_or_default();
        assert_eq!(restored.len(), 2, "{}", r.body);
        for (got, want) in restored.iter().zip(&shards) {
            assert_eq!(
                (&got["keys"], &got["digest"]),
                (&want["keys"], &want["digest"])
            );
        }
        let d = wait_cache(&api, "dst", FORM, "formed", formed(2, 1)).await?;
        let mut dst = cluster_client(&addrs(&d)).await?;
        let v: Option<String> = redis::cmd("GET").arg("k1999").query_async(&mut dst).await?;
        assert_eq!(v.as_deref(), Some("value-1999"));
        let v: Option<String> = redis::cmd("GET").arg("k0").query_async(&mut dst).await?;
        assert_eq!(v.as_deref(), Some("value-0"), "the snapshot's value");
        let f: Option<String> = redis::cmd("HGET")
            .arg("h7")
            .arg("f")
            .query_async(&mut dst)
            .await?;
        assert_eq!(f.as_deref(), Some("7"));
        let ttl: i64 = redis::cmd("TTL").arg("ttl").query_async(&mut dst).await?;
        assert!((1..=600).contains(&ttl), "the ttl is kept: {ttl}");
        redis::cmd("SET")
            .arg("new")
            .arg("1")
            .query_async::<()>(&mut dst)
            .await?;
        // Never into a cache that exists.
        let again = api
            .post(
                "/v1/caches/dst/restore",
                &json!({"from": "src", "backup": bid}),
            )
            .await?;
        assert_eq!(again.status, 409, "{}", again.body);

        // A manifest whose digest is not what loads: the restore reads
        // the new cache back and names the shard that differs.
        let manifest_path = dir.join("manifest.json");
        let original = std::fs::read(&manifest_path)?;
        let mut wrong: Value = serde_json::from_slice(&original)?;
        wrong["shards"][0]["digest"] = json!("0".repeat(64));
        std::fs::write(&manifest_path, serde_json::to_vec(&wrong)?)?;
        let r = api
            .post(
                "/v1/caches/dst2/restore",
                &json!({"from": "src", "backup": bid}),
            )
            .await?;
        std::fs::write(&manifest_path, &original)?;
        assert_eq!(r.status, 500, "{}", r.body);
        let reason = r.body["errors"][0]["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("shard 0") && reason.contains("digest"),
            "{}",
            r.body
        );

        // A tampered file is refused before anything starts.
        let file = dir.join(shards[1]["file"].as_str().unwrap_or_default());
        let mut bytes = std::fs::read(&file)?;
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x55;
        std::fs::write(&file, &bytes)?;
        let r = api
            .post(
                "/v1/caches/dst3/restore",
                &json!({"from": "src", "backup": bid}),
            )
            .await?;
        assert_eq!(
            (r.status, &r.body["errors"][0]["field"]),
            (422, &json!("backup")),
            "{}",
            r.body
        );
        let reason = r.body["errors"][0]["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("shard 1") && reason.contains("sha256"),
            "{}",
            r.body
        );
        assert_eq!(api.get("/v1/caches/dst3").await?.status, 404);
        Ok(())
    })
    .await;
}
