//! Following the masters through `ocean-client`: the watch stream for
//! jobs, tasks and agents ([`ocean_client::follow_versions`]: resumed on
//! the next master from the last complete version), and a light poll of
//! `Leader` (plus `ListMembers` when the leader changes) for `leader.` and
//! `masters.`.
//!
//! ```text
//! GrpcClient (failover, keep-alive) --follow_versions--> whole versions --> Model::apply
//!      ^  stream ends or fails: next master, same version             |  dirty owners
//!      +--------------------------------------------------------------+--> Zone::replace --> cache invalidation
//! ```
//!
//! Nothing is cleared while no master answers: the zone keeps the last
//! known records (no NXDOMAIN storm at start-up or failover). A version is
//! applied only once all of its changes arrived, and a snapshot (first
//! connection, or too far behind) replaces the model as one update.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use ocean_client::api::{event, Event, LeaderRequest, ListMembersRequest, WatchRequest};
use ocean_client::{Client, GrpcClient, GrpcOptions, KeepAlive};
use tracing::{error, info};

use crate::error::{Error, Result};
use crate::model::{Model, Owner};
use crate::query::Authority;

/// Events applied as one zone update at most (a snapshot of a big cluster
/// arrives as one event anyway; a version is never split).
const MAX_BATCH: usize = 10_000;

/// How often the leader is asked for.
const LEADER_POLL: Duration = Duration::from_secs(1);
/// How long one poll may take, trying other masters included; a master
/// that does not answer in time is not asked first next time.
const POLL_TIMEOUT: Duration = Duration::from_secs(1);
/// The members are asked for on a leader change and every this many polls.
const MEMBERS_EVERY: u64 = 10;
/// The pause before following again after an error no reconnect mends
/// (the masters refused the watch itself).
const REFUSED_PAUSE: Duration = Duration::from_secs(5);

/// How the DNS server connects: a master that does not accept a connection
/// in 500 ms is skipped, and pings find a frozen one within 3 s.
fn options(tls: Option<&tonic::transport::ClientTlsConfig>) -> GrpcOptions {
    GrpcOptions {
        tls: tls.cloned(),
        connect_timeout: Duration::from_millis(500),
        keep_alive: Some(KeepAlive {
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
        }),
        ..GrpcOptions::default()
    }
}

/// The shared state of the followers.
#[derive(Debug)]
pub struct Follower {
    model: Mutex<Model>,
    authority: Arc<Authority>,
    client: GrpcClient,
}

fn ip_of(addr: &str) -> Option<IpAddr> {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.parse::<IpAddr>()
        .ok()
        .filter(|ip| !ip.is_unspecified())
}

async fn resolve(addr: &str) -> Option<IpAddr> {
    if let Some(ip) = ip_of(addr) {
        return Some(ip);
    }
    tokio::net::lookup_host(addr)
        .await
        .ok()?
        .map(|a| a.ip())
        .find(|ip| !ip.is_unspecified())
}

impl Follower {
    /// Followers of `masters` (gRPC HOST:PORT) feeding `authority`. A bad
    /// address is a config error naming `masters`.
    pub fn new(masters: &[String], domain: &str, authority: Arc<Authority>) -> Result<Arc<Self>> {
        let client =
            GrpcClient::with_options(masters.iter().cloned(), options(None)).map_err(|e| {
                Error::Config {
                    field: "masters",
                    reason: e.to_string(),
                }
            })?;
        Ok(Self::with_client(client, domain, authority))
    }

    /// [`Follower::new`], opening the watch with `token` (masters with
    /// ACLs on require one that may read the root).
    pub fn with_token(
        masters: &[String],
        domain: &str,
        authority: Arc<Authority>,
        token: &ocean_client::Secret,
    ) -> Result<Arc<Self>> {
        Self::connect(masters, domain, authority, token, None)
    }

    /// [`Follower::with_token`], over TLS when `tls` is given (masters with
    /// certificates).
    pub fn connect(
        masters: &[String],
        domain: &str,
        authority: Arc<Authority>,
        token: &ocean_client::Secret,
        tls: Option<&tonic::transport::ClientTlsConfig>,
    ) -> Result<Arc<Self>> {
        let client = GrpcClient::with_options(masters.iter().cloned(), options(tls))
            .map_err(|e| Error::Config {
                field: "masters",
                reason: e.to_string(),
            })?
            .with_token(token)
            .map_err(|e| Error::Config {
                field: "token",
                reason: e.to_string(),
            })?;
        Ok(Self::with_client(client, domain, authority))
    }

