//! Frameworks against real masters: the in-process host follows the
//! leader, a standalone instance shares the lease with it, and the cron
//! framework launches one run per tick across a leader failover.

use std::time::{Duration, Instant};

use ocean_tests::cluster::Process;
use ocean_tests::tasks::bounded;
use ocean_tests::Cluster;
use serde_json::{json, Value};

const LEADER_TIMEOUT: Duration = Duration::from_secs(15);

/// The cron framework's lease as any live master reports it.
async fn lease(c: &Cluster, among: &[u64]) -> Option<Value> {
    for id in among {
        if let Ok(r) = c
            .master(*id)
            .api()
            .get("/v1/frameworks/cron/lease?consistent=true")
            .await
        {
            if r.status == 200 {
                return Some(r.body);
            }
        }
    }
    None
}

/// Waits until the lease is held, unexpired, by `holder`.
async fn wait_holder(
    c: &Cluster,
    among: &[u64],
    holder: &str,
    within: Duration,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    loop {
        if let Some(l) = lease(c, among).await {
            if l["holder"] == holder {
                return Ok(start.elapsed());
            }
        }
        if start.elapsed() > within {
            anyhow::bail!(
                "lease not held by {holder} within {within:?}: {:?}",
                lease(c, among).await
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hosted_framework_and_its_lease_follow_the_leader() {
    bounded(90, async {
        let mut c = Cluster::start(3, &["--frameworks", "cron"])?;
        let leader = c.wait_leader(&[1, 2, 3], LEADER_TIMEOUT).await?;
        wait_holder(
            &c,
            &[1, 2, 3],
            &format!("master-{leader}"),
            Duration::from_secs(10),
        )
        .await?;
        let epoch = lease(&c, &[1, 2, 3]).await.unwrap()["epoch"]
            .as_u64()
            .unwrap();

        c.master_mut(leader).kill();
        let killed = Instant::now();
        let rest: Vec<u64> = (1..=3).filter(|i| *i != leader).collect();
        let next = c.wait_leader(&rest, LEADER_TIMEOUT).await?;
        wait_holder(
            &c,
            &rest,
            &format!("master-{next}"),
            Duration::from_secs(10),
        )
        .await?;
        let moved = killed.elapsed();
        assert!(
            moved < Duration::from_secs(2),
            "the lease took {moved:?} to move to the new leader's host"
        );
        let l = lease(&c, &rest).await.unwrap();
        assert!(
            l["epoch"].as_u64().unwrap() > epoch,
            "a new holder, a new epoch: {l}"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_standalone_framework_stands_by_and_takes_over() {
    bounded(90, async {
        let mut c = Cluster::start(3, &["--frameworks", "cron"])?;
        let leader = c.wait_leader(&[1, 2, 3], LEADER_TIMEOUT).await?;
        wait_holder(&c, &[1, 2, 3], &format!("master-{leader}"), Duration::from_secs(10)).await?;
        let grpc: Vec<String> = c.masters.iter().map(|m| m.grpc.to_string()).collect();
        let mut standalone = Process::new(c.dir().join("framework.log"));
        standalone.spawn(&[
            "framework".into(),
            "run".into(),
            "cron".into(),
            "--master".into(),
            grpc.join(",").into(),
            "--holder".into(),
            "standalone".into(),
        ])?;
        // Both see the same state: a key written through one master is what
        // the hosted instance and the standalone one both read through
        // theirs; the standalone one only waits while the host holds.
        let api = c.master(leader).api();
        let spec = json!({"id": "cop.t_owt.t_pdl.t_service.s_job.tick_cluster.c", "schedule": "@yearly", "job": {"cmd": "true"}});
        let r = api
            .put_raw("/v1/frameworks/cron/kv/crons/t", serde_json::to_vec(&spec)?, "application/json")
            .await?;
        assert_eq!(r.status, 201, "{:?}", r.body);
        // The active instance records the cron job's state.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = api.get("/v1/frameworks/cron/kv/state/t").await?;
            if r.status == 200 {
                assert!(r.body["value"]["created_ms"].as_i64().unwrap() > 0, "{:?}", r.body);
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "no state recorded: {:?}", r.body);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let l = lease(&c, &[1, 2, 3]).await.unwrap();
        assert_eq!(l["holder"], format!("master-{leader}"), "the standalone one stood by: {l}");
        // Frameworks off on every master: the standalone one takes over.
        for id in 1..=3 {
            let m = c.master_mut(id);
            m.kill();
            m.args.retain(|a| a != "--frameworks" && a != "cron");
            m.args.extend(["--frameworks".to_string(), "none".to_string()]);
            m.start()?;
        }
        c.wait_leader(&[1, 2, 3], LEADER_TIMEOUT).await?;
        wait_holder(&c, &[1, 2, 3], "standalone", Duration::from_secs(15))
            .await
            .map_err(|e| anyhow::anyhow!("{e:#}\nstandalone log:\n{}", standalone.log_tail()))?;
        standalone.kill();
        Ok(())
    })
    .await;
}

/// Run job ids of the cron job, from every master's job list.
async fn runs(c: &Cluster, among: &[u64]) -> Vec<String> {
    for id in among {
        if let Ok(r) = c
            .master(*id)
            .api()
            .get("/v1/jobs?prefix=cop.t_owt.t_pdl.t")
            .await
        {
            if r.status == 200 {
                let mut ids: Vec<String> = r.body["jobs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|j| j["id"].as_str().map(str::to_string))
                    .collect();
                ids.sort();
                return ids;
            }
        }
    }
    Vec::new()
}

/// A minute-level schedule, so this test takes about two minutes: the
/// first tick, a leader kill right after it, the next tick on the new
/// leader.
#[tokio::test(flavor = "multi_thread")]
async fn cron_runs_each_tick_once_across_a_leader_failover() {
    bounded(240, async {
        let mut c = Cluster::start(3, &["--frameworks", "cron"])?;
        let leader = c.wait_leader(&[1, 2, 3], LEADER_TIMEOUT).await?;
        let spec = json!({
            "id": "cop.t_owt.t_pdl.t_service.s_job.tick_cluster.c",
            "schedule": "* * * * *",
            "job": {"cmd": "true", "resources": {"cpus": 0.1, "mem": 16}},
            "keep_runs": 10,
            "concurrency": "allow",
        });
        let r = c
            .master(leader)
            .api()
            .put_raw(
                "/v1/frameworks/cron/kv/crons/tick",
                serde_json::to_vec(&spec)?,
                "application/json",
            )
            .await?;
        assert_eq!(r.status, 201, "{:?}", r.body);
        let all = [1, 2, 3];
        let deadline = Instant::now() + Duration::from_secs(75);
        while runs(&c, &all).await.is_empty() {
            anyhow::ensure!(Instant::now() < deadline, "no run within a minute");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        c.master_mut(leader).kill();
        let rest: Vec<u64> = all.iter().copied().filter(|i| *i != leader).collect();
        c.wait_leader(&rest, LEADER_TIMEOUT).await?;
        let deadline = Instant::now() + Duration::from_secs(80);
        let two = loop {
            let r = runs(&c, &rest).await;
            if r.len() >= 2 {
                break r;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "no second run after the failover: {r:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        // Consecutive minutes: none twice (ids are per tick), none skipped.
        let minute = |id: &str| -> i64 {
            let stamp = id
                .split("tick-")
                .nth(1)
                .unwrap_or("")
                .split('_')
                .next()
                .unwrap_or("");
            let n: i64 = stamp.parse().unwrap_or(0);
            let (hh, mm) = ((n / 100) % 100, n % 100);
            hh * 60 + mm
        };
        assert_eq!(two.len(), 2, "{two:?}");
        let gap = (minute(&two[1]) - minute(&two[0])).rem_euclid(24 * 60);
        assert_eq!(gap, 1, "runs {two:?}");
        let st = c
            .master(rest[0])
            .api()
            .get("/v1/frameworks/cron/kv/state/tick")
            .await?;
        assert_eq!(st.body["value"]["skipped"], 0, "{:?}", st.body);
        Ok(())
    })
    .await;
}
