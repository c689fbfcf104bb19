//! Errors: one [`FieldError`] per problem, collected into a [`SpecError`].
//!
//! Every error names the field it is about with a path such as `id`,
//! `resources.mem`, `ports[1].name`, `constraints[0][1]` or `env.MY-VAR`,
//! so that a user can find the offending line without reading our code.

use std::fmt;

use serde::Serialize;

/// Field path used for problems that concern the document as a whole
/// (empty input, a syntax error before the first field, ...).
pub const ROOT_FIELD: &str = "(root)";

/// One problem with one field of a job spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    /// Path of the offending field, e.g. `ports[1].name`.
    pub field: String,
    /// What is wrong with it and, where useful, what is allowed.
    pub reason: String,
}

impl FieldError {
    /// Builds an error for `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// A job spec was rejected: every problem found, in document order.
///
/// `Display` lists them all as `field: reason; field: reason`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}", ListDisplay(.errors))]
pub struct SpecError {
    /// The problems; never empty when produced by this crate.
    pub errors: Vec<FieldError>,
}

impl SpecError {
    /// A spec error with a single problem.
    pub fn single(field: impl Into<String>, reason: impl Into<String>) -> Self {
        SpecError {
            errors: vec![FieldError::new(field, reason)],
        }
    }

    /// The JSON body the master answers with (HTTP 422):
    /// `{"error":"invalid job spec","errors":[{"field":..,"reason":..}]}`.
    pub fn to_response_body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": "invalid job spec",
            "errors": self.errors,
        })
    }

    /// True if some error is about exactly `field`.
    pub fn has_field(&self, field: &str) -> bool {
        self.errors.iter().any(|e| e.field == field)
    }
}

impl From<FieldError> for SpecError {
    fn from(error: FieldError) -> Self {
        SpecError {
            errors: vec![error],
        }
    }
}

/// Formats a list of field errors as `a: x; b: y`.
struct ListDisplay<'a>(&'a [FieldError]);

impl fmt::Display for ListDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_lists_every_error() {
        let error = SpecError {
            errors: vec![
                FieldError::new("id", "tag 'pdl' missing"),
                FieldError::new("resources.mem", "must be at least 4"),
            ],
        };
        assert_eq!(
            error.to_string(),
            "id: tag 'pdl' missing; resources.mem: must be at least 4"
        );
    }

    #[test]
    fn response_body_has_the_master_shape() {
        let body = SpecError::single("id", "missing").to_response_body();
        assert_eq!(
            body,
            serde_json::json!({
                "error": "invalid job spec",
                "errors": [{"field": "id", "reason": "missing"}],
            })
        );
    }
}
