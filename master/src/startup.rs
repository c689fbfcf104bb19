//! Starting a master: open the store, bootstrap, join or rejoin, start the
//! raft driver thread, keep this master's addresses announced, and serve the
//! APIs until shutdown ([`run`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::Duration;

use ocean_proto::internal::{command, Command, Member};
use ocean_proto::raft::{forward_request, AddMember, ForwardRequest};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::MasterConfig;
use crate::error::{Error, Result};
use crate::kernel::feed::Feed;
use crate::kernel::node::{self, Driver, Msg, NodeStatus};
use crate::kernel::state::put_kv_command;
use crate::kernel::storage::RaftStore;
use crate::master::{Inner, Master};
use crate::metrics::Metrics;
use crate::transport::route::{self as raft_route, RaftRoute};
use crate::transport::{channel, GrpcTransport, NetRuntime, PeerHealth};
use tonic::transport::ClientTlsConfig;

/// Builds a set-member command (a master announcing its addresses).
fn set_member_command(m: Member) -> Command {
    Command {
        kind: Some(command::Kind::SetMember(m)),
    }
}

/// A started master: its handle and what to await for shutdown.
#[derive(Debug)]
pub struct Started {
    /// The handle.
    pub master: Master,
    driver_thread: Option<std::thread::JoinHandle<()>>,
}

impl Started {
    /// Stops the raft driver and waits for it.
    pub fn stop(mut self) {
        let _ = self.master.inner.driver.send(Msg::Shutdown);
        if let Some(t) = self.driver_thread.take() {
            let _ = t.join();
        }
    }
}

/// Free space below which the raft store is not opened, whatever the
/// reserve (a new log file, the manifest, a flush of the replayed log).
const OPEN_NEEDS: u64 = 16 * 1024 * 1024;

