//! Jobs become real processes in real cgroups, end to end: masters (real
//! processes, RocksDB on disk), agents (`ocean agent`), tasks under the
//! native executor. Every test reaps its agents' cgroups when it ends.

use std::time::Duration;

use ocean_tests::tasks::{
    alive, cgroup_parents_left, cgroup_roots, cgroup_value, cgroups_under, live, pids, running,
    wait_job, wait_tasks,
};
use ocean_tests::tasks::{bounded, submit};
use ocean_tests::{http::job_id, AgentProc, Api, Cluster};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

fn spec(name: &str, cmd: &str, instances: u32, mem: u64) -> Value {
    json!({
        "id": job_id(name),
        "cmd": cmd,
        "instances": instances,
        "resources": {"cpus": 0.1, "mem": mem},
        "kill_grace_period_seconds": 1,
    })
}

fn start_agents(c: &Cluster, names: &[(&str, &[&str])]) -> anyhow::Result<Vec<AgentProc>> {
    names
        .iter()
        .map(|(name, extra)| {
            let mut a = c.new_agent(name, extra);
            a.start()?;
            Ok(a)
        })
        .collect()
}

async fn wait_connected(api: &Api, n: usize) -> anyhow::Result<()> {
    ocean_tests::tasks::wait_connected(api, n, WAIT).await
}

