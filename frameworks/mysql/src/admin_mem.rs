//! [`MemAdmin`]: an in-memory [`MysqlAdmin`] for the operator's unit
//! tests. Each instance is an [`Observed`] that the commands change the
//! way mariadbd would (as far as the operator can tell); instances can be
//! made unreachable, and every command sent is recorded.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use crate::admin::{AdminCmd, AdminError, MysqlAdmin, Observed, ReplicaObs, Result, Secrets};
use crate::grants::Account;

/// The double (see the module docs).
#[derive(Debug, Default)]
pub struct MemAdmin {
    /// Instances by `ip:port`; `None`: unreachable.
    pub nodes: Mutex<BTreeMap<String, Option<Observed>>>,
    /// Every command executed, in order.
    pub sent: Mutex<Vec<AdminCmd>>,
    /// Seed ports (`ip:port`) that listen: instances waiting for a seed.
    pub seeding: Mutex<BTreeSet<String>>,
    /// The job accounts each instance (`ip:port`) holds. Not replicated:
    /// a test that promotes another instance sets its accounts itself.
    pub accounts: Mutex<BTreeMap<String, BTreeSet<Account>>>,
}

impl MemAdmin {
    /// Sets what the instance at `addr` answers (`None`: unreachable).
    pub fn set(&self, addr: &str, obs: Option<Observed>) {
        self.nodes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(addr.to_string(), obs);
    }

    /// What the instance at `addr` holds now.
    pub fn get(&self, addr: &str) -> Option<Observed> {
        self.nodes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(addr)
            .cloned()
            .flatten()
    }
}

fn gone(addr: &str) -> AdminError {
    AdminError {
        addr: addr.to_string(),
        reason: "unreachable".into(),
    }
}

#[async_trait::async_trait]
impl MysqlAdmin for MemAdmin {
    async fn awaits_seed(&self, addr: &str) -> bool {
        self.seeding
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(addr)
    }

    async fn job_accounts(&self, addr: &str, _: &Secrets) -> Result<BTreeSet<Account>> {
        self.get(addr).ok_or_else(|| gone(addr))?;
        Ok(self
            .accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(addr)
            .cloned()
            .unwrap_or_default())
    }

    async fn observe(&self, addr: &str, _: &Secrets) -> Result<Observed> {
        self.get(addr).ok_or_else(|| gone(addr))
    }

    async fn execute(&self, cmd: &AdminCmd, _: &Secrets) -> Result<()> {
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        let Some(Some(o)) = nodes.get_mut(cmd.on()) else {
            return Err(gone(cmd.on()));
        };
        if let AdminCmd::Condemn { on } = cmd {
            // Shut down: it answers no more.
            nodes.insert(on.clone(), None);
            drop(nodes);
            self.sent
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(cmd.clone());
            return Ok(());
        }
        match cmd {
            AdminCmd::Promote { alone, .. } => {
                o.replica = None;
                o.read_only = false;
                o.semi_sync_enabled = !alone;
            }
            AdminCmd::Follow { host, port, .. } => {
                o.read_only = true;
                o.semi_sync_enabled = false;
                o.replica = Some(ReplicaObs {
                    master_host: host.clone(),
                    master_port: *port,
                    io_running: true,
                    sql_running: true,
                    gtid_io_pos: o.gtid_current_pos.clone(),
                    ..Default::default()
                });
            }
            AdminCmd::StopIo { .. } => {
                if let Some(r) = o.replica.as_mut() {
                    r.io_running = false;
                }
            }
            AdminCmd::Demote { .. } => o.read_only = true,
            AdminCmd::EnsureApp { .. } => o.app_ready = true,
            AdminCmd::SemiSync { enabled, .. } => o.semi_sync_enabled = *enabled,
            AdminCmd::Condemn { .. } => {}
            AdminCmd::Grant { on, user, host, .. } | AdminCmd::Revoke { on, user, host } => {
                let mut accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
                let held = accounts.entry(on.clone()).or_default();
                let a = Account {
                    user: user.clone(),
                    host: host.clone(),
                };
                if matches!(cmd, AdminCmd::Grant { .. }) {
                    held.insert(a);
                } else {
                    held.remove(&a);
                }
            }
        }
        drop(nodes);
        self.sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(cmd.clone());
        Ok(())
    }
}
