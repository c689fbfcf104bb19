//! The `ocean` binary as a user runs it: `ocean dev`, the client commands,
//! and clear errors for bad flags, config files and specs.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ocean_tests::cluster::{agent_ports, free_addr, DevProc};
use ocean_tests::ocean_bin;

fn ocean(args: &[&str], addr: Option<&str>) -> Output {
    let mut cmd = Command::new(ocean_bin());
    cmd.args(args).stdin(Stdio::null());
    if let Some(a) = addr {
        cmd.env("OCEAN_ADDR", a);
    }
    cmd.output().expect("run ocean")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn repo_file(rel: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
        .display()
        .to_string()
}

/// `ocean --json task list --job <id>`, RUNNING tasks only.
fn running_tasks(http: &str, job: &str) -> Vec<serde_json::Value> {
    let o = ocean(&["--json", "task", "list", "--job", job], Some(http));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    v["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["state"] == "RUNNING" && t["kill_requested"] == false)
        .cloned()
        .collect()
}

fn wait_running(http: &str, job: &str, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = running_tasks(http, job);
        if list.len() == n {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "{n} tasks of {job} never ran: {list:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A plain HTTP/1.0 GET on loopback; the status line and body.
fn http_get(port: u64) -> String {
    use std::io::{Read, Write};
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port as u16)) {
            let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            if !out.is_empty() {
                return out;
            }
        }
        assert!(Instant::now() < deadline, "nothing answers on port {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn dev_runs_the_tour() {
    let dir = tempfile::tempdir().unwrap();
    let http = free_addr().to_string();
    let grpc = free_addr().to_string();
    let dns = free_addr();
    let dns_flag = dns.to_string();
    let ports = agent_ports();
    let _dev = DevProc::spawn(
        dir.path(),
        &[
            "--http", &http, "--grpc", &grpc, "--dns", &dns_flag, "--ports", &ports,
        ],
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let o = ocean(&["status"], Some(&http));
        if o.status.success() && text(&o).contains("role leader") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ocean dev did not come up: {}",
            text(&o)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The embedded DNS server answers for the cluster.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let q =
            ocean_tests::dns::query_bytes("leader.ocean.", hickory_proto::rr::RecordType::A, false)
                .unwrap();
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        sock.send_to(&q, dns).unwrap();
        let mut buf = [0u8; 512];
        if let Ok(n) = sock.recv(&mut buf) {
            let m = hickory_proto::op::Message::from_vec(&buf[..n]).unwrap();
            if ocean_tests::dns::addrs(&m) == vec![std::net::IpAddr::from([127, 0, 0, 1])] {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the dev DNS server does not answer leader.ocean"
        );
    }
    let id = "cop.example_owt.dev_pdl.demo_service.web_job.http_cluster.dev";
    let o = ocean(
        &["job", "run", &repo_file("docs/examples/http-server.yaml")],
        Some(&http),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("created"), "{}", text(&o));
    let o = ocean(
        &["job", "run", &repo_file("docs/examples/http-server.json")],
        Some(&http),
    );
    assert!(
        text(&o).contains("unchanged"),
        "JSON and YAML examples differ: {}",
        text(&o)
    );
    let o = ocean(&["job", "list"], Some(&http));
    assert!(text(&o).contains(id), "{}", text(&o));
    let o = ocean(&["--json", "job", "status", id], Some(&http));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["spec"]["instances"], 2);
    // The two instances run, and answer on the port the agent gave them.
    let tasks = wait_running(&http, id, 2);
    let port = tasks[0]["ports"][0]["port"].as_u64().unwrap();
    let answer = http_get(port);
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    let task = tasks[0]["id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let o = ocean(&["task", "logs", "--stderr", task], Some(&http));
        if text(&o).contains("\"GET / HTTP/1.0\" 200") {
            break;
        }
        assert!(Instant::now() < deadline, "no access log: {}", text(&o));
        std::thread::sleep(Duration::from_millis(100));
    }
    let o = ocean(&["job", "scale", id, "3"], Some(&http));
    assert!(o.status.success(), "{}", text(&o));
    wait_running(&http, id, 3);
    let o = ocean(&["task", "list", "--job", id], Some(&http));
    assert_eq!(text(&o).matches("RUNNING").count(), 3, "{}", text(&o));
    // A client given a dead master first fails over to the live one.
    let both = format!("{},{}", free_addr(), http);
    let o = ocean(&["job", "stop", id], Some(&both));
    assert!(o.status.success(), "{}", text(&o));
    let o = ocean(&["job", "status", id], Some(&http));
    assert!(!o.status.success());
    assert!(text(&o).contains("not found"), "{}", text(&o));
    // Bad specs are refused naming the field, from a file or stdin.
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        br#"{"id":"cop.a_owt.b_pdl.c_service.d_job.e_cluster.f","cmd":"x","instances":"many"}"#,
    )
    .unwrap();
    let o = ocean(&["job", "run", bad.to_str().unwrap()], Some(&http));
    assert!(!o.status.success());
    assert!(text(&o).contains("instances"), "{}", text(&o));
}

#[test]
fn bad_dns_flags_are_named() {
    let o = ocean(&["dns", "--listen", "127.0.0.1:0"], None);
    assert!(!o.status.success());
    assert!(text(&o).contains("--master"), "{}", text(&o));
    // A DNS server otherwise well configured, with one bad flag.
    let rejects = |flag: &str, value: &str, why: &str| {
        let args = [
            "dns",
            "--master",
            "127.0.0.1:1",
            "--listen",
            "127.0.0.1:0",
            flag,
            value,
        ];
        let o = ocean(&args, None);
        assert!(!o.status.success(), "{flag} {value} was accepted");
        assert!(text(&o).contains(why), "{}", text(&o));
    };
    rejects("--domain", "Bad_Zone", "domain: label 'Bad_Zone'");
    rejects("--ttl", "999999", "ttl: must be at most 86400");
}

#[test]
fn bad_flags_and_config_files_are_named() {
    let o = ocean(&["master", "--id", "1"], None);
    assert!(!o.status.success());
    assert!(text(&o).contains("--data-dir"), "{}", text(&o));

    let o = ocean(
        &[
            "master",
            "--id",
            "1",
            "--data-dir",
            "/tmp/x",
            "--peers",
            "1=nowhere",
        ],
        None,
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("peers"), "{}", text(&o));

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("m.toml");
    std::fs::write(&cfg, "id = 1\ndata_dir = \"/tmp/x\"\nbogus = 3\n").unwrap();
    let o = ocean(&["master", "--config", cfg.to_str().unwrap()], None);
    assert!(!o.status.success());
    assert!(text(&o).contains("bogus"), "{}", text(&o));

    std::fs::write(
        &cfg,
        "id = 1\ndata_dir = \"/tmp/x\"\n[raft]\nelection_ticks = 1\n",
    )
    .unwrap();
    let o = ocean(&["master", "--config", cfg.to_str().unwrap()], None);
    assert!(!o.status.success());
    assert!(text(&o).contains("election_ticks"), "{}", text(&o));

    let o = ocean(
        &["job", "run", "/nonexistent/spec.json"],
        Some("127.0.0.1:1"),
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("/nonexistent/spec.json"), "{}", text(&o));

    let o = ocean(&["status"], Some(&free_addr().to_string()));
    assert!(!o.status.success());
    assert!(text(&o).contains("no master answered"), "{}", text(&o));
}
