//! [`MysqlAdmin`]: the operator's one I/O boundary to the mariadbd
//! instances (observe one, send it an [`AdminCmd`]). [`RealAdmin`] speaks
//! the MySQL protocol through `mysql_async`;
//! [`crate::admin_mem::MemAdmin`] is the in-memory double for unit tests.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Row};
use tokio::sync::Mutex;

use crate::grants::{Account, JobCredential, JOB_USER_PREFIX};
use crate::jobs::{ADMIN_USER, APP_SCHEMA, APP_USER, REBUILD_MARK, REPL_USER};

/// An instance could not be observed or commanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mariadb {addr}: {reason}")]
pub struct AdminError {
    /// The instance's `ip:port`.
    pub addr: String,
    /// What went wrong.
    pub reason: String,
}

/// Result of the admin calls.
pub type Result<T> = std::result::Result<T, AdminError>;

/// The secrets of one database (generated at creation, kept in its
/// record). Its `Debug` prints `***` for each password, so a record
/// logged with `?` or an error formatting one never shows them.
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Secrets {
    /// `ocean_admin`'s password (the operator's user).
    pub admin_password: String,
    /// `ocean_repl`'s password.
    pub repl_password: String,
    /// The application user's password.
    pub app_password: String,
    /// The users of the jobs allowed to use the database, by job id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub jobs: BTreeMap<String, JobCredential>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = format_args!("***");
        f.debug_struct("Secrets")
            .field("admin_password", &redacted)
            .field("repl_password", &redacted)
            .field("app_password", &redacted)
            .field("jobs", &self.jobs)
            .finish()
    }
}

/// What a standby says of its replication (`SHOW SLAVE STATUS`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaObs {
    /// `Master_Host`.
    pub master_host: String,
    /// `Master_Port`.
    pub master_port: u16,
    /// `Slave_IO_Running` is `Yes`.
    pub io_running: bool,
    /// `Slave_SQL_Running` is `Yes`.
    pub sql_running: bool,
    /// `Gtid_IO_Pos`: what it has received.
    pub gtid_io_pos: String,
    /// `Seconds_Behind_Master`.
    pub lag_seconds: Option<u64>,
    /// `Last_IO_Error` or `Last_SQL_Error`, when either is set.
    pub last_error: String,
    /// `Last_IO_Errno` (1236: the primary cannot serve its position, a
    /// diverged history).
    pub last_io_errno: u32,
    /// `Last_SQL_Errno`: the SQL thread stopped on this error (its data
    /// differs from the primary's).
    pub last_sql_errno: u32,
}

/// What an instance answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// `@@read_only`.
    pub read_only: bool,
    /// `@@gtid_current_pos`: everything it has applied or written.
    pub gtid_current_pos: String,
    /// `@@gtid_binlog_pos`.
    pub gtid_binlog_pos: String,
    /// Its replication, when configured.
    pub replica: Option<ReplicaObs>,
    /// `@@rpl_semi_sync_master_enabled`: its commits wait for a
    /// standby's acknowledgement.
    pub semi_sync_enabled: bool,
    /// `Rpl_semi_sync_master_clients`: standbys acknowledging to it.
    pub semi_sync_clients: u32,
    /// `Rpl_semi_sync_master_wait_sessions`: commits waiting for an
    /// acknowledgement now.
    pub semi_sync_waiting: u32,
    /// The application user exists.
    pub app_ready: bool,
}

