//! Usage end to end, with a real master, a real agent and real tasks in
//! real cgroups: a task burning one core reads ~1.0 cores and a task
//! holding 100 MiB reads ~100 MiB RSS; the API (`/v1/usage`, the task's
//! `usage`), `ocean top` in a real terminal (tmux) and the agent's
//! `/metrics` agree; a real Prometheus server scrapes the agent and
//! returns the task's memory series.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ocean_tests::cluster::{free_addr, ocean_bin};
use ocean_tests::http::{job_id, Api};
use ocean_tests::tasks::{bounded, running, submit, wait_connected, wait_tasks};
use ocean_tests::Cluster;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);
const MIB: f64 = 1024.0 * 1024.0;

/// The load helper built beside `ocean`.
fn load_bin() -> PathBuf {
    ocean_bin().with_file_name("ocean-load")
}

/// In CI a missing tool fails the test; elsewhere it skips it.
fn require(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{tool} is not installed (scripts/test.sh installs it)");
        }
        eprintln!("skipping: {tool} is not installed");
    }
    found
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// The row of `id` in a `/v1/usage` answer's `list`.
fn row<'a>(report: &'a Value, list: &str, id: &str) -> Option<&'a Value> {
    report[list]
        .as_array()?
        .iter()
        .find(|r| r["id"].as_str() == Some(id))
}

/// Waits until `/v1/usage` (over `window`) satisfies `ok`.
async fn wait_usage(
    api: &Api,
    query: &str,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = api.get(&format!("/v1/usage?{query}")).await?;
        anyhow::ensure!(
            r.status == 200,
            "GET /v1/usage?{query}: {} {}",
            r.status,
            r.body
        );
        if ok(&r.body) {
            return Ok(r.body);
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}; last answer {}", r.body);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The value of `metric` for `task` in a Prometheus text exposition.
fn metric_of(text: &str, metric: &str, task: &str) -> Option<f64> {
    let label = format!("task=\"{task}\"");
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")) && l.contains(&label))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

/// CPU seconds a process has used, from `/proc/PID/stat` (utime + stime):
/// the kernel's own account, independent of the cgroup the agent reads.
fn proc_cpu_seconds(pid: i64) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')').context("stat format")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11).context("utime")?.parse()?;
    let stime: f64 = fields.get(12).context("stime")?.parse()?;
    let out = Command::new("getconf").arg("CLK_TCK").output()?;
    let hz: f64 = String::from_utf8_lossy(&out.stdout).trim().parse()?;
    Ok((utime + stime) / hz)
}

/// A process killed (and reaped) on drop.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A tmux server of its own (its socket name), killed on drop.
struct Tmux(String);

impl Tmux {
    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.0]);
        c
    }

    fn capture(&self) -> anyhow::Result<String> {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-t", "top"])
            .output()
            .context("tmux capture-pane")?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}

/// The RSS-MiB and CPU columns of `ocean top`'s line for `id`.
fn top_line(screen: &str, id: &str) -> Option<(f64, f64)> {
    let line = screen.lines().find(|l| l.trim_end().ends_with(id))?;
    let cols: Vec<&str> = line.split_whitespace().collect();
    Some((cols.first()?.parse().ok()?, cols.get(2)?.parse().ok()?))
}

