//! The operator's side of automatic grants ([`crate::grants`]): each
//! round that the primary answers and is writable, the job accounts it
//! holds are brought in step with where the allowed jobs' tasks run now.
//! The primary only: account changes replicate.

use ocean_framework::View;
use tracing::{debug, info, warn};

use super::Operator;
use crate::decide::Member;
use crate::framework::DatabaseRecord;
use crate::grants::{accounts, diff, shown, wanted};

impl Operator {
    /// Grants the allowed jobs' hosts that lack their account on the
    /// primary `p`, drops the accounts of hosts (or jobs) left, and
    /// remembers what the primary holds for the status.
    pub(super) async fn tend_grants(&mut self, view: &View, rec: &DatabaseRecord, p: &Member) {
        let name = &rec.spec.name;
        // A primary not yet writable (just chosen) or without its schema
        // yet: next round.
        if !p.obs.as_ref().is_some_and(|o| !o.read_only && o.app_ready) {
            return;
        }
        let addr = p.addr();
        let mut held = match self.admin.job_accounts(&addr, &rec.secrets).await {
            Ok(a) => a,
            Err(e) => {
                debug!(database = %name, error = %e, "job accounts not read");
                return;
            }
        };
        let allowed = &rec.spec.allowed_jobs;
        let tasks = allowed.iter().flat_map(|j| view.tasks_of(j));
        let want = accounts(&wanted(allowed, tasks), &rec.secrets);
        for cmd in diff(&addr, &want, &held) {
            match self.admin.execute(&cmd, &rec.secrets).await {
                Ok(()) => {
                    info!(database = %name, ?cmd, "job grant changed");
                    if let crate::admin::AdminCmd::Grant { user, host, .. }
                    | crate::admin::AdminCmd::Revoke { user, host, .. } = &cmd
                    {
                        let a = crate::grants::Account {
                            user: user.clone(),
                            host: host.clone(),
                        };
                        if matches!(cmd, crate::admin::AdminCmd::Grant { .. }) {
                            held.insert(a);
                        } else {
                            held.remove(&a);
                        }
                    }
                }
                Err(e) => warn!(database = %name, ?cmd, error = %e, "job grant not changed"),
            }
        }
        self.grants_seen
            .insert(name.clone(), shown(allowed, &rec.secrets, &held));
    }
}
