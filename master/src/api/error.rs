//! Maps [`Error`] and job-spec errors to HTTP responses and gRPC statuses,
//! once, here.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ocean_spec::SpecError;
use serde_json::json;

use crate::error::Error;

/// An error as the REST API returns it: a status and a JSON body
/// `{"error": "...", "code": "..."}` (plus `errors` for invalid specs).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: serde_json::Value,
}

impl ApiError {
    /// A 400 naming the offending field.
    pub fn bad_request(field: &str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        ApiError {
            status: StatusCode::BAD_REQUEST,
            body: json!({
                "error": format!("{field}: {reason}"),
                "code": "invalid_request",
                "errors": [{"field": field, "reason": reason}],
            }),
        }
    }
}

impl ApiError {
    /// An error with `status` naming `field`.
    pub fn with_status(status: StatusCode, field: &str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        ApiError {
            status,
            body: json!({
                "error": format!("{field}: {reason}"),
                "code": "invalid_request",
                "errors": [{"field": field, "reason": reason}],
            }),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> &serde_json::Value {
        &self.body
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// A 422 for a well-formed request with a bad value, naming the field,
    /// in the shape of the job-spec errors.
    pub fn unprocessable(field: &str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: json!({
                "error": format!("{field}: {reason}"),
                "code": "invalid_request",
                "errors": [{"field": field, "reason": reason}],
            }),
        }
    }
}

fn code(e: &Error) -> (StatusCode, &'static str) {
    match e {
        Error::NoLeader(_) => (StatusCode::SERVICE_UNAVAILABLE, "no_leader"),
        Error::NotCommitted(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_committed"),
        Error::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
        Error::DiskFull(_) => (StatusCode::INSUFFICIENT_STORAGE, "disk_full"),
        Error::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
        Error::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
        Error::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
        Error::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
        Error::VersionConflict { .. } => (StatusCode::CONFLICT, "version_conflict"),
        Error::LeaseHeld { .. } => (StatusCode::CONFLICT, "lease_held"),
        Error::Spec(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_job_spec"),
        Error::Invalid { .. } | Error::Config { .. } => {
            (StatusCode::BAD_REQUEST, "invalid_request")
        }
        Error::Peer { .. } => (StatusCode::BAD_GATEWAY, "peer_error"),
        Error::Agent(_) => (StatusCode::BAD_GATEWAY, "agent_error"),
        Error::Storage { .. }
        | Error::Corrupt { .. }
        | Error::Raft(_)
        | Error::Bind { .. }
        | Error::Io { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let (status, code) = code(&e);
        let mut body = json!({"error": e.to_string(), "code": code});
        match &e {
            Error::Invalid { field, reason } => {
                body["errors"] = json!([{"field": field, "reason": reason}]);
            }
            Error::Spec(spec) => return ApiError::from(spec.clone()),
            Error::VersionConflict {
                expected, actual, ..
            } => {
                body["expected_version"] = json!(expected);
                body["actual_version"] = json!(actual);
            }
            Error::LeaseHeld {
                holder, expires_ms, ..
            } => {
                body["holder"] = json!(holder);
                body["expires_ms"] = json!(expires_ms);
            }
            Error::Forbidden { node, right, .. } => {
                body["node"] = json!(node);
                body["right"] = json!(right);
            }
            Error::DiskFull(reason) => {
                body["errors"] = json!([{"field": "data_dir", "reason": reason}]);
            }
            _ => {}
        }
        ApiError { status, body }
    }
}

impl From<SpecError> for ApiError {
    fn from(e: SpecError) -> Self {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: json!({
                "error": "invalid job spec",
                "code": "invalid_job_spec",
                "errors": e.errors,
            }),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// The gRPC status for an error. A compare-and-set conflict carries both
/// versions in the metadata (`x-ocean-expected-version`,
/// `x-ocean-actual-version`), a held lease its holder and expiry
/// (`x-ocean-holder`, `x-ocean-expires-ms`), so clients need not parse
/// messages.
pub fn to_status(e: Error) -> tonic::Status {
    let msg = e.to_string();
    match e {
        Error::VersionConflict {
            expected, actual, ..
        } => {
            let mut s = tonic::Status::failed_precondition(msg);
            let md = s.metadata_mut();
            md.insert("x-ocean-conflict", "version".parse().expect("ascii"));
            md.insert("x-ocean-expected-version", expected.into());
            md.insert("x-ocean-actual-version", actual.into());
            s
        }
        Error::LeaseHeld {
            holder, expires_ms, ..
        } => {
            let mut s = tonic::Status::failed_precondition(msg);
            let md = s.metadata_mut();
            md.insert("x-ocean-conflict", "lease".parse().expect("ascii"));
            if let Ok(h) = holder.parse() {
                md.insert("x-ocean-holder", h);
            }
            md.insert("x-ocean-expires-ms", expires_ms.into());
            s
        }
        Error::Spec(spec) => spec_status(&spec),
        Error::NoLeader(_) | Error::ShuttingDown => tonic::Status::unavailable(msg),
        Error::NotCommitted(_) => tonic::Status::aborted(msg),
        Error::DiskFull(_) => tonic::Status::resource_exhausted(msg),
        Error::NotFound { .. } => tonic::Status::not_found(msg),
        Error::Conflict(_) => tonic::Status::failed_precondition(msg),
        Error::Invalid { field, reason } => invalid_status(&field, &reason, msg),
        Error::Config { .. } => tonic::Status::invalid_argument(msg),
        Error::Unauthenticated(_) => tonic::Status::unauthenticated(msg),
        Error::Forbidden { .. } => tonic::Status::permission_denied(msg),
        _ => tonic::Status::internal(msg),
    }
}

/// The status for an invalid job spec.
/// Every field error travels as JSON in `x-ocean-errors-bin`.
pub fn spec_status(e: &SpecError) -> tonic::Status {
    let mut s = tonic::Status::invalid_argument(format!("invalid job spec: {e}"));
    if let Ok(json) = serde_json::to_vec(&e.errors) {
        s.metadata_mut().insert_bin(
            "x-ocean-errors-bin",
            tonic::metadata::MetadataValue::from_bytes(&json),
        );
    }
    s
}

/// An invalid request names its field in `x-ocean-errors-bin` too.
fn invalid_status(field: &str, reason: &str, msg: String) -> tonic::Status {
    let mut s = tonic::Status::invalid_argument(msg);
    let json = json!([{"field": field, "reason": reason}]).to_string();
    s.metadata_mut().insert_bin(
        "x-ocean-errors-bin",
        tonic::metadata::MetadataValue::from_bytes(json.as_bytes()),
    );
    s
}
