//! `/ui/new`: start a job from a template. The form is pre-filled from
//! the template, posted back here, turned into a job spec and stored
//! through `Service::put_job` (which validates it with `ocean-spec`);
//! every error comes back next to the input its field path belongs to,
//! with what the user typed kept. A stored job redirects to its page.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use ocean_master::service::jobs::PutJob;
use ocean_master::Master;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{path_segment, see_other, Frame, Seen};
use crate::csrf::{check, CsrfToken};
use crate::error::{render, Result};
use crate::forms::FieldErrors;
use crate::job_templates::{all, BadTemplate, JobTemplate};

/// What the form holds, as typed (kept on an error).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct NewJobForm {
    #[serde(default)]
    pub template: String,
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub cmd: String,
    #[serde(default)]
    pub image: String,
    #[serde(default)]
    pub instances: String,
    #[serde(default)]
    pub cpus: String,
    #[serde(default)]
    pub mem: String,
    #[serde(default)]
    pub disk: String,
    /// Port names, comma-separated.
    #[serde(default)]
    pub ports: String,
    /// `NAME=value` lines.
    #[serde(default)]
    pub env: String,
    /// The rest of the spec, as JSON.
    #[serde(default)]
    pub extra: String,
    #[serde(default)]
    pub csrf: String,
}

/// The input a spec field path belongs to (`extra` holds the rest).
pub fn input_for(path: &str) -> &'static str {
    let top = path.split(['.', '[']).next().unwrap_or("");
    match (top, path) {
        ("id", _) => "id",
        ("cmd" | "args", _) => "cmd",
        ("instances", _) => "instances",
        (_, "resources.cpus") => "cpus",
        (_, "resources.mem") => "mem",
        (_, "resources.disk") => "disk",
        ("ports", _) => "ports",
        ("env", _) => "env",
        (_, p) if p.starts_with("container.docker.image") => "image",
        _ => "extra",
    }
}

fn text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

impl NewJobForm {
    /// The form a template fills in.
    pub fn from_template(t: &JobTemplate) -> Self {
        let mut rest = t.spec.as_object().cloned().unwrap_or_default();
        let mut take = |k: &str| rest.remove(k);
        let id = text(take("id").as_ref());
        let cmd = text(take("cmd").as_ref());
        let instances = text(take("instances").as_ref());
        let ports = take("ports")
            .and_then(|p| p.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|p| p.get("name").and_then(Value::as_str).map(str::to_string))
            .collect::<Vec<_>>()
            .join(", ");
        let env = take("env")
            .and_then(|e| e.as_object().cloned())
            .unwrap_or_default()
            .iter()
            .map(|(k, v)| format!("{k}={}", text(Some(v))))
            .collect::<Vec<_>>()
            .join("\n");
        let mut resources = take("resources")
            .and_then(|r| r.as_object().cloned())
            .unwrap_or_default();
        let cpus = text(resources.remove("cpus").as_ref());
        let mem = text(resources.remove("mem").as_ref());
        let disk = text(resources.remove("disk").as_ref());
        if !resources.is_empty() {
            rest.insert("resources".into(), Value::Object(resources));
        }
        let image = rest
            .get_mut("container")
            .and_then(|c| c.get_mut("docker"))
            .and_then(Value::as_object_mut)
            .and_then(|d| d.remove("image"));
        NewJobForm {
            template: t.name.clone(),
            id,
            cmd,
            image: text(image.as_ref()),
            instances,
            cpus,
            mem,
            disk,
            ports,
            env,
            extra: if rest.is_empty() {
                String::new()
            } else {
                serde_json::to_string_pretty(&Value::Object(rest)).unwrap_or_default()
            },
            csrf: String::new(),
        }
    }

