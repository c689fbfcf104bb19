//! The ELB data-plane benchmark: in a network namespace of its own, a cold
//! apply of `--vs` virtual servers with `--rs` real servers each, then
//! `--changes` one-VS changes (one real server of a random VS turns
//! unhealthy or back), each computed (model, diff) and applied by the real
//! `nft`. The changes take the agent's path: a watch event noted by the
//! model, which recomputes only the ELB it touches. Prints the figures
//! docs/benchmarks.md records.
//!
//! ```text
//! cargo run -p ocean-elb --release --example elb-bench -- --vs 2000 --rs 20 --changes 200 [--nft-binary 1] [--hash 1]
//! ```

use std::time::{Duration, Instant};

use ocean_client::api::event::Kind;
use ocean_client::api::{Event, KvEntry, Snapshot, Task, TaskPort};
use ocean_elb::model::Model;
use ocean_elb::nft::NftCommand;
use ocean_elb::nft_lib::NftLib;
use ocean_elb::programmer::Programmer;
use ocean_elb::spec::{Algorithm, ElbSpec, Listener, Network, Protocol};
use ocean_elb::{store, NAMESPACE};
use ocean_framework::View;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn job(v: usize) -> String {
    format!("cop.b_owt.b_pdl.b_servicegroup.b_service.s{v}_job.j{v}_cluster.c1")
}

/// CPU time of the whole process (model, diff and the nft worker's user
/// and kernel time): what a change costs, whatever else the machine runs.
fn cpu() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let t = |tv: nix::sys::time::TimeVal| {
                Duration::new(tv.tv_sec() as u64, tv.tv_usec() as u32 * 1000)
            };
            t(u.user_time()) + t(u.system_time())
        }
        Err(_) => Duration::ZERO,
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn main() -> anyhow::Result<()> {
    let n_vs = arg("--vs", 2000);
    let n_rs = arg("--rs", 20);
    let changes = arg("--changes", 200);
    // `--hash 1`: client-hash VS (Maglev tables) instead of rr (exact).
    let algorithm = if arg("--hash", 0) == 1 {
        Algorithm::Hash
    } else {
        Algorithm::Rr
    };
    println!("algorithm: {algorithm:?}");
    let ns = format!("elb-bench-{}", std::process::id());
    let ok = std::process::Command::new("ip")
        .args(["netns", "add", &ns])
        .status()?;
    anyhow::ensure!(ok.success(), "ip netns add {ns}");
    struct Del(String);
    impl Drop for Del {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &self.0])
                .status();
        }
    }
    let _guard = Del(ns.clone());

    let elbs: Vec<ElbSpec> = (0..n_vs)
        .map(|v| ElbSpec {
            name: format!("pdl.b_service.s{v}"),
            idc: "c1".into(),
            network: Network::Internal,
            vips: vec![format!(
                "10.{}.{}.{}",
                100 + v / 65536,
                (v / 256) % 256,
                v % 256
            )],
            listeners: vec![Listener {
                port: 80,
                protocol: Protocol::Tcp,
                backend_job: job(v),
                backend_port_name: "http".into(),
                algorithm,
                weight: 1,
            }],
            domain: None,
            views: Vec::new(),
        })
        .collect();
    let mut tasks: Vec<Task> = (0..n_vs)
        .flat_map(|v| {
            (0..n_rs).map(move |r| {
                let n = v * n_rs + r;
                Task {
                    id: format!("{}.{r}", job(v)),
                    job_id: job(v),
                    state: "RUNNING".into(),
                    address: format!("10.{}.{}.{}", n / 65536, (n / 256) % 256, n % 256),
                    healthy: Some(true),
                    ports: vec![TaskPort {
                        name: "http".into(),
                        port: 8080,
                    }],
                    ..Default::default()
                }
            })
        })
        .collect();
    // The agent's own path: a view fed by watch events, the model noting
    // what each event touched.
    let ev = |version: u64, kind: Kind| Event {
        version,
        kind: Some(kind),
        last_of_version: true,
    };
    let snapshot = Snapshot {
        version: 1,
        tasks: tasks.clone(),
        kv: elbs
            .iter()
            .map(|e| KvEntry {
                namespace: NAMESPACE.into(),
                key: store::key(&e.name),
                value: serde_json::to_vec(e).expect("an ELB serialises"),
                revision: 1,
                created_revision: 1,
            })
            .collect(),
        ..Default::default()
    };
    let mut view = View::new(NAMESPACE);
    let mut model = Model::new(None);
    let first = ev(1, Kind::Snapshot(snapshot));
    model.note(&view, &first);
    view.apply(first);
    // `--nft-binary 1` measures the `nft` binary instead of the library.
    let mut p = if arg("--nft-binary", 0) == 1 {
        println!("nft: the binary");
        Programmer::new(Box::new(NftCommand {
            netns: Some(ns.clone()),
        }))
    } else {
        println!("nft: libnftables in process");
        Programmer::new(Box::new(NftLib::open(Some(&ns))?))
    };

    let cpu_cold = cpu();
    let t0 = Instant::now();
    model.update(&view, p.installed());
    let plane = model.plane();
    let model_took = t0.elapsed();
    let applied = p.sync(plane)?;
    let cold = t0.elapsed();
    let cold_cpu = cpu() - cpu_cold;
    println!(
        "cold apply: {n_vs} VS / {} RS, {} elements: {:?} total (model {:?}, nft {:?}); CPU {:?}",
        n_vs * n_rs,
        plane.elements(),
        cold,
        model_took,
        applied.took,
        cold_cpu
    );

    let mut times = Vec::new();
    let mut nft_times = Vec::new();
    let mut cpu_times = Vec::new();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for i in 0..changes {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let v = (seed as usize) % n_vs;
        let r = (seed as usize / n_vs) % n_rs;
        let t = &mut tasks[v * n_rs + r];
        t.healthy = Some(t.healthy != Some(true));
        let e = ev(2 + i as u64, Kind::TaskPut(t.clone()));
        let start = Instant::now();
        let cpu0 = cpu();
        model.note(&view, &e);
        view.apply(e);
        let c = model.update(&view, p.installed());
        let a = p.sync_delta(model.plane(), &c.delta)?;
        times.push(start.elapsed());
        cpu_times.push(cpu() - cpu0);
        nft_times.push(a.took);
    }
    times.sort();
    nft_times.sort();
    cpu_times.sort();
    if !times.is_empty() {
        println!(
            "one-VS change ({changes}): p50 {:?} p99 {:?} max {:?}; of which nft p50 {:?} p99 {:?}",
            pct(&times, 0.5),
            pct(&times, 0.99),
            times[times.len() - 1],
            pct(&nft_times, 0.5),
            pct(&nft_times, 0.99)
        );
        println!(
            "one-VS change, CPU time of the process: p50 {:?} p99 {:?}",
            pct(&cpu_times, 0.5),
            pct(&cpu_times, 0.99)
        );
    }
    // What a `/metrics` scrape costs: both counter sets read back and parsed.
    let mut scrapes = Vec::new();
    for _ in 0..10 {
        let start = Instant::now();
        let mut series = 0;
        for set in ocean_elb::nft_script::STATS_SETS {
            let json = p.nft().list_set(set)?.unwrap_or_default();
            series += ocean_elb::metrics::parse_counters(&json)?.len();
        }
        scrapes.push(start.elapsed());
        assert_eq!(series, 2 * model.plane().vs_keys().count());
    }
    scrapes.sort();
    println!(
        "counters read for /metrics (10): p50 {:?} max {:?}",
        pct(&scrapes, 0.5),
        scrapes[scrapes.len() - 1]
    );
    Ok(())
}
