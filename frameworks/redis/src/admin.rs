//! [`RedisAdmin`]: the operator's one I/O boundary to the Redis nodes
//! (observe a node, send it an [`AdminCmd`]). [`RealAdmin`] speaks the
//! Redis protocol through the `redis` crate; [`crate::admin_mem::MemAdmin`]
//! is the in-memory double for the operator's unit tests.

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::sync::Mutex;

use crate::decide::AdminCmd;
use crate::reshard::{slots_of, SlotLoad};
use crate::topology::{apply_info, parse_nodes, Observed};

/// A node could not be observed or commanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("redis node {addr}: {reason}")]
pub struct AdminError {
    /// The node's `ip:port`.
    pub addr: String,
    /// What went wrong.
    pub reason: String,
}

/// Result of the admin calls.
pub type Result<T> = std::result::Result<T, AdminError>;

/// Observes and commands Redis nodes.
#[async_trait::async_trait]
pub trait RedisAdmin: Send + Sync + std::fmt::Debug {
    /// What the node at `addr` (`ip:port`) knows and holds.
    async fn observe(&self, addr: &str) -> Result<Observed>;
    /// [`RedisAdmin::observe`], each call bounded by `timeout` instead of
    /// the admin's own limit (a node that did not answer last round).
    async fn observe_within(&self, addr: &str, _timeout: Duration) -> Result<Observed> {
        self.observe(addr).await
    }
    /// Sends `cmd` to its node.
    async fn execute(&self, cmd: &AdminCmd) -> Result<()>;
    /// Keys and estimated bytes of every slot in `ranges` held by the node
    /// at `addr` (a replica's copy serves: the heavy reading stays off the
    /// primary).
    async fn slot_loads(&self, addr: &str, ranges: &[(u16, u16)]) -> Result<Vec<SlotLoad>>;
    /// Moves slots and their keys from one primary to another; returns
    /// the keys moved. Re-entrant: a move interrupted at any step is
    /// finished by sending it again.
    async fn move_slots(&self, m: &SlotMigration) -> Result<u64>;
}

/// Slots moving from the primary at `from` to the primary at `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotMigration {
    /// The hash slots.
    pub slots: Vec<u16>,
    /// The serving primary's `ip:port`.
    pub from: String,
    /// Its node id.
    pub from_id: String,
    /// The receiving primary's `ip:port`.
    pub to: String,
    /// Its node id.
    pub to_id: String,
    /// The other primaries (`ip:port`), told the new owner at once rather
    /// than by gossip, so clients they redirect go straight there.
    pub others: Vec<String>,
}

/// Keys per `MIGRATE` call: large enough to amortise the round trip,
/// small enough that one call never blocks the primary for long.
pub const MIGRATE_BATCH: usize = 256;

/// How long one `MIGRATE` may take (ms): Redis' own timeout for the
/// transfer, well under the cluster node timeout's multiples.
pub const MIGRATE_TIMEOUT_MS: u64 = 5_000;

/// Keys sampled per slot for its size.
pub const SAMPLES_PER_SLOT: usize = 4;

/// Commands per pipeline while sampling slots.
const PIPELINE: usize = 1_024;

/// The real thing: one multiplexed connection per node, dropped on error;
/// every call bounded by `timeout` (a hung node must not stall the
/// operator's other shards).
#[derive(Debug)]
pub struct RealAdmin {
    timeout: Duration,
    conns: Mutex<HashMap<String, MultiplexedConnection>>,
}

impl RealAdmin {
    /// A client whose calls each take at most `timeout`.
    pub fn new(timeout: Duration) -> Self {
        RealAdmin {
            timeout,
            conns: Mutex::new(HashMap::new()),
        }
    }

    /// A cached connection to `addr`, or a new one made within `timeout`
    /// (a frozen process still completes the TCP handshake, so connecting
    /// hangs in the client's own setup commands: it needs the same bound
    /// as the call it is for).
    async fn conn(&self, addr: &str, timeout: Duration) -> Result<MultiplexedConnection> {
        if let Some(c) = self.conns.lock().await.get(addr) {
            return Ok(c.clone());
        }
        let err = |reason: String| AdminError {
            addr: addr.to_string(),
            reason,
        };
        let client =
            redis::Client::open(format!("redis://{addr}/")).map_err(|e| err(e.to_string()))?;
        let c = tokio::time::timeout(timeout, client.get_multiplexed_async_connection())
            .await
            .map_err(|_| err("connect timed out".into()))?
            .map_err(|e| err(e.to_string()))?;
        self.conns.lock().await.insert(addr.to_string(), c.clone());
        Ok(c)
    }

