//! The REST API and the dashboard over HTTPS (issue 21, item 5: "client
//! TLS for the API"): masters with `--tls-http`, the `ocean` CLI trusting
//! the CA with `--ca-cert`, and `ocean dev --tls` running a whole
//! certified cluster (HTTPS, gRPC with TLS, the agent with its own
//! certificate, the DNS server following over TLS).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use ocean_tests::cluster::{agent_ports, free_addr, DevProc};
use ocean_tests::tasks::bounded;
use ocean_tests::tls::{Pki, TlsCluster};
use ocean_tests::{ocean_bin, Api};

fn ocean(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(ocean_bin())
        .args(args)
        .env_remove("OCEAN_ADDR")
        .env_remove("OCEAN_CACERT")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run ocean")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Waits until `api` answers `GET /v1/status` with a leader.
async fn wait_leader(api: &Api, timeout: Duration) -> anyhow::Result<u64> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = api.get("/v1/status").await;
        if let Ok(r) = &last {
            if let Some(l) = r.body["leader"].as_u64().filter(|l| *l != 0) {
                return Ok(l);
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "no leader over HTTPS: {last:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certified_cluster_serves_rest_and_the_dashboard_over_https() {
    bounded(120, async {
        let dir = tempfile::tempdir()?;
        let pki = Pki::new(dir.path(), "cluster-ca")?;
        let other = Pki::new(dir.path(), "other-ca")?;
        let tc = TlsCluster::start(3, &pki, &["--tls-http"])?;
        let c = &tc.cluster;
        let ca = pki.ca.join(ocean_tls::CA_CERT);
        let apis = (1..=3)
            .map(|id| Api::https(&c.master(id).http.to_string(), &ca, None))
            .collect::<anyhow::Result<Vec<_>>>()?;
        // Every master must know the leader: followers relay to it.
        let mut leader = 0;
        for api in &apis {
            let l = wait_leader(api, Duration::from_secs(30)).await?;
            anyhow::ensure!(
                leader == 0 || l == leader,
                "masters disagree: {leader} vs {l}"
            );
            leader = l;
        }

        // A follower relays usage from the leader over the masters' own
        // HTTPS client (CA-checked, with the master's certificate).
        // Just after the election the follower may not know the leader's
        // REST address yet (announced through the log): a 503 to retry.
        let follower = if leader == 1 { 2 } else { 1 };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = apis[follower as usize - 1].get("/v1/usage").await?;
            if r.status == 200 {
                break;
            }
            assert!(
                r.status == 503 && r.body["code"] == "no_leader" && Instant::now() < deadline,
                "usage through follower {follower}: {} {}",
                r.status,
                r.body
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // The dashboard is served on the same listener.
        let page = apis[0].get_text("/ui/").await?;
        assert!(page.contains("<html"), "dashboard over HTTPS: {page:.300}");

        // The CLI: with the CA, an address without a scheme is HTTPS.
        let addr = c.master(leader).http.to_string();
        let ca_flag = ca.to_string_lossy().into_owned();
        let o = ocean(&["--addr", &addr, "--ca-cert", &ca_flag, "status"], &[]);
        assert!(o.status.success(), "{}", text(&o));
        assert!(text(&o).contains("role leader"), "{}", text(&o));
        // The variable works like the flag.
        let o = ocean(
            &["status"],
            &[("OCEAN_ADDR", &addr), ("OCEAN_CACERT", &ca_flag)],
        );
        assert!(o.status.success(), "{}", text(&o));

        // Without the CA the certificate cannot be checked: no built-in
        // roots are trusted.
        let https = format!("https://{addr}");
        let o = ocean(&["--addr", &https, "status"], &[]);
        assert!(!o.status.success(), "HTTPS without a CA: {}", text(&o));
        // Another CA is not this cluster's.
        let other_ca = other.ca.join(ocean_tls::CA_CERT);
        let o = ocean(
            &[
                "--addr",
                &addr,
                "--ca-cert",
                &other_ca.to_string_lossy(),
                "status",
            ],
            &[],
        );
        assert!(!o.status.success(), "the wrong CA: {}", text(&o));
        // Plain HTTP to the HTTPS listener gets nothing.
        let o = ocean(&["--addr", &format!("http://{addr}"), "status"], &[]);
        assert!(!o.status.success(), "plain HTTP: {}", text(&o));
        // A bad CA file is named.
        let not_pem = dir.path().join("not.pem");
        std::fs::write(&not_pem, "hello")?;
        let o = ocean(
            &[
                "--addr",
                &addr,
                "--ca-cert",
                &not_pem.to_string_lossy(),
                "status",
            ],
            &[],
        );
        assert!(
            !o.status.success() && text(&o).contains("--ca-cert"),
            "{}",
            text(&o)
        );

        // A client certificate is optional, but one from another CA is
        // refused in the handshake.
        let client = pki.cert("client", "alice")?;
        let with_cert = Api::https(&addr, &ca, Some(&client))?;
        assert_eq!(with_cert.get("/v1/status").await?.status, 200);
        let stranger = other.cert("client", "mallory")?;
        let refused = Api::https(&addr, &ca, Some(&stranger))?;
        assert!(
            refused.get("/v1/status").await.is_err(),
            "a certificate from another CA was accepted"
        );
        Ok(())
    })
    .await;
}

/// `ocean dev --tls` comes up with HTTPS, runs a task on its certified
/// agent, and its DNS server follows the master over TLS.
#[tokio::test(flavor = "multi_thread")]
async fn dev_with_tls_runs_a_certified_cluster() {
    bounded(120, async {
        let dir = tempfile::tempdir()?;
        let http = free_addr().to_string();
        let grpc = free_addr().to_string();
        let raft = free_addr().to_string();
        let dns = free_addr();
        let dns_flag = dns.to_string();
        let ports = agent_ports();
        let _dev = DevProc::spawn(
            dir.path(),
            &[
                "--tls",
                "--http",
                &http,
                "--grpc",
                &grpc,
                "--raft-addr",
                &raft,
                "--dns",
                &dns_flag,
                "--ports",
                &ports,
            ],
        )?;
        let ca = dir.path().join("tls/ca").join(ocean_tls::CA_CERT);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ca.exists() {
            anyhow::ensure!(Instant::now() < deadline, "no dev CA at {}", ca.display());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let api = Api::https(&http, &ca, None)?;
        wait_leader(&api, Duration::from_secs(30)).await?;
        let env = [
            ("OCEAN_ADDR", http.as_str()),
            ("OCEAN_CACERT", &*ca.to_string_lossy()),
        ];
        let env: Vec<(&str, &str)> = env.to_vec();

        // The agent registered with its certificate (its id is the name
        // the certificate carries) and runs a task.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let o = ocean(&["agent", "list"], &env);
            if o.status.success() && text(&o).contains("dev-agent") && text(&o).contains("online") {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "no certified agent: {}",
                text(&o)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let spec = repo_file("docs/examples/http-server.yaml");
        let o = ocean(&["job", "run", &spec], &env);
        assert!(o.status.success(), "{}", text(&o));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let o = ocean(&["task", "list"], &env);
            if text(&o).matches("RUNNING").count() >= 2 {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "tasks never ran: {}", text(&o));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        // The DNS server follows the master over TLS.
        ocean_tests::dns::wait_answer(
            dns,
            "leader.ocean.",
            RecordType::A,
            "the dev DNS server over TLS",
            Duration::from_secs(20),
            |m| !ocean_tests::dns::addrs(m).is_empty(),
        )
        .await?;
        let o = ocean(
            &[
                "job",
                "stop",
                "cop.example_owt.dev_pdl.demo_service.web_job.http_cluster.dev",
            ],
            &env,
        );
        assert!(o.status.success(), "{}", text(&o));
        Ok(())
    })
    .await;
}

fn repo_file(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
        .display()
        .to_string()
}
