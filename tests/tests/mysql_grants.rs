//! Automatic grants end to end: a real master hosting the mysql
//! framework, agents each reporting a loopback address of its own (a
//! host's address), real `mariadbd`. A database allows one job; that job
//! gets one MySQL user, present at exactly the addresses of the hosts
//! where its tasks run, across a scale-up and a move (checked in
//! `mysql.user`, `SHOW GRANTS` and by logging in from each address with
//! the `mariadb` client bound to it). A job not allowed gets nothing;
//! taking the job off the list drops its accounts. With access control
//! on, a job's credentials go only to a token that may read the job.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use mysql_async::prelude::Queryable;
use ocean_tests::databases::{
    addr_of, connect, have_mariadb, healthy, spec, start_at, wait_database,
};
use ocean_tests::http::{acl_token, Api};
use ocean_tests::tasks::{bounded, submit};
use serde_json::{json, Value};

const FORM: Duration = Duration::from_secs(60);
const FOLLOW: Duration = Duration::from_secs(30);
const A: &str = "127.0.0.21";
const B: &str = "127.0.0.22";
const C: &str = "127.0.0.23";

fn job(name: &str) -> String {
    format!("cop.test_owt.qa_pdl.browser_service.grants_job.{name}_cluster.qa")
}

fn client_job(name: &str, instances: u32, constraints: Value) -> Value {
    json!({
        "id": job(name),
        "cmd": "sleep 3600",
        "instances": instances,
        "resources": {"cpus": 0.01, "mem": 16},
        "constraints": constraints,
    })
}

