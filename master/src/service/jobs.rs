//! Jobs: put (compare-and-set on the spec version), get, list under a
//! service-tree node, delete, scale, reset back-off, and the kept specs.

use std::collections::BTreeMap;
use std::sync::Arc;

use ocean_proto::internal::{command, Job};
use ocean_spec::{parse_job_spec, Format, TreeNode};

use super::acl::Right;
use super::types::{JobDetail, JobList, JobVersions, JobView, SpecVersionView, WriteResult};
use super::{invalid, Kernel, ReadOptions, Service};
use crate::error::{Error, Result};
use crate::kernel::state::jobs::{spec_version, spec_versions};
use crate::kernel::state::{
    delete_job_command, is_live, put_job_command, reset_backoff_command, scale_job_command,
    ClusterState, RUNNING,
};

/// A job spec to store.
#[derive(Debug, Clone)]
pub struct PutJob {
    /// The spec as the user wrote it.
    pub spec: Vec<u8>,
    /// JSON, YAML or guessed.
    pub format: Format,
    /// Compare-and-set: the job's spec version must be this (0: the job
    /// must not exist yet).
    pub expected_spec_version: Option<u64>,
}

/// The job's spec version, for a write's answer.
fn job_spec_version(st: &ClusterState, id: &str) -> Option<u64> {
    st.jobs.get(id).map(|j| spec_version(j))
}

impl<K: Kernel> Service<K> {
    /// Parses and validates a spec as [`Service::put_job`] would, writing
    /// nothing (for a plan).
    pub fn parse_spec(
        &self,
        bytes: &[u8],
        format: ocean_spec::Format,
    ) -> Result<ocean_spec::JobSpec> {
        Ok(parse_job_spec(bytes, format)?)
    }

    /// Validates and stores a job spec.
    pub async fn put_job(&self, req: PutJob) -> Result<WriteResult> {
        let spec = parse_job_spec(&req.spec, req.format)?;
        let id = spec.id.clone();
        self.authorize(&id, Right::Write)?;
        let mut cmd = put_job_command(id.clone(), spec.to_canonical_json());
        if let Some(command::Kind::PutJob(p)) = &mut cmd.kind {
            p.expected_spec_version = req.expected_spec_version;
        }
        let applied = self.commit("job", &id, cmd).await?;
        Ok(WriteResult {
            spec_version: self.kernel.read(|st| job_spec_version(st, &id)),
            id,
            version: applied.version,
            outcome: applied.outcome.as_str().to_string(),
            instances: None,
            revision: None,
        })
    }

    /// One job, with its tasks' counts and DNS name.
    pub async fn get_job(&self, id: &str, opts: ReadOptions) -> Result<(u64, JobDetail)> {
        self.authorize(id, Right::Read)?;
        self.kernel.wait_read(opts).await?;
        let domain = self.kernel.dns_domain().to_string();
        let detail = self.kernel.read(|st| {
            let job = st.jobs.get(id)?;
            let mut tasks: BTreeMap<String, u64> = BTreeMap::new();
            let mut running = 0;
            for t in st.tasks_of(id) {
                running += usize::from(t.state == RUNNING && is_live(t));
                *tasks.entry(t.state.clone()).or_default() += 1;
            }
            let (dns_name, dns_name_owner) = dns_name(st, id, &domain);
            Some((
                st.version,
                JobDetail {
                    job: JobView::from(job.as_ref()),
                    tasks,
                    running,
                    dns_name,
                    dns_name_owner,
                },
            ))
        });
        detail.ok_or_else(|| Error::NotFound {
            kind: "job",
            id: id.to_string(),
        })
    }

    /// Jobs under `prefix`, a service-tree node (`pdl.demo` covers the
    /// demo product line, never `pdl.demo2`); every job without one.
    pub async fn list_jobs(&self, prefix: Option<&str>, opts: ReadOptions) -> Result<JobList> {
        let (version, jobs) = self.job_records(prefix, opts).await?;
        Ok(JobList {
            version,
            jobs: jobs.iter().map(|j| JobView::from(j.as_ref())).collect(),
        })
    }

    /// [`Service::list_jobs`] as the records themselves, at a version.
    pub async fn job_records(
        &self,
        prefix: Option<&str>,
        opts: ReadOptions,
    ) -> Result<(u64, Vec<Arc<Job>>)> {
        let node = match prefix {
            Some(p) => {
                TreeNode::parse_field(p, "prefix").map_err(|e| invalid(e.field, e.reason))?
            }
            None => TreeNode::root(),
        };
        self.authenticated()?;
        // Only what the token may read (a list is filtered, not refused).
        let grants = self.read_filter();
        self.kernel.wait_read(opts).await?;
        Ok(self.kernel.read(|st| {
            let jobs = st
                .jobs
                .values()
                .filter(|j| node.covers_id(&j.id))
                .filter(|j| grants.as_ref().is_none_or(|g| g.allows(&j.id, Right::Read)))
                .cloned()
                .collect();
            (st.version, jobs)
        }))
    }

