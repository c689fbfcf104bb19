//! Helpers for tests that run real tasks: waiting on task lists, reading a
//! task's cgroup back from the kernel, and reaping whatever tasks a test
//! left behind (agents' tasks outlive the agents by design).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::http::Api;

/// The tasks of `job` as the master answering `api` lists them.
pub async fn tasks(api: &Api, job: &str) -> Vec<Value> {
    match api.get(&format!("/v1/tasks?job={job}")).await {
        Ok(r) => r.body["tasks"].as_array().cloned().unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// Tasks that run and are not being stopped.
pub fn running(list: &[Value]) -> Vec<Value> {
    list.iter()
        .filter(|t| t["state"] == "RUNNING" && t["kill_requested"] != Value::Bool(true))
        .cloned()
        .collect()
}

/// Tasks that have not ended.
pub fn live(list: &[Value]) -> Vec<Value> {
    list.iter()
        .filter(|t| {
            !matches!(
                t["state"].as_str(),
                Some("FINISHED" | "FAILED" | "KILLED" | "LOST")
            )
        })
        .cloned()
        .collect()
}

/// Polls the tasks of `job` until `check` holds (bounded).
pub async fn wait_tasks(
    api: &Api,
    job: &str,
    what: &str,
    timeout: Duration,
    check: impl Fn(&[Value]) -> bool,
) -> anyhow::Result<Vec<Value>> {
    let deadline = Instant::now() + timeout;
    loop {
        let list = tasks(api, job).await;
        if check(&list) {
            return Ok(list);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{what}: not reached within {timeout:?}; tasks now {}",
            serde_json::to_string_pretty(&list).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the master answering `api` sees at least `n` agents
/// connected (bounded).
pub async fn wait_connected(api: &Api, n: usize, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let connected = match api.get("/v1/agents").await {
            Ok(r) => r.body["agents"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|a| a["connected"] == Value::Bool(true))
                .count(),
            Err(_) => 0,
        };
        if connected >= n {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{n} agents not connected within {timeout:?} ({connected} are)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls the job `job` until `check` holds on its JSON (bounded).
pub async fn wait_job(
    api: &Api,
    job: &str,
    what: &str,
    timeout: Duration,
    check: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let body = api
            .get(&format!("/v1/jobs/{job}"))
            .await
            .map(|r| r.body)
            .unwrap_or(Value::Null);
        if check(&body) {
            return Ok(body);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{what}: not reached within {timeout:?}; job now {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The pids of tasks, from their JSON.
pub fn pids(list: &[Value]) -> Vec<i32> {
    let mut v: Vec<i32> = list
        .iter()
        .filter_map(|t| t["pid"].as_i64())
        .map(|p| p as i32)
        .collect();
    v.sort_unstable();
    v
}

/// Whether a process exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// The cgroup v1 directory of `pid` for `controller` (e.g. `memory`), or the
/// v2 directory when the host is unified.
pub fn cgroup_dir(pid: i32, controller: &str) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        if ctrls.split(',').any(|c| c == controller) {
            let root = Path::new("/sys/fs/cgroup").join(ctrls);
            return Some(root.join(path.trim_start_matches('/')));
        }
        if ctrls.is_empty() && !Path::new("/sys/fs/cgroup").join(controller).exists() {
            return Some(Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/')));
        }
    }
    None
}

/// Reads one cgroup file of `pid`'s `controller` cgroup, trimmed.
pub fn cgroup_value(pid: i32, controller: &str, file: &str) -> Option<String> {
    let dir = cgroup_dir(pid, controller)?;
    std::fs::read_to_string(dir.join(file))
        .ok()
        .map(|s| s.trim().to_string())
}

/// The pids in every cgroup under `parent` (all hierarchies).
fn pids_under(parent: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for root in cgroup_roots() {
        let dir = root.join(parent);
        walk(&dir, &mut |d| {
            if let Ok(text) = std::fs::read_to_string(d.join("cgroup.procs")) {
                out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
            }
        });
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Every mounted cgroup hierarchy (each v1 controller mount, and cgroup2),
/// read from the mount table rather than a fixed list: a hierarchy the list
/// forgot (cpuacct mounted apart from cpu) kept every test agent's cgroups.
pub fn cgroup_roots() -> Vec<PathBuf> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut roots: Vec<PathBuf> = table.lines().filter_map(cgroup_mount_point).collect();
    roots.sort();
    roots.dedup();
    roots
}

/// The mount point of one `/proc/self/mountinfo` line if it mounts a
/// cgroup hierarchy (`... <mount point> ... - cgroup|cgroup2 ...`).
fn cgroup_mount_point(line: &str) -> Option<PathBuf> {
    let (mount, fs) = line.split_once(" - ")?;
    let fs_type = fs.split_whitespace().next()?;
    if fs_type != "cgroup" && fs_type != "cgroup2" {
        return None;
    }
    mount.split_whitespace().nth(4).map(PathBuf::from)
}

/// The directories named `parent` that still exist in any hierarchy: empty
/// once an agent's cgroups are all gone.
pub fn cgroup_parents_left(parent: &str) -> Vec<PathBuf> {
    cgroup_roots()
        .into_iter()
        .map(|root| root.join(parent))
        .filter(|dir| dir.exists())
        .collect()
}

fn walk(dir: &Path, f: &mut impl FnMut(&Path)) {
    if !dir.is_dir() {
        return;
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&e.path(), f);
            }
        }
    }
    f(dir);
}

/// Cgroup directories under `parent` that still exist, in any hierarchy.
pub fn cgroups_under(parent: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for root in cgroup_roots() {
        let dir = root.join(parent);
        if let Ok(entries) = std::fs::read_dir(&dir) {
            out.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
    }
    out
}

/// Kills every process in the cgroups under `parent` and removes them:
/// the clean-up for tests whose agents were SIGKILLed with tasks running.
/// A task wrapper the agent forked just before it died joins its cgroup a
/// moment later, so the cgroups count as empty only after several quiet
/// checks, and the whole pass repeats while a directory could not be
/// removed (a task started in it meanwhile).
pub fn reap_cgroups(parent: &str) {
    for _ in 0..5 {
        let mut quiet = 0;
        for _ in 0..100 {
            let pids = pids_under(parent);
            if pids.is_empty() {
                quiet += 1;
                if quiet >= 5 {
                    break;
                }
            } else {
                quiet = 0;
            }
            for pid in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut left = false;
        for root in cgroup_roots() {
            let dir = root.join(parent);
            let mut dirs = Vec::new();
            walk(&dir, &mut |d| dirs.push(d.to_path_buf()));
            // Children come before their parents in `walk`'s order.
            for d in dirs {
                let _ = std::fs::remove_dir(&d);
            }
            left |= dir.exists();
        }
        if !left {
            return;
        }
    }
}

/// A python3 HTTP server on `$PORT_HTTP`: 200 until someone GETs `/sick`,
/// 500 from then on. Writes the script into `dir`; returns the job's `cmd`.
pub fn switching_http_server(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join("switching_server.py");
    std::fs::write(
        &path,
        r#"import http.server, os
sick = False
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        global sick
        if self.path == "/sick":
            sick = True
        body = b"sick" if sick else b"ok"
        self.send_response(500 if sick else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT_HTTP"])), H).serve_forever()
"#,
    )?;
    Ok(format!("exec python3 {}", path.display()))
}

/// The task ids (the names of their cgroups) under an agent's cgroup
/// `parent` that still hold a process: what really runs there, whatever
/// the masters think.
pub fn live_task_cgroups(parent: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for root in cgroup_roots() {
        let Ok(entries) = std::fs::read_dir(root.join(parent)) else {
            continue;
        };
        for e in entries.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let mut any = false;
            walk(&e.path(), &mut |d| {
                any |= std::fs::read_to_string(d.join("cgroup.procs"))
                    .is_ok_and(|t| t.lines().any(|l| !l.trim().is_empty()));
            });
            if any {
                out.insert(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    out
}

/// Runs a test body with a time bound, failing with its error or the bound.
/// Polls `list` (newest first) until its first item satisfies `check`,
/// for at most `timeout`: that item, or an error naming `what` with the
/// list as last seen.
pub async fn wait_newest<F, Fut>(
    what: &str,
    timeout: Duration,
    mut list: F,
    check: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Vec<Value>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let items = list().await;
        if let Some(first) = items.first() {
            if check(first) {
                return Ok(first.clone());
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{what}: not reached within {timeout:?}; now {}",
            serde_json::to_string_pretty(&items).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The job's deployments, newest first (none when the API fails).
pub async fn deployments(api: &Api, job: &str) -> Vec<Value> {
    match api.get(&format!("/v1/deployments?job={job}")).await {
        Ok(r) => r.body["deployments"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// Polls the job's newest deployment until `check` holds.
pub async fn wait_deployment(
    api: &Api,
    job: &str,
    what: &str,
    timeout: Duration,
    check: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    wait_newest(what, timeout, || deployments(api, job), check).await
}

pub async fn bounded<F: std::future::Future<Output = anyhow::Result<()>>>(secs: u64, f: F) {
    match tokio::time::timeout(Duration::from_secs(secs), f).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{e:#}"),
        Err(_) => panic!("test did not finish within {secs}s"),
    }
}

/// Scales a job to `instances`, failing unless the master accepted it.
pub async fn scale(api: &Api, job: &str, instances: u32) -> anyhow::Result<()> {
    let r = api
        .post(
            &format!("/v1/jobs/{job}/scale"),
            &serde_json::json!({ "instances": instances }),
        )
        .await?;
    anyhow::ensure!(r.status < 300, "scale failed: {} {}", r.status, r.body);
    Ok(())
}

/// Submits a job spec, failing unless the master accepted it.
pub async fn submit(api: &Api, spec: &Value) -> anyhow::Result<()> {
    let r = api.post("/v1/jobs", spec).await?;
    anyhow::ensure!(r.status < 300, "submit failed: {} {}", r.status, r.body);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_mounts_are_read_from_the_mount_table() {
        let lines = [
            "34 25 0:30 / /sys/fs/cgroup/cpuacct rw,nosuid - cgroup cgroup rw,cpuacct",
            "32 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct",
            "30 25 0:26 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw",
            "25 1 0:22 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755",
            "26 1 8:1 / / rw,relatime - ext4 /dev/vda rw",
        ];
        let found: Vec<Option<PathBuf>> = lines.iter().map(|l| cgroup_mount_point(l)).collect();
        assert_eq!(
            found,
            vec![
                Some(PathBuf::from("/sys/fs/cgroup/cpuacct")),
                Some(PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")),
                Some(PathBuf::from("/sys/fs/cgroup/unified")),
                None,
                None,
            ]
        );
    }
}
