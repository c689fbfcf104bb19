//! Artifacts and config templates end to end, with a real master and a
//! real agent: a checksum mismatch fails the task naming the URL and both
//! digests; a release is laid out as `releases/<version>/` with `current`
//! links, and a rollback to an earlier version on the same agent
//! downloads nothing (an HTTP server in the test counts requests); templates render
//! the production section over base, and a missing variable fails the task
//! naming the variable and the file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ocean_tests::tasks::{bounded, running, submit, wait_connected, wait_tasks};
use ocean_tests::Cluster;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(40);

/// A job id of the service tree whose cluster tag (the environment) is
/// `cluster`.
fn job_in(name: &str, cluster: &str) -> String {
    format!("cop.test_owt.qa_pdl.ocean_service.itest_job.{name}_cluster.{cluster}")
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A `.tar.gz` of `files` (path, contents).
fn tar_gz(files: &[(&str, &str)]) -> anyhow::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, path, data.as_bytes())?;
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &builder.into_inner()?)?;
    Ok(gz.finish()?)
}

/// A tiny HTTP/1.1 file server on a free port that counts GETs per path.
struct FileServer {
    base: String,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FileServer {
    async fn start(files: HashMap<String, Vec<u8>>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let files = Arc::new(files);
        let counter = Arc::clone(&hits);
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let files = Arc::clone(&files);
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&request);
                    let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
                    *counter
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .entry(path.clone())
                        .or_default() += 1;
                    let (status, body) = match files.get(&path) {
                        Some(body) => ("200 OK", body.clone()),
                        None => ("404 Not Found", Vec::new()),
                    };
                    let head = format!(
                        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = conn.write_all(head.as_bytes()).await;
                    let _ = conn.write_all(&body).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        Ok(Self { base, hits, task })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn hits(&self, path: &str) -> usize {
        self.hits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn failed_with(list: &[Value], needle: &str) -> Option<String> {
    list.iter()
        .filter(|t| t["state"] == "FAILED")
        .filter_map(|t| t["message"].as_str())
        .find(|m| m.contains(needle))
        .map(str::to_string)
}

async fn spec_version(api: &ocean_tests::http::Api, job: &str) -> anyhow::Result<u64> {
    let r = api.get(&format!("/v1/jobs/{job}")).await?;
    r.body["spec_version"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("no spec_version: {}", r.body))
}

/// The one RUNNING task of a job once it runs version `version`'s
/// release (its sandbox's `current` points there).
async fn running_release(
    api: &ocean_tests::http::Api,
    data: &Path,
    job: &str,
    version: u64,
) -> anyhow::Result<(String, PathBuf)> {
    let release = data
        .join("jobs")
        .join(job)
        .join("releases")
        .join(version.to_string());
    let list = wait_tasks(
        api,
        job,
        &format!("one RUNNING task of release {version}"),
        WAIT,
        |l| {
            let r = running(l);
            r.len() == 1
                && r[0]["id"].as_str().is_some_and(|id| {
                    std::fs::read_link(data.join("sandboxes").join(id).join("current"))
                        .is_ok_and(|link| link == release)
                })
        },
    )
    .await?;
    let id = running(&list)[0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    Ok((id, release))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_checksum_mismatch_fails_the_task_naming_the_url_and_both_digests() {
    bounded(120, async {
        let body = b"the real bytes".to_vec();
        let server = FileServer::start([("/app.bin".to_string(), body.clone())].into()).await?;
        let c = Cluster::start(1, &[])?;
        let api = c.master(1).api();
        let mut agent = c.new_agent("a", &[]);
        agent.start()?;
        wait_connected(&api, 1, WAIT).await?;
        let job = job_in("checksum", "staging");
        let wrong = sha256(b"other bytes");
        submit(
            &api,
            &json!({
                "id": job,
                "cmd": "sleep 600",
                "resources": {"cpus": 0.05, "mem": 16},
                "artifacts": [{"url": server.url("/app.bin"), "sha256": wrong}],
            }),
        )
        .await?;
        let list = wait_tasks(&api, &job, "a FAILED task about the checksum", WAIT, |l| {
            failed_with(l, "sha256 mismatch").is_some()
        })
        .await?;
        let message = failed_with(&list, "sha256 mismatch").unwrap_or_default();
        eprintln!("the task's message: {message}");
        assert!(message.contains(&server.url("/app.bin")), "{message}");
        assert!(message.contains(&format!("expected {wrong}")), "{message}");
        assert!(
            message.contains(&format!("got {}", sha256(&body))),
            "{message}"
        );
        assert!(running(&list).is_empty(), "nothing runs: {list:?}");
        let releases = agent.data_dir.join("jobs").join(&job).join("releases");
        let laid_out = std::fs::read_dir(&releases)
            .map(|d| {
                d.flatten()
                    .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                    .count()
            })
            .unwrap_or(0);
        assert_eq!(laid_out, 0, "no release is published from a bad download");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn releases_are_laid_out_by_version_and_a_rollback_downloads_nothing() {
    bounded(180, async {
        let v1 = tar_gz(&[("VERSION", "one\n"), ("bin/run.sh", "echo one\n")])?;
        let v2 = tar_gz(&[("VERSION", "two\n"), ("bin/run.sh", "echo two\n")])?;
        let server = FileServer::start(
            [
                ("/app-1.tar.gz".to_string(), v1.clone()),
                ("/app-2.tar.gz".to_string(), v2.clone()),
            ]
            .into(),
        )
        .await?;
        let c = Cluster::start(1, &[])?;
        let api = c.master(1).api();
        let mut agent = c.new_agent("a", &[]);
        agent.start()?;
        wait_connected(&api, 1, WAIT).await?;
        let data = agent.data_dir.clone();
        let job = job_in("release", "staging");
        let spec = |path: &str, body: &[u8]| {
            json!({
                "id": job,
                "cmd": "cat current/VERSION && sleep 600",
                "resources": {"cpus": 0.05, "mem": 16},
                "kill_grace_period_seconds": 1,
                "artifacts": [{"url": server.url(path), "sha256": sha256(body), "extract": true}],
            })
        };
        let first = spec("/app-1.tar.gz", &v1);
        submit(&api, &first).await?;
        let version1 = spec_version(&api, &job).await?;
        let (_, release1) = running_release(&api, &data, &job, version1).await?;
        assert_eq!(std::fs::read_to_string(release1.join("VERSION"))?, "one\n");
        assert_eq!(
            std::fs::read_to_string(release1.join("bin/run.sh"))?,
            "echo one\n"
        );
        let job_dir = data.join("jobs").join(&job);
        assert_eq!(
            std::fs::read_link(job_dir.join("current"))?,
            PathBuf::from(format!("releases/{version1}"))
        );
        assert_eq!(server.hits("/app-1.tar.gz"), 1);

        submit(&api, &spec("/app-2.tar.gz", &v2)).await?;
        let version2 = spec_version(&api, &job).await?;
        assert!(version2 > version1);
        let (_, release2) = running_release(&api, &data, &job, version2).await?;
        assert_eq!(std::fs::read_to_string(release2.join("VERSION"))?, "two\n");
        assert_eq!(
            std::fs::read_link(job_dir.join("current"))?,
            PathBuf::from(format!("releases/{version2}"))
        );
        assert!(
            release1.join("VERSION").exists(),
            "the previous release is kept"
        );

        // Roll back to the first version: its release comes from the
        // agent's cache (under whichever version number the rollback
        // gives the restored spec).
        let rollback = std::time::Instant::now();
        let r = api
            .post(
                &format!("/v1/jobs/{job}/rollback"),
                &json!({"to_version": version1}),
            )
            .await?;
        anyhow::ensure!(r.status < 300, "rollback: {} {}", r.status, r.body);
        let version3 = spec_version(&api, &job).await?;
        assert_ne!(version3, version2, "the rollback changed the spec");
        let (task, release3) = running_release(&api, &data, &job, version3).await?;
        eprintln!(
            "rollback to version {version1} (now version {version3}): RUNNING from the cached \
             release after {:?}",
            rollback.elapsed()
        );
        assert_eq!(std::fs::read_to_string(release3.join("VERSION"))?, "one\n");
        assert_eq!(
            server.hits("/app-1.tar.gz"),
            1,
            "version 1 was fetched again"
        );
        assert_eq!(server.hits("/app-2.tar.gz"), 1);
        // RUNNING is reported when the process starts; its `cat` may not
        // have written yet on a loaded machine.
        let out = data.join("sandboxes").join(&task).join("stdout");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut stdout = std::fs::read_to_string(&out)?;
        while stdout.is_empty() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            stdout = std::fs::read_to_string(&out)?;
        }
        assert_eq!(stdout, "one\n", "the task ran in its release");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn templates_take_the_environments_values_over_base_and_name_what_is_missing() {
    bounded(150, async {
        let c = Cluster::start(1, &[])?;
        let api = c.master(1).api();
        let mut agent = c.new_agent("a", &[]);
        agent.start()?;
        wait_connected(&api, 1, WAIT).await?;
        let data = agent.data_dir.clone();
        // The release ships its own template (the seed's config.template.yml).
        let files = tempfile::tempdir()?;
        let archive = tar_gz(&[(
            "config.template.yml",
            "db: {{ db.host }}:{{ db.port }}\nlisten: {{ ports.http }}\nenv: {{ environment }}\n",
        )])?;
        let archive_path = files.path().join("app.tar.gz");
        std::fs::write(&archive_path, &archive)?;
        let job = job_in("templates", "production");
        let values = json!({
            "base": {"level": "debug", "workers": 2, "db": {"host": "db-dev", "port": 5432}},
            "production": {"level": "warn", "db": {"host": "db-prod"}},
            "staging": {"level": "info"},
        });
        submit(
            &api,
            &json!({
                "id": job,
                "cmd": "sleep 600",
                "resources": {"cpus": 0.05, "mem": 16},
                "ports": [{"name": "http"}],
                "artifacts": [{"url": format!("file://{}", archive_path.display()),
                               "sha256": sha256(&archive), "extract": true}],
                "templates": [
                    {"source": "config.template.yml", "dest": "config.yml", "values": values},
                    {"inline": "level={{ level }} workers={{ workers }} task={{ task_id }}\n",
                     "dest": "conf/app.ini", "values": values},
                ],
            }),
        )
        .await?;
        let list = wait_tasks(&api, &job, "one RUNNING", WAIT, |l| running(l).len() == 1).await?;
        let task = &running(&list)[0];
        let id = task["id"].as_str().unwrap_or_default();
        let port = task["ports"][0]["port"].as_u64().unwrap_or(0);
        let sandbox = data.join("sandboxes").join(id);
        assert_eq!(
            std::fs::read_to_string(sandbox.join("config.yml"))?,
            format!("db: db-prod:5432\nlisten: {port}\nenv: production\n")
        );
        assert_eq!(
            std::fs::read_to_string(sandbox.join("conf/app.ini"))?,
            format!("level=warn workers=2 task={id}\n")
        );

        let broken = job_in("broken-template", "production");
        submit(
            &api,
            &json!({
                "id": broken,
                "cmd": "sleep 600",
                "resources": {"cpus": 0.05, "mem": 16},
                "templates": [{"inline": "ok: 1\npassword: {{ db_password }}\n",
                               "dest": "secret.yml", "values": {"base": {"ok": 1}}}],
            }),
        )
        .await?;
        let list = wait_tasks(
            &api,
            &broken,
            "a FAILED task naming the variable",
            WAIT,
            |l| failed_with(l, "db_password").is_some(),
        )
        .await?;
        let message = failed_with(&list, "db_password").unwrap_or_default();
        assert!(
            message.contains("undefined variable 'db_password'"),
            "{message}"
        );
        assert!(
            message.contains("inline template of secret.yml"),
            "{message}"
        );
        assert!(message.contains("line 2"), "{message}");
        Ok(())
    })
    .await;
}
