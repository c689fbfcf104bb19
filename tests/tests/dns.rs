//! Ocean's DNS end to end: real masters, a real agent running real tasks,
//! `ocean dns` processes, and real DNS packets over UDP and TCP.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use ocean_tests::dns::{
    addrs, ask, query_bytes, rcode, srvs, tcp_raw, udp_raw, wait_answer, DnsProc,
};
use ocean_tests::tasks::{bounded, scale, submit};
use ocean_tests::tasks::{running, wait_tasks};
use ocean_tests::{http::job_id, Cluster};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

/// `<name>.itest.ocean.local.ocean.`: the DNS name of `job_id(name)`.
fn job_name(name: &str) -> String {
    format!("{name}.itest.ocean.local.ocean.")
}

fn spec(name: &str, instances: u32) -> Value {
    json!({
        "id": job_id(name),
        "cmd": "sleep 600",
        "instances": instances,
        "resources": {"cpus": 0.01, "mem": 16},
        "ports": [{"name": "http"}],
        "kill_grace_period_seconds": 1,
    })
}

fn grpc_addrs(c: &Cluster) -> Vec<std::net::SocketAddr> {
    c.masters.iter().map(|m| m.grpc).collect()
}

/// The running tasks' (host port, DNS name) as SRV records should list them.
fn expected_srv(job: &str, tasks: &[Value]) -> Vec<(u16, String)> {
    let mut v: Vec<(u16, String)> = tasks
        .iter()
        .map(|t| {
            let id = t["id"].as_str().unwrap_or_default();
            let label = id.strip_prefix(&format!("{}.", job_id(job))).unwrap_or(id);
            let port = t["ports"][0]["port"].as_u64().unwrap_or(0) as u16;
            (
                port,
                format!("{label}.{}", job_name(job).trim_end_matches('.')),
            )
        })
        .collect();
    v.sort();
    v
}

