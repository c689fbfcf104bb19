//! Failovers as the masters see them: a framework that moves a primary
//! (the database and cache operators) records it under `failovers/<id>` in
//! its own namespace, and the masters' `failover` alert rules read every
//! namespace's `failovers/` keys. One shape for every framework, so the
//! masters need not know any framework's own records.
//!
//! The record is the newest failover of that database or cache; `count`
//! says how many there have been. `at_ms` is the framework's clock (the
//! leader's when it runs in-process): an alert window of minutes makes
//! masters' skew of a second or two immaterial.

use ocean_client::api::{KvKeyRequest, KvPutRequest};
use ocean_client::{Client, Error};
use serde::{Deserialize, Serialize};

/// Prefix of failover keys in a framework's namespace.
pub const KEY_PREFIX: &str = "failovers/";

/// The newest failover of one database or cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailoverRecord {
    /// What it is, for people: `database` or `cache`.
    pub kind: String,
    /// Its name in the framework (`key`, `sessions`).
    pub name: String,
    /// The job whose tasks failed over: the service-tree node that covers
    /// the job covers the failover.
    pub job: String,
    /// The task that was primary (empty: unknown).
    #[serde(default)]
    pub from: String,
    /// The task promoted.
    pub to: String,
    /// Why: `primary lost`, `switchover`, ...
    #[serde(default)]
    pub reason: String,
    /// When it was done, ms since the epoch, the framework's clock.
    pub at_ms: u64,
    /// Failovers of this database or cache so far (this one included).
    pub count: u64,
}

impl FailoverRecord {
    /// The key it is stored under.
    pub fn key_of(name: &str) -> String {
        format!("{KEY_PREFIX}{name}")
    }
}

/// Records `rec` in `namespace`, counting on from the record already there.
/// The count is read then written without compare-and-set: the operators
/// that call this act only under their framework's lease, one at a time.
pub async fn record(
    client: &dyn Client,
    namespace: &str,
    mut rec: FailoverRecord,
) -> Result<(), Error> {
    let key = FailoverRecord::key_of(&rec.name);
    let got = client
        .kv_get(KvKeyRequest {
            namespace: namespace.to_string(),
            key: key.clone(),
            read: None,
            expected_revision: None,
        })
        .await;
    let before = match got {
        Ok(e) => serde_json::from_slice::<FailoverRecord>(&e.value).map_or(0, |r| r.count),
        Err(Error::NotFound(_)) => 0,
        Err(e) => return Err(e),
    };
    rec.count = before + 1;
    let value = serde_json::to_vec(&rec).unwrap_or_default();
    client
        .kv_put(KvPutRequest {
            namespace: namespace.to_string(),
            key,
            value,
            expected_revision: None,
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_from_its_json_and_old_fields_default() {
        let r = FailoverRecord {
            kind: "database".into(),
            name: "key".into(),
            job: "db-key".into(),
            from: "t1".into(),
            to: "t2".into(),
            reason: "primary lost".into(),
            at_ms: 7,
            count: 2,
        };
        let back: FailoverRecord =
            serde_json::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        let min: FailoverRecord = serde_json::from_str(
            r#"{"kind":"cache","name":"c","job":"j","to":"t","at_ms":1,"count":1}"#,
        )
        .unwrap();
        assert_eq!(min.from, "");
        assert_eq!(FailoverRecord::key_of("c"), "failovers/c");
    }
}
