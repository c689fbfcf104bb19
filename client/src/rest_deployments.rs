//! [`RestClient`]'s calls for deployments, rollback and plans: the same
//! calls as [`Client`](crate::Client)'s `list_deployments`,
//! `get_deployment`, `deployment_action`, `rollback_job` and `plan_job`,
//! answering the REST API's JSON.

use serde_json::{json, Value};

use crate::rest::{Body, Method, RestClient, RestError};

/// Percent-encodes a job or deployment id for a path or query.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl RestClient {
    /// `GET /v1/deployments[?job=]`.
    pub async fn list_deployments(&self, job: Option<&str>) -> Result<Value, RestError> {
        match job {
            Some(j) => self.get(&format!("/v1/deployments?job={}", enc(j))).await,
            None => self.get("/v1/deployments").await,
        }
    }

    /// `GET /v1/deployments/{id}`, with each task's progress.
    pub async fn get_deployment(&self, id: &str) -> Result<Value, RestError> {
        self.get(&format!("/v1/deployments/{}", enc(id))).await
    }

    /// `POST /v1/deployments/{id}/{action}` (pause, resume, promote, fail,
    /// cancel).
    pub async fn deployment_action(
        &self,
        id: &str,
        action: &str,
        reason: &str,
    ) -> Result<Value, RestError> {
        self.post(
            &format!("/v1/deployments/{}/{}", enc(id), enc(action)),
            json!({ "reason": reason }),
        )
        .await
    }

    /// `POST /v1/jobs/{id}/rollback` (`to`: default the previous version).
    pub async fn rollback_job(&self, id: &str, to: Option<u64>) -> Result<Value, RestError> {
        let body = match to {
            Some(n) => json!({ "to_version": n }),
            None => json!({}),
        };
        self.post(&format!("/v1/jobs/{}/rollback", enc(id)), body)
            .await
    }

    /// `POST /v1/jobs/{id}/plan` with a spec (JSON or YAML, as its
    /// `content_type` says).
    pub async fn plan_job(
        &self,
        id: &str,
        spec: Vec<u8>,
        content_type: &str,
    ) -> Result<Value, RestError> {
        self.request(
            Method::POST,
            &format!("/v1/jobs/{}/plan", enc(id)),
            Body::Raw {
                bytes: spec,
                content_type: content_type.to_string(),
            },
        )
        .await
    }
}