    async fn query<T: redis::FromRedisValue>(&self, addr: &str, cmd: redis::Cmd) -> Result<T> {
        self.query_within(addr, self.timeout, cmd).await
    }

    async fn query_within<T: redis::FromRedisValue>(
        &self,
        addr: &str,
        timeout: Duration,
        cmd: redis::Cmd,
    ) -> Result<T> {
        let mut c = self.conn(addr, timeout).await?;
        let out = tokio::time::timeout(timeout, cmd.query_async::<T>(&mut c)).await;
        let reason = match out {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => {
                // An error reply leaves the connection usable; anything
                // else (I/O) may not.
                if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() {
                    self.conns.lock().await.remove(addr);
                }
                e.to_string()
            }
            Err(_) => {
                self.conns.lock().await.remove(addr);
                "timed out".to_string()
            }
        };
        Err(AdminError {
            addr: addr.to_string(),
            reason,
        })
    }

    async fn pipeline<T: redis::FromRedisValue>(
        &self,
        addr: &str,
        p: redis::Pipeline,
    ) -> Result<T> {
        self.pipeline_within(addr, self.timeout * 4, p).await
    }

    async fn pipeline_within<T: redis::FromRedisValue>(
        &self,
        addr: &str,
        timeout: Duration,
        p: redis::Pipeline,
    ) -> Result<T> {
        let mut c = self.conn(addr, self.timeout).await?;
        let err = |reason: String| AdminError {
            addr: addr.to_string(),
            reason,
        };
        match tokio::time::timeout(timeout, p.query_async::<T>(&mut c)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                self.conns.lock().await.remove(addr);
                Err(err(e.to_string()))
            }
            Err(_) => {
                self.conns.lock().await.remove(addr);
                Err(err("timed out".into()))
            }
        }
    }
}

fn cluster(args: &[&str]) -> redis::Cmd {
    let mut c = redis::cmd("CLUSTER");
    for a in args {
        c.arg(*a);
    }
    c
}

#[async_trait::async_trait]
impl RedisAdmin for RealAdmin {
    async fn observe(&self, addr: &str) -> Result<Observed> {
        self.observe_within(addr, self.timeout).await
    }

    async fn observe_within(&self, addr: &str, timeout: Duration) -> Result<Observed> {
        let nodes: String = self
            .query_within(addr, timeout, cluster(&["NODES"]))
            .await?;
        let info: String = self
            .query_within(
                addr,
                timeout,
                redis::cmd("INFO")
                    .arg("replication")
                    .arg("memory")
                    .arg("keyspace")
                    .clone(),
            )
            .await?;
        let mut obs = Observed {
            nodes: parse_nodes(&nodes),
            ..Default::default()
        };
        apply_info(&mut obs, &info);
        Ok(obs)
    }

    async fn execute(&self, cmd: &AdminCmd) -> Result<()> {
        let c = match cmd {
            AdminCmd::Meet { ip, port, bus, .. } => {
                cluster(&["MEET", ip, &port.to_string(), &bus.to_string()])
            }
            AdminCmd::AddSlots { ranges, .. } => {
                let mut c = cluster(&["ADDSLOTSRANGE"]);
                for (lo, hi) in ranges {
                    c.arg(*lo).arg(*hi);
                }
                c
            }
            AdminCmd::Replicate { primary, .. } => cluster(&["REPLICATE", primary]),
            AdminCmd::FailoverForce { .. } => cluster(&["FAILOVER", "FORCE"]),
            AdminCmd::FailoverTakeover { .. } => cluster(&["FAILOVER", "TAKEOVER"]),
            AdminCmd::Forget { id, .. } => cluster(&["FORGET", id]),
            AdminCmd::Failover { .. } => cluster(&["FAILOVER"]),
            AdminCmd::ResetHard { .. } => cluster(&["RESET", "HARD"]),
            AdminCmd::SetSlotStable { slot, .. } => {
                cluster(&["SETSLOT", &slot.to_string(), "STABLE"])
            }
        };
        self.query::<redis::Value>(cmd.on(), c).await.map(|_| ())
    }

