//! The REST API's OpenAPI 3.1 document, derived from the handlers'
//! `#[utoipa::path]` annotations and the service layer's typed answers
//! (`ToSchema` on `service::types` and `service::views`), so it cannot
//! drift from the code. Served at `GET /v1/openapi.json`; `docs/openapi.yaml`
//! is the same document committed (`UPDATE_OPENAPI=1 cargo nextest run -p
//! ocean-master openapi` rewrites it; the test fails while it differs).
//!
//! Two pieces are added after derivation, here, once:
//! - the job spec's schema is `docs/job-spec.schema.json` (the contract the
//!   spec crate's tests hold the parser to), not a second copy;
//! - every operation documents the error shape for `4XX` and `5XX`, since
//!   every handler answers errors through [`super::error::ApiError`].

use serde::Serialize;
use serde_json::{json, Value};
use utoipa::OpenApi;

/// The API's error body (`api::error::ApiError`): only its schema is used;
/// the body itself is built as JSON there.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    /// What went wrong, in words.
    pub error: String,
    /// `invalid_request`, `invalid_job_spec`, `not_found`, `conflict`,
    /// `version_conflict`, `lease_held`, `no_leader`, ...
    pub code: String,
    /// The fields at fault and why (bad requests and invalid specs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    /// A compare-and-set conflict's versions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual_version: Option<u64>,
    /// A held lease's holder and expiry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
}

/// One field at fault.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ocean master REST API",
        description = "Jobs, tasks, agents, deployments, masters and frameworks' stores. See docs/api.md.",
        version = "1"
    ),
    paths(
        super::http::leader,
        super::http::status,
        super::http::list_agents,
        super::http::get_agent,
        super::http::members,
        super::http::add_member,
        super::http::remove_member,
        super::http::events,
        super::http::openapi_json,
        super::jobs::list_jobs,
        super::jobs::put_job,
        super::jobs::get_job,
        super::jobs::delete_job,
        super::jobs::scale_job,
        super::jobs::reset_backoff,
        super::jobs::job_versions,
        super::deployments::list,
        super::deployments::one,
        super::deployments::act,
        super::deployments::rollback,
        super::deployments::plan,
        super::tasks::list_tasks,
        super::tasks::get_task,
        super::tasks::task_logs,
        super::summary::summary,
        super::summary::job_page,
        super::agents::set_status,
        super::agents::drain,
        super::frameworks::list_keys,
        super::frameworks::get_key,
        super::frameworks::put_key,
        super::frameworks::delete_key,
        super::frameworks::get_lease,
        super::frameworks::take_lease,
        super::frameworks::release_lease,
        super::usage::usage,
        super::usage_report::report,
        super::usage_latest::latest_usage,
        super::alerts::create_rule,
        super::alerts::list_rules,
        super::alerts::get_rule,
        super::alerts::delete_rule,
        super::alerts::list_alerts,
        super::snapshot::save,
        super::snapshot::restore,
    ),
    components(schemas(ErrorBody, FieldError))
)]
struct ApiDoc;

/// The document as JSON: what `GET /v1/openapi.json` serves.
pub fn document() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null);
    add_job_spec(&mut doc);
    add_error_responses(&mut doc);
    unsigned_formats(&mut doc);
    binary_bodies(&mut doc);
    doc
}

/// utoipa writes `u32`/`u64` as `int32`/`int64` with `minimum: 0`, whose
/// upper bounds are the signed ones; the API takes the whole unsigned
/// range, so the document says so (a client sending 2^63 is answered, not
/// refused).
fn unsigned_formats(v: &mut Value) {
    match v {
        Value::Object(o) => {
            let unsigned = o.get("minimum").and_then(Value::as_u64) == Some(0);
            let max = match o.get("format").and_then(Value::as_str) {
                Some("int32") if unsigned => Some(("uint32", json!(u32::MAX))),
                Some("int64") if unsigned => Some(("uint64", json!(u64::MAX))),
                _ => None,
            };
            if let Some((format, max)) = max {
                o.insert("format".into(), json!(format));
                o.insert("maximum".into(), max);
            }
            o.values_mut().for_each(unsigned_formats);
        }
        Value::Array(a) => a.iter_mut().for_each(unsigned_formats),
        _ => {}
    }
}

