//! [`LocalKernel`]: the service's kernel without raft. Commands are applied
//! straight to an in-memory [`ClusterState`] and published on a [`Feed`],
//! in order, under one lock: what a single master with a perfect log would
//! do. For unit tests and simulations of the service layer, the leader's
//! controllers and frameworks; never a replacement for the real master.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use ocean_proto::internal::{command, Command};

use super::{Kernel, ReadOptions};
use crate::error::{Error, Result};
use crate::kernel::feed::Feed;
use crate::kernel::state::{Applied, ClusterState};

/// An in-memory kernel (see the module docs). Clones share the state.
#[derive(Debug, Clone)]
pub struct LocalKernel {
    state: Arc<RwLock<ClusterState>>,
    feed: Arc<Feed>,
    /// The "leader clock" leases are stamped with; 0 = the machine's.
    now_ms: Arc<AtomicU64>,
    /// Whether the service checks tokens' rights.
    acl: Arc<std::sync::atomic::AtomicBool>,
}

impl Default for LocalKernel {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalKernel {
    /// An empty state at version 0.
    pub fn new() -> Self {
        LocalKernel {
            state: Arc::new(RwLock::new(ClusterState::default())),
            feed: Feed::new(100_000, 0),
            now_ms: Arc::new(AtomicU64::new(0)),
            acl: Arc::default(),
        }
    }

    /// Turns access control on or off (tests of the service's checks).
    pub fn set_acl_enabled(&self, on: bool) {
        self.acl.store(on, Ordering::SeqCst);
    }

    /// The state version.
    pub fn version(&self) -> u64 {
        self.read(|st| st.version)
    }

    /// The change feed of every applied command.
    pub fn feed(&self) -> &Arc<Feed> {
        &self.feed
    }

    /// The shared state.
    pub fn state(&self) -> &Arc<RwLock<ClusterState>> {
        &self.state
    }

    /// Sets the clock leases are judged by (tests drive time by hand).
    pub fn set_now_ms(&self, ms: u64) {
        self.now_ms.store(ms, Ordering::SeqCst);
    }

    fn now(&self) -> u64 {
        match self.now_ms.load(Ordering::SeqCst) {
            0 => crate::kernel::now_ms(),
            ms => ms,
        }
    }

    /// Applies `cmd` as the leader would once it is committed.
    pub fn apply(&self, mut cmd: Command) -> Applied {
        if let Some(command::Kind::Lease(l)) = &mut cmd.kind {
            l.now_ms = self.now();
        }
        let mut st = self.state.write().unwrap_or_else(|p| p.into_inner());
        let before = st.version;
        let applied = st.apply(&cmd);
        if applied.version > before && !applied.changes.is_empty() {
            self.feed.publish(vec![(
                applied.version,
                Arc::new(applied.changes.clone().into()),
            )]);
        }
        applied
    }
}

impl Kernel for LocalKernel {
    fn read<R>(&self, f: impl FnOnce(&ClusterState) -> R) -> R {
        let st = self.state.read().unwrap_or_else(|p| p.into_inner());
        f(&st)
    }

    async fn propose(&self, cmd: Command) -> Result<Applied> {
        Ok(self.apply(cmd))
    }

    fn acl_enabled(&self) -> bool {
        self.acl.load(Ordering::SeqCst)
    }

    async fn wait_read(&self, opts: ReadOptions) -> Result<()> {
        match opts.min_version {
            Some(v) if v > self.version() => Err(Error::NotCommitted(format!(
                "version {v} is ahead of this state ({})",
                self.version()
            ))),
            _ => Ok(()),
        }
    }

    fn dns_domain(&self) -> &str {
        "ocean"
    }

    fn watch_source(&self) -> (Arc<Feed>, Arc<RwLock<ClusterState>>) {
        (self.feed.clone(), self.state.clone())
    }
}
