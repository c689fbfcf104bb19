//! The service tree end to end, on real masters and real agents: quotas and
//! weights set through `PUT /v1/tree/{node}/quota` are replicated (every
//! master holds them, a new leader's scheduler honours them), `GET
//! /v1/tree` adds up (each node's totals are its own plus its children's,
//! down to the jobs), and tag queries select agents and tasks by their
//! tags, as `MATCH` constraints place tasks.

use std::time::{Duration, Instant};

use ocean_tests::tasks::{bounded, live, running, submit, wait_job, wait_tasks};
use ocean_tests::{http::job_id, AgentProc, Api, Cluster};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);
const LEADER_TIMEOUT: Duration = Duration::from_secs(15);
/// The product line every `job_id` lies in.
const PDL: &str = "cop.test_owt.qa_pdl.ocean";

fn spec(name: &str, instances: u32, cpus: f64) -> Value {
    json!({
        "id": job_id(name),
        "cmd": "sleep 600",
        "instances": instances,
        "resources": {"cpus": cpus, "mem": 8},
        "kill_grace_period_seconds": 1,
    })
}

fn agent(c: &Cluster, name: &str, extra: &[&str]) -> anyhow::Result<AgentProc> {
    let mut a = c.new_agent(name, extra);
    a.start()?;
    Ok(a)
}

async fn put_quota(api: &Api, node: &str, body: Value) -> anyhow::Result<ocean_tests::http::Reply> {
    api.put_raw(
        &format!("/v1/tree/{node}/quota"),
        serde_json::to_vec(&body)?,
        "application/json",
    )
    .await
}

