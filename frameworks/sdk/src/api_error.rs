//! [`ApiError`]: a framework's REST error in the master's own shape,
//! `{"error", "code", "errors": [{"field", "reason"}]}`, so a client reads
//! every framework's refusals as it reads the master's.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ocean_client::Error;
use serde_json::{json, Value};

/// An error as a framework's API answers it.
#[derive(Debug)]
pub struct ApiError(StatusCode, Value);

/// A framework route's result.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// `status` with `code`, naming `field` and why.
    pub fn new(status: StatusCode, code: &str, field: &str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        ApiError(
            status,
            json!({
                "error": format!("{field}: {reason}"),
                "code": code,
                "errors": [{"field": field, "reason": reason}],
            }),
        )
    }

    /// A 400 `invalid_request` naming `field`.
    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", field, reason)
    }

    /// The HTTP status it answers with.
    pub fn status(&self) -> StatusCode {
        self.0
    }

    /// The field it names and the reason, for forms that show it beside
    /// the field.
    pub fn field_reason(&self) -> (String, String) {
        let e = &self.1["errors"][0];
        (
            e["field"].as_str().unwrap_or_default().to_string(),
            e["reason"].as_str().unwrap_or_default().to_string(),
        )
    }

    /// Its message (`field: reason`), for pages that show it.
    pub fn message(&self) -> String {
        self.1["error"].as_str().unwrap_or_default().to_string()
    }
}

/// The masters' refusal, passed on with the status it deserves.
impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let (status, code) = match &e {
            Error::Invalid { .. } => (StatusCode::BAD_REQUEST, "invalid_request"),
            Error::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Error::VersionConflict { .. } | Error::Conflict(_) => {
                (StatusCode::CONFLICT, "conflict")
            }
            Error::Unavailable(_) | Error::NotCommitted(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            _ => (StatusCode::BAD_GATEWAY, "master_error"),
        };
        ApiError::new(status, code, "master", e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shape_is_the_masters() {
        let e = ApiError::invalid("shards", "must be 1..=64; got 0");
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert_eq!(e.message(), "shards: must be 1..=64; got 0");
        assert_eq!(
            e.field_reason(),
            ("shards".to_string(), "must be 1..=64; got 0".to_string())
        );
        let e = ApiError::from(Error::NotFound("job x".into()));
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
        assert_eq!(e.field_reason().0, "master");
    }
}

/// Why a framework refused an operator's action, decided by pure code
/// before any I/O: the field it is about and the reason; `conflict`:
/// well-formed, but the state does not allow it now (409); `missing`: the
/// thing named does not exist (404); neither: a bad request (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Refused {
    /// The field, as named in the request.
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
    /// 409.
    pub conflict: bool,
    /// 404.
    pub missing: bool,
}

impl Refused {
    /// A 400.
    pub fn bad(field: &'static str, reason: impl Into<String>) -> Self {
        Refused {
            field,
            reason: reason.into(),
            conflict: false,
            missing: false,
        }
    }
    /// A 409.
    pub fn conflict(field: &'static str, reason: impl Into<String>) -> Self {
        Refused {
            conflict: true,
            ..Refused::bad(field, reason)
        }
    }
    /// A 404.
    pub fn missing(field: &'static str, reason: impl Into<String>) -> Self {
        Refused {
            missing: true,
            ..Refused::bad(field, reason)
        }
    }
}

impl From<Refused> for ApiError {
    fn from(r: Refused) -> Self {
        let (status, code) = if r.missing {
            (StatusCode::NOT_FOUND, "not_found")
        } else if r.conflict {
            (StatusCode::CONFLICT, "conflict")
        } else {
            (StatusCode::BAD_REQUEST, "invalid_request")
        };
        ApiError::new(status, code, r.field, r.reason)
    }
}
