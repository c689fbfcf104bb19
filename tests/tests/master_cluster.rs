//! Three (or four) real `ocean master` processes on loopback: election,
//! replication, failover, durability, snapshots, quorum loss, membership.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use ocean_tests::http::{job_id, job_spec};
use ocean_tests::tasks::bounded;
use ocean_tests::Cluster;
use serde_json::Value;

const LEADER_TIMEOUT: Duration = Duration::from_secs(15);

async fn job_count(c: &Cluster, id: u64) -> usize {
    match c.master(id).api().get("/v1/jobs").await {
        Ok(r) => r.body["jobs"].as_array().map(Vec::len).unwrap_or(0),
        Err(_) => 0,
    }
}

async fn wait_jobs(c: &Cluster, id: u64, n: usize, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let have = job_count(c, id).await;
        if have == n {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "master {id} has {have} jobs, expected {n}:\n{}",
                c.master(id).log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn elects_a_leader_and_replicates_writes_to_all() {
    bounded(60, async {
        let c = Cluster::start(3, &[])?;
        let leader = c.wait_leader(&[1, 2, 3], LEADER_TIMEOUT).await?;
        // Writes through every master, followers forward to the leader.
        for i in 0..30 {
            let m = c.master(i % 3 + 1);
            let r = m.api().put_job(&format!("j{i}")).await?;
            assert_eq!(r.status, 201, "{:?}", r.body);
        }
        for id in 1..=3 {
            wait_jobs(&c, id, 30, Duration::from_secs(10)).await?;
        }
        // Every master names the leader and, once it has announced itself,
        // its REST address.
        let deadline = Instant::now() + Duration::from_secs(5);
        let leader_info = loop {
            let r = c.master(2).api().get("/v1/leader").await?;
            if r.body["http_addr"].as_str().is_some_and(|a| !a.is_empty())
                || Instant::now() > deadline
            {
                break r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(leader_info.body["id"].as_u64(), Some(leader));
        assert_eq!(
            leader_info.body["http_addr"].as_str(),
            Some(c.master(leader).http.to_string().as_str())
        );
        let status = c.master(leader).api().get("/v1/status").await?;
        assert_eq!(status.body["role"], "leader");
        assert_eq!(status.body["members"].as_array().map(Vec::len), Some(3));
        // A job read back carries its spec with defaults filled in.
        let j = c
            .master(3)
            .api()
            .get(&format!("/v1/jobs/{}", job_id("j7")))
            .await?;
        assert_eq!(j.status, 200);
        assert_eq!(j.body["spec"]["instances"], 1);
        // Re-submitting a spec changes nothing, through leader or follower.
        for id in 1..=3 {
            let r = c.master(id).api().put_job("j0").await?;
            assert_eq!(r.status, 200, "{:?}", r.body);
            assert_eq!(r.body["outcome"], "unchanged");
        }
        // Linearizable reads: a write through one master is visible at once
        // through any other with ?consistent=true.
        for i in 0..15u64 {
            let name = format!("lin{i}");
            let r = c.master(i % 3 + 1).api().put_job(&name).await?;
            assert_eq!(r.status, 201);
            let other = c.master((i + 1) % 3 + 1).api();
            let r = other
                .get(&format!("/v1/jobs/{}?consistent=true", job_id(&name)))
                .await?;
            assert_eq!(
                r.status, 200,
                "a consistent read missed an acknowledged write: {:?}",
                r.body
            );
        }
        let metrics = c.master(leader).api().get_text("/metrics").await?;
        for name in [
            "ocean_raft_term",
            "ocean_raft_commit_index",
            "ocean_raft_apply_lag",
            "ocean_raft_proposals_total",
            "ocean_raft_fsync_seconds_bucket",
        ] {
            assert!(metrics.contains(name), "missing metric {name}");
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_of_the_leader_elects_a_new_one_and_keeps_acknowledged_writes() {
    bounded(90, async {
        let mut c = Cluster::start(3, &[])?;
        let old = c.wait_leader(&[1, 2, 3], LEADER_TIMEOUT).await?;
        let survivors: Vec<u64> = (1..=3).filter(|i| *i != old).collect();
        let mut acked = BTreeSet::new();
        for i in 0..20 {
            let r = c
                .master(survivors[i % 2])
                .api()
                .put_job(&format!("a{i}"))
                .await?;
            assert_eq!(r.status, 201);
            acked.insert(format!("a{i}"));
        }
        c.master_mut(old).kill();
        let killed = Instant::now();
        // Writes through a survivor succeed once the new leader is up.
        let mut first_ack = None;
        for i in 0..20 {
            let name = format!("b{i}");
            let r = c.master(survivors[i % 2]).api().put_job(&name).await?;
            if r.status == 201 {
                first_ack.get_or_insert(killed.elapsed());
                acked.insert(name);
            }
        }
        assert!(
            first_ack.is_some(),
            "no write was acknowledged after the leader died"
        );
        let new = c.wait_leader(&survivors, LEADER_TIMEOUT).await?;
        assert_ne!(new, old);
        for id in &survivors {
            let r = c.master(*id).api().get("/v1/jobs").await?;
            let have: BTreeSet<String> = r.body["jobs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|j| j["spec"]["id"].as_str().map(str::to_string))
                .collect();
            for name in &acked {
                assert!(
                    have.contains(&job_id(name)),
                    "master {id} lost acknowledged write {name}"
                );
            }
        }
        // The old leader comes back as a follower and catches up.
        c.master_mut(old).start()?;
        wait_jobs(&c, old, acked.len(), Duration::from_secs(15)).await?;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_of_all_masters_and_restart_recovers_all_state() {
    bounded(90, async {
        let mut c = Cluster::start(3, &["--snapshot-entries", "25"])?;
        c.wait_leader(&[1, 2, 3], LEADER_TIMEOUT).await?;
        for i in 0..60 {
            let r = c.master(i % 3 + 1).api().put_job(&format!("r{i}")).await?;
            assert_eq!(r.status, 201);
        }
        let deleted = c
            .master(1)
            .api()
            .delete(&format!("/v1/jobs/{}", job_id("r0")))
            .await?;
        assert_eq!(deleted.status, 200);
        let version = deleted.body["version"].as_u64().unwrap_or(0);
        for id in 1..=3 {
            c.master_mut(id).kill();
        }
        for id in 1..=3 {
            c.master_mut(id).start()?;
        }
        // State is served from disk even before a leader exists.
        c.wait_leader(&[1, 2, 3], LEADER_TIMEOUT).await?;
        for id in 1..=3 {
            wait_jobs(&c, id, 59, Duration::from_secs(10)).await?;
            let s = c.master(id).api().get("/v1/status").await?;
            assert!(s.body["version"].as_u64().unwrap_or(0) >= version);
        }
        let gone = c
            .master(2)
            .api()
            .get(&format!("/v1/jobs/{}", job_id("r0")))
            .await?;
        assert_eq!(gone.status, 404);
        let r = c.master(3).api().put_job("after-restart").await?;
        assert_eq!(r.status, 201);
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wiped_master_rejoins_and_catches_up_by_snapshot() {
    bounded(90, async {
        let mut c = Cluster::start(3, &["--snapshot-entries", "20"])?;
        let leader = c.wait_leader(&[1, 2, 3], LEADER_TIMEOUT).await?;
        let victim = if leader == 3 { 2 } else { 3 };
        c.master_mut(victim).kill();
        for i in 0..100 {
            let r = c.master(leader).api().put_job(&format!("s{i}")).await?;
            assert_eq!(r.status, 201);
        }
        let first = c.master(leader).api().get("/v1/status").await?.body["first_index"]
            .as_u64()
            .unwrap_or(0);
        assert!(
            first > 50,
            "leader did not compact its log (first index {first})"
        );
        let dir = c.master(victim).data_dir.clone();
        std::fs::remove_dir_all(&dir)?;
        c.master_mut(victim).start()?;
        wait_jobs(&c, victim, 100, Duration::from_secs(20)).await?;
        let installed = c
            .master(victim)
            .api()
            .metric("ocean_raft_snapshots_installed_total")
            .await?;
        assert!(
            installed >= 1.0,
            "the wiped master caught up without a snapshot"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn survivor_of_a_minority_cannot_commit_and_says_so() {
    bounded(90, async {
        let c = Cluster::start(3, &[])?;
        c.wait_leader(&[1, 2, 3], LEADER_TIMEOUT).await?;
        let before = job_count(&c, 1).await;
        c.master(2).signal(Signal::SIGSTOP);
        c.master(3).signal(Signal::SIGSTOP);
        let r = c.master(1).api().put_job("minority").await?;
        assert_eq!(
            r.status, 503,
            "a write without quorum was answered {:?}",
            r.body
        );
        let msg = r.body["error"].as_str().unwrap_or("");
        assert!(msg.contains("majority"), "error does not say why: {msg}");
        assert!(matches!(
            r.body["code"].as_str(),
            Some("no_leader" | "not_committed")
        ));
        // A linearizable read cannot be served without a quorum either.
        let r = c.master(1).api().get("/v1/jobs?consistent=true").await?;
        assert_eq!(
            r.status, 503,
            "a consistent read without quorum was answered {:?}",
            r.body
        );
        c.master(2).signal(Signal::SIGCONT);
        c.master(3).signal(Signal::SIGCONT);
        c.wait_leader(&[1, 2, 3], LEADER_TIMEOUT).await?;
        let r = c.master(1).api().put_job("majority-again").await?;
        assert!(r.status == 201 || r.status == 200, "{:?}", r.body);
        // The unacknowledged write may or may not have landed; nothing else did.
        let after = job_count(&c, 1).await;
        assert!(after == before + 1 || after == before + 2);
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_master_is_added_and_another_removed_at_runtime() {
    bounded(90, async {
        let mut c = Cluster::start(3, &["--snapshot-entries", "20"])?;
        let leader = c.wait_leader(&[1, 2, 3], LEADER_TIMEOUT).await?;
        for i in 0..40 {
            c.master(leader).api().put_job(&format!("m{i}")).await?;
        }
        let mut fourth = c.new_joiner(4, &["--snapshot-entries", "20"]);
        fourth.start()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = c.master(leader).api().get("/v1/status").await?;
            let voters = s.body["members"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|m| m["voter"] == Value::Bool(true))
                .count();
            let jobs = fourth
                .api()
                .get("/v1/jobs")
                .await
                .ok()
                .and_then(|r| r.body["jobs"].as_array().map(Vec::len))
                .unwrap_or(0);
            if voters == 4 && jobs == 40 {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "master 4 did not join ({voters} voters, {jobs} jobs):\n{}",
                fourth.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Remove a master that is not the leader, through master 4.
        let gone = if leader == 1 { 2 } else { 1 };
        let r = fourth.api().delete(&format!("/v1/members/{gone}")).await?;
        assert_eq!(r.status, 200, "{:?}", r.body);
        c.master_mut(gone).kill();
        let r = fourth.api().put_job("after-membership-change").await?;
        assert_eq!(r.status, 201, "{:?}", r.body);
        let members = c.master(leader).api().get("/v1/members").await?;
        let ids: Vec<u64> = members.body["members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["id"].as_u64())
            .collect();
        assert!(
            !ids.contains(&gone) && ids.contains(&4),
            "members now {ids:?}"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_rejected_at_the_edge_and_reaches_no_log() {
    bounded(60, async {
        let c = Cluster::start(3, &[])?;
        let leader = c.wait_leader(&[1, 2, 3], LEADER_TIMEOUT).await?;
        let api = c.master(leader).api();
        let v0 = api.get("/v1/status").await?.body["version"].as_u64();
        let mut bad = job_spec("bad");
        bad["resources"]["mem"] = serde_json::json!(-5);
        let r = api.post("/v1/jobs", &bad).await?;
        assert_eq!(r.status, 422);
        assert_eq!(r.body["errors"][0]["field"], "resources.mem");
        let r = api
            .post_raw("/v1/jobs", b"{not json".to_vec(), "application/json")
            .await?;
        assert_eq!(r.status, 422);
        let mut bad = job_spec("bad");
        bad["id"] = serde_json::json!("not-a-service-tree-id");
        let r = api.post("/v1/jobs", &bad).await?;
        assert_eq!(r.status, 422);
        assert_eq!(r.body["errors"][0]["field"], "id");
        let r = api
            .post(
                "/v1/members",
                &serde_json::json!({"id": 0, "grpc_addr": "x"}),
            )
            .await?;
        assert_eq!(r.status, 400);
        let r = api.get("/v1/jobs/nope").await?;
        assert_eq!(r.status, 404);
        assert_eq!(r.body["code"], "not_found");
        let r = api.get("/v1/no-such-path").await?;
        assert_eq!(r.status, 404);
        let v1 = api.get("/v1/status").await?.body["version"].as_u64();
        assert_eq!(v0, v1, "a rejected request changed the state");
        // YAML is accepted too.
        let yaml = format!(
            "id: {}\ncmd: sleep 1\nresources:\n  mem: 32\n",
            job_id("yaml")
        );
        let r = api
            .post_raw("/v1/jobs", yaml.into_bytes(), "application/yaml")
            .await?;
        assert_eq!(r.status, 201, "{:?}", r.body);
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn event_stream_resumes_on_another_master_from_a_version() {
    bounded(60, async {
        let c = Cluster::start(3, &[])?;
        c.wait_leader(&[1, 2, 3], LEADER_TIMEOUT).await?;
        let r = c.master(1).api().put_job("e1").await?;
        let v1 = r.body["version"].as_u64().unwrap_or(0);
        c.master(1).api().put_job("e2").await?;
        c.master(1)
            .api()
            .delete(&format!("/v1/jobs/{}", job_id("e1")))
            .await?;
        // Resume on master 3 from v1: exactly the two later changes, in order.
        wait_jobs(&c, 3, 1, Duration::from_secs(5)).await?;
        let resp = reqwest::Client::new()
            .get(format!("http://{}/v1/events?from={v1}", c.master(3).http))
            .send()
            .await?;
        let mut body = resp.bytes_stream();
        let mut text = String::new();
        use futures::StreamExt;
        while !(text.contains("job_put") && text.contains("job_deleted")) {
            let chunk = tokio::time::timeout(Duration::from_secs(5), body.next())
                .await?
                .ok_or_else(|| anyhow::anyhow!("stream ended"))??;
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        let put_at = text.find("event: job_put").unwrap_or(usize::MAX);
        let del_at = text.find("event: job_deleted").unwrap_or(0);
        assert!(put_at < del_at, "events out of order:\n{text}");
        assert!(
            !text.contains("event: snapshot"),
            "a resumable watcher got a snapshot:\n{text}"
        );
        assert!(text.contains(&format!("id: {}", v1 + 1)));
        Ok(())
    })
    .await;
}

/// The upgrade procedure (docs/operations.md, "Upgrading masters"): one
/// master at a time, followers first and the leader last, each stopped
/// with SIGTERM and started again (the new binary), the next one only
/// once it has caught up, while a client keeps writing through every
/// master. Every acknowledged write is on every master at the end, and
/// writes are acknowledged during every step.
#[tokio::test(flavor = "multi_thread")]
async fn rolling_restart_under_write_load_loses_no_acknowledged_write() {
    bounded(150, async {
        let mut c = Cluster::start(3, &[])?;
        let leader = c.wait_leader(&[1, 2, 3], LEADER_TIMEOUT).await?;
        let addrs: Vec<String> = (1..=3).map(|id| c.master(id).http.to_string()).collect();
        let client = ocean_client::RestClient::new(addrs)?;
        let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let failed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (acked, failed, stop) = (acked.clone(), failed.clone(), stop.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let name = format!("r{i}");
                    i += 1;
                    match client.post("/v1/jobs", job_spec(&name)).await {
                        Ok(_) => acked.lock().unwrap().push(name),
                        // Refused or unanswered during a hand-over: not
                        // acknowledged, so nothing is promised.
                        Err(_) => {
                            failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            })
        };
        let order: Vec<u64> = (1..=3)
            .filter(|id| *id != leader)
            .chain(std::iter::once(leader))
            .collect();
        for id in order {
            let before = acked.lock().unwrap().len();
            c.master(id).signal(Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(15);
            while !c.master_mut(id).process.exited() {
                anyhow::ensure!(Instant::now() < deadline, "master {id} ignored SIGTERM");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            c.master_mut(id).start()?;
            c.wait_leader(&[1, 2, 3], LEADER_TIMEOUT).await?;
            // Caught up with what was acknowledged before it stopped, and
            // writes went on while it was away.
            let deadline = Instant::now() + Duration::from_secs(20);
            while job_count(&c, id).await < before {
                anyhow::ensure!(Instant::now() < deadline, "master {id} did not catch up");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            while acked.lock().unwrap().len() <= before {
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "no write acknowledged while master {id} restarted"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        writer.await?;
        let acked = acked.lock().unwrap().clone();
        for id in 1..=3 {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let r = c.master(id).api().get("/v1/jobs").await?;
                let have: BTreeSet<String> = r.body["jobs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|j| j["spec"]["id"].as_str().map(str::to_string))
                    .collect();
                let missing: Vec<&String> = acked
                    .iter()
                    .filter(|n| !have.contains(&job_id(n)))
                    .collect();
                if missing.is_empty() {
                    break;
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "master {id} lacks {} acknowledged writes, e.g. {:?}",
                    missing.len(),
                    &missing[..missing.len().min(5)]
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        eprintln!(
            "rolling restart: {} writes acknowledged, {} refused or unanswered (retried), 0 lost",
            acked.len(),
            failed.load(std::sync::atomic::Ordering::Relaxed)
        );
        Ok(())
    })
    .await;
}
