//! Self-healing end to end, with real processes: restart back-off after a
//! SIGKILL, flapping and reset-backoff, and an HTTP health check that starts
//! failing (a python3 server switched to 500) replaced start-first.

use std::time::{Duration, Instant};

use ocean_client::api::Task;
use ocean_tests::events::EventLog;
use ocean_tests::tasks::{bounded, submit};
use ocean_tests::tasks::{
    live, running, switching_http_server, wait_connected, wait_job, wait_tasks,
};
use ocean_tests::{http::job_id, Cluster};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// SIGKILL of a task's process: each relaunch comes after the back-off
/// delay (1 s, then 2 s, then 4 s with factor 2), timed from the task's end
/// to its replacement's placement; reset-backoff then relaunches at once.
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_of_a_task_gives_relaunches_after_the_backoff_delays() {
    bounded(150, async {
        let c = Cluster::start(1, &[])?;
        let api = c.master(1).api();
        let mut agent = c.new_agent("a", &[]);
        agent.start()?;
        wait_connected(&api, 1, WAIT).await?;
        let job = job_id("backoff");
        submit(
            &api,
            &json!({
                "id": job,
                "cmd": "sleep 600",
                "resources": {"cpus": 0.05, "mem": 16},
                "kill_grace_period_seconds": 1,
                "backoff": {"backoff_seconds": 1.0, "backoff_factor": 2.0,
                            "max_launch_delay_seconds": 60.0, "reset_after_seconds": 600},
                "flapping": {"max_failures": 10, "window_seconds": 600},
            }),
        )
        .await?;
        let mut gaps = Vec::new();
        for round in 0..4 {
            let list = wait_tasks(&api, &job, "one RUNNING", WAIT, |l| {
                running(l).len() == 1 && running(l)[0]["pid"].is_i64()
            })
            .await?;
            let task = running(&list)[0].clone();
            let id = task["id"].as_str().unwrap_or_default().to_string();
            let pid = task["pid"].as_i64().unwrap_or(0) as i32;
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            )?;
            if round == 3 {
                // The fourth delay would be 8 s: reset-backoff cuts it.
                wait_job(&api, &job, "4 failures counted", WAIT, |j| {
                    j["backoff"]["failures"] == 4
                })
                .await?;
                let reset = Instant::now();
                let r = api
                    .post(&format!("/v1/jobs/{job}/reset-backoff"), &json!({}))
                    .await?;
                assert_eq!(r.status, 200, "{}", r.body);
                wait_tasks(&api, &job, "relaunched after reset", WAIT, |l| {
                    live(l).iter().any(|t| t["id"] != id.as_str())
                })
                .await?;
                let took = reset.elapsed();
                assert!(
                    took < Duration::from_secs(4),
                    "relaunch after reset took {took:?}"
                );
                let j = api.get(&format!("/v1/jobs/{job}")).await?.body;
                assert!(j["backoff"].is_null(), "{j}");
                break;
            }
            let list = wait_tasks(&api, &job, "the killed task replaced", WAIT, |l| {
                l.iter()
                    .any(|t| t["id"] == id.as_str() && t["state"] == "FAILED")
                    && live(l).iter().any(|t| t["id"] != id.as_str())
            })
            .await?;
            let old = list.iter().find(|t| t["id"] == id.as_str()).cloned();
            let new = live(&list).into_iter().find(|t| t["id"] != id.as_str());
            let (Some(old), Some(new)) = (old, new) else {
                anyhow::bail!("tasks vanished: {list:?}");
            };
            assert_eq!(old["signal"], 9, "{old}");
            let gap = u(&new["created_ms"]).saturating_sub(u(&old["ended_ms"]));
            gaps.push(gap);
        }
        eprintln!("relaunch gaps after SIGKILL: {gaps:?} ms");
        // Expected 1 s, 2 s, 4 s: never earlier, and late by at most what a
        // loaded machine adds (a report and a round).
        for (gap, want) in gaps.iter().zip([1_000u64, 2_000, 4_000]) {
            assert!(
                *gap >= want && *gap <= want + 1_500,
                "relaunch gaps {gaps:?} ms, expected about 1000, 2000, 4000"
            );
        }
        Ok(())
    })
    .await;
}

