//! A full disk under real masters: the three data dirs are moved onto one
//! small tmpfs mounted by the test, and a filler file takes its room.
//!
//! * Below the reserve (`--min-free-disk-mib`), writes answer 507 with the
//!   JSON error naming `data_dir` and the reason, on the leader and through
//!   a follower; reads go on; deleting the filler lets writes through.
//! * With no reserve the raft log write itself fails with ENOSPC: the
//!   master stops without acknowledging it (RocksDB 7.8 cannot take its log
//!   file again in the same process), and restarted on the still full disk
//!   it waits for room instead of exiting again. Once the filler is gone
//!   writes go through; every acknowledged job is then on every master, and
//!   still there after all three are SIGKILLed and restarted.
//!
//! Needs root (mount); the tmpfs is unmounted when the test ends, however
//! it ends.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use ocean_tests::http::{job_id, job_spec, Api};
use ocean_tests::tasks::bounded;
use ocean_tests::Cluster;

/// A tmpfs mounted for one test, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(mib: u64) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m"),
                "tmpfs",
                &dir.path().to_string_lossy(),
            ],
        )?;
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Bytes free for an unprivileged writer.
    fn free(&self) -> anyhow::Result<u64> {
        let out = Command::new("stat")
            .args(["-f", "-c", "%a %S"])
            .arg(self.path())
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut parts = text.split_whitespace().map(str::parse::<u64>);
        match (parts.next(), parts.next()) {
            (Some(Ok(blocks)), Some(Ok(size))) => Ok(blocks * size),
            _ => bail!("stat -f {}: {text}", self.path().display()),
        }
    }

    /// Fills the tmpfs until `leave` bytes are free; returns the filler.
    fn fill(&self, leave: u64) -> anyhow::Result<PathBuf> {
        let filler = self.path().join("filler");
        let free = self.free()?;
        // The masters write meanwhile: fallocate stops short of the end,
        // and appending takes the rest when nothing is to be left.
        let size = free.saturating_sub(leave.max(2 * 1024 * 1024));
        run(
            "fallocate",
            &["-l", &size.to_string(), &filler.to_string_lossy()],
        )?;
        if leave == 0 {
            let _ = Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "cat /dev/zero >> {} 2>/dev/null",
                    filler.to_string_lossy()
                ))
                .status();
        }
        Ok(filler)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a master still exiting must not keep the mount.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn run(cmd: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("run {cmd}"))?;
    ensure!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A 3-master cluster whose data dirs live on `disk`: started where the
/// harness puts them, stopped, copied onto the tmpfs and restarted there.
async fn cluster_on(disk: &Tmpfs, reserve_mib: u64) -> anyhow::Result<Cluster> {
    let reserve = reserve_mib.to_string();
    let mut c = Cluster::start(3, &["--min-free-disk-mib", &reserve])?;
    c.wait_leader(&[1, 2, 3], Duration::from_secs(20)).await?;
    for i in 1..=3 {
        c.master_mut(i).kill();
    }
    for i in 1..=3 {
        let to = disk.path().join(format!("m{i}"));
        run(
            "cp",
            &[
                "-a",
                &c.master(i).data_dir.to_string_lossy(),
                &to.to_string_lossy(),
            ],
        )?;
        c.master_mut(i).data_dir = to;
    }
    for i in 1..=3 {
        c.master_mut(i).start()?;
    }
    c.wait_leader(&[1, 2, 3], Duration::from_secs(30)).await?;
    Ok(c)
}

