//! Following the masters: the watch stream (`OceanApi.Watch`) for jobs,
//! tasks and agents, and a light poll of `OceanApi.Leader` (plus the
//! leader's `GET /v1/members` when it changes) for `leader.` and `masters.`.
//!
//! ```text
//! masters[i] --Watch(from = last complete version)--> events --> Model::apply
//!      ^  stream ends or fails: next master, same version      |  dirty owners
//!      +-------------------------------------------------------+--> Zone::replace --> cache invalidation
//! ```
//!
//! Nothing is cleared while no master answers: the zone keeps the last
//! known records (no NXDOMAIN storm at start-up or failover). A snapshot
//! (first connection, or too far behind) replaces the model wholesale and
//! is applied as one update.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use ocean_proto::v1::ocean_api_client::OceanApiClient;
use ocean_proto::v1::{event, Event, LeaderRequest, WatchRequest};
use tonic::transport::{Channel, Endpoint};
use tracing::{debug, info, warn};

use crate::model::{Model, Owner};
use crate::query::Authority;

/// Events applied as one zone update at most (a snapshot of a big cluster
/// arrives as one event anyway).
const MAX_BATCH: usize = 10_000;

/// How often the leader is asked for.
const LEADER_POLL: Duration = Duration::from_secs(1);

/// The shared state of the followers.
#[derive(Debug)]
pub struct Follower {
    model: Mutex<Model>,
    authority: Arc<Authority>,
    channels: Vec<(String, Channel)>,
}

/// Where a watch resumes: everything up to `complete` was received.
#[derive(Debug, Default, Clone, Copy)]
struct Position {
    /// Every change of every version up to this one was applied.
    complete: u64,
    /// The newest version seen (its changes may be incomplete: one version
    /// can hold many changes).
    seen: u64,
}

