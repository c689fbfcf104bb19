//! MySQL framework benchmark (issue 19): one master hosting the mysql
//! framework, three agents, real mariadbd tasks, Ocean's DNS.
//!
//! - provisioning: `POST /v1/databases` of 3 instances to the first write
//!   acknowledged through the primary's DNS name (a new database per
//!   trial, deleted after);
//! - primary faults: a writer inserting through DNS (reconnecting and
//!   re-resolving after each error) records every acknowledged commit;
//!   1-3 s later (seeded) the primary gets a fault chosen with the seed
//!   among `--faults`: SIGKILL of its mariadbd, SIGSTOP (SIGCONT once it
//!   is writable again through DNS), or SIGKILL of its host's agent
//!   (down 3-8 s, seeded: past the masters' heartbeat timeout, so its
//!   tasks are lost to them while the primary's mariadbd still runs); time from the fault until a fresh
//!   connection to what DNS names takes an acknowledged write; every
//!   commit the writer had acknowledged checked on the new primary. The
//!   next trial waits until the database is healed (the old primary, or
//!   its replacement, a replica again).
//! - where a failover's time goes: a poller (REST every 5 ms, DNS)
//!   notes, after each kill, when the masters record the old primary's
//!   task ended (the agent saw the exit), when the operator records the
//!   new primary (`topology/<db>`), when the new primary's task is
//!   healthy (its health check passed and the agent reported it), and
//!   when DNS names it; each phase's percentiles are printed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use ocean_tests::databases::resolve_primary;
use ocean_tests::databases::{
    app_password, create_database, healthy, missing, nodes, start, wait_database, wait_writable,
    write_load,
};
use ocean_tests::http::{Api, Body, Method};

use crate::{ms, percentile};

const WAIT: Duration = Duration::from_secs(90);

fn report(what: &str, mut times: Vec<Duration>) {
    times.sort();
    println!(
        "{what}: n={} p50={} p95={} p99={} max={}",
        times.len(),
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.95)),
        ms(percentile(&times, 0.99)),
        ms(times.last().copied().unwrap_or_default()),
    );
}

/// When each step of a failover was seen, from the kill.
#[derive(Debug, Default, Clone, Copy)]
struct Phases {
    /// The masters hold the old primary's task as ended.
    ended: Option<Duration>,
    /// The operator recorded another primary.
    recorded: Option<Duration>,
    /// That primary's task is healthy.
    healthy: Option<Duration>,
    /// DNS names another address.
    dns: Option<Duration>,
}