const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// A, SRV, per-task, per-agent, leader and masters names appear as tasks
/// run, over UDP and TCP; the job's API shows its name; NXDOMAIN and NODATA
/// are told apart; SOA and NS at the apex; a scaled-down task's records
/// go, and a deleted job's name becomes NXDOMAIN.
#[tokio::test(flavor = "multi_thread")]
async fn records_follow_tasks_over_udp_and_tcp() {
    bounded(150, async {
        let c = Cluster::start(1, &[])?;
        let api = c.master(1).api();
        let mut agent = c.new_agent("a", &[]);
        agent.start()?;
        let mut dns = DnsProc::new(c.dir(), "main", &grpc_addrs(&c), &[]);
        dns.start()?;
        ocean_tests::tasks::wait_connected(&api, 1, WAIT).await?;
        let name = job_name("web");
        // Nothing yet: NXDOMAIN (once the first snapshot is in; SERVFAIL
        // before), with the SOA for negative caching.
        let m = wait_answer(dns.addr, &name, RecordType::A, "NXDOMAIN", WAIT, |m| {
            rcode(m) != ResponseCode::ServFail
        })
        .await?;
        assert_eq!(rcode(&m), ResponseCode::NXDomain, "{m:?}");
        assert_eq!(m.authorities.len(), 1);

        submit(&api, &spec("web", 2)).await?;
        let list = wait_tasks(&api, &job_id("web"), "2 RUNNING", WAIT, |l| {
            running(l).len() == 2
        })
        .await?;
        let want = expected_srv("web", &running(&list));
        let srv_name = format!("_http._tcp.{name}");
        let m = wait_answer(dns.addr, &srv_name, RecordType::SRV, "2 SRV", WAIT, |m| {
            srvs(m) == want
        })
        .await?;
        assert!(m.metadata.authoritative);
        // The targets' addresses come along as additional records.
        assert_eq!(m.additionals.len(), 2, "{m:?}");
        for tcp in [false, true] {
            let m = ask(dns.addr, &name, RecordType::A, tcp).await?;
            assert_eq!(addrs(&m), vec![LOOPBACK], "tcp={tcp} {m:?}");
            let m = ask(dns.addr, &srv_name, RecordType::SRV, tcp).await?;
            assert_eq!(srvs(&m), want, "tcp={tcp}");
        }
        for (_, task_name) in &want {
            let m = ask(dns.addr, &format!("{task_name}."), RecordType::A, false).await?;
            assert_eq!(addrs(&m), vec![LOOPBACK], "{task_name}");
        }
        // NODATA: the name exists, not with this type.
        let m = ask(dns.addr, &name, RecordType::AAAA, false).await?;
        assert_eq!(rcode(&m), ResponseCode::NoError);
        assert!(m.answers.is_empty());
        assert_eq!(m.authorities.len(), 1, "SOA in NODATA");
        // An empty non-terminal is NODATA too, not NXDOMAIN.
        let m = ask(dns.addr, &format!("_tcp.{name}"), RecordType::SRV, false).await?;
        assert_eq!(rcode(&m), ResponseCode::NoError);

        // The API shows the job's name.
        let r = api.get(&format!("/v1/jobs/{}", job_id("web"))).await?;
        assert_eq!(
            r.body["dns_name"],
            json!(name.trim_end_matches('.')),
            "{}",
            r.body
        );

        // The agent, the leader and the masters.
        let agent_id = agent.id().expect("agent id");
        let m = ask(
            dns.addr,
            &format!("{agent_id}.agents.ocean."),
            RecordType::A,
            false,
        )
        .await?;
        assert_eq!(addrs(&m), vec![LOOPBACK]);
        for n in ["leader.ocean.", "masters.ocean."] {
            let m = wait_answer(dns.addr, n, RecordType::A, n, WAIT, |m| {
                !m.answers.is_empty()
            })
            .await?;
            assert_eq!(addrs(&m), vec![LOOPBACK], "{n}");
        }
        let m = ask(dns.addr, "ocean.", RecordType::SOA, false).await?;
        assert_eq!(m.answers.len(), 1);
        assert_eq!(m.answers[0].record_type(), RecordType::SOA);
        let m = ask(dns.addr, "ocean.", RecordType::NS, true).await?;
        assert_eq!(m.answers[0].record_type(), RecordType::NS);

        // Scale down: the stopped task's records go.
        scale(&api, &job_id("web"), 1).await?;
        let list = wait_tasks(&api, &job_id("web"), "1 RUNNING", WAIT, |l| {
            running(l).len() == 1
        })
        .await?;
        let want = expected_srv("web", &running(&list));
        wait_answer(dns.addr, &srv_name, RecordType::SRV, "1 SRV", WAIT, |m| {
            srvs(m) == want
        })
        .await?;
        let gone: Vec<String> = expected_srv("web", &list)
            .into_iter()
            .map(|(_, n)| n)
            .filter(|n| !want.iter().any(|(_, w)| w == n))
            .collect();
        assert_eq!(gone.len(), 1, "{list:?}");
        let m = ask(dns.addr, &format!("{}.", gone[0]), RecordType::A, false).await?;
        assert_eq!(rcode(&m), ResponseCode::NXDomain, "killed task's name");

        // Delete: every name of the job goes.
        let r = api.delete(&format!("/v1/jobs/{}", job_id("web"))).await?;
        assert_eq!(r.status, 200);
        wait_answer(
            dns.addr,
            &name,
            RecordType::A,
            "NXDOMAIN after delete",
            WAIT,
            |m| rcode(m) == ResponseCode::NXDomain,
        )
        .await?;
        let m = ask(dns.addr, &srv_name, RecordType::SRV, true).await?;
        assert_eq!(rcode(&m), ResponseCode::NXDomain);
        drop(agent);
        Ok(())
    })
    .await;
}

