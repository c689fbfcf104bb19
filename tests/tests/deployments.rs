//! Deployments end to end, with real masters, agents and processes: a
//! rolling update with step pauses and sleeps, canaries promoted or
//! failed, a new version that never turns healthy (with and without
//! auto_revert, the floor held throughout), a leader killed mid-rollout,
//! and a change that no running task embodies.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use ocean_tests::http::{job_id, Api};
use ocean_tests::tasks::{
    bounded, deployments, live, running, submit, tasks, wait_connected, wait_deployment, wait_tasks,
};
use ocean_tests::Cluster;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(40);

async fn act(api: &Api, id: &str, action: &str) -> anyhow::Result<()> {
    let r = api
        .post(&format!("/v1/deployments/{id}/{action}"), &json!({}))
        .await?;
    anyhow::ensure!(r.status == 200, "{action} {id}: {} {}", r.status, r.body);
    Ok(())
}

fn spec(job: &str, instances: u32, cmd: &str, strategy: Value) -> Value {
    json!({
        "id": job,
        "cmd": cmd,
        "instances": instances,
        "resources": {"cpus": 0.01, "mem": 8},
        "kill_grace_period_seconds": 1,
        "upgrade_strategy": strategy,
    })
}

fn ids(list: &[Value]) -> BTreeSet<String> {
    list.iter()
        .filter_map(|t| t["id"].as_str().map(str::to_string))
        .collect()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// Ten instances, `step: 3`, `sleep_seconds: 1`: old tasks are replaced
/// oldest first, one at a time at least a second apart, the deployment
/// pauses after 3, 6 and 9, and each resume goes on until all ten run the
/// new version; no task is replaced twice.
#[tokio::test(flavor = "multi_thread")]
async fn a_rolling_update_pauses_every_step_and_sleeps_between_tasks() {
    bounded(170, async {
        let c = Cluster::start(1, &[])?;
        let api = c.master(1).api();
        let mut agent = c.new_agent("a", &[]);
        agent.start()?;
        wait_connected(&api, 1, WAIT).await?;
        let job = job_id("rolling");
        let strategy = json!({"step": 3, "sleep_seconds": 1});
        submit(&api, &spec(&job, 10, "sleep 600", strategy.clone())).await?;
        let first = wait_tasks(&api, &job, "ten RUNNING", WAIT, |l| running(l).len() == 10).await?;
        let mut old: Vec<String> = ids(&running(&first)).into_iter().collect();
        old.sort();
        submit(&api, &spec(&job, 10, "sleep 601", strategy)).await?;

        // Watch `replaced` grow, noting when each task was replaced.
        let mut seen: Vec<(String, Instant)> = Vec::new();
        let mut pauses = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        let last = loop {
            anyhow::ensure!(
                Instant::now() < deadline,
                "deployment did not end: {seen:?}"
            );
            let ds = deployments(&api, &job).await;
            let Some(d) = ds.first().cloned() else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            for r in d["replaced_tasks"].as_array().into_iter().flatten() {
                if !seen.iter().any(|(id, _)| id == s(r)) {
                    seen.push((s(r).to_string(), Instant::now()));
                }
            }
            match s(&d["state"]) {
                "paused" => {
                    assert_eq!(d["replaced"], seen.len());
                    assert!(s(&d["reason"]).contains("step"), "{d}");
                    pauses.push(seen.len());
                    // Still paused a moment later: nothing moves.
                    tokio::time::sleep(Duration::from_millis(700)).await;
                    let again = deployments(&api, &job).await;
                    assert_eq!(again[0]["state"], "paused");
                    assert_eq!(again[0]["replaced"], seen.len());
                    act(&api, s(&d["id"]), "resume").await?;
                }
                "succeeded" => break d,
                "running" => {}
                other => anyhow::bail!("unexpected state {other}: {d}"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(pauses, vec![3, 6, 9], "a pause after every 3 replaced");
        let replaced: Vec<String> = seen.iter().map(|(id, _)| id.clone()).collect();
        assert_eq!(replaced, old, "oldest first, each old task exactly once");
        for w in seen.windows(2) {
            let gap = w[1].1.duration_since(w[0].1);
            assert!(
                gap >= Duration::from_millis(900),
                "{} replaced {gap:?} after {}",
                w[1].0,
                w[0].0
            );
        }
        assert_eq!(last["new_tasks"], 10);
        assert_eq!(last["old_tasks"], 0);
        let now = running(&tasks(&api, &job).await);
        assert_eq!(now.len(), 10);
        assert!(ids(&now).is_disjoint(&old.iter().cloned().collect()));
        Ok(())
    })
    .await;
}

/// Canary 2 of 10: only the two canaries run beside the ten old tasks
/// until the promotion; promoting completes the rollout. A second update's
/// canaries, failed instead, are rolled back.
#[tokio::test(flavor = "multi_thread")]
async fn canaries_wait_for_promotion_and_a_failed_canary_is_rolled_back() {
    bounded(170, async {
        let c = Cluster::start(1, &[])?;
        let api = c.master(1).api();
        let mut agent = c.new_agent("a", &[]);
        agent.start()?;
        wait_connected(&api, 1, WAIT).await?;
        let job = job_id("canary");
        let strategy = json!({"canary": 2, "max_surge": 3});
        submit(&api, &spec(&job, 10, "sleep 600", strategy.clone())).await?;
        let first = wait_tasks(&api, &job, "ten RUNNING", WAIT, |l| running(l).len() == 10).await?;
        let v1 = ids(&running(&first));
        submit(&api, &spec(&job, 10, "sleep 601", strategy.clone())).await?;
        let d = wait_deployment(&api, &job, "canaries healthy", WAIT, |d| {
            d["state"] == "waiting_for_promotion"
        })
        .await?;
        // Waiting: twelve tasks, the ten old ones among them, for a while.
        for _ in 0..10 {
            let l = live(&tasks(&api, &job).await);
            assert_eq!(l.len(), 12, "{l:?}");
            assert!(v1.is_subset(&ids(&l)));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        act(&api, s(&d["id"]), "promote").await?;
        wait_deployment(&api, &job, "promoted rollout done", WAIT, |d| {
            d["state"] == "succeeded"
        })
        .await?;
        let v2 = wait_tasks(&api, &job, "ten of v2", WAIT, |l| {
            running(l).len() == 10 && live(l).len() == 10
        })
        .await?;
        let v2 = ids(&running(&v2));
        assert!(v2.is_disjoint(&v1));

        // Version 3's canaries, failed: back to version 2's tasks.
        submit(&api, &spec(&job, 10, "sleep 602", strategy)).await?;
        let d3 = wait_deployment(&api, &job, "v3 canaries healthy", WAIT, |d| {
            d["state"] == "waiting_for_promotion"
        })
        .await?;
        act(&api, s(&d3["id"]), "fail").await?;
        let ds = deployments(&api, &job).await;
        let failed = ds
            .iter()
            .find(|d| d["id"] == d3["id"])
            .cloned()
            .unwrap_or_default();
        assert_eq!(failed["state"], "failed", "{ds:?}");
        assert!(
            s(&failed["reason"]).contains("reverted to spec version 2"),
            "{failed}"
        );
        assert_eq!(ds[0]["revert_of"], 3);
        wait_deployment(&api, &job, "revert done", WAIT, |d| {
            d["state"] == "succeeded"
        })
        .await?;
        let after = wait_tasks(&api, &job, "v2's ten only", WAIT, |l| live(l).len() == 10).await?;
        assert_eq!(
            ids(&live(&after)),
            v2,
            "the canaries went, v2's tasks stayed"
        );
        let job_now = api.get(&format!("/v1/jobs/{job}")).await?.body;
        assert_eq!(job_now["spec"]["cmd"], "sleep 601");
        Ok(())
    })
    .await;
}

/// The spec of a job whose health check runs `check`.
fn checked(job: &str, check: &str, auto_revert: bool) -> Value {
    let mut v = spec(
        job,
        3,
        "sleep 600",
        json!({"healthy_deadline_seconds": 6, "auto_revert": auto_revert}),
    );
    v["health_checks"] = json!([{
        "protocol": "command", "command": check,
        "grace_period_seconds": 0, "interval_seconds": 1, "timeout_seconds": 1,
        "max_consecutive_failures": 2,
    }]);
    v
}

/// Healthy tasks of the job, sampled every 100 ms until `done` says stop;
/// the smallest count seen.
async fn lowest_healthy_until(
    api: &Api,
    job: &str,
    timeout: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> anyhow::Result<usize> {
    let deadline = Instant::now() + timeout;
    let mut lowest = usize::MAX;
    loop {
        let ds = deployments(api, job).await;
        let up = running(&tasks(api, job).await)
            .iter()
            .filter(|t| t["healthy"] == true)
            .count();
        lowest = lowest.min(up);
        if done(&ds) {
            return Ok(lowest);
        }
        anyhow::ensure!(Instant::now() < deadline, "not done: {ds:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A new version whose health check never passes: with auto_revert the
/// job goes back to the previous version and the deployment ends failed
/// saying why; without it, the rollout stops and the old tasks keep
/// serving. Three healthy tasks throughout (the floor, checked every
/// 100 ms).
#[tokio::test(flavor = "multi_thread")]
async fn a_version_that_never_turns_healthy_fails_and_reverts_only_when_asked() {
    bounded(170, async {
        let c = Cluster::start(1, &[])?;
        let api = c.master(1).api();
        let mut agent = c.new_agent("a", &[]);
        agent.start()?;
        wait_connected(&api, 1, WAIT).await?;
        for auto_revert in [true, false] {
            let job = job_id(if auto_revert { "revert" } else { "norevert" });
            submit(&api, &checked(&job, "true", auto_revert)).await?;
            let first = wait_tasks(&api, &job, "three healthy", WAIT, |l| {
                running(l).iter().filter(|t| t["healthy"] == true).count() == 3
            })
            .await?;
            let v1 = ids(&running(&first));
            submit(&api, &checked(&job, "false", auto_revert)).await?;
            let lowest = lowest_healthy_until(&api, &job, Duration::from_secs(40), |ds| {
                ds.iter()
                    .any(|d| d["spec_version"] == 2 && d["state"] == "failed")
                    && (!auto_revert || ds[0]["state"] == "succeeded")
            })
            .await?;
            assert_eq!(lowest, 3, "the floor held (auto_revert {auto_revert})");
            let ds = deployments(&api, &job).await;
            let failed = ds
                .iter()
                .find(|d| d["spec_version"] == 2)
                .cloned()
                .unwrap_or_default();
            assert!(
                s(&failed["reason"]).contains("healthy_deadline_seconds (6)"),
                "{failed}"
            );
            let j = api.get(&format!("/v1/jobs/{job}")).await?.body;
            let check = j["spec"]["health_checks"][0]["command"].clone();
            if auto_revert {
                assert!(s(&failed["reason"]).contains("reverted to spec version 1"));
                assert_eq!(check, "true", "back to version 1's spec");
                assert_eq!(ds[0]["revert_of"], 2);
            } else {
                assert_eq!(check, "false", "the job keeps the version it was given");
                assert_eq!(ds[0]["state"], "failed");
                // The old tasks keep serving; nothing more is replaced.
                tokio::time::sleep(Duration::from_secs(2)).await;
                let l = running(&tasks(&api, &job).await);
                let healthy: BTreeSet<String> = ids(&l
                    .iter()
                    .filter(|t| t["healthy"] == true)
                    .cloned()
                    .collect::<Vec<_>>());
                assert_eq!(healthy, v1);
            }
        }
        Ok(())
    })
    .await;
}

/// SIGKILL of the leader mid-deployment: the new leader goes on from
/// where the deployment stood; each old task is replaced once, no new one
/// is started beyond the instances, and none is left on the old version.
#[tokio::test(flavor = "multi_thread")]
async fn a_new_leader_resumes_a_deployment_without_replacing_a_task_twice() {
    bounded(170, async {
        let mut c = Cluster::start(3, &[])?;
        let leader = c.wait_leader(&[1, 2, 3], WAIT).await?;
        let api = c.master(leader).api();
        let mut agent = c.new_agent("a", &[]);
        agent.start()?;
        wait_connected(&api, 1, WAIT).await?;
        let job = job_id("failover");
        let strategy = json!({"sleep_seconds": 1});
        submit(&api, &spec(&job, 6, "sleep 600", strategy.clone())).await?;
        let first = wait_tasks(&api, &job, "six RUNNING", WAIT, |l| running(l).len() == 6).await?;
        let v1 = ids(&running(&first));
        submit(&api, &spec(&job, 6, "sleep 601", strategy)).await?;
        wait_deployment(&api, &job, "two replaced", WAIT, |d| {
            d["replaced"].as_u64() >= Some(2)
        })
        .await?;
        c.master_mut(leader).kill();
        let rest: Vec<u64> = [1, 2, 3].into_iter().filter(|id| *id != leader).collect();
        let new = c.wait_leader(&rest, WAIT).await?;
        let api = c.master(new).api();
        let d = wait_deployment(
            &api,
            &job,
            "done under the new leader",
            Duration::from_secs(60),
            |d| d["state"] == "succeeded",
        )
        .await?;
        let replaced: Vec<String> = d["replaced_tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| s(v).to_string())
            .collect();
        let unique: BTreeSet<String> = replaced.iter().cloned().collect();
        assert_eq!(
            unique.len(),
            replaced.len(),
            "a task replaced twice: {replaced:?}"
        );
        assert_eq!(unique, v1, "every old task replaced, only old ones");
        let one = api
            .get(&format!("/v1/deployments/{}", s(&d["id"])))
            .await?
            .body;
        let mut by_version: BTreeMap<String, usize> = BTreeMap::new();
        for t in one["tasks"].as_array().into_iter().flatten() {
            if t["replaced"] != true {
                *by_version.entry(s(&t["version"]).to_string()).or_default() += 1;
            }
        }
        assert_eq!(by_version.get("new"), Some(&6), "{one}");
        assert_eq!(by_version.get("old"), None, "{one}");
        // No new task was stopped or failed: every task of the job that is
        // not one of v1's is live.
        let all = tasks(&api, &job).await;
        for t in &all {
            if !v1.contains(s(&t["id"])) {
                assert!(
                    t["kill_requested"] != true && live(std::slice::from_ref(t)).len() == 1,
                    "{t}"
                );
            }
        }
        Ok(())
    })
    .await;
}

/// A change to the health check's thresholds and the back-off only: no
/// deployment starts and the running tasks are the same ones after it.
#[tokio::test(flavor = "multi_thread")]
async fn a_change_no_task_embodies_replaces_nothing() {
    bounded(120, async {
        let c = Cluster::start(1, &[])?;
        let api = c.master(1).api();
        let mut agent = c.new_agent("a", &[]);
        agent.start()?;
        wait_connected(&api, 1, WAIT).await?;
        let job = job_id("inplace");
        let mut v = checked(&job, "true", false);
        submit(&api, &v).await?;
        let first = wait_tasks(&api, &job, "three healthy", WAIT, |l| {
            running(l).iter().filter(|t| t["healthy"] == true).count() == 3
        })
        .await?;
        v["health_checks"][0]["interval_seconds"] = json!(2);
        v["health_checks"][0]["max_consecutive_failures"] = json!(5);
        v["backoff"] = json!({"backoff_seconds": 3.0});
        v["upgrade_strategy"]["step"] = json!(1);
        let r = api.post("/v1/jobs", &v).await?;
        assert_eq!(r.body["spec_version"], 2, "{}", r.body);
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(deployments(&api, &job).await.is_empty());
        let now = running(&tasks(&api, &job).await);
        assert_eq!(ids(&now), ids(&running(&first)));
        Ok(())
    })
    .await;
}

/// `shutdown_delay_seconds: 2`: every task a rolling update or a
/// scale-down stops is first taken out of service while it still runs
/// (`draining_since_ms`, no longer counted as an instance, so its
/// replacement starts at once) and is stopped only after the delay.
#[tokio::test(flavor = "multi_thread")]
async fn tasks_drain_for_the_shutdown_delay_before_they_are_stopped() {
    bounded(150, async {
        let c = Cluster::start(1, &[])?;
        let api = c.master(1).api();
        let mut agent = c.new_agent("a", &[]);
        agent.start()?;
        wait_connected(&api, 1, WAIT).await?;
        let job = job_id("drainfirst");
        let mut v = spec(&job, 3, "sleep 600", json!({}));
        v["shutdown_delay_seconds"] = json!(2);
        submit(&api, &v).await?;
        let first =
            wait_tasks(&api, &job, "three RUNNING", WAIT, |l| running(l).len() == 3).await?;
        let v1 = ids(&running(&first));
        v["cmd"] = json!("sleep 601");
        submit(&api, &v).await?;

        // Poll every 50 ms: each old task must be seen RUNNING while
        // draining, then ended no sooner than the delay after it drained.
        let mut seen_draining: BTreeSet<String> = BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let all = loop {
            let all = tasks(&api, &job).await;
            for t in &all {
                if v1.contains(s(&t["id"]))
                    && t["state"] == "RUNNING"
                    && t["kill_requested"] != true
                    && t["draining_since_ms"].as_u64().is_some()
                {
                    seen_draining.insert(s(&t["id"]).to_string());
                }
            }
            let old_ended = all
                .iter()
                .filter(|t| v1.contains(s(&t["id"])))
                .all(|t| t["ended_ms"].as_u64().is_some());
            let new_running = all
                .iter()
                .filter(|t| !v1.contains(s(&t["id"])) && t["state"] == "RUNNING")
                .count();
            if old_ended && new_running == 3 {
                break all;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "rollout did not end: {}",
                serde_json::to_string_pretty(&all).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(
            seen_draining, v1,
            "every old task seen draining while RUNNING"
        );
        for t in all.iter().filter(|t| v1.contains(s(&t["id"]))) {
            let drained = t["draining_since_ms"].as_u64().expect("drained first");
            let ended = t["ended_ms"].as_u64().expect("ended");
            assert!(
                ended >= drained + 1_900 && ended < drained + 15_000,
                "stopped {} ms after it drained: {t}",
                ended.saturating_sub(drained)
            );
        }

        // A scale-down drains the same way.
        let r = api
            .post(&format!("/v1/jobs/{job}/scale"), &json!({"instances": 2}))
            .await?;
        anyhow::ensure!(r.status == 200, "scale: {} {}", r.status, r.body);
        let drained = wait_tasks(&api, &job, "one draining", WAIT, |l| {
            l.iter()
                .any(|t| t["state"] == "RUNNING" && t["draining_since_ms"].as_u64().is_some())
        })
        .await?;
        let victim = drained
            .iter()
            .find(|t| t["state"] == "RUNNING" && t["draining_since_ms"].as_u64().is_some())
            .map(|t| s(&t["id"]).to_string())
            .expect("found");
        let after = wait_tasks(&api, &job, "the drained task stopped", WAIT, |l| {
            l.iter()
                .any(|t| s(&t["id"]) == victim && t["ended_ms"].as_u64().is_some())
        })
        .await?;
        let t = after
            .iter()
            .find(|t| s(&t["id"]) == victim)
            .expect("victim");
        let since = t["draining_since_ms"].as_u64().unwrap_or_default();
        assert!(
            t["ended_ms"].as_u64().unwrap_or_default() >= since + 1_900,
            "{t}"
        );
        let serving = after
            .iter()
            .filter(|t| t["state"] == "RUNNING" && t["draining_since_ms"].is_null())
            .count();
        assert_eq!(serving, 2, "two serve after the scale-down");
        Ok(())
    })
    .await;
}
