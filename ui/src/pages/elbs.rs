//! `/ui/elbs`: the ELB framework's load balancers, each virtual server
//! with its real servers and why any is out of rotation, a create form
//! (data center, internal or external network, VIP, one L4 listener bound
//! to a job's named port, algorithm, domain; DNS views are set through the
//! API or `ocean elb create`, and listed here) and a delete action. Reads
//! and writes go through the framework's own store over the in-process
//! client, so the page shows exactly what `GET /v1/elbs/{name}` shows and
//! refuses a form exactly as the API refuses the object, naming the field.

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use ocean_client::Client;
use ocean_elb::backends::JobTasks;
use ocean_elb::spec::{ElbSpec, Network};
use ocean_elb::status::{status, VsStatus};
use ocean_elb::store::{Store, StoreError};
use ocean_master::Master;
use serde::Deserialize;
use serde_json::json;

use super::{path_segment, Done, Frame};
use crate::csrf::{check, CsrfToken};
use crate::error::{render, Result, UiError};
use crate::forms::FieldErrors;

/// The notices after a form (`?done=`).
const NOTICES: &[(&str, &str)] = &[
    (
        "created",
        "Load balancer created: LB hosts program it as its tasks run.",
    ),
    (
        "deleted",
        "Load balancer deleted: LB hosts remove its virtual servers.",
    ),
];

/// One load balancer as listed.
#[derive(Debug, Clone)]
pub struct ElbRow {
    pub spec: ElbSpec,
    pub vips: String,
    pub virtual_servers: Vec<VsStatus>,
    /// Real servers in rotation over all its virtual servers, and in all.
    pub in_rotation: usize,
    pub real_servers: usize,
}

/// The create form as submitted (shown again beside its errors).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub idc: String,
    #[serde(default)]
    pub network: String,
    #[serde(default)]
    pub vip: String,
    #[serde(default)]
    pub port: String,
    #[serde(default)]
    pub protocol: String,
    #[serde(default)]
    pub backend_job: String,
    #[serde(default)]
    pub backend_port_name: String,
    #[serde(default)]
    pub algorithm: String,
    #[serde(default)]
    pub domain: String,
}

impl CreateForm {
    /// The form as a new page shows it.
    fn blank() -> Self {
        CreateForm {
            network: "internal".into(),
            protocol: "tcp".into(),
            algorithm: "rr".into(),
            ..Default::default()
        }
    }
}

#[derive(Template)]
#[template(path = "elbs.html")]
struct ListPage {
    frame: Frame,
    rows: Vec<ElbRow>,
    notice: Option<&'static str>,
    form: CreateForm,
    errors: FieldErrors,
}

impl ListPage {
    fn is(a: &str, b: &str) -> bool {
        a == b
    }

    fn network(n: &Network) -> &'static str {
        match n {
            Network::Internal => "internal",
            Network::External => "external",
        }
    }

    fn delete_href(name: &str) -> String {
        format!("/ui/elbs/{}/delete", path_segment(name))
    }
}

fn store(m: &Master) -> Store {
    let client: Arc<dyn Client> =
        Arc::new(ocean_master::api::in_process::InProcess::new(m.clone()));
    Store::new(client)
}

/// Every ELB with its virtual servers' status.
async fn rows(store: &Store) -> std::result::Result<Vec<ElbRow>, StoreError> {
    let mut out = Vec::new();
    let mut jobs: BTreeMap<String, (Vec<ocean_client::api::Task>, bool)> = BTreeMap::new();
    for (spec, _) in store.list().await? {
        for l in &spec.listeners {
            if !jobs.contains_key(&l.backend_job) {
                let checked = store.has_health_checks(&l.backend_job).await?;
                let tasks = store.tasks(&l.backend_job).await?;
                jobs.insert(l.backend_job.clone(), (tasks, checked));
            }
        }
        let vss = status(&spec, &|job| match jobs.get(job) {
            Some((tasks, checked)) => JobTasks {
                tasks: tasks.iter().collect(),
                checked: *checked,
            },
            None => JobTasks::default(),
        });
        let in_rotation = vss
            .iter()
            .flat_map(|v| &v.real_servers)
            .filter(|r| r.in_rotation)
            .count();
        let real_servers = vss.iter().map(|v| v.real_servers.len()).sum();
        out.push(ElbRow {
            vips: spec.vips.join(", "),
            spec,
            virtual_servers: vss,
            in_rotation,
            real_servers,
        });
    }
    Ok(out)
}

async fn list_page(
    m: &Master,
    csrf: &CsrfToken,
    q: &Done,
    form: CreateForm,
    errors: FieldErrors,
) -> Result<Html<String>> {
    let seen = q.seen();
    let version = m.service().summary(seen.options()).await?.version;
    let rows = rows(&store(m)).await.map_err(unavailable)?;
    let page = ListPage {
        frame: Frame::new(m, "elbs", version, &seen).with_csrf(csrf),
        rows,
        notice: q.notice(NOTICES),
        form,
        errors,
    };
    render("elbs", &page)
}