    /// A 404 without a raft write for a job nobody has (the command would
    /// find the same, one round trip later).
    fn known_job(&self, id: &str) -> Result<()> {
        if self.kernel.read(|st| st.jobs.contains_key(id)) {
            Ok(())
        } else {
            Err(Error::NotFound {
                kind: "job",
                id: id.to_string(),
            })
        }
    }

    /// Deletes a job (its tasks are stopped).
    pub async fn delete_job(&self, id: &str, expected: Option<u64>) -> Result<WriteResult> {
        self.authorize(id, Right::Write)?;
        self.known_job(id)?;
        let mut cmd = delete_job_command(id.to_string());
        if let Some(command::Kind::DeleteJob(d)) = &mut cmd.kind {
            d.expected_spec_version = expected;
        }
        let applied = self.commit("job", id, cmd).await?;
        Ok(write_result(id, applied.version, applied.outcome.as_str()))
    }

    /// Changes only a job's instance count.
    pub async fn scale_job(
        &self,
        id: &str,
        instances: u32,
        expected: Option<u64>,
    ) -> Result<WriteResult> {
        if instances > ocean_spec::validate::MAX_INSTANCES {
            return Err(invalid(
                "instances",
                format!(
                    "must be at most {}; got {instances}",
                    ocean_spec::validate::MAX_INSTANCES
                ),
            ));
        }
        self.authorize(id, Right::Write)?;
        self.known_job(id)?;
        let mut cmd = scale_job_command(id.to_string(), instances);
        if let Some(command::Kind::ScaleJob(s)) = &mut cmd.kind {
            s.expected_spec_version = expected;
        }
        let applied = self.commit("job", id, cmd).await?;
        let mut r = write_result(id, applied.version, applied.outcome.as_str());
        r.instances = Some(instances);
        r.spec_version = self.kernel.read(|st| job_spec_version(st, id));
        Ok(r)
    }

    /// Clears a job's restart back-off and flapping mark.
    pub async fn reset_backoff(&self, id: &str) -> Result<WriteResult> {
        self.authorize(id, Right::Operate)?;
        self.known_job(id)?;
        let applied = self
            .commit("job", id, reset_backoff_command(id.to_string()))
            .await?;
        Ok(write_result(id, applied.version, applied.outcome.as_str()))
    }

    /// The job's kept specs, newest first (the current one first).
    pub async fn job_versions(&self, id: &str, opts: ReadOptions) -> Result<JobVersions> {
        self.authorize(id, Right::Read)?;
        self.kernel.wait_read(opts).await?;
        self.kernel
            .read(|st| {
                st.jobs.get(id).map(|j| JobVersions {
                    id: id.to_string(),
                    version: st.version,
                    versions: spec_versions(j)
                        .iter()
                        .enumerate()
                        .map(|(i, v)| SpecVersionView::new(v, i == 0))
                        .collect(),
                })
            })
            .ok_or_else(|| Error::NotFound {
                kind: "job",
                id: id.to_string(),
            })
    }
}

fn write_result(id: &str, version: u64, outcome: &str) -> WriteResult {
    WriteResult {
        id: id.to_string(),
        version,
        outcome: outcome.to_string(),
        spec_version: None,
        instances: None,
        revision: None,
    }
}

