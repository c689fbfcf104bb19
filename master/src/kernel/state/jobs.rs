//! Jobs in the replicated state: put and delete with compare-and-set on the
//! spec version, and the spec history kept for rollback.
//!
//! A job's `spec_version` moves only when its spec changes other than in
//! `instances` (a scale is not a new version, as in Marathon and Nomad);
//! the previous specs are kept newest first, so with the current one the
//! job remembers its last [`KEEP_SPECS`].

use std::sync::Arc;

use ocean_proto::internal::{DeleteJob, Job, JobSpecVersion, PutJob};

use super::{deployments, Change, ClusterState, Outcome};

/// Specs a job remembers, the current one included.
pub const KEEP_SPECS: usize = 10;

/// A job's spec version; records written before versions were kept count
/// as version 1.
pub fn spec_version(job: &Job) -> u64 {
    job.spec_version.max(1)
}

/// A spec as stored: its own exact-size buffer, shared by every later
/// version of the record that keeps it.
fn bytes_of(spec_json: &[u8]) -> prost::bytes::Bytes {
    prost::bytes::Bytes::copy_from_slice(spec_json)
}

/// Whether two canonical specs differ in more than `instances`. Specs that
/// do not parse as JSON objects are compared as bytes.
fn differs_beyond_instances(a: &[u8], b: &[u8]) -> bool {
    let strip = |bytes: &[u8]| {
        let mut v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        v.as_object_mut()?.remove("instances");
        Some(v)
    };
    match (strip(a), strip(b)) {
        (Some(x), Some(y)) => x != y,
        _ => a != b,
    }
}

impl ClusterState {
    /// The outcome of a compare-and-set that failed, or `None` when the
    /// job's spec version is what the writer expected (0: no such job).
    pub(super) fn check_spec_version(&self, id: &str, expected: Option<u64>) -> Option<Outcome> {
        let expected = expected?;
        let actual = self.jobs.get(id).map_or(0, |j| spec_version(j));
        (actual != expected).then_some(Outcome::Conflict { expected, actual })
    }

    pub(super) fn put_job_cmd(&mut self, put: &PutJob) -> (Outcome, Vec<Change>) {
        if let Some(conflict) = self.check_spec_version(&put.id, put.expected_spec_version) {
            return (conflict, Vec::new());
        }
        self.put_job(&put.id, &put.spec_json, false, put.rollback_to)
    }

    pub(super) fn delete_job(&mut self, del: &DeleteJob) -> (Outcome, Vec<Change>) {
        if let Some(conflict) = self.check_spec_version(&del.id, del.expected_spec_version) {
            return (conflict, Vec::new());
        }
        match self.jobs.remove(&del.id) {
            Some(_) => {
                self.version += 1;
                let mut changes = vec![Change::JobDeleted(del.id.clone())];
                changes.extend(self.kill_job_tasks(&del.id, self.version));
                (Outcome::Deleted, changes)
            }
            None => (Outcome::NotFound, Vec::new()),
        }
    }

    /// Stores a job's spec. A new spec starts without back-off (Marathon's
    /// rule: a changed definition deserves a fresh try) unless
    /// `keep_backoff` (scaling). A put that changes what tasks embody
    /// starts a deployment; `rollback_to` marks it as a rollback.
    pub(super) fn put_job(
        &mut self,
        id: &str,
        spec_json: &[u8],
        keep_backoff: bool,
        rollback_to: u64,
    ) -> (Outcome, Vec<Change>) {
        let next = self.version + 1;
        let outcome = match self.jobs.get(id) {
            Some(existing) if existing.spec_json == spec_json => {
                return (Outcome::Unchanged, Vec::new())
            }
            Some(_) => Outcome::Updated,
            None => Outcome::Created,
        };
        let changes = self.store_spec(id, spec_json, keep_backoff, next, rollback_to, 0);
        self.version = next;
        (outcome, changes)
    }

    /// Stores `spec_json` as `id`'s spec at state version `next` (which the
    /// caller makes the state's): a new version when it differs in more
    /// than `instances`, with the deployment it starts (reverting the
    /// deployment of spec version `revert_of`, when not 0).
    pub(super) fn store_spec(
        &mut self,
        id: &str,
        spec_json: &[u8],
        keep_backoff: bool,
        next: u64,
        rollback_to: u64,
        revert_of: u64,
    ) -> Vec<Change> {
        let job = match self.jobs.get(id) {
            Some(existing) => {
                let mut job = Job::clone(existing);
                if differs_beyond_instances(&existing.spec_json, spec_json) {
                    job.history.insert(
                        0,
                        JobSpecVersion {
                            spec_version: spec_version(existing),
                            spec_json: std::mem::take(&mut job.spec_json),
                            version: spec_since_version(existing),
                        },
                    );
                    job.history.truncate(KEEP_SPECS - 1);
                    job.spec_version = spec_version(existing) + 1;
                    job.spec_since = next;
                }
                job.spec_json = bytes_of(spec_json);
                job.updated_version = next;
                if !keep_backoff {
                    job.backoff = None;
                }
                if job.spec_version != existing.spec_version {
                    if let Some(mut d) = deployments::started_by(existing, &job, next, rollback_to)
                    {
                        d.revert_of = revert_of;
                        d.promoted |= revert_of > 0;
                        deployments::record_start(&mut job, d, next);
                    }
                }
                job
            }
            None => Job {
                id: id.to_string(),
                spec_json: bytes_of(spec_json),
                created_version: next,
                updated_version: next,
                spec_version: 1,
                spec_since: next,
                ..Default::default()
            },
        };
        let mut job = job;
        // A new spec is planned afresh.
        job.waiting = String::new();
        let job = Arc::new(job);
        self.jobs.insert(id.to_string(), job.clone());
        vec![Change::JobPut(job)]
    }
}

