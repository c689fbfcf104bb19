//! The field-level difference between two job specs, for a plan: each
//! changed leaf as a path (`upgrade_strategy.step`, `env.LOG_LEVEL`,
//! `health_checks[0].interval_seconds`) with its old and new value, and
//! whether the change reaches running tasks (their [`JobSpec::embodied`]
//! forms differ) or only Ocean's handling of them.

use serde::Serialize;
use serde_json::Value;

use crate::JobSpec;

/// One changed field. A field only in the new spec has no `old`, one only
/// in the old spec no `new`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    /// Where, as `a.b[2].c`.
    pub path: String,
    /// The running version's value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    /// The new version's value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
    /// Whether this field is part of what tasks embody (changing it
    /// replaces them).
    pub replaces_tasks: bool,
}

/// The changes from `old` to `new`, in path order.
pub fn diff(old: &JobSpec, new: &JobSpec) -> Vec<FieldChange> {
    let mut out = Vec::new();
    leaves(
        &mut out,
        String::new(),
        Some(&to_value(old)),
        Some(&to_value(new)),
    );
    let mut embodied = Vec::new();
    leaves(
        &mut embodied,
        String::new(),
        Some(&to_value(&old.embodied())),
        Some(&to_value(&new.embodied())),
    );
    for c in &mut out {
        c.replaces_tasks = embodied.iter().any(|e| e.path == c.path);
    }
    out
}

fn to_value(s: &JobSpec) -> Value {
    // A JobSpec is plain data: serialising it cannot fail.
    serde_json::to_value(s).unwrap_or(Value::Null)
}

fn join(prefix: &str, key: &str) -> String {
    // Keys that would read as structure (env names with dots) are quoted.
    let key = if key.contains(['.', '[', ']']) || key.is_empty() {
        format!("{key:?}")
    } else {
        key.to_string()
    };
    if prefix.is_empty() {
        key
    } else {
        format!("{prefix}.{key}")
    }
}

fn leaves(out: &mut Vec<FieldChange>, path: String, old: Option<&Value>, new: Option<&Value>) {
    match (old, new) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                leaves(out, join(&path, k), a.get(k), b.get(k));
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) => {
            for i in 0..a.len().max(b.len()) {
                leaves(out, format!("{path}[{i}]"), a.get(i), b.get(i));
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(FieldChange {
            path,
            old: a.cloned(),
            new: b.cloned(),
            replaces_tasks: false,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "cop.c_owt.o_pdl.p_service.s_job.j_cluster.c";

    fn base() -> JobSpec {
        let mut s = JobSpec::new(ID, "sleep 100");
        s.env.insert("LOG_LEVEL".into(), "info".into());
        s.health_checks
            .push(serde_json::from_str(r#"{"protocol": "tcp", "port_name": "p"}"#).unwrap());
        s
    }

    fn paths(c: &[FieldChange]) -> Vec<(&str, bool)> {
        c.iter()
            .map(|c| (c.path.as_str(), c.replaces_tasks))
            .collect()
    }

    #[test]
    fn the_same_spec_has_no_changes() {
        assert_eq!(diff(&base(), &base()), vec![]);
    }

    #[test]
    fn changed_leaves_are_named_by_path_with_both_values() {
        let mut new = base();
        new.upgrade_strategy.step = 3;
        new.env.insert("LOG_LEVEL".into(), "debug".into());
        new.health_checks[0].interval_seconds = 2;
        let c = diff(&base(), &new);
        assert_eq!(
            paths(&c),
            vec![
                ("env.LOG_LEVEL", true),
                ("health_checks[0].interval_seconds", false),
                ("upgrade_strategy.step", false),
            ]
        );
        assert_eq!(c[0].old, Some(json!("info")));
        assert_eq!(c[0].new, Some(json!("debug")));
        // `step` is left out of the canonical form at 0: it appears.
        assert_eq!(c[2].old, None);
        assert_eq!(c[2].new, Some(json!(3)));
    }

    #[test]
    fn added_and_removed_entries_have_one_side() {
        let mut new = base();
        new.env.remove("LOG_LEVEL");
        new.env.insert("a.b".into(), "1".into());
        new.health_checks.push(new.health_checks[0].clone());
        let c = diff(&base(), &new);
        let p = paths(&c);
        assert!(p.contains(&("env.\"a.b\"", true)), "{p:?}");
        assert!(p.contains(&("env.LOG_LEVEL", true)), "{p:?}");
        let removed = c.iter().find(|c| c.path == "env.LOG_LEVEL").unwrap();
        assert_eq!((removed.old.is_some(), removed.new.is_none()), (true, true));
        let added = c.iter().find(|c| c.path == "health_checks[1]").unwrap();
        assert!(added.old.is_none() && added.new.is_some() && added.replaces_tasks);
    }

    #[test]
    fn scale_and_strategy_changes_do_not_replace_tasks() {
        let mut new = base();
        new.instances = 7;
        new.upgrade_strategy.canary = 2;
        new.health_checks[0].max_consecutive_failures = 9;
        let c = diff(&base(), &new);
        assert_eq!(c.len(), 3);
        assert!(c.iter().all(|c| !c.replaces_tasks), "{c:?}");
        assert_eq!(base().config_hash(), new.config_hash());
    }
}