/// Puts job `name` through `api` until it is acknowledged (bounded).
async fn put_until_acknowledged(api: &Api, name: &str, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let r = api.put_job(name).await?;
        if r.status < 300 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "job {name} not acknowledged within {within:?}: {} {}",
                r.status,
                r.body
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every job in `names` on every master (reads after a linearizable
/// barrier: the write of a marker job).
async fn all_there(c: &Cluster, names: &[String]) -> anyhow::Result<()> {
    for i in 1..=3 {
        let api = c.master(i).api();
        for name in names {
            let id = job_id(name);
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let r = api.get(&format!("/v1/jobs/{id}")).await?;
                if r.status == 200 {
                    break;
                }
                if Instant::now() > deadline {
                    bail!(
                        "master {i} lost acknowledged job {id}: {} {}",
                        r.status,
                        r.body
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    Ok(())
}

/// Restarts the masters that have exited, counting their exits.
async fn supervise(c: &mut Cluster, exits: &mut [u32; 3]) -> anyhow::Result<()> {
    for i in 1..=3u64 {
        if c.master_mut(i).process.exited() {
            exits[(i - 1) as usize] += 1;
            restart(c, i).await?;
        }
    }
    Ok(())
}

/// Starts master `i` again. A master that aborted may hold its port for a
/// moment after it is reaped (or another test took it meanwhile): the
/// start is tried again while the log says the address is in use.
async fn restart(c: &mut Cluster, i: u64) -> anyhow::Result<()> {
    for _ in 0..20 {
        c.master_mut(i).start()?;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        if !c.master_mut(i).process.exited() {
            return Ok(());
        }
        let tail = c.master(i).log_tail();
        if !tail
            .lines()
            .last()
            .is_some_and(|l| l.contains("Address already in use"))
        {
            bail!("master {i} exited at restart:\n{tail}");
        }
    }
    bail!("master {i} could not bind its ports again")
}

/// A valid job spec of about 240 KB (environment variables).
fn big_spec(name: &str) -> serde_json::Value {
    let mut spec = job_spec(name);
    // Values are limited to 64 KiB each.
    let pad = "x".repeat(60 * 1024);
    spec["env"] = serde_json::json!({ "PAD0": pad, "PAD1": pad, "PAD2": pad, "PAD3": pad });
    spec
}

fn leader_api(c: &Cluster, leader: u64) -> Api {
    c.master(leader).api()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_answer_507_below_the_reserve_and_resume_when_room_returns() {
    bounded(240, async {
        let disk = Tmpfs::mount(512)?;
        let mut c = cluster_on(&disk, 32).await?;
        let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(20)).await?;
        let follower = (1..=3).find(|i| *i != leader).unwrap_or(1);
        let mut acked = Vec::new();
        for n in 0..5 {
            let name = format!("before{n}");
            put_until_acknowledged(&leader_api(&c, leader), &name, Duration::from_secs(20)).await?;
            acked.push(name);
        }

        let filler = disk.fill(8 * 1024 * 1024)?;
        for (who, api) in [
            ("leader", leader_api(&c, leader)),
            ("follower", c.master(follower).api()),
        ] {
            let r = api.put_job("while-full").await?;
            ensure!(
                r.status == 507,
                "{who}: expected 507, got {} {}",
                r.status,
                r.body
            );
            ensure!(r.body["code"] == "disk_full", "{who}: {}", r.body);
            let e = &r.body["errors"][0];
            ensure!(e["field"] == "data_dir", "{who}: {}", r.body);
            let reason = e["reason"].as_str().unwrap_or("");
            ensure!(
                reason.contains("MiB free") && reason.contains("reserve"),
                "{who}: reason does not say why: {reason}"
            );
        }
        // Reads are served meanwhile.
        let r = c
            .master(follower)
            .api()
            .get(&format!("/v1/jobs/{}", job_id("before0")))
            .await?;
        ensure!(r.status == 200, "read while full: {} {}", r.status, r.body);
        let r = c
            .master(leader)
            .api()
            .get(&format!("/v1/jobs/{}", job_id("while-full")))
            .await?;
        ensure!(
            r.status == 404,
            "a refused write was applied: {} {}",
            r.status,
            r.body
        );

        std::fs::remove_file(&filler)?;
        let t0 = Instant::now();
        put_until_acknowledged(&leader_api(&c, leader), "after", Duration::from_secs(20)).await?;
        println!(
            "writes resumed {} ms after the filler was deleted",
            t0.elapsed().as_millis()
        );
        acked.push("after".into());
        all_there(&c, &acked).await?;
        for i in 1..=3 {
            ensure!(
                c.master_mut(i).is_running(),
                "master {i} exited:\n{}",
                c.master(i).log_tail()
            );
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_log_write_failing_with_enospc_stops_the_master_which_waits_for_room_and_loses_nothing() {
    bounded(420, async {
        let disk = Tmpfs::mount(512)?;
        let mut c = cluster_on(&disk, 0).await?;
        let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(20)).await?;
        let mut acked = Vec::new();
        for n in 0..5 {
            let name = format!("before{n}");
            put_until_acknowledged(&leader_api(&c, leader), &name, Duration::from_secs(20)).await?;
            acked.push(name);
        }

        let filler = disk.fill(0)?;
        ensure!(
            disk.free()? < 64 * 1024,
            "the tmpfs is not full: {} bytes free",
            disk.free()?
        );
        // Large writes while full, to whichever master answers. RocksDB
        // preallocates its log file, so the first ones still fit; then a
        // log write fails. What is acknowledged must survive; no master may
        // acknowledge what it could not write.
        let mut answers = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(150);
        let mut refused_in_a_row = 0;
        let mut n = 0;
        while refused_in_a_row < 12 {
            ensure!(
                Instant::now() < deadline,
                "writes never stopped while full: {answers:?}"
            );
            let name = format!("full{n}");
            let api = c.master(1 + n % 3).api();
            n += 1;
            match api.post("/v1/jobs", &big_spec(&name)).await {
                Ok(r) if r.status < 300 => {
                    refused_in_a_row = 0;
                    answers.push(r.status);
                    acked.push(name);
                }
                Ok(r) => {
                    refused_in_a_row += 1;
                    answers.push(r.status);
                    ensure!(
                        matches!(r.status, 503 | 507),
                        "unexpected answer while full: {} {}",
                        r.status,
                        r.body
                    );
                    if r.status == 507 {
                        ensure!(r.body["code"] == "disk_full", "{}", r.body);
                        ensure!(r.body["errors"][0]["field"] == "data_dir", "{}", r.body);
                    }
                }
                // A master that stopped for the full disk refuses connections.
                Err(_) => {
                    refused_in_a_row += 1;
                    answers.push(0);
                }
            }
        }
        // A stopped master is restarted, as its supervisor would, on the
        // still full disk: it waits for room instead of failing again (no
        // restart loop). Masters that had nothing to write stop later.
        let mut exits = [0u32; 3];
        let until = Instant::now() + Duration::from_secs(15);
        while Instant::now() < until {
            supervise(&mut c, &mut exits).await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        println!("answers while full (0: no answer): {answers:?}; exits per master: {exits:?}");
        ensure!(
            exits.iter().all(|&n| n <= 1),
            "a master restarted on the full disk exited again: {exits:?}"
        );

        std::fs::remove_file(&filler)?;
        let t0 = Instant::now();
        let leader = loop {
            supervise(&mut c, &mut exits).await?;
            if let Ok(l) = c.wait_leader(&[1, 2, 3], Duration::from_secs(2)).await {
                break l;
            }
            ensure!(
                t0.elapsed() < Duration::from_secs(90),
                "no leader 90 s after room returned; exits per master: {exits:?}"
            );
        };
        put_until_acknowledged(&leader_api(&c, leader), "after", Duration::from_secs(60)).await?;
        println!(
            "writes resumed {} ms after the filler was deleted",
            t0.elapsed().as_millis()
        );
        acked.push("after".into());
        all_there(&c, &acked).await?;

        // Nothing acknowledged is lost, across a crash of every master too.
        for i in 1..=3 {
            c.master_mut(i).kill();
        }
        for i in 1..=3 {
            restart(&mut c, i).await?;
        }
        let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(30)).await?;
        put_until_acknowledged(
            &leader_api(&c, leader),
            "after-restart",
            Duration::from_secs(30),
        )
        .await?;
        acked.push("after-restart".into());
        all_there(&c, &acked).await?;
        Ok(())
    })
    .await;
}
