//! Replica rebuilds end to end, on a real master, real agents, real
//! `mariadbd` tasks and Ocean's DNS, under a writer that records every
//! acknowledged commit: a replica whose datadir is deleted (and whose
//! process then dies) comes back as a replica seeded by a
//! `mariadb-backup` stream from a healthy instance; a replica rebuilt on
//! request (`POST .../rebuild`) the same way. Afterwards every instance
//! holds the same data (`CHECKSUM TABLE`), and no acknowledged commit is
//! missing. Prints how long each rebuild took for how much data.
//!
//! `OCEAN_REBUILD_ROWS` (default 30,000 rows of ~1 KB) sizes the data.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use ocean_mysql::gtid::GtidPos;
use ocean_tests::databases::{
    addr_of, app_password, connect, create_database, have_mariadb, healthy, missing, nodes, start,
    wait_database, wait_writable, write_load,
};
use ocean_tests::tasks::{bounded, tasks};
use serde_json::{json, Value};

const FORM: Duration = Duration::from_secs(60);

fn job(db: &str) -> String {
    format!("cop.ocean_owt.miui_pdl.browser_servicegroup.rds_service.{db}_job.primary_cluster.qa")
}

fn node_on(d: &Value, host: &str) -> Option<Value> {
    nodes(d).into_iter().find(|n| n["host"] == host)
}

