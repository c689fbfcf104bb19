//! Alerts end to end, with real masters, a real agent and a real HTTP
//! receiver (axum) for the webhooks: a rule on a product line fires for a
//! job created under it after the rule, and resolves; the receiver gets
//! each transition once, across a SIGKILL of the leader; the transitions
//! are on the event stream; the CLI manages rules; the utilisation report's
//! CSV and JSON agree. An ignored test measures the alert latency.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use ocean_client::api::event;
use ocean_proto::v1::ocean_usage_client::OceanUsageClient;
use ocean_proto::v1::{AlertRuleRef, AlertRuleRequest, ListAlertRulesRequest, ListAlertsRequest};
use ocean_tests::events::EventLog;
use ocean_tests::http::{job_id, job_spec, Api};
use ocean_tests::tasks::{bounded, running, submit, wait_connected, wait_tasks};
use ocean_tests::{ocean_bin, Cluster};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);
const PDL: &str = "cop.test_owt.qa_pdl.ocean";

/// One webhook request as the receiver got it.
#[derive(Debug, Clone)]
struct Received {
    at: Instant,
    key: String,
    body: Value,
}

/// A real HTTP server taking webhooks; stops when dropped.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> anyhow::Result<Receiver> {
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        async fn take(
            State(got): State<Arc<Mutex<Vec<Received>>>>,
            headers: HeaderMap,
            Json(body): Json<Value>,
        ) -> StatusCode {
            let key = headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            got.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Received {
                    at: Instant::now(),
                    key,
                    body,
                });
            StatusCode::OK
        }
        let app = Router::new()
            .route("/hook", post(take))
            .with_state(got.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr: SocketAddr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Receiver {
            url: format!("http://{addr}/hook"),
            got,
            task,
        })
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits for a request whose body satisfies `ok`.
    async fn wait(&self, what: &str, ok: impl Fn(&Value) -> bool) -> anyhow::Result<Received> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(r) = self.got().into_iter().find(|r| ok(&r.body)) {
                return Ok(r);
            }
            if Instant::now() > deadline {
                bail!("no webhook {what} within {WAIT:?}; got {:?}", self.got());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Polls `GET /v1/alerts` until an alert of `subject` satisfies `ok`.
async fn wait_alert(
    api: &Api,
    subject: &str,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = api.get("/v1/alerts").await?;
        if let Some(a) = r.body["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["subject"] == subject && ok(a))
        {
            return Ok(a.clone());
        }
        if Instant::now() > deadline {
            bail!("{what}: not within {WAIT:?}; alerts now {}", r.body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn ocean(addr: &str, args: &[&str]) -> anyhow::Result<(bool, String)> {
    let out = Command::new(ocean_bin())
        .args(["--addr", addr])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("run ocean")?;
    Ok((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

/// The alert records on the event stream, by state.
fn alert_events(log: &EventLog) -> Vec<Value> {
    log.events()
        .into_iter()
        .filter_map(|e| match e.kind {
            event::Kind::KvPut(kv) if kv.namespace == "ocean.alerts" => {
                serde_json::from_slice(&kv.value).ok()
            }
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rule_on_a_pdl_fires_and_resolves_once_each_across_a_leader_failover() {
    bounded(240, async {
        let receiver = Receiver::start().await?;
        let mut c = Cluster::start(3, &[])?;
        let leader = c.wait_leader(&[1, 2, 3], WAIT).await?;
        let api = c.master(leader).api();
        let follower = [1, 2, 3].into_iter().find(|i| *i != leader).unwrap_or(1);
        let events = EventLog::follow(&c.master(follower).grpc.to_string(), 0);

        // Bad rules are refused naming the field.
        for (body, field) in [
            (json!({"node": PDL, "kind": "bogus"}), "kind"),
            (json!({"node": "pdl.Bad", "kind": "agent_lost"}), "node"),
            (json!({"node": PDL, "kind": "memory_above"}), "percent"),
            (
                json!({"node": PDL, "kind": "agent_lost", "webhook": "ftp://x"}),
                "webhook",
            ),
        ] {
            let r = api.post("/v1/alerts/rules", &body).await?;
            assert_eq!(r.status, 400, "{body}: {}", r.body);
            assert_eq!(r.body["errors"][0]["field"], field, "{}", r.body);
        }
        // The rule, made with the CLI on a follower (forwarded to the leader).
        let addr = format!("http://{}", c.master(follower).http);
        let (ok, out) = ocean(
            &addr,
            &[
                "alert",
                "rule",
                "add",
                "--id",
                "below",
                "--node",
                PDL,
                "--kind",
                "job_below_instances",
                "--for",
                "2",
                "--webhook",
                &receiver.url,
            ],
        )?;
        assert!(ok, "ocean alert rule add: {out}");
        let (ok, out) = ocean(&addr, &["alert", "rule", "add", "--kind", "nope"])?;
        assert!(
            !ok && out.contains("kind"),
            "a bad kind names the field: {out}"
        );
        let rule = api.get("/v1/alerts/rules/below").await?;
        assert_eq!(rule.status, 200, "{}", rule.body);
        assert_eq!(rule.body["node"], PDL);

        // A job created under the node after the rule, with nowhere to run:
        // below its instances, so the rule fires for it.
        let job = job_id("alerted");
        let created = Instant::now();
        submit(&api, &job_spec("alerted")).await?;
        let fired = receiver
            .wait("firing", |b| {
                b["transition"] == "firing" && b["alert"]["subject"] == job.as_str()
            })
            .await?;
        let waited = fired.at - created;
        assert!(
            waited >= Duration::from_secs(2),
            "fired after {waited:?}, before the rule's 2 s"
        );
        assert_eq!(fired.body["alert"]["rule"], "below");
        assert_eq!(
            fired.key,
            fired.body["idempotency_key"].as_str().unwrap_or("")
        );
        wait_alert(&api, &job, "firing delivery recorded", |a| {
            a["state"] == "firing" && a["delivered"] == json!(["firing"])
        })
        .await?;
        let leader_addr = format!("http://{}", c.master(leader).http);
        let (ok, out) = ocean(&leader_addr, &["alert", "list", "--state", "firing"])?;
        assert!(ok && out.contains(&job), "ocean alert list: {out}");

        // The leader dies while the alert fires.
        c.master_mut(leader).kill();
        let others: Vec<u64> = [1, 2, 3].into_iter().filter(|i| *i != leader).collect();
        let new_leader = c.wait_leader(&others, WAIT).await?;
        let api = c.master(new_leader).api();
        // An agent comes: the job's task runs, and the new leader resolves.
        let mut agent = c.new_agent("a", &["--usage-interval", "1s"]);
        agent.start()?;
        wait_connected(&api, 1, WAIT).await?;
        wait_tasks(&api, &job, "one RUNNING", WAIT, |l| running(l).len() == 1).await?;
        let resolved = receiver
            .wait("resolved", |b| {
                b["transition"] == "resolved" && b["alert"]["subject"] == job.as_str()
            })
            .await?;
        assert_eq!(
            resolved.body["alert"]["fired_ms"], fired.body["alert"]["fired_ms"],
            "the same firing resolves"
        );
        wait_alert(&api, &job, "resolved delivery recorded", |a| {
            a["state"] == "resolved" && a["delivered"] == json!(["firing", "resolved"])
        })
        .await?;
        // Time for any duplicate to arrive: none does.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut by_key: BTreeMap<String, usize> = BTreeMap::new();
        for r in receiver.got() {
            *by_key.entry(r.key).or_default() += 1;
        }
        assert_eq!(by_key.len(), 2, "two transitions: {by_key:?}");
        assert!(by_key.values().all(|n| *n == 1), "each once: {by_key:?}");

        // Both transitions are on the event stream of a master that
        // outlived the old leader.
        let seen = alert_events(&events);
        for state in ["firing", "resolved"] {
            assert!(
                seen.iter()
                    .any(|a| a["subject"] == job.as_str() && a["state"] == state),
                "no {state} alert on the event stream: {seen:?}"
            );
        }

        // The utilisation report: CSV and JSON agree, row for row. Both are
        // read between two equal JSON answers (samples arrive every second).
        let query = format!("/v1/usage/report?node={PDL}&window=30s");
        let deadline = Instant::now() + WAIT;
        let (report, csv) = loop {
            let a = api.get(&query).await?;
            assert_eq!(a.status, 200, "{}", a.body);
            let csv = api.get_text(&format!("{query}&format=csv")).await?;
            let b = api.get(&query).await?;
            let strip = |v: &Value| {
                let mut v = v.clone();
                v["at_ms"] = Value::Null;
                v
            };
            let sampled = a.body["total"]["sampled_tasks"].as_u64().unwrap_or(0);
            if sampled == 1 && strip(&a.body) == strip(&b.body) {
                break (a.body, csv);
            }
            if Instant::now() > deadline {
                bail!("no steady report with a sampled task; last {}", b.body);
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        // Longer than the rings (up to 400 days): read from the product
        // line's history, covering what the leaders have seen of it (the
        // new leader's first 5 s snapshot with the task may still come;
        // usage_history.rs checks the history outlives a failover).
        let deadline = Instant::now() + WAIT;
        let long = loop {
            let long = api
                .get(&format!("/v1/usage/report?node={PDL}&window=2h"))
                .await?;
            assert_eq!(long.status, 200, "{}", long.body);
            let seen = long.body["lines"][0]["concurrent_peak_seconds"]
                .as_u64()
                .unwrap_or(0);
            if seen > 0 {
                break long.body;
            }
            if Instant::now() > deadline {
                bail!(
                    "no minutes of the product line within {WAIT:?}: {}",
                    long.body
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        assert_eq!(long["window_seconds"], 7200, "{long}");
        let line = &long["lines"][0];
        let seen = line["concurrent_peak_seconds"].as_u64().unwrap_or(0);
        assert!(seen < 7200, "only what the leaders saw: {long}");
        assert_eq!(line["peak"], line["concurrent_peak"], "{long}");
        let too_long = api
            .get(&format!("/v1/usage/report?node={PDL}&window=401d"))
            .await?;
        assert_eq!(too_long.status, 400, "{}", too_long.body);
        assert!(
            too_long.body["error"]
                .as_str()
                .unwrap_or("")
                .starts_with("window:"),
            "{}",
            too_long.body
        );

        let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
        let header = &rows[0];
        let lines: Vec<&Value> = report["lines"]
            .as_array()
            .context("lines")?
            .iter()
            .chain([&report["total"]])
            .collect();
        assert_eq!(rows.len(), lines.len() + 1, "{csv}");
        assert_eq!(lines[0]["pdl"], PDL, "{report}");
        for (row, line) in rows[1..].iter().zip(&lines) {
            assert_eq!(row.len(), header.len(), "{csv}");
            for (col, cell) in header.iter().zip(row) {
                let json = match *col {
                    "pdl" => line["pdl"].clone(),
                    "tasks" | "sampled_tasks" | "concurrent_peak_seconds" => line[*col].clone(),
                    "concurrent_peak_cpu_cores" => line["concurrent_peak"]["cpu_cores"].clone(),
                    "concurrent_peak_memory_mib" => line["concurrent_peak"]["memory_mib"].clone(),
                    _ => {
                        let (part, what) = col.split_once('_').context("column")?;
                        let what = what.trim_end_matches("_share");
                        let key = if what.starts_with("cpu") {
                            "cpu"
                        } else {
                            "memory"
                        };
                        match part {
                            "idle" => line["idle_share"][key].clone(),
                            _ => line[part][if key == "cpu" {
                                "cpu_cores"
                            } else {
                                "memory_mib"
                            }]
                            .clone(),
                        }
                    }
                };
                let same = match (&json, cell.parse::<f64>()) {
                    (Value::String(s), _) => s == cell,
                    (Value::Null, _) => cell.is_empty(),
                    (v, Ok(x)) => v.as_f64().is_some_and(|y| (x - y).abs() < 1e-9),
                    _ => false,
                };
                assert!(same, "{col}: CSV {cell} vs JSON {json}\n{csv}\n{report}");
            }
        }
        assert_eq!(report["total"]["allocated"]["cpu_cores"], 0.01);
        // The CLI prints the same CSV shape, and lists and removes rules.
        let new_addr = format!("http://{}", c.master(new_leader).http);
        let (ok, out) = ocean(
            &new_addr,
            &[
                "usage", "report", "--node", PDL, "--window", "30s", "--format", "csv",
            ],
        )?;
        assert!(ok, "ocean usage report: {out}");
        assert_eq!(out.lines().next(), csv.lines().next(), "{out}");
        assert!(
            out.lines().any(|l| l.starts_with(&format!("{PDL},1,"))),
            "{out}"
        );
        let (ok, out) = ocean(&new_addr, &["alert", "rule", "list", "--node", "pdl.ocean"])?;
        assert!(ok && out.contains("below") && out.contains(PDL), "{out}");
        let (ok, out) = ocean(&new_addr, &["alert", "rule", "rm", "below"])?;
        assert!(ok && out.contains("deleted"), "{out}");
        assert_eq!(api.get("/v1/alerts/rules/below").await?.status, 404);
        drop(agent);
        Ok(())
    })
    .await;
}

/// An `agent_lost` rule on a product line: an agent tagged under it that
/// dies fires (agents that register after the rule are covered), one
/// tagged under another product line (`pdl.ocean2`, a longer name, not a
/// child) does not; the agent's return resolves the alert.
#[tokio::test(flavor = "multi_thread")]
async fn a_lost_agent_under_the_node_fires_and_resolves_when_it_returns() {
    bounded(120, async {
        let receiver = Receiver::start().await?;
        let c = Cluster::start(1, &[])?;
        let api = c.master(1).api();
        c.wait_leader(&[1], WAIT).await?;
        let r = api
            .post(
                "/v1/alerts/rules",
                &json!({"id": "lost", "node": PDL, "kind": "agent_lost",
                        "for_seconds": 1, "webhook": &receiver.url}),
            )
            .await?;
        assert_eq!(r.status, 201, "{}", r.body);
        let mut inside = c.new_agent("in", &["--tags", &format!("{PDL}_idc.c1")]);
        let mut outside = c.new_agent("out", &["--tags", &format!("{PDL}2_idc.c1")]);
        inside.start()?;
        outside.start()?;
        wait_connected(&api, 2, WAIT).await?;
        let id_in = inside.id().context("inside id")?;
        let id_out = outside.id().context("outside id")?;
        inside.kill();
        outside.kill();
        let fired = receiver
            .wait("firing", |b| {
                b["transition"] == "firing" && b["alert"]["subject"] == id_in.as_str()
            })
            .await?;
        assert_eq!(fired.body["alert"]["kind"], "agent_lost");
        tokio::time::sleep(Duration::from_secs(2)).await;
        let about_outside: Vec<Received> = receiver
            .got()
            .into_iter()
            .filter(|r| r.body["alert"]["subject"] == id_out.as_str())
            .collect();
        assert!(
            about_outside.is_empty(),
            "an agent of pdl.ocean2 is not under pdl.ocean: {about_outside:?}"
        );
        inside.start()?;
        receiver
            .wait("resolved", |b| {
                b["transition"] == "resolved" && b["alert"]["subject"] == id_in.as_str()
            })
            .await?;
        assert_eq!(receiver.got().len(), 2, "{:?}", receiver.got());
        Ok(())
    })
    .await;
}

/// The webhook requests about `subject`, by transition.
fn transitions(receiver: &Receiver, subject: &str) -> Vec<String> {
    receiver
        .got()
        .into_iter()
        .filter(|r| r.body["alert"]["subject"] == subject)
        .map(|r| r.body["transition"].as_str().unwrap_or("").to_string())
        .collect()
}

/// A `memory_above` rule on a product line, with a real agent and real
/// tasks: a task holding 100 MiB under a 128 MiB limit (78%) fires a rule
/// at 60%, after the rule's duration; a task holding as much under a
/// 512 MiB limit (20%) does not; stopping the task resolves the alert.
#[tokio::test(flavor = "multi_thread")]
async fn memory_above_fires_for_a_task_over_its_share_of_its_limit_and_resolves() {
    bounded(180, async {
        let receiver = Receiver::start().await?;
        let c = Cluster::start(1, &[])?;
        let api = c.master(1).api();
        c.wait_leader(&[1], WAIT).await?;
        let r = api
            .post(
                "/v1/alerts/rules",
                &json!({"id": "mem", "node": PDL, "kind": "memory_above",
                        "percent": 60, "for_seconds": 2, "webhook": &receiver.url}),
            )
            .await?;
        assert_eq!(r.status, 201, "{}", r.body);
        let mut agent = c.new_agent("a", &["--usage-interval", "1s"]);
        agent.start()?;
        wait_connected(&api, 1, WAIT).await?;
        let load = ocean_bin().with_file_name("ocean-load");
        anyhow::ensure!(load.is_file(), "{} is not built", load.display());
        let (tight, roomy) = (job_id("memtight"), job_id("memroomy"));
        for (job, mem) in [(&tight, 128), (&roomy, 512)] {
            submit(
                &api,
                &json!({"id": job, "cmd": format!("exec {} --mib 100", load.display()),
                        "resources": {"cpus": 0.05, "mem": mem},
                        "kill_grace_period_seconds": 1}),
            )
            .await?;
        }
        let mut ids = Vec::new();
        for job in [&tight, &roomy] {
            let l = wait_tasks(&api, job, "one RUNNING", WAIT, |l| running(l).len() == 1).await?;
            ids.push(
                running(&l)[0]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
        let (tight_task, roomy_task) = (ids[0].clone(), ids[1].clone());
        // The holder's RSS is over 60% of its limit once it touched its
        // memory: the API shows it before the alert can fire.
        let deadline = Instant::now() + WAIT;
        let seen_at = loop {
            let t = api.get(&format!("/v1/tasks/{tight_task}")).await?.body;
            let rss = t["usage"]["memory_rss_bytes"].as_u64().unwrap_or(0);
            if rss > 90 << 20 {
                break Instant::now();
            }
            if Instant::now() > deadline {
                bail!("the holder never read 90 MiB RSS: {t}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let fired = receiver
            .wait("firing", |b| {
                b["transition"] == "firing" && b["alert"]["subject"] == tight_task.as_str()
            })
            .await?;
        assert_eq!(fired.body["alert"]["kind"], "memory_above");
        assert_eq!(fired.body["alert"]["rule"], "mem");
        let message = fired.body["alert"]["message"].as_str().unwrap_or("");
        let percent: f64 = message
            .strip_prefix("RSS ")
            .and_then(|m| m.split('%').next())
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("message {message:?}"))?;
        assert!(
            (70.0..=85.0).contains(&percent),
            "100 MiB of 128 MiB is about 78%: {message}"
        );
        let alert = &fired.body["alert"];
        let held_ms =
            alert["fired_ms"].as_u64().unwrap_or(0) - alert["since_ms"].as_u64().unwrap_or(0);
        assert!(
            held_ms >= 2000,
            "fired after {held_ms} ms of the rule's 2 s: {alert}"
        );
        eprintln!(
            "memory_above fired {:?} after the API first showed the RSS ({message})",
            fired.at.saturating_duration_since(seen_at)
        );
        // The roomy task, at 20% of its limit, never fires.
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            transitions(&receiver, &roomy_task).is_empty(),
            "20% of the limit is not above 60%: {:?}",
            receiver.got()
        );
        // The holder stops: the alert resolves, and each transition came once.
        let d = api.delete(&format!("/v1/jobs/{tight}")).await?;
        assert!(d.status < 300, "{}", d.body);
        receiver
            .wait("resolved", |b| {
                b["transition"] == "resolved" && b["alert"]["subject"] == tight_task.as_str()
            })
            .await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            transitions(&receiver, &tight_task),
            vec!["firing", "resolved"],
            "{:?}",
            receiver.got()
        );
        drop(agent);
        Ok(())
    })
    .await;
}

/// A `task_flapping` rule on a product line, with a real agent: a job
/// whose task exits at once is restarted (short back-off) and fires the
/// rule once it failed more than `max_restarts` times; a healthy job
/// beside it does not; replacing the failing job's spec with one that
/// runs (which clears its back-off) resolves the alert. The rule is made
/// and the alerts listed through gRPC (`OceanUsage`), and agree with REST.
#[tokio::test(flavor = "multi_thread")]
async fn task_flapping_fires_past_max_restarts_and_resolves_when_the_job_is_fixed() {
    bounded(180, async {
        let receiver = Receiver::start().await?;
        let c = Cluster::start(1, &[])?;
        let api = c.master(1).api();
        c.wait_leader(&[1], WAIT).await?;
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{}", c.master(1).grpc))?
                .connect()
                .await?;
        let mut grpc = OceanUsageClient::new(channel);
        let bad = grpc
            .create_alert_rule(AlertRuleRequest {
                node: "pdl.ocean".into(),
                kind: "task_flapping".into(),
                ..Default::default()
            })
            .await
            .expect_err("a flapping rule needs max_restarts");
        assert_eq!(bad.code(), tonic::Code::InvalidArgument, "{bad:?}");
        assert!(bad.message().contains("max_restarts"), "{bad:?}");
        let made = grpc
            .create_alert_rule(AlertRuleRequest {
                id: Some("flap".into()),
                node: "pdl.ocean".into(),
                kind: "task_flapping".into(),
                max_restarts: Some(2),
                window_minutes: Some(5),
                webhook: Some(receiver.url.clone()),
                ..Default::default()
            })
            .await?
            .into_inner();
        assert_eq!((made.id.as_str(), made.max_restarts), ("flap", Some(2)));
        let r = api.get("/v1/alerts/rules/flap").await?;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["kind"], "task_flapping");
        assert_eq!(r.body["node"], made.node);
        let mut agent = c.new_agent("a", &[]);
        agent.start()?;
        wait_connected(&api, 1, WAIT).await?;
        let (flappy, steady) = (job_id("flappy"), job_id("steady"));
        let spec = |cmd: &str, id: &str| {
            json!({"id": id, "cmd": cmd, "instances": 1,
                   "resources": {"cpus": 0.01, "mem": 16},
                   "backoff": {"backoff_seconds": 0.2, "backoff_factor": 1.0,
                               "max_launch_delay_seconds": 0.2},
                   "flapping": {"max_failures": 20, "window_seconds": 600}})
        };
        submit(&api, &spec("sleep 3600", &steady)).await?;
        let started = Instant::now();
        submit(&api, &spec("exit 1", &flappy)).await?;
        let fired = receiver
            .wait("firing", |b| {
                b["transition"] == "firing" && b["alert"]["subject"] == flappy.as_str()
            })
            .await?;
        assert_eq!(fired.body["alert"]["kind"], "task_flapping");
        let message = fired.body["alert"]["message"].as_str().unwrap_or("");
        let failures: u64 = message
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("message {message:?}"))?;
        assert!(
            failures > 2,
            "fired at {failures} failures, not more than 2: {message}"
        );
        // The replicated state agrees: the job's back-off holds them.
        let job = api.get(&format!("/v1/jobs/{flappy}")).await?.body;
        let recent = job["backoff"]["recent_failures"].as_u64().unwrap_or(0);
        assert!(recent >= failures, "the job holds {recent} failures: {job}");
        // gRPC lists the firing alert as REST does.
        let listed = grpc
            .list_alerts(ListAlertsRequest {
                state: "firing".into(),
                ..Default::default()
            })
            .await?
            .into_inner();
        let rest = api.get("/v1/alerts?state=firing").await?.body;
        let g = listed
            .alerts
            .iter()
            .find(|a| a.subject == flappy)
            .context("the alert through gRPC")?;
        let r = rest["alerts"]
            .as_array()
            .and_then(|l| l.iter().find(|a| a["subject"] == flappy.as_str()))
            .context("the alert through REST")?;
        assert_eq!(
            (g.id.as_str(), g.fired_ms),
            (
                r["id"].as_str().unwrap_or(""),
                r["fired_ms"].as_u64().unwrap_or(0)
            )
        );
        assert_eq!(g.state, "firing");
        eprintln!(
            "task_flapping fired {:?} after the job was created ({message})",
            fired.at - started
        );
        // Fixed: the new spec runs, its back-off is cleared, the alert resolves.
        submit(&api, &spec("sleep 3600", &flappy)).await?;
        receiver
            .wait("resolved", |b| {
                b["transition"] == "resolved" && b["alert"]["subject"] == flappy.as_str()
            })
            .await?;
        wait_tasks(&api, &flappy, "one RUNNING", WAIT, |l| {
            running(l).len() == 1
        })
        .await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            transitions(&receiver, &flappy),
            vec!["firing", "resolved"],
            "{:?}",
            receiver.got()
        );
        assert!(
            transitions(&receiver, &steady).is_empty(),
            "a job that runs does not flap: {:?}",
            receiver.got()
        );
        let rules = grpc
            .list_alert_rules(ListAlertRulesRequest {
                node: "pdl.ocean".into(),
                ..Default::default()
            })
            .await?
            .into_inner();
        assert_eq!(rules.rules.len(), 1, "{rules:?}");
        let deleted = grpc
            .delete_alert_rule(AlertRuleRef {
                id: "flap".into(),
                ..Default::default()
            })
            .await?
            .into_inner();
        assert_eq!(deleted.outcome, "deleted");
        let gone = grpc
            .get_alert_rule(AlertRuleRef {
                id: "flap".into(),
                ..Default::default()
            })
            .await
            .expect_err("deleted");
        assert_eq!(gone.code(), tonic::Code::NotFound);
        drop(agent);
        Ok(())
    })
    .await;
}

/// Alert latency: condition true (the job is created with nowhere to run)
/// to webhook received, minus the rule's duration, over 20 firings.
/// `cargo nextest run -p ocean-tests --test alerts --run-ignored ignored-only`
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement; see docs/alerts.md"]
async fn alert_latency_p99() {
    bounded(300, async {
        const FOR_S: u64 = 1;
        const N: usize = 20;
        let receiver = Receiver::start().await?;
        let c = Cluster::start(1, &[])?;
        let api = c.master(1).api();
        c.wait_leader(&[1], WAIT).await?;
        let r = api
            .post(
                "/v1/alerts/rules",
                &json!({"id": "lat", "node": PDL, "kind": "job_below_instances",
                        "for_seconds": FOR_S, "webhook": &receiver.url}),
            )
            .await?;
        assert_eq!(r.status, 201, "{}", r.body);
        let mut ms = Vec::new();
        for i in 0..N {
            let name = format!("lat{i}");
            let job = job_id(&name);
            let t0 = Instant::now();
            submit(&api, &job_spec(&name)).await?;
            let got = receiver
                .wait("firing", |b| {
                    b["transition"] == "firing" && b["alert"]["subject"] == job.as_str()
                })
                .await?;
            let beyond = (got.at - t0).saturating_sub(Duration::from_secs(FOR_S));
            ms.push(beyond.as_secs_f64() * 1000.0);
            let d = api.delete(&format!("/v1/jobs/{job}")).await?;
            assert!(d.status < 300, "{}", d.body);
        }
        ms.sort_by(f64::total_cmp);
        let pct = |p: f64| ms[((ms.len() as f64 * p).ceil() as usize).clamp(1, ms.len()) - 1];
        eprintln!(
            "alert latency beyond the rule's {FOR_S} s over {N} firings: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            pct(0.5),
            pct(0.99),
            ms[ms.len() - 1]
        );
        assert!(pct(0.99) < 2000.0, "p99 {} ms: {ms:?}", pct(0.99));
        Ok(())
    })
    .await;
}