/// The back-off survives a leader change: the delay is in the replicated
/// job state, so the new leader does not relaunch before it has passed.
#[tokio::test(flavor = "multi_thread")]
async fn the_backoff_delay_survives_a_leader_change() {
    bounded(120, async {
        let mut c = Cluster::start(3, &[])?;
        let leader = c.wait_leader(&[1, 2, 3], WAIT).await?;
        let api = c.master(leader).api();
        let mut agent = c.new_agent("a", &[]);
        agent.start()?;
        wait_connected(&api, 1, WAIT).await?;
        let job = job_id("failover-backoff");
        submit(
            &api,
            &json!({
                "id": job,
                "cmd": "sleep 600",
                "resources": {"cpus": 0.05, "mem": 16},
                "backoff": {"backoff_seconds": 5.0},
            }),
        )
        .await?;
        let list = wait_tasks(&api, &job, "one RUNNING", WAIT, |l| {
            running(l).len() == 1 && running(l)[0]["pid"].is_i64()
        })
        .await?;
        let old_id = running(&list)[0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let pid = running(&list)[0]["pid"].as_i64().unwrap_or(0) as i32;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )?;
        wait_job(&api, &job, "the failure counted", WAIT, |j| {
            j["backoff"]["failures"] == 1
        })
        .await?;
        c.master_mut(leader).kill();
        let others: Vec<u64> = [1, 2, 3].into_iter().filter(|i| *i != leader).collect();
        let new_leader = c.wait_leader(&others, WAIT).await?;
        let api = c.master(new_leader).api();
        let list = wait_tasks(&api, &job, "relaunched by the new leader", WAIT, |l| {
            live(l).iter().any(|t| t["id"] != old_id.as_str())
        })
        .await?;
        let old = list
            .iter()
            .find(|t| t["id"] == old_id.as_str())
            .cloned()
            .unwrap_or_default();
        let new = live(&list)
            .into_iter()
            .find(|t| t["id"] != old_id.as_str())
            .unwrap_or_default();
        let gap = u(&new["created_ms"]).saturating_sub(u(&old["ended_ms"]));
        eprintln!("relaunch {gap} ms after the failure, across a leader change");
        assert!(
            gap >= 5_000,
            "relaunched {gap} ms after the failure, before the 5 s back-off"
        );
        Ok(())
    })
    .await;
}

