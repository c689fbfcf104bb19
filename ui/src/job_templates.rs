//! Job templates users start from: a few built into the binary
//! (`ui/job-templates/*.json`) and any an operator stores in the KV
//! namespace `ui-templates` (key = the template's name, value =
//! `{"title", "description", "spec"}`), read through the service layer.

use ocean_master::service::ReadOptions;
use ocean_master::Master;
use serde::Deserialize;
use serde_json::Value;

/// The KV namespace of stored templates.
pub const NAMESPACE: &str = "ui-templates";

const BUILT_IN: [(&str, &str); 3] = [
    (
        "web-service",
        include_str!("../job-templates/web-service.json"),
    ),
    ("batch", include_str!("../job-templates/batch.json")),
    ("container", include_str!("../job-templates/container.json")),
];

/// One template.
#[derive(Debug, Clone, PartialEq)]
pub struct JobTemplate {
    pub name: String,
    pub title: String,
    pub description: String,
    /// A job spec (JSON object) the form starts from.
    pub spec: Value,
    /// Built into the binary (else stored in `ui-templates`).
    pub built_in: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    title: String,
    #[serde(default)]
    description: String,
    spec: Value,
}

/// Why a stored template is not offered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("template '{name}' in {NAMESPACE}: {reason}")]
pub struct BadTemplate {
    pub name: String,
    pub reason: String,
}

fn from_json(name: &str, json: &Value, built_in: bool) -> Result<JobTemplate, BadTemplate> {
    let bad = |reason: String| BadTemplate {
        name: name.to_string(),
        reason,
    };
    let s: Stored = serde_json::from_value(json.clone()).map_err(|e| bad(e.to_string()))?;
    if !s.spec.is_object() {
        return Err(bad("spec: must be a JSON object (a job spec)".into()));
    }
    Ok(JobTemplate {
        name: name.to_string(),
        title: s.title,
        description: s.description,
        spec: s.spec,
        built_in,
    })
}

/// The templates built into the binary.
pub fn built_in() -> Vec<JobTemplate> {
    BUILT_IN
        .iter()
        .map(|(name, text)| {
            let json: Value =
                serde_json::from_str(text).expect("built-in templates are JSON (tested)");
            from_json(name, &json, true).expect("built-in templates are well-formed (tested)")
        })
        .collect()
}

/// Built-in templates, then the stored ones (by key); stored ones that
/// are not well-formed come back as errors to show, not as templates.
pub async fn all(m: &Master) -> ocean_master::Result<(Vec<JobTemplate>, Vec<BadTemplate>)> {
    let mut out = built_in();
    let mut bad = Vec::new();
    let stored = m
        .service()
        .kv_list(NAMESPACE, "", ReadOptions::default())
        .await?;
    for k in stored.keys {
        match &k.value {
            Some(v) => match from_json(&k.key, v, false) {
                Ok(t) if !out.iter().any(|o| o.name == t.name) => out.push(t),
                Ok(t) => bad.push(BadTemplate {
                    name: t.name,
                    reason: "has the name of a built-in template".into(),
                }),
                Err(e) => bad.push(e),
            },
            None => bad.push(BadTemplate {
                name: k.key.clone(),
                reason: "the value is not JSON".into(),
            }),
        }
    }
    Ok((out, bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_templates_are_valid_job_specs() {
        let all = built_in();
        assert_eq!(all.len(), BUILT_IN.len());
        for t in all {
            let bytes = serde_json::to_vec(&t.spec).unwrap();
            ocean_spec::parse_job_spec(&bytes, ocean_spec::Format::Json)
                .unwrap_or_else(|e| panic!("template {}: {e}", t.name));
        }
    }

    #[test]
    fn a_stored_template_must_hold_a_spec_object() {
        let e = from_json("x", &serde_json::json!({"title": "X", "spec": 3}), false).unwrap_err();
        assert!(e.to_string().contains("spec"), "{e}");
        let e = from_json("x", &serde_json::json!({"spec": {}}), false).unwrap_err();
        assert!(e.to_string().contains("title"), "{e}");
    }
}
