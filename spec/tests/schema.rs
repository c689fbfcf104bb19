//! `docs/job-spec.schema.json` and `docs/examples/` agree with the parser:
//! every example validates against the schema and parses, and a few invalid
//! specs are rejected by both.

use std::path::{Path, PathBuf};

use ocean_spec::{parse_job_spec, Format};
use serde_json::{json, Value};

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(docs().join("job-spec.schema.json")).expect("schema file");
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    assert!(
        jsonschema::meta::is_valid(&schema),
        "the schema is not a valid JSON Schema"
    );
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    jsonschema::validator_for(&schema).expect("schema compiles")
}

fn schema_errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// Every example file as (name, raw bytes, JSON value, format).
fn examples() -> Vec<(String, Vec<u8>, Value, Format)> {
    let mut out = Vec::new();
    let dir = docs().join("examples");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("docs/examples")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.display().to_string();
        let bytes = std::fs::read(&path).expect("example");
        let (value, format) = match path.extension().and_then(|e| e.to_str()) {
            Some("json") => (
                serde_json::from_slice::<Value>(&bytes).expect("example JSON"),
                Format::Json,
            ),
            Some("yaml" | "yml") => (
                serde_yaml::from_slice::<Value>(&bytes).expect("example YAML"),
                Format::Yaml,
            ),
            _ => continue,
        };
        out.push((name, bytes, value, format));
    }
    out
}

#[test]
fn examples_validate_against_the_schema_and_parse() {
    let validator = schema();
    let examples = examples();
    let names: Vec<&str> = examples.iter().map(|e| e.0.as_str()).collect();
    for wanted in [
        "http-server.json",
        "http-server.yaml",
        "sleep.json",
        "docker-web.json",
    ] {
        assert!(
            names.iter().any(|n| n.ends_with(wanted)),
            "{wanted} missing"
        );
    }
    for (name, bytes, value, format) in &examples {
        let errors = schema_errors(&validator, value);
        assert!(errors.is_empty(), "{name} fails the schema: {errors:?}");
        let spec = parse_job_spec(bytes, *format).unwrap_or_else(|e| panic!("{name}: {e}"));
        // The canonical form (every default spelled out) satisfies the schema too.
        let canonical: Value = serde_json::from_slice(&spec.to_canonical_json()).expect("json");
        let errors = schema_errors(&validator, &canonical);
        assert!(errors.is_empty(), "{name} canonical fails: {errors:?}");
    }
}

#[test]
fn http_server_json_and_yaml_are_the_same_job() {
    let read = |file: &str| std::fs::read(docs().join("examples").join(file)).expect("example");
    let json = parse_job_spec(&read("http-server.json"), Format::Auto).expect("json");
    let yaml = parse_job_spec(&read("http-server.yaml"), Format::Auto).expect("yaml");
    assert_eq!(json, yaml);
    assert_eq!(json.instances, 2);
    assert_eq!(json.ports.len(), 1);
    assert_eq!(json.ports[0].name, "http");
    assert_eq!(json.ports[0].port, 0);
    assert_eq!(json.cmd.as_deref(), Some("python3 -m http.server $PORT0"));
    let sleep = parse_job_spec(&read("sleep.json"), Format::Auto).expect("sleep");
    assert_eq!(sleep.cmd.as_deref(), Some("sleep 3600"));
    assert_eq!((sleep.resources.cpus, sleep.resources.mem), (0.01, 16));
}