/// Polls `GET path` on `api` until `check` holds (bounded).
async fn wait_get(
    api: &Api,
    path: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let body = api.get(path).await.map(|r| r.body).unwrap_or(Value::Null);
        if check(&body) {
            return Ok(body);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{what}: not reached within {WAIT:?}; {path} now {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A quota set through a follower is on every master, survives the
/// leader's death, and the new leader's scheduler holds a job to it (the
/// quota as the reason) until it is raised.
#[tokio::test(flavor = "multi_thread")]
async fn replicated_quotas_hold_on_every_master_after_a_leader_change() {
    bounded(150, async {
        let mut c = Cluster::start(3, &[])?;
        let old = c.wait_leader(&[1, 2, 3], LEADER_TIMEOUT).await?;
        let follower = (1..=3).find(|i| *i != old).unwrap_or(1);
        let path = format!("/v1/tree/{PDL}/quota");

        // Refused at the edge, naming the field.
        let r = put_quota(&c.master(follower).api(), PDL, json!({"cpus": -1})).await?;
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.body["errors"][0]["field"], "cpus", "{}", r.body);
        let r = put_quota(&c.master(follower).api(), "cop.test", json!({"weight": 2})).await?;
        assert_eq!(r.body["errors"][0]["field"], "weight", "{}", r.body);

        let r = put_quota(
            &c.master(follower).api(),
            PDL,
            json!({"cpus": 0.25, "weight": 3}),
        )
        .await?;
        assert_eq!(r.status, 200, "{}", r.body);
        for id in 1..=3 {
            wait_get(&c.master(id).api(), &path, "the quota replicated", |b| {
                b["quota"]["cpus"] == json!(0.25) && b["weight"] == json!(3.0)
            })
            .await?;
        }

        c.master_mut(old).kill();
        let survivors: Vec<u64> = (1..=3).filter(|i| *i != old).collect();
        let new = c.wait_leader(&survivors, LEADER_TIMEOUT).await?;
        assert_ne!(new, old);
        for id in &survivors {
            let b = c.master(*id).api().get(&path).await?.body;
            assert_eq!(b["replicated"]["cpus"], json!(0.25), "master {id}: {b}");
            let t = c
                .master(*id)
                .api()
                .get("/v1/tree?node=cop.test_owt.qa")
                .await?
                .body;
            let pdl = t["children"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|ch| ch["node"] == PDL)
                .cloned()
                .unwrap_or(Value::Null);
            // No job yet: the child appears once something lies under it.
            assert!(pdl.is_null() || pdl["quota"]["cpus"] == json!(0.25), "{t}");
        }

        // The new leader's scheduler holds the job to the replicated quota.
        let api = c.master(new).api();
        let _a = agent(&c, "a", &[])?;
        ocean_tests::tasks::wait_connected(&api, 1, WAIT).await?;
        let job = job_id("capped");
        submit(&api, &spec("capped", 3, 0.1)).await?;
        wait_tasks(&api, &job, "2 RUNNING", WAIT, |l| running(l).len() == 2).await?;
        let j = wait_job(&api, &job, "the quota as the reason", WAIT, |j| {
            j["waiting"]
                .as_str()
                .is_some_and(|w| w.contains("over quota") && w.contains(PDL))
        })
        .await?;
        assert_eq!(
            live(&ocean_tests::tasks::tasks(&api, &job).await).len(),
            2,
            "{j}"
        );
        let t = api.get(&format!("/v1/tree?node={PDL}")).await?.body;
        assert_eq!(t["quota"]["cpus"], json!(0.25), "{t}");
        assert_eq!(t["totals"]["tasks"], json!(2), "{t}");

        // Raised through the other survivor: the third task is placed.
        let other = survivors.iter().copied().find(|i| *i != new).unwrap_or(new);
        let r = put_quota(&c.master(other).api(), PDL, json!({"cpus": 1})).await?;
        assert_eq!(r.status, 200, "{}", r.body);
        wait_tasks(&api, &job, "3 RUNNING", WAIT, |l| running(l).len() == 3).await?;

        // Cleared: the config's defaults (none) apply again.
        let r = c.master(other).api().delete(&path).await?;
        assert_eq!(r.body["outcome"], "deleted", "{}", r.body);
        wait_get(&api, &path, "the quota cleared", |b| {
            b["replicated"].is_null() && b["quota"].is_null()
        })
        .await?;
        Ok(())
    })
    .await;
}

/// The numbers of a tree node's JSON that must add up.
const SUMMED: [&str; 6] = ["jobs", "tasks", "running", "agents", "cpus", "mem"];

/// Checks at `node` and every node below it that `totals` = `here` + the
/// children's totals; returns the number of nodes checked.
async fn check_sums(api: &Api, node: &str) -> anyhow::Result<usize> {
    let v = api.get(&format!("/v1/tree?node={node}")).await?.body;
    let mut checked = 1;
    for f in SUMMED {
        let here = v["here"][f].as_f64().unwrap_or(f64::NAN);
        let children: f64 = v["children"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|ch| ch["totals"][f].as_f64().unwrap_or(f64::NAN))
            .sum();
        let total = v["totals"][f].as_f64().unwrap_or(f64::NAN);
        anyhow::ensure!(
            (total - here - children).abs() < 1e-9,
            "{f} at '{node}': total {total} != here {here} + children {children}: {v}"
        );
    }
    for ch in v["children"].as_array().cloned().unwrap_or_default() {
        if ch["is_job"] != Value::Bool(true) {
            checked += Box::pin(check_sums(api, ch["node"].as_str().unwrap_or(""))).await?;
        }
    }
    Ok(checked)
}

/// Runs the `ocean` binary against `addr`; its stdout, or an error with
/// everything it printed.
fn ocean(args: &[&str], addr: &str) -> anyhow::Result<String> {
    let o = std::process::Command::new(ocean_tests::ocean_bin())
        .args(args)
        .env("OCEAN_ADDR", addr)
        .stdin(std::process::Stdio::null())
        .output()?;
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    anyhow::ensure!(
        o.status.success(),
        "ocean {args:?}: {}{out}{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    Ok(out)
}

/// Ids of the agents `GET /v1/agents?q=` selects.
async fn selected_agents(api: &Api, q: &str) -> anyhow::Result<Vec<String>> {
    let r = api.get(&format!("/v1/agents?q={}", urlencoding(q))).await?;
    anyhow::ensure!(r.status == 200, "q={q}: {}", r.body);
    let mut ids: Vec<String> = r.body["agents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["id"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    Ok(ids)
}

fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Two agents tagged in two places, jobs in two services, one pinned by a
/// `MATCH` constraint: the tree adds up at every node, and tag queries
/// select exactly the agents and tasks their tags say.
#[tokio::test(flavor = "multi_thread")]
async fn the_tree_adds_up_and_tag_queries_select_by_tags() {
    bounded(120, async {
        let c = Cluster::start(1, &[])?;
        let api = c.master(1).api();
        let a3 = agent(
            &c,
            "c3",
            &[
                "--tags",
                "cop.test_owt.qa_pdl.ocean_idc.c3_loc.bj_status.online",
            ],
        )?;
        let a4 = agent(&c, "c4", &["--tags", "cop.test_owt.qa_idc.c4_loc.sh"])?;
        ocean_tests::tasks::wait_connected(&api, 2, WAIT).await?;
        let (id3, id4) = (a3.id().unwrap_or_default(), a4.id().unwrap_or_default());
        // Tags shown on the agent, status as it is.
        let r = api.get(&format!("/v1/agents/{id4}")).await?;
        assert_eq!(
            r.body["tags"],
            json!(format!(
                "cop.test_owt.qa_idc.c4_loc.sh_status.online_hostname.{}",
                r.body["hostname"].as_str().unwrap_or("")
            )),
            "{}",
            r.body
        );

        submit(&api, &spec("web", 2, 0.1)).await?;
        let mut pinned = spec("pinned", 2, 0.1);
        pinned["constraints"] = json!([["tags", "MATCH", "idc.c4 !status.offline"]]);
        submit(&api, &pinned).await?;
        let web = wait_tasks(&api, &job_id("web"), "web RUNNING", WAIT, |l| {
            running(l).len() == 2
        })
        .await?;
        let pinned_tasks = wait_tasks(&api, &job_id("pinned"), "pinned RUNNING", WAIT, |l| {
            running(l).len() == 2
        })
        .await?;
        assert!(
            pinned_tasks.iter().all(|t| t["agent"] == json!(id4)),
            "MATCH idc.c4 placed elsewhere: {pinned_tasks:?}"
        );

        // Every node adds up, from the root to the jobs.
        let nodes = check_sums(&api, "").await?;
        assert!(nodes >= 6, "only {nodes} nodes walked");
        let root = api.get("/v1/tree").await?.body;
        assert_eq!(root["totals"]["tasks"], json!(4), "{root}");
        assert_eq!(root["totals"]["agents"], json!(2), "{root}");
        let qa = api.get("/v1/tree?node=cop.test_owt.qa").await?.body;
        // The c4 agent is tagged down to the department and no further.
        assert_eq!(qa["here"]["agents"], json!(1), "{qa}");
        let r = api.get("/v1/tree?node=pdl.ocean").await?;
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.body["errors"][0]["field"], "node", "{}", r.body);

        // Agents by tags.
        assert_eq!(selected_agents(&api, "idc.c3").await?, vec![id3.clone()]);
        let mut both = vec![id3.clone(), id4.clone()];
        both.sort();
        assert_eq!(
            selected_agents(&api, "idc.c3,c4 !status.offline").await?,
            both
        );
        assert_eq!(
            selected_agents(&api, "pdl.ocean loc.sh").await?,
            Vec::<String>::new()
        );
        let r = api
            .post(
                &format!("/v1/agents/{id4}/status"),
                &json!({"status": "problem"}),
            )
            .await?;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            selected_agents(&api, "status.problem").await?,
            vec![id4.clone()]
        );
        assert_eq!(
            selected_agents(&api, "!status.problem").await?,
            vec![id3.clone()]
        );

        // Tasks by their job's tags and their agent's.
        let on_c3: Vec<&Value> = web
            .iter()
            .chain(&pinned_tasks)
            .filter(|t| t["agent"] == json!(id3))
            .collect();
        let r = api.get("/v1/tasks?ended=false&q=idc.c3").await?;
        let got = r.body["tasks"].as_array().cloned().unwrap_or_default();
        assert_eq!(got.len(), on_c3.len(), "{}", r.body);
        assert!(got.iter().all(|t| t["agent"] == json!(id3)), "{}", r.body);
        let r = api
            .get("/v1/tasks?ended=false&q=job.pinned%20status.problem")
            .await?;
        assert_eq!(
            r.body["tasks"].as_array().map(Vec::len),
            Some(2),
            "{}",
            r.body
        );
        let r = api
            .get("/v1/tasks?ended=false&q=pdl.ocean%20!job.web")
            .await?;
        assert_eq!(
            r.body["tasks"].as_array().map(Vec::len),
            Some(2),
            "{}",
            r.body
        );

        // A bad query names q and the position.
        let r = api.get("/v1/agents?q=idc.c3%20rack.r1").await?;
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.body["errors"][0]["field"], "q", "{}", r.body);
        let reason = r.body["errors"][0]["reason"].as_str().unwrap_or("");
        assert!(reason.contains("position 8"), "{reason}");
        let r = api.get("/v1/tasks?q=!").await?;
        assert_eq!(r.body["errors"][0]["field"], "q", "{}", r.body);
        // The CLI prints the tree and selects by tags.
        let http = format!("http://{}", c.master(1).http);
        let out = ocean(&["tree", "cop.test_owt.qa", "--depth", "4"], &http)?;
        for piece in ["cop.test_owt.qa", "pdl.ocean", "service.itest", "(job)"] {
            anyhow::ensure!(out.contains(piece), "ocean tree lacks {piece}:\n{out}");
        }
        let out = ocean(&["agent", "list", "--q", "idc.c3"], &http)?;
        anyhow::ensure!(out.contains(&id3) && !out.contains(&id4), "{out}");
        let out = ocean(&["task", "list", "--q", "idc.c3"], &http)?;
        anyhow::ensure!(!out.contains(&job_id("pinned")), "{out}");
        let out = ocean(
            &["tree", "quota", PDL, "--cpus", "2", "--weight", "2"],
            &http,
        )?;
        anyhow::ensure!(out.contains("created"), "{out}");
        let out = ocean(&["--json", "tree", "quota", PDL], &http)?;
        anyhow::ensure!(out.contains("\"weight\": 2.0"), "{out}");
        // A MATCH constraint with a bad query is refused at the edge.
        let mut bad = spec("bad", 1, 0.1);
        bad["constraints"] = json!([["tags", "MATCH", "idc.c*"]]);
        let r = api.post("/v1/jobs", &bad).await?;
        assert_eq!(r.status, 422, "{}", r.body);
        assert_eq!(
            r.body["errors"][0]["field"], "constraints[0][2]",
            "{}",
            r.body
        );
        Ok(())
    })
    .await;
}
