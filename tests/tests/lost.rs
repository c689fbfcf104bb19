//! Lost agents, leader changes and maintenance, end to end: real masters,
//! real agents (`ocean agent`), tasks as real processes in cgroups. An
//! agent is lost by SIGKILL (with its tasks: the host died) or SIGSTOP (it
//! stops answering, its tasks keep running); every test checks what really
//! runs in the agents' cgroups, not only what the masters say.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use ocean_tests::tasks::{
    alive, bounded, live, live_task_cgroups, pids, reap_cgroups, running, submit, tasks,
    wait_connected, wait_tasks,
};
use ocean_tests::{http::job_id, ocean_bin, AgentProc, Api, Cluster};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

fn spec(name: &str, instances: u32) -> Value {
    json!({
        "id": job_id(name),
        "cmd": "sleep 600",
        "instances": instances,
        "resources": {"cpus": 0.01, "mem": 16},
        "kill_grace_period_seconds": 1,
        "placement_policy": "spread",
    })
}

fn start_agents(c: &Cluster, names: &[&str]) -> anyhow::Result<Vec<AgentProc>> {
    names
        .iter()
        .map(|name| {
            let mut a = c.new_agent(name, &["--hostname", &format!("host-{name}")]);
            a.start()?;
            Ok(a)
        })
        .collect()
}