#[test]
fn invalid_specs_are_rejected_by_both() {
    let validator = schema();
    let id = "cop.example_owt.dev_pdl.demo_service.web_job.http_cluster.dev";
    let cases = [
        ("no id", json!({"cmd": "x"})),
        ("bad id", json!({"id": "cop.a_owt.b_job.c", "cmd": "x"})),
        ("uppercase id", json!({"id": id.to_uppercase(), "cmd": "x"})),
        ("nothing to run", json!({"id": id})),
        ("cmd and args", json!({"id": id, "cmd": "x", "args": ["x"]})),
        (
            "unknown field",
            json!({"id": id, "cmd": "x", "comand": "y"}),
        ),
        (
            "too many instances",
            json!({"id": id, "cmd": "x", "instances": 100001}),
        ),
        (
            "tiny mem",
            json!({"id": id, "cmd": "x", "resources": {"mem": 2}}),
        ),
        (
            "zero cpus",
            json!({"id": id, "cmd": "x", "resources": {"cpus": 0}}),
        ),
        (
            "reserved env",
            json!({"id": id, "cmd": "x", "env": {"OCEAN_X": "1"}}),
        ),
        (
            "bad env name",
            json!({"id": id, "cmd": "x", "env": {"MY-VAR": "1"}}),
        ),
        (
            "bad port name",
            json!({"id": id, "cmd": "x", "ports": [{"name": "HTTP"}]}),
        ),
        (
            "bad operator",
            json!({"id": id, "cmd": "x", "constraints": [["hostname", "FOO"]]}),
        ),
        (
            "UNIQUE with value",
            json!({"id": id, "cmd": "x", "constraints": [["hostname", "UNIQUE", "x"]]}),
        ),
        (
            "CLUSTER without value",
            json!({"id": id, "cmd": "x", "constraints": [["idc", "CLUSTER"]]}),
        ),
        (
            "MAX_PER not a count",
            json!({"id": id, "cmd": "x", "constraints": [["idc", "MAX_PER", "x"]]}),
        ),
        (
            "http check without port",
            json!({"id": id, "cmd": "x", "health_checks": [{"protocol": "http"}]}),
        ),
        (
            "command check without command",
            json!({"id": id, "cmd": "x", "health_checks": [{"protocol": "command"}]}),
        ),
        (
            "bad image",
            json!({"id": id, "container": {"docker": {"image": "Not An Image"}}}),
        ),
        (
            "relative volume",
            json!({"id": id, "container": {"docker": {"image": "nginx",
                "volumes": [{"host_path": "data", "container_path": "/data"}]}}}),
        ),
        (
            "host network with mappings",
            json!({"id": id, "ports": [{"name": "http"}], "container": {"docker": {"image": "nginx",
                "network": "host", "port_mappings": [{"container_port": 80, "port_name": "http"}]}}}),
        ),
        (
            "bad label key",
            json!({"id": id, "cmd": "x", "labels": {"a b": "c"}}),
        ),
        (
            "backoff factor",
            json!({"id": id, "cmd": "x", "backoff": {"backoff_factor": 0.5}}),
        ),
        (
            "capacity above 1",
            json!({"id": id, "cmd": "x", "upgrade_strategy": {"maximum_over_capacity": 2}}),
        ),
        (
            "kill grace",
            json!({"id": id, "cmd": "x", "kill_grace_period_seconds": 601}),
        ),
        (
            "policy",
            json!({"id": id, "cmd": "x", "placement_policy": "random"}),
        ),
        (
            "flapping",
            json!({"id": id, "cmd": "x", "flapping": {"max_failures": 0}}),
        ),
        ("type", json!({"id": id, "cmd": "x", "type": "cron"})),
        (
            "short sha256",
            json!({"id": id, "cmd": "x", "artifacts": [{"url": "http://h/a", "sha256": "ab"}]}),
        ),
        (
            "ftp artifact",
            json!({"id": id, "cmd": "x", "artifacts": [{"url": "ftp://h/a", "sha256": "a".repeat(64)}]}),
        ),
        (
            "template with source and inline",
            json!({"id": id, "cmd": "x", "templates": [{"source": "a", "inline": "b", "dest": "c"}]}),
        ),
        (
            "template value named like a section",
            json!({"id": id, "cmd": "x", "templates": [{"inline": "b", "dest": "c",
                "values": {"Prod": {}}}]}),
        ),
        (
            "a batch of 11",
            json!({"id": id, "cmd": "x", "type": "batch", "instances": 11}),
        ),
    ];
    for (name, value) in cases {
        assert!(
            !validator.is_valid(&value),
            "schema accepted '{name}': {value}"
        );
        let bytes = serde_json::to_vec(&value).expect("json");
        assert!(
            parse_job_spec(&bytes, Format::Json).is_err(),
            "parser accepted '{name}': {value}"
        );
    }
}

/// Collects every property name declared anywhere in the schema.
fn property_names(schema: &Value, out: &mut std::collections::BTreeSet<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Object(props)) = map.get("properties") {
                out.extend(props.keys().cloned());
            }
            map.values().for_each(|v| property_names(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| property_names(v, out)),
        _ => {}
    }
}

/// Collects every object key of a JSON value.
fn keys(value: &Value, out: &mut std::collections::BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                out.insert(key.clone());
                keys(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| keys(v, out)),
        _ => {}
    }
}

