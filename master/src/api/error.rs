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
        Error::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
        Error::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
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
        if let Error::Invalid { field, reason } = &e {
            body["errors"] = json!([{"field": field, "reason": reason}]);
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

/// The gRPC status for an error.
pub fn to_status(e: Error) -> tonic::Status {
    let msg = e.to_string();
    match e {
        Error::NoLeader(_) | Error::ShuttingDown => tonic::Status::unavailable(msg),
        Error::NotCommitted(_) => tonic::Status::aborted(msg),
        Error::NotFound { .. } => tonic::Status::not_found(msg),
        Error::Conflict(_) => tonic::Status::failed_precondition(msg),
        Error::Invalid { .. } | Error::Config { .. } => tonic::Status::invalid_argument(msg),
        _ => tonic::Status::internal(msg),
    }
}

/// The status for an invalid job spec.
pub fn spec_status(e: &SpecError) -> tonic::Status {
    tonic::Status::invalid_argument(format!("invalid job spec: {e}"))
}

/// Turns a status from a forwarded call back into an error.
pub fn from_status(s: tonic::Status) -> Error {
    let msg = s.message().to_string();
    match s.code() {
        tonic::Code::Unavailable => Error::NoLeader(msg),
        tonic::Code::Aborted | tonic::Code::DeadlineExceeded => Error::NotCommitted(msg),
        tonic::Code::NotFound => Error::NotFound {
            kind: "object",
            id: msg,
        },
        tonic::Code::FailedPrecondition | tonic::Code::AlreadyExists => Error::Conflict(msg),
        tonic::Code::InvalidArgument => Error::Invalid {
            field: "request".into(),
            reason: msg,
        },
        _ => Error::Peer {
            peer: 0,
            reason: msg,
        },
    }
}
