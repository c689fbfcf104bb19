//! The agent runtime against a fake leader: real processes in real cgroups,
//! driven over the real gRPC protocol, with task logs read over HTTP.

#[allow(dead_code)]
#[path = "../executor/harness.rs"]
mod harness;

mod fake_master;
mod health;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, ensure, Context};
use fake_master::FakeMaster;
use harness::{bounded, process_exists, Harness};
use ocean_agent::session::AgentIdentity;
use ocean_agent::{AgentConfig, HostResources, PortRange};
use ocean_proto::agent::{
    master_message::Kind, Kill, KillTask, Launch, LaunchTask, Reconcile, TaskStatus,
};
use tokio::sync::oneshot;

const WAIT: Duration = Duration::from_secs(15);

fn identity() -> AgentIdentity {
    AgentIdentity {
        id: "agent-test".into(),
        hostname: "test-host".into(),
        attributes: BTreeMap::from([("status".to_string(), "online".to_string())]),
        resources: HostResources {
            cpus: 2.0,
            mem_mib: 1024,
            disk_mib: 1024,
        },
        ports: PortRange {
            low: 31200,
            high: 31299,
        },
        address: "127.0.0.1".into(),
    }
}

/// An agent runtime under test, talking to a fake master.
struct RunningAgent {
    /// Where it serves task logs.
    http_addr: String,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<ocean_agent::error::Result<()>>,
}

impl RunningAgent {
    /// Starts the agent's runtime against the master at `master`, with its
    /// log server on a free loopback port.
    async fn start(h: &Harness, master: &str) -> anyhow::Result<RunningAgent> {
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let http_addr = http.local_addr()?.to_string();
        let config = AgentConfig::new(
            identity(),
            vec![master.to_string()],
            h.config(),
            h.cgroups.clone(),
        );
        let (stop, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(ocean_agent::runtime::run(config, http, async {
            let _ = stop_rx.await;
        }));
        Ok(RunningAgent {
            http_addr,
            stop,
            task,
        })
    }

    /// Stops it and waits (bounded) for the runtime to return.
    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        tokio::time::timeout(WAIT, self.task)
            .await
            .map_err(|_| anyhow!("the agent did not stop"))???;
        Ok(())
    }
}

fn shell(id: &str, cmd: &str) -> LaunchTask {
    LaunchTask {
        task_id: id.into(),
        job_id: "job1".into(),
        cmd: cmd.into(),
        kill_grace_ms: 1000,
        ..Default::default()
    }
}

/// Waits on stream `conn` until `task` reports `state` in a report that
/// arrives after history entry `since`.
async fn wait_state(
    master: &mut FakeMaster,
    conn: u64,
    since: usize,
    task: &str,
    state: &str,
) -> anyhow::Result<TaskStatus> {
    let hit = |s: &TaskStatus| s.task_id == task && s.state == state;
    if let Some(s) = master.history[since..].iter().find(|s| hit(s)) {
        return Ok(s.clone());
    }
    let (r, _) = master
        .report(conn, WAIT, |r| r.tasks.iter().any(hit))
        .await
        .with_context(|| format!("waiting for {task} to be {state}"))?;
    r.tasks.into_iter().find(hit).context("just matched")
}