/// An admin command, sent to the instance at `on` (`ip:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminCmd {
    /// Stop replicating and take writes (`STOP SLAVE; RESET SLAVE ALL;
    /// SET GLOBAL read_only=0`). `alone`: a one-instance database, whose
    /// primary has nobody to acknowledge (semi-sync off).
    Promote { on: String, alone: bool },
    /// Replicate from `host:port` by GTID, read-only.
    Follow { on: String, host: String, port: u16 },
    /// `STOP SLAVE IO_THREAD`: the fence of a failover; the old primary
    /// gets no acknowledgement from this standby any more.
    StopIo { on: String },
    /// `SET GLOBAL read_only=1` on a writable instance that is not the
    /// primary.
    Demote { on: String },
    /// The application's schema and user (through the primary: binlogged,
    /// so the standbys get them too).
    EnsureApp { on: String },
    /// Semi-sync's primary side on or off on the primary: on while the
    /// database has standbys, off when it is scaled to one instance
    /// (nobody could acknowledge).
    SemiSync { on: String, enabled: bool },
    /// Condemns the instance's datadir and shuts it down: the unlogged
    /// schema [`crate::jobs::REBUILD_MARK`], then `SHUTDOWN`; its next task
    /// waits for a seed (see [`crate::seed`]).
    Condemn { on: String },
    /// `user@host` with all rights on the application's schema, its
    /// password the one `job` has in the secrets (through the primary:
    /// binlogged, so the standbys get it too).
    Grant {
        on: String,
        job: String,
        user: String,
        host: String,
    },
    /// `DROP USER user@host` (through the primary, like a grant).
    Revoke {
        on: String,
        user: String,
        host: String,
    },
}

impl AdminCmd {
    /// The instance it is sent to.
    pub fn on(&self) -> &str {
        match self {
            AdminCmd::Promote { on, .. }
            | AdminCmd::Follow { on, .. }
            | AdminCmd::StopIo { on }
            | AdminCmd::Demote { on }
            | AdminCmd::EnsureApp { on }
            | AdminCmd::SemiSync { on, .. }
            | AdminCmd::Condemn { on }
            | AdminCmd::Grant { on, .. }
            | AdminCmd::Revoke { on, .. } => on,
        }
    }
}

/// Observes and commands mariadbd instances.
#[async_trait::async_trait]
pub trait MysqlAdmin: Send + Sync + std::fmt::Debug {
    /// What the instance at `addr` (`ip:port`) holds and does.
    async fn observe(&self, addr: &str, secrets: &Secrets) -> Result<Observed>;
    /// Sends `cmd` to its instance.
    async fn execute(&self, cmd: &AdminCmd, secrets: &Secrets) -> Result<()>;
    /// Whether something listens at `addr` (an instance's seed port: it
    /// waits for a seed).
    async fn awaits_seed(&self, addr: &str) -> bool;
    /// The jobs' accounts (users starting with
    /// [`crate::grants::JOB_USER_PREFIX`]) the instance at `addr` holds.
    async fn job_accounts(&self, addr: &str, secrets: &Secrets) -> Result<BTreeSet<Account>>;
}

/// The real thing: one connection per instance, dropped on error; every
/// call bounded by `timeout` (a hung instance must not stall the others).
#[derive(Debug)]
pub struct RealAdmin {
    timeout: Duration,
    conns: Mutex<HashMap<String, Conn>>,
}

/// Quotes a string literal for SQL (passwords and hosts are generated or
/// come from the masters; quoting keeps them from being anything else).
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn yes(row: &Row, col: &str) -> bool {
    row.get_opt::<String, _>(col)
        .and_then(|r| r.ok())
        .is_some_and(|v| v == "Yes")
}

fn text(row: &Row, col: &str) -> String {
    row.get_opt::<Option<String>, _>(col)
        .and_then(|r| r.ok())
        .flatten()
        .unwrap_or_default()
}

impl RealAdmin {
    /// A client whose calls each take at most `timeout`.
    pub fn new(timeout: Duration) -> Self {
        RealAdmin {
            timeout,
            conns: Mutex::new(HashMap::new()),
        }
    }

    fn err(addr: &str, reason: impl Into<String>) -> AdminError {
        AdminError {
            addr: addr.to_string(),
            reason: reason.into(),
        }
    }