/// A 3-instance job gives 3 RUNNING processes whose cgroups hold the
/// requested cpu and memory limits; stopping it leaves no process and no
/// cgroup behind.
#[tokio::test(flavor = "multi_thread")]
async fn tasks_run_in_cgroups_with_their_limits_and_stop_cleanly() {
    bounded(90, async {
        let c = Cluster::start(1, &[])?;
        let api = c.master(1).api();
        let agents = start_agents(&c, &[("a", &[])])?;
        wait_connected(&api, 1).await?;
        let parent = agents[0].cgroup_parent();
        let job = job_id("limits");
        let mut s = spec("limits", "sleep 600", 3, 48);
        s["resources"]["cpus"] = json!(0.25);
        submit(&api, &s).await?;
        let list = wait_tasks(&api, &job, "3 RUNNING", WAIT, |l| running(l).len() == 3).await?;
        let pids = pids(&running(&list));
        assert_eq!(pids.len(), 3, "{list:?}");
        for pid in &pids {
            assert!(alive(*pid), "pid {pid} is not running");
            let mem = cgroup_value(*pid, "memory", "memory.limit_in_bytes")
                .or_else(|| cgroup_value(*pid, "memory", "memory.max"))
                .expect("memory cgroup");
            assert_eq!(mem, (48u64 << 20).to_string(), "memory limit of pid {pid}");
            let quota = cgroup_value(*pid, "cpu", "cpu.cfs_quota_us");
            let period = cgroup_value(*pid, "cpu", "cpu.cfs_period_us");
            match (quota, period) {
                (Some(q), Some(p)) => {
                    let (q, p): (f64, f64) = (q.parse()?, p.parse()?);
                    assert!(
                        (q / p - 0.25).abs() < 0.01,
                        "cpu quota {q}/{p} of pid {pid}"
                    );
                }
                _ => {
                    let max = cgroup_value(*pid, "cpu", "cpu.max").expect("cpu cgroup");
                    assert!(max.starts_with("25000 100000"), "cpu.max {max}");
                }
            }
            let pids_max = cgroup_value(*pid, "pids", "pids.max").expect("pids cgroup");
            assert_ne!(pids_max, "max", "pid {pid} has no pids limit");
        }
        // Task JSON carries what users need.
        let t = &running(&list)[0];
        for field in ["id", "job", "agent", "host", "state", "ports", "started_ms"] {
            assert!(!t[field].is_null(), "task JSON lacks {field}: {t}");
        }

        let r = api.delete(&format!("/v1/jobs/{job}")).await?;
        assert_eq!(r.status, 200, "{}", r.body);
        let deadline = std::time::Instant::now() + WAIT;
        while pids.iter().any(|p| alive(*p)) || !cgroups_under(&parent).is_empty() {
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "after stop: alive {:?}, cgroups {:?}",
                pids.iter().filter(|p| alive(**p)).collect::<Vec<_>>(),
                cgroups_under(&parent)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // A test agent killed with a task still running takes its cgroups
        // with it, in every mounted hierarchy (cpuacct apart from cpu too).
        let job2 = job_id("left-running");
        submit(&api, &spec("left-running", "sleep 600", 1, 16)).await?;
        let list = wait_tasks(&api, &job2, "1 RUNNING", WAIT, |l| running(l).len() == 1).await?;
        let pid = ocean_tests::tasks::pids(&running(&list))[0];
        drop(agents);
        assert!(!alive(pid), "task pid {pid} outlived its test agent");
        let left = cgroup_parents_left(&parent);
        assert!(left.is_empty(), "cgroups left after the agent: {left:?}");
        Ok(())
    })
    .await;
}

/// A task that allocates past its memory limit is killed by the kernel and
/// reported as OOM, while its neighbour keeps running; a fork bomb is held
/// by the pids limit.
#[tokio::test(flavor = "multi_thread")]
async fn oom_is_reported_and_fork_bombs_are_contained() {
    bounded(90, async {
        let c = Cluster::start(1, &[])?;
        let api = c.master(1).api();
        let _agents = start_agents(&c, &[("a", &[])])?;
        wait_connected(&api, 1).await?;
        let calm = job_id("calm");
        submit(&api, &spec("calm", "sleep 600", 1, 16)).await?;
        let calm_pid = pids(&running(
            &wait_tasks(&api, &calm, "calm RUNNING", WAIT, |l| running(l).len() == 1).await?,
        ))[0];

        let hog = job_id("hog");
        let mut s = spec(
            "hog",
            "python3 -c 'import time; b = bytearray(256 << 20); time.sleep(60)'",
            1,
            32,
        );
        s["instances"] = json!(1);
        submit(&api, &s).await?;
        let list = wait_tasks(&api, &hog, "an OOM-killed task", WAIT, |l| {
            l.iter().any(|t| t["reason"] == "oom_killed")
        })
        .await?;
        let t = list.iter().find(|t| t["reason"] == "oom_killed").unwrap();
        assert_eq!(t["state"], "FAILED", "{t}");

        let bomb = job_id("bomb");
        let mut s = spec("bomb", "f() { f | f & }; f; sleep 600", 1, 256);
        s["resources"]["pids"] = json!(64);
        submit(&api, &s).await?;
        let list = wait_tasks(&api, &bomb, "the bomb RUNNING", WAIT, |l| {
            running(l).len() == 1
        })
        .await?;
        let pid = ocean_tests::tasks::pids(&running(&list))[0];
        assert!(alive(pid), "the bomb's shell is gone: {list:?}");
        let max: u64 = cgroup_value(pid, "pids", "pids.max")
            .unwrap_or_default()
            .parse()?;
        let cur: u64 = cgroup_value(pid, "pids", "pids.current")
            .unwrap_or_default()
            .parse()?;
        assert!(cur <= max, "pids.current {cur} > pids.max {max}");
        assert_eq!(max, 64, "pids.max");
        // The kernel refused forks at the limit: the bomb was stopped by it,
        // not by running out of something else.
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let refused: u64 = cgroup_value(pid, "pids", "pids.events")
                .and_then(|e| e.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
                .unwrap_or(0);
            if refused > 0 {
                break;
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "no fork was refused (pids.current {cur}, max {max})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The machine and the neighbour are fine.
        assert!(alive(calm_pid), "the calm task died");
        let r = api.get(&format!("/v1/tasks?job={calm}")).await?;
        assert_eq!(running(r.body["tasks"].as_array().unwrap()).len(), 1);
        api.delete(&format!("/v1/jobs/{bomb}")).await?;
        wait_tasks(&api, &bomb, "the bomb stopped", WAIT, |l| {
            live(l).is_empty()
        })
        .await?;
        Ok(())
    })
    .await;
}

/// SIGKILL of the agent and a restart leave the same pids running and
/// reported.
#[tokio::test(flavor = "multi_thread")]
async fn agent_restart_readopts_its_tasks() {
    bounded(90, async {
        let c = Cluster::start(1, &[])?;
        let api = c.master(1).api();
        let mut agents = start_agents(&c, &[("a", &[])])?;
        wait_connected(&api, 1).await?;
        let job = job_id("survivor");
        submit(&api, &spec("survivor", "sleep 600", 2, 16)).await?;
        let before = pids(&running(
            &wait_tasks(&api, &job, "2 RUNNING", WAIT, |l| running(l).len() == 2).await?,
        ));
        let ids_before: Vec<Value> = running(&ocean_tests::tasks::tasks(&api, &job).await)
            .iter()
            .map(|t| t["id"].clone())
            .collect();
        agents[0].kill();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            before.iter().all(|p| alive(*p)),
            "tasks died with their agent"
        );
        agents[0].start()?;
        wait_connected(&api, 1).await?;
        // Give the re-registration time to be reconciled, then check nothing moved.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let list = wait_tasks(&api, &job, "2 RUNNING again", WAIT, |l| {
            running(l).len() == 2
        })
        .await?;
        assert_eq!(pids(&running(&list)), before);
        let ids_after: Vec<Value> = running(&list).iter().map(|t| t["id"].clone()).collect();
        assert_eq!(ids_after, ids_before);
        assert_eq!(live(&list).len(), 2, "{list:?}");
        Ok(())
    })
    .await;
}

