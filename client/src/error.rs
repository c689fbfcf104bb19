//! What a call to the masters can end in, kept as typed as the master's
//! gRPC status allows: callers branch on the variant (retry, re-read and
//! compare-and-set again, show the field errors) instead of parsing
//! messages. The metadata keys are the ones `ocean-master` sets in its
//! `api::error::to_status`.

use serde::{Deserialize, Serialize};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};

/// `version` or `lease` on a failed precondition that carries details.
const CONFLICT: &str = "x-ocean-conflict";
const EXPECTED_VERSION: &str = "x-ocean-expected-version";
const ACTUAL_VERSION: &str = "x-ocean-actual-version";
const HOLDER: &str = "x-ocean-holder";
const EXPIRES_MS: &str = "x-ocean-expires-ms";
/// JSON `[{"field": ..., "reason": ...}]` on an invalid-argument status.
const ERRORS_BIN: &str = "x-ocean-errors-bin";

/// A result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One thing wrong with a request: where (`ports[1].name`) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// Path of the offending field, e.g. `ports[1].name`.
    pub field: String,
    /// What is wrong with it and, where useful, what is allowed.
    pub reason: String,
}

impl FieldError {
    /// An error for `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The request (or the job spec in it) is wrong; sending it again will
    /// not help.
    #[error("{message}")]
    Invalid {
        message: String,
        errors: Vec<FieldError>,
    },
    /// The job, task, agent, key or lease does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A compare-and-set lost: the object is at `actual` (0: it does not
    /// exist), not `expected`. The master's message names both already.
    #[error("{message}")]
    VersionConflict {
        message: String,
        expected: u64,
        actual: u64,
    },
    /// Someone else holds the lease until `expires_ms` (leader clock).
    #[error("{message}")]
    LeaseHeld {
        message: String,
        holder: String,
        expires_ms: u64,
    },
    /// Any other failed precondition (or "already exists").
    #[error("{0}")]
    Conflict(String),
    /// No leader, or no master reachable: nothing was written, so the call
    /// can be retried.
    #[error("{0}")]
    Unavailable(String),
    /// The master gave up waiting for the write to commit (or the call ran
    /// out of time): it may or may not have happened. Read before retrying.
    #[error("{0}")]
    NotCommitted(String),
    /// Anything else the master (or the transport) answered.
    #[error("{message} ({code:?})")]
    Other { code: Code, message: String },
}

impl Error {
    /// The master's message alone (what `Display` shows, without the code
    /// that [`Error::Other`] adds).
    pub fn message(&self) -> &str {
        match self {
            Error::Invalid { message, .. }
            | Error::VersionConflict { message, .. }
            | Error::LeaseHeld { message, .. }
            | Error::Other { message, .. } => message,
            Error::NotFound(message)
            | Error::Conflict(message)
            | Error::Unavailable(message)
            | Error::NotCommitted(message) => message,
        }
    }

    /// The error a master's status stands for.
    pub fn from_status(status: Status) -> Error {
        let message = status.message().to_string();
        let md = status.metadata();
        match status.code() {
            Code::InvalidArgument => {
                let errors = md
                    .get_bin(ERRORS_BIN)
                    .and_then(|v| v.to_bytes().ok())
                    .and_then(|b| serde_json::from_slice::<Vec<FieldError>>(&b).ok())
                    .filter(|errors| !errors.is_empty())
                    .unwrap_or_else(|| vec![FieldError::new("request", message.clone())]);
                Error::Invalid { message, errors }
            }
            Code::NotFound => Error::NotFound(message),
            Code::FailedPrecondition => match md.get(CONFLICT).and_then(|v| v.to_str().ok()) {
                Some("version") => Error::VersionConflict {
                    expected: md_u64(md, EXPECTED_VERSION),
                    actual: md_u64(md, ACTUAL_VERSION),
                    message,
                },
                Some("lease") => Error::LeaseHeld {
                    holder: md_str(md, HOLDER),
                    expires_ms: md_u64(md, EXPIRES_MS),
                    message,
                },
                _ => Error::Conflict(message),
            },
            Code::AlreadyExists => Error::Conflict(message),
            Code::Unavailable => Error::Unavailable(message),
            Code::Aborted | Code::DeadlineExceeded => Error::NotCommitted(message),
            code => Error::Other { code, message },
        }
    }

    /// The status a master would answer for this error (what an
    /// in-process server or a fake sends), so `from_status` gives it back.
    pub fn to_status(&self) -> Status {
        match self {
            Error::Invalid { message, errors } => {
                let mut status = Status::invalid_argument(message.clone());
                if let Ok(json) = serde_json::to_vec(errors) {
                    status
                        .metadata_mut()
                        .insert_bin(ERRORS_BIN, MetadataValue::from_bytes(&json));
                }
                status
            }
            Error::NotFound(message) => Status::not_found(message.clone()),
            Error::VersionConflict {
                message,
                expected,
                actual,
            } => {
                let mut status = Status::failed_precondition(message.clone());
                let md = status.metadata_mut();
                md.insert(CONFLICT, MetadataValue::from_static("version"));
                md.insert(EXPECTED_VERSION, (*expected).into());
                md.insert(ACTUAL_VERSION, (*actual).into());
                status
            }
            Error::LeaseHeld {
                message,
                holder,
                expires_ms,
            } => {
                let mut status = Status::failed_precondition(message.clone());
                let md = status.metadata_mut();
                md.insert(CONFLICT, MetadataValue::from_static("lease"));
                // A holder that is not visible ASCII cannot travel as a
                // header; the master drops it the same way.
                if let Ok(holder) = holder.parse() {
                    md.insert(HOLDER, holder);
                }
                md.insert(EXPIRES_MS, (*expires_ms).into());
                status
            }
            Error::Conflict(message) => Status::failed_precondition(message.clone()),
            Error::Unavailable(message) => Status::unavailable(message.clone()),
            Error::NotCommitted(message) => Status::aborted(message.clone()),
            Error::Other { code, message } => Status::new(*code, message.clone()),
        }
    }
}

