//! Deployments through the `ocean` binary against a real `ocean dev`
//! (real agent, real processes): `job run` follows a deployment and exits
//! by how it ended, `job plan` on a health-check-only change says no task
//! is replaced (and none is), and `deployment list|status|pause|resume`
//! round trip.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ocean_tests::cluster::{agent_ports, free_addr, DevProc};
use ocean_tests::ocean_bin;
use serde_json::{json, Value};

const ID: &str = "cop.example_owt.dev_pdl.deploy_service.web_job.http_cluster.dev";

fn ocean(args: &[&str], addr: &str) -> Output {
    Command::new(ocean_bin())
        .args(args)
        .env("OCEAN_ADDR", addr)
        .stdin(Stdio::null())
        .output()
        .expect("run ocean")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn start_dev(dir: &Path) -> (DevProc, String) {
    let http = free_addr().to_string();
    let grpc = free_addr().to_string();
    let dns = free_addr().to_string();
    let ports = agent_ports();
    let dev = DevProc::spawn(
        dir,
        &[
            "--http", &http, "--grpc", &grpc, "--dns", &dns, "--ports", &ports,
        ],
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let o = ocean(&["agent", "list"], &http);
        if o.status.success() && text(&o).contains("online") {
            return (dev, http);
        }
        assert!(
            Instant::now() < deadline,
            "ocean dev did not come up: {}",
            text(&o)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A web server job whose health check passes once it listens.
fn spec(cmd: &str, env: &str, interval: u32, strategy: Value) -> Value {
    json!({
        "id": ID,
        "cmd": cmd,
        "env": {"VERSION": env},
        "instances": 2,
        "resources": {"cpus": 0.05, "mem": 32},
        "ports": [{"name": "http"}],
        "health_checks": [{
            "protocol": "tcp", "port_name": "http",
            "grace_period_seconds": 15, "interval_seconds": interval,
            "timeout_seconds": 1, "max_consecutive_failures": 2
        }],
        "upgrade_strategy": strategy,
    })
}

const SERVE: &str = "exec python3 -m http.server $PORT0";

fn write(dir: &Path, name: &str, v: &Value) -> String {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    p.display().to_string()
}

/// Waits until `n` tasks run and their health checks pass.
fn wait_healthy(http: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let o = ocean(&["--json", "task", "list", "--job", ID], http);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        let healthy = v["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["state"] == "RUNNING" && t["healthy"] == true)
            .count();
        if healthy == n {
            return;
        }
        assert!(Instant::now() < deadline, "{n} tasks never healthy: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn live_task_ids(http: &str) -> Vec<String> {
    let o = ocean(&["--json", "task", "list", "--job", ID], http);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    let mut ids: Vec<String> = v["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["state"] == "RUNNING" && t["kill_requested"] == false)
        .map(|t| t["id"].as_str().unwrap_or_default().to_string())
        .collect();
    ids.sort();
    ids
}

fn deployment_state(http: &str, id: &str) -> String {
    let o = ocean(&["--json", "deployment", "status", id], http);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    v["state"].as_str().unwrap_or_default().to_string()
}

#[test]
fn deployments_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (_dev, http) = start_dev(dir.path());
    let fast = json!({"healthy_deadline_seconds": 30});

    // A new job: `job run` waits for its instances.
    let v1 = write(dir.path(), "v1.json", &spec(SERVE, "1", 1, fast.clone()));
    let o = ocean(&["job", "run", "--timeout", "60", &v1], &http);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("2/2 running"), "{}", text(&o));
    wait_healthy(&http, 2);
    let before = live_task_ids(&http);
    assert_eq!(before.len(), 2, "{before:?}");

    // Health-check timing only: the plan says no task is replaced, and
    // putting it replaces none.
    let hc = write(dir.path(), "hc.json", &spec(SERVE, "1", 2, fast.clone()));
    let o = ocean(&["job", "plan", &hc], &http);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("no task is replaced"), "{out}");
    assert!(
        out.contains("health_checks[0].interval_seconds: 1 -> 2"),
        "{out}"
    );
    let o = ocean(&["--json", "job", "plan", &hc], &http);
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(plan["replaces_tasks"], false, "{plan}");
    assert_eq!(plan["tasks_to_replace"], 0, "{plan}");
    let o = ocean(&["job", "run", "--timeout", "30", &hc], &http);
    assert!(o.status.success(), "{}", text(&o));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(live_task_ids(&http), before, "a task was replaced");
    let o = ocean(&["--json", "deployment", "list", "--job", ID], &http);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["deployments"], json!([]), "{v}");

    // A change tasks embody: the plan counts both tasks and places the
    // first on the dev agent.
    let slow = json!({"healthy_deadline_seconds": 30, "sleep_seconds": 3});
    let v2 = write(dir.path(), "v2.json", &spec(SERVE, "2", 2, slow));
    let o = ocean(&["--json", "job", "plan", &v2], &http);
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(plan["replaces_tasks"], true, "{plan}");
    assert_eq!(plan["tasks_to_replace"], 2, "{plan}");
    assert_eq!(
        plan["placement"]["placed"].as_array().map(Vec::len),
        Some(1),
        "{plan}"
    );
    assert!(plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["path"] == "env.VERSION" && c["replaces_tasks"] == true));

    // Detached, then list, pause, status, resume, and it completes.
    let o = ocean(&["job", "run", "--detach", &v2], &http);
    assert!(o.status.success(), "{}", text(&o));
    let o = ocean(&["deployment", "list", "--job", ID], &http);
    let dep = format!("{ID}@3");
    assert!(text(&o).contains(&dep), "{}", text(&o));
    let o = ocean(&["deployment", "pause", &dep, "--reason", "looking"], &http);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("now paused"), "{}", text(&o));
    let o = ocean(&["deployment", "status", &dep], &http);
    assert!(text(&o).contains("paused"), "{}", text(&o));
    let o = ocean(&["deployment", "resume", &dep, "--reason", "seen"], &http);
    assert!(o.status.success(), "{}", text(&o));
    // A deployment that is not paused cannot be resumed: the answer says why.
    let o = ocean(&["deployment", "resume", &dep], &http);
    assert!(!o.status.success());
    assert!(text(&o).contains("not paused"), "{}", text(&o));
    let deadline = Instant::now() + Duration::from_secs(90);
    while deployment_state(&http, &dep) != "succeeded" {
        assert!(
            Instant::now() < deadline,
            "{}",
            text(&ocean(&["deployment", "status", &dep], &http))
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    // A good version: `job run` follows it to success, exit 0.
    let v3 = write(dir.path(), "v3.json", &spec(SERVE, "3", 2, fast.clone()));
    let o = ocean(&["job", "run", "--timeout", "90", &v3], &http);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("replaced 2/2"), "{}", text(&o));
    assert!(text(&o).contains("succeeded"), "{}", text(&o));

    // A version that never listens fails its health check: the deployment
    // fails at its healthy deadline and `job run` exits non-zero.
    let bad = json!({"healthy_deadline_seconds": 4});
    let v4 = write(dir.path(), "v4.json", &spec("exec sleep 1000", "4", 1, bad));
    let o = ocean(&["job", "run", "--timeout", "90", &v4], &http);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("failed"), "{}", text(&o));

    // Rollback to the version before: a deployment back to it.
    let o = ocean(&["job", "rollback", ID, "--to", "4"], &http);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("spec version 6"), "{}", text(&o));
    let _ = ocean(&["job", "stop", ID], &http);
}
