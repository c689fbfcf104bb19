//! An ELB's DNS views end to end: the ELB created through `POST /v1/elbs`
//! with views, a real `ocean dns` following the masters, real packets from
//! different client addresses (loopback addresses stand for networks) and
//! with an EDNS client subnet, as a resolver sends. Bad views are refused
//! naming the field; new views replace the old answers.

use std::net::IpAddr;
use std::time::Duration;

use hickory_proto::rr::rdata::opt::ClientSubnet;
use hickory_proto::rr::RecordType;

use ocean_tests::dns::{addrs, answer_subnet, ask_from, wait_answer, DnsProc};
use ocean_tests::Cluster;
use serde_json::{json, Value};

const JOB: &str = "cop.x_owt.y_pdl.web_servicegroup.g_service.front_job.api_cluster.c3";
const NAME: &str = "front.web.ocean";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn elb(views: Value) -> Value {
    json!({"name": "pdl.web_service.front", "idc": "c3", "network": "external",
        "vips": ["10.99.0.1", "10.99.0.2", "10.99.0.3"],
        "listeners": [{"port": 80, "protocol": "tcp", "backend_job": JOB, "backend_port_name": "http"}],
        "domain": NAME, "views": views})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_domain_answers_each_client_network_with_its_view() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cluster = Cluster::start(1, &[])?;
    let api = cluster.master(1).api();

    // Bad views: every problem named, nothing stored.
    let bad = elb(json!([
        {"name": "lo", "subnets": ["127.0.0.1/8"], "vips": ["10.99.0.1"]},
        {"name": "x", "subnets": ["10.0.0.0/8"], "vips": ["10.99.0.9"]},
    ]));
    let r = api.post("/v1/elbs", &bad).await?;
    assert_eq!(r.status, 400, "{:?}", r.body);
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(
        fields,
        ["views[0].subnets[0]", "views[1].vips[0]"],
        "{:?}",
        r.body
    );
    assert!(
        r.body["errors"][0]["reason"]
            .as_str()
            .is_some_and(|m| m.contains("did you mean 127.0.0.0/8")),
        "{:?}",
        r.body
    );
    assert_eq!(api.get("/v1/elbs/pdl.web_service.front").await?.status, 404);

    // 127.0.0.5 is carved out of 127/8 into its own view; 58.32/11 is a
    // network only a resolver's client subnet can name here.
    let views = json!([
        {"name": "lo", "subnets": ["127.0.0.0/8"], "vips": ["10.99.0.1"]},
        {"name": "five", "subnets": ["127.0.0.5/32"], "vips": ["10.99.0.2"]},
        {"name": "telecom", "subnets": ["58.32.0.0/11"], "vips": ["10.99.0.3"]},
    ]);
    let r = api.post("/v1/elbs", &elb(views)).await?;
    assert_eq!(r.status, 201, "{:?}", r.body);

    let mut dns = DnsProc::new(dir.path(), "main", &[cluster.master(1).grpc], &[]);
    dns.start()?;
    wait_answer(
        dns.addr,
        NAME,
        RecordType::A,
        "the view of 127/8",
        Duration::from_secs(20),
        |m| addrs(m) == vec![ip("10.99.0.1")],
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", dns.log_tail()))?;

    let got = |src: &'static str, tcp: bool, subnet: Option<&'static str>| {
        let server = dns.addr;
        async move {
            let subnet = subnet.map(|s| s.parse::<ClientSubnet>().expect("subnet"));
            let m = ask_from(server, ip(src), NAME, RecordType::A, tcp, subnet).await?;
            anyhow::Ok((addrs(&m), answer_subnet(&m)))
        }
    };
    // Twice each, interleaved: the second answer of a view comes from the
    // cache and must still be that view's.
    for _ in 0..2 {
        for tcp in [false, true] {
            assert_eq!(
                got("127.0.0.1", tcp, None).await?,
                (vec![ip("10.99.0.1")], None)
            );
            assert_eq!(
                got("127.0.0.5", tcp, None).await?,
                (vec![ip("10.99.0.2")], None)
            );
            assert_eq!(
                got("127.0.0.6", tcp, None).await?,
                (vec![ip("10.99.0.1")], None)
            );
        }
    }
    // A resolver's client subnet decides over its own address, and the
    // answer echoes it with the scope it covers.
    let (a, echo) = got("127.0.0.1", false, Some("58.33.1.0/24")).await?;
    assert_eq!(a, vec![ip("10.99.0.3")]);
    let echo = echo.expect("the client subnet echoed");
    assert_eq!(
        (echo.addr(), echo.source_prefix(), echo.scope_prefix()),
        (ip("58.33.1.0"), 24, 24)
    );
    // A network in no view gets every VIP; a subnet of prefix 0 names no
    // network, so the packet's source decides.
    let (a, _) = got("127.0.0.1", true, Some("192.0.2.0/24")).await?;
    assert_eq!(a, vec![ip("10.99.0.1"), ip("10.99.0.2"), ip("10.99.0.3")]);
    let (a, _) = got("127.0.0.5", false, Some("0.0.0.0/0")).await?;
    assert_eq!(a, vec![ip("10.99.0.2")]);

    // New views: cached answers of the old ones are gone.
    let r = api.delete("/v1/elbs/pdl.web_service.front").await?;
    assert!(r.is_success(), "{:?}", r.body);
    let views = json!([{"name": "five", "subnets": ["127.0.0.5/32"], "vips": ["10.99.0.3"]}]);
    let r = api.post("/v1/elbs", &elb(views)).await?;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while got("127.0.0.5", false, None).await?.0 != vec![ip("10.99.0.3")] {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the new view did not come within 20 s\n{}",
            dns.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        got("127.0.0.1", false, None).await?.0,
        vec![ip("10.99.0.1"), ip("10.99.0.2"), ip("10.99.0.3")]
    );
    Ok(())
}