impl From<Status> for Error {
    fn from(status: Status) -> Self {
        Error::from_status(status)
    }
}

fn md_u64(md: &MetadataMap, key: &str) -> u64 {
    md.get(key)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn md_str(md: &MetadataMap, key: &str) -> String {
    md.get(key)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A status built the way the master builds it.
    fn with_md(mut status: Status, pairs: &[(&'static str, &str)]) -> Status {
        for (k, v) in pairs {
            status.metadata_mut().insert(*k, v.parse().unwrap());
        }
        status
    }

    #[test]
    fn version_conflict_keeps_both_versions() {
        let status = with_md(
            Status::failed_precondition("job demo.web changed"),
            &[
                (CONFLICT, "version"),
                (EXPECTED_VERSION, "3"),
                (ACTUAL_VERSION, "5"),
            ],
        );
        let err = Error::from_status(status);
        assert_eq!(
            err,
            Error::VersionConflict {
                message: "job demo.web changed".into(),
                expected: 3,
                actual: 5,
            }
        );
        assert_eq!(Error::from_status(err.to_status()), err);
    }

    #[test]
    fn lease_held_keeps_holder_and_expiry() {
        let status = with_md(
            Status::failed_precondition("lease cron/leader is held"),
            &[
                (CONFLICT, "lease"),
                (HOLDER, "cron-7"),
                (EXPIRES_MS, "1700000000123"),
            ],
        );
        let err = Error::from_status(status);
        assert_eq!(
            err,
            Error::LeaseHeld {
                message: "lease cron/leader is held".into(),
                holder: "cron-7".into(),
                expires_ms: 1_700_000_000_123,
            }
        );
        assert_eq!(Error::from_status(err.to_status()), err);
    }

    #[test]
    fn invalid_argument_carries_field_errors() {
        let mut status = Status::invalid_argument("invalid job spec: 2 errors");
        let json = br#"[{"field":"ports[1].name","reason":"must be unique"},
                        {"field":"cpus","reason":"must be > 0"}]"#;
        status
            .metadata_mut()
            .insert_bin(ERRORS_BIN, MetadataValue::from_bytes(json));
        let err = Error::from_status(status);
        let Error::Invalid { message, errors } = &err else {
            panic!("expected Invalid, got {err:?}");
        };
        assert_eq!(message, "invalid job spec: 2 errors");
        assert_eq!(
            errors,
            &[
                FieldError::new("ports[1].name", "must be unique"),
                FieldError::new("cpus", "must be > 0"),
            ]
        );
        assert_eq!(Error::from_status(err.to_status()), err);
    }

    #[test]
    fn invalid_argument_without_details_names_the_request() {
        let err = Error::from_status(Status::invalid_argument("bad prefix"));
        assert_eq!(
            err,
            Error::Invalid {
                message: "bad prefix".into(),
                errors: vec![FieldError::new("request", "bad prefix")],
            }
        );
    }

    #[test]
    fn codes_map_to_variants_and_back() {
        let cases = [
            (
                Status::not_found("no job x"),
                Error::NotFound("no job x".into()),
            ),
            (
                Status::failed_precondition("busy"),
                Error::Conflict("busy".into()),
            ),
            (Status::already_exists("dup"), Error::Conflict("dup".into())),
            (
                Status::unavailable("no leader"),
                Error::Unavailable("no leader".into()),
            ),
            (Status::aborted("lost"), Error::NotCommitted("lost".into())),
            (
                Status::deadline_exceeded("slow"),
                Error::NotCommitted("slow".into()),
            ),
            (
                Status::internal("boom"),
                Error::Other {
                    code: Code::Internal,
                    message: "boom".into(),
                },
            ),
        ];
        for (status, want) in cases {
            let got = Error::from_status(status);
            assert_eq!(got, want);
            assert_eq!(Error::from_status(got.to_status()), want);
        }
        // Already-exists travels back as the failed precondition the master
        // sends for conflicts.
        assert_eq!(
            Error::Conflict("dup".into()).to_status().code(),
            Code::FailedPrecondition
        );
    }

    #[test]
    fn missing_or_garbled_numbers_read_as_zero() {
        let status = with_md(
            Status::failed_precondition("changed"),
            &[(CONFLICT, "version"), (EXPECTED_VERSION, "seven")],
        );
        assert_eq!(
            Error::from_status(status),
            Error::VersionConflict {
                message: "changed".into(),
                expected: 0,
                actual: 0,
            }
        );
    }
}
