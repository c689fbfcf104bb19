//! Container jobs through the real Docker engine, end to end: masters and
//! agents as real processes, containers from the busybox image built from
//! local files (`deploy/images/busybox`). Every test removes the containers
//! its agents started (by their agent label) when it ends.

use std::time::{Duration, Instant};

use ocean_tests::docker::{
    containers, ensure_busybox, ensure_image, inspect, Compose, ContainerReaper, BUSYBOX,
    LABEL_TASK,
};
use ocean_tests::tasks::{bounded, scale, submit};
use ocean_tests::tasks::{running, wait_job, wait_tasks};
use ocean_tests::{http::job_id, AgentProc, Api, Cluster};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

/// A container job running `cmd` in the busybox image.
fn container_spec(name: &str, cmd: &str, mem: u64) -> Value {
    json!({
        "id": job_id(name),
        "cmd": cmd,
        "instances": 1,
        "resources": {"cpus": 0.2, "mem": mem},
        "kill_grace_period_seconds": 1,
        "container": {"docker": {"image": BUSYBOX}},
        "labels": {"test": name},
    })
}

/// One master and one agent; fields drop in order, so the agent (and the
/// master that would relaunch tasks) are gone before the reaper removes
/// the agent's containers.
struct Setup {
    agent: AgentProc,
    _cluster: Cluster,
    _reaper: ContainerReaper,
    api: Api,
}

/// One master and one agent with `extra` flags.
async fn cluster_with_agent(extra: &[&str]) -> anyhow::Result<Setup> {
    ensure_busybox()?;
    let c = Cluster::start(1, &[])?;
    let api = c.master(1).api();
    let mut agent = c.new_agent("a", extra);
    agent.start()?;
    ocean_tests::tasks::wait_connected(&api, 1, WAIT).await?;
    let mut reaper = ContainerReaper::default();
    reaper.watch(&agent.id().unwrap_or_default());
    Ok(Setup {
        agent,
        _cluster: c,
        _reaper: reaper,
        api,
    })
}