    /// Followers of the masters `client` speaks to.
    pub fn with_client(client: GrpcClient, domain: &str, authority: Arc<Authority>) -> Arc<Self> {
        Arc::new(Follower {
            model: Mutex::new(Model::new(domain)),
            authority,
            client,
        })
    }

    fn model(&self) -> std::sync::MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Recomputes the records of `dirty` owners and puts them in the zone.
    fn publish(&self, model: &Model, dirty: Vec<Owner>, version: Option<u64>) {
        if dirty.is_empty() && version.is_none() {
            return;
        }
        let records: Vec<_> = dirty
            .into_iter()
            .map(|o| {
                let r = model.records(&o);
                (o, r)
            })
            .collect();
        self.authority.update(|zone| {
            if let Some(v) = version {
                zone.serial = v as u32;
            }
            records
                .into_iter()
                .flat_map(|(owner, recs)| zone.replace(owner, recs))
                .collect()
        });
    }

    /// Applies whole versions as one zone update.
    fn apply(&self, batch: Vec<Event>) {
        let Some(version) = batch.last().map(|ev| ev.version) else {
            return;
        };
        let mut model = self.model();
        let mut dirty = BTreeSet::new();
        let mut snapshot = false;
        for ev in batch {
            snapshot |= matches!(ev.kind, Some(event::Kind::Snapshot(_)));
            dirty.extend(model.apply(ev));
        }
        self.publish(&model, dirty.into_iter().collect(), Some(version));
        if snapshot {
            self.authority.set_ready();
        }
    }

    /// Follows the watch stream forever; the client moves to the next
    /// master when one fails, and resumes from the last complete version.
    pub async fn watch(self: Arc<Self>) {
        let client: Arc<dyn Client> = Arc::new(self.client.clone());
        let mut complete = 0;
        loop {
            let req = WatchRequest {
                from_version: complete,
                // Of frameworks' keys, only the ELBs' name anything DNS
                // serves (their domain names).
                kinds: vec!["job".into(), "task".into(), "agent".into(), "kv".into()],
                namespaces: vec![crate::model::ELB_NAMESPACE.into()],
                ..Default::default()
            };
            info!(from = complete, "following the watch stream");
            let mut versions = ocean_client::follow_versions(client.clone(), req);
            while let Some(item) = versions.next().await {
                let mut batch = match item {
                    Ok(version) => version,
                    Err(error) => {
                        error!(%error, version = complete, "the masters refused the watch; serving the last known records");
                        break;
                    }
                };
                // Take whatever other whole versions already arrived: one
                // zone update for a burst of changes.
                while batch.len() < MAX_BATCH {
                    match versions.next().now_or_never() {
                        Some(Some(Ok(more))) => batch.extend(more),
                        Some(Some(Err(error))) => {
                            error!(%error, "the masters refused the watch; serving the last known records");
                            break;
                        }
                        Some(None) | None => break,
                    }
                }
                complete = batch.last().map_or(complete, |ev| ev.version);
                self.apply(batch);
            }
            tokio::time::sleep(REFUSED_PAUSE).await;
        }
    }

    /// Keeps `leader.` and `masters.` current: asks the masters for the
    /// leader every second, and for the members when the leader changed
    /// (or every 10th time).
    pub async fn poll_masters(self: Arc<Self>) {
        let client = self.client.clone().with_timeout(POLL_TIMEOUT);
        let mut last_leader = String::new();
        let mut members: Vec<IpAddr> = Vec::new();
        let mut round = 0u64;
        loop {
            if let Ok(leader) = client.leader(LeaderRequest {}).await {
                let leader_ip = resolve(&leader.grpc_addr).await;
                if (leader.grpc_addr != last_leader || round.is_multiple_of(MEMBERS_EVERY))
                    && !leader.grpc_addr.is_empty()
                {
                    if let Ok(list) = client.list_members(ListMembersRequest {}).await {
                        let mut ips = Vec::new();
                        for m in list.members {
                            if let Some(ip) = resolve(&m.grpc_addr).await {
                                ips.push(ip);
                            }
                        }
                        members = ips;
                        last_leader = leader.grpc_addr.clone();
                    }
                }
                let mut all = members.clone();
                all.extend(leader_ip);
                let mut model = self.model();
                if model.set_masters(leader_ip, all) {
                    info!(leader = %leader.grpc_addr, "leader changed");
                    self.publish(&model, vec![Owner::Masters], None);
                }
            }
            round += 1;
            tokio::time::sleep(LEADER_POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_to_ips() {
        assert_eq!(ip_of("127.0.0.1:7701"), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(ip_of("[::1]:7701"), Some("::1".parse().unwrap()));
        assert_eq!(ip_of("0.0.0.0:7701"), None);
        assert_eq!(ip_of("master-1:7701"), None);
    }
}
