//! Rendering a task's config templates with minijinja. Undefined variables
//! are errors (strict), and the error names the variable and the file.
//! The context is the template's `base` values overridden by the section
//! of the task's environment (maps merged key by key, at every depth),
//! beside the task's facts: `task_id`, `job_id`, `host`, `ports` (by
//! name), `environment`, `version`, `release_dir`, `sandbox` and `dns`
//! (`job`, `task`, `srv` by port name, `domain`; absolute names).

use std::path::Path;

use minijinja::{Environment, ErrorKind, UndefinedBehavior};
use serde_json::{json, Map, Value};

use super::{ReleaseError, ReleaseSpec, TaskFacts, TemplateSpec};

/// The zone when the launch names none.
const DEFAULT_DOMAIN: &str = "ocean";

/// `base`, overridden by `environment`'s section: objects merge key by
/// key at every depth, anything else is replaced.
pub fn merge_values(
    sections: &std::collections::BTreeMap<String, Map<String, Value>>,
    environment: &str,
) -> Map<String, Value> {
    let mut out = sections.get("base").cloned().unwrap_or_default();
    if environment != "base" {
        if let Some(over) = sections.get(environment) {
            merge(&mut out, over);
        }
    }
    out
}

fn merge(into: &mut Map<String, Value>, over: &Map<String, Value>) {
    for (key, value) in over {
        match (into.get_mut(key), value) {
            (Some(Value::Object(mine)), Value::Object(theirs)) => merge(mine, theirs),
            _ => {
                into.insert(key.clone(), value.clone());
            }
        }
    }
}

/// The facts every template of the task sees (values are added per
/// template).
pub fn template_context(
    spec: &ReleaseSpec,
    facts: &TaskFacts<'_>,
    release: &Path,
) -> Map<String, Value> {
    let domain = if spec.dns.domain.is_empty() {
        DEFAULT_DOMAIN
    } else {
        spec.dns.domain.as_str()
    };
    let absolute = |name: &str| {
        if name.is_empty() {
            Value::Null
        } else {
            Value::String(format!("{name}.{domain}"))
        }
    };
    let srv: Map<String, Value> = spec
        .dns
        .srv
        .iter()
        .map(|(port, name)| (port.clone(), absolute(name)))
        .collect();
    let context = json!({
        "task_id": facts.task_id,
        "job_id": facts.job_id,
        "host": facts.host,
        "ports": facts.ports,
        "environment": spec.environment,
        "version": spec.version,
        "release_dir": release.display().to_string(),
        "sandbox": facts.sandbox.display().to_string(),
        "dns": {
            "job": absolute(&spec.dns.job),
            "task": absolute(&spec.dns.task),
            "srv": srv,
            "domain": domain,
        },
    });
    match context {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Renders template `index` of the task into the sandbox.
pub(super) fn render_to(
    index: usize,
    template: &TemplateSpec,
    release: &Path,
    sandbox: &Path,
    facts: &Map<String, Value>,
) -> Result<(), ReleaseError> {
    let file = match &template.source {
        Some(source) => source.clone(),
        None => format!("inline template of {}", template.dest),
    };
    let fail = |message: String| ReleaseError::Render {
        index,
        file: file.clone(),
        message,
    };
    let text = match (&template.source, &template.inline) {
        (_, Some(inline)) => inline.clone(),
        (Some(source), None) => read_inside(release, source).map_err(fail)?,
        (None, None) => return Err(fail("neither source nor inline is set".into())),
    };
    let environment = facts
        .get("environment")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut context = merge_values(&template.values, environment);
    // Facts win: validation keeps values from using their names.
    context.extend(facts.iter().map(|(k, v)| (k.clone(), v.clone())));
    let rendered = render(&file, &text, &Value::Object(context)).map_err(fail)?;
    let dest = sandbox.join(&template.dest);
    if template.dest.split('/').next() == Some("current") {
        return Err(fail(
            "dest: must not write into the release ('current/')".into(),
        ));
    }
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(ReleaseError::io("create", parent))?;
    }
    let mut temp = dest.as_os_str().to_owned();
    temp.push(".rendering");
    std::fs::write(&temp, rendered).map_err(ReleaseError::io("write", &temp))?;
    std::fs::rename(&temp, &dest).map_err(ReleaseError::io("write", &dest))
}

/// Reads `release/source`, refusing a path that leaves the release
/// (through a link shipped in an archive, say).
fn read_inside(release: &Path, source: &str) -> Result<String, String> {
    let root = release
        .canonicalize()
        .map_err(|e| format!("release {}: {e}", release.display()))?;
    let path = release
        .join(source)
        .canonicalize()
        .map_err(|e| format!("not in the release ({e})"))?;
    if !path.starts_with(&root) {
        return Err("leaves the release directory".into());
    }
    std::fs::read_to_string(&path).map_err(|e| format!("read {}: {e}", path.display()))
}

/// Renders `text` strictly; a missing variable is named with its line.
fn render(name: &str, text: &str, context: &Value) -> Result<String, String> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    let template = env
        .template_from_named_str(name, text)
        .map_err(|e| describe(&e, text, context, None))?;
    template
        .render(context)
        .map_err(|e| describe(&e, text, context, Some(&template)))
}

