//! Turning bytes into a validated [`JobSpec`]: JSON or YAML, with every
//! error (syntax, type, unknown or missing field) tagged with its field path.
//!
//! ```text
//!   bytes --Format--> serde_json / serde_yaml --serde_path_to_error--> JobSpec --validate--> Ok
//!                          |                          |                            |
//!                          +---- syntax error --------+--- FieldError(path) -------+--> SpecError
//! ```

use std::fmt;
use std::str::FromStr;

use serde_path_to_error::{Path, Segment};

use crate::error::{FieldError, SpecError, ROOT_FIELD};
use crate::spec::JobSpec;

/// Largest spec accepted, in bytes.
pub const MAX_SPEC_BYTES: usize = 1024 * 1024;

/// The syntax of a spec document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// JSON.
    Json,
    /// YAML.
    Yaml,
    /// JSON if the first non-space byte is `{`, YAML otherwise.
    #[default]
    Auto,
}

impl Format {
    /// Resolves `Auto` by looking at `input`; `Json` and `Yaml` stay as they are.
    pub fn detect(self, input: &[u8]) -> Format {
        match self {
            Format::Auto => {
                let first = input
                    .strip_prefix(b"\xEF\xBB\xBF")
                    .unwrap_or(input)
                    .iter()
                    .find(|b| !b.is_ascii_whitespace());
                if first == Some(&b'{') {
                    Format::Json
                } else {
                    Format::Yaml
                }
            }
            other => other,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Json => "json",
            Format::Yaml => "yaml",
            Format::Auto => "auto",
        })
    }
}

impl FromStr for Format {
    type Err = String;

    /// `json`, `yaml` (or `yml`) and `auto`, any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Ok(Format::Json),
            "yaml" | "yml" => Ok(Format::Yaml),
            "auto" => Ok(Format::Auto),
            _ => Err(format!(
                "unknown spec format '{s}'; expected json, yaml or auto"
            )),
        }
    }
}

/// Parses a job spec and validates it. Never panics, whatever the input.
pub fn parse_job_spec(input: &[u8], format: Format) -> Result<JobSpec, SpecError> {
    let spec = deserialize_job_spec(input, format)?;
    spec.validate()?;
    Ok(spec)
}

/// Parses a job spec without validating it (defaults are filled in).
pub fn deserialize_job_spec(input: &[u8], format: Format) -> Result<JobSpec, SpecError> {
    if input.len() > MAX_SPEC_BYTES {
        return Err(SpecError::single(
            ROOT_FIELD,
            format!(
                "spec is {} bytes; at most {MAX_SPEC_BYTES} allowed",
                input.len()
            ),
        ));
    }
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    if input.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(SpecError::single(ROOT_FIELD, "the spec is empty"));
    }
    match format.detect(input) {
        Format::Yaml => from_yaml(input),
        _ => from_json(input),
    }
}

fn from_json(input: &[u8]) -> Result<JobSpec, SpecError> {
    let mut de = serde_json::Deserializer::from_slice(input);
    let spec = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = path_string(e.path());
        field_error(path, json_message(e.inner()))
    })?;
    de.end()
        .map_err(|e| field_error(String::new(), json_message(&e)))?;
    Ok(spec)
}

/// serde_json's message with its position re-attached in our style.
fn json_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match text.strip_suffix(&suffix) {
        Some(message) if e.line() > 0 => {
            format!("{message} (line {}, column {})", e.line(), e.column())
        }
        _ => text,
    }
}

fn from_yaml(input: &[u8]) -> Result<JobSpec, SpecError> {
    let de = serde_yaml::Deserializer::from_slice(input);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = path_string(e.path());
        let message = yaml_message(e.inner(), &path);
        field_error(path, message)
    })
}

/// serde_yaml's message without its own path prefix (ours is more
/// precise), with the position in our style.
fn yaml_message(e: &serde_yaml::Error, path: &str) -> String {
    let mut text = e.to_string();
    if let Some((prefix, rest)) = text.split_once(": ") {
        if !prefix.is_empty() && path.starts_with(prefix) {
            text = rest.to_owned();
        }
    }
    if let Some(location) = e.location() {
        let suffix = format!(" at line {} column {}", location.line(), location.column());
        if let Some(message) = text.strip_suffix(&suffix) {
            text = format!(
                "{message} (line {}, column {})",
                location.line(),
                location.column()
            );
        }
    }
    text
}

/// `a.b[0].c`, or empty for the document itself. Segments serde could not
/// name (syntax errors inside a map) are left out.
fn path_string(path: &Path) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// Builds the error for a deserialization failure at `base`. serde reports
/// missing fields at the enclosing struct, so the field named in the message
/// is appended to the path (unknown and duplicate keys are usually already
/// the path's last segment).
fn field_error(base: String, message: String) -> SpecError {
    let message = message.replace(
        "expected struct JobSpec",
        "expected a job spec (a mapping of fields)",
    );
    let (field, reason) = match named_field(&message) {
        Some((kind, name, reason)) => {
            // An empty key (`{"": 1}`) is named as written, so the error
            // still points somewhere (found by tests/fuzz_corpus.rs).
            let name = if name.is_empty() { "\"\"" } else { name };
            let already_there = base == name || base.ends_with(&format!(".{name}"));
            let field = if base.is_empty() {
                name.to_owned()
            } else if kind != FieldProblem::Missing && already_there {
                base
            } else {
                format!("{base}.{name}")
            };
            (field, reason)
        }
        None if base.is_empty() => (ROOT_FIELD.to_owned(), message),
        None => (base, message),
    };
    SpecError::from(FieldError::new(field, reason))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldProblem {
    Missing,
    Unknown,
    Duplicate,
}

/// For serde's "missing field `x`", "unknown field `x`, expected ..." and
/// "duplicate field `x`" messages: the kind, the field name and a reason
/// without the name.
fn named_field(message: &str) -> Option<(FieldProblem, &str, String)> {
    for (kind, prefix, reason) in [
        (
            FieldProblem::Missing,
            "missing field `",
            "required field is missing",
        ),
        (FieldProblem::Unknown, "unknown field `", "unknown field"),
        (
            FieldProblem::Duplicate,
            "duplicate field `",
            "field appears more than once",
        ),
    ] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let (name, tail) = rest.split_once('`')?;
            let tail = tail.trim_start_matches(',').trim_start();
            let reason = if tail.is_empty() {
                reason.to_owned()
            } else if tail.starts_with('(') {
                format!("{reason} {tail}")
            } else {
                format!("{reason}; {tail}")
            };
            return Some((kind, name, reason));
        }
    }
    None
}