/// Opens the raft store. A full disk is waited out rather than failed on:
/// a master stopped by a full disk would otherwise be restarted by its
/// supervisor into the same full disk, over and over.
async fn open_store(config: &MasterConfig) -> Result<RaftStore> {
    let dir = config.data_dir.join("raft");
    let reserve = config.raft.min_free_disk_mib.saturating_mul(1024 * 1024);
    // Opening writes a new log file and flushes what the old one held; a
    // log write that fails for space aborts the process inside RocksDB
    // (see `RaftStore::write`), so the store is not opened short of room.
    let needed = reserve.max(OPEN_NEEDS);
    let space = crate::kernel::storage::DiskSpace::new(&config.data_dir, needed);
    let mut waited = false;
    while let Err(e) = space.admit() {
        if !waited {
            warn!(error = %e, "the data dir is full: waiting for room before opening the raft store");
            waited = true;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    loop {
        match RaftStore::open_with_reserve(&dir, config.raft.fsync, reserve) {
            Err(Error::Storage { source, .. }) if crate::kernel::storage::is_no_space(&source) => {
                if !waited {
                    warn!(
                        dir = %dir.display(),
                        error = %source,
                        "the data dir is full: waiting for room before opening the raft store"
                    );
                    waited = true;
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            other => {
                if waited && other.is_ok() {
                    info!(dir = %dir.display(), "the data dir has room again: raft store opened");
                }
                return other;
            }
        }
    }
}

/// Opens the store, bootstraps or joins, and starts the raft driver thread.
/// The caller serves the APIs and runs the leadership supervisor
/// ([`crate::leader::supervise`]; see [`run`]).
pub async fn start(config: &MasterConfig) -> Result<Started> {
    config.validate()?;
    std::fs::create_dir_all(&config.data_dir).map_err(|source| Error::Io {
        context: format!("create data dir {}", config.data_dir.display()),
        source,
    })?;
    let store = open_store(config).await?;
    let space = store.space().clone();
    let grpc_addr = config.advertised_grpc();
    let http_addr = config.advertised_http();
    let route = Arc::new(raft_route(config)?);
    let fresh = store.is_empty();
    let mut seeds = config.join.clone();
    if fresh && seeds.is_empty() && config.peers.len() > 1 {
        // An empty data dir in a cluster that already runs means this
        // master lost its data: rejoin instead of bootstrapping, or the
        // leader would trust entries it no longer has.
        let others: Vec<String> = config
            .peers
            .iter()
            .filter(|(id, _)| **id != config.id)
            .map(|(_, a)| a.clone())
            .collect();
        if cluster_is_running(&others, route.tls.as_ref()).await {
            warn!(
                id = config.id,
                "data dir is empty but the cluster is running: rejoining"
            );
            seeds = others;
        }
    }
    if fresh && seeds.is_empty() {
        let members: Vec<Member> = config
            .peers
            .iter()
            .map(|(id, addr)| Member {
                id: *id,
                grpc_addr: addr.clone(),
                // Every master must bootstrap the same state; each then
                // announces its own REST address through the log.
                http_addr: String::new(),
            })
            .collect();
        store.bootstrap(&members)?;
        info!(id = config.id, peers = ?config.peers.keys().collect::<Vec<_>>(), "bootstrapped a new cluster");
    }
    let state = store.state();
    let version = state.read().map(|s| s.version).unwrap_or(0);
    let feed = Feed::new(100_000, version);
    let metrics = Metrics::new();
    let health = Arc::new(PeerHealth::default());
    let (status_tx, status_rx) = watch::channel(NodeStatus::initial(config.id, version));
    let (tx, rx) = std_mpsc::channel();
    let transport = GrpcTransport::new(
        config.id,
        route.own.clone().unwrap_or_else(|| grpc_addr.clone()),
        state.clone(),
        tx.clone(),
        tokio::runtime::Handle::current(),
        health.clone(),
        route.clone(),
    );
    let transport = match NetRuntime::start(config.id) {
        Ok(net) => transport.on_own_runtime(net),
        Err(e) => {
            tracing::warn!(error = %e, "raft traffic shares the main runtime");
            transport
        }
    };
    let driver = Driver::new(
        config.id,
        store,
        &config.raft,
        transport,
        feed.clone(),
        metrics.clone(),
        status_tx,
    )?;
    let settings = config.raft.clone();
    let driver_thread = std::thread::Builder::new()
        .name(format!("raft-{}", config.id))
        .spawn(move || {
            crate::kernel::node::raise_priority();
            let run = std::panic::AssertUnwindSafe(|| node::run(driver, rx, &settings));
            if std::panic::catch_unwind(run).is_err() {
                // Serving without a raft driver would answer with stale,
                // unreplicated state forever: fail loudly instead.
                tracing::error!("raft driver panicked; stopping this master");
                std::process::exit(70);
            }
        })
        .map_err(|source| Error::Io {
            context: "spawn raft driver thread".into(),
            source,
        })?;

    let master = Master {
        inner: Arc::new(Inner {
            id: config.id,
            driver: tx,
            status: status_rx,
            state,
            feed,
            metrics,
            health,
            forward_clients: Mutex::new(HashMap::new()),
            raft_route: route,
            agent_certs: config.tls.is_some(),
            grpc_addr,
            http_addr,
            sessions: Default::default(),
            usage: Default::default(),
            agent_http: reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(2))
                .build()
                .unwrap_or_default(),
            peer_rest: match config.tls.as_ref().filter(|t| t.http) {
                Some(tls) => crate::master::PeerRest::tls(&tls.files())?,
                None => crate::master::PeerRest::plain(),
            },
            accepting_raft: std::sync::atomic::AtomicBool::new(!fresh || seeds.is_empty()),
            dns_domain: config.dns_domain.clone(),
            acl_enabled: config.acl.enabled,
            acl_local_secret: config.acl.local_secret.clone(),
            audit: Default::default(),
            scheduler_defaults: config.scheduler.clone(),
            space,
        }),
    };
    if fresh && !seeds.is_empty() {
        tokio::spawn(join_cluster(master.clone(), seeds));
    }
    tokio::spawn(announce_self(master.clone()));
    Ok(Started {
        master,
        driver_thread: Some(driver_thread),
    })
}

/// Where and how this master reaches its peers, from its config.
fn raft_route(config: &MasterConfig) -> Result<RaftRoute> {
    let tls = match &config.tls {
        Some(t) => Some(t.files().client().map_err(|e| Error::Config {
            field: "tls".into(),
            reason: e.to_string(),
        })?),
        None => None,
    };
    Ok(RaftRoute {
        separate: config.raft_addr.is_some(),
        own: config.advertised_raft(),
        peers: config.raft_peers.clone(),
        tls,
    })
}

/// Whether any of these masters (their gRPC listeners) knows a leader.
async fn cluster_is_running(addrs: &[String], tls: Option<&ClientTlsConfig>) -> bool {
    use ocean_proto::v1::ocean_api_client::OceanApiClient;
    let probes = addrs.iter().map(|a| async move {
        let Ok(ch) = raft_route::channel(a, tls) else {
            return false;
        };
        let mut client = OceanApiClient::new(ch);
        let call = client.leader(ocean_proto::v1::LeaderRequest {});
        matches!(
            tokio::time::timeout(Duration::from_millis(1500), call).await,
            Ok(Ok(_))
        )
    });
    futures::future::join_all(probes)
        .await
        .into_iter()
        .any(|x| x)
}

/// Asks running masters to add this one, until one of them accepts.
async fn join_cluster(master: Master, seeds: Vec<String>) {
    let req = ForwardRequest {
        kind: Some(forward_request::Kind::AddMember(AddMember {
            id: master.inner.id,
            grpc_addr: master.inner.grpc_addr.clone(),
            http_addr: master.inner.http_addr.clone(),
            rejoin: true,
            raft_addr: master.inner.raft_route.own.clone().unwrap_or_default(),
        })),
    };
    if master.inner.raft_route.separate {
        return join_through_raft_listeners(master, seeds, req).await;
    }
    loop {
        for seed in &seeds {
            // Ask the seed who leads, then ask the leader.
            let leader = match channel(seed) {
                Ok(ch) => {
                    let mut c = ocean_proto::v1::ocean_api_client::OceanApiClient::new(ch);
                    match c.leader(ocean_proto::v1::LeaderRequest {}).await {
                        Ok(r) => r.into_inner().grpc_addr,
                        Err(_) => continue,
                    }
                }
                Err(_) => continue,
            };
            let target = if leader.is_empty() {
                seed.clone()
            } else {
                leader
            };
            let Ok(mut client) = master.forward_client(&target) else {
                continue;
            };
            match client.forward(req.clone()).await {
                Ok(_) => {
                    info!(leader = %target, "joined the cluster");
                    master
                        .inner
                        .accepting_raft
                        .store(true, std::sync::atomic::Ordering::SeqCst);
                    return;
                }
                Err(status) => {
                    warn!(leader = %target, error = %status.message(), "join request failed; retrying")
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// [`join_cluster`] when `seeds` are raft listeners: they answer only the
/// transport, so ask each in turn; only the leader accepts.
async fn join_through_raft_listeners(master: Master, seeds: Vec<String>, req: ForwardRequest) {
    loop {
        for seed in &seeds {
            let Ok(mut client) = master.forward_client(seed) else {
                continue;
            };
            match client.forward(req.clone()).await {
                Ok(_) => {
                    info!(seed = %seed, "joined the cluster");
                    master
                        .inner
                        .accepting_raft
                        .store(true, std::sync::atomic::Ordering::SeqCst);
                    return;
                }
                Err(status) if status.code() == tonic::Code::Unavailable => {}
                Err(status) => {
                    warn!(seed = %seed, error = %status.message(), "join request failed; retrying")
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Keeps this master's raft listener in the replicated `ocean.raft`
/// namespace current, so every master reaches it after any leader change.
async fn announce_raft_addr(master: &Master) {
    let Some(own) = master.inner.raft_route.own.clone() else {
        return;
    };
    let key = master.inner.id.to_string();
    let known = master.read(|st| {
        st.kv_get(raft_route::NAMESPACE, &key)
            .is_some_and(|e| e.value == own.as_bytes())
    });
    if known || master.status().leader == 0 || !master.accepting_raft() {
        return;
    }
    let cmd = put_kv_command(raft_route::NAMESPACE, &key, own.into_bytes(), None);
    if let Err(e) = master.propose(cmd).await {
        warn!(error = %e, "could not announce this master's raft listener; will retry");
    }
}

/// Keeps this master's addresses in the replicated membership current, so
/// every master can name the leader's REST address.
async fn announce_self(master: Master) {
    let me = Member {
        id: master.inner.id,
        grpc_addr: master.inner.grpc_addr.clone(),
        http_addr: master.inner.http_addr.clone(),
    };
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if master.status().removed {
            return;
        }
        announce_raft_addr(&master).await;
        let known = master.read(|st| st.members.get(&me.id).cloned());
        let Some(known) = known else { continue };
        if known == me || master.status().leader == 0 {
            continue;
        }
        if let Err(e) = master.propose(set_member_command(me.clone())).await {
            warn!(error = %e, "could not announce this master's addresses; will retry");
        }
    }
}

/// Runs a master until `shutdown` resolves: raft driver, gRPC and REST.
pub async fn run(
    config: MasterConfig,
    http: TcpListener,
    grpc: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    run_with(config, http, grpc, Vec::new(), shutdown).await
}

/// [`run`], hosting `frameworks` too on whichever master leads (`leader`).
pub async fn run_with(
    config: MasterConfig,
    http: TcpListener,
    grpc: TcpListener,
    frameworks: Vec<std::sync::Arc<dyn ocean_framework::Framework>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    run_mounted(
        config,
        http,
        grpc,
        frameworks,
        |_| axum::Router::new(),
        shutdown,
    )
    .await
}

/// [`run_with`], serving beside the REST API the routes `mount` builds
/// from the started master (the binary mounts the dashboard, `ocean-ui`,
/// this way: it depends on this crate, so this crate cannot name it).
pub async fn run_mounted(
    config: MasterConfig,
    http: TcpListener,
    grpc: TcpListener,
    frameworks: Vec<std::sync::Arc<dyn ocean_framework::Framework>>,
    mount: impl FnOnce(Master) -> axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    // Bound first: a taken port fails the start, not a running master.
    let raft_listener = match config.raft_addr {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    // Read before starting, so bad certificate files fail the start.
    let rest_tls = match config.tls.as_ref().filter(|t| t.http) {
        Some(tls) => Some(tls.files().rest_server().map_err(|e| Error::Config {
            field: "tls".into(),
            reason: e.to_string(),
        })?),
        None => None,
    };
    let started = start(&config).await?;
    let master = started.master.clone();
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    // The leader's own memory: held here, beside the handle rather than in
    // it, so the kernel's handle does not import the leader's layer.
    let leading = crate::reconcile::Leading::new(
        master.clone(),
        Arc::new(
            crate::reconcile::Scheduler::new(&config.scheduler)
                .with_agent_settings(config.agents.clone()),
        ),
    );
    let in_process: Arc<dyn ocean_client::Client> =
        Arc::new(crate::api::in_process::InProcess::new(master.clone()));
    let host = tokio::spawn(crate::leader::supervise(
        leading.clone(),
        frameworks,
        in_process,
        stop_rx.clone(),
    ));
    let raft_server = serve_raft_listener(
        raft_listener,
        config.tls.as_ref(),
        master.clone(),
        wait_stop(stop_rx.clone()),
    );
    let grpc_server = crate::api::grpc::serve(
        leading,
        grpc,
        config.tls.as_ref(),
        wait_stop(stop_rx.clone()),
    );
    let extra = mount(master.clone());
    let http_server =
        crate::api::http::serve_mounted(master.clone(), http, extra, rest_tls, wait_stop(stop_rx));
    info!(id = config.id, http = %config.http, grpc = %config.grpc, "master serving");
    let (g, h, r) = tokio::join!(grpc_server, http_server, raft_server);
    // The leader's controllers (and the hosted frameworks, which release
    // their leases) stop while the raft driver still runs.
    let _ = tokio::time::timeout(Duration::from_secs(3), host).await;
    tokio::task::spawn_blocking(move || started.stop())
        .await
        .ok();
    g?;
    h?;
    r?;
    Ok(())
}

/// Serves the raft listener when the config gives one.
async fn serve_raft_listener(
    listener: Option<TcpListener>,
    tls: Option<&crate::config::TlsSettings>,
    master: Master,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let Some(listener) = listener else {
        return Ok(());
    };
    info!(raft = ?listener.local_addr().ok(), tls = tls.is_some(), "raft listener serving");
    crate::api::grpc::serve_raft(master, listener, tls, shutdown).await
}

async fn wait_stop(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Binds a listener, naming the address on failure.
pub async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}
