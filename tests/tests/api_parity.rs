//! Every REST operation is answered through gRPC too, with the same
//! facts (a table: REST call, gRPC call, what both must agree on); and bad
//! input on the new routes is a 4xx naming the field, with the state
//! version unchanged.

use std::sync::Arc;
use std::time::Duration;

use ocean_client::api::*;
use ocean_client::{Client, Error, GrpcClient};
use ocean_tests::http::{job_id, job_spec};
use ocean_tests::tasks::bounded;
use ocean_tests::{Api, Cluster};
use serde_json::{json, Value};

type Check = Box<dyn Fn(&Value, &Value) -> Result<(), String> + Send + Sync>;
type GrpcAnswer = futures::future::BoxFuture<'static, Result<Value, Error>>;
type GrpcCall = Box<dyn Fn(Arc<GrpcClient>) -> GrpcAnswer + Send + Sync>;
/// Method, path, body, the status expected, the field the error names.
type BadCase = (&'static str, String, Option<Vec<u8>>, u16, &'static str);

/// One row: the REST request, the gRPC call as JSON, and the agreement.
struct Row {
    route: &'static str,
    rest: (&'static str, String, Option<Vec<u8>>),
    grpc: GrpcCall,
    agree: Check,
}

fn same(rest_field: &'static str, grpc_field: &'static str) -> Check {
    Box::new(move |r, g| {
        let (a, b) = (&r[rest_field], &g[grpc_field]);
        if a == b {
            Ok(())
        } else {
            Err(format!("REST {rest_field}={a} but gRPC {grpc_field}={b}"))
        }
    })
}

fn both(a: Check, b: Check) -> Check {
    Box::new(move |r, g| a(r, g).and_then(|_| b(r, g)))
}

macro_rules! grpc {
    ($([$x:ident])? |$c:ident| $call:expr, |$v:ident| $json:expr) => {
        Box::new(move |$c: Arc<GrpcClient>| {
            $(let $x = $x.clone();)?
            Box::pin(async move {
                let $v = $call.await?;
                Ok::<Value, Error>($json)
            })
        })
    };
}

async fn rest(
    api: &Api,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
) -> anyhow::Result<ocean_tests::http::Reply> {
    match (method, body) {
        ("GET", _) => api.get(path).await,
        ("DELETE", _) => api.delete(path).await,
        ("PUT", Some(b)) => api.put_raw(path, b, "application/json").await,
        ("POST", Some(b)) => api.post_raw(path, b, "application/json").await,
        ("POST", None) => api.post_raw(path, Vec::new(), "application/json").await,
        (m, _) => anyhow::bail!("no such method {m}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_rest_route_is_answered_through_grpc_too() {
    bounded(90, async {
        let c = Cluster::start(1, &[])?;
        c.wait_leader(&[1], Duration::from_secs(15)).await?;
        let api = c.master(1).api();
        let grpc = Arc::new(GrpcClient::new(vec![c.master(1).grpc.to_string()])?);
        for name in ["a", "b"] {
            assert_eq!(api.put_job(name).await?.status, 201);
        }
        let a = job_id("a");
        let b = job_id("b");
        // A spec change starts a deployment of each job (spec version 2).
        for name in ["a", "b"] {
            let mut spec = job_spec(name);
            spec["cmd"] = json!("sleep 3601");
            assert_eq!(api.post("/v1/jobs", &spec).await?.status, 200);
        }
        let mut hc_only = job_spec("a");
        hc_only["cmd"] = json!("sleep 3601");
        hc_only["upgrade_strategy"] = json!({"step": 2});
        let plan_body = serde_json::to_vec(&hc_only)?;
        let kv = "/v1/frameworks/parity/kv";
        let (ai, bi) = (a.clone(), b.clone());
        let rows: Vec<Row> = vec![
            Row {
                route: "GET /v1/leader",
                rest: ("GET", "/v1/leader".into(), None),
                grpc: grpc!(|c| c.leader(LeaderRequest {}), |v| json!({"id": v.id, "term": v.term})),
                agree: both(same("id", "id"), same("term", "term")),
            },
            Row {
                route: "GET /v1/status",
                rest: ("GET", "/v1/status".into(), None),
                grpc: grpc!(|c| c.status(StatusRequest {}), |v| json!({"id": v.id, "role": v.role, "jobs": v.jobs})),
                agree: both(same("id", "id"), both(same("role", "role"), same("jobs", "jobs"))),
            },
            Row {
                route: "GET /v1/jobs",
                rest: ("GET", "/v1/jobs?prefix=pdl.ocean".into(), None),
                grpc: grpc!(|c| c.list_jobs(ListJobsRequest { prefix: "pdl.ocean".into(), read: None }),
                    |v| json!({"n": v.jobs.len(), "first": v.jobs[0].id})),
                agree: Box::new(|r, g| {
                    let n = r["jobs"].as_array().map_or(0, |j| j.len());
                    (json!(n) == g["n"] && r["jobs"][0]["id"] == g["first"]).then_some(()).ok_or(format!("{r} vs {g}"))
                }),
            },
            Row {
                route: "GET /v1/jobs/{id}",
                rest: ("GET", format!("/v1/jobs/{a}"), None),
                grpc: { let a = ai.clone(); grpc!([a] |c| c.job_info(JobRef { id: a.clone(), ..Default::default() }),
                    |v| json!({"id": v.job.as_ref().map(|j| j.id.clone()), "spec_version": v.job.as_ref().map(|j| j.spec_version), "dns_name": v.dns_name})) },
                agree: both(same("id", "id"), both(same("spec_version", "spec_version"), same("dns_name", "dns_name"))),
            },
            Row {
                route: "GET /v1/jobs/{id}/versions",
                rest: ("GET", format!("/v1/jobs/{a}/versions"), None),
                grpc: { let a = ai.clone(); grpc!([a] |c| c.job_versions(JobRef { id: a.clone(), ..Default::default() }),
                    |v| json!({"n": v.versions.len(), "top": v.versions[0].spec_version})) },
                agree: Box::new(|r, g| {
                    let n = r["versions"].as_array().map_or(0, |v| v.len());
                    (json!(n) == g["n"] && r["versions"][0]["spec_version"] == g["top"]).then_some(()).ok_or(format!("{r} vs {g}"))
                }),
            },
            Row {
                route: "GET /v1/deployments",
                rest: ("GET", format!("/v1/deployments?job={a}"), None),
                grpc: { let a = ai.clone(); grpc!([a] |c| c.list_deployments(ListDeploymentsRequest { job: a.clone(), read: None }),
                    |v| json!({"ids": v.deployments.iter().map(|d| d.id.clone()).collect::<Vec<_>>(),
                               "states": v.deployments.iter().map(|d| d.state.clone()).collect::<Vec<_>>()})) },
                agree: Box::new(|r, g| {
                    let list = r["deployments"].as_array().cloned().unwrap_or_default();
                    let ids: Vec<Value> = list.iter().map(|d| d["id"].clone()).collect();
                    let states: Vec<Value> = list.iter().map(|d| d["state"].clone()).collect();
                    (!ids.is_empty() && json!(ids) == g["ids"] && json!(states) == g["states"]).then_some(()).ok_or(format!("{r} vs {g}"))
                }),
            },
            Row {
                route: "GET /v1/deployments/{id}",
                rest: ("GET", format!("/v1/deployments/{a}@2"), None),
                grpc: { let a = ai.clone(); grpc!([a] |c| c.get_deployment(DeploymentRef { id: format!("{a}@2"), read: None }),
                    |v| { let d = v.deployment.unwrap_or_default();
                          let view: Value = serde_json::from_slice(&d.view_json).unwrap_or_default();
                          json!({"id": d.id, "state": d.state, "spec_version": d.spec_version, "tasks": view["tasks"]}) }) },
                agree: both(same("id", "id"), both(same("state", "state"), both(same("spec_version", "spec_version"), same("tasks", "tasks")))),
            },
            Row {
                route: "POST /v1/jobs/{id}/plan",
                rest: ("POST", format!("/v1/jobs/{a}/plan"), Some(plan_body.clone())),
                grpc: { let ab = (ai.clone(), plan_body.clone()); grpc!([ab] |c| c.plan_job(PlanJobRequest { id: ab.0.clone(), spec: ab.1.clone(), format: "json".into() }),
                    |v| { let plan: Value = serde_json::from_slice(&v.plan_json).unwrap_or_default();
                          json!({"replaces_tasks": v.replaces_tasks, "summary": v.summary, "changes": plan["changes"], "steps": plan["steps"], "placement": plan["placement"]}) }) },
                agree: Box::new(|r, g| {
                    for k in ["replaces_tasks", "summary", "changes", "steps", "placement"] {
                        if r[k] != g[k] {
                            return Err(format!("{k}: REST {} but gRPC {}", r[k], g[k]));
                        }
                    }
                    (r["replaces_tasks"] == false && r["changes"][0]["path"] == "upgrade_strategy.step").then_some(()).ok_or(format!("{r}"))
                }),
            },
            Row {
                route: "POST /v1/deployments/{id}/pause",
                rest: ("POST", format!("/v1/deployments/{a}@2/pause"), Some(br#"{"reason": "parity"}"#.to_vec())),
                grpc: { let b = bi.clone(); grpc!([b] |c| c.deployment_action(DeploymentActionRequest { id: format!("{b}@2"), action: "pause".into(), reason: "parity".into() }),
                    |v| json!({"outcome": v.outcome})) },
                agree: same("outcome", "outcome"),
            },
            Row {
                route: "POST /v1/jobs/{id}/rollback",
                rest: ("POST", format!("/v1/jobs/{a}/rollback"), Some(br#"{"to_version": 1}"#.to_vec())),
                grpc: { let b = bi.clone(); grpc!([b] |c| c.rollback_job(RollbackJobRequest { id: b.clone(), to_version: Some(1) }),
                    |v| json!({"outcome": v.outcome, "spec_version": v.spec_version})) },
                agree: both(same("outcome", "outcome"), same("spec_version", "spec_version")),
            },
            Row {
                route: "POST /v1/jobs/{id}/scale",
                rest: ("POST", format!("/v1/jobs/{a}/scale"), Some(br#"{"instances": 0}"#.to_vec())),
                grpc: { let b = bi.clone(); grpc!([b] |c| c.scale_job(ScaleJobRequest { id: b.clone(), instances: 0, expected_spec_version: None }),
                    |v| json!({"outcome": v.outcome, "instances": v.instances})) },
                agree: both(same("outcome", "outcome"), same("instances", "instances")),
            },
            Row {
                route: "POST /v1/jobs/{id}/reset-backoff",
                rest: ("POST", format!("/v1/jobs/{a}/reset-backoff"), None),
                grpc: { let b = bi.clone(); grpc!([b] |c| c.reset_backoff(JobRef { id: b.clone(), ..Default::default() }), |v| json!({"outcome": v.outcome})) },
                agree: same("outcome", "outcome"),
            },
            Row {
                route: "GET /v1/tasks",
                rest: ("GET", "/v1/tasks?ended=false".into(), None),
                grpc: grpc!(|c| c.list_tasks(ListTasksRequest { ended: Some(false), ..Default::default() }), |v| json!({"n": v.tasks.len()})),
                agree: Box::new(|r, g| (json!(r["tasks"].as_array().map_or(0, |t| t.len())) == g["n"]).then_some(()).ok_or(format!("{r} vs {g}"))),
            },
            Row {
                route: "GET /v1/agents",
                rest: ("GET", "/v1/agents".into(), None),
                grpc: grpc!(|c| c.list_agents(ListAgentsRequest::default()), |v| json!({"n": v.agents.len()})),
                agree: Box::new(|r, g| (json!(r["agents"].as_array().map_or(0, |t| t.len())) == g["n"]).then_some(()).ok_or(format!("{r} vs {g}"))),
            },
            Row {
                route: "GET /v1/members",
                rest: ("GET", "/v1/members".into(), None),
                grpc: grpc!(|c| c.list_members(ListMembersRequest {}), |v| json!({"id": v.members[0].id, "voter": v.members[0].voter})),
                agree: Box::new(|r, g| (r["members"][0]["id"] == g["id"] && r["members"][0]["voter"] == g["voter"]).then_some(()).ok_or(format!("{r} vs {g}"))),
            },
            Row {
                route: "GET /metrics",
                rest: ("GET", "/metrics".into(), None),
                grpc: grpc!(|c| c.metrics(MetricsRequest {}), |v| json!({"has_term": v.text.contains("ocean_raft_term")})),
                agree: Box::new(|r, g| (r.as_str().is_some_and(|t| t.contains("ocean_raft_term")) && g["has_term"] == true).then_some(()).ok_or(format!("{g}"))),
            },
            Row {
                route: "PUT /v1/frameworks/{name}/kv/{key}",
                rest: ("PUT", format!("{kv}/rest-key"), Some(br#"{"x":1}"#.to_vec())),
                grpc: grpc!(|c| c.kv_put(KvPutRequest { namespace: "parity".into(), key: "grpc-key".into(), value: br#"{"x":1}"#.to_vec(), expected_revision: Some(0) }),
                    |v| json!({"outcome": v.outcome})),
                agree: same("outcome", "outcome"),
            },
            Row {
                route: "GET /v1/frameworks/{name}/kv/{key}",
                rest: ("GET", format!("{kv}/grpc-key"), None),
                grpc: grpc!(|c| c.kv_get(KvKeyRequest { namespace: "parity".into(), key: "rest-key".into(), ..Default::default() }),
                    |v| json!({"value": serde_json::from_slice::<Value>(&v.value).unwrap_or(Value::Null)})),
                agree: same("value", "value"),
            },
            Row {
                route: "GET /v1/frameworks/{name}/kv",
                rest: ("GET", kv.to_string(), None),
                grpc: grpc!(|c| c.kv_list(KvListRequest { namespace: "parity".into(), ..Default::default() }), |v| json!({"n": v.entries.len()})),
                agree: Box::new(|r, g| (json!(r["keys"].as_array().map_or(0, |k| k.len())) == g["n"]).then_some(()).ok_or(format!("{r} vs {g}"))),
            },
            Row {
                route: "POST /v1/frameworks/{name}/lease",
                rest: ("POST", "/v1/frameworks/parity/lease".into(), Some(br#"{"holder":"h","ttl_ms":60000}"#.to_vec())),
                grpc: grpc!(|c| c.lease_acquire(LeaseRequest { namespace: "parity".into(), name: String::new(), holder: "h".into(), ttl_ms: 60_000 }),
                    |v| json!({"holder": v.holder, "epoch": v.epoch})),
                agree: both(same("holder", "holder"), same("epoch", "epoch")),
            },
            Row {
                route: "GET /v1/frameworks/{name}/lease",
                rest: ("GET", "/v1/frameworks/parity/lease".into(), None),
                grpc: grpc!(|c| c.lease_get(LeaseRef { namespace: "parity".into(), ..Default::default() }), |v| json!({"holder": v.holder})),
                agree: same("holder", "holder"),
            },
            Row {
                route: "DELETE /v1/frameworks/{name}/lease",
                rest: ("DELETE", "/v1/frameworks/parity/lease?holder=h".into(), None),
                grpc: grpc!(|c| c.lease_release(LeaseRequest { namespace: "parity".into(), holder: "h".into(), ..Default::default() }), |v| json!({"holder": v.holder})),
                agree: Box::new(|r, g| {
                    // The second release finds no lease of h: both say so.
                    (r["holder"] == "" && (g["holder"] == "" || g.is_null())).then_some(()).ok_or(format!("{r} vs {g}"))
                }),
            },
            Row {
                route: "DELETE /v1/frameworks/{name}/kv/{key}",
                rest: ("DELETE", format!("{kv}/rest-key"), None),
                grpc: grpc!(|c| c.kv_delete(KvKeyRequest { namespace: "parity".into(), key: "grpc-key".into(), ..Default::default() }), |v| json!({"outcome": v.outcome})),
                agree: same("outcome", "outcome"),
            },
            Row {
                route: "DELETE /v1/jobs/{id}",
                rest: ("DELETE", format!("/v1/jobs/{a}"), None),
                grpc: { let b = bi.clone(); grpc!([b] |c| c.delete_job(JobRef { id: b.clone(), ..Default::default() }), |v| json!({"outcome": v.outcome})) },
                agree: same("outcome", "outcome"),
            },
        ];
        let mut failures = Vec::new();
        for row in &rows {
            let (m, path, body) = &row.rest;
            let r = rest(&api, m, path, body.clone()).await?;
            if r.status >= 300 {
                failures.push(format!("{}: REST answered {} {:?}", row.route, r.status, r.body));
                continue;
            }
            let g = match (row.grpc)(grpc.clone()).await {
                Ok(v) => v,
                // A lease already released answers not-found by gRPC too.
                Err(Error::NotFound(_)) if row.route.starts_with("DELETE /v1/frameworks/{name}/lease") => Value::Null,
                Err(e) => {
                    failures.push(format!("{}: gRPC failed: {e}", row.route));
                    continue;
                }
            };
            if let Err(e) = (row.agree)(&r.body, &g) {
                failures.push(format!("{}: {e}", row.route));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        Ok(())
    })
    .await;
}

async fn version(api: &Api) -> anyhow::Result<u64> {
    Ok(api.get("/v1/status").await?.body["version"]
        .as_u64()
        .unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_on_new_routes_names_the_field_and_changes_nothing() {
    bounded(60, async {
        let c = Cluster::start(1, &[])?;
        c.wait_leader(&[1], Duration::from_secs(15)).await?;
        let api = c.master(1).api();
        // No instances: with no agent a job that wants tasks would get a
        // waiting reason committed by the leader meanwhile.
        let mut spec = job_spec("a");
        spec["instances"] = json!(0);
        assert_eq!(api.post("/v1/jobs", &spec).await?.status, 201);
        let a = job_id("a");
        let spec = serde_json::to_vec(&spec)?;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let before = version(&api).await?;
        let cases: Vec<BadCase> = vec![
            (
                "POST",
                "/v1/jobs?expected_version=x".into(),
                Some(spec.clone()),
                400,
                "expected_version",
            ),
            (
                "POST",
                "/v1/jobs?expected_version=7".into(),
                Some(spec.clone()),
                409,
                "",
            ),
            (
                "POST",
                "/v1/jobs?expected_version=0".into(),
                Some(spec.clone()),
                409,
                "",
            ),
            (
                "DELETE",
                format!("/v1/jobs/{a}?expected_version=9"),
                None,
                409,
                "",
            ),
            (
                "POST",
                format!("/v1/jobs/{a}/scale"),
                Some(br#"{"instances":"x"}"#.to_vec()),
                400,
                "instances",
            ),
            (
                "POST",
                format!("/v1/jobs/{a}/scale?expected_version=3"),
                Some(br#"{"instances":2}"#.to_vec()),
                409,
                "",
            ),
            ("GET", "/v1/jobs?prefix=pdl".into(), None, 400, "prefix"),
            ("GET", "/v1/jobs/nope/versions".into(), None, 404, ""),
            ("GET", "/v1/events?kinds=jobs".into(), None, 400, "kinds"),
            ("GET", "/v1/events?node=pdl.Demo".into(), None, 400, "node"),
            ("GET", "/v1/events?frm=3".into(), None, 400, "frm"),
            (
                "PUT",
                "/v1/frameworks/Bad/kv/k".into(),
                Some(b"1".to_vec()),
                400,
                "framework",
            ),
            (
                "PUT",
                "/v1/frameworks/elb/kv/a%20b".into(),
                Some(b"1".to_vec()),
                400,
                "key",
            ),
            (
                "PUT",
                "/v1/frameworks/elb/kv/.lease/leader".into(),
                Some(b"1".to_vec()),
                400,
                "key",
            ),
            (
                "PUT",
                "/v1/frameworks/elb/kv/k?expected_revision=oops".into(),
                Some(b"1".to_vec()),
                400,
                "expected_revision",
            ),
            (
                "PUT",
                "/v1/frameworks/elb/kv/k?expected_revision=5".into(),
                Some(b"1".to_vec()),
                409,
                "",
            ),
            (
                "DELETE",
                "/v1/frameworks/elb/kv/missing".into(),
                None,
                404,
                "",
            ),
            (
                "POST",
                "/v1/frameworks/elb/lease".into(),
                Some(br#"{"holder":"h","ttl_ms":1}"#.to_vec()),
                400,
                "ttl_ms",
            ),
            (
                "POST",
                "/v1/frameworks/elb/lease".into(),
                Some(br#"{"holder":"","ttl_ms":1000}"#.to_vec()),
                400,
                "holder",
            ),
            (
                "POST",
                "/v1/frameworks/elb/lease".into(),
                Some(br#"{"ttl_ms":1000}"#.to_vec()),
                400,
                "holder",
            ),
            (
                "DELETE",
                "/v1/frameworks/elb/lease".into(),
                None,
                400,
                "holder",
            ),
            ("PATCH", "/v1/jobs".into(), None, 405, "method"),
        ];
        for (m, path, body, status, field) in cases {
            let r = if m == "PATCH" {
                use ocean_tests::http::{Body, Method};
                api.send(Method::PATCH, &path, Body::None).await?
            } else {
                rest(&api, m, &path, body).await?
            };
            assert_eq!(r.status, status, "{m} {path}: {:?}", r.body);
            assert!(
                r.body.is_object(),
                "{m} {path}: the error is JSON: {:?}",
                r.body
            );
            if !field.is_empty() {
                assert_eq!(
                    r.body["errors"][0]["field"], field,
                    "{m} {path}: {:?}",
                    r.body
                );
            }
            if status == 409 {
                assert!(
                    r.body["actual_version"].is_u64(),
                    "{m} {path}: both versions: {:?}",
                    r.body
                );
            }
        }
        assert_eq!(
            version(&api).await?,
            before,
            "no bad request changed the state"
        );
        Ok(())
    })
    .await;
}