    async fn conn(&self, addr: &str, secrets: &Secrets) -> Result<Conn> {
        if let Some(c) = self.conns.lock().await.remove(addr) {
            return Ok(c);
        }
        let (ip, port) = addr
            .rsplit_once(':')
            .and_then(|(ip, p)| p.parse::<u16>().ok().map(|p| (ip, p)))
            .ok_or_else(|| Self::err(addr, "not ip:port"))?;
        let opts = OptsBuilder::default()
            .ip_or_hostname(ip)
            .tcp_port(port)
            .user(Some(ADMIN_USER))
            .pass(Some(secrets.admin_password.clone()))
            .prefer_socket(false)
            .stmt_cache_size(0);
        tokio::time::timeout(self.timeout, Conn::new(opts))
            .await
            .map_err(|_| Self::err(addr, "connect timed out"))?
            .map_err(|e| Self::err(addr, e.to_string()))
    }

    /// Runs `f` on a connection within the timeout; the connection is kept
    /// for the next call only when all went well.
    async fn with<T, F>(&self, addr: &str, secrets: &Secrets, f: F) -> Result<T>
    where
        F: for<'c> FnOnce(&'c mut Conn) -> futures::future::BoxFuture<'c, mysql_async::Result<T>>,
    {
        self.with_timeout(addr, secrets, self.timeout, f).await
    }

    async fn with_timeout<T, F>(
        &self,
        addr: &str,
        secrets: &Secrets,
        timeout: Duration,
        f: F,
    ) -> Result<T>
    where
        F: for<'c> FnOnce(&'c mut Conn) -> futures::future::BoxFuture<'c, mysql_async::Result<T>>,
    {
        let mut c = self.conn(addr, secrets).await?;
        match tokio::time::timeout(timeout, f(&mut c)).await {
            Ok(Ok(v)) => {
                self.conns.lock().await.insert(addr.to_string(), c);
                Ok(v)
            }
            Ok(Err(e)) => Err(Self::err(addr, e.to_string())),
            Err(_) => Err(Self::err(addr, "timed out")),
        }
    }
}