    /// The job spec the form describes, or the errors of inputs that are
    /// not even of the right kind (numbers, `NAME=value` lines, JSON).
    pub fn spec(&self) -> std::result::Result<Value, FieldErrors> {
        let mut errors = FieldErrors::none();
        let mut spec: Map<String, Value> = if self.extra.trim().is_empty() {
            Map::new()
        } else {
            match serde_json::from_str::<Value>(&self.extra) {
                Ok(Value::Object(o)) => o,
                Ok(_) => {
                    errors.add("extra", "must be a JSON object of further spec fields");
                    Map::new()
                }
                Err(e) => {
                    errors.add("extra", format!("not JSON: {e}"));
                    Map::new()
                }
            }
        };
        spec.insert("id".into(), Value::String(self.id.trim().to_string()));
        if !self.cmd.trim().is_empty() {
            spec.insert("cmd".into(), Value::String(self.cmd.trim().to_string()));
        }
        match self.instances.trim().parse::<u64>() {
            Ok(n) => {
                spec.insert("instances".into(), n.into());
            }
            Err(_) => errors.add(
                "instances",
                format!(
                    "'{}' is not a whole number of instances (0 or more)",
                    self.instances.trim()
                ),
            ),
        }
        let resources = spec
            .entry("resources")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(r) = resources.as_object_mut() {
            match self.cpus.trim().parse::<f64>() {
                Ok(c) if c.is_finite() => {
                    r.insert("cpus".into(), c.into());
                }
                _ => errors.add(
                    "cpus",
                    format!("'{}' is not a number of cores (e.g. 0.5)", self.cpus.trim()),
                ),
            }
            for (field, value) in [("mem", &self.mem), ("disk", &self.disk)] {
                let v = value.trim();
                if v.is_empty() && field == "disk" {
                    continue;
                }
                match v.parse::<u64>() {
                    Ok(n) => {
                        r.insert(field.into(), n.into());
                    }
                    Err(_) => errors.add(field, format!("'{v}' is not a whole number of MiB")),
                }
            }
        }
        let ports: Vec<Value> = self
            .ports
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| serde_json::json!({ "name": p }))
            .collect();
        if !ports.is_empty() {
            spec.insert("ports".into(), Value::Array(ports));
        }
        let mut env = Map::new();
        for (i, line) in self.env.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            match line.split_once('=') {
                Some((k, v)) => {
                    env.insert(k.trim().to_string(), Value::String(v.to_string()));
                }
                None => errors.append("env", format!("line {}: expected NAME=value", i + 1)),
            }
        }
        if !env.is_empty() {
            spec.insert("env".into(), Value::Object(env));
        }
        let image = self.image.trim();
        if !image.is_empty() {
            let docker = spec
                .entry("container")
                .or_insert_with(|| serde_json::json!({}))
                .as_object_mut()
                .map(|c| c.entry("docker").or_insert_with(|| serde_json::json!({})));
            match docker.and_then(Value::as_object_mut) {
                Some(d) => {
                    d.insert("image".into(), Value::String(image.to_string()));
                }
                None => errors.add("extra", "container and container.docker must be objects"),
            }
        }
        if errors.is_empty() {
            Ok(Value::Object(spec))
        } else {
            Err(errors)
        }
    }
}

#[derive(Template)]
#[template(path = "new_job.html")]
struct NewJobPage {
    frame: Frame,
    templates: Vec<JobTemplate>,
    bad: Vec<BadTemplate>,
    form: NewJobForm,
    errors: FieldErrors,
}

impl NewJobPage {
    fn chosen(&self, name: &str) -> bool {
        self.form.template == name
    }
}

/// `?template=`.
#[derive(Debug, Default, Deserialize)]
pub struct NewJobQuery {
    #[serde(default)]
    pub template: String,
    pub v: Option<u64>,
}

async fn render_page(
    m: &Master,
    csrf: &CsrfToken,
    form: Option<NewJobForm>,
    template: &str,
    errors: FieldErrors,
) -> Result<Response> {
    let (templates, bad) = all(m).await?;
    let form = match form {
        Some(f) => f,
        None => {
            let t = templates
                .iter()
                .find(|t| t.name == template)
                .or(templates.first())
                .expect("there are built-in templates");
            NewJobForm::from_template(t)
        }
    };
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let version = m.read(|st| st.version);
    let page = NewJobPage {
        frame: Frame::new(m, "new", version, &Seen::default()).with_csrf(csrf),
        templates,
        bad,
        form,
        errors,
    };
    Ok((status, render("new_job", &page)?).into_response())
}

