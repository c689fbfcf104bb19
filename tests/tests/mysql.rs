//! The mysql framework end to end: a real master hosting it, real agents,
//! real `mariadbd` tasks, Ocean's DNS. A 3-instance database forms (one
//! primary, two semi-synchronous replicas on distinct hosts), takes
//! writes through its DNS name and its replicas follow; bad requests name
//! their field. A writer records every acknowledged commit while the
//! primary is SIGKILLed: after the failover none is missing, no instance
//! holds a transaction the new primary lacks, and the old primary's
//! replacement (same host, same datadir) is back as a replica.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use ocean_tests::databases::{
    addr_of, app_password, connect, create_database, have_mariadb, healthy, missing, nodes, spec,
    start, wait_database, wait_writable, write_load,
};
use ocean_tests::tasks::{bounded, running, tasks};
use serde_json::Value;

const FORM: Duration = Duration::from_secs(60);

fn job(db: &str) -> String {
    format!("cop.ocean_owt.miui_pdl.browser_servicegroup.rds_service.{db}_job.primary_cluster.qa")
}

fn hosts_distinct(d: &Value) {
    let hosts: Vec<String> = nodes(d)
        .iter()
        .filter_map(|n| n["host"].as_str().map(String::from))
        .collect();
    let uniq: BTreeSet<&String> = hosts.iter().collect();
    assert_eq!(uniq.len(), hosts.len(), "instances share a host: {hosts:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_forms_takes_writes_through_dns_and_bad_requests_name_their_field() {
    if !have_mariadb() {
        return;
    }
    bounded(120, async {
        let (c, _agents, dns) = start(&["a", "b", "c"]).await?;
        let api = c.master(1).api();

        let t = api.get("/v1/database-templates").await?;
        let names: Vec<&str> = t.body["templates"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["name"].as_str())
            .collect();
        assert!(
            names.contains(&"mysql-general") && names.contains(&"mysql-large"),
            "{}",
            t.body
        );

        for (field, bad) in [
            ("template", {
                let mut s = spec("x", 3);
                s["template"] = "mysql-tiny".into();
                s
            }),
            ("instances", spec("x", 0)),
            ("full_name", {
                let mut s = spec("x", 3);
                s["full_name"] = "miui/Browser".into();
                s
            }),
            ("name", spec("Not_A_Label", 3)),
        ] {
            let r = api.post("/v1/databases", &bad).await?;
            assert_eq!(r.status, 400, "{field}: {}", r.body);
            assert_eq!(r.body["errors"][0]["field"], field, "{}", r.body);
        }

        let asked = Instant::now();
        create_database(&api, "orders", 3).await?;
        let r = api.post("/v1/databases", &spec("orders", 1)).await?;
        assert_eq!(r.status, 409, "{}", r.body);
        assert_eq!(r.body["errors"][0]["field"], "name", "{}", r.body);

        let d = wait_database(&api, "orders", "formed", FORM, healthy(3)).await?;
        hosts_distinct(&d);
        let pw = app_password(&d);
        let took = wait_writable(dns.addr, "orders", &pw, FORM).await?;
        println!(
            "provisioned to the first write through DNS in {:?}",
            asked.elapsed()
        );
        assert!(took < FORM);

        // Writes through the primary's DNS name; every replica gets them.
        let primary = addr_of(&d, "primary").expect("a primary");
        let mut p = connect(&primary, "app", &pw, Duration::from_secs(2)).await?;
        for i in 1..=50u64 {
            p.query_drop(format!("INSERT INTO app.acks (id) VALUES ({i})"))
                .await?;
        }
        for n in nodes(&d).iter().filter(|n| n["role"] == "replica") {
            let addr = n["addr"].as_str().unwrap_or_default();
            let mut r = connect(addr, "app", &pw, Duration::from_secs(2)).await?;
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let n: Option<u64> = r
                    .query_first("SELECT COUNT(*) FROM app.acks WHERE id > 0")
                    .await?;
                if n == Some(50) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "replica {addr} has {n:?} of 50 rows"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // A replica refuses the application's writes (read_only, and
            // the application user has no READ ONLY ADMIN).
            let e = r
                .query_drop("INSERT INTO app.acks (id) VALUES (1000)")
                .await
                .expect_err("a replica took a write");
            assert!(
                e.to_string().contains("read-only") || e.to_string().contains("read_only"),
                "{e}"
            );
        }

        // Lossless by construction, as configured on every instance.
        let mut admin_view = connect(&primary, "app", &pw, Duration::from_secs(2)).await?;
        let (strict, sync, wait_point): (i64, u64, String) = admin_view
            .query_first(
                "SELECT @@gtid_strict_mode, @@sync_binlog, @@rpl_semi_sync_master_wait_point",
            )
            .await?
            .expect("one row");
        assert_eq!((strict, sync, wait_point.as_str()), (1, 1, "AFTER_SYNC"));

        let r = api
            .send(
                ocean_tests::http::Method::DELETE,
                "/v1/databases/orders",
                ocean_tests::http::Body::None,
            )
            .await?;
        assert_eq!(r.status, 200, "{}", r.body);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !running(&tasks(&api, &job("orders")).await).is_empty() {
            assert!(
                Instant::now() < deadline,
                "the database's tasks outlived it"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sigkilled_primary_fails_over_with_no_acknowledged_commit_lost() {
    if !have_mariadb() {
        return;
    }
    bounded(120, async {
        let (c, _agents, dns) = start(&["a", "b", "c"]).await?;
        let api = c.master(1).api();
        create_database(&api, "ledger", 3).await?;
        let d = wait_database(&api, "ledger", "formed", FORM, healthy(3)).await?;
        let pw = app_password(&d);
        wait_writable(dns.addr, "ledger", &pw, FORM).await?;
        let old = d["status"]["primary"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let old_host = nodes(&d)
            .into_iter()
            .find(|n| n["task"] == old.as_str())
            .and_then(|n| n["host"].as_str().map(String::from))
            .unwrap_or_default();

        let stop = Arc::new(AtomicBool::new(false));
        let writer = tokio::spawn(write_load(
            dns.addr,
            "ledger".into(),
            pw.clone(),
            1,
            stop.clone(),
        ));
        tokio::time::sleep(Duration::from_secs(2)).await;

        let list = tasks(&api, &job("ledger")).await;
        let pid = list
            .iter()
            .find(|t| t["id"] == old.as_str())
            .and_then(|t| t["pid"].as_i64())
            .expect("the primary's pid");
        let killed = Instant::now();
        kill(Pid::from_raw(pid as i32), Signal::SIGKILL)?;

        wait_database(
            &api,
            "ledger",
            "failed over",
            Duration::from_secs(30),
            |d| d["status"]["epoch"] == 1 && d["status"]["primary"] != old.as_str(),
        )
        .await?;
        println!("new primary recorded {:?} after the kill", killed.elapsed());
        tokio::time::sleep(Duration::from_secs(3)).await;
        stop.store(true, Ordering::Relaxed);
        let w = writer.await?;
        let after: Vec<&Instant> = w.at.iter().filter(|t| **t > killed).collect();
        assert!(
            !after.is_empty(),
            "no write acknowledged after the failover"
        );
        println!(
            "{} commits acknowledged; first after the kill {:?} later",
            w.acked.len(),
            after[0].duration_since(killed)
        );

        // The old primary's replacement: same host, back as a replica.
        let d = wait_database(&api, "ledger", "old primary back", FORM, healthy(3)).await?;
        let back = nodes(&d)
            .into_iter()
            .find(|n| n["host"] == old_host.as_str())
            .expect("an instance on the old primary's host");
        assert_eq!(back["role"], "replica", "{d:#}");

        let primary = addr_of(&d, "primary").expect("a primary");
        let lost = missing(&primary, &pw, &w.acked).await?;
        assert_eq!(
            lost,
            Vec::<u64>::new(),
            "acknowledged commits missing after the failover"
        );

        // No errant transaction: every instance's GTID position is
        // contained in the primary's once they caught up.
        let mut pc = connect(&primary, "app", &pw, Duration::from_secs(2)).await?;
        let ppos: Option<String> = pc.query_first("SELECT @@gtid_current_pos").await?;
        let ppos = ocean_mysql::gtid::GtidPos::parse(&ppos.unwrap_or_default());
        for n in nodes(&d) {
            let addr = n["addr"].as_str().unwrap_or_default();
            let mut conn = connect(addr, "app", &pw, Duration::from_secs(2)).await?;
            let pos: Option<String> = conn.query_first("SELECT @@gtid_current_pos").await?;
            let pos = ocean_mysql::gtid::GtidPos::parse(&pos.unwrap_or_default());
            assert!(
                ppos.contains(&pos),
                "{addr} holds {pos} beyond the primary's {ppos}"
            );
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_primary_is_fenced_and_replaced_with_no_acknowledged_commit_lost() {
    if !have_mariadb() {
        return;
    }
    bounded(120, async {
        let (c, _agents, dns) = start(&["a", "b", "c"]).await?;
        let api = c.master(1).api();
        create_database(&api, "frozen", 3).await?;
        let d = wait_database(&api, "frozen", "formed", FORM, healthy(3)).await?;
        let pw = app_password(&d);
        wait_writable(dns.addr, "frozen", &pw, FORM).await?;
        let old = d["status"]["primary"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let list = tasks(&api, &job("frozen")).await;
        let pid = list
            .iter()
            .find(|t| t["id"] == old.as_str())
            .and_then(|t| t["pid"].as_i64())
            .expect("the primary's pid") as i32;

        let stop = Arc::new(AtomicBool::new(false));
        let writer = tokio::spawn(write_load(
            dns.addr,
            "frozen".into(),
            pw.clone(),
            1,
            stop.clone(),
        ));
        tokio::time::sleep(Duration::from_secs(2)).await;
        let frozen = Instant::now();
        kill(Pid::from_raw(pid), Signal::SIGSTOP)?;
        let d = wait_database(
            &api,
            "frozen",
            "failed over",
            Duration::from_secs(30),
            |d| d["status"]["epoch"] == 1 && d["status"]["primary"] != old.as_str(),
        )
        .await;
        // Whatever happened, the process must not stay stopped.
        let _ = kill(Pid::from_raw(pid), Signal::SIGCONT);
        let d = d?;
        println!(
            "new primary recorded {:?} after the SIGSTOP",
            frozen.elapsed()
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        stop.store(true, Ordering::Relaxed);
        let w = writer.await?;
        let after: Vec<&Instant> = w.at.iter().filter(|t| **t > frozen).collect();
        if after.is_empty() {
            let log = std::fs::read_to_string(c.master(1).process.log_path()).unwrap_or_default();
            for l in log.lines().filter(|l| {
                l.contains("mariadb") || l.contains("primary") || l.contains("failover")
            }) {
                println!("{l}");
            }
        }
        assert!(
            !after.is_empty(),
            "no write acknowledged after the failover"
        );
        println!(
            "first commit acknowledged {:?} after the SIGSTOP",
            after[0].duration_since(frozen)
        );

        let d = wait_database(&api, "frozen", "new primary serving", FORM, |d| {
            addr_of(d, "primary").is_some() && d["status"]["primary"] != old.as_str()
        })
        .await
        .unwrap_or(d);
        let primary = addr_of(&d, "primary").expect("a primary");
        let lost = missing(&primary, &pw, &w.acked).await?;
        assert_eq!(
            lost,
            Vec::<u64>::new(),
            "acknowledged commits missing after the failover"
        );

        // The woken former primary is writable but fenced: DNS names the
        // new primary only.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let m = ocean_tests::dns::ask(
                dns.addr,
                "_mysql._tcp.primary.frozen.browser.qa.ocean",
                hickory_proto::rr::RecordType::SRV,
                false,
            )
            .await?;
            let srv = ocean_tests::dns::srvs(&m);
            let port: u16 = primary
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse().ok())
                .unwrap_or(0);
            if srv.len() == 1 && srv[0].0 == port {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "DNS serves {srv:?}, not only the new primary {primary}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    })
    .await;
}
