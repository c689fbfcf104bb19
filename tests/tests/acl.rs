//! Access control against a real master started with `--acl`: for each
//! route × (no token, read on `pdl.demo`, read on the sibling `pdl.demo2`,
//! write on `pdl.demo`, admin) the expected status; lists, SSE and the
//! gRPC watch filtered to what the token may read; bootstrap only once;
//! the token store invisible to frameworks' KV calls and watches.

use std::time::Duration;

use futures::StreamExt;
use ocean_client::api::{event, JobRef, ListJobsRequest, PutJobRequest, WatchRequest};
use ocean_client::{Client, Error, GrpcClient, Secret};
use ocean_tests::http::acl_token;
use ocean_tests::tasks::bounded;
use ocean_tests::{Api, Cluster};
use serde_json::{json, Value};

fn id_in(pdl: &str, name: &str) -> String {
    format!("cop.test_owt.qa_pdl.{pdl}_service.itest_job.{name}_cluster.local")
}

fn spec(pdl: &str, name: &str) -> Value {
    json!({
        "id": id_in(pdl, name),
        "cmd": "sleep 3600",
        "instances": 1,
        "resources": {"cpus": 0.01, "mem": 16},
    })
}

/// A route of the table: name, method, path, body, then the status
/// expected for each of [`CALLERS`].
type RouteRow = (&'static str, &'static str, String, Option<Value>, [u16; 5]);

/// The five callers of the table, in its column order.
const CALLERS: [&str; 5] = ["none", "read demo", "read demo2", "write demo", "admin"];