/// The versions of a job as `GET /v1/jobs/{id}/versions` lists them: the
/// current spec first, then the kept history, newest first.
pub fn spec_versions(job: &Job) -> Vec<JobSpecVersion> {
    let mut out = vec![JobSpecVersion {
        spec_version: spec_version(job),
        spec_json: job.spec_json.clone(),
        version: spec_since_version(job),
    }];
    out.extend(job.history.iter().cloned());
    out
}

/// The state version since which a job has had its current spec (records
/// written before this was kept: its creation).
pub fn spec_since_version(job: &Job) -> u64 {
    if job.spec_since > 0 {
        job.spec_since
    } else {
        job.created_version
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::state::{delete_job_command, put_job_command, scale_job_command};
    use ocean_proto::internal::{command, Command};

    const ID: &str = "cop.c_owt.o_pdl.p_service.s_job.j_cluster.c";

    fn spec(cmd: &str, instances: u32) -> Vec<u8> {
        let mut s = ocean_spec::JobSpec::new(ID, cmd);
        s.instances = instances;
        s.to_canonical_json()
    }

    fn cas_put(spec_json: Vec<u8>, expected: Option<u64>) -> Command {
        let mut c = put_job_command(ID.into(), spec_json);
        if let Some(command::Kind::PutJob(p)) = &mut c.kind {
            p.expected_spec_version = expected;
        }
        c
    }

    #[test]
    fn spec_version_moves_with_the_spec_not_with_the_instances() {
        let mut s = ClusterState::default();
        s.apply(&put_job_command(ID.into(), spec("sleep 1", 1)));
        assert_eq!(s.jobs[ID].spec_version, 1);
        s.apply(&scale_job_command(ID.into(), 3));
        assert_eq!(s.jobs[ID].spec_version, 1, "a scale is not a version");
        s.apply(&put_job_command(ID.into(), spec("sleep 1", 5)));
        assert_eq!(
            s.jobs[ID].spec_version, 1,
            "nor is a put of other instances"
        );
        assert!(s.jobs[ID].history.is_empty());
        s.apply(&put_job_command(ID.into(), spec("sleep 2", 5)));
        assert_eq!(s.jobs[ID].spec_version, 2);
        let versions = spec_versions(&s.jobs[ID]);
        assert_eq!(
            versions.iter().map(|v| v.spec_version).collect::<Vec<_>>(),
            vec![2, 1]
        );
        assert_eq!(versions[1].spec_json, spec("sleep 1", 5));
    }

    #[test]
    fn the_last_ten_specs_are_kept() {
        let mut s = ClusterState::default();
        for i in 0..25 {
            s.apply(&put_job_command(ID.into(), spec(&format!("sleep {i}"), 1)));
        }
        let versions = spec_versions(&s.jobs[ID]);
        assert_eq!(versions.len(), KEEP_SPECS);
        assert_eq!(versions[0].spec_version, 25);
        assert_eq!(versions[9].spec_version, 16);
        assert_eq!(versions[9].spec_json, spec("sleep 15", 1));
        // Each remembers when it became current, in order.
        assert!(versions.windows(2).all(|w| w[0].version > w[1].version));
    }

    #[test]
    fn compare_and_set_names_both_versions_and_changes_nothing() {
        let mut s = ClusterState::default();
        // Create-only: expected 0.
        let a = s.apply(&cas_put(spec("a", 1), Some(0)));
        assert_eq!(a.outcome, Outcome::Created);
        let before = s.clone();
        let a = s.apply(&cas_put(spec("b", 1), Some(0)));
        assert_eq!(
            a.outcome,
            Outcome::Conflict {
                expected: 0,
                actual: 1
            }
        );
        assert_eq!(s, before, "a failed compare-and-set changes nothing");
        assert!(a.changes.is_empty());
        let a = s.apply(&cas_put(spec("b", 1), Some(1)));
        assert_eq!(a.outcome, Outcome::Updated);
        assert_eq!(s.jobs[ID].spec_version, 2);
        // Scale and delete at a stale version conflict too.
        let mut scale = scale_job_command(ID.into(), 4);
        if let Some(command::Kind::ScaleJob(x)) = &mut scale.kind {
            x.expected_spec_version = Some(1);
        }
        let before = s.clone();
        assert_eq!(
            s.apply(&scale).outcome,
            Outcome::Conflict {
                expected: 1,
                actual: 2
            }
        );
        let mut del = delete_job_command(ID.into());
        if let Some(command::Kind::DeleteJob(x)) = &mut del.kind {
            x.expected_spec_version = Some(1);
        }
        assert!(matches!(s.apply(&del).outcome, Outcome::Conflict { .. }));
        assert_eq!(s, before);
        if let Some(command::Kind::DeleteJob(x)) = &mut del.kind {
            x.expected_spec_version = Some(2);
        }
        assert_eq!(s.apply(&del).outcome, Outcome::Deleted);
    }

    #[test]
    fn outcomes_cross_the_wire_with_their_details() {
        for o in [
            Outcome::Created,
            Outcome::Conflict {
                expected: 3,
                actual: 7,
            },
            Outcome::Held {
                holder: "m2:elb".into(),
                expires_ms: 99,
            },
        ] {
            assert_eq!(Outcome::from_wire(&o.to_wire()), o);
        }
    }
}