/// Polls until every phase after the kill of task `old` (at `old_addr`)
/// was seen, or 30 s.
async fn phases(
    api: Api,
    dns: std::net::SocketAddr,
    old: String,
    old_addr: String,
    killed: Instant,
) -> Phases {
    let mut p = Phases::default();
    let mut new = String::new();
    while killed.elapsed() < Duration::from_secs(30) {
        let at = killed.elapsed();
        if p.ended.is_none() {
            if let Ok(r) = api.get(&format!("/v1/tasks/{old}")).await {
                if r.body["state"] != "RUNNING" {
                    p.ended = Some(at);
                }
            }
        }
        if p.recorded.is_none() {
            if let Ok(r) = api.get("/v1/frameworks/mysql/kv/topology/bench").await {
                let primary = r.body["value"]["primary"].as_str().unwrap_or_default();
                if !primary.is_empty() && primary != old {
                    new = primary.to_string();
                    p.recorded = Some(at);
                }
            }
        }
        if p.healthy.is_none() && !new.is_empty() {
            if let Ok(r) = api.get(&format!("/v1/tasks/{new}")).await {
                if r.body["healthy"] == true {
                    p.healthy = Some(at);
                }
            }
        }
        if p.dns.is_none() {
            if let Some(a) = resolve_primary(dns, "bench").await {
                if a != old_addr {
                    p.dns = Some(at);
                }
            }
        }
        if p.ended.is_some() && p.recorded.is_some() && p.healthy.is_some() && p.dns.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    p
}

/// The faults a trial may inject.
const FAULTS: [&str; 3] = ["sigkill", "sigstop", "agent"];

/// A small seeded generator (xorshift64*): the same seed, the same
/// faults and waits.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// Runs the benchmark: `provisions` databases created, `kills` faults
/// on the primary, each chosen among `faults` with `seed`.
pub async fn mysql(
    provisions: usize,
    kills: usize,
    faults: &[String],
    seed: u64,
) -> anyhow::Result<()> {
    if let Some(f) = faults.iter().find(|f| !FAULTS.contains(&f.as_str())) {
        anyhow::bail!("--faults: '{f}' is not one of {}", FAULTS.join(", "));
    }
    anyhow::ensure!(!faults.is_empty(), "--faults: none given");
    let mut rng = Rng::new(seed);
    let (c, mut agents, dns) = start(&["a", "b", "c"]).await?;
    let api = c.master(1).api();

    let mut times = Vec::new();
    for i in 0..provisions {
        let name = format!("p{i}");
        let asked = Instant::now();
        let d = create_database(&api, &name, 3).await?;
        wait_writable(dns.addr, &name, &app_password(&d), WAIT).await?;
        let took = asked.elapsed();
        println!("provision {i}: {}", ms(took));
        times.push(took);
        api.send(Method::DELETE, &format!("/v1/databases/{name}"), Body::None)
            .await?;
        // The next one gets the hosts to itself.
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    if !times.is_empty() {
        report(
            "provision 3 instances -> first acknowledged write via DNS",
            times,
        );
    }

    if kills == 0 {
        return Ok(());
    }
    let d = create_database(&api, "bench", 3).await?;
    let pw = app_password(&d);
    wait_writable(dns.addr, "bench", &pw, WAIT).await?;
    let mut times: Vec<(String, Duration)> = Vec::new();
    let mut seen: Vec<Phases> = Vec::new();
    let (mut acked, mut lost, mut failed) = (0usize, 0usize, 0usize);
    for i in 0..kills {
        let fault = faults[rng.below(faults.len() as u64) as usize].clone();
        let before = Duration::from_millis(1_000 + rng.below(2_000));
        let down = Duration::from_millis(3_000 + rng.below(5_000));
        let d = wait_database(&api, "bench", "healed", WAIT, healthy(3)).await?;
        let old = d["status"]["primary"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let pid = api.get(&format!("/v1/tasks/{old}")).await?.body["pid"]
            .as_i64()
            .context("the primary's task has no pid")?;
        let stop = Arc::new(AtomicBool::new(false));
        let writer = tokio::spawn(write_load(
            dns.addr,
            "bench".into(),
            pw.clone(),
            1 + i as u64 * 1_000_000,
            stop.clone(),
        ));
        tokio::time::sleep(before).await;
        let old_addr = ocean_tests::databases::addr_of(&d, "primary").unwrap_or_default();
        let host = nodes(&d)
            .iter()
            .find(|n| n["task"] == old.as_str())
            .and_then(|n| n["host"].as_str().map(String::from))
            .unwrap_or_default();
        let agent = agents
            .iter()
            .position(|a| a.args.contains(&host))
            .context("the primary's host's agent")?;
        let killed = Instant::now();
        match fault.as_str() {
            "sigkill" => kill(Pid::from_raw(pid as i32), Signal::SIGKILL)?,
            "sigstop" => kill(Pid::from_raw(pid as i32), Signal::SIGSTOP)?,
            _ => agents[agent].kill(),
        }
        let poller = tokio::spawn(phases(api.clone(), dns.addr, old.clone(), old_addr, killed));
        // Writable through DNS: a fresh connection to what DNS names takes
        // an acknowledged write.
        let r = wait_writable(dns.addr, "bench", &pw, Duration::from_secs(30)).await;
        let took = killed.elapsed();
        // Whatever happened, nothing stays stopped or down.
        match fault.as_str() {
            "sigstop" => {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGCONT);
            }
            "agent" => {
                // Down past the masters' heartbeat timeout (2.5 s): its
                // tasks are lost to them and the primary is replaced
                // while its mariadbd still runs; then the agent comes
                // back and the writer goes on through whatever DNS names.
                tokio::time::sleep(down).await;
                agents[agent].start()?;
                wait_writable(dns.addr, "bench", &pw, Duration::from_secs(30)).await?;
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stop.store(true, Ordering::Relaxed);
        let w = writer.await?;
        let ph = poller.await?;
        println!("fault {i} ({fault}): phases {ph:?}");
        seen.push(ph);
        if let Err(e) = r {
            println!("fault {i} ({fault}): not writable: {e:#}");
            failed += 1;
            continue;
        }
        let d = ocean_tests::databases::database(&api, "bench").await?;
        let primary = ocean_tests::databases::addr_of(&d, "primary").context("no primary")?;
        let gone = missing(&primary, &pw, &w.acked).await?.len();
        println!(
            "fault {i} ({fault}): writable via DNS after {}, {} acknowledged by the writer, {gone} lost",
            ms(took),
            w.acked.len()
        );
        times.push((fault, took));
        acked += w.acked.len();
        lost += gone;
    }
    println!("seed {seed}, faults {faults:?}: {kills} trials, not writable within 30 s: {failed}");
    for f in FAULTS {
        let these: Vec<Duration> = times
            .iter()
            .filter(|(k, _)| k == f)
            .map(|(_, t)| *t)
            .collect();
        if !these.is_empty() {
            report(&format!("primary {f} -> writable via DNS"), these);
        }
    }
    type Pick = fn(&Phases) -> Option<Duration>;
    let steps: [(&str, Pick); 4] = [
        ("  kill -> masters hold the task ended", |p| p.ended),
        ("  kill -> new primary recorded", |p| p.recorded),
        ("  kill -> new primary's task healthy", |p| p.healthy),
        ("  kill -> DNS names it", |p| p.dns),
    ];
    for (what, pick) in steps {
        report(what, seen.iter().filter_map(pick).collect());
    }
    println!("acknowledged commits: {acked}, lost: {lost}");
    drop(dns);
    Ok(())
}