/// The agents' ids, once every one has written its id.
async fn agent_ids(agents: &[AgentProc]) -> anyhow::Result<Vec<String>> {
    let deadline = Instant::now() + WAIT;
    loop {
        let ids: Vec<Option<String>> = agents.iter().map(AgentProc::id).collect();
        if ids.iter().all(Option::is_some) {
            return Ok(ids.into_iter().flatten().collect());
        }
        anyhow::ensure!(Instant::now() < deadline, "agents wrote no id");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ids_on(list: &[Value], agent: &str) -> Vec<String> {
    live(list)
        .iter()
        .filter(|t| t["agent"] == agent)
        .map(|t| t["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn ids(list: &[Value]) -> BTreeSet<String> {
    list.iter()
        .map(|t| t["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Task processes alive in the cgroups of `agents`, as task ids.
fn really_running(agents: &[AgentProc]) -> BTreeSet<String> {
    agents
        .iter()
        .flat_map(|a| live_task_cgroups(&a.cgroup_parent()))
        .collect()
}

async fn agent_json(api: &Api, id: &str) -> Value {
    api.get(&format!("/v1/agents/{id}"))
        .await
        .map(|r| r.body)
        .unwrap_or(Value::Null)
}

/// SIGKILL of an agent and its tasks (the host died) in a 3-agent cluster:
/// its tasks end LOST and replacements run on the other two agents.
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_of_an_agent_and_its_tasks_gives_replacements_running_on_the_others() {
    bounded(150, async {
        let c = Cluster::start(1, &[])?;
        let api = c.master(1).api();
        let mut agents = start_agents(&c, &["a", "b", "c"])?;
        let agent_ids = agent_ids(&agents).await?;
        wait_connected(&api, 3, WAIT).await?;
        let job = job_id("lost-host");
        submit(&api, &spec("lost-host", 6)).await?;
        let list = wait_tasks(&api, &job, "6 RUNNING", WAIT, |l| running(l).len() == 6).await?;
        let victim = (0..3)
            .max_by_key(|i| ids_on(&list, &agent_ids[*i]).len())
            .unwrap_or(0);
        let victim_id = agent_ids[victim].clone();
        let doomed = ids_on(&list, &victim_id);
        anyhow::ensure!(!doomed.is_empty(), "no task on any agent: {list:?}");

        let t0 = Instant::now();
        agents[victim].kill();
        reap_cgroups(&agents[victim].cgroup_parent());
        let list = wait_tasks(&api, &job, "replacements RUNNING elsewhere", WAIT, |l| {
            running(l).len() == 6 && running(l).iter().all(|t| t["agent"] != victim_id.as_str())
        })
        .await?;
        eprintln!(
            "{} replacement(s) RUNNING {:?} after the SIGKILL",
            doomed.len(),
            t0.elapsed()
        );
        for id in &doomed {
            let t = list
                .iter()
                .find(|t| t["id"] == id.as_str())
                .ok_or_else(|| anyhow::anyhow!("task {id} vanished: {list:?}"))?;
            assert_eq!(t["state"], "LOST", "{t}");
            assert_eq!(t["reason"], "agent_unreachable", "{t}");
        }
        assert_eq!(live(&list).len(), 6, "{list:?}");
        let a = agent_json(&api, &victim_id).await;
        assert_eq!(a["unreachable"], true, "{a}");
        assert_eq!(a["connected"], false, "{a}");
        // What the masters say is what runs.
        let survivors: Vec<AgentProc> = agents
            .drain(..)
            .enumerate()
            .filter(|(i, _)| *i != victim)
            .map(|(_, a)| a)
            .collect();
        assert_eq!(really_running(&survivors), ids(&running(&list)));
        Ok(())
    })
    .await;
}

/// SIGSTOP of an agent past the timeout, then SIGCONT: the job that is
/// replaced at once runs exactly its instances once the agent is back (the
/// agent kills its replaced tasks), and the job that waits for its agent
/// keeps its tasks without any replacement.
#[tokio::test(flavor = "multi_thread")]
async fn sigstop_past_the_timeout_then_sigcont_leaves_exactly_the_requested_instances() {
    bounded(150, async {
        let c = Cluster::start(1, &[])?;
        let api = c.master(1).api();
        let agents = start_agents(&c, &["a", "b"])?;
        let agent_ids = agent_ids(&agents).await?;
        wait_connected(&api, 2, WAIT).await?;
        let moves = job_id("moves");
        let waits = job_id("waits");
        submit(&api, &spec("moves", 4)).await?;
        let mut w = spec("waits", 2);
        w["unreachable_strategy"] = json!({"replace_after_seconds": 600});
        submit(&api, &w).await?;
        let list = wait_tasks(&api, &moves, "4 RUNNING", WAIT, |l| running(l).len() == 4).await?;
        let wlist = wait_tasks(&api, &waits, "2 RUNNING", WAIT, |l| running(l).len() == 2).await?;
        let stopped = &agent_ids[0];
        let old_pids = pids(
            &running(&list)
                .into_iter()
                .filter(|t| t["agent"] == stopped.as_str())
                .collect::<Vec<_>>(),
        );
        let waiting_ids = ids_on(&wlist, stopped);
        let waiting_pids = pids(&wlist);
        anyhow::ensure!(
            !old_pids.is_empty() && !waiting_ids.is_empty(),
            "spread placed nothing on agent a: {list:?} {wlist:?}"
        );

        agents[0].process.signal(Signal::SIGSTOP);
        let list = wait_tasks(&api, &moves, "replaced on agent b", WAIT, |l| {
            running(l).len() == 4 && running(l).iter().all(|t| t["agent"] != stopped.as_str())
        })
        .await?;
        // The stopped agent's tasks still run: only the agent is silent.
        assert!(
            old_pids.iter().all(|p| alive(*p)),
            "tasks died with a stopped agent"
        );
        let wlist = wait_tasks(&api, &waits, "marked unreachable", WAIT, |l| {
            l.iter()
                .filter(|t| waiting_ids.contains(&t["id"].as_str().unwrap_or_default().to_string()))
                .all(|t| t["unreachable_since_ms"].as_u64().is_some())
        })
        .await?;
        assert_eq!(
            live(&wlist).len(),
            2,
            "the waiting job was replaced: {wlist:?}"
        );
        assert_eq!(running(&list).len(), 4);

        agents[0].process.signal(Signal::SIGCONT);
        let deadline = Instant::now() + WAIT;
        loop {
            let a = agent_json(&api, stopped).await;
            let back = a["connected"] == true && a["unreachable"] == false;
            if back && old_pids.iter().all(|p| !alive(*p)) {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the agent is not back, or its replaced tasks still run: {a} alive {:?}",
                old_pids.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let wlist = wait_tasks(&api, &waits, "the wait is over", WAIT, |l| {
            running(l).len() == 2 && l.iter().all(|t| t["unreachable_since_ms"].is_null())
        })
        .await?;
        assert_eq!(
            pids(&running(&wlist)),
            waiting_pids,
            "the waiting job's tasks moved"
        );
        // Settled: exactly what was asked, in the state and in the cgroups.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let list = tasks(&api, &moves).await;
        let wlist = tasks(&api, &waits).await;
        assert_eq!(live(&list).len(), 4, "{list:?}");
        assert_eq!(running(&list).len(), 4, "{list:?}");
        assert_eq!(live(&wlist).len(), 2, "{wlist:?}");
        let mut expected = ids(&running(&list));
        expected.extend(ids(&running(&wlist)));
        assert_eq!(really_running(&agents), expected);
        Ok(())
    })
    .await;
}

/// SIGKILL of the leader just after it acknowledged a scale-up: the next
/// leader finishes the job with exactly the requested tasks, none twice.
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_of_the_leader_during_a_scale_up_leaves_exactly_the_requested_number() {
    bounded(180, async {
        let mut c = Cluster::start(3, &[])?;
        let leader = c.wait_leader(&[1, 2, 3], WAIT).await?;
        let api = c.master(leader).api();
        let agents = start_agents(&c, &["a", "b"])?;
        wait_connected(&api, 2, WAIT).await?;
        let job = job_id("grows");
        submit(&api, &spec("grows", 2)).await?;
        wait_tasks(&api, &job, "2 RUNNING", WAIT, |l| running(l).len() == 2).await?;
        let r = api
            .post(&format!("/v1/jobs/{job}/scale"), &json!({"instances": 12}))
            .await?;
        assert_eq!(r.status, 200, "{}", r.body);
        // Kill it while its round places and launches the ten new tasks.
        tokio::time::sleep(Duration::from_millis(30)).await;
        c.master_mut(leader).kill();
        let others: Vec<u64> = [1, 2, 3].into_iter().filter(|i| *i != leader).collect();
        let new_leader = c.wait_leader(&others, WAIT).await?;
        let api = c.master(new_leader).api();
        let list = wait_tasks(&api, &job, "12 RUNNING", WAIT, |l| running(l).len() == 12).await?;
        // Several rounds of the new leader later, nothing more was started.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let later = tasks(&api, &job).await;
        assert_eq!(live(&later).len(), 12, "{later:?}");
        assert_eq!(ids(&running(&later)), ids(&running(&list)));
        assert_eq!(really_running(&agents), ids(&running(&later)));
        let spec_now = api.get(&format!("/v1/jobs/{job}")).await?.body;
        assert_eq!(
            spec_now["spec"]["instances"], 12,
            "the acknowledged scale was lost"
        );
        Ok(())
    })
    .await;
}

/// `ocean agent drain` moves every task to another agent without the job
/// ever running fewer than its instances; operator statuses decide where
/// new tasks go, and bad requests name the field.
#[tokio::test(flavor = "multi_thread")]
async fn drain_moves_tasks_off_while_keeping_the_jobs_capacity() {
    bounded(150, async {
        let c = Cluster::start(1, &[])?;
        let api = c.master(1).api();
        let agents = start_agents(&c, &["a", "b"])?;
        let ids_ = agent_ids(&agents).await?;
        let (a, b) = (ids_[0].clone(), ids_[1].clone());
        wait_connected(&api, 2, WAIT).await?;
        // b takes nothing new while it is a problem: everything lands on a.
        let r = api
            .post(
                &format!("/v1/agents/{b}/status"),
                &json!({"status": "problem", "message": "disk"}),
            )
            .await?;
        assert_eq!(r.status, 200, "{}", r.body);
        let job = job_id("drained");
        submit(&api, &spec("drained", 3)).await?;
        let list = wait_tasks(&api, &job, "3 RUNNING on a", WAIT, |l| {
            running(l).len() == 3 && running(l).iter().all(|t| t["agent"] == a.as_str())
        })
        .await?;
        assert_eq!(agent_json(&api, &b).await["status"], "problem");

        let cli = |args: &[&str]| {
            let out = std::process::Command::new(ocean_bin())
                .arg("--addr")
                .arg(c.master(1).http.to_string())
                .args(args)
                .output()
                .expect("run the ocean CLI");
            assert!(
                out.status.success(),
                "ocean {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        cli(&["agent", "status", &b, "online"]);
        let out = cli(&["agent", "drain", &a, "--message", "kernel upgrade"]);
        assert!(out.contains("draining"), "{out}");
        let before = pids(&running(&list));
        let deadline = Instant::now() + WAIT;
        let mut least = usize::MAX;
        loop {
            let l = tasks(&api, &job).await;
            // Counted only when the list was read (an empty list is an
            // unanswered request, not a job at zero).
            if !l.is_empty() {
                least = least.min(running(&l).len());
            }
            let done = running(&l).len() == 3
                && running(&l).iter().all(|t| t["agent"] == b.as_str())
                && ids_on(&l, &a).is_empty();
            if done {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "drain not done: {l:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            least, 3,
            "the job ran fewer than its 3 instances during the drain"
        );
        let deadline = Instant::now() + WAIT;
        while before.iter().any(|p| alive(*p)) {
            anyhow::ensure!(Instant::now() < deadline, "old tasks still run on a");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let agent = agent_json(&api, &a).await;
        assert_eq!(agent["status"], "draining", "{agent}");
        assert_eq!(agent["status_message"], "kernel upgrade", "{agent}");
        let l = tasks(&api, &job).await;
        assert_eq!(really_running(&agents), ids(&running(&l)));

        // Bad input is named; unknown agents are 404.
        let r = api
            .post(
                &format!("/v1/agents/{a}/status"),
                &json!({"status": "asleep"}),
            )
            .await?;
        assert_eq!(r.status, 422, "{}", r.body);
        assert_eq!(r.body["errors"][0]["field"], "status", "{}", r.body);
        let r = api
            .post(
                &format!("/v1/agents/{a}/status"),
                &json!({"state": "online"}),
            )
            .await?;
        assert_eq!(r.status, 422, "{}", r.body);
        let r = api
            .post("/v1/agents/no-such-agent/drain", &json!({}))
            .await?;
        assert_eq!(r.status, 404, "{}", r.body);
        let counts: BTreeMap<String, usize> =
            running(&l).iter().fold(BTreeMap::new(), |mut m, t| {
                *m.entry(t["agent"].as_str().unwrap_or_default().to_string())
                    .or_default() += 1;
                m
            });
        assert_eq!(counts.get(&b), Some(&3), "{counts:?}");
        Ok(())
    })
    .await;
}