/// The hosts the status shows for `job`.
fn granted(d: &Value, job: &str) -> Vec<String> {
    d["status"]["grants"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|g| g["job"] == job)
        .and_then(|g| g["hosts"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|h| h.as_str().map(String::from))
        .collect()
}

/// Logs in to `addr` as `user` from the address `from` and writes a row;
/// the server's error when refused. The connection goes through a relay
/// whose socket to the server is bound to `from`, so the server sees
/// that host's address.
async fn login_from(from: &str, addr: &str, user: &str, pw: &str) -> Result<(), String> {
    let relay = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let local = relay.local_addr().map_err(|e| e.to_string())?;
    let target: std::net::SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let source: std::net::SocketAddr = format!("{from}:0")
        .parse()
        .map_err(|e| format!("{from}: {e}"))?;
    let pipe = tokio::spawn(async move {
        let (mut inbound, _) = relay.accept().await?;
        let s = tokio::net::TcpSocket::new_v4()?;
        s.bind(source)?;
        let mut outbound = s.connect(target).await?;
        tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await?;
        Ok::<(), std::io::Error>(())
    });
    let r = async {
        let mut c = connect(&local.to_string(), user, pw, Duration::from_secs(5))
            .await
            .map_err(|e| format!("{e:#}"))?;
        c.query_drop(
            "CREATE TABLE IF NOT EXISTS app.seen (host VARCHAR(64)); \
             INSERT INTO app.seen VALUES (SUBSTRING_INDEX(USER(), '@', -1))",
        )
        .await
        .map_err(|e| e.to_string())?;
        let who: Option<String> = c
            .query_first("SELECT USER()")
            .await
            .map_err(|e| e.to_string())?;
        drop(c.disconnect().await);
        match who {
            Some(w) if w == format!("{user}@{from}") => Ok(()),
            w => Err(format!("logged in as {w:?}, not {user}@{from}")),
        }
    }
    .await;
    pipe.abort();
    r
}

/// Waits until the status shows `hosts` for `job`; the detail then.
async fn wait_granted(api: &Api, db: &str, job: &str, hosts: &[&str]) -> anyhow::Result<Value> {
    let want: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
    wait_database(
        api,
        db,
        &format!("{job} granted on {hosts:?}"),
        FOLLOW,
        |d| granted(d, job) == want,
    )
    .await
}

/// Runs `sql` as root on the instance at `addr` through its unix socket
/// (root has no password there: `--auth-root-authentication-method=normal`);
/// its output, tab-separated, without column names.
async fn as_root(addr: &str, sql: &str) -> anyhow::Result<String> {
    let port = addr.rsplit_once(':').context("ip:port")?.1;
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::process::Command::new("/usr/bin/mariadb")
            .args([
                "--no-defaults",
                "--protocol=socket",
                &format!("--socket=/tmp/ocean-mysqld-{port}.sock"),
                "-u",
                "root",
                "-N",
                "-B",
                "-e",
                sql,
            ])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("mariadb client timed out")??;
    if !out.status.success() {
        bail!("{sql}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The job accounts (`oj_` users) of `addr` as `user@host`, sorted.
async fn job_accounts(addr: &str) -> anyhow::Result<Vec<String>> {
    let out = as_root(
        addr,
        "SELECT CONCAT(User, '@', Host) FROM mysql.user WHERE User LIKE 'oj\\_%' ORDER BY 1",
    )
    .await?;
    Ok(out.lines().map(String::from).collect())
}

/// Checks that `addr` holds `user` at exactly `hosts` (and no other job
/// account), each with all rights on the `app` schema and nothing global.
async fn assert_job_accounts(addr: &str, user: &str, hosts: &[&str]) -> anyhow::Result<()> {
    let want: Vec<String> = hosts.iter().map(|h| format!("{user}@{h}")).collect();
    assert_eq!(job_accounts(addr).await?, want, "job accounts on {addr}");
    for h in hosts {
        let g = as_root(addr, &format!("SHOW GRANTS FOR '{user}'@'{h}'")).await?;
        assert!(
            g.contains(&format!(
                "GRANT ALL PRIVILEGES ON `app`.* TO `{user}`@`{h}`"
            )),
            "{g}"
        );
        assert!(
            g.contains(&format!("GRANT USAGE ON *.* TO `{user}`@`{h}`")),
            "{g}"
        );
    }
    Ok(())
}

/// Waits until `addr` holds `user` at exactly `hosts` (a standby gets
/// them by replication).
async fn wait_job_accounts(addr: &str, user: &str, hosts: &[&str]) -> anyhow::Result<()> {
    let want: Vec<String> = hosts.iter().map(|h| format!("{user}@{h}")).collect();
    let deadline = Instant::now() + FOLLOW;
    loop {
        let have = job_accounts(addr).await?;
        if have == want {
            return assert_job_accounts(addr, user, hosts).await;
        }
        if Instant::now() > deadline {
            bail!("{addr} holds {have:?}, not {want:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn grants_follow_the_allowed_jobs_tasks_across_a_scale_up_and_a_move() {
    if !have_mariadb() {
        return;
    }
    bounded(170, async {
        let (c, _agents, _dns) = start_at(&[("a", A), ("b", B), ("c", C)]).await?;
        let api = c.master(1).api();
        let app = job("app");
        let other = job("other");

        // A bad list names its field.
        let mut bad = spec("ledger", 2);
        bad["allowed_jobs"] = json!(["pdl.browser"]);
        let r = api.post("/v1/databases", &bad).await?;
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.body["errors"][0]["field"], "allowed_jobs", "{}", r.body);

        let mut s = spec("ledger", 2);
        s["allowed_jobs"] = json!([app]);
        let r = api.post("/v1/databases", &s).await?;
        assert_eq!(r.status, 201, "{}", r.body);
        submit(
            &api,
            &client_job("app", 1, json!([["hostname", "CLUSTER", "host-a"]])),
        )
        .await?;
        submit(
            &api,
            &client_job("other", 1, json!([["hostname", "CLUSTER", "host-b"]])),
        )
        .await?;

        let d = wait_database(&api, "ledger", "formed", FORM, healthy(2)).await?;
        let d2 = wait_granted(&api, "ledger", &app, &[A]).await?;
        let primary = addr_of(&d2, "primary")
            .or_else(|| addr_of(&d, "primary"))
            .context("primary")?;
        let replica = addr_of(&d2, "replica").context("replica")?;

        // The credentials: for the allowed job only.
        let creds = api
            .get(&format!("/v1/databases/ledger/credentials?job={app}"))
            .await?;
        assert_eq!(creds.status, 200, "{}", creds.body);
        let user = creds.body["user"].as_str().context("user")?.to_string();
        let pw = creds.body["password"]
            .as_str()
            .context("password")?
            .to_string();
        assert!(user.starts_with("oj_"), "{user}");
        let detail = api.get("/v1/databases/ledger").await?.body.to_string();
        assert!(
            !detail.contains(&pw),
            "a job's password is only in its credentials"
        );
        let r = api
            .get(&format!("/v1/databases/ledger/credentials?job={other}"))
            .await?;
        assert_eq!(r.status, 403, "{}", r.body);
        assert_eq!(r.body["errors"][0]["field"], "job", "{}", r.body);
        let r = api.get("/v1/databases/ledger/credentials").await?;
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.body["errors"][0]["field"], "job", "{}", r.body);

        // The job's host gets in; the other job's host does not, and
        // nothing was made for the other job.
        login_from(A, &primary, &user, &pw)
            .await
            .map_err(|e| anyhow::anyhow!("login from {A}: {e}"))?;
        let refused = login_from(B, &primary, &user, &pw).await;
        assert!(
            refused.as_ref().is_err_and(|e| e.contains("Access denied")),
            "{refused:?}"
        );
        let g = api.get("/v1/databases/ledger/grants").await?;
        assert_eq!(
            g.body["grants"].as_array().map(Vec::len),
            Some(1),
            "{}",
            g.body
        );
        assert_eq!(g.body["grants"][0]["hosts"], json!([A]), "{}", g.body);
        assert_job_accounts(&primary, &user, &[A]).await?;

        // Scale-up onto host-b: host-b gets access too.
        submit(
            &api,
            &client_job(
                "app",
                2,
                json!([["hostname", "LIKE", "host-[ab]"], ["hostname", "UNIQUE"]]),
            ),
        )
        .await?;
        wait_granted(&api, "ledger", &app, &[A, B]).await?;
        login_from(B, &primary, &user, &pw)
            .await
            .map_err(|e| anyhow::anyhow!("login from {B} after the scale-up: {e}"))?;
        assert_job_accounts(&primary, &user, &[A, B]).await?;
        // The standby holds them by replication.
        wait_job_accounts(&replica, &user, &[A, B]).await?;

        // A move to host-c: c gets access, a and b lose it.
        submit(
            &api,
            &client_job("app", 1, json!([["hostname", "CLUSTER", "host-c"]])),
        )
        .await?;
        wait_granted(&api, "ledger", &app, &[C]).await?;
        login_from(C, &primary, &user, &pw)
            .await
            .map_err(|e| anyhow::anyhow!("login from {C} after the move: {e}"))?;
        for gone in [A, B] {
            let r = login_from(gone, &primary, &user, &pw).await;
            assert!(
                r.as_ref().is_err_and(|e| e.contains("Access denied")),
                "{gone}: {r:?}"
            );
        }
        assert_job_accounts(&primary, &user, &[C]).await?;

        // A bad list is refused naming its field; an empty one drops the
        // job's accounts.
        let put = |body: Value| {
            let api = api.clone();
            async move {
                api.put_raw(
                    "/v1/databases/ledger/grants",
                    serde_json::to_vec(&body).unwrap_or_default(),
                    "application/json",
                )
                .await
            }
        };
        let r = put(json!({"allowed_jobs": [app, app]})).await?;
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.body["errors"][0]["field"], "allowed_jobs", "{}", r.body);
        let r = put(json!({"allowed_jobs": []})).await?;
        assert_eq!(r.status, 200, "{}", r.body);
        let deadline = Instant::now() + FOLLOW;
        loop {
            match login_from(C, &primary, &user, &pw).await {
                Err(e) if e.contains("Access denied") => break,
                r => {
                    anyhow::ensure!(Instant::now() < deadline, "still granted: {r:?}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        let r = api
            .get(&format!("/v1/databases/ledger/credentials?job={app}"))
            .await?;
        assert_eq!(r.status, 403, "{}", r.body);
        Ok(())
    })
    .await;
}

/// Makes a policy with one rule and a token bound to it; the secret.
async fn token(admin: &Api, name: &str, node: &str, rights: &str) -> anyhow::Result<String> {
    let r = acl_token(admin, name, node, rights).await?;
    Ok(r["secret"].as_str().unwrap_or_default().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_jobs_credentials_are_given_only_to_who_may_read_the_job() {
    bounded(60, async {
        let c = ocean_tests::Cluster::start(1, &["--acl", "--frameworks", "mysql"])?;
        c.wait_leader(&[1], Duration::from_secs(15)).await?;
        let anon = c.master(1).api();
        let boot = anon.post("/v1/acl/bootstrap", &json!({})).await?;
        assert_eq!(boot.status, 201, "{}", boot.body);
        let admin = anon.with_token(boot.body["secret"].as_str().unwrap_or_default());
        let app = job("app");
        submit(&admin, &client_job("app", 1, json!([]))).await?;
        let mut s = spec("ledger", 1);
        s["allowed_jobs"] = json!([app]);
        let r = admin.post("/v1/databases", &s).await?;
        assert_eq!(r.status, 201, "{}", r.body);
        // No instance needs to run: the credential is made with the record.
        let path = format!("/v1/databases/ledger/credentials?job={app}");
        let r = admin.get(&path).await?;
        assert_eq!(r.status, 200, "{}", r.body);
        let pw = r.body["password"].as_str().unwrap_or_default().to_string();
        assert_eq!(pw.len(), 24, "{}", r.body);

        let reader = anon.with_token(&token(&admin, "browser-read", "pdl.browser", "read").await?);
        let r = reader.get(&path).await?;
        assert_eq!(r.status, 200, "read on the job's node: {}", r.body);
        assert_eq!(r.body["password"], pw.as_str());

        let other = anon.with_token(&token(&admin, "other-read", "pdl.other", "read").await?);
        let r = other.get(&path).await?;
        assert_eq!(r.status, 403, "no right on the job's node: {}", r.body);
        assert_eq!(r.body["errors"][0]["field"], "job", "{}", r.body);
        assert!(!r.body.to_string().contains(&pw));
        let r = anon.get(&path).await?;
        assert!(
            matches!(r.status, 401 | 403),
            "no token: {} {}",
            r.status,
            r.body
        );
        assert!(!r.body.to_string().contains(&pw));
        Ok(())
    })
    .await;
}
