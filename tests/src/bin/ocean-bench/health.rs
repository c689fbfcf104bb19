//! Health-check benchmark: the time from a task's health check starting to
//! fail to its healthy replacement serving, with a 1 s interval and 3
//! failures (issue 5, measurement 3).
//!
//! Each trial runs a one-instance job of a python3 server that answers 200
//! until it is asked for `/sick`, then 500. The clock starts when the
//! server turns sick and stops when the replacement's `healthy: true` is
//! seen on the change feed and an HTTP GET to it answers 200.

use std::time::{Duration, Instant};

use anyhow::Context;
use ocean_tests::events::EventLog;
use ocean_tests::http::job_id;
use ocean_tests::tasks::{live, running, switching_http_server, wait_connected, wait_tasks};
use ocean_tests::Api;
use serde_json::json;

use crate::tasks::start_dev;
use crate::{ms, percentile};

/// Runs `trials` replacements in `ocean dev`.
pub async fn health(trials: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (dev, http, grpc) = start_dev(dir.path())?;
    let api = Api::new(&http.to_string());
    wait_connected(&api, 1, Duration::from_secs(30))
        .await
        .with_context(|| dev.log_tail())?;
    let cmd = switching_http_server(dir.path())?;
    let events = EventLog::follow(&grpc.to_string(), 0);
    let wait = Duration::from_secs(30);
    let mut times = Vec::with_capacity(trials);
    let (mut to_marked, mut to_healthy) = (Vec::new(), Vec::new());
    for i in 0..trials {
        let job = job_id(&format!("heal{i}"));
        let spec = json!({
            "id": job, "cmd": cmd, "instances": 1,
            "resources": {"cpus": 0.1, "mem": 64},
            "ports": [{"name": "http"}],
            "kill_grace_period_seconds": 1,
            "health_checks": [{"protocol": "http", "port_name": "http", "path": "/",
                "grace_period_seconds": 10, "interval_seconds": 1, "timeout_seconds": 1,
                "max_consecutive_failures": 3}],
        });
        let r = api.post("/v1/jobs", &spec).await?;
        anyhow::ensure!(r.status < 300, "submit: {}", r.body);
        let list = wait_tasks(&api, &job, "healthy", wait, |l| {
            running(l).len() == 1 && running(l)[0]["healthy"] == true
        })
        .await
        .with_context(|| dev.log_tail())?;
        let old = running(&list)[0].clone();
        let old_id = old["id"].as_str().unwrap_or_default().to_string();
        let port = old["ports"][0]["port"].as_u64().unwrap_or(0);
        // Let the checker settle into its interval, as in steady state.
        tokio::time::sleep(Duration::from_millis(1_300)).await;
        let t0 = Instant::now();
        let sick = reqwest::get(format!("http://127.0.0.1:{port}/sick")).await?;
        anyhow::ensure!(
            sick.status().as_u16() == 500,
            "the server did not turn sick"
        );
        let deadline = t0 + wait;
        let (new_id, seen) = loop {
            let found = events.tasks_put().into_iter().find(|p| {
                p.at >= t0
                    && p.object.job_id == job
                    && p.object.id != old_id
                    && p.object.healthy == Some(true)
            });
            if let Some(p) = found {
                break (p.object.id, p.at);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "trial {i}: no healthy replacement"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let new = api.get(&format!("/v1/tasks/{new_id}")).await?.body;
        let new_port = new["ports"][0]["port"].as_u64().unwrap_or(0);
        let ok = reqwest::get(format!("http://127.0.0.1:{new_port}/")).await?;
        anyhow::ensure!(ok.status().as_u16() == 200, "replacement does not serve");
        let serving = Instant::now();
        times.push(serving - t0);
        if let Some(marked) = events
            .task_puts(&old_id)
            .iter()
            .find(|p| p.object.health_failed)
        {
            to_marked.push(marked.at.saturating_duration_since(t0));
            to_healthy.push(seen.saturating_duration_since(marked.at));
        }
        // Tasks outlive `ocean dev`: wait until they are stopped, so the
        // driver leaves no process behind.
        api.delete(&format!("/v1/jobs/{job}")).await?;
        wait_tasks(&api, &job, "the job's tasks stopped", wait, |l| {
            live(l).is_empty()
        })
        .await
        .with_context(|| dev.log_tail())?;
    }
    times.sort();
    to_marked.sort();
    to_healthy.sort();
    println!(
        "health check failing -> healthy replacement serving, interval 1 s, 3 failures, {trials} trials (ocean dev): \
         p50 {}  p99 {}  min {}  max {}",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        ms(*times.first().unwrap_or(&Duration::ZERO)),
        ms(*times.last().unwrap_or(&Duration::ZERO)),
    );
    println!(
        "  of which: failing -> marked for replacement (3 failed checks) p50 {}; marked -> replacement healthy p50 {}",
        ms(percentile(&to_marked, 0.5)),
        ms(percentile(&to_healthy, 0.5)),
    );
    Ok(())
}