impl Position {
    fn advance(&mut self, ev: &Event) {
        if matches!(ev.kind, Some(event::Kind::Snapshot(_))) {
            self.complete = ev.version;
            self.seen = ev.version;
        } else if ev.version > self.seen {
            self.complete = self.seen;
            self.seen = ev.version;
        }
    }
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
    /// Followers of `masters` (gRPC HOST:PORT) feeding `authority`.
    pub fn new(masters: &[String], domain: &str, authority: Arc<Authority>) -> Arc<Self> {
        let channels = masters
            .iter()
            .filter_map(|m| {
                let e = Endpoint::from_shared(format!("http://{m}")).ok()?;
                let e = e
                    .connect_timeout(Duration::from_millis(500))
                    .tcp_nodelay(true)
                    .http2_keep_alive_interval(Duration::from_secs(1))
                    .keep_alive_timeout(Duration::from_secs(2))
                    .keep_alive_while_idle(true);
                Some((m.clone(), e.connect_lazy()))
            })
            .collect();
        Arc::new(Follower {
            model: Mutex::new(Model::new(domain)),
            authority,
            channels,
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

    fn apply(&self, batch: Vec<Event>, pos: &mut Position) {
        let mut model = self.model();
        let mut dirty = BTreeSet::new();
        let mut snapshot = false;
        for ev in batch {
            pos.advance(&ev);
            snapshot |= matches!(ev.kind, Some(event::Kind::Snapshot(_)));
            dirty.extend(model.apply(ev));
        }
        self.publish(&model, dirty.into_iter().collect(), Some(pos.seen));
        if snapshot {
            self.authority.set_ready();
        }
    }

    /// Follows the watch stream forever, moving to the next master when
    /// one fails.
    pub async fn watch(self: Arc<Self>) {
        let mut pos = Position::default();
        let mut i = 0usize;
        let mut failures = 0u32;
        loop {
            let (addr, channel) = &self.channels[i % self.channels.len()];
            i += 1;
            match self.watch_one(channel.clone(), &mut pos).await {
                Ok(()) => debug!(master = %addr, "watch stream ended"),
                Err(error) => debug!(master = %addr, %error, "watch failed"),
            }
            failures += 1;
            if failures.is_multiple_of(self.channels.len() as u32 * 10) {
                warn!(
                    version = pos.complete,
                    "no master answers the watch; serving the last known records"
                );
            }
            // A short pause, longer only once every master failed in turn.
            let pause = if i.is_multiple_of(self.channels.len()) {
                200
            } else {
                20
            };
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }

    async fn watch_one(&self, channel: Channel, pos: &mut Position) -> Result<(), tonic::Status> {
        let mut client = OceanApiClient::new(channel).max_decoding_message_size(usize::MAX);
        let mut stream = client
            .watch(WatchRequest {
                from_version: pos.complete,
                // Frameworks' keys name nothing DNS serves.
                kinds: vec!["job".into(), "task".into(), "agent".into()],
                ..Default::default()
            })
            .await?
            .into_inner();
        info!(from = pos.complete, "following the watch stream");
        while let Some(ev) = stream.message().await? {
            let mut batch = vec![ev];
            let mut end = None;
            // Take whatever else already arrived: one zone update for a
            // burst of changes.
            while batch.len() < MAX_BATCH {
                match stream.message().now_or_never() {
                    Some(Ok(Some(ev))) => batch.push(ev),
                    Some(Ok(None)) => {
                        end = Some(Ok(()));
                        break;
                    }
                    Some(Err(e)) => {
                        end = Some(Err(e));
                        break;
                    }
                    None => break,
                }
            }
            self.apply(batch, pos);
            if let Some(end) = end {
                return end;
            }
        }
        Ok(())
    }

    /// Keeps `leader.` and `masters.` current: asks any master for the
    /// leader every second, and the leader for the members when the leader
    /// changed (or every 10th time).
    pub async fn poll_masters(self: Arc<Self>) {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .ok();
        let mut last_leader = String::new();
        let mut members: Vec<IpAddr> = Vec::new();
        let mut round = 0u64;
        let mut start = 0usize;
        loop {
            let mut found = None;
            for k in 0..self.channels.len() {
                let idx = (start + k) % self.channels.len();
                let mut client = OceanApiClient::new(self.channels[idx].1.clone());
                let call = client.leader(LeaderRequest {});
                if let Ok(Ok(resp)) = tokio::time::timeout(Duration::from_secs(1), call).await {
                    found = Some(resp.into_inner());
                    start = idx;
                    break;
                }
            }
            if let Some(leader) = found {
                let leader_ip = resolve(&leader.grpc_addr).await;
                if (leader.http_addr != last_leader || round.is_multiple_of(10))
                    && !leader.http_addr.is_empty()
                {
                    if let Some(list) = fetch_members(http.as_ref(), &leader.http_addr).await {
                        let mut ips = Vec::new();
                        for m in list {
                            if let Some(ip) = resolve(&m).await {
                                ips.push(ip);
                            }
                        }
                        members = ips;
                        last_leader = leader.http_addr.clone();
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

/// The gRPC addresses of every master, from the leader's REST API.
async fn fetch_members(http: Option<&reqwest::Client>, leader_http: &str) -> Option<Vec<String>> {
    let url = format!("http://{leader_http}/v1/members");
    let body: serde_json::Value = http?.get(url).send().await.ok()?.json().await.ok()?;
    let list = body["members"].as_array()?;
    Some(
        list.iter()
            .filter_map(|m| m["grpc_addr"].as_str().map(str::to_string))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_position_is_the_last_complete_version() {
        let mut p = Position::default();
        let ev = |v: u64, snap: bool| Event {
            version: v,
            kind: Some(if snap {
                event::Kind::Snapshot(Default::default())
            } else {
                event::Kind::JobDeleted("x".into())
            }),
            last_of_version: false,
        };
        p.advance(&ev(10, true));
        assert_eq!((p.complete, p.seen), (10, 10));
        p.advance(&ev(11, false));
        p.advance(&ev(11, false));
        // Version 11 may have more changes still to come.
        assert_eq!(p.complete, 10);
        p.advance(&ev(12, false));
        assert_eq!((p.complete, p.seen), (11, 12));
    }

    #[test]
    fn addresses_to_ips() {
        assert_eq!(ip_of("127.0.0.1:7701"), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(ip_of("[::1]:7701"), Some("::1".parse().unwrap()));
        assert_eq!(ip_of("0.0.0.0:7701"), None);
        assert_eq!(ip_of("master-1:7701"), None);
    }
}
