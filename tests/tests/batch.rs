//! Batch jobs end to end: a real master and agent run a `type: batch` job's
//! tasks to a successful end, keep the finished tasks visible, and start
//! nothing more; a failed task is replaced once; scaling up a finished job
//! starts only the difference.

use std::time::{Duration, Instant};

use ocean_tests::tasks::{bounded, scale, submit, tasks, wait_connected, wait_tasks};
use ocean_tests::{http::job_id, Api, Cluster};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);
/// How long a finished job is watched for relaunches.
const QUIET: Duration = Duration::from_secs(4);

fn batch(name: &str, cmd: &str, instances: u32) -> Value {
    json!({
        "id": job_id(name),
        "type": "batch",
        "cmd": cmd,
        "instances": instances,
        "resources": {"cpus": 0.05, "mem": 16},
        "kill_grace_period_seconds": 1,
    })
}

fn in_state<'a>(list: &'a [Value], state: &str) -> Vec<&'a Value> {
    list.iter().filter(|t| t["state"] == state).collect()
}

/// The ids of `list`, sorted.
fn ids(list: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = list
        .iter()
        .filter_map(|t| t["id"].as_str().map(str::to_string))
        .collect();
    v.sort();
    v
}

/// Watches `job` for [`QUIET`]: its task list must stay `expected`.
async fn stays(api: &Api, job: &str, expected: &[Value]) -> anyhow::Result<()> {
    let until = Instant::now() + QUIET;
    while Instant::now() < until {
        let now = tasks(api, job).await;
        anyhow::ensure!(
            ids(&now) == ids(expected)
                && now
                    .iter()
                    .all(|t| t["state"] == "FINISHED" || t["state"] == "FAILED"),
            "{job} changed after it was done: {}",
            serde_json::to_string_pretty(&now).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// Two tasks of `exit 0` end FINISHED and stay so, with nothing relaunched;
/// scaled to 3, one more runs; a task that fails is replaced, and once its
/// replacement finishes, the job rests.
#[tokio::test(flavor = "multi_thread")]
async fn batch_jobs_run_to_completion_once() {
    bounded(120, async {
        let c = Cluster::start(1, &[])?;
        let api = c.master(1).api();
        let mut agent = c.new_agent("a", &[]);
        agent.start()?;
        wait_connected(&api, 1, WAIT).await?;

        let job = job_id("twice");
        submit(&api, &batch("twice", "exit 0", 2)).await?;
        let list = wait_tasks(&api, &job, "2 FINISHED", WAIT, |l| {
            in_state(l, "FINISHED").len() == 2
        })
        .await?;
        assert_eq!(list.len(), 2, "{list:?}");
        for t in &list {
            assert_eq!(t["exit_code"], json!(0), "{t}");
        }
        stays(&api, &job, &list).await?;

        // Scaled up, the finished job runs one more task, not three.
        scale(&api, &job, 3).await?;
        let list = wait_tasks(&api, &job, "3 FINISHED", WAIT, |l| {
            in_state(l, "FINISHED").len() == 3
        })
        .await?;
        assert_eq!(list.len(), 3, "{list:?}");
        stays(&api, &job, &list).await?;

        // The first attempt fails (it leaves a mark), its replacement
        // finishes, and then nothing more runs.
        let mark = tempfile::tempdir()?;
        let mark = mark.path().join("tried");
        let cmd = format!(
            "test -e '{m}' && exit 0; touch '{m}'; exit 3",
            m = mark.display()
        );
        let retry = job_id("retry");
        submit(&api, &batch("retry", &cmd, 1)).await?;
        let list = wait_tasks(&api, &retry, "1 FAILED, then 1 FINISHED", WAIT, |l| {
            in_state(l, "FAILED").len() == 1 && in_state(l, "FINISHED").len() == 1
        })
        .await?;
        assert_eq!(list.len(), 2, "{list:?}");
        assert_eq!(in_state(&list, "FAILED")[0]["exit_code"], json!(3));
        stays(&api, &retry, &list).await?;
        Ok(())
    })
    .await;
}
