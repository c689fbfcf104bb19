//! Master backup and restore with real processes: a 3-master cluster with
//! jobs, a real agent whose operator status is set, and frameworks' keys is
//! saved with `ocean operator snapshot save`; a fresh 3-master cluster
//! takes it with `ocean operator snapshot restore`, and every master of it
//! then holds every job (with its spec and versions), the agent with its
//! status and message, and every key with its value and revision. A second
//! restore onto the now non-empty cluster is refused without `--force`, and
//! a damaged file is refused with its reason.

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use ocean_tests::cluster::ocean_bin;
use ocean_tests::http::{job_id, job_spec, Api};
use ocean_tests::tasks::bounded;
use ocean_tests::Cluster;
use serde_json::{json, Value};

/// `ocean --addr ADDR operator snapshot ARGS...`: its stdout, or its
/// stderr as the error.
fn operator(addr: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(ocean_bin())
        .args(["--addr", addr, "operator", "snapshot"])
        .args(args)
        .output()
        .context("run ocean operator snapshot")?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What a restore must reproduce: jobs, agents and keys as the API lists
/// them, without what belongs to the answering cluster: agents' liveness
/// and usage, and a job's waiting reason (its leader's, recomputed from
/// which agents are connected to it, with the write that records it).
async fn contents(api: &Api, version: u64) -> anyhow::Result<Value> {
    let q = format!("?min_version={version}");
    let jobs: Vec<Value> = api.get(&format!("/v1/jobs{q}")).await?.body["jobs"]
        .as_array()
        .context("jobs")?
        .iter()
        .map(|j| {
            json!({
                "id": j["id"],
                "spec": j["spec"],
                "spec_version": j["spec_version"],
                "created_version": j["created_version"],
            })
        })
        .collect();
    let mut agents = api.get(&format!("/v1/agents{q}")).await?.body["agents"].clone();
    for a in agents.as_array_mut().into_iter().flatten() {
        let Some(a) = a.as_object_mut() else { continue };
        for field in [
            "connected",
            "last_heartbeat_ms",
            "unreachable",
            "usage",
            "host_checks",
        ] {
            a.remove(field);
        }
    }
    let mut keys = Vec::new();
    for ns in ["redis", "mysql"] {
        keys.push(api.get(&format!("/v1/frameworks/{ns}/kv{q}")).await?.body["keys"].clone());
    }
    Ok(json!({"jobs": jobs, "agents": agents, "keys": keys}))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_saved_snapshot_restores_every_job_agent_status_and_key_onto_a_fresh_cluster() {
    bounded(180, async {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("ocean.snap");
        let file_s = file.to_str().context("utf-8 path")?;

        // The source cluster, with data of every kind.
        let a = Cluster::start(3, &[])?;
        let leader = a.wait_leader(&[1, 2, 3], Duration::from_secs(20)).await?;
        let api = a.master(leader).api();
        let mut agent = a.new_agent("a", &["--hostname", "host-a"]);
        agent.start()?;
        ocean_tests::tasks::wait_connected(&api, 1, Duration::from_secs(30)).await?;
        let agent_id = agent.id().context("agent id")?;
        let r = api
            .post(
                &format!("/v1/agents/{agent_id}/status"),
                &json!({"status": "problem", "message": "disk errors on sdb"}),
            )
            .await?;
        assert_eq!(r.status, 200, "{:?}", r.body);
        for name in ["web", "api", "batch"] {
            // Jobs that fit nowhere: their tasks wait, so the state holds
            // still between the save and the comparison.
            let mut spec = job_spec(name);
            spec["resources"]["cpus"] = json!(512.0);
            let r = api.post("/v1/jobs", &spec).await?;
            assert_eq!(r.status, 201, "{:?}", r.body);
        }
        let r = api
            .post(
                &format!("/v1/jobs/{}/scale", job_id("web")),
                &json!({"instances": 3}),
            )
            .await?;
        assert_eq!(r.status, 200, "{:?}", r.body);
        for (ns, key, value) in [
            ("redis", "caches/c1", json!({"shards": 3})),
            ("redis", "caches/c2", json!({"shards": 1})),
            ("mysql", "dbs/orders", json!({"primary": "host-a"})),
        ] {
            let r = api
                .put_raw(
                    &format!("/v1/frameworks/{ns}/kv/{key}"),
                    serde_json::to_vec(&value)?,
                    "application/json",
                )
                .await?;
            assert!(r.is_success(), "{:?}", r.body);
        }
        let saved_version = api.get("/v1/status").await?.body["version"]
            .as_u64()
            .context("version")?;
        let before = contents(&api, saved_version).await?;

        // Saved through any master: the CLI finds the leader.
        let any = format!("http://{}", a.master(leader % 3 + 1).http);
        let out = operator(&any, &["save", file_s])?;
        assert!(out.contains("3 jobs") && out.contains("3 keys"), "{out}");
        let text = std::fs::read(&file)?;
        let header: Value =
            serde_json::from_slice(text.split(|b| *b == b'\n').nth(1).context("header line")?)?;
        assert!(header["index"].as_u64() > Some(0), "{header}");
        assert!(header["term"].as_u64() > Some(0), "{header}");
        assert!(
            header["version"].as_u64() >= Some(saved_version),
            "{header}"
        );
        assert_eq!(header["sha256"].as_str().map(str::len), Some(64));

        // A fresh cluster takes it, and every one of its masters has it.
        let b = Cluster::start(3, &[])?;
        let b_leader = b.wait_leader(&[1, 2, 3], Duration::from_secs(20)).await?;
        let b_addr = format!("http://{}", b.master(b_leader).http);
        let out = operator(&b_addr, &["restore", file_s])?;
        assert!(out.contains("restored"), "{out}");
        let restored_version = b.master(b_leader).api().get("/v1/status").await?.body["version"]
            .as_u64()
            .context("version")?;
        assert!(Some(restored_version) > header["version"].as_u64());
        for id in 1..=3 {
            let after = contents(&b.master(id).api(), restored_version).await?;
            assert_eq!(after["jobs"], before["jobs"], "jobs on master {id}");
            assert_eq!(after["agents"], before["agents"], "agents on master {id}");
            assert_eq!(after["keys"], before["keys"], "keys on master {id}");
        }
        let agents = before["agents"].as_array().context("agents")?;
        assert_eq!(agents.len(), 1);
        assert_eq!(agents[0]["status"], "problem");
        assert_eq!(agents[0]["status_message"], "disk errors on sdb");
        assert_eq!(before["jobs"].as_array().map(Vec::len), Some(3));
        let web = before["jobs"]
            .as_array()
            .context("jobs")?
            .iter()
            .find(|j| j["id"] == job_id("web").as_str())
            .context("job web")?;
        assert_eq!(web["spec"]["instances"], 3, "{web}");
        agent.kill();

        // Now it holds data: a second restore needs --force.
        let e = operator(&b_addr, &["restore", file_s])
            .expect_err("refused")
            .to_string();
        assert!(e.contains("force"), "{e}");
        operator(&b_addr, &["restore", "--force", file_s])?;

        // A damaged file is refused, naming why.
        let mut damaged = text.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 0xff;
        let bad = dir.path().join("damaged.snap");
        std::fs::write(&bad, &damaged)?;
        let e = operator(
            &b_addr,
            &["restore", "--force", bad.to_str().context("path")?],
        )
        .expect_err("refused")
        .to_string();
        assert!(e.contains("checksum"), "{e}");
        Ok(())
    })
    .await;
}