/// A render error as one line; for an undefined value, which variable.
fn describe(
    error: &minijinja::Error,
    text: &str,
    context: &Value,
    template: Option<&minijinja::Template<'_, '_>>,
) -> String {
    let line = error
        .line()
        .map(|l| format!(" at line {l}"))
        .unwrap_or_default();
    if error.kind() != ErrorKind::UndefinedError {
        let detail = error.detail().unwrap_or_default();
        return format!("{}{line}: {detail}", error.kind());
    }
    let expression = error
        .range()
        .and_then(|r| text.get(r))
        .map(|s| s.trim().to_string());
    let missing = template.map(|t| {
        let mut names: Vec<String> = t
            .undeclared_variables(true)
            .into_iter()
            .filter(|name| lookup(context, name).is_none())
            .collect();
        names.sort();
        names
    });
    let variable = match (expression, missing) {
        (Some(e), Some(names)) => names
            .iter()
            .find(|n| e.contains(n.as_str()))
            .cloned()
            .unwrap_or(e),
        (Some(e), None) => e,
        (None, Some(names)) if !names.is_empty() => names.join(", "),
        _ => "(unknown)".into(),
    };
    format!("undefined variable '{variable}'{line}")
}

/// The value at a dotted path (`db.host`) of the context.
fn lookup<'a>(context: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(context, |v, key| v.get(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::DnsFacts;
    use std::collections::BTreeMap;

    fn sections(json: Value) -> BTreeMap<String, Map<String, Value>> {
        serde_json::from_value(json).unwrap_or_default()
    }

    #[test]
    fn the_environment_overrides_base_key_by_key() {
        let values = sections(json!({
            "base": {"level": "debug", "db": {"host": "db1", "port": 5432}, "workers": 2},
            "production": {"level": "warn", "db": {"host": "db-prod"}},
            "staging": {"workers": 9},
        }));
        let prod = Value::Object(merge_values(&values, "production"));
        assert_eq!(
            prod,
            json!({"level": "warn", "db": {"host": "db-prod", "port": 5432}, "workers": 2})
        );
        let other = Value::Object(merge_values(&values, "dev"));
        assert_eq!(other["level"], "debug");
        assert_eq!(other["workers"], 2);
    }

    fn facts_for(sandbox: &Path) -> Map<String, Value> {
        let spec = ReleaseSpec {
            version: 4,
            environment: "production".into(),
            artifacts: Vec::new(),
            templates: Vec::new(),
            dns: DnsFacts {
                job: "web.s.p.production".into(),
                task: "0001.web.s.p.production".into(),
                srv: [(
                    "http".to_string(),
                    "_http._tcp.web.s.p.production".to_string(),
                )]
                .into_iter()
                .collect(),
                domain: String::new(),
            },
        };
        let facts = TaskFacts {
            task_id: "t1",
            job_id: "j1",
            host: "node7",
            ports: [("http".to_string(), 31002)].into_iter().collect(),
            sandbox,
        };
        template_context(&spec, &facts, Path::new("/r/4"))
    }

    #[test]
    fn templates_see_values_and_facts_and_missing_variables_are_named() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let facts = facts_for(dir.path());
        let mut template = TemplateSpec {
            source: None,
            inline: Some(
                "level: {{ level }}\nlisten: {{ host }}:{{ ports.http }}\npeers: {{ dns.job }}\n\
                 srv: {{ dns.srv.http }}\nversion: {{ version }}\n"
                    .into(),
            ),
            dest: "conf/app.yml".into(),
            values: sections(json!({"base": {"level": "debug"}, "production": {"level": "warn"}})),
        };
        render_to(0, &template, Path::new("/r/4"), dir.path(), &facts)?;
        assert_eq!(
            std::fs::read_to_string(dir.path().join("conf/app.yml"))?,
            "level: warn\nlisten: node7:31002\npeers: web.s.p.production.ocean\n\
             srv: _http._tcp.web.s.p.production.ocean\nversion: 4\n"
        );

        template.inline = Some("a: 1\nb: {{ db_password }}\n".into());
        let error = render_to(2, &template, Path::new("/r/4"), dir.path(), &facts)
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("templates[2] (inline template of conf/app.yml)"),
            "{error}"
        );
        assert!(
            error.contains("undefined variable 'db_password' at line 2"),
            "{error}"
        );

        template.inline = Some("{{ db.host }}".into());
        let error = render_to(0, &template, Path::new("/r/4"), dir.path(), &facts)
            .unwrap_err()
            .to_string();
        assert!(error.contains("undefined variable 'db"), "{error}");

        template.inline = Some("{% if %}".into());
        let error = render_to(0, &template, Path::new("/r/4"), dir.path(), &facts)
            .unwrap_err()
            .to_string();
        assert!(error.contains("syntax error"), "{error}");
        Ok(())
    }

    #[test]
    fn sources_come_from_the_release_and_stay_inside_it() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let release = dir.path().join("release");
        let sandbox = dir.path().join("sandbox");
        std::fs::create_dir_all(&release)?;
        std::fs::create_dir_all(&sandbox)?;
        std::fs::write(
            release.join("config.template.yml"),
            "env: {{ environment }}\n",
        )?;
        std::fs::write(dir.path().join("secret"), "x")?;
        std::os::unix::fs::symlink(dir.path().join("secret"), release.join("escape"))?;
        let facts = facts_for(&sandbox);
        let mut template = TemplateSpec {
            source: Some("config.template.yml".into()),
            inline: None,
            dest: "config.yml".into(),
            values: BTreeMap::new(),
        };
        render_to(0, &template, &release, &sandbox, &facts)?;
        assert_eq!(
            std::fs::read_to_string(sandbox.join("config.yml"))?,
            "env: production\n"
        );
        template.source = Some("escape".into());
        let error = render_to(0, &template, &release, &sandbox, &facts)
            .unwrap_err()
            .to_string();
        assert!(error.contains("(escape): leaves the release"), "{error}");
        template.source = Some("missing.yml".into());
        let error = render_to(0, &template, &release, &sandbox, &facts)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("(missing.yml): not in the release"),
            "{error}"
        );
        Ok(())
    }
}
