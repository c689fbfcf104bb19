//! A full disk under real masters: the three data dirs are moved onto one
//! small tmpfs mounted by the test, and a filler file takes its room.
//!
//! * Below the reserve (`--min-free-disk-mib`), writes answer 507 with the
//!   JSON error naming `data_dir` and the reason, on the leader and through
//!   a follower; reads go on; deleting the filler lets writes through.
//! * With no reserve the raft log write itself fails with ENOSPC: no master
//!   exits, no write is acknowledged meanwhile, later writes answer 507, and
//!   once the filler is gone writes go through again (RocksDB resumes on
//!   its own). Every acknowledged job is then on every master, and still
//!   there after all three are SIGKILLed and restarted.
//!
//! Needs root (mount); the tmpfs is unmounted when the test ends, however
//! it ends.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use ocean_tests::http::{job_id, Api};
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
        let size = free.saturating_sub(leave);
        run(
            "fallocate",
            &["-l", &size.to_string(), &filler.to_string_lossy()],
        )?;
        if leave == 0 {
            // What fallocate left (block rounding) is taken by appending.
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
                    bail!("master {i} lost acknowledged job {id}: {} {}", r.status, r.body);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    Ok(())
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
        for (who, api) in [("leader", leader_api(&c, leader)), ("follower", c.master(follower).api())] {
            let r = api.put_job("while-full").await?;
            ensure!(r.status == 507, "{who}: expected 507, got {} {}", r.status, r.body);
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
        let r = c.master(follower).api().get(&format!("/v1/jobs/{}", job_id("before0"))).await?;
        ensure!(r.status == 200, "read while full: {} {}", r.status, r.body);
        let r = c.master(leader).api().get(&format!("/v1/jobs/{}", job_id("while-full"))).await?;
        ensure!(r.status == 404, "a refused write was applied: {} {}", r.status, r.body);

        std::fs::remove_file(&filler)?;
        let t0 = Instant::now();
        put_until_acknowledged(&leader_api(&c, leader), "after", Duration::from_secs(20)).await?;
        println!("writes resumed {} ms after the filler was deleted", t0.elapsed().as_millis());
        acked.push("after".into());
        all_there(&c, &acked).await?;
        for i in 1..=3 {
            ensure!(c.master_mut(i).is_running(), "master {i} exited:\n{}", c.master(i).log_tail());
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_log_write_failing_with_enospc_waits_for_room_and_loses_nothing() {
    bounded(300, async {
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
        ensure!(disk.free()? < 64 * 1024, "the tmpfs is not full: {} bytes free", disk.free()?);
        // Writes while full: none may be acknowledged by a master that
        // cannot persist it, none may crash a master. The first ones find
        // the write failing (unknown outcome: 503 not_committed); once a
        // master knows, it answers 507 at once.
        let mut answers = Vec::new();
        let mut seen_507 = false;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut n = 0;
        while !seen_507 {
            ensure!(Instant::now() < deadline, "no 507 while full; answers: {answers:?}");
            let name = format!("full{n}");
            n += 1;
            let r = leader_api(&c, leader).put_job(&name).await?;
            answers.push(r.status);
            match r.status {
                507 => {
                    seen_507 = true;
                    ensure!(r.body["code"] == "disk_full", "{}", r.body);
                    ensure!(r.body["errors"][0]["field"] == "data_dir", "{}", r.body);
                    let reason = r.body["errors"][0]["reason"].as_str().unwrap_or("");
                    ensure!(reason.contains("No space left on device"), "{reason}");
                }
                // Its outcome is unknown: it may apply once room returns.
                503 => {}
                s if s < 300 => {
                    // Written before RocksDB ran out of room (the filler's
                    // last blocks): acknowledged, so it must survive.
                    acked.push(name);
                }
                s => bail!("unexpected answer while full: {s} {}", r.body),
            }
        }
        for i in 1..=3 {
            ensure!(c.master_mut(i).is_running(), "master {i} exited while full:\n{}", c.master(i).log_tail());
        }

        std::fs::remove_file(&filler)?;
        let t0 = Instant::now();
        let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(60)).await?;
        put_until_acknowledged(&leader_api(&c, leader), "after", Duration::from_secs(60)).await?;
        println!(
            "answers while full: {answers:?}; writes resumed {} ms after the filler was deleted",
            t0.elapsed().as_millis()
        );
        acked.push("after".into());
        all_there(&c, &acked).await?;

        // Nothing acknowledged is lost across a crash of every master.
        for i in 1..=3 {
            c.master_mut(i).kill();
        }
        for i in 1..=3 {
            c.master_mut(i).start()?;
        }
        let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(30)).await?;
        put_until_acknowledged(&leader_api(&c, leader), "after-restart", Duration::from_secs(30)).await?;
        acked.push("after-restart".into());
        all_there(&c, &acked).await?;
        Ok(())
    })
    .await;
}
