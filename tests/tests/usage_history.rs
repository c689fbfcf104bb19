//! The utilisation report's history is replicated: usage recorded while
//! one master leads is still in the report the next leader builds after
//! the first is SIGKILLed, and windows longer than a day are accepted.

use std::time::{Duration, Instant};

use anyhow::bail;
use ocean_tests::http::{job_id, job_spec, Api};
use ocean_tests::tasks::{bounded, running, submit, wait_connected, wait_tasks};
use ocean_tests::Cluster;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);
const PDL: &str = "cop.test_owt.qa_pdl.ocean";

/// The product line's row of a 10-minute report, and the seconds of
/// history it covers.
async fn history(api: &Api) -> anyhow::Result<(Value, u64)> {
    let r = api
        .get(&format!("/v1/usage/report?node={PDL}&window=10m"))
        .await?;
    anyhow::ensure!(r.status == 200, "report: {} {}", r.status, r.body);
    let seen = r.body["total"]["concurrent_peak_seconds"]
        .as_u64()
        .unwrap_or(0);
    Ok((r.body, seen))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_report_keeps_the_minutes_recorded_before_a_leader_failover() {
    bounded(330, async {
        let mut c = Cluster::start(3, &[])?;
        let leader = c.wait_leader(&[1, 2, 3], WAIT).await?;
        let api = c.master(leader).api();
        let mut agent = c.new_agent("a", &["--usage-interval", "1s"]);
        agent.start()?;
        wait_connected(&api, 1, WAIT).await?;
        let job = job_id("history");
        submit(&api, &job_spec("history")).await?;
        wait_tasks(&api, &job, "one RUNNING", WAIT, |l| running(l).len() == 1).await?;

        // 150 s of 5 s totals: at least two minute boundaries passed, so
        // at least the minute before the second (60 s) is recorded through
        // raft (5 s after its end, at the next 5 s tick).
        let deadline = Instant::now() + Duration::from_secs(200);
        let before = loop {
            let (_, seen) = history(&api).await?;
            if seen >= 150 {
                break seen;
            }
            if Instant::now() > deadline {
                bail!("the leader saw only {seen} s of the product line");
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        };

        c.master_mut(leader).kill();
        let killed = Instant::now();
        let others: Vec<u64> = [1, 2, 3].into_iter().filter(|i| *i != leader).collect();
        let new_leader = c.wait_leader(&others, WAIT).await?;
        let api = c.master(new_leader).api();
        let (report, after) = history(&api).await?;
        let since_kill = killed.elapsed().as_secs();
        assert_eq!(report["leader"], new_leader, "{report}");
        // The new leader has seen at most the seconds since the kill; a
        // minute or more can only come from the replicated history.
        assert!(
            after >= 60 && after >= since_kill + 30,
            "the new leader's report covers {after} s ({since_kill} s after the kill; \
             the old leader's covered {before} s): {report}"
        );
        assert!(after <= before + since_kill + 5, "{report}");

        // Windows of days are accepted; past 400 days, a field error.
        let month = api
            .get(&format!("/v1/usage/report?node={PDL}&window=30d"))
            .await?;
        assert_eq!(month.status, 200, "{}", month.body);
        assert_eq!(month.body["window_seconds"], 30 * 86_400);
        assert!(
            month.body["total"]["concurrent_peak_seconds"]
                .as_u64()
                .unwrap_or(0)
                >= 60,
            "{}",
            month.body
        );
        let too_long = api
            .get(&format!("/v1/usage/report?node={PDL}&window=401d"))
            .await?;
        assert_eq!(too_long.status, 400, "{}", too_long.body);
        assert!(
            too_long.body["error"]
                .as_str()
                .unwrap_or("")
                .starts_with("window:"),
            "{}",
            too_long.body
        );
        Ok(())
    })
    .await;
}
