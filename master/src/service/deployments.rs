//! Deployments: list and read them (with each task's progress), act on
//! them (pause, resume, promote, fail, cancel), and roll a job back to an
//! earlier spec version, which starts a deployment like any update.

use ocean_proto::internal::{command, Deployment, DeploymentAction};
use serde::Serialize;

use super::acl::Right;
use super::types::WriteResult;
use super::{invalid, Kernel, ReadOptions, Service};
use crate::error::{Error, Result};
use crate::kernel::state::deployments::{check_action, parse_id, with_current_instances, ACTIONS};
use crate::kernel::state::jobs::spec_version;
use crate::kernel::state::{deployment_action_command, is_live, put_job_command, ClusterState};

/// One task of a job under deployment, as its progress shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DeploymentTask {
    pub id: String,
    /// `new` (the version rolled out) or `old`.
    pub version: &'static str,
    pub state: String,
    pub healthy: Option<bool>,
    pub host: String,
    /// Stopped by this deployment (replaced).
    pub replaced: bool,
}

/// A deployment as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DeploymentView {
    pub id: String,
    pub job_id: String,
    pub spec_version: u64,
    pub from_spec_version: u64,
    pub state: String,
    pub reason: String,
    pub instances: u32,
    /// Old tasks stopped so far, and their ids in order.
    pub replaced: usize,
    pub replaced_tasks: Vec<String>,
    /// New tasks up (healthy for min_healthy_seconds) at the last step.
    pub healthy: u32,
    /// New and old tasks alive now.
    pub new_tasks: usize,
    pub old_tasks: usize,
    pub promoted: bool,
    pub auto_revert: bool,
    /// Spec version a rollback returns to (0: an update).
    pub rollback_to: u64,
    /// Spec version of the failed deployment this one reverts (0: none).
    pub revert_of: u64,
    pub step_mark: u32,
    pub next_at_ms: u64,
    pub started_ms: u64,
    pub updated_ms: u64,
    pub progress_ms: u64,
    pub created_version: u64,
    pub updated_version: u64,
    /// The actions that apply to it now (of pause, resume, promote, fail,
    /// cancel), as a deployment action would check them.
    pub actions: Vec<&'static str>,
    /// Each task of the job that is alive or was replaced by it, only on a
    /// single deployment's read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks: Option<Vec<DeploymentTask>>,
}

/// A list of deployments at a state version.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DeploymentList {
    pub version: u64,
    pub deployments: Vec<DeploymentView>,
}

fn view(st: &ClusterState, d: &Deployment, with_tasks: bool) -> DeploymentView {
    let (mut new_tasks, mut old_tasks) = (0, 0);
    let mut tasks = Vec::new();
    for t in st.tasks_of(&d.job_id) {
        let replaced = d.replaced.iter().any(|r| *r == t.id);
        let live = is_live(t);
        let new = t.config_hash == d.config_hash;
        if live && new {
            new_tasks += 1;
        } else if live {
            old_tasks += 1;
        }
        if with_tasks && (live || replaced) {
            tasks.push(DeploymentTask {
                id: t.id.clone(),
                version: if new { "new" } else { "old" },
                state: t.state.clone(),
                healthy: t.healthy,
                host: t.host.clone(),
                replaced,
            });
        }
    }
    DeploymentView {
        id: d.id.clone(),
        job_id: d.job_id.clone(),
        spec_version: d.spec_version,
        from_spec_version: d.from_spec_version,
        state: d.state.clone(),
        reason: d.reason.clone(),
        instances: d.instances,
        replaced: d.replaced.len(),
        replaced_tasks: d.replaced.clone(),
        healthy: d.healthy,
        new_tasks,
        old_tasks,
        promoted: d.promoted,
        auto_revert: d.auto_revert,
        rollback_to: d.rollback_to,
        revert_of: d.revert_of,
        step_mark: d.step_mark,
        next_at_ms: d.next_at_ms,
        started_ms: d.started_ms,
        updated_ms: d.updated_ms,
        progress_ms: d.progress_ms,
        created_version: d.created_version,
        updated_version: d.updated_version,
        actions: ACTIONS
            .into_iter()
            .filter(|a| check_action(d, a).is_ok())
            .collect(),
        tasks: with_tasks.then_some(tasks),
    }
}

/// The deployment `id` names, from the state.
fn find<'a>(st: &'a ClusterState, id: &str) -> Option<&'a Deployment> {
    let (job, _) = parse_id(id)?;
    st.jobs.get(job)?.deployments.iter().find(|d| d.id == id)
}