/// Makes a policy with one rule and a token bound to it; the secret.
async fn token(admin: &Api, name: &str, node: &str, rights: &str) -> anyhow::Result<String> {
    let body = acl_token(admin, name, node, rights).await?;
    anyhow::ensure!(
        body.get("secret_sha256").is_none(),
        "the answer shows the secret, never its hash"
    );
    Ok(body["secret"].as_str().unwrap_or_default().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_answers_each_token_as_its_rights_say() {
    bounded(120, async {
        let c = Cluster::start(1, &["--acl"])?;
        c.wait_leader(&[1], Duration::from_secs(15)).await?;
        let anon = c.master(1).api();

        // Bootstrap: once, without a token; a second is refused, clearly.
        let boot = anon.post("/v1/acl/bootstrap", &json!({})).await?;
        assert_eq!(boot.status, 201, "{}", boot.body);
        let admin_secret = boot.body["secret"].as_str().unwrap().to_string();
        let again = anon.post("/v1/acl/bootstrap", &json!({})).await?;
        assert_eq!(again.status, 409, "{}", again.body);
        assert!(
            again.body["error"]
                .as_str()
                .unwrap_or_default()
                .contains("already bootstrapped"),
            "{}",
            again.body
        );
        let admin = anon.with_token(&admin_secret);
        let read = anon.with_token(&token(&admin, "demo-read", "pdl.demo", "read").await?);
        let read2 = anon.with_token(&token(&admin, "demo2-read", "pdl.demo2", "read").await?);
        let write = anon.with_token(&token(&admin, "demo-write", "pdl.demo", "write").await?);
        let apis = [&anon, &read, &read2, &write, &admin];

        // One job in each product line.
        for pdl in ["demo", "demo2"] {
            let r = admin.post("/v1/jobs", &spec(pdl, "a")).await?;
            assert_eq!(r.status, 201, "{}", r.body);
        }
        let demo = id_in("demo", "a");
        let task = format!("{demo}.0001");

        // route, method, path, body, then the status for each caller.
        let rows: Vec<RouteRow> = vec![
            ("leader", "GET", "/v1/leader".into(), None, [200; 5]),
            (
                "get job",
                "GET",
                format!("/v1/jobs/{demo}"),
                None,
                [401, 200, 403, 200, 200],
            ),
            (
                "list jobs",
                "GET",
                "/v1/jobs".into(),
                None,
                [401, 200, 200, 200, 200],
            ),
            // The same spec again: an unchanged write, allowed or not.
            (
                "put job",
                "POST",
                "/v1/jobs".into(),
                Some(spec("demo", "a")),
                [401, 403, 403, 200, 200],
            ),
            (
                "put job demo2",
                "POST",
                "/v1/jobs".into(),
                Some(spec("demo2", "a")),
                [401, 403, 403, 403, 200],
            ),
            (
                "scale",
                "POST",
                format!("/v1/jobs/{demo}/scale"),
                Some(json!({"instances": 1})),
                [401, 403, 403, 200, 200],
            ),
            (
                "reset back-off",
                "POST",
                format!("/v1/jobs/{demo}/reset-backoff"),
                None,
                [401, 403, 403, 403, 200],
            ),
            (
                "versions",
                "GET",
                format!("/v1/jobs/{demo}/versions"),
                None,
                [401, 200, 403, 200, 200],
            ),
            (
                "tasks of job",
                "GET",
                format!("/v1/tasks?job={demo}"),
                None,
                [401, 200, 403, 200, 200],
            ),
            // No agent runs it: a known-to-nobody task, after the check.
            (
                "one task",
                "GET",
                format!("/v1/tasks/{task}"),
                None,
                [401, 404, 403, 404, 404],
            ),
            (
                "deployments",
                "GET",
                "/v1/deployments".into(),
                None,
                [401, 200, 200, 200, 200],
            ),
            (
                "agents",
                "GET",
                "/v1/agents".into(),
                None,
                [401, 200, 200, 200, 200],
            ),
            (
                "agent status",
                "POST",
                "/v1/agents/nobody/status".into(),
                Some(json!({"status": "problem"})),
                [401, 403, 403, 403, 404],
            ),
            (
                "summary",
                "GET",
                "/v1/summary".into(),
                None,
                [401, 403, 403, 403, 200],
            ),
            (
                "job page demo",
                "GET",
                "/v1/summary/jobs?prefix=pdl.demo".into(),
                None,
                [401, 200, 403, 200, 200],
            ),
            (
                "framework kv",
                "GET",
                "/v1/frameworks/parity/kv".into(),
                None,
                [401, 403, 403, 403, 200],
            ),
            (
                "list tokens",
                "GET",
                "/v1/acl/tokens".into(),
                None,
                [401, 403, 403, 403, 200],
            ),
            (
                "list policies",
                "GET",
                "/v1/acl/policies".into(),
                None,
                [401, 403, 403, 403, 200],
            ),
            (
                "create policy",
                "POST",
                "/v1/acl/policies".into(),
                Some(json!({"name": "x", "rules": [{"node": "pdl.x", "rights": "read"}]})),
                [401, 403, 403, 403, 201],
            ),
            (
                // Authorised before the body is read: admin gets the
                // file's own refusal.
                "restore a snapshot",
                "POST",
                "/v1/snapshot/restore".into(),
                None,
                [401, 403, 403, 403, 400],
            ),
            (
                "remove master",
                "DELETE",
                "/v1/members/9".into(),
                None,
                [401, 403, 403, 403, 404],
            ),
        ];
        let mut failures = Vec::new();
        for (route, method, path, body, expected) in &rows {
            for (i, api) in apis.iter().enumerate() {
                let r = match (*method, body) {
                    ("GET", _) => api.get(path).await?,
                    ("DELETE", _) => api.delete(path).await?,
                    (_, Some(b)) => api.post(path, b).await?,
                    (_, None) => api.post(path, &json!({})).await?,
                };
                if r.status != expected[i] {
                    failures.push(format!(
                        "{route} ({method} {path}) as {}: {} (expected {}): {}",
                        CALLERS[i], r.status, expected[i], r.body
                    ));
                    continue;
                }
                if r.status == 401 {
                    assert_eq!(r.body["code"], "unauthenticated", "{route}: {}", r.body);
                }
                if r.status == 403 {
                    assert_eq!(r.body["code"], "forbidden", "{route}: {}", r.body);
                    assert!(
                        r.body["right"].is_string() && r.body["node"].is_string(),
                        "{}",
                        r.body
                    );
                    let msg = r.body["error"].as_str().unwrap_or_default();
                    assert!(msg.contains(r.body["right"].as_str().unwrap()), "{msg}");
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));

        // The audit log names who wrote what; refused writes are not in it.
        let audit = admin.get("/v1/acl/audit?limit=1000").await?;
        assert_eq!(audit.status, 200, "{}", audit.body);
        let entries = audit.body["entries"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let by = |who: &str, what: &str| {
            entries.iter().any(|e| {
                e["who"].as_str().unwrap_or_default().starts_with(who)
                    && e["what"].as_str() == Some(what)
                    && e["version"].as_u64().unwrap_or(0) > 0
                    && e["at_ms"].as_u64().unwrap_or(0) > 0
            })
        };
        assert!(
            by("demo-write (", &format!("scale job {demo}")),
            "{entries:?}"
        );
        assert!(
            by("bootstrap (", &format!("put job {}", id_in("demo2", "a"))),
            "{entries:?}"
        );
        assert!(
            !by("demo-read (", &format!("scale job {demo}")),
            "{entries:?}"
        );
        assert_eq!(read.get("/v1/acl/audit").await?.status, 403);

        // A 403 names the node and the missing right.
        let r = read
            .post(&format!("/v1/jobs/{demo}/scale"), &json!({"instances": 2}))
            .await?;
        assert_eq!(
            (r.body["node"].as_str(), r.body["right"].as_str()),
            (Some(demo.as_str()), Some("write")),
            "{}",
            r.body
        );

        // Lists are filtered to what the token may read.
        let ids = |v: &Value| -> Vec<String> {
            v["jobs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|j| j["id"].as_str().map(str::to_string))
                .collect()
        };
        assert_eq!(
            ids(&read.get("/v1/jobs").await?.body),
            std::slice::from_ref(&demo)
        );
        assert_eq!(
            ids(&read2.get("/v1/jobs").await?.body),
            [id_in("demo2", "a")]
        );
        assert_eq!(ids(&admin.get("/v1/jobs").await?.body).len(), 2);

        // The token store is no framework's: its namespace is refused.
        let r = admin.get("/v1/frameworks/ocean.acl/kv").await?;
        assert_eq!(r.status, 400, "{}", r.body);

        // gRPC: the same checks, the token in the metadata.
        let grpc_addr = vec![c.master(1).grpc.to_string()];
        let none = GrpcClient::new(grpc_addr.clone())?;
        match none.list_jobs(ListJobsRequest::default()).await {
            Err(Error::Other { code, .. }) => assert_eq!(code, tonic::Code::Unauthenticated),
            other => panic!("gRPC without a token: {other:?}"),
        }
        let read_secret = Secret::new(token(&admin, "grpc-read", "pdl.demo", "read").await?);
        let g = GrpcClient::new(grpc_addr.clone())?.with_token(&read_secret)?;
        // A gRPC write with a read token: PERMISSION_DENIED naming the right.
        let put = PutJobRequest {
            spec: serde_json::to_vec(&spec("demo", "a"))?,
            format: "json".into(),
            expected_spec_version: None,
        };
        match g.put_job(put).await {
            Err(Error::Other { code, message }) => {
                assert_eq!(code, tonic::Code::PermissionDenied, "{message}");
                assert!(message.contains("write"), "{message}");
            }
            other => panic!("gRPC put with a read token: {other:?}"),
        }
        let other = Secret::new(token(&admin, "grpc-read2", "pdl.demo2", "read").await?);
        let g2 = GrpcClient::new(grpc_addr.clone())?.with_token(&other)?;
        let demo_ref = JobRef {
            id: demo.clone(),
            ..Default::default()
        };
        for denied in [
            g2.get_job(demo_ref.clone()).await.map(drop),
            g2.job_info(demo_ref.clone()).await.map(drop),
        ] {
            match denied {
                Err(Error::Other { code, .. }) => assert_eq!(code, tonic::Code::PermissionDenied),
                other => panic!("gRPC read of pdl.demo with a pdl.demo2 token: {other:?}"),
            }
        }
        assert_eq!(g.get_job(demo_ref).await?.id, demo);
        let listed = g.list_jobs(ListJobsRequest::default()).await?;
        let ids: Vec<_> = listed.jobs.iter().map(|j| j.id.clone()).collect();
        assert_eq!(ids, std::slice::from_ref(&demo));

        // Watches: a pdl.demo reader never sees a pdl.demo2 job, in the
        // snapshot or live, on SSE or on gRPC.
        let mut sse = sse_lines(&c.master(1).http.to_string(), read_secret.expose()).await?;
        let mut w = g.watch(WatchRequest::default()).await?;
        match w.next().await {
            Some(Ok(e)) => match e.kind {
                Some(event::Kind::Snapshot(s)) => {
                    let ids: Vec<_> = s.jobs.iter().map(|j| j.id.clone()).collect();
                    assert_eq!(ids, std::slice::from_ref(&demo));
                    assert!(s.kv.iter().all(|e| !e.namespace.starts_with("ocean.")));
                }
                other => panic!("expected a snapshot first, got {other:?}"),
            },
            other => panic!("watch ended: {other:?}"),
        }
        for (pdl, name) in [("demo2", "b"), ("demo", "b")] {
            let r = admin.post("/v1/jobs", &spec(pdl, name)).await?;
            assert_eq!(r.status, 201, "{}", r.body);
        }
        let demo_b = id_in("demo", "b");
        let demo2_b = id_in("demo2", "b");
        loop {
            let e = tokio::time::timeout(Duration::from_secs(10), w.next())
                .await?
                .expect("watch open")?;
            if let Some(event::Kind::JobPut(j)) = e.kind {
                assert_ne!(j.id, demo2_b, "a pdl.demo watch saw pdl.demo2");
                if j.id == demo_b {
                    break;
                }
            }
        }
        let mut seen = String::new();
        while !seen.contains(&demo_b) {
            let chunk = tokio::time::timeout(Duration::from_secs(10), sse.next())
                .await?
                .expect("SSE open")?;
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        assert!(seen.contains("event: snapshot"), "{seen}");
        assert!(
            !seen.contains("pdl.demo2"),
            "a pdl.demo SSE watch saw pdl.demo2:\n{seen}"
        );
        assert!(!seen.contains("secret_sha256"), "{seen}");
        // Admins may follow the audit log live on the event stream.
        let mut audit = sse_lines_at(
            &c.master(1).http.to_string(),
            &admin_secret,
            "/v1/events?from=0&kinds=agent&audit=true",
        )
        .await?;
        let r = write
            .post(&format!("/v1/jobs/{demo}/scale"), &json!({"instances": 0}))
            .await?;
        assert_eq!(r.status, 200, "{}", r.body);
        let mut seen = String::new();
        while !seen.contains("event: audit") || !seen.contains(&format!("scale job {demo}")) {
            let chunk = tokio::time::timeout(Duration::from_secs(10), audit.next())
                .await?
                .expect("SSE open")?;
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        assert!(seen.contains("demo-write ("), "{seen}");
        let r = read.get("/v1/events?audit=true").await?;
        assert_eq!(
            r.status, 403,
            "only admins follow the audit log: {}",
            r.body
        );

        // Without a token, no stream at all.
        let r = anon.get("/v1/events").await?;
        assert_eq!(r.status, 401, "{}", r.body);

        // Deleted tokens stop working at once.
        let list = admin.get("/v1/acl/tokens").await?;
        assert!(!list.body.to_string().contains("secret"), "{}", list.body);
        let accessor = read_secret.expose().split_once('.').unwrap().0.to_string();
        let r = admin.delete(&format!("/v1/acl/tokens/{accessor}")).await?;
        assert_eq!(r.status, 200, "{}", r.body);
        let r = anon
            .with_token(read_secret.expose())
            .get("/v1/jobs")
            .await?;
        assert_eq!(r.status, 401, "{}", r.body);
        Ok(())
    })
    .await;
}

/// The raw bytes of `GET /v1/events` as `token`, as they arrive.
async fn sse_lines(
    http: &str,
    token: &str,
) -> anyhow::Result<futures::stream::BoxStream<'static, reqwest::Result<Vec<u8>>>> {
    sse_lines_at(http, token, "/v1/events?from=0").await
}

/// The raw bytes of `GET path` as `token`, as they arrive.
async fn sse_lines_at(
    http: &str,
    token: &str,
    path: &str,
) -> anyhow::Result<futures::stream::BoxStream<'static, reqwest::Result<Vec<u8>>>> {
    let resp = reqwest::Client::new()
        .get(format!("http://{http}{path}"))
        .bearer_auth(token)
        .send()
        .await?;
    anyhow::ensure!(resp.status() == 200, "SSE: {}", resp.status());
    Ok(resp.bytes_stream().map(|c| c.map(|b| b.to_vec())).boxed())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_bootstraps_once_and_sends_its_token() {
    bounded(60, async {
        let c = Cluster::start(1, &["--acl"])?;
        c.wait_leader(&[1], Duration::from_secs(15)).await?;
        let addr = format!("http://{}", c.master(1).http);
        let ocean = |args: &[&str], token: Option<&str>| {
            let mut cmd = std::process::Command::new(ocean_tests::ocean_bin());
            cmd.args(["--addr", &addr])
                .args(args)
                .env_remove("OCEAN_TOKEN");
            if let Some(t) = token {
                cmd.env("OCEAN_TOKEN", t);
            }
            cmd.output()
        };
        let out = ocean(&["--json", "acl", "bootstrap"], None)?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout)?;
        let secret = v["secret"].as_str().unwrap().to_string();
        let out = ocean(&["acl", "bootstrap"], None)?;
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("already bootstrapped") && err.contains("409"),
            "{err}"
        );

        let out = ocean(&["job", "list"], None)?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("401"), "{err}");
        let out = ocean(
            &[
                "acl",
                "policy",
                "create",
                "demo-read",
                "--rule",
                "pdl.demo=read",
            ],
            Some(&secret),
        )?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = ocean(
            &[
                "--json",
                "acl",
                "token",
                "create",
                "reader",
                "--policy",
                "demo-read",
            ],
            Some(&secret),
        )?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let reader: Value = serde_json::from_slice(&out.stdout)?;
        let out = ocean(&["acl", "token", "list"], Some(&secret))?;
        let listed = String::from_utf8_lossy(&out.stdout);
        assert!(
            listed.contains("reader") && !listed.contains(reader["secret"].as_str().unwrap()),
            "{listed}"
        );
        // The reader may list jobs but not tokens.
        let out = ocean(&["job", "list"], reader["secret"].as_str())?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = ocean(&["acl", "token", "list"], reader["secret"].as_str())?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("403") && err.contains("admin"),
            "{err}"
        );
        Ok(())
    })
    .await;
}