/// `GET /ui/new`.
pub async fn page(
    State(m): State<Master>,
    Extension(csrf): Extension<CsrfToken>,
    Query(q): Query<NewJobQuery>,
) -> Result<Response> {
    render_page(&m, &csrf, None, &q.template, FieldErrors::none()).await
}

/// The service's refusal of a spec, as errors next to the form's inputs.
fn spec_errors(e: ocean_master::Error) -> std::result::Result<FieldErrors, ocean_master::Error> {
    let mut errors = FieldErrors::none();
    match e {
        ocean_master::Error::Spec(s) => {
            for fe in s.errors {
                let input = input_for(&fe.field);
                // The path tells which part of an input is wrong.
                if input == "extra" || fe.field.contains(['.', '[']) {
                    errors.append(input, format!("{}: {}", fe.field, fe.reason));
                } else {
                    errors.append(input, fe.reason);
                }
            }
        }
        ocean_master::Error::VersionConflict { actual, .. } => errors.add(
            "id",
            format!("a job with this id exists already (spec version {actual}): pick another id, or scale or edit that job"),
        ),
        ocean_master::Error::Invalid { field, reason } => errors.add(input_for(&field), reason),
        other => return Err(other),
    }
    Ok(errors)
}

/// `POST /ui/new`.
pub async fn submit(
    State(m): State<Master>,
    Extension(csrf): Extension<CsrfToken>,
    Form(form): Form<NewJobForm>,
) -> Result<Response> {
    check(&csrf, &form.csrf)?;
    let spec = match form.spec() {
        Ok(s) => s,
        Err(errors) => return render_page(&m, &csrf, Some(form), "", errors).await,
    };
    let put = PutJob {
        spec: spec.to_string().into_bytes(),
        format: ocean_spec::Format::Json,
        // A new job: never overwrite one that exists.
        expected_spec_version: Some(0),
    };
    match m.service().put_job(put).await {
        Ok(w) => {
            tracing::info!(job = %w.id, version = w.version, template = %form.template, "job created from the dashboard");
            Ok(see_other(&format!("/ui/jobs/{}", path_segment(&w.id)), w.version).into_response())
        }
        Err(e) => {
            let errors = spec_errors(e)?;
            render_page(&m, &csrf, Some(form), "", errors).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_round_trips_through_the_form() {
        for t in crate::job_templates::built_in() {
            let f = NewJobForm::from_template(&t);
            let spec = f.spec().unwrap_or_else(|e| panic!("{}: {e:?}", t.name));
            let a =
                ocean_spec::parse_job_spec(spec.to_string().as_bytes(), ocean_spec::Format::Json)
                    .unwrap();
            let b =
                ocean_spec::parse_job_spec(t.spec.to_string().as_bytes(), ocean_spec::Format::Json)
                    .unwrap();
            assert_eq!(a, b, "template {}", t.name);
        }
    }

    #[test]
    fn inputs_of_the_wrong_kind_are_named() {
        let t = &crate::job_templates::built_in()[0];
        let mut f = NewJobForm::from_template(t);
        f.instances = "two".into();
        f.env = "A=1\nnonsense".into();
        f.extra = "{".into();
        let e = f.spec().unwrap_err();
        assert!(e.get("instances").unwrap().contains("'two'"));
        assert!(e.get("env").unwrap().contains("line 2"));
        assert!(e.get("extra").unwrap().contains("not JSON"));
    }

    #[test]
    fn field_paths_find_their_inputs() {
        assert_eq!(input_for("id"), "id");
        assert_eq!(input_for("resources.mem"), "mem");
        assert_eq!(input_for("resources.pids"), "extra");
        assert_eq!(input_for("ports[0].name"), "ports");
        assert_eq!(input_for("env.A-B"), "env");
        assert_eq!(input_for("container.docker.image"), "image");
        assert_eq!(input_for("health_checks[0].port_name"), "extra");
    }
}