    async fn slot_loads(&self, addr: &str, ranges: &[(u16, u16)]) -> Result<Vec<SlotLoad>> {
        // Key commands on a replica need READONLY on the connection.
        self.query::<()>(addr, redis::cmd("READONLY")).await?;
        let slots: Vec<u16> = slots_of(ranges).collect();
        let mut out = Vec::with_capacity(slots.len());
        for chunk in slots.chunks(PIPELINE) {
            let mut p = redis::pipe();
            for s in chunk {
                p.cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(*s);
            }
            let counts: Vec<u64> = self.pipeline(addr, p).await?;
            out.extend(chunk.iter().zip(counts).map(|(&slot, keys)| SlotLoad {
                slot,
                keys,
                bytes: 0,
            }));
        }
        let full: Vec<usize> = (0..out.len()).filter(|&i| out[i].keys > 0).collect();
        for chunk in full.chunks(PIPELINE / SAMPLES_PER_SLOT) {
            let mut p = redis::pipe();
            for &i in chunk {
                p.cmd("CLUSTER")
                    .arg("GETKEYSINSLOT")
                    .arg(out[i].slot)
                    .arg(SAMPLES_PER_SLOT);
            }
            let keys: Vec<Vec<Vec<u8>>> = self.pipeline(addr, p).await?;
            if keys.iter().all(Vec::is_empty) {
                continue;
            }
            let mut p = redis::pipe();
            for k in keys.iter().flatten() {
                p.cmd("MEMORY").arg("USAGE").arg(k.as_slice());
            }
            let sizes: Vec<Option<u64>> = self.pipeline(addr, p).await?;
            let mut sizes = sizes.into_iter();
            for (&i, sample) in chunk.iter().zip(&keys) {
                let got: Vec<u64> = sizes.by_ref().take(sample.len()).flatten().collect();
                if !got.is_empty() {
                    let avg = got.iter().sum::<u64>() / got.len() as u64;
                    out[i].bytes = avg * out[i].keys;
                }
            }
        }
        Ok(out)
    }

    async fn move_slots(&self, m: &SlotMigration) -> Result<u64> {
        // Each SETSLOT makes Redis save (and fsync) its cluster config
        // before its next sleep; pipelined, a batch of slots costs one
        // save per node instead of one per slot.
        let setslots = |state: &str, id: &str| {
            let mut p = redis::pipe();
            for s in &m.slots {
                p.cmd("CLUSTER")
                    .arg("SETSLOT")
                    .arg(*s)
                    .arg(state)
                    .arg(id)
                    .ignore();
            }
            p
        };
        self.pipeline::<()>(&m.to, setslots("IMPORTING", &m.from_id))
            .await?;
        self.pipeline::<()>(&m.from, setslots("MIGRATING", &m.to_id))
            .await?;
        let (ip, port) = m.to.rsplit_once(':').unwrap_or((m.to.as_str(), "0"));
        let mut moved = 0u64;
        loop {
            let mut get = redis::pipe();
            for s in &m.slots {
                get.cmd("CLUSTER")
                    .arg("GETKEYSINSLOT")
                    .arg(*s)
                    .arg(MIGRATE_BATCH);
            }
            let keys: Vec<Vec<Vec<u8>>> = self.pipeline(&m.from, get).await?;
            if keys.iter().all(Vec::is_empty) {
                break;
            }
            // One MIGRATE per slot (Redis refuses keys of several slots in
            // one), all of them pipelined.
            let mut mig = redis::pipe();
            let mut calls = 0u32;
            for slot_keys in keys.iter().filter(|k| !k.is_empty()) {
                // REPLACE: a move resumed after an interruption may find
                // some keys already copied; the source's copy is the live
                // one.
                let c = mig
                    .cmd("MIGRATE")
                    .arg(ip)
                    .arg(port)
                    .arg("")
                    .arg(0)
                    .arg(MIGRATE_TIMEOUT_MS)
                    .arg("REPLACE")
                    .arg("KEYS");
                for k in slot_keys {
                    c.arg(k.as_slice());
                }
                c.ignore();
                calls += 1;
                moved += slot_keys.len() as u64;
            }
            let wait = Duration::from_millis(MIGRATE_TIMEOUT_MS) * calls.min(8) + self.timeout;
            self.pipeline_within::<()>(&m.from, wait, mig).await?;
        }
        // The receiver first: once it owns the slots, the source's
        // redirections lead somewhere that answers.
        self.pipeline::<()>(&m.to, setslots("NODE", &m.to_id))
            .await?;
        self.pipeline::<()>(&m.from, setslots("NODE", &m.to_id))
            .await?;
        for other in &m.others {
            // Gossip tells them anyway; this only saves a redirection.
            let _ = self.pipeline::<()>(other, setslots("NODE", &m.to_id)).await;
        }
        Ok(moved)
    }
}