/// SIGKILL of the leader of three masters leaves tasks untouched and
/// launches no duplicate.
#[tokio::test(flavor = "multi_thread")]
async fn leader_failover_keeps_tasks_without_duplicates() {
    bounded(120, async {
        let mut c = Cluster::start(3, &[])?;
        let leader = c.wait_leader(&[1, 2, 3], WAIT).await?;
        let api = c.master(leader).api();
        let _agents = start_agents(&c, &[("a", &[]), ("b", &[])])?;
        wait_connected(&api, 2).await?;
        let job = job_id("steady");
        submit(&api, &spec("steady", "sleep 600", 4, 16)).await?;
        let list = wait_tasks(&api, &job, "4 RUNNING", WAIT, |l| running(l).len() == 4).await?;
        let before = pids(&running(&list));
        c.master_mut(leader).kill();
        let others: Vec<u64> = [1, 2, 3].into_iter().filter(|i| *i != leader).collect();
        let new_leader = c.wait_leader(&others, WAIT).await?;
        let api = c.master(new_leader).api();
        wait_connected(&api, 2).await?;
        // Several reconcile rounds of the new leader.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let list = ocean_tests::tasks::tasks(&api, &job).await;
        assert_eq!(live(&list).len(), 4, "duplicates or losses: {list:?}");
        assert_eq!(pids(&running(&list)), before);
        assert!(before.iter().all(|p| alive(*p)));
        Ok(())
    })
    .await;
}

/// Three agents with different attributes honour a constraint.
#[tokio::test(flavor = "multi_thread")]
async fn constraints_choose_the_agents() {
    bounded(90, async {
        let c = Cluster::start(1, &[])?;
        let api = c.master(1).api();
        let agents = start_agents(
            &c,
            &[
                ("x", &["--hostname", "host-x", "--attr", "idc=x1"]),
                ("y", &["--hostname", "host-y", "--attr", "idc=y1"]),
                ("z", &["--hostname", "host-z", "--attr", "idc=z1"]),
            ],
        )?;
        wait_connected(&api, 3).await?;
        let job = job_id("picky");
        let mut s = spec("picky", "sleep 600", 4, 16);
        s["constraints"] = json!([["idc", "LIKE", "y.*"]]);
        submit(&api, &s).await?;
        let list = wait_tasks(&api, &job, "4 RUNNING", WAIT, |l| running(l).len() == 4).await?;
        let y = agents[1].id().expect("agent y id");
        for t in running(&list) {
            assert_eq!(t["agent"], y.as_str(), "task on the wrong agent: {t}");
        }
        // UNIQUE hostname on three agents: three run, the fourth waits with a reason.
        let job = job_id("spread");
        let mut s = spec("spread", "sleep 600", 4, 16);
        s["constraints"] = json!([["hostname", "UNIQUE"]]);
        submit(&api, &s).await?;
        let list = wait_tasks(&api, &job, "3 RUNNING", WAIT, |l| running(l).len() == 3).await?;
        let mut agents_used: Vec<String> = running(&list)
            .iter()
            .map(|t| t["agent"].as_str().unwrap_or_default().to_string())
            .collect();
        agents_used.sort();
        agents_used.dedup();
        assert_eq!(agents_used.len(), 3);
        let r = api.get(&format!("/v1/jobs/{job}")).await?;
        let waiting = r.body["waiting"].as_str().unwrap_or_default().to_string();
        assert!(
            waiting.contains("hostname:UNIQUE"),
            "no reason given: {}",
            r.body
        );
        Ok(())
    })
    .await;
}