/// The one running task of `job` and its container's id.
async fn running_container(api: &Api, job: &str) -> anyhow::Result<(String, String)> {
    let list = wait_tasks(api, job, "RUNNING", WAIT, |l| running(l).len() == 1).await?;
    let task = running(&list)[0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let ids = containers(LABEL_TASK, &task);
    anyhow::ensure!(
        ids.len() == 1,
        "task {task} should have one container, has {ids:?}"
    );
    Ok((task, ids[0].clone()))
}

async fn wait_until(what: &str, mut check: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + WAIT;
    while !check() {
        anyhow::ensure!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// A container with a memory limit runs with Docker's limits set from the
/// job's resources, and a container allocating past its limit is reported
/// FAILED with reason oom_killed.
#[tokio::test(flavor = "multi_thread")]
async fn memory_limited_container_runs_and_is_oom_killed_past_its_limit() {
    bounded(120, async {
        let s = cluster_with_agent(&[]).await?;
        let api = &s.api;
        submit(api, &container_spec("calm", "sleep 600", 32)).await?;
        let (_, container) = running_container(api, &job_id("calm")).await?;
        let c = inspect(&container).ok_or_else(|| anyhow::anyhow!("no container"))?;
        assert_eq!(c["HostConfig"]["Memory"], json!(32u64 << 20));
        assert_eq!(c["HostConfig"]["MemorySwap"], json!(32u64 << 20));
        assert_eq!(c["HostConfig"]["NanoCpus"], json!(200_000_000u64));
        assert_eq!(c["HostConfig"]["PidsLimit"], json!(4096));
        assert_eq!(c["Config"]["Labels"]["test"], json!("calm"));
        assert_eq!(c["State"]["Running"], json!(true));

        // `tail` keeps a line that never ends in memory: /dev/zero has no newline.
        submit(api, &container_spec("hungry", "tail /dev/zero", 32)).await?;
        let list = wait_tasks(api, &job_id("hungry"), "an OOM kill", WAIT, |l| {
            l.iter().any(|t| t["reason"] == "oom_killed")
        })
        .await?;
        let oom = list
            .iter()
            .find(|t| t["reason"] == "oom_killed")
            .cloned()
            .unwrap_or_default();
        assert_eq!(oom["state"], "FAILED");
        assert_eq!(oom["exit_code"], 137);
        Ok(())
    })
    .await;
}

/// A bridged container port is published on the host port the leader
/// chose, and the container's output is readable through the master's log
/// API while it runs and after it ended.
#[tokio::test(flavor = "multi_thread")]
async fn bridged_port_is_reachable_and_logs_are_readable_through_the_api() {
    bounded(120, async {
        let s = cluster_with_agent(&[]).await?;
        let api = &s.api;
        let mut spec = container_spec(
            "web",
            "mkdir -p /www && echo hello-from-a-container > /www/index.html && echo serving $PORT_HTTP && echo to-stderr >&2 && exec httpd -f -p 8080 -h /www",
            32,
        );
        spec["ports"] = json!([{"name": "http"}]);
        spec["container"]["docker"]["port_mappings"] =
            json!([{"container_port": 8080, "port_name": "http"}]);
        submit(api, &spec).await?;
        let job = job_id("web");
        let (task, _) = running_container(api, &job).await?;
        let list = ocean_tests::tasks::tasks(api, &job).await;
        let port = list[0]["ports"][0]["port"].as_u64().unwrap_or_default();
        assert!(port > 0, "a host port was chosen: {list:?}");

        let client = reqwest::Client::new();
        let deadline = Instant::now() + WAIT;
        let body = loop {
            let r = client
                .get(format!("http://127.0.0.1:{port}/index.html"))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if let Ok(r) = r {
                if r.status().is_success() {
                    break r.text().await?;
                }
            }
            anyhow::ensure!(Instant::now() < deadline, "port {port} never answered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(body.trim(), "hello-from-a-container");

        let out = api.get_text(&format!("/v1/tasks/{task}/logs")).await?;
        assert_eq!(out.trim(), format!("serving {port}"), "PORT_HTTP is the host port");
        let err = api.get_text(&format!("/v1/tasks/{task}/logs?stream=stderr")).await?;
        assert_eq!(err.trim(), "to-stderr");

        // Stopped: the container is gone, its output is still served.
        scale(api, &job, 0).await?;
        wait_until("container removed", || containers(LABEL_TASK, &task).is_empty()).await?;
        let out = api.get_text(&format!("/v1/tasks/{task}/logs?tail=1")).await?;
        assert_eq!(out.trim(), format!("serving {port}"));
        Ok(())
    })
    .await;
}

/// SIGKILL of the agent leaves the container running; the restarted agent
/// re-adopts it (same container, never restarted) and still controls it.
#[tokio::test(flavor = "multi_thread")]
async fn agent_sigkill_and_restart_readopt_the_container_without_restarting_it() {
    bounded(120, async {
        let mut s = cluster_with_agent(&[]).await?;
        let api = &s.api.clone();
        submit(api, &container_spec("durable", "sleep 600", 32)).await?;
        let job = job_id("durable");
        let (task, container) = running_container(api, &job).await?;
        let before = inspect(&container).unwrap_or_default();

        s.agent.kill();
        tokio::time::sleep(Duration::from_millis(500)).await;
        s.agent.start()?;
        wait_tasks(api, &job, "re-adopted", WAIT, |l| {
            l.iter()
                .any(|t| t["id"] == task.as_str() && t["state"] == "RUNNING")
        })
        .await?;
        let deadline = Instant::now() + WAIT;
        loop {
            let agents = api.get("/v1/agents").await?.body;
            if agents["agents"][0]["connected"] == json!(true) {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "agent did not reconnect");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Give the full report time to settle, then look again.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let list = ocean_tests::tasks::tasks(api, &job).await;
        assert_eq!(running(&list).len(), 1, "no second task: {list:?}");
        assert_eq!(running(&list)[0]["id"], json!(task));
        assert_eq!(containers(LABEL_TASK, &task), vec![container.clone()]);
        let after = inspect(&container).unwrap_or_default();
        assert_eq!(
            after["State"]["StartedAt"], before["State"]["StartedAt"],
            "not restarted"
        );
        assert_eq!(after["State"]["Pid"], before["State"]["Pid"]);
        assert_eq!(after["RestartCount"], json!(0));

        // The new agent still controls it: stopping the job removes it.
        api.delete(&format!("/v1/jobs/{job}")).await?;
        wait_until("container removed", || {
            containers(LABEL_TASK, &task).is_empty()
        })
        .await?;
        Ok(())
    })
    .await;
}

/// Stopping a job (scale to 0, then delete) kills its container with the
/// grace period and removes it: no container is left behind.
#[tokio::test(flavor = "multi_thread")]
async fn stopping_the_job_removes_the_container() {
    bounded(120, async {
        let s = cluster_with_agent(&[]).await?;
        let api = &s.api;
        // A shell as pid 1 ignores SIGTERM: the kill needs the SIGKILL.
        submit(api, &container_spec("stubborn", "sleep 600 & wait", 32)).await?;
        let job = job_id("stubborn");
        let (task, container) = running_container(api, &job).await?;
        scale(api, &job, 0).await?;
        let list = wait_tasks(api, &job, "KILLED", WAIT, |l| {
            l.iter()
                .any(|t| t["id"] == task.as_str() && t["state"] == "KILLED")
        })
        .await?;
        let t = list
            .iter()
            .find(|t| t["id"] == task.as_str())
            .cloned()
            .unwrap_or_default();
        assert_eq!(t["reason"], "killed");
        assert!(
            inspect(&container).is_none(),
            "container {container} was removed"
        );
        assert!(containers(LABEL_TASK, &task).is_empty());
        Ok(())
    })
    .await;
}

/// An agent whose engine cannot be reached reports its Docker executor as
/// unavailable, runs native tasks as ever, and container jobs wait with a
/// reason that says so.
#[tokio::test(flavor = "multi_thread")]
async fn without_docker_container_jobs_wait_and_say_why() {
    bounded(90, async {
        let s = cluster_with_agent(&["--docker-socket", "/nonexistent/docker.sock"]).await?;
        let api = &s.api;
        let agents = api.get("/v1/agents").await?.body;
        let docker = agents["agents"][0]["executors"]
            .as_array()
            .and_then(|e| e.iter().find(|e| e["name"] == "docker").cloned())
            .unwrap_or_default();
        assert_eq!(docker["available"], json!(false));
        assert!(
            docker["reason"]
                .as_str()
                .unwrap_or_default()
                .contains("/nonexistent/docker.sock"),
            "{docker}"
        );

        submit(api, &container_spec("boxed", "sleep 600", 32)).await?;
        let job = wait_job(api, &job_id("boxed"), "waiting reason", WAIT, |j| {
            j["waiting"]
                .as_str()
                .is_some_and(|w| w.contains("docker unavailable"))
        })
        .await?;
        assert_eq!(
            job["waiting"],
            json!("1 task(s) waiting: 0 of 1 agents fit: 1 docker unavailable")
        );
        let mut native = container_spec("plain", "sleep 600", 16);
        native.as_object_mut().map(|o| o.remove("container"));
        submit(api, &native).await?;
        wait_tasks(api, &job_id("plain"), "RUNNING", WAIT, |l| {
            running(l).len() == 1
        })
        .await?;
        Ok(())
    })
    .await;
}

/// `deploy/compose`: three masters and two agents in containers on a
/// private network, built from the `ocean` binary under test. The masters
/// elect a leader and a job spreads over both containerised agents. The
/// project's containers, network and the agents' cgroups are removed at
/// the end; the `ocean/ocean:test` image stays cached (rebuilt when the
/// binary changes).
#[tokio::test(flavor = "multi_thread")]
async fn compose_cluster_elects_a_leader_and_runs_a_job_across_its_agents() {
    bounded(300, async {
        let bin_dir = ocean_tests::ocean_bin()
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        ensure_image("ocean", "ocean/ocean:test", &[("BIN_DIR", &bin_dir)])?;
        let ports: Vec<u16> = (0..3)
            .map(|_| ocean_tests::cluster::free_addr().port())
            .collect();
        let mut env = vec![("OCEAN_IMAGE", "ocean/ocean:test".to_string())];
        for (i, p) in ports.iter().enumerate() {
            env.push((
                ["OCEAN_HTTP1", "OCEAN_HTTP2", "OCEAN_HTTP3"][i],
                p.to_string(),
            ));
        }
        let mut compose = Compose::up(&format!("oceantest{}", std::process::id()), &env)?;
        let apis: Vec<Api> = ports
            .iter()
            .map(|p| Api::new(&format!("127.0.0.1:{p}")))
            .collect();

        let deadline = Instant::now() + Duration::from_secs(60);
        let leader = loop {
            let mut seen = Vec::new();
            for api in &apis {
                let l = api
                    .get("/v1/status")
                    .await
                    .map(|r| r.body["leader"].as_u64().unwrap_or(0));
                seen.push(l.unwrap_or(0));
            }
            if seen[0] != 0 && seen.iter().all(|l| *l == seen[0]) {
                break seen[0];
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "no leader (saw {seen:?}):\n{}",
                compose.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert!((1..=3).contains(&leader));
        // Only the leader knows which agents are connected.
        let api = &apis[usize::try_from(leader - 1)?];
        ocean_tests::tasks::wait_connected(api, 2, Duration::from_secs(60))
            .await
            .map_err(|e| anyhow::anyhow!("{e:#}\n{}", compose.logs()))?;
        let agents = api.get("/v1/agents").await?.body;
        compose.agents = agents["agents"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["id"].as_str().map(str::to_string))
            .collect();

        let job = job_id("spread");
        let spec = json!({
            "id": job,
            "cmd": "echo running on $HOST; sleep 600",
            "instances": 2,
            "resources": {"cpus": 0.1, "mem": 32},
            "constraints": [["hostname", "UNIQUE"]],
            "kill_grace_period_seconds": 1,
        });
        // Through a follower: any master takes writes.
        submit(&apis[usize::try_from(leader % 3)?], &spec).await?;
        let list = wait_tasks(api, &job, "2 RUNNING", Duration::from_secs(60), |l| {
            running(l).len() == 2
        })
        .await?;
        let mut hosts: Vec<String> = running(&list)
            .iter()
            .map(|t| t["host"].as_str().unwrap_or_default().to_string())
            .collect();
        hosts.sort();
        assert_eq!(hosts, ["a1", "a2"]);
        for t in running(&list) {
            let id = t["id"].as_str().unwrap_or_default();
            let deadline = Instant::now() + WAIT;
            loop {
                let out = apis[2].get_text(&format!("/v1/tasks/{id}/logs")).await?;
                if out.trim() == format!("running on {}", t["host"].as_str().unwrap_or_default()) {
                    break;
                }
                anyhow::ensure!(Instant::now() < deadline, "logs of {id}: {out:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        // Stop the job so the agents remove their task cgroups themselves.
        api.delete(&format!("/v1/jobs/{job}")).await?;
        wait_tasks(api, &job, "stopped", WAIT, |l| {
            ocean_tests::tasks::live(l).is_empty()
        })
        .await?;
        Ok(())
    })
    .await;
}

/// Volumes mount only host paths under the agent's `--docker-volume-root`;
/// others are refused with a reason naming the field. Privileged jobs wait
/// for an agent that allows them.
#[tokio::test(flavor = "multi_thread")]
async fn volumes_only_under_allowed_roots_and_privileged_only_where_allowed() {
    bounded(120, async {
        let root = tempfile::tempdir()?;
        let shared = root.path().join("shared");
        std::fs::create_dir_all(&shared)?;
        let root_flag = root.path().display().to_string();
        let s = cluster_with_agent(&["--docker-volume-root", &root_flag]).await?;
        let api = &s.api;

        let mut spec = container_spec("writer", "echo written-inside > /data/out; sleep 600", 32);
        spec["container"]["docker"]["volumes"] =
            json!([{"host_path": shared.display().to_string(), "container_path": "/data"}]);
        submit(api, &spec).await?;
        running_container(api, &job_id("writer")).await?;
        let out = shared.join("out");
        wait_until("the file written in the container", || {
            std::fs::read_to_string(&out).is_ok_and(|s| s.trim() == "written-inside")
        })
        .await?;

        let mut spec = container_spec("snoop", "cat /data/shadow", 32);
        spec["container"]["docker"]["volumes"] =
            json!([{"host_path": "/etc", "container_path": "/data", "read_only": true}]);
        submit(api, &spec).await?;
        let list = wait_tasks(api, &job_id("snoop"), "refused", WAIT, |l| {
            l.iter().any(|t| t["state"] == "FAILED")
        })
        .await?;
        let t = list
            .iter()
            .find(|t| t["state"] == "FAILED")
            .cloned()
            .unwrap_or_default();
        assert_eq!(t["reason"], "launch_failed");
        let message = t["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with(
                "container.docker.volumes[0].host_path: /etc is not under an allowed volume root"
            ),
            "{message}"
        );
        assert!(containers(LABEL_TASK, t["id"].as_str().unwrap_or_default()).is_empty());

        let mut spec = container_spec("root", "sleep 600", 32);
        spec["container"]["docker"]["privileged"] = json!(true);
        submit(api, &spec).await?;
        let job = wait_job(api, &job_id("root"), "waiting", WAIT, |j| {
            j["waiting"].is_string()
        })
        .await?;
        assert_eq!(
            job["waiting"],
            json!("1 task(s) waiting: 0 of 1 agents fit: 1 docker-privileged unavailable")
        );
        Ok(())
    })
    .await;
}

/// `docker exec` in a container, as a test's hand inside it.
fn exec_in(container: &str, cmd: &[&str]) -> anyhow::Result<()> {
    ocean_tests::docker::run(
        std::process::Command::new("docker")
            .arg("exec")
            .arg(container)
            .args(cmd),
    )
    .map(drop)
}

/// Container tasks are health checked like native ones: the http check
/// probes the published host port, the command check runs inside the
/// container (`/www/ready` exists only there), and a restarted agent checks
/// the re-adopted container again.
#[tokio::test(flavor = "multi_thread")]
async fn container_health_checks_probe_the_host_port_and_run_commands_inside() {
    bounded(150, async {
        let mut s = cluster_with_agent(&[]).await?;
        let api = &s.api.clone();
        let mut spec = container_spec(
            "checked",
            "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www",
            32,
        );
        spec["ports"] = json!([{"name": "http"}]);
        spec["container"]["docker"]["port_mappings"] =
            json!([{"container_port": 8080, "port_name": "http"}]);
        spec["health_checks"] = json!([
            {"protocol": "http", "port_name": "http", "path": "/index.html",
             "grace_period_seconds": 0, "interval_seconds": 1, "timeout_seconds": 2,
             "max_consecutive_failures": 0},
            {"protocol": "command", "command": "test -e /www/ready",
             "grace_period_seconds": 0, "interval_seconds": 1, "timeout_seconds": 5,
             "max_consecutive_failures": 0},
        ]);
        submit(api, &spec).await?;
        let job = job_id("checked");
        let (task, container) = running_container(api, &job).await?;
        let one = |l: &[Value]| running(l).first().map(|t| (*t).clone()).unwrap_or_default();
        // Unhealthy for the command alone: the http check passes.
        let list = wait_tasks(api, &job, "unhealthy for the command only", WAIT, |l| {
            let message = one(l)["health_message"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            one(l)["healthy"] == json!(false)
                && message.contains("command \"test -e /www/ready\" in the container exited with 1")
                && !message.contains("http GET")
        })
        .await?;
        assert_eq!(one(&list)["id"], json!(task));

        exec_in(&container, &["touch", "/www/ready"])?;
        wait_tasks(api, &job, "healthy", WAIT, |l| {
            one(l)["healthy"] == json!(true)
        })
        .await?;

        // Restarted, the agent checks the re-adopted container again.
        s.agent.kill();
        tokio::time::sleep(Duration::from_millis(500)).await;
        s.agent.start()?;
        exec_in(&container, &["rm", "/www/ready"])?;
        let list = wait_tasks(api, &job, "unhealthy after the restart", WAIT, |l| {
            one(l)["healthy"] == json!(false) && one(l)["id"] == json!(task)
        })
        .await?;
        assert_eq!(containers(LABEL_TASK, &task), vec![container.clone()]);
        assert!(one(&list)["health_message"]
            .as_str()
            .is_some_and(|m| m.contains("test -e /www/ready")));

        api.delete(&format!("/v1/jobs/{job}")).await?;
        wait_until("container removed", || {
            containers(LABEL_TASK, &task).is_empty()
        })
        .await?;
        Ok(())
    })
    .await;
}
