//! MySQL framework benchmark (issue 19): one master hosting the mysql
//! framework, three agents, real mariadbd tasks, Ocean's DNS.
//!
//! - provisioning: `POST /v1/databases` of 3 instances to the first write
//!   acknowledged through the primary's DNS name (a new database per
//!   trial, deleted after);
//! - primary crash: a writer inserting through DNS (reconnecting and
//!   re-resolving after each error) records every acknowledged commit;
//!   the primary is SIGKILLed 2 s later; time from the kill until a fresh
//!   connection to what DNS names takes an acknowledged write; every
//!   commit the writer had acknowledged checked on the new primary. The next trial waits until the database is healed (the old
//!   primary's replacement a replica again).
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
    app_password, create_database, healthy, missing, start, wait_database, wait_writable,
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

/// Runs the benchmark: `provisions` databases created, `kills` primaries
/// SIGKILLed.
pub async fn mysql(provisions: usize, kills: usize) -> anyhow::Result<()> {
    let (c, _agents, dns) = start(&["a", "b", "c"]).await?;
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
    let mut times = Vec::new();
    let mut seen: Vec<Phases> = Vec::new();
    let (mut acked, mut lost, mut failed) = (0usize, 0usize, 0usize);
    for i in 0..kills {
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
        tokio::time::sleep(Duration::from_secs(2)).await;
        let old_addr = ocean_tests::databases::addr_of(&d, "primary").unwrap_or_default();
        let killed = Instant::now();
        kill(Pid::from_raw(pid as i32), Signal::SIGKILL)?;
        let poller = tokio::spawn(phases(api.clone(), dns.addr, old.clone(), old_addr, killed));
        // Writable through DNS: a fresh connection to what DNS names takes
        // an acknowledged write.
        let r = wait_writable(dns.addr, "bench", &pw, Duration::from_secs(30)).await;
        let took = killed.elapsed();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stop.store(true, Ordering::Relaxed);
        let w = writer.await?;
        let ph = poller.await?;
        println!("kill {i}: phases {ph:?}");
        seen.push(ph);
        if let Err(e) = r {
            println!("kill {i}: not writable: {e:#}");
            failed += 1;
            continue;
        }
        let d = ocean_tests::databases::database(&api, "bench").await?;
        let primary = ocean_tests::databases::addr_of(&d, "primary").context("no primary")?;
        let gone = missing(&primary, &pw, &w.acked).await?.len();
        println!(
            "kill {i}: writable via DNS after {}, {} acknowledged by the writer, {gone} lost",
            ms(took),
            w.acked.len()
        );
        times.push(took);
        acked += w.acked.len();
        lost += gone;
    }
    println!("trials not writable within 30 s: {failed}");
    report("primary SIGKILL -> writable via DNS", times);
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