fn unavailable(e: StoreError) -> UiError {
    UiError::Unavailable(e.to_string())
}

/// `GET /ui/elbs`.
pub async fn page(
    State(m): State<Master>,
    Extension(csrf): Extension<CsrfToken>,
    Query(q): Query<Done>,
) -> Result<Html<String>> {
    let form = CreateForm::blank();
    list_page(&m, &csrf, &q, form, FieldErrors::none()).await
}

/// The form as the API's object; the one listener's fields keep the API's
/// names (`listeners[0].port` is shown beside `port`).
fn object(f: &CreateForm, errors: &mut FieldErrors) -> serde_json::Value {
    let port = match f.port.trim().parse::<u64>() {
        Ok(p) => json!(p),
        Err(_) => {
            errors.add("port", format!("'{}' is not a port number", f.port.trim()));
            json!(0)
        }
    };
    let domain = f.domain.trim();
    json!({
        "name": f.name.trim(),
        "idc": f.idc.trim(),
        "network": f.network,
        "vips": [f.vip.trim()],
        "listeners": [{
            "port": port,
            "protocol": f.protocol,
            "backend_job": f.backend_job.trim(),
            "backend_port_name": f.backend_port_name.trim(),
            "algorithm": f.algorithm,
        }],
        "domain": if domain.is_empty() { serde_json::Value::Null } else { json!(domain) },
    })
}

/// The form field an API field is shown beside.
fn form_field(api_field: &str) -> String {
    let f = api_field
        .strip_prefix("listeners[0].")
        .unwrap_or(api_field)
        .split(['.', '['])
        .next()
        .unwrap_or(api_field);
    match f {
        "vips" => "vip".into(),
        other => other.to_string(),
    }
}

/// `POST /ui/elbs`: the create form.
pub async fn create(
    State(m): State<Master>,
    Extension(csrf): Extension<CsrfToken>,
    Form(f): Form<CreateForm>,
) -> Result<Response> {
    check(&csrf, &f.csrf)?;
    let mut errors = FieldErrors::none();
    let mut code = axum::http::StatusCode::BAD_REQUEST;
    let obj = object(&f, &mut errors);
    if errors.is_empty() {
        let bytes = serde_json::to_vec(&obj).unwrap_or_default();
        let outcome = match ocean_elb::spec::parse(&bytes) {
            Ok(spec) => store(&m).create(&spec).await.map(|_| spec.name),
            Err(invalid) => Err(StoreError::Invalid(invalid)),
        };
        match outcome {
            Ok(name) => {
                let to = format!("/ui/elbs?done=created#elb-{}", path_segment(&name));
                return Ok(Redirect::to(&to).into_response());
            }
            Err(StoreError::Invalid(inv)) => {
                for e in inv.errors {
                    errors.add(&form_field(&e.field), e.reason);
                }
            }
            Err(e @ StoreError::Exists(_)) => {
                code = axum::http::StatusCode::CONFLICT;
                errors.add("name", e.to_string());
            }
            Err(e) => return Err(unavailable(e)),
        }
    }
    let q = Done::default();
    let html = list_page(&m, &csrf, &q, f, errors).await?;
    Ok((code, html).into_response())
}

/// The delete form's body.
#[derive(Debug, Default, Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub confirm: String,
}

/// `POST /ui/elbs/{name}/delete`.
pub async fn delete(
    State(m): State<Master>,
    Extension(csrf): Extension<CsrfToken>,
    Path(name): Path<String>,
    Form(f): Form<DeleteForm>,
) -> Result<Response> {
    check(&csrf, &f.csrf)?;
    if f.confirm != "yes" {
        let errors = FieldErrors::one(
            "delete",
            format!("{name} was not deleted: tick its confirm box first"),
        );
        let form = CreateForm::blank();
        let html = list_page(&m, &csrf, &Done::default(), form, errors).await?;
        return Ok((axum::http::StatusCode::BAD_REQUEST, html).into_response());
    }
    match store(&m).delete(&name).await {
        Ok(_) | Err(StoreError::NotFound(_)) => {
            Ok(Redirect::to("/ui/elbs?done=deleted").into_response())
        }
        Err(e) => Err(unavailable(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_fields_are_shown_beside_the_form_fields() {
        assert_eq!(form_field("listeners[0].backend_job"), "backend_job");
        assert_eq!(form_field("listeners[0].port"), "port");
        assert_eq!(form_field("vips[0]"), "vip");
        assert_eq!(form_field("name"), "name");
        assert_eq!(form_field("domain"), "domain");
    }

    #[test]
    fn a_port_that_is_not_a_number_is_refused_by_name() {
        let mut errors = FieldErrors::none();
        let f = CreateForm {
            port: "http".into(),
            ..Default::default()
        };
        object(&f, &mut errors);
        assert_eq!(errors.get("port"), Some("'http' is not a port number"));
    }
}
