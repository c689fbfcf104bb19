//! Checking a backed-up RDB file by loading it: a throwaway
//! `redis-server` (no cluster, no TCP port, a private unix socket, no
//! persistence) starts with the file as its `dbfilename`; its key count
//! and content digest ([`crate::backup::digest`]) are what the manifest
//! records, and a file that does not load fails the backup instead of a
//! later restore.
//!
//! The digest has to come from loaded data: the file's own bytes cannot
//! be compared with a restored cache, and the source kept taking writes
//! after its snapshot.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::backup::{digest, dump_all, BackupError, Result};

/// What a loaded snapshot holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub keys: u64,
    pub digest: String,
}

fn check_err(path: &Path, reason: impl std::fmt::Display) -> BackupError {
    BackupError::Check {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// A unix socket path short enough for `sun_path` (108 bytes), unique
/// within this process.
fn socket_path() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "ocean-rdb-{}-{}.sock",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Loads `rdb` into a throwaway `redis-server` and reads it back, within
/// `timeout`. The server and its scratch directory are removed whatever
/// the outcome.
pub async fn check(rdb: &Path, timeout: Duration) -> Result<Loaded> {
    let work = rdb.with_extension("check");
    let sock = socket_path();
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| check_err(&work, e))?;
    // A link, not a copy: the server only reads it.
    let loaded = work.join("dump.rdb");
    if std::fs::hard_link(rdb, &loaded).is_err() {
        std::fs::copy(rdb, &loaded).map_err(|e| check_err(&loaded, e))?;
    }
    let child = tokio::process::Command::new("redis-server")
        .args(["--port", "0", "--unixsocketperm", "700", "--save", ""])
        .args(["--appendonly", "no", "--dbfilename", "dump.rdb"])
        .arg("--unixsocket")
        .arg(&sock)
        .arg("--dir")
        .arg(&work)
        .arg("--logfile")
        .arg(work.join("redis.log"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let out = match child {
        Ok(mut child) => {
            let r = tokio::time::timeout(timeout, read_back(&sock, rdb)).await;
            let _ = child.start_kill();
            let _ = child.wait().await;
            match r {
                Ok(r) => r,
                Err(_) => Err(check_err(rdb, format!("not read back within {timeout:?}"))),
            }
        }
        Err(e) => Err(check_err(rdb, format!("starting redis-server: {e}"))),
    };
    let out = out.map_err(|e| match e {
        // Its log says why a file did not load.
        BackupError::Check { path, reason } => BackupError::Check {
            path,
            reason: format!("{reason}{}", log_tail(&work.join("redis.log"))),
        },
        e => e,
    });
    let _ = std::fs::remove_dir_all(&work);
    let _ = std::fs::remove_file(&sock);
    out
}

/// The last lines of the server's log, for an error.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(3).collect();
    if lines.is_empty() {
        return String::new();
    }
    let mut lines = lines;
    lines.reverse();
    format!(" (its log: {})", lines.join(" | "))
}

async fn read_back(sock: &Path, rdb: &Path) -> Result<Loaded> {
    let url = format!("redis+unix://{}", sock.display());
    let client = redis::Client::open(url).map_err(|e| check_err(rdb, e))?;
    let started = Instant::now();
    // Until it listens and has loaded the file (`LOADING` until then).
    let mut con = loop {
        let tried = async {
            let mut con = client.get_multiplexed_async_connection().await?;
            redis::cmd("DBSIZE").query_async::<u64>(&mut con).await?;
            Ok::<_, redis::RedisError>(con)
        }
        .await;
        match tried {
            Ok(con) => break con,
            Err(e) if started.elapsed() > Duration::from_secs(5) && !is_loading(&e) => {
                return Err(check_err(rdb, e));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let mut records = dump_all(&mut con, &sock.display().to_string(), false).await?;
    let d = digest(&mut records);
    let _ = redis::cmd("SHUTDOWN")
        .arg("NOSAVE")
        .query_async::<()>(&mut con)
        .await;
    Ok(Loaded {
        keys: records.len() as u64,
        digest: d,
    })
}

fn is_loading(e: &redis::RedisError) -> bool {
    e.code() == Some("LOADING")
}