fn dir_bytes(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Waits until the instance at `addr` applied everything the primary at
/// `primary` binlogged, then returns its `CHECKSUM TABLE` of the app's
/// tables.
async fn checksums(primary: &str, addr: &str, pw: &str) -> anyhow::Result<Vec<(String, u64)>> {
    let mut p = connect(primary, "app", pw, Duration::from_secs(2)).await?;
    let want: Option<String> = p.query_first("SELECT @@gtid_binlog_pos").await?;
    let want = GtidPos::parse(&want.unwrap_or_default());
    let mut c = connect(addr, "app", pw, Duration::from_secs(2)).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let have: Option<String> = c.query_first("SELECT @@gtid_current_pos").await?;
        let have = GtidPos::parse(&have.unwrap_or_default());
        if have.contains(&want) {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{addr} at {have}, the primary wrote {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rows: Vec<(String, Option<u64>)> = c.query("CHECKSUM TABLE app.big, app.acks").await?;
    Ok(rows.into_iter().map(|(t, s)| (t, s.unwrap_or(0))).collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_whose_data_is_lost_or_condemned_are_reseeded_from_a_healthy_instance() {
    if !have_mariadb() {
        return;
    }
    let rows: u64 = std::env::var("OCEAN_REBUILD_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30_000);
    bounded(300, async {
        let (c, agents, dns) = start(&["a", "b", "c"]).await?;
        // Backups, restores and switchovers answer when done.
        let api = c.master(1).api().waiting(Duration::from_secs(150));
        create_database(&api, "heal", 3).await?;
        let d = wait_database(&api, "heal", "formed", FORM, healthy(3)).await?;
        let pw = app_password(&d);
        wait_writable(dns.addr, "heal", &pw, FORM).await?;
        let primary = addr_of(&d, "primary").expect("a primary");
        let mut p = connect(&primary, "app", &pw, Duration::from_secs(2)).await?;
        p.query_drop("CREATE TABLE app.big (id INT PRIMARY KEY, pad VARCHAR(1024)) ENGINE=InnoDB")
            .await?;
        let mut done = 0;
        while done < rows {
            let n = (rows - done).min(10_000);
            p.query_drop(format!(
                "INSERT INTO app.big SELECT seq, REPEAT(MD5(seq), 30) FROM app.seq_{}_to_{}",
                done + 1,
                done + n
            ))
            .await?;
            done += n;
        }
        drop(p);

        let stop = Arc::new(AtomicBool::new(false));
        let writer = tokio::spawn(write_load(
            dns.addr,
            "heal".into(),
            pw.clone(),
            1,
            stop.clone(),
        ));

        // 1. A replica's datadir is deleted and its process dies.
        let replicas: Vec<Value> = nodes(&d)
            .into_iter()
            .filter(|n| n["role"] == "replica")
            .collect();
        let lost = replicas[0].clone();
        let lost_host = lost["host"].as_str().unwrap_or_default().to_string();
        let lost_task = lost["task"].as_str().unwrap_or_default().to_string();
        let agent = agents
            .iter()
            .zip(["a", "b", "c"])
            .find(|(_, n)| format!("host-{n}") == lost_host)
            .map(|(a, _)| a)
            .expect("the replica's agent");
        let datadir = agent.data_dir.join("volumes").join(job("heal")).join("data");
        anyhow::ensure!(datadir.join("mysql").is_dir(), "no datadir at {}", datadir.display());
        let pid = tasks(&api, &job("heal"))
            .await
            .iter()
            .find(|t| t["id"] == lost_task.as_str())
            .and_then(|t| t["pid"].as_i64())
            .expect("the replica's pid");
        std::fs::remove_dir_all(&datadir)?;
        let t0 = Instant::now();
        kill(Pid::from_raw(pid as i32), Signal::SIGKILL)?;
        let d = wait_database(&api, "heal", "lost replica reseeded", Duration::from_secs(120), |d| {
            node_on(d, &lost_host).is_some_and(|n| n["task"] != lost_task.as_str() && n["role"] == "replica")
                && healthy(3)(d)
        })
        .await?;
        let took_lost = t0.elapsed();
        // It came from a mariadb-backup stream, not a fresh install.
        assert!(
            datadir.join("xtrabackup_info").is_file(),
            "{} was not seeded by mariadb-backup",
            datadir.display()
        );
        let bytes = dir_bytes(&datadir);
        println!(
            "rebuild after the datadir was deleted: {took_lost:?} for a {:.1} MB datadir ({rows} rows)",
            bytes as f64 / 1e6
        );

        // 2. A rebuild asked for; refusals first.
        let path = "/v1/databases/heal/rebuild";
        let primary_task = d["status"]["primary"].as_str().unwrap_or_default().to_string();
        for (body, status, field) in [
            (json!({"task": primary_task}), 409, "task"),
            (json!({"task": "no-such-task"}), 404, "task"),
            (json!({}), 400, "task"),
            (json!({"tsak": "x"}), 400, "body"),
        ] {
            let r = api.post(path, &body).await?;
            assert_eq!(r.status, status, "{body}: {}", r.body);
            assert_eq!(r.body["errors"][0]["field"], field, "{}", r.body);
        }
        let other = nodes(&d)
            .into_iter()
            .find(|n| n["role"] == "replica" && n["host"] != lost_host.as_str())
            .expect("another replica");
        let other_host = other["host"].as_str().unwrap_or_default().to_string();
        let other_task = other["task"].as_str().unwrap_or_default().to_string();
        let t1 = Instant::now();
        let r = api.post(path, &json!({ "task": other_task })).await?;
        assert_eq!(r.status, 202, "{}", r.body);
        let d = wait_database(&api, "heal", "condemned replica reseeded", Duration::from_secs(120), |d| {
            node_on(d, &other_host).is_some_and(|n| n["task"] != other_task.as_str() && n["role"] == "replica")
                && healthy(3)(d)
        })
        .await?;
        println!("rebuild asked for: {:?}", t1.elapsed());
        let other_agent = agents
            .iter()
            .zip(["a", "b", "c"])
            .find(|(_, n)| format!("host-{n}") == other_host)
            .map(|(a, _)| a)
            .expect("the replica's agent");
        let other_dir = other_agent.data_dir.join("volumes").join(job("heal")).join("data");
        assert!(
            other_dir.join("xtrabackup_info").is_file() && !other_dir.join("ocean_rebuild").exists(),
            "{} was not reseeded",
            other_dir.display()
        );

        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.store(true, Ordering::Relaxed);
        let w = writer.await?;
        assert!(!w.acked.is_empty(), "no write acknowledged during the rebuilds");
        let primary = addr_of(&d, "primary").expect("a primary");
        assert_eq!(missing(&primary, &pw, &w.acked).await?, Vec::<u64>::new());

        // Every instance holds the primary's data.
        let want = checksums(&primary, &primary, &pw).await?;
        assert_eq!(want.len(), 2, "{want:?}");
        for n in nodes(&d) {
            let addr = n["addr"].as_str().unwrap_or_default();
            let got = checksums(&primary, addr, &pw).await?;
            assert_eq!(got, want, "{} ({}) differs from the primary", n["task"], n["host"]);
        }
        println!("checksums equal on all 3 instances: {want:?}; {} commits acknowledged meanwhile", w.acked.len());
        Ok(())
    })
    .await;
}