/// Scaling 3 -> 10 -> 2 gives exactly that many running processes.
#[tokio::test(flavor = "multi_thread")]
async fn scaling_up_and_down_counts_processes() {
    bounded(120, async {
        let c = Cluster::start(1, &[])?;
        let api = c.master(1).api();
        let agents = start_agents(&c, &[("a", &[])])?;
        wait_connected(&api, 1).await?;
        let parent = agents[0].cgroup_parent();
        let job = job_id("elastic");
        submit(&api, &spec("elastic", "sleep 600", 3, 8)).await?;
        for n in [3usize, 10, 2] {
            if n != 3 {
                let r = api
                    .post(&format!("/v1/jobs/{job}/scale"), &json!({"instances": n}))
                    .await?;
                assert_eq!(r.status, 200, "{}", r.body);
            }
            let list = wait_tasks(
                &api,
                &job,
                &format!("{n} RUNNING, nothing else"),
                WAIT,
                |l| running(l).len() == n && live(l).len() == n,
            )
            .await?;
            // Exactly n processes in exactly n task cgroups.
            let deadline = std::time::Instant::now() + WAIT;
            loop {
                let alive_pids = pids(&running(&list))
                    .into_iter()
                    .filter(|p| alive(*p))
                    .count();
                let groups = cgroups_under(&parent).len() / cgroup_hierarchies(&parent);
                if alive_pids == n && groups == n {
                    break;
                }
                anyhow::ensure!(
                    std::time::Instant::now() < deadline,
                    "scale {n}: {alive_pids} processes, {groups} cgroups"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let r = api
            .post(
                &format!("/v1/jobs/{job}/scale"),
                &json!({"instances": "ten"}),
            )
            .await?;
        assert_eq!(r.status, 400);
        assert_eq!(r.body["errors"][0]["field"], "instances", "{}", r.body);
        let r = api
            .post("/v1/jobs/nope/scale", &json!({"instances": 1}))
            .await?;
        assert_eq!(r.status, 404);
        Ok(())
    })
    .await;
}

/// How many hierarchies the agent's tasks appear in: every mounted one
/// holding its parent directory (v1: cpu, memory, pids, and cpuacct where
/// it is mounted apart; v2: one).
fn cgroup_hierarchies(parent: &str) -> usize {
    cgroup_roots()
        .iter()
        .filter(|r| r.join(parent).is_dir())
        .count()
        .max(1)
}

/// Logs of a task are readable through the master, with tail and follow;
/// bad parameters name themselves.
#[tokio::test(flavor = "multi_thread")]
async fn task_logs_through_the_master() {
    bounded(60, async {
        let c = Cluster::start(1, &[])?;
        let api = c.master(1).api();
        let _agents = start_agents(&c, &[("a", &[])])?;
        wait_connected(&api, 1).await?;
        let job = job_id("chatty");
        submit(
            &api,
            &spec(
                "chatty",
                "for i in 1 2 3 4 5; do echo line$i; done; echo oops >&2; sleep 600",
                1,
                16,
            ),
        )
        .await?;
        let list = wait_tasks(&api, &job, "RUNNING", WAIT, |l| running(l).len() == 1).await?;
        let id = running(&list)[0]["id"].as_str().unwrap().to_string();
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let out = api.get_text(&format!("/v1/tasks/{id}/logs")).await?;
            if out.contains("line5") {
                break;
            }
            anyhow::ensure!(std::time::Instant::now() < deadline, "no output: {out:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let tail = api.get_text(&format!("/v1/tasks/{id}/logs?tail=2")).await?;
        assert_eq!(tail.trim_end(), "line4\nline5");
        let err = api
            .get_text(&format!("/v1/tasks/{id}/logs?stream=stderr"))
            .await?;
        assert_eq!(err.trim_end(), "oops");
        let r = api.get(&format!("/v1/tasks/{id}/logs?stream=nope")).await?;
        assert_eq!(
            (r.status, r.body["errors"][0]["field"].clone()),
            (400, json!("stream"))
        );
        let r = api.get("/v1/tasks/no-such-task/logs").await?;
        assert_eq!(r.status, 404);
        Ok(())
    })
    .await;
}

/// `GROUP_BY idc` spreads a job evenly over every idc present, however many
/// agents each idc has.
#[tokio::test(flavor = "multi_thread")]
async fn group_by_spreads_over_the_idcs() {
    bounded(90, async {
        let c = Cluster::start(1, &[])?;
        let api = c.master(1).api();
        let agents = start_agents(
            &c,
            &[
                ("a1", &["--hostname", "host-a1", "--attr", "idc=a"]),
                ("a2", &["--hostname", "host-a2", "--attr", "idc=a"]),
                ("a3", &["--hostname", "host-a3", "--attr", "idc=a"]),
                ("b1", &["--hostname", "host-b1", "--attr", "idc=b"]),
            ],
        )?;
        wait_connected(&api, 4).await?;
        let b1 = agents[3].id().expect("agent b1 id");
        let job = job_id("balanced");
        let mut s = spec("balanced", "sleep 600", 6, 8);
        s["constraints"] = json!([["idc", "GROUP_BY"]]);
        submit(&api, &s).await?;
        let list = wait_tasks(&api, &job, "6 RUNNING", WAIT, |l| running(l).len() == 6).await?;
        let in_b = running(&list)
            .iter()
            .filter(|t| t["agent"] == b1.as_str())
            .count();
        assert_eq!(in_b, 3, "idc b should hold half: {list:?}");
        Ok(())
    })
    .await;
}

/// One master and one agent with 1 cpu and 1 GiB, connected.
async fn one_small_agent() -> anyhow::Result<(Cluster, Api, Vec<AgentProc>)> {
    let c = Cluster::start(1, &[])?;
    let api = c.master(1).api();
    let agents = start_agents(&c, &[("small", &["--resources", "cpus=1,mem=1024"])])?;
    wait_connected(&api, 1).await?;
    Ok((c, api, agents))
}

/// A job of `instances` long sleeps of `cpus` each.
fn cpu_job(name: &str, instances: u32, cpus: f64) -> Value {
    let mut s = spec(name, "sleep 600", instances, 16);
    s["resources"]["cpus"] = json!(cpus);
    s
}

/// Submits `cpu_job(name, ..)` and waits until all its instances run;
/// returns its id.
async fn run_cpu_job(api: &Api, name: &str, instances: u32, cpus: f64) -> anyhow::Result<String> {
    let id = job_id(name);
    submit(api, &cpu_job(name, instances, cpus)).await?;
    let what = format!("{instances} {name} RUNNING");
    wait_tasks(api, &id, &what, WAIT, |l| {
        running(l).len() == instances as usize
    })
    .await?;
    Ok(id)
}

/// Whether a job (as the API shows it) waits for cpus.
fn waits_for_cpus(job: &Value) -> bool {
    job["waiting"].as_str().is_some_and(|w| w.contains("cpus"))
}

/// A system-class job (priority >= 1000) that fits nowhere preempts a
/// lower-priority task, visibly (reason `preempted` in the task's events);
/// an ordinary job only waits.
#[tokio::test(flavor = "multi_thread")]
async fn system_jobs_preempt_and_ordinary_jobs_wait() {
    bounded(90, async {
        let (_c, api, _agents) = one_small_agent().await?;
        let low = run_cpu_job(&api, "low", 2, 0.5).await?;

        // Priority 500 is not the system class: it waits, nothing is killed.
        let mid = job_id("mid");
        let mut s = cpu_job("mid", 1, 0.5);
        s["priority"] = json!(500);
        submit(&api, &s).await?;
        wait_job(&api, &mid, "mid waits for cpus", WAIT, waits_for_cpus).await?;
        assert_eq!(
            running(&ocean_tests::tasks::tasks(&api, &low).await).len(),
            2
        );
        api.delete(&format!("/v1/jobs/{mid}")).await?;

        let high = job_id("high");
        let mut s = cpu_job("high", 1, 0.5);
        s["priority"] = json!(1000);
        submit(&api, &s).await?;
        if let Err(e) =
            wait_tasks(&api, &high, "high RUNNING", WAIT, |l| running(l).len() == 1).await
        {
            let r = api.get(&format!("/v1/jobs/{high}")).await?;
            anyhow::bail!("{e:#}; job: {}", r.body);
        }
        let list = wait_tasks(&api, &low, "one low task preempted", WAIT, |l| {
            l.iter()
                .any(|t| t["reason"] == "preempted" && t["state"] == "KILLED")
        })
        .await?;
        let victim = list.iter().find(|t| t["reason"] == "preempted").unwrap();
        assert!(
            victim["message"]
                .as_str()
                .unwrap_or_default()
                .contains(&high),
            "{victim}"
        );
        assert_eq!(running(&list).len(), 1, "{list:?}");
        Ok(())
    })
    .await;
}

/// A job that fits nowhere keeps its reason while nothing changes (the
/// leader then reuses its last plan instead of planning again every
/// second), and is placed as soon as another job's end makes room.
#[tokio::test(flavor = "multi_thread")]
async fn a_waiting_job_is_placed_when_room_frees() {
    bounded(90, async {
        let (_c, api, _agents) = one_small_agent().await?;
        let big = run_cpu_job(&api, "big", 1, 0.75).await?;

        let next = job_id("next");
        let s = cpu_job("next", 1, 0.5);
        submit(&api, &s).await?;
        wait_job(&api, &next, "next waits for cpus", WAIT, waits_for_cpus).await?;
        // Several rounds (one a second) with nothing changed.
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        let r = api.get(&format!("/v1/jobs/{next}")).await?;
        assert!(waits_for_cpus(&r.body), "{}", r.body);
        assert!(live(&ocean_tests::tasks::tasks(&api, &next).await).is_empty());

        api.delete(&format!("/v1/jobs/{big}")).await?;
        if let Err(e) =
            wait_tasks(&api, &next, "next RUNNING", WAIT, |l| running(l).len() == 1).await
        {
            let r = api.get(&format!("/v1/jobs/{next}")).await?;
            anyhow::bail!("{e:#}; job: {}", r.body);
        }
        wait_job(&api, &next, "no reason left", WAIT, |j| {
            j["waiting"].is_null()
        })
        .await?;
        Ok(())
    })
    .await;
}

/// A quota on a service-tree node (from the masters' config file) holds the
/// tasks over it, with the quota as the reason.
#[tokio::test(flavor = "multi_thread")]
async fn quotas_hold_tasks_over_them() {
    bounded(90, async {
        let dir = tempfile::tempdir()?;
        let cfg = dir.path().join("master.toml");
        // Flags from the test cluster override everything but [scheduler].
        std::fs::write(
            &cfg,
            format!(
                "id = 1\ndata_dir = \"/nonexistent\"\npeers = {{ 1 = \"127.0.0.1:1\" }}\n\
                 [scheduler]\n[[scheduler.quotas]]\nnode = \"{}\"\ncpus = 0.25\n",
                job_id("capped")
            ),
        )?;
        let c = Cluster::start(1, &["--config", cfg.to_str().unwrap_or_default()])?;
        let api = c.master(1).api();
        let _agents = start_agents(&c, &[("a", &[])])?;
        wait_connected(&api, 1).await?;
        let job = job_id("capped");
        submit(&api, &spec("capped", "sleep 600", 3, 8)).await?;
        wait_tasks(&api, &job, "2 RUNNING", WAIT, |l| running(l).len() == 2).await?;
        wait_job(&api, &job, "the quota as the reason", WAIT, |j| {
            j["waiting"]
                .as_str()
                .is_some_and(|w| w.contains("over quota"))
        })
        .await?;
        assert_eq!(live(&ocean_tests::tasks::tasks(&api, &job).await).len(), 2);
        Ok(())
    })
    .await;
}