#[async_trait::async_trait]
impl MysqlAdmin for RealAdmin {
    async fn observe(&self, addr: &str, secrets: &Secrets) -> Result<Observed> {
        self.with(addr, secrets, |c| {
            Box::pin(async move {
                let (ro, cur, bin, semi): (i64, String, String, i64) = c
                    .query_first(
                        "SELECT @@read_only, @@gtid_current_pos, @@gtid_binlog_pos, \
                         @@rpl_semi_sync_master_enabled",
                    )
                    .await?
                    .unwrap_or_default();
                let replica = c
                    .query_first::<Row, _>("SHOW SLAVE STATUS")
                    .await?
                    .map(|r| {
                        let mut last_error = text(&r, "Last_IO_Error");
                        if last_error.is_empty() {
                            last_error = text(&r, "Last_SQL_Error");
                        }
                        ReplicaObs {
                            master_host: text(&r, "Master_Host"),
                            master_port: r
                                .get_opt::<u16, _>("Master_Port")
                                .and_then(|v| v.ok())
                                .unwrap_or(0),
                            io_running: yes(&r, "Slave_IO_Running"),
                            sql_running: yes(&r, "Slave_SQL_Running"),
                            gtid_io_pos: text(&r, "Gtid_IO_Pos"),
                            lag_seconds: r
                                .get_opt::<Option<u64>, _>("Seconds_Behind_Master")
                                .and_then(|v| v.ok())
                                .flatten(),
                            last_error,
                            last_io_errno: r
                                .get_opt::<u32, _>("Last_IO_Errno")
                                .and_then(|v| v.ok())
                                .unwrap_or(0),
                            last_sql_errno: r
                                .get_opt::<u32, _>("Last_SQL_Errno")
                                .and_then(|v| v.ok())
                                .unwrap_or(0),
                        }
                    })
                    .filter(|r| !r.master_host.is_empty());
                let status: Vec<(String, String)> = c
                    .query(
                        "SHOW GLOBAL STATUS WHERE Variable_name IN \
                         ('Rpl_semi_sync_master_clients','Rpl_semi_sync_master_wait_sessions')",
                    )
                    .await?;
                let num = |name: &str| {
                    status
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(name))
                        .and_then(|(_, v)| v.parse().ok())
                        .unwrap_or(0)
                };
                let app: Option<i64> = c
                    .query_first(format!(
                        "SELECT COUNT(*) FROM mysql.user WHERE User={}",
                        lit(APP_USER)
                    ))
                    .await?;
                Ok(Observed {
                    read_only: ro != 0,
                    gtid_current_pos: cur,
                    gtid_binlog_pos: bin,
                    semi_sync_enabled: semi != 0,
                    replica,
                    semi_sync_clients: num("Rpl_semi_sync_master_clients"),
                    semi_sync_waiting: num("Rpl_semi_sync_master_wait_sessions"),
                    app_ready: app.unwrap_or(0) > 0,
                })
            })
        })
        .await
    }

    async fn execute(&self, cmd: &AdminCmd, secrets: &Secrets) -> Result<()> {
        if matches!(cmd, AdminCmd::Follow { .. } | AdminCmd::Demote { .. }) {
            self.end_client_sessions(cmd.on(), secrets).await?;
        }
        let stmts: Vec<String> = match cmd {
            AdminCmd::Promote { alone, .. } => vec![
                "STOP SLAVE".into(),
                "RESET SLAVE ALL".into(),
                format!(
                    "SET GLOBAL rpl_semi_sync_master_enabled={}",
                    if *alone { 0 } else { 1 }
                ),
                "SET GLOBAL read_only=0".into(),
            ],
            AdminCmd::Follow { host, port, .. } => vec![
                "SET GLOBAL read_only=1".into(),
                "SET GLOBAL rpl_semi_sync_master_enabled=0".into(),
                "STOP SLAVE".into(),
                format!(
                    "CHANGE MASTER TO MASTER_HOST={}, MASTER_PORT={port}, MASTER_USER={}, \
                     MASTER_PASSWORD={}, MASTER_USE_GTID=current_pos, MASTER_CONNECT_RETRY=1, \
                     MASTER_HEARTBEAT_PERIOD=0.25",
                    lit(host),
                    lit(REPL_USER),
                    lit(&secrets.repl_password)
                ),
                "START SLAVE".into(),
            ],
            AdminCmd::StopIo { .. } => vec!["STOP SLAVE IO_THREAD".into()],
            AdminCmd::Demote { .. } => vec!["SET GLOBAL read_only=1".into()],
            AdminCmd::Condemn { .. } => vec![
                "SET SESSION sql_log_bin=0".into(),
                format!("CREATE DATABASE IF NOT EXISTS `{REBUILD_MARK}`"),
                "SHUTDOWN".into(),
            ],
            AdminCmd::SemiSync { enabled, .. } => vec![format!(
                "SET GLOBAL rpl_semi_sync_master_enabled={}",
                u8::from(*enabled)
            )],
            AdminCmd::Grant {
                job, user, host, ..
            } => {
                let Some(cred) = secrets.jobs.get(job) else {
                    return Err(Self::err(cmd.on(), format!("no credential for job {job}")));
                };
                if cred.user != *user {
                    return Err(Self::err(
                        cmd.on(),
                        format!("job {job}'s user is not {user}"),
                    ));
                }
                vec![
                    format!(
                        "CREATE USER IF NOT EXISTS {}@{} IDENTIFIED BY {}",
                        lit(user),
                        lit(host),
                        lit(&cred.password)
                    ),
                    format!(
                        "GRANT ALL PRIVILEGES ON `{APP_SCHEMA}`.* TO {}@{}",
                        lit(user),
                        lit(host)
                    ),
                ]
            }
            AdminCmd::Revoke { user, host, .. } => {
                vec![format!("DROP USER IF EXISTS {}@{}", lit(user), lit(host))]
            }
            AdminCmd::EnsureApp { .. } => vec![
                format!("CREATE DATABASE IF NOT EXISTS `{APP_SCHEMA}`"),
                format!(
                    "CREATE USER IF NOT EXISTS {}@'%' IDENTIFIED BY {}",
                    lit(APP_USER),
                    lit(&secrets.app_password)
                ),
                format!(
                    "GRANT ALL PRIVILEGES ON `{APP_SCHEMA}`.* TO {}@'%'",
                    lit(APP_USER)
                ),
            ],
        };
        // The fence must finish: a stopping IO thread waits for its read
        // from a hung primary to end, and a second STOP behind the first
        // only queues.
        let timeout = match cmd {
            AdminCmd::StopIo { .. } => FENCE_TIMEOUT,
            _ => self.timeout,
        };
        self.with_timeout(cmd.on(), secrets, timeout, move |c| {
            Box::pin(async move {
                for s in stmts {
                    c.query_drop(s).await?;
                }
                Ok(())
            })
        })
        .await?;
        if matches!(cmd, AdminCmd::Condemn { .. }) {
            // Its server is going away, and the session does not log.
            self.conns.lock().await.remove(cmd.on());
        }
        Ok(())
    }

    async fn job_accounts(&self, addr: &str, secrets: &Secrets) -> Result<BTreeSet<Account>> {
        self.with(addr, secrets, |c| {
            Box::pin(async move {
                let rows: Vec<(String, String)> = c
                    .query(format!(
                        "SELECT User, Host FROM mysql.user WHERE User LIKE {}",
                        lit(&format!("{}%", JOB_USER_PREFIX.replace('_', "\\_")))
                    ))
                    .await?;
                Ok(rows
                    .into_iter()
                    .map(|(user, host)| Account { user, host })
                    .collect())
            })
        })
        .await
    }

    async fn awaits_seed(&self, addr: &str) -> bool {
        matches!(
            tokio::time::timeout(self.timeout, tokio::net::TcpStream::connect(addr)).await,
            Ok(Ok(_))
        )
    }
}

