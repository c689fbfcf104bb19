//! Automatic grants: the jobs a database lists in `allowed_jobs` each get
//! a MySQL user of their own, and that user exists at exactly the host
//! addresses where the job has a live task. Pure: the wanted grants from
//! the masters' tasks, and the difference to what an instance holds.
//!
//! ```text
//!  spec.allowed_jobs + secrets.jobs (user, password per job)
//!  tasks (view) ──► wanted(): job ──► {task addresses}   (live tasks only)
//!  primary: SELECT User, Host FROM mysql.user WHERE User LIKE 'oj\_%' ──► present
//!  diff(wanted, present) ──► Grant (CREATE USER + GRANT), Revoke (DROP USER)
//! ```
//!
//! The operator runs the commands on the primary only: account changes
//! are binlogged, so the standbys get them by replication and a promoted
//! standby already holds the grants.

use std::collections::{BTreeMap, BTreeSet};

use ocean_client::api::Task;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::admin::{AdminCmd, Secrets};

/// Every job user's name starts with this (and no other user's does): the
/// operator owns exactly the accounts with it.
pub const JOB_USER_PREFIX: &str = "oj_";
/// Most jobs one database may allow.
pub const MAX_ALLOWED_JOBS: usize = 64;

/// A job's credentials for one database (kept in its record's secrets).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobCredential {
    /// Its MySQL user, `oj_` and 12 random lowercase letters and digits.
    pub user: String,
    /// Its password.
    pub password: String,
}

impl std::fmt::Debug for JobCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobCredential")
            .field("user", &self.user)
            .field("password", &format_args!("***"))
            .finish()
    }
}

impl JobCredential {
    /// A new user and password. A job allowed again after it was removed
    /// gets a new user, so its old accounts (dropped or not yet) never
    /// carry the new password.
    pub fn generate() -> Self {
        let mut rng = rand::thread_rng();
        let user: String = (0..12)
            .map(|_| {
                let i = rng.gen_range(0..36u8);
                char::from(if i < 10 { b'0' + i } else { b'a' + i - 10 })
            })
            .collect();
        let password = (&mut rng)
            .sample_iter(&rand::distributions::Alphanumeric)
            .take(24)
            .map(char::from)
            .collect();
        JobCredential {
            user: format!("{JOB_USER_PREFIX}{user}"),
            password,
        }
    }
}

/// One account: `'user'@'host'`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Account {
    /// The MySQL user.
    pub user: String,
    /// The host address it may connect from.
    pub host: String,
}

/// A job's grants as shown in the database's status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobGrants {
    /// The job's id.
    pub job: String,
    /// Its MySQL user.
    pub user: String,
    /// Host addresses it is granted on (as the primary holds them).
    pub hosts: Vec<String>,
}

/// Whether a task of state `state` may still be running or about to: its
/// host keeps access until the task ended.
fn live(t: &Task) -> bool {
    matches!(t.state.as_str(), "STAGING" | "STARTING" | "RUNNING")
}

/// The host addresses each allowed job should be granted on: those of its
/// live tasks. Every allowed job is a key (an empty set: no task now).
pub fn wanted<'a>(
    allowed: &[String],
    tasks: impl IntoIterator<Item = &'a Task>,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = allowed
        .iter()
        .map(|j| (j.clone(), BTreeSet::new()))
        .collect();
    for t in tasks {
        if !live(t) || t.address.is_empty() {
            continue;
        }
        if let Some(hosts) = out.get_mut(&t.job_id) {
            hosts.insert(t.address.clone());
        }
    }
    out
}

/// The accounts `wanted` makes with the users of `secrets` (a job without
/// a credential yet gets none).
pub fn accounts(
    wanted: &BTreeMap<String, BTreeSet<String>>,
    secrets: &Secrets,
) -> BTreeMap<Account, String> {
    let mut out = BTreeMap::new();
    for (job, hosts) in wanted {
        let Some(cred) = secrets.jobs.get(job) else {
            continue;
        };
        for host in hosts {
            out.insert(
                Account {
                    user: cred.user.clone(),
                    host: host.clone(),
                },
                job.clone(),
            );
        }
    }
    out
}

/// The commands, sent to `on`, that make `present` (the job accounts an
/// instance holds) into `wanted` (account ──► its job): grants first, then
/// the drops, each in order.
pub fn diff(
    on: &str,
    wanted: &BTreeMap<Account, String>,
    present: &BTreeSet<Account>,
) -> Vec<AdminCmd> {
    let grants = wanted
        .iter()
        .filter(|(a, _)| !present.contains(*a))
        .map(|(a, job)| AdminCmd::Grant {
            on: on.to_string(),
            job: job.clone(),
            user: a.user.clone(),
            host: a.host.clone(),
        });
    let drops = present
        .iter()
        .filter(|a| !wanted.contains_key(*a))
        .map(|a| AdminCmd::Revoke {
            on: on.to_string(),
            user: a.user.clone(),
            host: a.host.clone(),
        });
    grants.chain(drops).collect()
}

/// Each allowed job with the hosts its user holds in `present`.
pub fn shown(allowed: &[String], secrets: &Secrets, present: &BTreeSet<Account>) -> Vec<JobGrants> {
    allowed
        .iter()
        .map(|job| {
            let user = secrets
                .jobs
                .get(job)
                .map(|c| c.user.clone())
                .unwrap_or_default();
            let hosts = present
                .iter()
                .filter(|a| !user.is_empty() && a.user == user)
                .map(|a| a.host.clone())
                .collect();
            JobGrants {
                job: job.clone(),
                user,
                hosts,
            }
        })
        .collect()
}

/// `secrets` with a credential for each of `allowed` (kept where there is
/// one, made where not) and none for the others.
pub fn credentials_for(allowed: &[String], secrets: &Secrets) -> Secrets {
    let mut s = secrets.clone();
    s.jobs.retain(|j, _| allowed.contains(j));
    for j in allowed {
        s.jobs
            .entry(j.clone())
            .or_insert_with(JobCredential::generate);
    }
    s
}

#[cfg(test)]
#[path = "grants_tests.rs"]
mod tests;