fn prometheus_config(dir: &Path, target: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join("prometheus.yml");
    std::fs::write(
        &path,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: ocean-agent\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )?;
    Ok(path)
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_agrees_between_api_top_metrics_and_prometheus() {
    bounded(240, async {
        let tmux_ok = require("tmux");
        let prometheus_ok = require("prometheus");
        let c = Cluster::start(1, &[])?;
        let api = c.master(1).api();
        let metrics_addr = free_addr().to_string();
        let mut agent = c.new_agent(
            "a",
            &["--usage-interval", "1s", "--metrics-addr", &metrics_addr],
        );
        agent.start()?;
        wait_connected(&api, 1, WAIT).await?;
        // The test machine may be busy (builds on every core): give this
        // agent's tasks precedence, so the burner really gets a core.
        let agent_id = agent.id().context("agent id")?;
        let shares = format!("/sys/fs/cgroup/cpu/ocean-{agent_id}/cpu.shares");
        if Path::new(&shares).exists() {
            std::fs::write(&shares, "262144").with_context(|| format!("write {shares}"))?;
        }
        let load = load_bin();
        anyhow::ensure!(load.is_file(), "{} is not built", load.display());
        let burn = job_id("burn");
        let hold = job_id("hold");
        submit(
            &api,
            &json!({"id": burn, "cmd": format!("exec {} --burn", load.display()),
                    "resources": {"cpus": 1.0, "mem": 32}, "kill_grace_period_seconds": 1}),
        )
        .await?;
        submit(
            &api,
            &json!({"id": hold, "cmd": format!("exec {} --mib 100", load.display()),
                    "resources": {"cpus": 0.1, "mem": 256}, "kill_grace_period_seconds": 1}),
        )
        .await?;
        let mut ids = Vec::new();
        for job in [&burn, &hold] {
            let l = wait_tasks(&api, job, "one RUNNING", WAIT, |l| running(l).len() == 1).await?;
            ids.push(running(&l)[0]["id"].as_str().unwrap_or_default().to_string());
        }
        let (burn_task, hold_task) = (ids[0].clone(), ids[1].clone());
        let burn_pid = api.get(&format!("/v1/tasks/{burn_task}")).await?.body["pid"]
            .as_i64()
            .context("burn pid")?;

        // Five seconds of one-second samples, all after the tasks started,
        // while the kernel's own account of the burner is read around them.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (cpu0, t0) = (proc_cpu_seconds(burn_pid)?, Instant::now());
        tokio::time::sleep(Duration::from_secs(5)).await;
        let proc_cores = (proc_cpu_seconds(burn_pid)? - cpu0) / t0.elapsed().as_secs_f64();
        let node = "cop.test_owt.qa_pdl.ocean";
        let report = wait_usage(&api, &format!("node={node}&window=5s"), "both tasks sampled", |r| {
            [&burn_task, &hold_task].iter().all(|t| {
                row(r, "tasks", t).is_some_and(|t| t["used"]["sampled_tasks"] == 1)
            })
        })
        .await?;
        let burn_row = row(&report, "tasks", &burn_task).context("burn row")?;
        let cores = f(&burn_row["used"]["cpu_cores"]);
        assert!(
            (0.85..=1.15).contains(&cores),
            "a task burning one core reads {cores} cores (the kernel says it got {proc_cores}): {burn_row}"
        );
        assert!(
            (cores - proc_cores).abs() <= 0.15 * proc_cores,
            "the agent reads {cores} cores, /proc says {proc_cores}"
        );
        let hold_row = row(&report, "tasks", &hold_task).context("hold row")?;
        let rss = f(&hold_row["used"]["memory_rss_bytes"]) / MIB;
        assert!(
            (90.0..=110.0).contains(&rss),
            "a task holding 100 MiB reads {rss} MiB RSS: {hold_row}"
        );
        assert_eq!(f(&hold_row["allocated"]["mem_mib"]), 256.0);
        eprintln!("burner: {cores} cores (kernel: {proc_cores}); holder: {rss:.1} MiB RSS");
        // Parents sum their children: the total, the pdl's service node,
        // the jobs and the agent.
        let total = &report["total"];
        assert_eq!(total["tasks"], 2, "{report}");
        let sum_cpu = f(&burn_row["used"]["cpu_cores"]) + f(&hold_row["used"]["cpu_cores"]);
        assert!((f(&total["used"]["cpu_cores"]) - sum_cpu).abs() < 1e-6, "{report}");
        let service = row(&report, "nodes", "cop.test_owt.qa_pdl.ocean_service.itest")
            .context("service node")?;
        assert_eq!(service["parent"], node);
        assert!((f(&service["used"]["cpu_cores"]) - sum_cpu).abs() < 1e-6);
        let agent_row = row(&report, "agents", &agent_id).context("agent row")?;
        assert!((f(&agent_row["used"]["cpu_cores"]) - sum_cpu).abs() < 1e-6);

        // The task's own answer carries its newest sample.
        let t = api.get(&format!("/v1/tasks/{hold_task}")).await?.body;
        let task_rss = f(&t["usage"]["memory_rss_bytes"]) / MIB;
        assert!((task_rss - rss).abs() < 5.0, "task usage {t} vs report {rss} MiB");
        let a = api.get(&format!("/v1/agents/{agent_id}")).await?.body;
        assert_eq!(a["usage"]["tasks"], 2, "{a}");
        // gRPC carries the same sample (Task.usage).
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", c.master(1).grpc))?
            .connect()
            .await?;
        let mut grpc = ocean_proto::v1::ocean_api_client::OceanApiClient::new(channel);
        let g = grpc
            .get_task(ocean_proto::v1::TaskRef {
                id: hold_task.clone(),
                ..Default::default()
            })
            .await?
            .into_inner();
        let g_rss = g.usage.context("gRPC Task.usage")?.memory_rss_bytes as f64 / MIB;
        assert!((g_rss - rss).abs() < 5.0, "gRPC {g_rss} MiB vs API {rss} MiB");

        // The agent's /metrics says the same.
        let text = reqwest::get(format!("http://{metrics_addr}/metrics"))
            .await?
            .text()
            .await?;
        let m_rss = metric_of(&text, "ocean_task_memory_rss_bytes", &hold_task)
            .context("rss series in /metrics")?
            / MIB;
        assert!((m_rss - rss).abs() < 5.0, "/metrics {m_rss} MiB vs API {rss} MiB");
        let m_cores = metric_of(&text, "ocean_task_cpu_cores", &burn_task).context("cpu series")?;
        assert!((m_cores - cores).abs() < 0.2, "/metrics {m_cores} cores vs API {cores}");
        assert!(
            text.contains("pdl=\"ocean\"") && text.contains(&format!("job=\"{hold}\"")),
            "series carry job and tree labels"
        );
        // Bad input names the field.
        let bad = api.get("/v1/usage?window=0s").await?;
        assert_eq!(bad.status, 400, "{}", bad.body);
        assert!(bad.body["error"].as_str().unwrap_or("").starts_with("window:"));

        if tmux_ok {
            let tmux = Tmux(format!("ocean-usage-{}", std::process::id()));
            let command = format!(
                "{} --addr http://{} top {node} --window 5s --interval 1 --sort mem",
                ocean_bin().display(),
                c.master(1).http
            );
            let status = tmux
                .cmd()
                .args(["new-session", "-d", "-s", "top", "-x", "250", "-y", "40", &command])
                .status()?;
            anyhow::ensure!(status.success(), "tmux new-session failed");
            let deadline = Instant::now() + Duration::from_secs(20);
            let (first, row) = loop {
                let screen = tmux.capture()?;
                if let Some(r) = top_line(&screen, &hold_task) {
                    break (screen, r);
                }
                if Instant::now() > deadline {
                    bail!("ocean top never showed {hold_task}:\n{screen}");
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            };
            let (_, top_rss) = row;
            eprintln!("ocean top:\n{first}");
            assert!((top_rss - rss).abs() < 5.0, "top {top_rss} MiB vs API {rss} MiB:\n{first}");
            let burn_line = top_line(&first, &burn_task).context("burn line in top")?;
            assert!((burn_line.0 - cores).abs() < 0.2, "top {} cores vs API {cores}", burn_line.0);
            // Sorted by memory: the holder comes first.
            let hold_at = first.find(&hold_task).unwrap_or(usize::MAX);
            let burn_at = first.find(&burn_task).unwrap_or(0);
            assert!(hold_at < burn_at, "not sorted by memory:\n{first}");
            // It refreshes: the header's clock moves.
            let header = |s: &str| s.lines().next().unwrap_or("").to_string();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let now = tmux.capture()?;
                if header(&now) != header(&first) && top_line(&now, &hold_task).is_some() {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("ocean top did not refresh:\n{now}");
                }
            }
        }

        if prometheus_ok {
            let dir = tempfile::tempdir()?;
            let config = prometheus_config(dir.path(), &metrics_addr)?;
            let web = free_addr();
            let log = std::fs::File::create(dir.path().join("prometheus.log"))?;
            let _prom = Guard(
                Command::new("prometheus")
                    .arg(format!("--config.file={}", config.display()))
                    .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
                    .arg(format!("--web.listen-address={web}"))
                    .stdin(Stdio::null())
                    .stdout(log.try_clone()?)
                    .stderr(log)
                    .spawn()
                    .context("start prometheus")?,
            );
            let query = format!("ocean_task_memory_rss_bytes{{task=\"{hold_task}\",pdl=\"ocean\"}}");
            let deadline = Instant::now() + Duration::from_secs(60);
            let value = loop {
                let answer = reqwest::Client::new()
                    .get(format!("http://{web}/api/v1/query"))
                    .query(&[("query", query.as_str())])
                    .send()
                    .await;
                if let Ok(a) = answer {
                    if let Ok(body) = a.json::<Value>().await {
                        if let Some(v) = body["data"]["result"][0]["value"][1].as_str() {
                            break v.parse::<f64>()?;
                        }
                    }
                }
                if Instant::now() > deadline {
                    let log = std::fs::read_to_string(dir.path().join("prometheus.log"))
                        .unwrap_or_default();
                    bail!("prometheus never returned {query}; its log:\n{log}");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            };
            let p_rss = value / MIB;
            eprintln!("prometheus: {p_rss:.1} MiB RSS");
            assert!((p_rss - rss).abs() < 5.0, "prometheus {p_rss} MiB vs API {rss} MiB");
        }
        Ok(())
    })
    .await;
}

/// A counter of a Docker container's cgroup (cgroupfs driver, v1), read by
/// the test itself: what the engine's stats should match.
fn docker_cgroup(controller: &str, id: &str, file: &str) -> Option<String> {
    std::fs::read_to_string(format!("/sys/fs/cgroup/{controller}/docker/{id}/{file}")).ok()
}

fn keyed(text: &str, key: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// A container task's usage comes from the Docker engine's stats: a
/// container spinning under a 0.5-core quota and holding ~60 MiB reads
/// what the kernel's cgroup of the container says. What the stats lack is
/// read from the container's own cgroup: the periods its quota throttled
/// it, and the OOM kills of a second container whose `dd` asks for more
/// than its 32 MiB limit (its shell lives on).
#[tokio::test(flavor = "multi_thread")]
async fn container_usage_comes_from_the_engine_stats() {
    use ocean_tests::docker::{containers, ensure_busybox, ContainerReaper, BUSYBOX, LABEL_TASK};
    bounded(180, async {
        if !require("docker") {
            return Ok(());
        }
        ensure_busybox()?;
        let c = Cluster::start(1, &[])?;
        let api = c.master(1).api();
        let mut agent = c.new_agent("d", &["--usage-interval", "1s"]);
        agent.start()?;
        wait_connected(&api, 1, WAIT).await?;
        let mut reaper = ContainerReaper::default();
        reaper.watch(&agent.id().unwrap_or_default());
        let job = job_id("boxed");
        submit(
            &api,
            &json!({"id": job,
                    // `tail` keeps a line without a newline in memory
                    // while its input stays open.
                    "cmd": "sh -c '(head -c 60m /dev/zero; sleep 3600) | tail & while :; do :; done'",
                    "resources": {"cpus": 0.5, "mem": 256}, "kill_grace_period_seconds": 1,
                    "container": {"docker": {"image": BUSYBOX}}}),
        )
        .await?;
        let oom_job = job_id("oomed");
        submit(
            &api,
            &json!({"id": oom_job,
                    "cmd": "dd if=/dev/zero of=/dev/null bs=128M count=1; exec sleep 3600",
                    "resources": {"cpus": 0.05, "mem": 32}, "kill_grace_period_seconds": 1,
                    "container": {"docker": {"image": BUSYBOX}}}),
        )
        .await?;
        let l = wait_tasks(&api, &job, "one RUNNING", WAIT, |l| running(l).len() == 1).await?;
        let task = running(&l)[0]["id"].as_str().unwrap_or_default().to_string();
        let l = wait_tasks(&api, &oom_job, "one RUNNING", WAIT, |l| running(l).len() == 1).await?;
        let oom_task = running(&l)[0]["id"].as_str().unwrap_or_default().to_string();
        let ids = containers(LABEL_TASK, &task);
        anyhow::ensure!(ids.len() == 1, "one container for {task}: {ids:?}");
        let id = ids[0].clone();
        // The kernel's account of the container over five seconds.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let usage_ns = || -> anyhow::Result<f64> {
            Ok(docker_cgroup("cpuacct", &id, "cpuacct.usage")
                .context("the container's cpuacct.usage")?
                .trim()
                .parse()?)
        };
        let (ns0, t0) = (usage_ns()?, Instant::now());
        tokio::time::sleep(Duration::from_secs(5)).await;
        let kernel_cores = (usage_ns()? - ns0) / 1e9 / t0.elapsed().as_secs_f64();
        let report = wait_usage(&api, "window=5s", "the container sampled", |r| {
            row(r, "tasks", &task).is_some_and(|t| t["used"]["sampled_tasks"] == 1)
        })
        .await?;
        let stat = docker_cgroup("memory", &id, "memory.stat").context("memory.stat")?;
        let kernel_rss = keyed(&stat, "rss").context("rss")? / MIB;
        let t = row(&report, "tasks", &task).context("task row")?;
        let cores = f(&t["used"]["cpu_cores"]);
        let rss = f(&t["used"]["memory_rss_bytes"]) / MIB;
        eprintln!("container: {cores} cores (kernel {kernel_cores}), {rss:.1} MiB (kernel {kernel_rss:.1})");
        assert!(
            (cores - kernel_cores).abs() <= 0.15 * kernel_cores.max(0.1),
            "the engine's stats read {cores} cores, the container's cgroup {kernel_cores}: {t}"
        );
        assert!(cores <= 0.5 * 1.15, "a 0.5-core quota, {cores} cores read");
        assert!(rss > 55.0, "the container holds ~60 MiB, {rss} MiB read: {t}");
        assert!(
            (rss - kernel_rss).abs() <= 0.1 * kernel_rss,
            "{rss} MiB read, the cgroup says {kernel_rss} MiB"
        );

        // Throttled periods: counted, and never more than the kernel's
        // count read after them.
        let sample = api.get(&format!("/v1/tasks/{task}")).await?.body;
        let periods = sample["usage"]["cpu_throttled_periods"].as_u64().unwrap_or(0);
        let cpu_stat = docker_cgroup("cpu", &id, "cpu.stat").context("cpu.stat")?;
        let kernel_periods = keyed(&cpu_stat, "nr_throttled").context("nr_throttled")?;
        assert!(
            periods > 0 && periods as f64 <= kernel_periods,
            "a busy loop under a 0.5-core quota: {periods} throttled periods read, the \
             kernel counts {kernel_periods}: {sample}"
        );
        // OOM kills: the container's dd was killed, its sleep runs on.
        let oom_ids = containers(LABEL_TASK, &oom_task);
        anyhow::ensure!(oom_ids.len() == 1, "one container for {oom_task}: {oom_ids:?}");
        let deadline = Instant::now() + WAIT;
        let oom_usage = loop {
            let t = api.get(&format!("/v1/tasks/{oom_task}")).await?.body;
            if t["usage"]["oom_kills"].as_u64().unwrap_or(0) >= 1 {
                break t;
            }
            if Instant::now() > deadline {
                let control = docker_cgroup("memory", &oom_ids[0], "memory.oom_control");
                bail!("no OOM kill read for {oom_task}: {t}; the cgroup says {control:?}");
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        let control = docker_cgroup("memory", &oom_ids[0], "memory.oom_control")
            .context("memory.oom_control")?;
        let kernel_kills = keyed(&control, "oom_kill").context("oom_kill")?;
        assert_eq!(
            oom_usage["usage"]["oom_kills"].as_u64().map(|n| n as f64),
            Some(kernel_kills),
            "{oom_usage} vs {control}"
        );
        assert_eq!(oom_usage["state"], "RUNNING", "the shell lives on: {oom_usage}");
        let report = wait_usage(&api, "window=5s", "the OOM kill in the report", |r| {
            row(r, "tasks", &oom_task).is_some_and(|t| t["used"]["oom_kills"].as_u64() >= Some(1))
        })
        .await?;
        assert!(report["total"]["used"]["oom_kills"].as_u64() >= Some(1), "{report}");
        drop(agent);
        drop(reaper);
        Ok(())
    })
    .await;
}

/// Any master answers `/v1/usage`: a follower relays the leader's answer
/// (the samples live in the leader's memory), and bad input is refused by
/// whichever master is asked, naming the field. A follower's task and
/// agent answers carry `usage` too (REST and gRPC), asked of the leader;
/// gRPC's `OceanUsage` answers the same report; tree nodes, jobs and the
/// total carry their own rings (`series`, with `history=true` the points).
#[tokio::test(flavor = "multi_thread")]
async fn a_follower_answers_usage_from_the_leader() {
    bounded(120, async {
        let c = Cluster::start(3, &[])?;
        let leader = c.wait_leader(&[1, 2, 3], WAIT).await?;
        let follower = if leader == 1 { 2 } else { 1 };
        let api = c.master(leader).api();
        let mut agent = c.new_agent("f", &["--usage-interval", "1s"]);
        agent.start()?;
        wait_connected(&api, 1, WAIT).await?;
        let job = job_id("relayed");
        submit(
            &api,
            &json!({"id": job, "cmd": format!("exec {} --mib 20", load_bin().display()),
                    "resources": {"cpus": 0.1, "mem": 64}, "kill_grace_period_seconds": 1}),
        )
        .await?;
        let l = wait_tasks(&api, &job, "one RUNNING", WAIT, |l| running(l).len() == 1).await?;
        let task = running(&l)[0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let other = c.master(follower).api();
        let report = wait_usage(
            &other,
            "node=pdl.ocean&window=10s",
            "the task sampled",
            |r| {
                row(r, "tasks", &task)
                    .is_some_and(|t| t["used"]["memory_rss_bytes"].as_u64() > Some(15 << 20))
            },
        )
        .await?;
        assert_eq!(report["leader"], leader, "answered by the leader: {report}");
        assert_eq!(report["node"], "pdl.ocean");
        let bad = other.get("/v1/usage?node=nope").await?;
        assert_eq!(bad.status, 400, "{}", bad.body);
        assert!(
            bad.body["error"].as_str().unwrap_or("").starts_with("node"),
            "{}",
            bad.body
        );

        // Task and agent answers on the follower carry the leader's samples.
        let rss_of = |v: &Value| v["usage"]["memory_rss_bytes"].as_u64().unwrap_or(0);
        let t = other.get(&format!("/v1/tasks/{task}")).await?.body;
        assert!(rss_of(&t) > 15 << 20, "a follower's task answer: {t}");
        let list = other.get(&format!("/v1/tasks?job={job}")).await?.body;
        let listed = list["tasks"]
            .as_array()
            .and_then(|l| l.iter().find(|x| x["id"] == task.as_str()))
            .context("the task in the follower's list")?;
        assert!(rss_of(listed) > 15 << 20, "a follower's task list: {list}");
        let agent_id = agent.id().context("agent id")?;
        let a = other.get(&format!("/v1/agents/{agent_id}")).await?.body;
        assert_eq!(a["usage"]["tasks"], 1, "a follower's agent answer: {a}");
        let agents = other.get("/v1/agents").await?.body;
        assert!(
            agents["agents"][0]["usage"]["memory_rss_bytes"].as_u64() > Some(15 << 20),
            "a follower's agent list: {agents}"
        );
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{}", c.master(follower).grpc))?
                .connect()
                .await?;
        let mut grpc = ocean_proto::v1::ocean_api_client::OceanApiClient::new(channel.clone());
        let g = grpc
            .get_task(ocean_proto::v1::TaskRef {
                id: task.clone(),
                ..Default::default()
            })
            .await?
            .into_inner();
        let g_rss = g
            .usage
            .context("gRPC Task.usage on a follower")?
            .memory_rss_bytes;
        assert!(g_rss > 15 << 20, "gRPC on a follower: {g_rss}");
        let g = grpc
            .get_agent(ocean_proto::v1::AgentRef {
                id: agent_id.clone(),
                ..Default::default()
            })
            .await?
            .into_inner();
        assert_eq!(
            g.usage.context("gRPC AgentInfo.usage on a follower")?.tasks,
            1
        );

        // The rows' own rings: a snapshot every 5 s, so two within 15 s.
        let report = wait_usage(
            &other,
            "node=pdl.ocean&window=30s&history=true",
            "two snapshots of the product line",
            |r| r["total"]["series"]["points"].as_u64() >= Some(2),
        )
        .await?;
        let series = &report["total"]["series"];
        let history = series["history"].as_array().context("history")?;
        assert_eq!(
            Some(history.len() as u64),
            series["points"].as_u64(),
            "{series}"
        );
        assert!(
            series["memory_rss_peak_bytes"].as_u64() > Some(15 << 20),
            "the line's ring holds the task's memory: {series}"
        );
        let job_row = row(&report, "jobs", &job).context("job row")?;
        assert!(job_row["series"]["points"].as_u64() >= Some(1), "{job_row}");
        assert!(row(&report, "tasks", &task).context("task row")?["series"].is_null());
        // Agents' rings cover all their tasks: only the whole tree shows them.
        assert!(row(&report, "agents", &agent_id).context("agent row")?["series"].is_null());
        let whole = wait_usage(&other, "window=30s", "the agent's ring", |r| {
            row(r, "agents", &agent_id).is_some_and(|a| a["series"]["points"].as_u64() >= Some(1))
        })
        .await?;
        assert!(whole["total"]["series"].is_object(), "{whole}");

        // gRPC's OceanUsage on the follower: the same report.
        let mut usage = ocean_proto::v1::ocean_usage_client::OceanUsageClient::new(channel);
        let g = usage
            .get_usage(ocean_proto::v1::UsageRequest {
                node: "pdl.ocean".into(),
                window: "10s".into(),
                history: false,
            })
            .await?
            .into_inner();
        assert_eq!(g.leader, leader);
        assert_eq!(g.node, "pdl.ocean");
        let g_row = g
            .tasks
            .iter()
            .find(|r| r.id == task)
            .context("gRPC task row")?;
        assert!(g_row.memory_rss_bytes > 15 << 20, "{g_row:?}");
        assert_eq!(g.total.as_ref().map(|t| t.tasks), Some(1));
        let bad = usage
            .get_usage(ocean_proto::v1::UsageRequest {
                window: "0s".into(),
                ..Default::default()
            })
            .await
            .expect_err("a zero window is refused");
        assert_eq!(bad.code(), tonic::Code::InvalidArgument, "{bad:?}");
        assert!(bad.message().starts_with("window"), "{bad:?}");
        let lines = usage
            .get_usage_report(ocean_proto::v1::UsageReportRequest {
                node: "pdl.ocean".into(),
                window: "10s".into(),
            })
            .await?
            .into_inner();
        assert_eq!(lines.lines.len(), 1, "{lines:?}");
        assert_eq!(lines.lines[0].pdl, "cop.test_owt.qa_pdl.ocean");
        assert!(lines.csv.starts_with("pdl,tasks,"), "{}", lines.csv);
        drop(agent);
        Ok(())
    })
    .await;
}

/// `ocean logs JOB --grep RE` searches every task of the job, the ended
/// ones too, and prefixes each line with its task.
#[tokio::test(flavor = "multi_thread")]
async fn ocean_logs_greps_running_and_ended_tasks() {
    bounded(120, async {
        let c = Cluster::start(1, &[])?;
        let api = c.master(1).api();
        let mut agent = c.new_agent("l", &[]);
        agent.start()?;
        wait_connected(&api, 1, WAIT).await?;
        let job = job_id("chatty");
        let spec = |marker: &str| {
            json!({"id": job, "instances": 1, "kill_grace_period_seconds": 1,
                   "cmd": format!("echo noise; echo needle-{marker} $OCEAN_TASK_ID; sleep 600"),
                   "resources": {"cpus": 0.01, "mem": 16}})
        };
        submit(&api, &spec("one")).await?;
        let l = wait_tasks(&api, &job, "first RUNNING", WAIT, |l| running(l).len() == 1).await?;
        let first = running(&l)[0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        // RUNNING is reported when the shell starts, before its echo: wait
        // for the line, or the replacement may kill the task before it writes.
        let deadline = Instant::now() + WAIT;
        loop {
            let out = Command::new(ocean_bin())
                .args(["--addr", &format!("http://{}", c.master(1).http)])
                .args(["logs", &job, "--grep", "needle-one"])
                .output()?;
            if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("needle-one") {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "the first task never wrote its line: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // A new version replaces the task: the first one ends.
        submit(&api, &spec("two")).await?;
        wait_tasks(&api, &job, "the first task ended", WAIT, |l| {
            l.iter().any(|t| {
                t["id"] == first.as_str()
                    && ["KILLED", "FINISHED", "FAILED"].contains(&t["state"].as_str().unwrap_or(""))
            }) && running(l).iter().any(|t| t["id"] != first.as_str())
        })
        .await?;
        let deadline = Instant::now() + WAIT;
        let text = loop {
            let out = Command::new(ocean_bin())
                .args(["--addr", &format!("http://{}", c.master(1).http)])
                .args(["logs", &job, "--grep", "needle-(one|two)"])
                .output()?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if out.status.success() && text.contains("needle-one") && text.contains("needle-two") {
                break text;
            }
            if Instant::now() > deadline {
                bail!(
                    "ocean logs: {} {text} {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        assert!(!text.contains("noise"), "only matching lines: {text}");
        let one = text
            .lines()
            .find(|l| l.contains("needle-one"))
            .unwrap_or("");
        assert!(
            one.contains("KILLED") || one.contains("FINISHED"),
            "the ended task's line: {text}"
        );
        let bad = Command::new(ocean_bin())
            .args(["--addr", &format!("http://{}", c.master(1).http)])
            .args(["logs", &job, "--grep", "("])
            .output()?;
        assert!(!bad.status.success());
        assert!(String::from_utf8_lossy(&bad.stderr).contains("--grep"));
        Ok(())
    })
    .await;
}
