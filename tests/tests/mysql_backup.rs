//! Backups and restores end to end, on a real master, real agents, real
//! `mariadbd` tasks and Ocean's DNS: a backup taken by `mariadb-backup`
//! on a replica lands in a backup directory and a second ("off-site")
//! one, each file matching the manifest's SHA-256; a restore of it into a
//! new database forms (one primary, a replica) and holds exactly the data
//! the original held when the backup was taken (`CHECKSUM TABLE`), and
//! takes writes through its own DNS name. Scaled out, the copy's new
//! instance starts from the backup too (its job carries it) and
//! replicates what the copy wrote since. With the original's binlogs
//! archived, a restore to a point in time (a GTID after the backup) holds
//! exactly the writes up to it, also when the primary failed over in
//! between (the archive follows it). Scheduled backups come on time and
//! those past their retention go, files and records. Bad requests name
//! their field.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use ocean_tests::databases::{
    addr_of, app_password, connect, create_database, have_mariadb, healthy, nodes, start,
    wait_database, wait_writable,
};
use ocean_tests::tasks::bounded;
use serde_json::{json, Value};

const FORM: Duration = Duration::from_secs(60);

async fn checksum(addr: &str, pw: &str) -> anyhow::Result<Vec<(String, u64)>> {
    let mut c = connect(addr, "app", pw, Duration::from_secs(2)).await?;
    let rows: Vec<(String, Option<u64>)> = c.query("CHECKSUM TABLE app.big, app.acks").await?;
    Ok(rows.into_iter().map(|(t, s)| (t, s.unwrap_or(0))).collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_on_a_replica_restores_into_a_new_database_with_equal_checksums() {
    if !have_mariadb() {
        return;
    }
    bounded(300, async {
        let (c, _agents, dns) = start(&["a", "b", "c"]).await?;
        // Backups, restores and switchovers answer when done.
        let api = c.master(1).api().waiting(Duration::from_secs(150));
        create_database(&api, "orig", 2).await?;
        let d = wait_database(&api, "orig", "formed", FORM, healthy(2)).await?;
        let pw = app_password(&d);
        wait_writable(dns.addr, "orig", &pw, FORM).await?;
        let primary = addr_of(&d, "primary").expect("a primary");
        let mut p = connect(&primary, "app", &pw, Duration::from_secs(2)).await?;
        p.query_drop("CREATE TABLE app.big (id INT PRIMARY KEY, pad VARCHAR(1024)) ENGINE=InnoDB")
            .await?;
        p.query_drop(
            "INSERT INTO app.big SELECT seq, REPEAT(MD5(seq), 30) FROM app.seq_1_to_20000",
        )
        .await?;
        p.query_drop("INSERT INTO app.acks (id) SELECT seq FROM app.seq_1_to_500")
            .await?;
        let before = checksum(&primary, &pw).await?;
        drop(p);
        let arch = c.dir().join("archive");
        let r = api
            .post(
                "/v1/databases/orig/archive",
                &json!({"dir": arch.display().to_string()}),
            )
            .await?;
        assert_eq!(r.status, 200, "{}", r.body);

        let dir = c.dir().join("backups");
        let offsite = c.dir().join("offsite");
        let (dir_s, off_s) = (dir.display().to_string(), offsite.display().to_string());
        let path = "/v1/databases/orig/backup";
        for (body, field) in [
            (json!({"dir": "relative/dir"}), "dir"),
            (json!({"dir": dir_s, "offsite_dir": dir_s}), "offsite_dir"),
            (json!({"offsite_dir": "/a/../b"}), "offsite_dir"),
            (json!({"where": "/x"}), "body"),
        ] {
            let r = api.post(path, &body).await?;
            assert_eq!(r.status, 400, "{body}: {}", r.body);
            assert_eq!(r.body["errors"][0]["field"], field, "{}", r.body);
        }

        let t = Instant::now();
        let r = api
            .post(path, &json!({"dir": dir_s, "offsite_dir": off_s}))
            .await?;
        assert_eq!(r.status, 201, "{}", r.body);
        let took = t.elapsed();
        let b = r.body;
        assert_eq!(b["state"], "done", "{b}");
        let replica = nodes(&d)
            .into_iter()
            .find(|n| n["role"] == "replica")
            .and_then(|n| n["task"].as_str().map(String::from));
        assert_eq!(
            b["source"].as_str(),
            replica.as_deref(),
            "taken on the replica: {b}"
        );
        let bid = b["id"].as_str().unwrap_or_default().to_string();
        let bytes = b["bytes"].as_u64().unwrap_or(0);
        assert!(bytes > 20_000_000, "{b}");
        assert!(b["gtid"].as_str().is_some_and(|g| !g.is_empty()), "{b}");
        println!(
            "backup of a {:.1} MB datadir on a replica, copied and verified: {took:?}",
            bytes as f64 / 1e6
        );
        // Both copies hold every file the manifest names, with its SHA-256.
        for base in [&dir, &offsite] {
            let copy = base.join("orig").join(&bid);
            let out = std::process::Command::new("sha256sum")
                .args(["-c", "--quiet", "MANIFEST.sha256"])
                .current_dir(&copy)
                .output()?;
            assert!(
                out.status.success(),
                "{}: {}",
                copy.display(),
                String::from_utf8_lossy(&out.stdout)
            );
            let manifest = std::fs::read_to_string(copy.join("MANIFEST.sha256"))?;
            assert!(manifest.contains("./app/big.ibd"), "{manifest}");
        }
        let r = api.get("/v1/databases/orig/backups").await?;
        assert_eq!(r.body["backups"][0]["id"], bid.as_str(), "{}", r.body);

        // Writes after the backup are not in the restore; up to a point
        // in time they are in a restore to it.
        let mut p = connect(&primary, "app", &pw, Duration::from_secs(2)).await?;
        p.query_drop("INSERT INTO app.acks (id) VALUES (100000)")
            .await?;
        let mut point = String::new();
        for i in 100_001..=100_010u64 {
            p.query_drop(format!("INSERT INTO app.acks (id) VALUES ({i})"))
                .await?;
            if i == 100_005 {
                let g: Option<String> = p.query_first("SELECT @@gtid_binlog_pos").await?;
                point = g.unwrap_or_default();
            }
        }
        drop(p);

        let rpath = "/v1/databases/orig/restore";
        for (body, status, field) in [
            (json!({"backup": "b-0", "name": "copy"}), 404, "backup"),
            (json!({"name": "copy"}), 400, "backup"),
            (json!({"backup": bid}), 400, "name"),
            (json!({"backup": bid, "name": "orig"}), 409, "name"),
            (json!({"backup": bid, "name": "Bad_Name"}), 400, "name"),
        ] {
            let r = api.post(rpath, &body).await?;
            assert_eq!(r.status, status, "{body}: {}", r.body);
            assert_eq!(r.body["errors"][0]["field"], field, "{}", r.body);
        }
        let t = Instant::now();
        let r = api
            .post(rpath, &json!({"backup": bid, "name": "copy"}))
            .await?;
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.body["full_name"], "/miui/browser/copy", "{}", r.body);
        let d = wait_database(&api, "copy", "restored", FORM, healthy(2)).await?;
        let copy_pw = app_password(&d);
        wait_writable(dns.addr, "copy", &copy_pw, FORM).await?;
        println!(
            "restore into a new 2-instance database, writable through DNS: {:?}",
            t.elapsed()
        );
        let copy_primary = addr_of(&d, "primary").expect("a primary");
        // wait_writable wrote one probe row (a negative id) into app.acks:
        // compare the big table, and app.acks without probes.
        let got = checksum(&copy_primary, &copy_pw).await?;
        assert_eq!(got[0], before[0], "app.big differs after the restore");
        let mut cc = connect(&copy_primary, "app", &copy_pw, Duration::from_secs(2)).await?;
        let (n, max): (u64, Option<i64>) = cc
            .query_first("SELECT COUNT(*), MAX(id) FROM app.acks WHERE id > 0")
            .await?
            .unwrap_or_default();
        assert_eq!(
            (n, max),
            (500, Some(500)),
            "the restore holds what the backup held"
        );
        // The replica of the copy holds the same.
        let replica = addr_of(&d, "replica").expect("a replica");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if checksum(&replica, &copy_pw).await? == checksum(&copy_primary, &copy_pw).await? {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "the copy's replica differs");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        // Scaled out: the copy's binlog starts at the backup, so a new
        // instance could not replicate from scratch; it starts from the
        // backup like the others and replicates the rest.
        let t = Instant::now();
        let r = api
            .post("/v1/databases/copy/scale", &json!({"instances": 3}))
            .await?;
        assert_eq!(r.status, 200, "{}", r.body);
        let d = wait_database(
            &api,
            "copy",
            "scaled out",
            Duration::from_secs(90),
            healthy(3),
        )
        .await?;
        println!("restored copy scaled 2 -> 3: {:?}", t.elapsed());
        let copy_primary = addr_of(&d, "primary").expect("a primary");
        let want = checksum(&copy_primary, &copy_pw).await?;
        for n in nodes(&d) {
            let addr = n["addr"].as_str().unwrap_or_default();
            let deadline = Instant::now() + Duration::from_secs(20);
            while checksum(addr, &copy_pw).await? != want {
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "{addr} differs from the copy's primary"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }

        // To a point in time: the backup, then the archived binlogs up to
        // the GTID of row 100,005.
        for (body, field) in [
            (
                json!({"backup": bid, "name": "pitr", "until": "junk"}),
                "until",
            ),
            (
                json!({"backup": bid, "name": "pitr", "until": "0-1-1"}),
                "until",
            ),
        ] {
            let r = api.post(rpath, &body).await?;
            assert_eq!(r.status, 400, "{body}: {}", r.body);
            assert_eq!(r.body["errors"][0]["field"], field, "{}", r.body);
        }
        let t = Instant::now();
        let r = api
            .post(
                rpath,
                &json!({"backup": bid, "name": "pitr", "until": point}),
            )
            .await?;
        assert_eq!(r.status, 201, "{}", r.body);
        let d = wait_database(&api, "pitr", "restored to a point", FORM, healthy(2)).await?;
        println!(
            "restore to {point} (backup + archived binlogs), formed: {:?}",
            t.elapsed()
        );
        let pitr_primary = addr_of(&d, "primary").expect("a primary");
        let mut pc = connect(&pitr_primary, "app", &copy_pw, Duration::from_secs(2)).await?;
        let (n, max): (u64, Option<i64>) = pc
            .query_first("SELECT COUNT(*), MAX(id) FROM app.acks WHERE id > 0")
            .await?
            .unwrap_or_default();
        assert_eq!(
            (n, max),
            (506, Some(100_005)),
            "rows up to the point, none after"
        );
        let got = checksum(&pitr_primary, &copy_pw).await?;
        assert_eq!(
            got[0], before[0],
            "app.big differs after the point-in-time restore"
        );
        let g: Option<String> = pc.query_first("SELECT @@gtid_current_pos").await?;
        assert_eq!(g.as_deref(), Some(point.as_str()));
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binlog_archive_follows_a_failover_and_a_restore_to_a_point_after_it_holds_every_row_up_to_it(
) {
    if !have_mariadb() {
        return;
    }
    bounded(240, async {
        let (c, _agents, dns) = start(&["a", "b", "c"]).await?;
        // Backups, restores and switchovers answer when done.
        let api = c.master(1).api().waiting(Duration::from_secs(150));
        create_database(&api, "moving", 3).await?;
        let d = wait_database(&api, "moving", "formed", FORM, healthy(3)).await?;
        let pw = app_password(&d);
        wait_writable(dns.addr, "moving", &pw, FORM).await?;
        let arch = c.dir().join("archive").display().to_string();
        let dir = c.dir().join("backups").display().to_string();
        let off = c.dir().join("offsite").display().to_string();
        let r = api
            .post("/v1/databases/moving/archive", &json!({ "dir": arch }))
            .await?;
        assert_eq!(r.status, 200, "{}", r.body);
        let mut p = connect(
            &addr_of(&d, "primary").expect("a primary"),
            "app",
            &pw,
            Duration::from_secs(2),
        )
        .await?;
        p.query_drop("CREATE TABLE app.big (id INT PRIMARY KEY, pad VARCHAR(1024)) ENGINE=InnoDB")
            .await?;
        p.query_drop("INSERT INTO app.big SELECT seq, MD5(seq) FROM app.seq_1_to_1000")
            .await?;
        drop(p);
        let r = api
            .post(
                "/v1/databases/moving/backup",
                &json!({"dir": dir, "offsite_dir": off}),
            )
            .await?;
        assert_eq!(r.status, 201, "{}", r.body);
        let bid = r.body["id"].as_str().unwrap_or_default().to_string();

        let write = |from: u64, to: u64| {
            let pw = pw.clone();
            async move {
                let addr = ocean_tests::databases::resolve_primary(dns.addr, "moving")
                    .await
                    .ok_or_else(|| anyhow::anyhow!("no primary in DNS"))?;
                let mut p = connect(&addr, "app", &pw, Duration::from_secs(2)).await?;
                for i in from..=to {
                    p.query_drop(format!("INSERT INTO app.acks (id) VALUES ({i})"))
                        .await?;
                }
                let g: Option<String> = p.query_first("SELECT @@gtid_binlog_pos").await?;
                anyhow::Ok(g.unwrap_or_default())
            }
        };
        write(1, 20).await?;

        // The primary is killed; the archiver moves to the new one.
        let old = d["status"]["primary"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let job =
            "cop.ocean_owt.miui_pdl.browser_servicegroup.rds_service.moving_job.primary_cluster.qa";
        let pid = ocean_tests::tasks::tasks(&api, job)
            .await
            .iter()
            .find(|t| t["id"] == old.as_str())
            .and_then(|t| t["pid"].as_i64())
            .expect("the primary's pid");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )?;
        wait_database(&api, "moving", "failed over", FORM, |d| {
            d["status"]["epoch"] == 1 && d["status"]["primary"] != old.as_str()
        })
        .await?;
        wait_writable(dns.addr, "moving", &pw, FORM).await?;
        write(21, 30).await?;
        let point = write(31, 35).await?;
        write(36, 40).await?;

        let t = Instant::now();
        let r = api
            .post(
                "/v1/databases/moving/restore",
                &json!({"backup": bid, "name": "before", "until": point}),
            )
            .await?;
        assert_eq!(r.status, 201, "{}", r.body);
        let d = wait_database(&api, "before", "restored to a point", FORM, healthy(3)).await?;
        println!(
            "restore to {point}, after a failover, formed: {:?}",
            t.elapsed()
        );
        let primary = addr_of(&d, "primary").expect("a primary");
        let mut pc = connect(&primary, "app", &pw, Duration::from_secs(2)).await?;
        let (n, max): (u64, Option<i64>) = pc
            .query_first("SELECT COUNT(*), MAX(id) FROM app.acks WHERE id > 0")
            .await?
            .unwrap_or_default();
        assert_eq!((n, max), (35, Some(35)), "rows up to the point, none after");
        let big: Option<u64> = pc.query_first("SELECT COUNT(*) FROM app.big").await?;
        assert_eq!(big, Some(1000));
        // The archive holds a directory per primary it followed.
        let dirs = std::fs::read_dir(c.dir().join("archive").join("moving").join("binlogs"))?
            .flatten()
            .count();
        assert_eq!(dirs, 2, "one archive per primary");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduled_backups_come_on_time_and_those_past_retention_go_with_their_files() {
    if !have_mariadb() {
        return;
    }
    bounded(240, async {
        let (c, _agents, dns) = start(&["a", "b", "c"]).await?;
        // Backups, restores and switchovers answer when done.
        let api = c.master(1).api().waiting(Duration::from_secs(150));
        create_database(&api, "daily", 2).await?;
        let d = wait_database(&api, "daily", "formed", FORM, healthy(2)).await?;
        wait_writable(dns.addr, "daily", &app_password(&d), FORM).await?;
        let dir = c.dir().join("backups");
        let off = c.dir().join("offsite");
        let path = "/v1/databases/daily/schedule";
        for (body, field) in [
            (json!({"every_hours": 0, "retention_days": 1}), "every_hours"),
            (json!({"every_hours": 1, "retention_days": 0}), "retention_days"),
            (json!({"every_hours": 1, "retention_days": 1, "dir": "x"}), "dir"),
            (json!({"every_hours": 1}), "body"),
        ] {
            let r = api.post(path, &body).await?;
            assert_eq!(r.status, 400, "{body}: {}", r.body);
            assert_eq!(r.body["errors"][0]["field"], field, "{}", r.body);
        }
        // Every 7.2 s, each kept 8.64 s (never the newest).
        let r = api
            .post(
                path,
                &json!({"every_hours": 0.002, "retention_days": 0.0001,
                        "dir": dir.display().to_string(), "offsite_dir": off.display().to_string()}),
            )
            .await?;
        assert_eq!(r.status, 200, "{}", r.body);
        let t = Instant::now();
        let mut first: Option<String> = None;
        loop {
            let list = api.get("/v1/databases/daily/backups").await?.body;
            let all = list["backups"].as_array().cloned().unwrap_or_default();
            if first.is_none() {
                first = all.first().and_then(|b| b["id"].as_str().map(String::from));
            }
            let done = all.iter().filter(|b| b["state"] == "done").count();
            if let Some(f) = &first {
                let gone = !all.iter().any(|b| b["id"] == f.as_str());
                let files_gone = !dir.join("daily").join(f).exists() && !off.join("daily").join(f).exists();
                if gone && files_gone && done >= 2 {
                    assert!(all.iter().all(|b| b["by"] == "schedule"), "{list}");
                    // A scheduled attempt may fail when its source instance
                    // is replaced under it (seen once in CI at load ~10: the
                    // failed record's source task differs from the done
                    // ones'); the schedule must then go on with a done one.
                    // Anything else failing is a defect.
                    let sources: Vec<&Value> = all
                        .iter()
                        .filter(|b| b["state"] == "done")
                        .map(|b| &b["source"])
                        .collect();
                    for b in all.iter().filter(|b| b["state"] == "failed") {
                        assert!(
                            !sources.contains(&&b["source"]),
                            "a backup failed from a source that later backups used: {list}"
                        );
                        eprintln!("a failed attempt, its source since replaced: {b}");
                    }
                    println!(
                        "scheduled backups: {} listed ({done} done) after {:?}; the first, {f}, pruned with its files",
                        all.len(),
                        t.elapsed()
                    );
                    break;
                }
            }
            anyhow::ensure!(
                t.elapsed() < Duration::from_secs(150),
                "the first scheduled backup was not pruned: {list}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Ok(())
    })
    .await;
}
