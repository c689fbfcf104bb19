//! Container launch latency: submit-to-RUNNING of one-instance container
//! jobs in `ocean dev`, side by side in the same run with a plain
//! `docker run -d` of the same image with the same limits.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use ocean_tests::cluster::{free_addr, Process};
use ocean_tests::docker::{containers, ensure_busybox, run, BUSYBOX, LABEL_TASK};
use ocean_tests::http::job_id;
use ocean_tests::tasks::wait_connected;
use ocean_tests::Api;
use serde_json::json;
use tokio::sync::mpsc;

use crate::tasks::{follow_running, running_at};
use crate::{ms, percentile};

/// Label of the plain `docker run` containers, so they can all be removed.
const BENCH_LABEL: &str = "io.ocean.bench=docker-launch";

/// `runs` rounds; each round times one Ocean container job (submit to
/// RUNNING seen on the event stream) and one `docker run -d`, each after
/// the previous round's containers are gone.
pub async fn docker_launch(runs: usize) -> anyhow::Result<()> {
    ensure_busybox()?;
    let dir = tempfile::tempdir()?;
    let (http, grpc) = (free_addr(), free_addr());
    let mut dev = Process::new(dir.path().join("dev.log"));
    dev.spawn(&[
        "dev".into(),
        "--data-dir".into(),
        dir.path().join("data").into_os_string(),
        "--http".into(),
        http.to_string().into(),
        "--grpc".into(),
        grpc.to_string().into(),
    ])?;
    let api = Api::new(&http.to_string());
    wait_connected(&api, 1, Duration::from_secs(30))
        .await
        .with_context(|| dev.log_tail())?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(follow_running(format!("http://{http}"), tx));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (mut ocean, mut docker) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    let result = async {
        for i in 0..runs {
            let id = job_id(&format!("box{i}"));
            let spec = json!({
                "id": id, "cmd": "sleep 3600", "instances": 1,
                "resources": {"cpus": 0.2, "mem": 32}, "kill_grace_period_seconds": 1,
                "container": {"docker": {"image": BUSYBOX}},
            });
            let t0 = Instant::now();
            let r = api.post("/v1/jobs", &spec).await?;
            anyhow::ensure!(r.status < 300, "submit: {}", r.body);
            let seen = running_at(&mut rx, &id, Duration::from_secs(30))
                .await
                .with_context(|| format!("job {i} never ran\n{}", dev.log_tail()))?;
            ocean.push(seen - t0);
            let task = api.get(&format!("/v1/tasks?job={id}")).await?.body["tasks"][0]["id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            api.delete(&format!("/v1/jobs/{id}")).await?;
            // Not timed: the next round starts from an engine without it.
            let deadline = Instant::now() + Duration::from_secs(60);
            while !containers(LABEL_TASK, &task).is_empty() {
                anyhow::ensure!(Instant::now() < deadline, "container of {task} not removed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }

            let t0 = Instant::now();
            let out = run(Command::new("docker").args([
                "run",
                "-d",
                "--label",
                BENCH_LABEL,
                "--memory",
                "32m",
                "--memory-swap",
                "32m",
                "--cpus",
                "0.2",
                "--pids-limit",
                "4096",
                BUSYBOX,
                "/bin/sh",
                "-c",
                "sleep 3600",
            ]))?;
            docker.push(t0.elapsed());
            run(Command::new("docker").args(["rm", "-f", out.trim()]))?;
        }
        Ok(())
    }
    .await;
    // Whatever happened, leave no container behind.
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "docker ps -aq --filter label={BENCH_LABEL} | xargs -r docker rm -f"
        ))
        .output();
    drop(dev);
    if let Ok(agent) = std::fs::read_to_string(dir.path().join("data/agent/agent-id")) {
        let ids = containers("io.ocean.agent", agent.trim());
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "-f"])
                .args(&ids)
                .output();
        }
    }
    result?;
    ocean.sort();
    docker.sort();
    let (o50, o99) = (percentile(&ocean, 0.5), percentile(&ocean, 0.99));
    let (d50, d99) = (percentile(&docker, 0.5), percentile(&docker, 0.99));
    println!("container start over {runs} runs, same image ({BUSYBOX}) and limits, interleaved:");
    println!(
        "  ocean submit-to-RUNNING: p50 {}  p99 {}",
        ms(o50),
        ms(o99)
    );
    println!(
        "  docker run -d:           p50 {}  p99 {}",
        ms(d50),
        ms(d99)
    );
    println!(
        "  ratio ocean/docker:      p50 {:.2}x  p99 {:.2}x",
        o50.as_secs_f64() / d50.as_secs_f64().max(1e-9),
        o99.as_secs_f64() / d99.as_secs_f64().max(1e-9)
    );
    Ok(())
}