fn not_found(id: &str) -> Error {
    Error::NotFound {
        kind: "deployment",
        id: id.to_string(),
    }
}

impl<K: Kernel> Service<K> {
    /// Deployments of `job` (or of every job), newest first per job.
    pub async fn list_deployments(
        &self,
        job: Option<&str>,
        opts: ReadOptions,
    ) -> Result<DeploymentList> {
        match job {
            Some(id) => self.authorize(id, Right::Read)?,
            None => self.authenticated()?,
        }
        let grants = self.read_filter();
        self.kernel.wait_read(opts).await?;
        self.kernel.read(|st| {
            let jobs: Vec<_> = match job {
                Some(id) => vec![st.jobs.get(id).ok_or_else(|| Error::NotFound {
                    kind: "job",
                    id: id.to_string(),
                })?],
                None => st
                    .jobs
                    .values()
                    .filter(|j| grants.as_ref().is_none_or(|g| g.allows(&j.id, Right::Read)))
                    .collect(),
            };
            Ok(DeploymentList {
                version: st.version,
                deployments: jobs
                    .iter()
                    .flat_map(|j| j.deployments.iter().map(|d| view(st, d, false)))
                    .collect(),
            })
        })
    }

    /// One deployment with each task's progress.
    pub async fn get_deployment(
        &self,
        id: &str,
        opts: ReadOptions,
    ) -> Result<(u64, DeploymentView)> {
        self.authenticated()?;
        self.kernel.wait_read(opts).await?;
        let (version, d) = self
            .kernel
            .read(|st| find(st, id).map(|d| (st.version, view(st, d, true))))
            .ok_or_else(|| not_found(id))?;
        self.authorize(&d.job_id, Right::Read)?;
        Ok((version, d))
    }

    /// Pauses, resumes, promotes, fails or cancels a deployment; an action
    /// that does not apply to its state is refused saying why.
    pub async fn deployment_action(
        &self,
        id: &str,
        action: &str,
        reason: &str,
    ) -> Result<WriteResult> {
        if !ACTIONS.contains(&action) {
            return Err(invalid(
                "action",
                format!("'{action}' is not one of {}", ACTIONS.join(", ")),
            ));
        }
        if reason.len() > 1024 {
            return Err(invalid(
                "reason",
                format!("must be at most 1024 bytes; got {}", reason.len()),
            ));
        }
        let job_id = self
            .kernel
            .read(|st| {
                let d = find(st, id).ok_or_else(|| not_found(id))?;
                Ok::<_, Error>((d.job_id.clone(), check_action(d, action)))
            })
            .and_then(|(job_id, applies)| {
                // The right first: a refusal must not reveal the state.
                self.authorize(&job_id, Right::Operate)?;
                applies.map_err(Error::Conflict)?;
                Ok(job_id)
            })?;
        let cmd = deployment_action_command(DeploymentAction {
            job_id,
            deployment_id: id.to_string(),
            action: action.to_string(),
            reason: reason.to_string(),
            by: match self.caller() {
                super::acl::Caller::Token(_) => self.caller().who(),
                _ => "an operator".into(),
            },
            now_ms: crate::kernel::now_ms(),
        });
        let applied = self.commit("deployment", id, cmd).await?;
        if applied.outcome == crate::kernel::state::Outcome::Unchanged {
            // Another action won the race; say where it stands now.
            let state = self
                .kernel
                .read(|st| find(st, id).map(|d| d.state.clone()))
                .unwrap_or_default();
            return Err(Error::Conflict(format!(
                "deployment {id} changed meanwhile and is now {state}: {action} no longer applies"
            )));
        }
        Ok(WriteResult {
            id: id.to_string(),
            version: applied.version,
            outcome: applied.outcome.as_str().to_string(),
            spec_version: None,
            instances: None,
            revision: None,
        })
    }

