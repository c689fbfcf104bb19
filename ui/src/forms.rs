//! Field errors of a submitted form, shown next to the field they name
//! (the service's `Invalid { field, .. }` errors carry the field already).

use std::collections::BTreeMap;

/// Errors by field name; empty when the form was fine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(BTreeMap<String, String>);

impl FieldErrors {
    /// No errors.
    pub fn none() -> Self {
        FieldErrors::default()
    }

    /// One error on `field`.
    pub fn one(field: &str, reason: impl Into<String>) -> Self {
        let mut e = FieldErrors::default();
        e.add(field, reason);
        e
    }

    /// Adds an error on `field` (the first one stays).
    pub fn add(&mut self, field: &str, reason: impl Into<String>) {
        self.0.entry(field.to_string()).or_insert(reason.into());
    }

    /// Adds an error on `field`, after any it has already.
    pub fn append(&mut self, field: &str, reason: impl Into<String>) {
        let reason = reason.into();
        self.0
            .entry(field.to_string())
            .and_modify(|r| {
                r.push_str("; ");
                r.push_str(&reason);
            })
            .or_insert(reason);
    }

    /// The fields with errors, in name order.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The error on `field`, if any.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.get(field).map(String::as_str)
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The service's refusal as field errors, when it names a field:
    /// `Ok` holds them, `Err` gives back any other error.
    pub fn from_service(
        e: ocean_master::Error,
        rename: &[(&str, &str)],
    ) -> std::result::Result<Self, ocean_master::Error> {
        match e {
            ocean_master::Error::Invalid { field, reason } => {
                let field = rename
                    .iter()
                    .find(|(from, _)| *from == field)
                    .map(|(_, to)| to.to_string())
                    .unwrap_or(field);
                Ok(FieldErrors::one(&field, reason))
            }
            other => Err(other),
        }
    }
}
