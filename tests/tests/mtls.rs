//! mTLS between masters and agents (issue 21, item 5), with real processes
//! and real TLS: certificates from `ocean tls`, masters whose raft traffic
//! has its own mTLS-only listener, agents bound to their certificate.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use ocean_proto::raft::raft_transport_client::RaftTransportClient;
use ocean_proto::raft::{forward_request, ForwardRequest, RaftBatch, ReadIndex};
use ocean_tests::http::job_spec;
use ocean_tests::tasks::{bounded, running, wait_connected, wait_tasks};
use ocean_tests::tls::{Pki, TlsCluster};
use ocean_tests::Api;
use ocean_tls::TlsFiles;
use serde_json::Value;
use tonic::transport::{Channel, Endpoint};

async fn agent_ids(api: &Api) -> Vec<String> {
    match api.get("/v1/agents").await {
        Ok(r) => r.body["agents"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["id"].as_str().map(str::to_string))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Waits until `log` (a process's log file) contains `needle`.
async fn wait_log(log: &Path, needle: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} does not say {needle:?} within {timeout:?}; it says:\n{}",
            log.display(),
            text.lines().rev().take(30).collect::<Vec<_>>().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A raw transport client to a raft listener: TLS trusting `ca` and
/// presenting `cert` (a `--tls-dir`), or no certificate, or plain text.
async fn raft_client(
    addr: SocketAddr,
    ca: &Path,
    cert: Option<&Path>,
    plain: bool,
) -> anyhow::Result<RaftTransportClient<Channel>> {
    if plain {
        let ch = Endpoint::from_shared(format!("http://{addr}"))?.connect_lazy();
        return Ok(RaftTransportClient::new(ch));
    }
    let tls = match cert {
        Some(dir) => TlsFiles::from_dir(dir).client()?,
        None => TlsFiles::client_without_cert(ca)?,
    };
    let ch = Endpoint::from_shared(format!("https://{addr}"))?
        .connect_timeout(Duration::from_secs(2))
        .tls_config(tls)?
        .connect_lazy();
    Ok(RaftTransportClient::new(ch))
}

fn batch() -> RaftBatch {
    // Any message at all: the listener must refuse before reading it.
    RaftBatch {
        from: 99,
        messages: vec![vec![0u8; 8]],
        from_addr: "127.0.0.1:1".into(),
    }
}

fn read_index() -> ForwardRequest {
    ForwardRequest {
        kind: Some(forward_request::Kind::ReadIndex(ReadIndex {})),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certified_cluster_elects_a_leader_and_runs_a_job() {
    bounded(150, async {
        let dir = tempfile::tempdir()?;
        let pki = Pki::new(dir.path(), "cluster-ca")?;
        let mut tc = TlsCluster::start(3, &pki, &[])?;
        let c = &mut tc.cluster;
        let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(30)).await?;
        // Each master announced its raft listener in the replicated
        // `ocean.raft` namespace: seen through raft on every master's peers
        // page, every peer healthy over mTLS.
        let members = c.master(leader).api().get("/v1/members").await?;
        let list = members.body["members"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        anyhow::ensure!(list.len() == 3, "three members: {}", members.body);

        // An agent with its own certificate: a fresh data dir takes the
        // certificate's name as its id, and it registers.
        let agent_cert = pki.cert("agent", "tls-a1")?;
        let mut a = c.new_agent("a1", &["--tls-dir", &agent_cert.to_string_lossy()]);
        a.start()?;
        let api = c.master(leader).api();
        wait_connected(&api, 1, Duration::from_secs(30))
            .await
            .map_err(|e| anyhow::anyhow!("{e:#}; agent log:\n{}", a.log_tail()))?;
        anyhow::ensure!(
            agent_ids(&api).await == vec!["tls-a1".to_string()],
            "the agent registers as its certificate's name"
        );

        let spec = job_spec("tls");
        ocean_tests::tasks::submit(&api, &spec).await?;
        let job = spec["id"].as_str().unwrap_or_default().to_string();
        wait_tasks(
            &api,
            &job,
            "the job's task runs",
            Duration::from_secs(30),
            |l| running(l).len() == 1,
        )
        .await?;

        // A leader change over the mTLS listeners: the others elect one.
        c.master_mut(leader).kill();
        let others: Vec<u64> = (1..=3).filter(|i| *i != leader).collect();
        let next = c.wait_leader(&others, Duration::from_secs(30)).await?;
        anyhow::ensure!(next != leader, "a new leader");
        // And it still knows the agent (it reconnects to the new leader).
        wait_connected(&c.master(next).api(), 1, Duration::from_secs(30)).await?;
        drop(a);
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_with_the_wrong_certificate_are_refused() {
    bounded(120, async {
        let dir = tempfile::tempdir()?;
        let pki = Pki::new(dir.path(), "cluster-ca")?;
        let other = Pki::new(dir.path(), "other-ca")?;
        let tc = TlsCluster::start(1, &pki, &[])?;
        let c = &tc.cluster;
        c.wait_leader(&[1], Duration::from_secs(30)).await?;
        let api = c.master(1).api();

        // An agent whose id is a1 presenting a2's certificate.
        let a2_cert = pki.cert("agent", "a2")?;
        let mut imposter = c.new_agent("imposter", &["--tls-dir", &a2_cert.to_string_lossy()]);
        std::fs::create_dir_all(&imposter.data_dir)?;
        std::fs::write(imposter.data_dir.join("agent-id"), "a1\n")?;
        imposter.start()?;
        // An agent whose certificate is from another CA.
        let foreign_cert = other.cert("agent", "a3")?;
        let mut foreign = c.new_agent("foreign", &["--tls-dir", &foreign_cert.to_string_lossy()]);
        foreign.start()?;
        // An agent presenting a master's certificate.
        let master_cert = pki.cert("master", "a4")?;
        let mut as_master =
            c.new_agent("as-master", &["--tls-dir", &master_cert.to_string_lossy()]);
        std::fs::create_dir_all(&as_master.data_dir)?;
        std::fs::write(as_master.data_dir.join("agent-id"), "a4\n")?;
        as_master.start()?;
        // And one that is what its certificate says.
        let good_cert = pki.cert("agent", "a5")?;
        let mut good = c.new_agent("good", &["--tls-dir", &good_cert.to_string_lossy()]);
        good.start()?;

        wait_connected(&api, 1, Duration::from_secs(30)).await?;
        // The refusal names the field and the certificate's identity.
        wait_log(
            imposter.process.log_path(),
            "agent_id: 'a1' is not the certificate identity agent:a2",
            Duration::from_secs(20),
        )
        .await?;
        wait_log(
            as_master.process.log_path(),
            "the certificate identity is master:a4, not an agent",
            Duration::from_secs(20),
        )
        .await?;
        // The handshake itself fails for a certificate from another CA.
        wait_log(
            foreign.process.log_path(),
            "session with master ended",
            Duration::from_secs(20),
        )
        .await?;
        // They kept trying for a while: still only the good agent is known.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let ids = agent_ids(&api).await;
        anyhow::ensure!(ids == vec!["a5".to_string()], "only a5 registered: {ids:?}");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn masters_without_a_valid_certificate_cannot_join_or_send_raft_messages() {
    bounded(120, async {
        let dir = tempfile::tempdir()?;
        let pki = Pki::new(dir.path(), "cluster-ca")?;
        let other = Pki::new(dir.path(), "other-ca")?;
        let tc = TlsCluster::start(1, &pki, &[])?;
        let c = &tc.cluster;
        c.wait_leader(&[1], Duration::from_secs(30)).await?;
        let raft = tc.raft_addr(1);
        let ca = pki.ca.join("ca.pem");

        // Raw transport calls to the raft listener.
        let valid = pki.cert("master", "m9")?;
        let mut ok = raft_client(raft, &ca, Some(&valid), false).await?;
        ok.forward(read_index())
            .await
            .map_err(|s| anyhow::anyhow!("a valid master certificate is let in: {s:?}"))?;

        let agent = pki.cert("agent", "m8")?;
        let mut client = raft_client(raft, &ca, Some(&agent), false).await?;
        let err = client
            .send(batch())
            .await
            .expect_err("an agent's certificate is refused");
        anyhow::ensure!(
            err.code() == tonic::Code::PermissionDenied
                && err.message().contains("master certificates only"),
            "agent certificate: {err:?}"
        );
        let err = client
            .forward(read_index())
            .await
            .expect_err("no forwarding either");
        anyhow::ensure!(err.code() == tonic::Code::PermissionDenied, "{err:?}");

        let foreign = other.cert("master", "m7")?;
        let mut client = raft_client(raft, &ca, Some(&foreign), false).await?;
        let err = client
            .send(batch())
            .await
            .expect_err("another CA's master is refused");
        anyhow::ensure!(err.code() != tonic::Code::Ok, "{err:?}");

        let mut client = raft_client(raft, &ca, None, false).await?;
        client
            .send(batch())
            .await
            .expect_err("no certificate is refused");
        let mut client = raft_client(raft, &ca, None, true).await?;
        client
            .send(batch())
            .await
            .expect_err("plain text is refused");

        // The client API over TLS takes callers without a certificate.
        let tls = TlsFiles::client_without_cert(&ca)?;
        let ch = Endpoint::from_shared(format!("https://{}", c.master(1).grpc))?
            .tls_config(tls)?
            .connect()
            .await?;
        let leader = ocean_proto::v1::ocean_api_client::OceanApiClient::new(ch)
            .leader(ocean_proto::v1::LeaderRequest {})
            .await?;
        anyhow::ensure!(leader.into_inner().id == 1, "the API answers over TLS");

        // Masters that try to join: one with another CA's certificate, one
        // with an agent's certificate from the right CA.
        let mut joiners = Vec::new();
        for (id, cert) in [
            (2u64, other.cert("master", "m2")?),
            (3, pki.cert("agent", "m3")?),
        ] {
            let mut m = c.new_joiner(
                id,
                &[
                    "--raft-addr",
                    &ocean_tests::cluster::free_addr().to_string(),
                    "--tls-dir",
                    &cert.to_string_lossy(),
                ],
            );
            // Joiners name the raft listeners they ask.
            let at = m.args.iter().position(|a| a == "--join").unwrap_or(0);
            m.args[at + 1] = raft.to_string();
            m.start()?;
            joiners.push(m);
        }
        // The one with an agent's certificate does not even start (the
        // raft listener's own refusal of agent certificates is checked
        // with a raw client above).
        wait_log(
            joiners[1].process.log_path(),
            "tls.cert",
            Duration::from_secs(20),
        )
        .await?;
        let log = std::fs::read_to_string(joiners[1].process.log_path())?;
        anyhow::ensure!(
            log.contains("agent:m3, not a master's"),
            "the refusal names the certificate's identity: {log}"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while !joiners[1].process.exited() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "a master with an agent's certificate runs"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _refused = joiners.pop();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let members = c.master(1).api().get("/v1/members").await?;
        let ids: Vec<Value> = members.body["members"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| m["id"].clone())
            .collect();
        anyhow::ensure!(
            ids == vec![Value::from(1)],
            "nobody joined: {}",
            members.body
        );
        for j in &joiners {
            let status = j.api().get("/v1/status").await?;
            anyhow::ensure!(
                status.body["leader"].as_u64().unwrap_or(0) == 0,
                "joiner {} never hears a leader: {}",
                j.id,
                status.body
            );
        }
        for mut j in joiners {
            j.kill();
        }

        // A master with a valid certificate joins through the same port.
        let cert = pki.cert("master", "m4")?;
        let mut good = c.new_joiner(
            4,
            &[
                "--raft-addr",
                &ocean_tests::cluster::free_addr().to_string(),
                "--tls-dir",
                &cert.to_string_lossy(),
            ],
        );
        let at = good.args.iter().position(|a| a == "--join").unwrap_or(0);
        good.args[at + 1] = raft.to_string();
        good.start()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let members = c.master(1).api().get("/v1/members").await?;
            let n = members.body["members"].as_array().map_or(0, Vec::len);
            let heard = match good.api().get("/v1/status").await {
                Ok(s) => s.body["leader"].as_u64().unwrap_or(0),
                Err(_) => 0,
            };
            if n == 2 && heard == 1 {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the certified master did not join: {}\n{}",
                members.body,
                good.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Replication reaches it over mTLS: a write on the leader shows up.
        c.master(1).api().put_job("after-join").await?;
        let job = ocean_tests::http::job_id("after-join");
        let deadline = Instant::now() + Duration::from_secs(30);
        while good.api().get(&format!("/v1/jobs/{job}")).await?.status != 200 {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the write did not reach master 4"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        good.kill();
        Ok(())
    })
    .await;
}