#[test]
fn schema_docs_and_code_name_the_same_fields() {
    let text = std::fs::read_to_string(docs().join("job-spec.schema.json")).expect("schema");
    let schema: Value = serde_json::from_str(&text).expect("json");
    let mut declared = std::collections::BTreeSet::new();
    property_names(&schema, &mut declared);

    // docker-web.json sets every field but `cmd` and `args` (exclusive, and
    // the image is the program), and the canonical form spells out all
    // defaults.
    let example = std::fs::read(docs().join("examples/docker-web.json")).expect("example");
    let spec = parse_job_spec(&example, Format::Json).expect("valid");
    let canonical: Value = serde_json::from_slice(&spec.to_canonical_json()).expect("json");
    let mut used = std::collections::BTreeSet::new();
    keys(&canonical["container"], &mut used);
    for top in canonical.as_object().expect("object").keys() {
        used.insert(top.clone());
    }
    for section in [
        "resources",
        "backoff",
        "upgrade_strategy",
        "flapping",
        "unreachable_strategy",
    ] {
        keys(&canonical[section], &mut used);
    }
    keys(&canonical["ports"], &mut used);
    keys(&canonical["health_checks"], &mut used);
    // Artifacts and templates are for native tasks, so docker-web.json has
    // none: release-web.yaml sets every field of both.
    let release = std::fs::read(docs().join("examples/release-web.yaml")).expect("example");
    let release = parse_job_spec(&release, Format::Yaml).expect("valid");
    let release: Value = serde_json::from_slice(&release.to_canonical_json()).expect("json");
    for list in ["artifacts", "templates"] {
        used.insert(list.to_owned());
        for item in release[list].as_array().expect(list) {
            // The item's own fields only: `values` holds the user's names.
            used.extend(item.as_object().expect("object").keys().cloned());
        }
    }
    used.insert("args".to_owned());
    used.insert("cmd".to_owned());
    // `type` is left out of the canonical form of services, so specs
    // written before it keep their bytes (and their config hash).
    assert!(
        canonical.get("type").is_none(),
        "a service's canonical form has no type"
    );
    let mut batch = spec.clone();
    batch.job_type = ocean_spec::JobType::Batch;
    let batch: Value = serde_json::from_slice(&batch.to_canonical_json()).expect("json");
    assert_eq!(batch["type"], "batch");
    used.insert("type".to_owned());
    // `persistent_volume` too is left out while false.
    assert!(canonical.get("persistent_volume").is_none());
    let mut kept = spec.clone();
    kept.persistent_volume = true;
    let kept: Value = serde_json::from_slice(&kept.to_canonical_json()).expect("json");
    assert_eq!(kept["persistent_volume"], true);
    used.insert("persistent_volume".to_owned());
    // `maintenance` too is left out while false.
    assert!(canonical.get("maintenance").is_none());
    let mut kept = spec.clone();
    kept.maintenance = true;
    let kept: Value = serde_json::from_slice(&kept.to_canonical_json()).expect("json");
    assert_eq!(kept["maintenance"], true);
    used.insert("maintenance".to_owned());
    // A health check's `interval_ms` too is left out while unset.
    assert!(canonical["health_checks"][0].get("interval_ms").is_none());
    let mut fast = spec.clone();
    fast.health_checks[0].interval_ms = Some(250);
    let fast: Value = serde_json::from_slice(&fast.to_canonical_json()).expect("json");
    assert_eq!(fast["health_checks"][0]["interval_ms"], 250);
    used.insert("interval_ms".to_owned());
    assert_eq!(declared, used, "schema properties vs. the code's fields");

    let doc = std::fs::read_to_string(docs().join("job-spec.md")).expect("doc");
    for field in &declared {
        assert!(
            doc.contains(&format!("`{field}`")),
            "job-spec.md lacks `{field}`"
        );
    }
}

#[test]
fn batch_jobs_of_up_to_ten_and_services_of_any_size_pass_the_schema() {
    let validator = schema();
    let id = "cop.example_owt.dev_pdl.demo_service.web_job.http_cluster.dev";
    for value in [
        json!({"id": id, "cmd": "x", "type": "batch", "instances": 10}),
        json!({"id": id, "cmd": "x", "type": "service", "instances": 11}),
        json!({"id": id, "cmd": "x", "instances": 11}),
    ] {
        let errors = schema_errors(&validator, &value);
        assert!(errors.is_empty(), "{value}: {errors:?}");
        let bytes = serde_json::to_vec(&value).expect("json");
        parse_job_spec(&bytes, Format::Json).unwrap_or_else(|e| panic!("{value}: {e}"));
    }
}