/// How long a fence (`STOP SLAVE IO_THREAD`) may take.
pub const FENCE_TIMEOUT: Duration = Duration::from_secs(10);

impl RealAdmin {
    /// On a writable instance that is to be read-only: ends the
    /// application's sessions first. `read_only=1` waits for open
    /// transactions, and a former primary's last commit waits for an
    /// acknowledgement that will never come (its standbys are gone);
    /// ended, that commit is never acknowledged to its client.
    async fn end_client_sessions(&self, addr: &str, secrets: &Secrets) -> Result<()> {
        self.with(addr, secrets, |c| {
            Box::pin(async move {
                let ro: Option<i64> = c.query_first("SELECT @@read_only").await?;
                if ro.unwrap_or(1) != 0 {
                    return Ok(());
                }
                let ids: Vec<u64> = c
                    .query(format!(
                        "SELECT ID FROM information_schema.PROCESSLIST WHERE USER NOT IN ({}, {}, 'system user', 'event_scheduler') AND ID <> CONNECTION_ID()",
                        lit(ADMIN_USER),
                        lit(REPL_USER)
                    ))
                    .await?;
                for id in ids {
                    // Gone meanwhile: fine.
                    let _ = c.query_drop(format!("KILL CONNECTION {id}")).await;
                }
                Ok(())
            })
        })
        .await
    }
}

#[cfg(test)]
mod secrets_tests {
    use super::Secrets;

    #[test]
    fn debug_never_shows_a_password() {
        let s = Secrets {
            admin_password: "adm1n-pw".into(),
            repl_password: "r3pl-pw".into(),
            app_password: "app-pw".into(),
            ..Default::default()
        };
        let printed = format!("{s:?} {s:#?}");
        for pw in ["adm1n-pw", "r3pl-pw", "app-pw"] {
            assert!(!printed.contains(pw), "{printed}");
        }
        assert!(printed.contains("admin_password: ***"), "{printed}");
    }
}
