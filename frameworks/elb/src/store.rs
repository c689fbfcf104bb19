//! ELB objects through the masters: keys `elbs/<name>` of the `elb`
//! namespace, written with compare-and-set so a create never overwrites
//! and a delete never removes a newer version.

use std::sync::Arc;

use ocean_client::api::{
    JobRef, KvKeyRequest, KvListRequest, KvPutRequest, ListTasksRequest, Task,
};
use ocean_client::Client;

use crate::spec::{conflicts, ElbSpec, InvalidElb};
use crate::NAMESPACE;

/// The key prefix of ELB objects.
pub const PREFIX: &str = "elbs/";

/// An ELB operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object is invalid or conflicts with another ELB.
    #[error(transparent)]
    Invalid(#[from] InvalidElb),
    /// An ELB of that name exists.
    #[error("ELB {0} already exists; delete it first")]
    Exists(String),
    /// No ELB of that name.
    #[error("no ELB named {0}")]
    NotFound(String),
    /// A stored object does not parse (written by another version?).
    #[error("stored ELB {key} does not parse: {reason}")]
    Corrupt {
        /// Its key.
        key: String,
        /// Why.
        reason: String,
    },
    /// The masters answered with an error.
    #[error(transparent)]
    Client(#[from] ocean_client::Error),
}

/// ELB objects over a client of the masters.
#[derive(Debug, Clone)]
pub struct Store {
    client: Arc<dyn Client>,
}

/// The key of an ELB.
pub fn key(name: &str) -> String {
    format!("{PREFIX}{name}")
}

/// Parses a stored value.
pub fn decode(key: &str, value: &[u8]) -> Result<ElbSpec, StoreError> {
    serde_json::from_slice(value).map_err(|e| StoreError::Corrupt {
        key: key.to_string(),
        reason: e.to_string(),
    })
}

impl Store {
    /// A store over `client` (the in-process client on a master).
    pub fn new(client: Arc<dyn Client>) -> Self {
        Store { client }
    }

    /// The client it uses.
    pub fn client(&self) -> &Arc<dyn Client> {
        &self.client
    }

    /// Every ELB with its revision, by name.
    pub async fn list(&self) -> Result<Vec<(ElbSpec, u64)>, StoreError> {
        let r = self
            .client
            .kv_list(KvListRequest {
                namespace: NAMESPACE.into(),
                prefix: PREFIX.into(),
                read: None,
            })
            .await?;
        r.entries
            .iter()
            .map(|e| Ok((decode(&e.key, &e.value)?, e.revision)))
            .collect()
    }

    /// One ELB and its revision.
    pub async fn get(&self, name: &str) -> Result<(ElbSpec, u64), StoreError> {
        match self
            .client
            .kv_get(KvKeyRequest {
                namespace: NAMESPACE.into(),
                key: key(name),
                read: None,
                expected_revision: None,
            })
            .await
        {
            Ok(e) => Ok((decode(&e.key, &e.value)?, e.revision)),
            Err(ocean_client::Error::NotFound(_)) => Err(StoreError::NotFound(name.into())),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates an ELB: valid, no VIP:port of another ELB, and no ELB of
    /// that name yet. Returns the state version it was written at.
    pub async fn create(&self, spec: &ElbSpec) -> Result<u64, StoreError> {
        spec.validate()?;
        let others = self.list().await?;
        if others.iter().any(|(o, _)| o.name == spec.name) {
            return Err(StoreError::Exists(spec.name.clone()));
        }
        conflicts(spec, others.iter().map(|(o, _)| o))?;
        let value = serde_json::to_vec(spec).map_err(|e| StoreError::Corrupt {
            key: key(&spec.name),
            reason: e.to_string(),
        })?;
        match self
            .client
            .kv_put(KvPutRequest {
                namespace: NAMESPACE.into(),
                key: key(&spec.name),
                value,
                expected_revision: Some(0),
            })
            .await
        {
            Ok(r) => Ok(r.version),
            Err(ocean_client::Error::VersionConflict { .. }) => {
                Err(StoreError::Exists(spec.name.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes an ELB (the version read, so a concurrent replace wins).
    pub async fn delete(&self, name: &str) -> Result<u64, StoreError> {
        let (_, revision) = self.get(name).await?;
        let r = self
            .client
            .kv_delete(KvKeyRequest {
                namespace: NAMESPACE.into(),
                key: key(name),
                read: None,
                expected_revision: Some(revision),
            })
            .await?;
        Ok(r.version)
    }

    /// Whether `job` has health checks (a job not yet created: assumed
    /// to, so nothing of it serves before a verdict).
    pub async fn has_health_checks(&self, job: &str) -> Result<bool, StoreError> {
        match self
            .client
            .get_job(JobRef {
                id: job.into(),
                ..Default::default()
            })
            .await
        {
            Ok(j) => Ok(crate::backends::has_health_checks(&j.spec_json)),
            Err(ocean_client::Error::NotFound(_)) => Ok(true),
            Err(e) => Err(e.into()),
        }
    }

    /// The live tasks of a job.
    pub async fn tasks(&self, job: &str) -> Result<Vec<Task>, StoreError> {
        Ok(self
            .client
            .list_tasks(ListTasksRequest {
                job: job.into(),
                ended: Some(false),
                ..Default::default()
            })
            .await?
            .tasks)
    }
}