/// A job's DNS name in `domain`, or `None` with the owner when a job whose
/// id sorts first derives the same name (two ids that differ only in tags
/// the name leaves out).
fn dns_name(st: &ClusterState, id: &str, domain: &str) -> (Option<String>, Option<String>) {
    let Some(name) = ocean_spec::dns::job_name(id, domain) else {
        return (None, None);
    };
    let rival = st
        .jobs
        .range::<str, _>((std::ops::Bound::Unbounded, std::ops::Bound::Excluded(id)))
        .map(|(other, _)| other.as_str())
        .find(|other| ocean_spec::dns::job_name(other, domain).as_deref() == Some(&name));
    match rival {
        Some(owner) => (None, Some(owner.to_string())),
        None => (Some(name), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::LocalKernel;

    const ID: &str = "cop.c_owt.o_pdl.demo_service.s_job.j_cluster.c";

    fn put(cmd: &str, expected: Option<u64>) -> PutJob {
        PutJob {
            spec: format!(r#"{{"id":"{ID}","cmd":"{cmd}"}}"#).into_bytes(),
            format: Format::Json,
            expected_spec_version: expected,
        }
    }

    fn service() -> Service<LocalKernel> {
        Service::new(LocalKernel::new())
    }

    #[tokio::test]
    async fn a_put_is_validated_stored_and_versioned() {
        let s = service();
        let r = s.put_job(put("sleep 1", None)).await.unwrap();
        assert_eq!((r.outcome.as_str(), r.spec_version), ("created", Some(1)));
        let r = s.put_job(put("sleep 1", None)).await.unwrap();
        assert_eq!(r.outcome, "unchanged");
        let r = s.put_job(put("sleep 2", Some(1))).await.unwrap();
        assert_eq!((r.outcome.as_str(), r.spec_version), ("updated", Some(2)));
        let v = s.job_versions(ID, ReadOptions::default()).await.unwrap();
        assert_eq!(v.versions.len(), 2);
        assert!(v.versions[0].current && !v.versions[1].current);
        assert_eq!(v.versions[1].spec["cmd"], "sleep 1");
        // A bad spec names its field and changes nothing.
        let before = s.kernel().version();
        let bad = PutJob {
            spec: format!(r#"{{"id":"{ID}","cmd":"x","resources":{{"mem":1}}}}"#).into_bytes(),
            format: Format::Json,
            expected_spec_version: None,
        };
        match s.put_job(bad).await {
            Err(Error::Spec(e)) => assert_eq!(e.errors[0].field, "resources.mem"),
            other => panic!("expected a spec error, got {other:?}"),
        }
        assert_eq!(s.kernel().version(), before);
    }

    #[tokio::test]
    async fn stale_writers_get_a_conflict_with_both_versions() {
        let s = service();
        s.put_job(put("a", Some(0))).await.unwrap();
        s.put_job(put("b", Some(1))).await.unwrap();
        let before = s.kernel().version();
        for result in [
            s.put_job(put("c", Some(1))).await.map(|_| ()),
            s.put_job(put("c", Some(0))).await.map(|_| ()),
            s.scale_job(ID, 3, Some(1)).await.map(|_| ()),
            s.delete_job(ID, Some(7)).await.map(|_| ()),
        ] {
            match result {
                Err(Error::VersionConflict {
                    kind: "job",
                    actual: 2,
                    ..
                }) => {}
                other => panic!("expected a conflict at version 2, got {other:?}"),
            }
        }
        assert_eq!(s.kernel().version(), before, "no conflict changed anything");
        let r = s.scale_job(ID, 3, Some(2)).await.unwrap();
        assert_eq!((r.instances, r.spec_version), (Some(3), Some(2)));
        s.delete_job(ID, Some(2)).await.unwrap();
        assert!(matches!(
            s.delete_job(ID, None).await,
            Err(Error::NotFound { kind: "job", .. })
        ));
    }

    #[tokio::test]
    async fn lists_filter_by_whole_tree_nodes() {
        let s = service();
        for pdl in ["demo", "demo2"] {
            let id = ID.replace("pdl.demo", &format!("pdl.{pdl}"));
            let spec = format!(r#"{{"id":"{id}","cmd":"x"}}"#).into_bytes();
            s.put_job(PutJob {
                spec,
                format: Format::Json,
                expected_spec_version: None,
            })
            .await
            .unwrap();
        }
        let ro = ReadOptions::default();
        let ids = |l: JobList| l.jobs.into_iter().map(|j| j.id).collect::<Vec<_>>();
        assert_eq!(
            ids(s.list_jobs(Some("pdl.demo"), ro).await.unwrap()),
            vec![ID]
        );
        assert_eq!(s.list_jobs(None, ro).await.unwrap().jobs.len(), 2);
        // The old string-prefix form of a node still works, boundary-aware.
        let old = "cop.c_owt.o_pdl.demo";
        assert_eq!(ids(s.list_jobs(Some(old), ro).await.unwrap()), vec![ID]);
        match s.list_jobs(Some("pdl.Demo"), ro).await {
            Err(Error::Invalid { field, .. }) => assert_eq!(field, "prefix"),
            other => panic!("expected invalid prefix, got {other:?}"),
        }
        match s.scale_job(ID, 1_000_000, None).await {
            Err(Error::Invalid { field, .. }) => assert_eq!(field, "instances"),
            other => panic!("expected invalid instances, got {other:?}"),
        }
    }
}
