//! keepalived with the configuration ocean-elb renders: the LVS export
//! passes the real `keepalived -t -e`, and a VRRP VIP moves to the backup
//! namespace within 2 s of the master's keepalived being SIGKILLed.

use std::time::Duration;

use ocean_elb::keepalived::{render_lvs, render_vrrp, LbKind, VrrpInstance};
use ocean_elb::plane::{RealServer, VirtualServer, VsKey};
use ocean_elb::spec::{Algorithm, Protocol};
use ocean_tests::elb_net::{need_keepalived, wait_sync};
use ocean_tests::netns::Netns;

fn vs(proto: Protocol, algorithm: Algorithm, rs_port: u16) -> VirtualServer {
    VirtualServer {
        key: VsKey {
            vip: "10.0.0.1".parse().unwrap(),
            proto,
            port: 53,
        },
        elb: "pdl.web_service.front".into(),
        algorithm,
        real_servers: (2..4)
            .map(|i| {
                (
                    RealServer {
                        addr: format!("10.1.0.{i}").parse().unwrap(),
                        port: rs_port,
                    },
                    i,
                )
            })
            .collect(),
    }
}

#[test]
fn the_lvs_export_passes_keepalived_config_test() -> anyhow::Result<()> {
    if !need_keepalived() {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    for (kind, vss) in [
        (
            LbKind::Nat,
            vec![
                vs(Protocol::Tcp, Algorithm::Wrr, 8053),
                vs(Protocol::Udp, Algorithm::Rr, 8053),
            ],
        ),
        (LbKind::Dr, vec![vs(Protocol::Tcp, Algorithm::Hash, 53)]),
    ] {
        let path = dir.path().join("lvs.conf");
        std::fs::write(&path, render_lvs(&vss, kind)?)?;
        let out = std::process::Command::new("keepalived")
            .args(["-t", "-e", "-f"])
            .arg(&path)
            .output()?;
        assert!(
            out.status.success(),
            "keepalived -t rejected:\n{}\n{}",
            std::fs::read_to_string(&path)?,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The check is real: a broken file fails.
    let path = dir.path().join("bad.conf");
    std::fs::write(
        &path,
        "virtual_server 10.0.0.1 80 {\n  lb_algo nope\n  real_server x {\n}\n",
    )?;
    let out = std::process::Command::new("keepalived")
        .args(["-t", "-e", "-f"])
        .arg(&path)
        .output()?;
    assert!(!out.status.success());
    Ok(())
}

fn has_vip(ns: &Netns) -> bool {
    ns.ip(&["-4", "addr", "show", "dev", "eth0"])
        .map(|s| s.contains("10.60.0.100/"))
        .unwrap_or(false)
}

#[test]
fn a_vrrp_vip_moves_to_the_backup_within_two_seconds() -> anyhow::Result<()> {
    if !need_keepalived() {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let mut a = Netns::new("ka")?;
    let mut b = Netns::new("kb")?;
    a.link("eth0", "10.60.0.1", &b, "eth0", "10.60.0.2")?;
    let start = |ns: &mut Netns, name: &str, priority: u8| -> anyhow::Result<u32> {
        let conf = render_vrrp(
            name,
            &[VrrpInstance {
                name: "elb_front".into(),
                interface: "eth0".into(),
                virtual_router_id: 61,
                priority,
                advert_int_ms: 200,
                vips: vec![("10.60.0.100".parse()?, 24)],
                excluded_vips: vec![],
                label: None,
            }],
        );
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d)?;
        let path = d.join("keepalived.conf");
        std::fs::write(&path, conf)?;
        let s = |p: std::path::PathBuf| p.to_string_lossy().into_owned();
        ns.spawn(&[
            "keepalived",
            "-P",
            "-n",
            "-l",
            "-f",
            &s(path),
            "-p",
            &s(d.join("k.pid")),
            "-r",
            &s(d.join("vrrp.pid")),
        ])
    };
    start(&mut a, "lba", 150)?;
    wait_sync("VIP on the master", Duration::from_secs(10), || has_vip(&a))?;
    start(&mut b, "lbb", 100)?;
    // Let the backup hear the master before the crash.
    std::thread::sleep(Duration::from_millis(800));
    assert!(!has_vip(&b), "both hold the VIP");
    // Crash the master: every keepalived process in its namespace at once.
    let all = ocean_tests::netns::run("ip", &["netns", "pids", &a.name])?;
    let killed = std::time::Instant::now();
    for pid in all.split_whitespace() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid.parse()?),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    wait_sync("VIP on the backup", Duration::from_secs(2), || has_vip(&b))?;
    eprintln!("VIP moved in {:?}", killed.elapsed());
    Ok(())
}
