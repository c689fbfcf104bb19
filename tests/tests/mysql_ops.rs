//! The mysql framework's manual operations end to end, on a real master,
//! real agents, real `mariadbd` tasks and Ocean's DNS: a planned
//! switchover under a writer that records every acknowledged commit (none
//! lost, DNS follows, the old primary back as a replica), and scaling out
//! and in (new instances join as replicas with every row; the primary's
//! task is never the one stopped; bad sizes name their field), partly
//! through the `ocean db` CLI.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use ocean_tests::databases::{
    addr_of, app_password, connect, create_database, have_mariadb, healthy, missing, nodes,
    resolve_primary, start, wait_database, wait_writable, write_load,
};
use ocean_tests::tasks::bounded;
use serde_json::{json, Value};

const FORM: Duration = Duration::from_secs(60);

fn primary_task(d: &Value) -> String {
    d["status"]["primary"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn role_of(d: &Value, task: &str) -> String {
    nodes(d)
        .into_iter()
        .find(|n| n["task"] == task)
        .and_then(|n| n["role"].as_str().map(String::from))
        .unwrap_or_default()
}

fn addr_of_task(d: &Value, task: &str) -> String {
    nodes(d)
        .into_iter()
        .find(|n| n["task"] == task)
        .and_then(|n| n["addr"].as_str().map(String::from))
        .unwrap_or_default()
}

/// Rows of `app.acks` with a positive id at `addr`, waiting (bounded)
/// until there are `want`.
async fn wait_rows(addr: &str, pw: &str, want: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut c = connect(addr, "app", pw, Duration::from_secs(2)).await?;
    loop {
        let n: Option<u64> = c
            .query_first("SELECT COUNT(*) FROM app.acks WHERE id > 0")
            .await?;
        if n == Some(want) {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{addr} has {n:?} of {want} rows");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_switchover_under_writes_loses_nothing_and_dns_follows_the_new_primary() {
    if !have_mariadb() {
        return;
    }
    bounded(150, async {
        let (c, _agents, dns) = start(&["a", "b", "c"]).await?;
        // Backups, restores and switchovers answer when done.
        let api = c.master(1).api().waiting(Duration::from_secs(150));
        create_database(&api, "shift", 3).await?;
        let d = wait_database(&api, "shift", "formed", FORM, healthy(3)).await?;
        let pw = app_password(&d);
        wait_writable(dns.addr, "shift", &pw, FORM).await?;
        let old = primary_task(&d);
        let target = nodes(&d)
            .into_iter()
            .find(|n| n["role"] == "replica")
            .and_then(|n| n["task"].as_str().map(String::from))
            .expect("a replica");

        // Refusals name their field.
        let path = "/v1/databases/shift/switchover";
        for (body, status, field) in [
            (json!({"to": "no-such-task"}), 404, "to"),
            (json!({"to": old}), 409, "to"),
            (json!({"bogus": 1}), 400, "body"),
        ] {
            let r = api.post(path, &body).await?;
            assert_eq!(r.status, status, "{body}: {}", r.body);
            assert_eq!(r.body["errors"][0]["field"], field, "{}", r.body);
        }
        let r = api
            .post("/v1/databases/nope/switchover", &json!({}))
            .await?;
        assert_eq!(r.status, 404, "{}", r.body);

        let stop = Arc::new(AtomicBool::new(false));
        let writer = tokio::spawn(write_load(
            dns.addr,
            "shift".into(),
            pw.clone(),
            1,
            stop.clone(),
        ));
        tokio::time::sleep(Duration::from_secs(2)).await;
        let asked = Instant::now();
        let r = api.post(path, &json!({ "to": target })).await?;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["to"], target.as_str(), "{}", r.body);
        assert_eq!(r.body["from"], old.as_str(), "{}", r.body);
        let answered = asked.elapsed();

        // DNS names the new primary.
        let d = wait_database(&api, "shift", "target recorded", FORM, |d| {
            primary_task(d) == target
        })
        .await?;
        assert_eq!(d["status"]["epoch"], 1, "{d:#}");
        let new_addr = addr_of_task(&d, &target);
        let deadline = Instant::now() + Duration::from_secs(10);
        while resolve_primary(dns.addr, "shift").await.as_deref() != Some(new_addr.as_str()) {
            assert!(
                Instant::now() < deadline,
                "DNS does not name the new primary {new_addr}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let dns_moved = asked.elapsed();
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.store(true, Ordering::Relaxed);
        let w = writer.await?;
        let before = w.at.iter().filter(|t| **t < asked).count();
        let after: Vec<&Instant> = w.at.iter().filter(|t| **t > asked).collect();
        assert!(before > 0, "no write acknowledged before the switchover");
        assert!(
            !after.is_empty(),
            "no write acknowledged after the switchover"
        );
        // The longest stretch without an acknowledged write around it.
        let gap =
            w.at.windows(2)
                .filter(|p| p[1] > asked)
                .map(|p| p[1].duration_since(p[0]))
                .max()
                .unwrap_or_default();
        println!(
            "switchover: answered in {answered:?} (operator {} ms), DNS moved after {dns_moved:?}, \
             longest write gap {gap:?}, {} commits acknowledged ({before} before)",
            r.body["took_ms"],
            w.acked.len()
        );

        // The old primary is a replica of the new one; nothing is lost.
        let d = wait_database(&api, "shift", "old primary a replica", FORM, |d| {
            healthy(3)(d) && role_of(d, &old) == "replica"
        })
        .await?;
        let primary = addr_of(&d, "primary").expect("a primary");
        assert_eq!(primary, new_addr);
        let lost = missing(&primary, &pw, &w.acked).await?;
        assert_eq!(lost, Vec::<u64>::new(), "acknowledged commits missing");
        // Every instance holds what the primary holds (at least every
        // acknowledged row; a write whose answer was lost may be there too).
        let mut pc = connect(&primary, "app", &pw, Duration::from_secs(2)).await?;
        let n: Option<u64> = pc
            .query_first("SELECT COUNT(*) FROM app.acks WHERE id > 0")
            .await?;
        let n = n.unwrap_or(0);
        assert!(
            n >= w.acked.len() as u64,
            "{n} rows, {} acknowledged",
            w.acked.len()
        );
        for n_addr in nodes(&d).iter().filter_map(|n| n["addr"].as_str()) {
            wait_rows(n_addr, &pw, n).await?;
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn scaling_adds_replicas_with_every_row_and_a_scale_in_never_stops_the_primary() {
    if !have_mariadb() {
        return;
    }
    bounded(180, async {
        let (c, _agents, dns) = start(&["a", "b", "c"]).await?;
        // Backups, restores and switchovers answer when done.
        let api = c.master(1).api().waiting(Duration::from_secs(150));
        create_database(&api, "grow", 2).await?;
        let d = wait_database(&api, "grow", "formed", FORM, healthy(2)).await?;
        let pw = app_password(&d);
        wait_writable(dns.addr, "grow", &pw, FORM).await?;
        let primary = addr_of(&d, "primary").expect("a primary");
        let mut p = connect(&primary, "app", &pw, Duration::from_secs(2)).await?;
        for i in 1..=100u64 {
            p.query_drop(format!("INSERT INTO app.acks (id) VALUES ({i})"))
                .await?;
        }
        drop(p);

        let path = "/v1/databases/grow/scale";
        for (body, field) in [
            (json!({"instances": 0}), "instances"),
            (json!({"instances": 10}), "instances"),
            // Three agents: a fourth instance would have no host of its own.
            (json!({"instances": 4}), "instances"),
            (json!({"instances": "two"}), "instances"),
            (json!({"size": 2}), "body"),
        ] {
            let r = api.post(path, &body).await?;
            assert_eq!(r.status, 400, "{body}: {}", r.body);
            assert_eq!(r.body["errors"][0]["field"], field, "{}", r.body);
        }

        // The CLI: a field error comes back as a failure naming it.
        let http = format!("http://{}", c.master(1).http);
        let cli = |args: &[&str]| {
            std::process::Command::new(ocean_tests::ocean_bin())
                .args(args)
                .env("OCEAN_ADDR", &http)
                .stdin(std::process::Stdio::null())
                .output()
        };
        let out = cli(&["db", "scale", "grow", "--instances", "0"])?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("instances"), "{err}");

        // Out (through the CLI): the new instance joins as a replica with
        // every row.
        let t = Instant::now();
        let out = cli(&["--json", "db", "scale", "grow", "--instances", "3"])?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout)?;
        assert_eq!(
            (v["was"].as_u64(), v["instances"].as_u64()),
            (Some(2), Some(3)),
            "{v}"
        );
        let d = wait_database(&api, "grow", "scaled out", FORM, healthy(3)).await?;
        println!("scale-out 2 -> 3: all replicating after {:?}", t.elapsed());
        for a in nodes(&d).iter().filter_map(|n| n["addr"].as_str()) {
            wait_rows(a, &pw, 100).await?;
        }

        // In, with the primary on the newest task: the masters would stop
        // it, so its role goes to a replica that stays first.
        let newest = nodes(&d)
            .iter()
            .filter_map(|n| n["task"].as_str().map(String::from))
            .max()
            .unwrap_or_default();
        if primary_task(&d) != newest {
            let r = api
                .post("/v1/databases/grow/switchover", &json!({ "to": newest }))
                .await?;
            assert_eq!(r.status, 200, "{}", r.body);
        }
        let d = wait_database(&api, "grow", "newest primary", FORM, |d| {
            healthy(3)(d) && primary_task(d) == newest
        })
        .await?;
        let epoch = d["status"]["epoch"].as_u64().unwrap_or(0);
        let r = api.post(path, &json!({"instances": 2})).await?;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(
            r.body["switchover"]["to"].is_string(),
            "no switchover before the scale-in: {}",
            r.body
        );
        let d = wait_database(&api, "grow", "scaled in", FORM, |d| {
            healthy(2)(d) && nodes(d).len() == 2
        })
        .await?;
        assert_ne!(primary_task(&d), newest, "{d:#}");
        assert!(
            nodes(&d).iter().all(|n| n["task"] != newest.as_str()),
            "the newest task still runs: {d:#}"
        );
        assert_eq!(d["status"]["epoch"].as_u64(), Some(epoch + 1), "{d:#}");

        // Down to one: semi-sync off (nobody could acknowledge), and it
        // still takes writes through DNS.
        let r = api.post(path, &json!({"instances": 1})).await?;
        assert_eq!(r.status, 200, "{}", r.body);
        let d = wait_database(&api, "grow", "one left", FORM, |d| {
            healthy(1)(d) && nodes(d).len() == 1
        })
        .await?;
        let took = wait_writable(dns.addr, "grow", &pw, FORM).await?;
        println!("one instance writable through DNS after {took:?}");
        let only = addr_of(&d, "primary").expect("a primary");
        wait_rows(&only, &pw, 100).await?;
        Ok(())
    })
    .await;
}