/// Snapshot files are bytes: a binary string, not an array of numbers.
fn binary_bodies(doc: &mut Value) {
    let binary = json!({"type": "string", "format": "binary"});
    let paths = &mut doc["paths"];
    if let Some(c) = paths["/v1/snapshot"]["get"]["responses"]["200"]["content"]
        ["application/octet-stream"]
        .as_object_mut()
    {
        c.insert("schema".into(), binary.clone());
    }
    if let Some(c) = paths["/v1/snapshot/restore"]["post"]["requestBody"]["content"]
        ["application/octet-stream"]
        .as_object_mut()
    {
        c.insert("schema".into(), binary.clone());
    }
    // A framework's value is any bytes (JSON is shown as JSON when read).
    if let Some(body) =
        paths["/v1/frameworks/{framework}/kv/{key}"]["put"]["requestBody"].as_object_mut()
    {
        body.insert("content".into(), json!({"*/*": {"schema": binary}}));
    }
}

/// The document as YAML: `docs/openapi.yaml`.
pub fn document_yaml() -> String {
    serde_yaml::to_string(&document()).unwrap_or_default()
}

/// Puts the job spec's schema under `components/schemas/JobSpec`, and the
/// spec bodies (`POST /v1/jobs`, `.../plan`) as JSON of it or YAML text.
fn add_job_spec(doc: &mut Value) {
    let mut schema: Value =
        serde_json::from_str(include_str!("../../../docs/job-spec.schema.json"))
            .unwrap_or(Value::Null);
    if let Some(o) = schema.as_object_mut() {
        // The document's own dialect applies inside components.
        o.remove("$schema");
        o.remove("$id");
    }
    doc["components"]["schemas"]["JobSpec"] = schema;
    let body = json!({
        "description": "A job spec (docs/job-spec.md), as JSON or YAML (`?format=` or the content type).",
        "required": true,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/JobSpec"}},
            "application/yaml": {"schema": {"type": "string"}},
        }
    });
    for (path, method) in [("/v1/jobs", "post"), ("/v1/jobs/{id}/plan", "post")] {
        if let Some(op) = doc["paths"][path][method].as_object_mut() {
            op.insert("requestBody".into(), body.clone());
        }
    }
}

/// Every operation may answer the error shape: 4XX for what the client
/// sent, 5XX when the cluster cannot answer (no leader, a peer failing).
fn add_error_responses(doc: &mut Value) {
    let error = |what: &str| {
        json!({
            "description": what,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        })
    };
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for item in paths.values_mut() {
        let Some(ops) = item.as_object_mut() else {
            continue;
        };
        for op in ops.values_mut() {
            let Some(responses) = op["responses"].as_object_mut() else {
                continue;
            };
            responses
                .entry("4XX")
                .or_insert_with(|| error("bad input, unknown object or a conflict"));
            responses
                .entry("5XX")
                .or_insert_with(|| error("no leader, or a peer failed"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_with_its_error_shape() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().expect("paths");
        for p in [
            "/v1/jobs",
            "/v1/jobs/{id}",
            "/v1/agents/{id}/drain",
            "/v1/frameworks/{framework}/kv/{key}",
            "/v1/openapi.json",
        ] {
            assert!(paths.contains_key(p), "{p} missing");
        }
        for (path, item) in paths {
            for (method, op) in item.as_object().expect("operation map") {
                assert!(
                    op["responses"]["4XX"].is_object(),
                    "{method} {path} has no error response"
                );
            }
        }
        assert_eq!(
            doc["components"]["schemas"]["JobSpec"]["required"],
            json!(["id"])
        );
    }

    /// `docs/openapi.yaml` is the generated document, committed; run with
    /// `UPDATE_OPENAPI=1` to rewrite it after changing the API.
    #[test]
    fn docs_openapi_yaml_is_up_to_date() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.yaml");
        let generated = document_yaml();
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(path, &generated).expect("write docs/openapi.yaml");
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/openapi.yaml is out of date with the handlers: regenerate it with \
             `UPDATE_OPENAPI=1 cargo nextest run -p ocean-master openapi`"
        );
    }

    #[test]
    fn error_bodies_match_the_documented_shape() {
        let err = super::super::error::ApiError::bad_request("instances", "must be a number");
        let body = err.body();
        assert_eq!(body["errors"][0]["field"], "instances");
        let schema = &document()["components"]["schemas"]["ErrorBody"];
        let required = schema["required"].as_array().expect("required");
        for field in required {
            let name = field.as_str().expect("field name");
            assert!(body.get(name).is_some(), "error body lacks {name}");
        }
    }
}
