//! `templates`: configuration files the agent renders into a task's
//! sandbox before it starts (minijinja syntax, undefined variables are
//! errors). Values come in sections: `base`, overridden key by key by the
//! section named like the job's environment (the `cluster` tag of its id:
//! `production`, `staging`, ...), beside the facts the agent knows about
//! the task (see [`FACTS`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::artifact::is_relative_inside;
use crate::validate::Collector;

/// Most templates a job may list.
pub const MAX_TEMPLATES: usize = 32;
/// Longest `inline` template, bytes.
pub const MAX_INLINE_LEN: usize = 64 * 1024;
/// The section every environment inherits from.
pub const BASE_SECTION: &str = "base";
/// Names the agent sets from the task (`{{ ports.http }}`, `{{ host }}`,
/// ...); a value may not take one of them.
pub const FACTS: [&str; 9] = [
    "task_id",
    "job_id",
    "host",
    "ports",
    "environment",
    "version",
    "release_dir",
    "sandbox",
    "dns",
];
/// Sandbox entries a template may not overwrite: the task's logs and the
/// release link.
pub const RESERVED_DESTS: [&str; 5] = ["stdout", "stderr", "stdout.1", "stderr.1", "current"];

/// One file rendered for every task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// A template shipped in the release, relative to the release
    /// directory (e.g. `config.template.yml`); exclusive with `inline`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The template's text itself; exclusive with `source`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
    /// Where the rendered file goes, relative to the task's sandbox.
    pub dest: String,
    /// Sections of values: `base`, and one per environment overriding it.
    #[serde(default)]
    pub values: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
}

/// `[a-z0-9][a-z0-9_-]*`: the form of a cluster tag.
fn is_section_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// `[A-Za-z_][A-Za-z0-9_]*`: a name a template can use as a variable.
fn is_variable_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

pub(crate) fn check_templates(templates: &[Template], errors: &mut Collector) {
    if templates.len() > MAX_TEMPLATES {
        errors.push(
            "templates",
            format!("at most {MAX_TEMPLATES} templates; got {}", templates.len()),
        );
    }
    let mut dests = BTreeMap::new();
    for (i, t) in templates.iter().enumerate() {
        let field = |name: &str| format!("templates[{i}].{name}");
        match (&t.source, &t.inline) {
            (Some(_), Some(_)) => errors.push(
                field("inline"),
                "source and inline are exclusive: a file of the release, or the text itself",
            ),
            (None, None) => errors.push(
                field("source"),
                "set source (a file of the release) or inline (the template's text)",
            ),
            (Some(source), None) if !is_relative_inside(source) => errors.push(
                field("source"),
                "must be a relative path inside the release, without '..'",
            ),
            (None, Some(inline)) if inline.len() > MAX_INLINE_LEN => errors.push(
                field("inline"),
                format!("must be at most {MAX_INLINE_LEN} bytes"),
            ),
            _ => {}
        }
        if !is_relative_inside(&t.dest) || t.dest.ends_with('/') {
            errors.push(
                field("dest"),
                "must be a relative file path inside the sandbox, without '..'",
            );
        } else if RESERVED_DESTS.contains(&t.dest.trim_start_matches("./"))
            || t.dest.trim_start_matches("./").starts_with("current/")
        {
            errors.push(
                field("dest"),
                format!("'{}' is the sandbox's own: choose another name", t.dest),
            );
        } else if let Some(first) = dests.insert(t.dest.clone(), i) {
            errors.push(
                field("dest"),
                format!("templates[{first}] renders to '{}' already", t.dest),
            );
        }
        for (section, values) in &t.values {
            if !is_section_name(section) {
                errors.push(
                    format!("templates[{i}].values.{section}"),
                    "a section is 'base' or an environment (the cluster tag): [a-z0-9][a-z0-9_-]*",
                );
                continue;
            }
            for key in values.keys() {
                let field = format!("templates[{i}].values.{section}.{key}");
                if !is_variable_name(key) {
                    errors.push(
                        field,
                        "not a template variable name: use [A-Za-z_][A-Za-z0-9_]*",
                    );
                } else if FACTS.contains(&key.as_str()) {
                    errors.push(
                        field,
                        format!(
                            "'{key}' is a fact the agent sets (one of {})",
                            FACTS.join(", ")
                        ),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(json: serde_json::Value) -> Template {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn bad_templates_name_the_field() {
        let mut errors = Collector::default();
        check_templates(
            &[
                template(serde_json::json!({"dest": "a.yml"})),
                template(serde_json::json!({"source": "../x", "dest": "/etc/passwd"})),
                template(serde_json::json!({"inline": "x", "dest": "stdout"})),
                template(serde_json::json!({"inline": "x", "dest": "a.yml",
                    "values": {"Prod": {}, "base": {"host": 1, "db-host": 2, "ok": 3}}})),
            ],
            &mut errors,
        );
        let fields: Vec<String> = errors.into_vec().into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "templates[0].source",
                "templates[1].source",
                "templates[1].dest",
                "templates[2].dest",
                "templates[3].dest",
                "templates[3].values.Prod",
                "templates[3].values.base.db-host",
                "templates[3].values.base.host",
            ]
        );
    }
}