/// A task that keeps failing marks its job flapping after
/// `flapping.max_failures` failures: an event says so, relaunching stops,
/// and reset-backoff starts it again.
#[tokio::test(flavor = "multi_thread")]
async fn a_flapping_job_stops_relaunching_until_reset() {
    bounded(120, async {
        let c = Cluster::start(1, &[])?;
        let api = c.master(1).api();
        let events = EventLog::follow(&c.master(1).grpc.to_string(), 0);
        let mut agent = c.new_agent("a", &[]);
        agent.start()?;
        wait_connected(&api, 1, WAIT).await?;
        let job = job_id("flapping");
        submit(
            &api,
            &json!({
                "id": job,
                "cmd": "sleep 0.2; exit 3",
                "resources": {"cpus": 0.05, "mem": 16},
                "backoff": {"backoff_seconds": 0.2, "backoff_factor": 1.0},
                "flapping": {"max_failures": 3, "window_seconds": 600},
            }),
        )
        .await?;
        let j = wait_job(&api, &job, "flapping", WAIT, |j| j["flapping"] == true).await?;
        let msg = j["backoff"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains("3 failures within 600 s"), "{j}");
        assert!(msg.contains("exit code 3"), "{j}");
        // Relaunching has stopped, and says why.
        let j = wait_job(&api, &job, "waiting says flapping", WAIT, |j| {
            j["waiting"]
                .as_str()
                .is_some_and(|w| w.contains("flapping"))
        })
        .await?;
        let failed_before = j["tasks"]["FAILED"].as_u64().unwrap_or(0);
        assert_eq!(failed_before, 3, "{j}");
        tokio::time::sleep(Duration::from_secs(2)).await;
        let list = ocean_tests::tasks::tasks(&api, &job).await;
        assert_eq!(live(&list).len(), 0, "relaunched while flapping: {list:?}");
        assert_eq!(list.len(), 3, "{list:?}");
        // The change feed carried it.
        let flagged = events
            .jobs_put()
            .iter()
            .any(|p| p.object.id == job && p.object.backoff.as_ref().is_some_and(|b| b.flapping));
        assert!(flagged, "no job_put event with flapping");
        // The CLI's command clears it.
        let out = std::process::Command::new(ocean_tests::ocean_bin())
            .args(["job", "reset-backoff", &job])
            .env("OCEAN_ADDR", c.master(1).http.to_string())
            .output()?;
        assert!(
            out.status.success(),
            "ocean job reset-backoff: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        wait_tasks(&api, &job, "relaunched after reset", WAIT, |l| l.len() > 3).await?;
        // It fails again, so it soon flaps again: stop it.
        api.delete(&format!("/v1/jobs/{job}")).await?;
        Ok(())
    })
    .await;
}

/// An HTTP health check that starts failing: after 3 failures the task is
/// marked for replacement, a new task starts, and the old one is asked to
/// stop only after the new one is RUNNING and healthy (checked on the order
/// of the change feed's events).
#[tokio::test(flavor = "multi_thread")]
async fn an_unhealthy_task_is_replaced_and_killed_only_after_its_replacement_is_healthy() {
    bounded(120, async {
        let c = Cluster::start(1, &[])?;
        let api = c.master(1).api();
        let events = EventLog::follow(&c.master(1).grpc.to_string(), 0);
        let mut agent = c.new_agent("a", &[]);
        agent.start()?;
        wait_connected(&api, 1, WAIT).await?;
        let job = job_id("unhealthy");
        let cmd = switching_http_server(c.dir())?;
        submit(
            &api,
            &json!({
                "id": job,
                "cmd": cmd,
                "resources": {"cpus": 0.1, "mem": 64},
                "ports": [{"name": "http"}],
                "kill_grace_period_seconds": 1,
                "health_checks": [{"protocol": "http", "port_name": "http", "path": "/health",
                    "grace_period_seconds": 10, "interval_seconds": 1, "timeout_seconds": 1,
                    "max_consecutive_failures": 3}],
            }),
        )
        .await?;
        let list = wait_tasks(&api, &job, "healthy", WAIT, |l| {
            running(l).len() == 1 && running(l)[0]["healthy"] == true
        })
        .await?;
        let old = running(&list)[0].clone();
        let old_id = old["id"].as_str().unwrap_or_default().to_string();
        let port = old["ports"][0]["port"].as_u64().unwrap_or(0);
        // The CLI shows the health.
        let out = std::process::Command::new(ocean_tests::ocean_bin())
            .args(["task", "list", "--job", &job])
            .env("OCEAN_ADDR", c.master(1).http.to_string())
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("HEALTH") && text.contains("healthy"),
            "{text}"
        );

        let sick = reqwest::get(format!("http://127.0.0.1:{port}/sick")).await?;
        assert_eq!(sick.status().as_u16(), 500);
        let list = wait_tasks(&api, &job, "old task killed", WAIT, |l| {
            l.iter()
                .any(|t| t["id"] == old_id.as_str() && t["state"] == "KILLED")
        })
        .await?;
        let old_end = list
            .iter()
            .find(|t| t["id"] == old_id.as_str())
            .cloned()
            .unwrap_or_default();
        assert_eq!(old_end["health_failed"], true, "{old_end}");
        assert_eq!(old_end["healthy"], false, "{old_end}");
        let msg = old_end["health_message"].as_str().unwrap_or_default();
        assert!(msg.contains("status 500"), "{old_end}");
        let new = running(&list)
            .into_iter()
            .find(|t| t["id"] != old_id.as_str())
            .ok_or_else(|| anyhow::anyhow!("no replacement running: {list:?}"))?;
        assert_eq!(new["healthy"], true, "{new}");
        let new_id = new["id"].as_str().unwrap_or_default().to_string();
        let new_port = new["ports"][0]["port"].as_u64().unwrap_or(0);
        let ok = reqwest::get(format!("http://127.0.0.1:{new_port}/health")).await?;
        assert_eq!(ok.status().as_u16(), 200);

        // The API answers from the state, the log from a watch that may
        // trail it: wait until the log holds the old task's end.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !events
            .task_puts(&old_id)
            .iter()
            .any(|p| p.object.state == "KILLED")
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Order in the feed: unhealthy, replacement marked, replacement
        // healthy, and only then the old one's kill requested.
        let version_of = |task: &str, what: &dyn Fn(&Task) -> bool| {
            events
                .task_puts(task)
                .iter()
                .find(|p| what(&p.object))
                .map(|p| p.version)
        };
        let unhealthy = version_of(&old_id, &|t| t.healthy == Some(false));
        let doomed = version_of(&old_id, &|t| t.health_failed);
        let placed = version_of(&new_id, &|_| true);
        let healthy = version_of(&new_id, &|t| t.healthy == Some(true));
        let kill = version_of(&old_id, &|t| t.kill_requested);
        let order = [unhealthy, doomed, placed, healthy, kill];
        assert!(
            order.iter().all(Option::is_some) && order.windows(2).all(|w| w[0] <= w[1]),
            "unhealthy, marked, placed, healthy, kill: {order:?}"
        );
        assert!(healthy < kill, "{order:?}");
        // The old task kept running until then: nothing below one instance.
        let killed_at = events
            .task_puts(&old_id)
            .iter()
            .find(|p| p.object.state == "KILLED")
            .map(|p| p.at);
        assert!(killed_at.is_some());
        api.delete(&format!("/v1/jobs/{job}")).await?;
        Ok(())
    })
    .await;
}