    /// Puts job `id` back to spec version `to` (default: the one before
    /// the current), keeping its instances: a deployment starts like any
    /// update, marked as a rollback.
    pub async fn rollback_job(&self, id: &str, to: Option<u64>) -> Result<WriteResult> {
        self.authorize(id, Right::Write)?;
        let (spec_json, to, current) = self.kernel.read(|st| {
            let job = st.jobs.get(id).ok_or_else(|| Error::NotFound {
                kind: "job",
                id: id.to_string(),
            })?;
            let current = spec_version(job);
            let to = match to {
                Some(v) => v,
                None => job.history.first().map(|h| h.spec_version).ok_or_else(|| {
                    invalid(
                        "to_version",
                        format!("job {id} has no earlier spec version"),
                    )
                })?,
            };
            if to == current {
                return Err(invalid(
                    "to_version",
                    format!("{to} is the job's current spec version"),
                ));
            }
            let old = job
                .history
                .iter()
                .find(|h| h.spec_version == to)
                .ok_or_else(|| {
                    let kept: Vec<String> = job
                        .history
                        .iter()
                        .map(|h| h.spec_version.to_string())
                        .collect();
                    invalid(
                        "to_version",
                        format!(
                            "spec version {to} of job {id} is not kept (kept: {})",
                            if kept.is_empty() {
                                "none".to_string()
                            } else {
                                kept.join(", ")
                            }
                        ),
                    )
                })?;
            let spec = with_current_instances(&old.spec_json, &job.spec_json).ok_or_else(|| {
                Error::Conflict(format!("stored spec {to} of job {id} does not parse"))
            })?;
            Ok::<_, Error>((spec, to, current))
        })?;
        let mut cmd = put_job_command(id.to_string(), spec_json);
        if let Some(command::Kind::PutJob(p)) = &mut cmd.kind {
            p.expected_spec_version = Some(current);
            p.rollback_to = to;
        }
        let applied = self.commit("job", id, cmd).await?;
        Ok(WriteResult {
            spec_version: self
                .kernel
                .read(|st| st.jobs.get(id).map(|j| spec_version(j))),
            id: id.to_string(),
            version: applied.version,
            outcome: applied.outcome.as_str().to_string(),
            instances: None,
            revision: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::LocalKernel;
    use ocean_spec::JobSpec;

    const ID: &str = "cop.c_owt.o_pdl.p_service.s_job.j_cluster.c";

    fn spec(cmd: &str) -> Vec<u8> {
        let mut s = JobSpec::new(ID, cmd);
        s.instances = 2;
        s.to_canonical_json()
    }

    #[tokio::test]
    async fn rollback_starts_a_deployment_back_to_the_version_asked() {
        let k = LocalKernel::new();
        for cmd in ["a", "b", "c"] {
            k.apply(put_job_command(ID.into(), spec(cmd)));
        }
        let s = Service::new(k.clone());
        let r = s.rollback_job(ID, None).await.unwrap();
        assert_eq!(r.spec_version, Some(4));
        let job = k.read(|st| st.jobs[ID].clone());
        assert_eq!(job.spec_json, spec("b"));
        assert_eq!(job.deployments[0].rollback_to, 2);
        let r = s.rollback_job(ID, Some(1)).await.unwrap();
        assert_eq!(r.spec_version, Some(5));
        assert_eq!(k.read(|st| st.jobs[ID].spec_json.clone()), spec("a"));
        for (to, says) in [(Some(5), "current"), (Some(42), "not kept")] {
            match s.rollback_job(ID, to).await {
                Err(Error::Invalid { field, reason }) => {
                    assert_eq!(field, "to_version");
                    assert!(reason.contains(says), "{reason}");
                }
                other => panic!("{other:?}"),
            }
        }
        let list = s
            .list_deployments(Some(ID), ReadOptions::default())
            .await
            .unwrap();
        assert_eq!(
            list.deployments
                .iter()
                .map(|d| d.spec_version)
                .collect::<Vec<_>>(),
            vec![5, 4, 3, 2]
        );
    }

    #[tokio::test]
    async fn an_action_that_does_not_apply_says_why_and_writes_nothing() {
        let k = LocalKernel::new();
        k.apply(put_job_command(ID.into(), spec("a")));
        k.apply(put_job_command(ID.into(), spec("b")));
        let s = Service::new(k.clone());
        let id = format!("{ID}@2");
        let before = k.version();
        match s.deployment_action(&id, "resume", "").await {
            Err(Error::Conflict(why)) => assert!(why.contains("is running, not paused"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            s.deployment_action(&id, "explode", "").await,
            Err(Error::Invalid { field, .. }) if field == "action"
        ));
        assert!(matches!(
            s.deployment_action(&format!("{ID}@9"), "pause", "").await,
            Err(Error::NotFound {
                kind: "deployment",
                ..
            })
        ));
        assert_eq!(k.version(), before);
        s.deployment_action(&id, "pause", "").await.unwrap();
        let (_, d) = s.get_deployment(&id, ReadOptions::default()).await.unwrap();
        assert_eq!(
            (d.state.as_str(), d.reason.as_str()),
            ("paused", "paused by an operator")
        );
        assert_eq!(d.tasks, Some(vec![]));
    }
}
