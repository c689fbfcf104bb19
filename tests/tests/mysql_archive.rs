//! The binlog archive end to end, on a real master, real agents, real
//! `mariadbd` tasks and Ocean's DNS: a restore to a *time* (RFC 3339)
//! holds every row committed in a second before it and none after, also
//! when no transaction came between the backup and the time; a time that
//! does not parse, is before the backup or in the future is refused
//! naming `until`. An archive with a retention deletes the files past it
//! but never those a kept backup needs (a restore to a time after the
//! backup still works once they went); the archive and the backup
//! schedule turn off with `DELETE`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mysql_async::prelude::Queryable;
use ocean_mysql::archive::rfc3339;
use ocean_tests::databases::{
    addr_of, app_password, connect, create_database, have_mariadb, healthy, start, wait_database,
    wait_writable,
};
use ocean_tests::tasks::bounded;
use serde_json::json;

const FORM: Duration = Duration::from_secs(60);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The binlog keeps commit times in whole seconds: a time taken between
/// two writes this far apart falls in a second of its own.
const APART: Duration = Duration::from_millis(1_100);

/// `(count, max id)` of the rows written by the test (not wait_writable's
/// negative probes).
async fn rows(addr: &str, pw: &str) -> anyhow::Result<(u64, Option<i64>)> {
    let mut c = connect(addr, "app", pw, Duration::from_secs(2)).await?;
    Ok(
        c.query_first("SELECT COUNT(*), MAX(id) FROM app.acks WHERE id > 0")
            .await?
            .unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_to_a_time_holds_the_rows_committed_before_it_and_none_after() {
    if !have_mariadb() {
        return;
    }
    bounded(300, async {
        let (c, _agents, dns) = start(&["a", "b", "c"]).await?;
        let api = c.master(1).api().waiting(Duration::from_secs(150));
        create_database(&api, "timed", 2).await?;
        let d = wait_database(&api, "timed", "formed", FORM, healthy(2)).await?;
        let pw = app_password(&d);
        wait_writable(dns.addr, "timed", &pw, FORM).await?;
        let arch = c.dir().join("archive").display().to_string();
        let r = api
            .post("/v1/databases/timed/archive", &json!({ "dir": arch }))
            .await?;
        assert_eq!(r.status, 200, "{}", r.body);
        let primary = addr_of(&d, "primary").expect("a primary");
        let mut p = connect(&primary, "app", &pw, Duration::from_secs(2)).await?;
        insert(&mut p, 1, 10).await?;
        let r = api
            .post(
                "/v1/databases/timed/backup",
                &json!({"dir": c.dir().join("backups").display().to_string(),
                        "offsite_dir": c.dir().join("offsite").display().to_string()}),
            )
            .await?;
        assert_eq!(r.status, 201, "{}", r.body);
        let bid = r.body["id"].as_str().unwrap_or_default().to_string();
        let backup_ms = r.body["finished_ms"].as_u64().unwrap_or_default();

        // t0: after the backup, before any further write; t1: between
        // rows 20 and 21.
        tokio::time::sleep(APART).await;
        let t0 = rfc3339(now_ms());
        tokio::time::sleep(APART).await;
        insert(&mut p, 11, 20).await?;
        tokio::time::sleep(APART).await;
        let t1 = rfc3339(now_ms());
        tokio::time::sleep(APART).await;
        insert(&mut p, 21, 30).await?;
        drop(p);

        let rpath = "/v1/databases/timed/restore";
        for until in [
            "yesterday".to_string(),
            "2026-12-08 01:02:03".to_string(),
            rfc3339(backup_ms - 3_600_000),
            rfc3339(now_ms() + 3_600_000),
        ] {
            let body = json!({"backup": bid, "name": "never", "until": until});
            let r = api.post(rpath, &body).await?;
            assert_eq!(r.status, 400, "{body}: {}", r.body);
            assert_eq!(r.body["errors"][0]["field"], "until", "{}", r.body);
            println!("until {until}: {}", r.body["errors"][0]["reason"]);
        }

        let t = Instant::now();
        let r = api
            .post(
                rpath,
                &json!({"backup": bid, "name": "attime", "until": t1}),
            )
            .await?;
        assert_eq!(r.status, 201, "{}", r.body);
        let d = wait_database(&api, "attime", "restored to a time", FORM, healthy(2)).await?;
        println!(
            "restore to {t1} (backup + archived binlogs to a time), formed: {:?}",
            t.elapsed()
        );
        let got = rows(&addr_of(&d, "primary").expect("a primary"), &pw).await?;
        assert_eq!(got, (20, Some(20)), "rows before {t1}, none after");
        // Its replica holds the same.
        let replica = addr_of(&d, "replica").expect("a replica");
        let deadline = Instant::now() + Duration::from_secs(20);
        while rows(&replica, &pw).await? != got {
            anyhow::ensure!(Instant::now() < deadline, "the replica differs");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        // Nothing between the backup and t0: the backup as it is.
        let r = api
            .post(
                rpath,
                &json!({"backup": bid, "name": "attime0", "until": t0, "instances": 1}),
            )
            .await?;
        assert_eq!(r.status, 201, "{}", r.body);
        let d = wait_database(&api, "attime0", "restored to t0", FORM, healthy(1)).await?;
        let got = rows(&addr_of(&d, "primary").expect("a primary"), &pw).await?;
        assert_eq!(got, (10, Some(10)), "rows of the backup only");
        Ok(())
    })
    .await;
}

/// The first string value named `key` anywhere in `v`.
fn find_str(v: &serde_json::Value, key: &str) -> Option<String> {
    match v {
        serde_json::Value::Object(m) => m.iter().find_map(|(k, x)| {
            if k == key {
                x.as_str().map(String::from)
            } else {
                find_str(x, key)
            }
        }),
        serde_json::Value::Array(a) => a.iter().find_map(|x| find_str(x, key)),
        _ => None,
    }
}

async fn insert(c: &mut mysql_async::Conn, from: u64, to: u64) -> anyhow::Result<()> {
    for i in from..=to {
        c.query_drop(format!("INSERT INTO app.acks (id) VALUES ({i})"))
            .await?;
    }
    Ok(())
}

async fn current_binlog(c: &mut mysql_async::Conn) -> anyhow::Result<String> {
    let row: Option<mysql_async::Row> = c.query_first("SHOW MASTER STATUS").await?;
    row.and_then(|r| r.get::<String, _>(0))
        .ok_or_else(|| anyhow::anyhow!("no binlog"))
}

fn binlogs(dir: &std::path::Path) -> Vec<String> {
    let mut all: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("binlog.0"))
                .collect()
        })
        .unwrap_or_default();
    all.sort();
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn archived_binlogs_past_retention_go_but_not_those_a_kept_backup_needs_and_both_turn_off() {
    if !have_mariadb() {
        return;
    }
    bounded(300, async {
        let (c, _agents, dns) = start(&["a", "b", "c"]).await?;
        let api = c.master(1).api().waiting(Duration::from_secs(150));
        create_database(&api, "pruned", 2).await?;
        let d = wait_database(&api, "pruned", "formed", FORM, healthy(2)).await?;
        let pw = app_password(&d);
        wait_writable(dns.addr, "pruned", &pw, FORM).await?;
        let job =
            "cop.ocean_owt.miui_pdl.browser_servicegroup.rds_service.pruned_job.primary_cluster.qa";
        let spec = api.get(&format!("/v1/jobs/{job}")).await?.body;
        let admin_pw = find_str(&spec, "DB_ADMIN_PASSWORD").expect("the admin password");
        let primary = addr_of(&d, "primary").expect("a primary");
        let mut admin = connect(&primary, "ocean_admin", &admin_pw, Duration::from_secs(2)).await?;
        let arch = c.dir().join("archive");
        let path = "/v1/databases/pruned/archive";
        for (body, field) in [
            (json!({"retention_days": 0}), "retention_days"),
            (json!({"retention_days": -1}), "retention_days"),
            (json!({"dir": "x"}), "dir"),
            (json!({"keep": 1}), "body"),
        ] {
            let r = api.post(path, &body).await?;
            assert_eq!(r.status, 400, "{body}: {}", r.body);
            assert_eq!(r.body["errors"][0]["field"], field, "{}", r.body);
        }
        // Files are kept 5 s after their last write.
        let r = api
            .post(
                path,
                &json!({"dir": arch.display().to_string(), "retention_days": 5.0 / 86_400.0}),
            )
            .await?;
        assert_eq!(r.status, 200, "{}", r.body);
        insert(&mut admin, 1, 5).await?;
        admin.query_drop("FLUSH BINARY LOGS").await?;
        insert(&mut admin, 6, 10).await?;
        admin.query_drop("FLUSH BINARY LOGS").await?;
        // The file the backup's GTID is at the start of: the oldest one a
        // restore to a point after the backup needs.
        let needed = current_binlog(&mut admin).await?;
        let dir = arch.join("pruned").join("binlogs");
        let t = Instant::now();
        let dir = loop {
            // The archive holds files from before the backup (so their
            // going below is the retention's doing).
            let found = std::fs::read_dir(&dir)
                .ok()
                .and_then(|mut d| d.next())
                .and_then(|e| e.ok())
                .map(|e| e.path());
            if let Some(d) = found.filter(|d| binlogs(d).iter().any(|f| *f < needed)) {
                break d;
            }
            anyhow::ensure!(
                t.elapsed() < Duration::from_secs(4),
                "no file before {needed} archived"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let r = api
            .post(
                "/v1/databases/pruned/backup",
                &json!({"dir": c.dir().join("backups").display().to_string(),
                        "offsite_dir": c.dir().join("offsite").display().to_string()}),
            )
            .await?;
        assert_eq!(r.status, 201, "{}", r.body);
        let bid = r.body["id"].as_str().unwrap_or_default().to_string();
        insert(&mut admin, 11, 15).await?;
        admin.query_drop("FLUSH BINARY LOGS").await?;
        insert(&mut admin, 16, 20).await?;
        tokio::time::sleep(APART).await;
        let t1 = rfc3339(now_ms());
        tokio::time::sleep(APART).await;
        admin.query_drop("FLUSH BINARY LOGS").await?;
        insert(&mut admin, 21, 25).await?;

        let newest = current_binlog(&mut admin).await?;
        drop(admin);

        // Before `needed`, the primary's binlogs hold only what came before
        // the backup: they go; `needed` and those after it stay.
        let t = Instant::now();
        loop {
            let files = binlogs(&dir);
            if files.first().is_some_and(|f| *f >= needed) {
                assert_eq!(files.first(), Some(&needed), "a file the backup needs went");
                println!(
                    "archive past retention pruned after {:?}: {files:?} left",
                    t.elapsed()
                );
                break;
            }
            anyhow::ensure!(
                t.elapsed() < Duration::from_secs(60),
                "files past retention stay: {files:?} (needed from {needed})"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        // Well past the retention, what the backup needs is still there.
        tokio::time::sleep(Duration::from_secs(7)).await;
        let files = binlogs(&dir);
        assert_eq!(files.first(), Some(&needed), "{files:?}");
        assert!(files.contains(&newest), "{files:?}");
        let r = api
            .post(
                "/v1/databases/pruned/restore",
                &json!({"backup": bid, "name": "afterprune", "until": t1, "instances": 1}),
            )
            .await?;
        assert_eq!(r.status, 201, "{}", r.body);
        let d = wait_database(&api, "afterprune", "restored to a time", FORM, healthy(1)).await?;
        let got = rows(&addr_of(&d, "primary").expect("a primary"), &pw).await?;
        assert_eq!(got, (20, Some(20)), "rows before {t1}, none after");

        // Off: the archiver goes, the files stay; a time after it is
        // beyond the archive.
        let r = api.delete(path).await?;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body["stopped_ms"].as_u64().is_some(), "{}", r.body);
        let archiver =
            "cop.ocean_owt.miui_pdl.browser_servicegroup.rds_service.pruned_job.binlogs_cluster.qa";
        let t = Instant::now();
        while api.get(&format!("/v1/jobs/{archiver}")).await?.status != 404 {
            anyhow::ensure!(t.elapsed() < Duration::from_secs(20), "the archiver stays");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(api.delete(path).await?.status, 200, "off twice is off");
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        let r = api
            .post(
                "/v1/databases/pruned/restore",
                &json!({"backup": bid, "name": "never", "until": rfc3339(now_ms())}),
            )
            .await?;
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.body["errors"][0]["field"], "until", "{}", r.body);
        assert!(!binlogs(&dir).is_empty(), "the files stay");

        // The schedule turns off too; a second time there is none.
        let spath = "/v1/databases/pruned/schedule";
        let r = api
            .post(spath, &json!({"every_hours": 100, "retention_days": 10}))
            .await?;
        assert_eq!(r.status, 200, "{}", r.body);
        let r = api.delete(spath).await?;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["was"]["every_hours"], 100.0, "{}", r.body);
        let r = api.delete(spath).await?;
        assert_eq!(r.status, 404, "{}", r.body);
        assert_eq!(r.body["errors"][0]["field"], "schedule", "{}", r.body);
        let r = api.delete("/v1/databases/pruned/backup").await?;
        assert_eq!(r.status, 404, "{}", r.body);
        assert_eq!(r.body["errors"][0]["field"], "action", "{}", r.body);
        Ok(())
    })
    .await;
}
