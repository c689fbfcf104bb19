//! Agents registering with real masters: recorded through raft on every
//! master, stable ids across restarts, following the leader when it dies.

use std::time::{Duration, Instant};

use ocean_tests::tasks::bounded;
use ocean_tests::Cluster;
use serde_json::Value;

/// Waits until `check` holds for the agents master `id` lists.
async fn wait_agents(
    c: &Cluster,
    id: u64,
    what: &str,
    check: impl Fn(&[Value]) -> bool,
) -> anyhow::Result<Vec<Value>> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let list = match c.master(id).api().get("/v1/agents").await {
            Ok(r) => r.body["agents"].as_array().cloned().unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        if check(&list) {
            return Ok(list);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "master {id}: {what}; agents now {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn connected(list: &[Value]) -> usize {
    list.iter()
        .filter(|a| a["connected"] == Value::Bool(true))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_register_everywhere_and_follow_the_leader() {
    bounded(90, async {
        let mut c = Cluster::start(3, &[])?;
        let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(15)).await?;
        let mut a = c.new_agent(
            "a",
            &[
                "--attr",
                "idc=zw",
                "--attr",
                "rack=r1",
                "--resources",
                "cpus=4,mem=2048,disk=1000",
                "--hostname",
                "host-a",
            ],
        );
        let mut b = c.new_agent(
            "b",
            &[
                "--attr",
                "idc=lg",
                "--hostname",
                "host-b",
                "--ports",
                "40000-40100",
            ],
        );
        a.start()?;
        b.start()?;
        // Recorded through raft: every master lists both with their facts.
        for id in 1..=3 {
            wait_agents(&c, id, "both agents listed", |l| l.len() == 2).await?;
        }
        let list = wait_agents(&c, leader, "both agents connected", |l| connected(l) == 2).await?;
        let host_a = list
            .iter()
            .find(|x| x["hostname"] == "host-a")
            .cloned()
            .unwrap_or_default();
        assert_eq!(host_a["attributes"]["idc"], "zw");
        assert_eq!(host_a["attributes"]["rack"], "r1");
        assert_eq!(host_a["attributes"]["status"], "online");
        assert_eq!(host_a["resources"]["cpus"], 4.0);
        assert_eq!(host_a["resources"]["mem"], 2048);
        let host_b = list
            .iter()
            .find(|x| x["hostname"] == "host-b")
            .cloned()
            .unwrap_or_default();
        assert_eq!(host_b["ports"], "40000-40100");
        let first_version = host_a["registered_version"].clone();

        // The leader dies: both agents register with the new one.
        c.master_mut(leader).kill();
        let survivors: Vec<u64> = (1..=3).filter(|i| *i != leader).collect();
        let new = c.wait_leader(&survivors, Duration::from_secs(15)).await?;
        wait_agents(&c, new, "agents reconnected to the new leader", |l| {
            connected(l) == 2
        })
        .await?;

        // An agent restarted keeps its id: no third agent appears, and its
        // registration is the same record.
        let id_a = a.id();
        a.kill();
        let l = wait_agents(&c, new, "agent a seen disconnected", |l| connected(l) == 1).await?;
        assert_eq!(l.len(), 2);
        a.start()?;
        let l = wait_agents(&c, new, "agent a back", |l| connected(l) == 2).await?;
        assert_eq!(l.len(), 2, "a restarted agent registered as a new one");
        assert_eq!(a.id(), id_a);
        let again = l
            .iter()
            .find(|x| x["hostname"] == "host-a")
            .cloned()
            .unwrap_or_default();
        assert_eq!(again["registered_version"], first_version);
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_agent_flags_are_named() {
    let run = |args: &[&str]| {
        let o = std::process::Command::new(ocean_tests::ocean_bin())
            .arg("agent")
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run ocean agent");
        assert!(!o.status.success(), "ocean agent {args:?} should fail");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    assert!(run(&["--data-dir", d]).contains("--master"));
    assert!(run(&["--master", "127.0.0.1:1"]).contains("--data-dir"));
    assert!(
        run(&["--master", "127.0.0.1:1", "--data-dir", d, "--ports", "9-2"]).contains("--ports")
    );
    assert!(run(&[
        "--master",
        "127.0.0.1:1",
        "--data-dir",
        d,
        "--attr",
        "novalue"
    ])
    .contains("--attr"));
    assert!(run(&[
        "--master",
        "127.0.0.1:1",
        "--data-dir",
        d,
        "--resources",
        "cpus=lots"
    ])
    .contains("--resources"));
}