/// A replacement that cannot start keeps the unhealthy task: with
/// `hostname UNIQUE` and one agent there is nowhere to put it, so the
/// unhealthy task runs on (and the job says why it waits) until a second
/// agent arrives; then the replacement starts there, and only once it is
/// healthy is the old one stopped.
#[tokio::test(flavor = "multi_thread")]
async fn an_unhealthy_task_stays_while_its_replacement_cannot_start() {
    bounded(120, async {
        let c = Cluster::start(1, &[])?;
        let api = c.master(1).api();
        // Two agents on one machine: `new_agent` gives each its own block of
        // host ports, so the replacement never gets the port the old task
        // still holds.
        let mut first = c.new_agent("a", &["--hostname", "host-a"]);
        first.start()?;
        wait_connected(&api, 1, WAIT).await?;
        let job = job_id("stuck");
        let cmd = switching_http_server(c.dir())?;
        submit(
            &api,
            &json!({
                "id": job,
                "cmd": cmd,
                "resources": {"cpus": 0.1, "mem": 64},
                "ports": [{"name": "http"}],
                "constraints": [["hostname", "UNIQUE"]],
                "kill_grace_period_seconds": 1,
                "health_checks": [{"protocol": "http", "port_name": "http",
                    "grace_period_seconds": 10, "interval_seconds": 1, "timeout_seconds": 1,
                    "max_consecutive_failures": 2}],
            }),
        )
        .await?;
        let list = wait_tasks(&api, &job, "healthy", WAIT, |l| {
            running(l).len() == 1 && running(l)[0]["healthy"] == true
        })
        .await?;
        let old_id = running(&list)[0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let port = running(&list)[0]["ports"][0]["port"].as_u64().unwrap_or(0);
        reqwest::get(format!("http://127.0.0.1:{port}/sick")).await?;
        wait_job(&api, &job, "the replacement waits", WAIT, |j| {
            j["waiting"].as_str().is_some_and(|w| w.contains("UNIQUE"))
        })
        .await?;
        // Several rounds later the unhealthy task still runs, alone.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let list = ocean_tests::tasks::tasks(&api, &job).await;
        let old = list
            .iter()
            .find(|t| t["id"] == old_id.as_str())
            .cloned()
            .unwrap_or_default();
        assert_eq!(old["state"], "RUNNING", "{list:?}");
        assert_eq!(old["kill_requested"], false, "{list:?}");
        assert_eq!(old["health_failed"], true, "{list:?}");
        assert_eq!(live(&list).len(), 1, "{list:?}");

        let mut second = c.new_agent("b", &["--hostname", "host-b"]);
        second.start()?;
        let list = wait_tasks(&api, &job, "replaced on the second agent", WAIT, |l| {
            l.iter()
                .any(|t| t["id"] == old_id.as_str() && t["state"] == "KILLED")
        })
        .await?;
        let new = running(&list)
            .into_iter()
            .find(|t| t["id"] != old_id.as_str())
            .ok_or_else(|| anyhow::anyhow!("no replacement: {list:?}"))?;
        assert_eq!(
            (new["host"].as_str(), new["healthy"].as_bool()),
            (Some("host-b"), Some(true))
        );
        api.delete(&format!("/v1/jobs/{job}")).await?;
        Ok(())
    })
    .await;
}