/// Names keep resolving while the leader is killed and a new one elected
/// (every answer in between is the record), changes made after the
/// failover still arrive (the watch resumed on another master), and the
/// names stay while every master is down.
#[tokio::test(flavor = "multi_thread")]
async fn names_keep_resolving_through_failover_and_with_all_masters_down() {
    bounded(180, async {
        let mut c = Cluster::start(3, &[])?;
        let leader = c.wait_leader(&[1, 2, 3], WAIT).await?;
        let api = c.master(leader).api();
        let agent_proc = {
            let mut a = c.new_agent("a", &[]);
            a.start()?;
            a
        };
        // The leader first: the DNS server follows it, so killing it makes
        // the server resume on another master.
        let mut masters = grpc_addrs(&c);
        masters.sort_by_key(|a| *a != c.master(leader).grpc);
        let mut dns = DnsProc::new(c.dir(), "main", &masters, &[]);
        dns.start()?;
        ocean_tests::tasks::wait_connected(&api, 1, WAIT).await?;
        submit(&api, &spec("ha", 1)).await?;
        wait_tasks(&api, &job_id("ha"), "1 RUNNING", WAIT, |l| {
            running(l).len() == 1
        })
        .await?;
        let name = job_name("ha");
        let srv_name = format!("_http._tcp.{name}");
        wait_answer(dns.addr, &name, RecordType::A, "A", WAIT, |m| {
            addrs(m) == vec![LOOPBACK]
        })
        .await?;

        // Kill the leader; ask all the time until a new one is elected.
        c.master_mut(leader).kill();
        let rest: Vec<u64> = [1, 2, 3].into_iter().filter(|i| *i != leader).collect();
        let mut asked = 0;
        let new_leader = loop {
            let m = ask(dns.addr, &name, RecordType::A, false).await?;
            assert_eq!(addrs(&m), vec![LOOPBACK], "during failover: {m:?}");
            asked += 1;
            if let Ok(l) = c.wait_leader(&rest, Duration::from_millis(10)).await {
                break l;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(asked > 0);
        // A change after the failover reaches DNS: the watch moved on.
        let api = c.master(new_leader).api();
        scale(&api, &job_id("ha"), 2).await?;
        let list = wait_tasks(&api, &job_id("ha"), "2 RUNNING", WAIT, |l| {
            running(l).len() == 2
        })
        .await?;
        let want = expected_srv("ha", &running(&list));
        wait_answer(
            dns.addr,
            &srv_name,
            RecordType::SRV,
            "2 SRV after failover",
            WAIT,
            |m| srvs(m) == want,
        )
        .await?;
        // leader. follows the new leader (all on loopback here, so check
        // that it still answers).
        let m = ask(dns.addr, "leader.ocean.", RecordType::A, false).await?;
        assert_eq!(addrs(&m), vec![LOOPBACK]);

        // Every master down: the last known records stay.
        for id in rest {
            c.master_mut(id).kill();
        }
        let until = Instant::now() + Duration::from_secs(4);
        while Instant::now() < until {
            let m = ask(dns.addr, &srv_name, RecordType::SRV, false).await?;
            assert_eq!(srvs(&m), want, "with every master down");
            let m = ask(dns.addr, &name, RecordType::A, true).await?;
            assert_eq!(addrs(&m), vec![LOOPBACK]);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        drop(agent_proc);
        Ok(())
    })
    .await;
}

/// Names outside the zone go to the upstream (here another `ocean dns`
/// serving the zone `upstream.test`), over UDP and TCP; without upstreams
/// they are REFUSED; with a dead upstream, SERVFAIL.
#[tokio::test(flavor = "multi_thread")]
async fn names_outside_the_zone_are_forwarded_or_refused() {
    bounded(90, async {
        let c = Cluster::start(1, &[])?;
        let masters = grpc_addrs(&c);
        let mut upstream = DnsProc::new(
            c.dir(),
            "upstream",
            &masters,
            &["--domain", "upstream.test"],
        );
        upstream.start()?;
        let up = upstream.addr.to_string();
        let mut dns = DnsProc::new(c.dir(), "main", &masters, &["--upstream", &up]);
        dns.start()?;
        let mut lone = DnsProc::new(c.dir(), "lone", &masters, &[]);
        lone.start()?;
        let dead = ocean_tests::cluster::free_addr().to_string();
        let mut broken = DnsProc::new(c.dir(), "broken", &masters, &["--upstream", &dead]);
        broken.start()?;

        let n = "leader.upstream.test.";
        wait_answer(
            upstream.addr,
            n,
            RecordType::A,
            "upstream's own name",
            WAIT,
            |m| !m.answers.is_empty(),
        )
        .await?;
        wait_answer(
            dns.addr,
            "nothing.ocean.",
            RecordType::A,
            "our zone ready",
            WAIT,
            |m| rcode(m) == ResponseCode::NXDomain,
        )
        .await?;
        for tcp in [false, true] {
            let m = ask(dns.addr, n, RecordType::A, tcp).await?;
            assert_eq!(addrs(&m), vec![LOOPBACK], "forwarded, tcp={tcp}: {m:?}");
            // Our own zone is still answered by us.
            let m = ask(dns.addr, "nothing.ocean.", RecordType::A, tcp).await?;
            assert_eq!(rcode(&m), ResponseCode::NXDomain);
            let m = ask(lone.addr, n, RecordType::A, tcp).await?;
            assert_eq!(rcode(&m), ResponseCode::Refused, "no upstream, tcp={tcp}");
        }
        // NXDOMAIN from upstream is relayed as such.
        let m = ask(dns.addr, "nope.upstream.test.", RecordType::A, false).await?;
        assert_eq!(rcode(&m), ResponseCode::NXDomain);
        let m = ask(broken.addr, n, RecordType::A, false).await?;
        assert_eq!(rcode(&m), ResponseCode::ServFail, "dead upstream");
        Ok(())
    })
    .await;
}

/// Garbage, truncated, oversized and non-query packets get FORMERR /
/// NOTIMP (or nothing, when there is no header to answer), over UDP and
/// TCP, and the server keeps answering real queries.
#[tokio::test(flavor = "multi_thread")]
async fn malformed_and_oversized_queries_get_errors_and_serving_goes_on() {
    bounded(60, async {
        let c = Cluster::start(1, &[])?;
        let mut dns = DnsProc::new(c.dir(), "main", &grpc_addrs(&c), &[]);
        dns.start()?;
        let good = "leader.ocean.";
        wait_answer(dns.addr, good, RecordType::A, "leader", WAIT, |m| {
            !m.answers.is_empty()
        })
        .await?;
        let wait = Duration::from_millis(500);
        let code = |b: &[u8]| b[3] & 0x0f;

        // Too short for a header: no answer, and the server lives on.
        assert_eq!(udp_raw(dns.addr, &[1, 2, 3], wait).await?, None);
        // A header promising a question, then garbage.
        let mut bad = query_bytes(good, RecordType::A, false)?;
        bad.truncate(16);
        let r = udp_raw(dns.addr, &bad, wait).await?.expect("FORMERR");
        assert_eq!(
            (&r[0..2], code(&r)),
            (&bad[0..2], 1),
            "FORMERR for a truncated question"
        );
        // Label lengths running past the end.
        let mut bad = query_bytes(good, RecordType::A, false)?;
        bad[12] = 63;
        let r = udp_raw(dns.addr, &bad, wait).await?.expect("FORMERR");
        assert_eq!(code(&r), 1);
        // Oversized: a valid query followed by 8 KiB of padding.
        let mut big = query_bytes(good, RecordType::A, false)?;
        big.resize(8192, 0xff);
        let r = udp_raw(dns.addr, &big, wait)
            .await?
            .expect("FORMERR for oversized");
        assert_eq!(code(&r), 1);
        let r = tcp_raw(dns.addr, &big).await?;
        if let Some(r) = r {
            assert_eq!(code(&r), 1, "TCP oversized");
        }
        // A 60 KiB TCP message of random bytes.
        let junk: Vec<u8> = (0..60_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        if let Some(r) = tcp_raw(dns.addr, &junk).await? {
            assert_ne!(code(&r), 0, "junk must not get NOERROR");
        }
        // Not a query: NOTIMP.
        let mut notify = query_bytes(good, RecordType::SOA, false)?;
        notify[2] = (notify[2] & 0x87) | (4 << 3);
        let r = udp_raw(dns.addr, &notify, wait).await?.expect("NOTIMP");
        assert_eq!(code(&r), 4);
        // A response sent to the server is dropped, not answered.
        let mut resp = query_bytes(good, RecordType::A, false)?;
        resp[2] |= 0x80;
        assert_eq!(udp_raw(dns.addr, &resp, wait).await?, None);
        // Still serving, on both transports.
        for tcp in [false, true] {
            let m = ask(dns.addr, good, RecordType::A, tcp).await?;
            assert_eq!(
                addrs(&m),
                vec![LOOPBACK],
                "after the bad packets, tcp={tcp}"
            );
        }
        Ok(())
    })
    .await;
}

/// A job with a health check is served only while its tasks are healthy:
/// the check (a command that fails once a file exists) passes, the records
/// appear; the file appears, the checks fail and the records go; the file
/// goes, they come back. Needs the agents' health checks (issue 5) to set
/// `Task.healthy`.
#[tokio::test(flavor = "multi_thread")]
async fn unhealthy_tasks_disappear_from_dns() {
    bounded(150, async {
        let c = Cluster::start(1, &[])?;
        let api = c.master(1).api();
        let mut agent = c.new_agent("a", &[]);
        agent.start()?;
        let mut dns = DnsProc::new(c.dir(), "main", &grpc_addrs(&c), &[]);
        dns.start()?;
        ocean_tests::tasks::wait_connected(&api, 1, WAIT).await?;
        let flag = c.dir().join("unhealthy");
        let mut s = spec("checked", 2);
        s["health_checks"] = json!([{
            "protocol": "command",
            "command": format!("test ! -e {}", flag.display()),
            "grace_period_seconds": 0,
            "interval_seconds": 1,
            "timeout_seconds": 2,
            "max_consecutive_failures": 0,
        }]);
        submit(&api, &s).await?;
        let list = wait_tasks(&api, &job_id("checked"), "2 RUNNING", WAIT, |l| {
            running(l).len() == 2
        })
        .await?;
        let want = expected_srv("checked", &running(&list));
        let name = job_name("checked");
        let srv_name = format!("_http._tcp.{name}");
        wait_answer(
            dns.addr,
            &srv_name,
            RecordType::SRV,
            "2 healthy SRV",
            WAIT,
            |m| srvs(m) == want,
        )
        .await?;
        let m = ask(dns.addr, &name, RecordType::A, false).await?;
        assert_eq!(addrs(&m), vec![LOOPBACK]);

        // Unhealthy: every record of the job goes, though the tasks run on.
        std::fs::write(&flag, b"")?;
        wait_answer(
            dns.addr,
            &name,
            RecordType::A,
            "no A while unhealthy",
            WAIT,
            |m| rcode(m) == ResponseCode::NXDomain,
        )
        .await?;
        let m = ask(dns.addr, &srv_name, RecordType::SRV, false).await?;
        assert_eq!(rcode(&m), ResponseCode::NXDomain, "no SRV while unhealthy");
        for (_, task) in &want {
            let m = ask(dns.addr, &format!("{task}."), RecordType::A, false).await?;
            assert_eq!(rcode(&m), ResponseCode::NXDomain, "{task} while unhealthy");
        }
        let list = ocean_tests::tasks::tasks(&api, &job_id("checked")).await;
        assert_eq!(running(&list).len(), 2, "tasks keep running: {list:?}");

        // Healthy again: back.
        std::fs::remove_file(&flag)?;
        wait_answer(
            dns.addr,
            &srv_name,
            RecordType::SRV,
            "SRV healthy again",
            WAIT,
            |m| srvs(m) == want,
        )
        .await?;
        drop(agent);
        Ok(())
    })
    .await;
}
