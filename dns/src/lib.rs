//! Ocean's DNS: an authoritative server for the cluster's zone (default
//! `ocean.`), fed by the masters' watch stream, answering over UDP and TCP,
//! forwarding other names to upstream resolvers.
//!
//! ```text
//!  masters ──Watch──► follow::Follower (ocean-client) ──► model::Model ──records of dirty owners──► zone::Zone
//!          ──Leader──►      (leader., masters.)                                      │ names changed
//!                                                                                    ▼
//!  UDP (udp.rs: a thread per SO_REUSEPORT socket) ─┐                          cache::Cache
//!  TCP (tcp.rs: hickory-server Server)  ───────────┴─► query::Authority::handle ─► hit: patch id, send
//!                                                          │ miss: answer.rs (hickory Message), encode, cache
//!                                                          └ out of zone: forward.rs (upstreams) or REFUSED
//! ```
//!
//! Names come from `ocean_spec::dns` (the scheme is in `docs/dns.md`); the
//! masters use the same functions to show a job's DNS name.
//!
//! Modules: [`config`] the settings; [`model`] the cluster view and which
//! records it gives (the RUNNING-and-healthy filter); [`zone`] the names;
//! [`answer`] one answer as a hickory message; [`cache`] encoded answers;
//! [`query`] the per-query path; [`udp`], [`tcp`], [`forward`] the
//! transports; [`follow`] the masters followed through `ocean-client`.

pub mod answer;
pub mod cache;
pub mod config;
pub mod error;
pub mod follow;
pub mod forward;
pub mod model;
pub mod query;
pub mod tcp;
pub mod udp;
pub mod views;
pub mod zone;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::info;

pub use config::DnsConfig;
pub use error::{Error, Result};

use crate::follow::Follower;
use crate::forward::Forwarder;
use crate::query::Authority;
use crate::zone::Zone;

/// Idle TCP connections are closed after this long.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// The server's bound sockets: bind first (tests use port 0), serve later.
#[derive(Debug)]
pub struct Sockets {
    udp: Vec<std::net::UdpSocket>,
    tcp: tokio::net::TcpListener,
}

impl Sockets {
    /// The address UDP and TCP are served on.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.tcp
            .local_addr()
            .map_err(Error::io("TCP local address"))
    }
}

fn workers(cfg: &DnsConfig) -> usize {
    if cfg.udp_workers > 0 {
        return cfg.udp_workers;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Binds UDP and TCP on `cfg.listen` (the same port for both; with port 0
/// a free one).
pub async fn bind(cfg: &DnsConfig) -> Result<Sockets> {
    let mut last = None;
    for _ in 0..5 {
        let udp = udp::bind_all(cfg.listen, workers(cfg))?;
        let port = udp[0]
            .local_addr()
            .map_err(Error::io("UDP local address"))?
            .port();
        let addr = SocketAddr::new(cfg.listen.ip(), port);
        match tokio::net::TcpListener::bind(addr).await {
            Ok(tcp) => return Ok(Sockets { udp, tcp }),
            // With port 0 the TCP port may be taken: pick another pair.
            Err(e) if cfg.listen.port() == 0 => last = Some(e),
            Err(e) => return Err(Error::io(format!("bind TCP {addr}"))(e)),
        }
    }
    Err(Error::io(format!("bind TCP {}", cfg.listen))(
        last.unwrap_or_else(|| std::io::Error::other("no free port")),
    ))
}

/// Binds and serves until `shutdown` resolves.
pub async fn run(cfg: DnsConfig, shutdown: impl Future<Output = ()>) -> Result<()> {
    cfg.validate()?;
    let sockets = bind(&cfg).await?;
    serve(cfg, sockets, shutdown).await
}

/// Serves on `sockets` until `shutdown` resolves.
pub async fn serve(
    cfg: DnsConfig,
    sockets: Sockets,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    cfg.validate()?;
    let addr = sockets.local_addr()?;
    let ns_addr = Some(addr.ip()).filter(|ip| !ip.is_unspecified());
    let zone = Zone::new(&cfg.domain, cfg.ttl, ns_addr);
    let authority = Arc::new(Authority::new(zone, !cfg.upstreams.is_empty()));
    let forwarder = Forwarder::new(cfg.upstreams.clone());

    let follower = Follower::connect(
        &cfg.masters,
        &cfg.domain,
        authority.clone(),
        &cfg.token,
        cfg.tls.as_ref(),
    )?;
    let watch = tokio::spawn(follower.clone().watch());
    let poll = tokio::spawn(follower.poll_masters());

    let (fwd_tx, fwd_rx) = mpsc::channel(4096);
    let fwd_task = tokio::spawn(udp::forwarder(fwd_rx, forwarder.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for (i, socket) in sockets.udp.into_iter().enumerate() {
        let (socket, authority, tx, stop) = (
            Arc::new(socket),
            authority.clone(),
            fwd_tx.clone(),
            stop.clone(),
        );
        let t = std::thread::Builder::new()
            .name(format!("dns-udp-{i}"))
            .spawn(move || udp::worker(socket, authority, tx, stop))
            .map_err(Error::io("spawn a UDP worker"))?;
        threads.push(t);
    }
    drop(fwd_tx);

    let mut tcp = hickory_server::Server::new(tcp::TcpHandler {
        authority,
        forwarder,
    });
    tcp.register_listener(sockets.tcp, TCP_IDLE, 64 * 1024);
    info!(%addr, domain = %cfg.domain, masters = ?cfg.masters, upstreams = ?cfg.upstreams, "DNS serving on UDP and TCP");

    shutdown.await;
    info!("DNS shutting down");
    stop.store(true, Ordering::Relaxed);
    watch.abort();
    poll.abort();
    let _ = tcp.shutdown_gracefully().await;
    fwd_task.abort();
    for t in threads {
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
    Ok(())
}
