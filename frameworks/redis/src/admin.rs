//! [`RedisAdmin`]: the operator's one I/O boundary to the Redis nodes
//! (observe a node, send it an [`AdminCmd`]). [`RealAdmin`] speaks the
//! Redis protocol through the `redis` crate; [`crate::admin_mem::MemAdmin`]
//! is the in-memory double for the operator's unit tests.

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::sync::Mutex;

use crate::decide::AdminCmd;
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
    /// Sends `cmd` to its node.
    async fn execute(&self, cmd: &AdminCmd) -> Result<()>;
}

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

    async fn conn(&self, addr: &str) -> Result<MultiplexedConnection> {
        if let Some(c) = self.conns.lock().await.get(addr) {
            return Ok(c.clone());
        }
        let err = |reason: String| AdminError {
            addr: addr.to_string(),
            reason,
        };
        let client =
            redis::Client::open(format!("redis://{addr}/")).map_err(|e| err(e.to_string()))?;
        let c = tokio::time::timeout(self.timeout, client.get_multiplexed_async_connection())
            .await
            .map_err(|_| err("connect timed out".into()))?
            .map_err(|e| err(e.to_string()))?;
        self.conns.lock().await.insert(addr.to_string(), c.clone());
        Ok(c)
    }

    async fn query<T: redis::FromRedisValue>(&self, addr: &str, cmd: redis::Cmd) -> Result<T> {
        let mut c = self.conn(addr).await?;
        let out = tokio::time::timeout(self.timeout, cmd.query_async::<T>(&mut c)).await;
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
        let nodes: String = self.query(addr, cluster(&["NODES"])).await?;
        let info: String = self
            .query(
                addr,
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
        };
        self.query::<redis::Value>(cmd.on(), c).await.map(|_| ())
    }
}