async fn get(url: &str) -> anyhow::Result<(u16, String)> {
    let r = reqwest::get(url).await?;
    let code = r.status().as_u16();
    Ok((code, r.text().await?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_follows_the_leaders_commands() -> anyhow::Result<()> {
    let Some(h) = Harness::new("runtime")? else {
        return Ok(());
    };
    bounded(async {
        let mut master = FakeMaster::start().await?;
        let agent = RunningAgent::start(&h, &master.addr.to_string()).await?;
        let http_addr = agent.http_addr.clone();

        // Registration carries the log server's address and no tasks yet.
        let conn = master.accept(WAIT).await?;
        ensure!(conn.register.http_addr == http_addr, "{:?}", conn.register);
        ensure!(conn.register.tasks.is_empty());

        // Launch two tasks: STARTING and RUNNING with pids.
        conn.send(Kind::Launch(Launch {
            tasks: vec![
                shell("t1", "echo hello; echo world; sleep 30"),
                LaunchTask {
                    cmd: String::new(),
                    args: vec!["sleep".into(), "30".into()],
                    ..shell("t2", "")
                },
            ],
        }))
        .await?;
        let mut pids = BTreeMap::new();
        for task in ["t1", "t2"] {
            let running = wait_state(&mut master, conn.id, 0, task, "RUNNING").await?;
            ensure!(running.pid > 0, "{running:?}");
            let starting = wait_state(&mut master, conn.id, 0, task, "STARTING").await?;
            ensure!(starting.pid == running.pid, "{starting:?} vs {running:?}");
            pids.insert(task, running.pid);
        }
        let t1 = pids["t1"];

        // A duplicate launch re-reports instead of starting a second process.
        let since = master.history.len();
        conn.send(Kind::Launch(Launch {
            tasks: vec![shell("t1", "echo hello; sleep 30")],
        }))
        .await?;
        let again = wait_state(&mut master, conn.id, since, "t1", "RUNNING").await?;
        ensure!(again.pid == t1, "re-launch changed the pid: {again:?}");
        ensure!(
            !master.history[since..]
                .iter()
                .any(|s| s.task_id == "t1" && s.state != "RUNNING"),
            "re-launch started t1 again: {:?}",
            &master.history[since..]
        );

        // A bad launch is refused, naming the field.
        conn.send(Kind::Launch(Launch {
            tasks: vec![LaunchTask {
                args: vec!["true".into()],
                ..shell("bad", "true")
            }],
        }))
        .await?;
        let bad = wait_state(&mut master, conn.id, 0, "bad", "FAILED").await?;
        ensure!(bad.message.contains("cmd/args"), "{bad:?}");
        ensure!(bad.reason == "launch_failed");

        // Logs over HTTP: whole, tail, follow to the end, unknown task.
        let base = format!("http://{http_addr}/v1/tasks");
        let mut out = String::new();
        for _ in 0..100 {
            out = get(&format!("{base}/t1/logs")).await?.1;
            if out.contains("world") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ensure!(out == "hello\nworld\n", "{out:?}");
        let (code, tail) = get(&format!("{base}/t1/logs?tail=1")).await?;
        ensure!(code == 200 && tail == "world\n", "{code} {tail:?}");
        let (code, body) = get(&format!("{base}/nope/logs")).await?;
        ensure!(
            code == 404 && body.contains("\"not_found\""),
            "{code} {body}"
        );
        let (code, body) = get(&format!("{base}/t1/logs?stream=stdin")).await?;
        ensure!(code == 400 && body.contains("stream"), "{code} {body}");
        let (code, _) = get(&format!("{base}/..%2Fx/logs")).await?;
        ensure!(code == 400, "a path-escaping id gives {code}");

        conn.send(Kind::Launch(Launch {
            tasks: vec![shell(
                "t3",
                "for i in 1 2 3; do echo line$i; sleep 0.3; done",
            )],
        }))
        .await?;
        wait_state(&mut master, conn.id, 0, "t3", "STARTING").await?;
        let followed = tokio::time::timeout(WAIT, get(&format!("{base}/t3/logs?follow=true")))
            .await
            .context("follow did not end with the task")??;
        ensure!(followed.1 == "line1\nline2\nline3\n", "{followed:?}");

        // Kill: KILLED and the process is gone; an unknown task is settled.
        conn.send(Kind::Kill(Kill {
            tasks: vec![
                KillTask {
                    task_id: "t2".into(),
                    grace_ms: 500,
                },
                KillTask {
                    task_id: "ghost".into(),
                    grace_ms: 0,
                },
            ],
        }))
        .await?;
        let ghost = wait_state(&mut master, conn.id, 0, "ghost", "KILLED").await?;
        ensure!(ghost.reason == "unknown_task", "{ghost:?}");
        let killed = wait_state(&mut master, conn.id, 0, "t2", "KILLED").await?;
        ensure!(killed.pid == pids["t2"]);
        ensure!(!process_exists(pids["t2"]), "t2 still runs");

        // Reconcile: a full report of every known task.
        conn.send(Kind::Reconcile(Reconcile {})).await?;
        let (full, _) = master.report(conn.id, WAIT, |r| r.full).await?;
        let states: BTreeMap<&str, &str> = full
            .tasks
            .iter()
            .map(|s| (s.task_id.as_str(), s.state.as_str()))
            .collect();
        ensure!(
            states.get("t1") == Some(&"RUNNING")
                && states.get("t2") == Some(&"KILLED")
                && states.get("t3") == Some(&"FINISHED")
                && states.get("bad") == Some(&"FAILED")
                && !states.contains_key("ghost"),
            "{states:?}"
        );

        // The leader goes away: the agent registers again, t1 untouched.
        drop(conn);
        let conn = master.accept(WAIT).await?;
        let t1_again = conn
            .register
            .tasks
            .iter()
            .find(|s| s.task_id == "t1")
            .context("t1 in the new registration")?;
        ensure!(
            t1_again.state == "RUNNING" && t1_again.pid == t1,
            "{t1_again:?}"
        );
        ensure!(process_exists(t1), "t1 died with the stream");

        // Stopping the agent leaves its tasks running.
        agent.stop().await?;
        ensure!(process_exists(t1), "t1 died with the agent");
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_launch_is_recorded_at_once_and_runs_concurrently() -> anyhow::Result<()> {
    let Some(h) = Harness::new("batch")? else {
        return Ok(());
    };
    bounded(async {
        const N: usize = 100;
        let mut master = FakeMaster::start().await?;
        let _agent = RunningAgent::start(&h, &master.addr.to_string()).await?;
        let conn = master.accept(WAIT).await?;
        let tasks = (0..N)
            .map(|i| LaunchTask {
                cmd: String::new(),
                args: vec!["true".into()],
                ..shell(&format!("b{i}"), "")
            })
            .collect();
        // The Reconcile right behind the Launch sees every task already.
        conn.send(Kind::Launch(Launch { tasks })).await?;
        conn.send(Kind::Reconcile(Reconcile {})).await?;
        let (full, _) = master.report(conn.id, WAIT, |r| r.full).await?;
        ensure!(
            full.tasks.len() == N,
            "full report has {}",
            full.tasks.len()
        );
        let started = std::time::Instant::now();
        // `true` can end before the full report is taken: such a task's
        // FINISHED is in that report and may come in no later one.
        let mut finished: std::collections::BTreeSet<String> = full
            .tasks
            .iter()
            .filter(|s| s.state == "FINISHED")
            .map(|s| s.task_id.clone())
            .collect();
        while finished.len() < N {
            let (r, _) = master
                .report(conn.id, Duration::from_secs(50), |_| true)
                .await?;
            for s in r.tasks {
                ensure!(s.state != "FAILED", "{s:?}");
                if s.state == "FINISHED" {
                    finished.insert(s.task_id);
                }
            }
        }
        eprintln!("{N} tasks launched and finished in {:?}", started.elapsed());
        Ok(())
    })
    .await
}

/// Heartbeats keep the interval the leader gave (200 ms here) while the
/// runtime launches a burst of tasks: the session has a thread of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_their_interval_during_a_launch_burst() -> anyhow::Result<()> {
    let Some(h) = Harness::new("beats")? else {
        return Ok(());
    };
    bounded(async {
        let mut master = FakeMaster::start().await?;
        let agent = RunningAgent::start(&h, &master.addr.to_string()).await?;
        let conn = master.accept(WAIT).await?;
        let tasks = (0..60)
            .map(|i| shell(&format!("h{i}"), "sleep 30"))
            .collect();
        conn.send(Kind::Launch(Launch { tasks })).await?;
        let beats = master.heartbeats(conn.id, Duration::from_secs(3)).await;
        let gaps: Vec<Duration> = beats.windows(2).map(|w| w[1] - w[0]).collect();
        let worst = gaps.iter().max().copied().unwrap_or_default();
        ensure!(beats.len() >= 10, "only {} heartbeats in 3 s", beats.len());
        ensure!(
            worst < Duration::from_millis(600),
            "a heartbeat came {worst:?} after the previous one ({} beats)",
            beats.len()
        );
        let _ = agent.stop().await;
        Ok(())
    })
    .await
}
