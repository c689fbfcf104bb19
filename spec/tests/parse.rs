//! Parsing JSON and YAML: defaults, round trips, and parse errors that name
//! their field.

use ocean_spec::{
    parse_job_spec, ConstraintOperator, DockerNetwork, Format, HealthCheckProtocol, JobSpec,
    JobType, PortProtocol, SpecError,
};

const ID: &str = "cop.example_owt.dev_pdl.demo_service.web_job.http_cluster.dev";

fn minimal_json() -> String {
    format!(r#"{{"id":"{ID}","cmd":"sleep 1"}}"#)
}

fn reject(input: &str, format: Format) -> SpecError {
    match parse_job_spec(input.as_bytes(), format) {
        Ok(spec) => panic!("accepted: {spec:?}"),
        Err(e) => e,
    }
}

fn fields(e: &SpecError) -> Vec<&str> {
    e.errors.iter().map(|e| e.field.as_str()).collect()
}

#[test]
fn defaults_are_filled_in() {
    let spec = parse_job_spec(minimal_json().as_bytes(), Format::Json).expect("valid");
    assert_eq!(spec, JobSpec::new(ID, "sleep 1"));
    assert_eq!(spec.instances, 1);
    assert_eq!(spec.resources.cpus, 0.1);
    assert_eq!(spec.resources.mem, 128);
    assert_eq!(spec.resources.disk, 0);
    assert!(spec.env.is_empty() && spec.ports.is_empty() && spec.constraints.is_empty());
    assert!(spec.health_checks.is_empty() && spec.labels.is_empty());
    assert_eq!(spec.container, None);
    assert_eq!(spec.backoff.backoff_seconds, 1.0);
    assert_eq!(spec.backoff.backoff_factor, 1.15);
    assert_eq!(spec.backoff.max_launch_delay_seconds, 300.0);
    assert_eq!(spec.upgrade_strategy.minimum_health_capacity, 1.0);
    assert_eq!(spec.upgrade_strategy.maximum_over_capacity, 1.0);
    assert_eq!(spec.kill_grace_period_seconds, 5);
    assert_eq!(spec.priority, 0);
    assert_eq!(spec.placement_policy, None);
    assert_eq!(spec.flapping.max_failures, 3);
    assert_eq!(spec.flapping.window_seconds, 600);
}

#[test]
fn nested_defaults_are_filled_in() {
    let input = format!(
        r#"{{"id":"{ID}","ports":[{{"name":"http"}}],
            "health_checks":[{{"protocol":"http","port_name":"http"}}],
            "container":{{"docker":{{"image":"nginx","volumes":[{{"host_path":"/a","container_path":"/b"}}]}}}},
            "resources":{{"mem":64}}}}"#
    );
    let spec = parse_job_spec(input.as_bytes(), Format::Json).expect("valid");
    assert_eq!(spec.ports[0].port, 0);
    assert_eq!(spec.ports[0].protocol, PortProtocol::Tcp);
    let check = &spec.health_checks[0];
    assert_eq!(check.protocol, HealthCheckProtocol::Http);
    assert_eq!(check.path, "/");
    assert_eq!((check.status_min, check.status_max), (200, 399));
    assert_eq!(check.grace_period_seconds, 300);
    assert_eq!(check.interval_seconds, 10);
    assert_eq!(check.timeout_seconds, 20);
    assert_eq!(check.max_consecutive_failures, 3);
    let docker = &spec.container.as_ref().expect("container").docker;
    assert_eq!(docker.network, DockerNetwork::Bridge);
    assert!(!docker.privileged && !docker.force_pull && !docker.volumes[0].read_only);
    assert_eq!(spec.resources.cpus, 0.1);
    assert_eq!(spec.resources.mem, 64);
}

const FULL_YAML: &str = r#"
id: cop.xiaomi_owt.inf_pdl.ocean_servicegroup.ocean_service.mesos-dns_job.mesos-dns_cluster.c3
args: [/usr/bin/mesos-dns, -config, /etc/mesos-dns.json]
env: {A: "1", B_2: two}
instances: 3
resources: {cpus: 2, mem: 1024, disk: 10}
ports:
  - {name: dns, port: 53, protocol: udp}
  - {name: dns-tcp, port: 53}
  - {name: http}
constraints:
  - [hostname, UNIQUE]
  - [rack, GROUP_BY]
  - [rack, MAX_PER, 2]
health_checks:
  - {protocol: tcp, port_name: dns-tcp}
  - {protocol: command, command: "dig @127.0.0.1 ocean"}
labels: {team: inf}
backoff: {backoff_seconds: 0.5, backoff_factor: 2, max_launch_delay_seconds: 60}
upgrade_strategy: {minimum_health_capacity: 0.5, maximum_over_capacity: 0}
kill_grace_period_seconds: 10
priority: -3
placement_policy: spread
flapping: {max_failures: 5, window_seconds: 60}
"#;

#[test]
fn yaml_and_json_agree_and_round_trip() {
    let spec = parse_job_spec(FULL_YAML.as_bytes(), Format::Yaml).expect("valid");
    assert_eq!(spec.constraints[2].operator, ConstraintOperator::MaxPer);
    assert_eq!(spec.constraints[2].value.as_deref(), Some("2"));
    assert_eq!(spec.backoff.backoff_factor, 2.0);
    // Auto-detection picks YAML here.
    assert_eq!(
        parse_job_spec(FULL_YAML.as_bytes(), Format::Auto).expect("valid"),
        spec
    );
    let canonical = spec.to_canonical_json();
    let again = parse_job_spec(&canonical, Format::Json).expect("canonical parses");
    assert_eq!(again, spec);
    assert_eq!(
        again.to_canonical_json(),
        canonical,
        "canonical is a fixed point"
    );
    // Auto-detection picks JSON for the canonical form, with leading space too.
    let mut spaced = b"  \n".to_vec();
    spaced.extend_from_slice(&canonical);
    assert_eq!(parse_job_spec(&spaced, Format::Auto).expect("valid"), spec);
    // JSON is valid YAML too.
    assert_eq!(
        parse_job_spec(&canonical, Format::Yaml).expect("valid"),
        spec
    );
}

#[test]
fn canonical_json_contains_every_default() {
    let spec = parse_job_spec(minimal_json().as_bytes(), Format::Json).expect("valid");
    let value: serde_json::Value = serde_json::from_slice(&spec.to_canonical_json()).expect("json");
    for key in [
        "id",
        "cmd",
        "env",
        "instances",
        "resources",
        "ports",
        "constraints",
        "health_checks",
        "labels",
        "backoff",
        "upgrade_strategy",
        "kill_grace_period_seconds",
        "priority",
        "flapping",
    ] {
        assert!(value.get(key).is_some(), "{key} missing from {value}");
    }
    assert_eq!(value["resources"]["mem"], 128);
    assert_eq!(value["backoff"]["backoff_factor"], 1.15);
}

/// The canonical form the code wrote before `type` existed: a service's
/// bytes, and so its config hash and spec version, must not change.
const CANONICAL_BEFORE_TYPE: &str = concat!(
    r#"{"id":"cop.example_owt.dev_pdl.demo_service.web_job.http_cluster.dev","cmd":"sleep 1","#,
    r#""env":{},"instances":1,"resources":{"cpus":0.1,"mem":128,"disk":0},"ports":[],"#,
    r#""constraints":[],"health_checks":[],"labels":{},"backoff":{"backoff_seconds":1.0,"#,
    r#""backoff_factor":1.15,"max_launch_delay_seconds":300.0,"reset_after_seconds":60},"#,
    r#""upgrade_strategy":{"minimum_health_capacity":1.0,"maximum_over_capacity":1.0},"#,
    r#""kill_grace_period_seconds":5,"priority":0,"flapping":{"max_failures":3,"window_seconds":600}}"#
);

#[test]
fn a_service_keeps_its_canonical_bytes_and_a_batch_job_says_so() {
    let canonical = |input: &str| {
        let spec = parse_job_spec(input.as_bytes(), Format::Auto).expect("valid");
        String::from_utf8(spec.to_canonical_json()).expect("utf-8")
    };
    assert_eq!(canonical(&minimal_json()), CANONICAL_BEFORE_TYPE);
    // Saying `service` is the same job as saying nothing.
    let service = format!(r#"{{"id":"{ID}","cmd":"sleep 1","type":"service"}}"#);
    assert_eq!(canonical(&service), CANONICAL_BEFORE_TYPE);
    assert_eq!(canonical(CANONICAL_BEFORE_TYPE), CANONICAL_BEFORE_TYPE);
    // A batch job's canonical form carries its type, and reads back.
    let batch = canonical(&format!("id: {ID}\ncmd: sleep 1\ntype: batch\n"));
    let value: serde_json::Value = serde_json::from_str(&batch).expect("json");
    assert_eq!(value["type"], "batch");
    let again = parse_job_spec(batch.as_bytes(), Format::Json).expect("valid");
    assert_eq!(again.job_type, JobType::Batch);
    assert_eq!(again.job_type.as_str(), "batch");
}

#[test]
fn service_tree_id_is_parsed() {
    let spec = parse_job_spec(FULL_YAML.as_bytes(), Format::Yaml).expect("valid");
    let id = spec.service_tree_id();
    assert_eq!(id.service, "mesos-dns");
    assert_eq!(id.servicegroup.as_deref(), Some("ocean"));
    assert_eq!(id.to_string(), spec.id);
    // An invalid spec still yields something, without panicking.
    let mut broken = spec.clone();
    broken.id = "garbage_job.x".into();
    assert_eq!(broken.service_tree_id().job, "x");
}

#[test]
fn unknown_fields_are_named() {
    let e = reject(
        &format!(r#"{{"id":"{ID}","cmd":"x","comand":"y"}}"#),
        Format::Json,
    );
    assert_eq!(fields(&e), ["comand"]);
    assert!(e.errors[0].reason.starts_with("unknown field"), "{e}");
    let e = reject(
        &format!("id: {ID}\ncmd: x\nresources:\n  memory: 3\n"),
        Format::Yaml,
    );
    assert_eq!(fields(&e), ["resources.memory"]);
    let e = reject(
        &format!(r#"{{"id":"{ID}","cmd":"x","ports":[{{"name":"a","prot":"udp"}}]}}"#),
        Format::Json,
    );
    assert_eq!(fields(&e), ["ports[0].prot"]);
    let e = reject(
        &format!(
            "id: {ID}\nimage: nginx\ncontainer:\n  docker:\n    image: nginx\n    net: host\n"
        ),
        Format::Yaml,
    );
    assert_eq!(fields(&e), ["image"]);
}

#[test]
fn missing_fields_are_named() {
    let e = reject(r#"{"cmd":"x"}"#, Format::Json);
    assert_eq!(fields(&e), ["id"]);
    let e = reject(
        &format!("id: {ID}\ncmd: x\nports:\n  - port: 80\n"),
        Format::Yaml,
    );
    assert_eq!(fields(&e), ["ports[0].name"]);
    let e = reject(
        &format!(r#"{{"id":"{ID}","container":{{"docker":{{}}}}}}"#),
        Format::Json,
    );
    assert_eq!(fields(&e), ["container.docker.image"]);
    let e = reject(
        &format!(r#"{{"id":"{ID}","cmd":"x","health_checks":[{{"port_name":"a"}}]}}"#),
        Format::Json,
    );
    assert_eq!(fields(&e), ["health_checks[0].protocol"]);
}

#[test]
fn wrong_types_are_named() {
    let e = reject(
        &format!(r#"{{"id":"{ID}","cmd":"x","resources":{{"mem":"lots"}}}}"#),
        Format::Json,
    );
    assert_eq!(fields(&e), ["resources.mem"]);
    assert!(e.errors[0].reason.contains("invalid type"), "{e}");
    let e = reject(&format!("id: {ID}\ncmd: x\ninstances: -1\n"), Format::Yaml);
    assert_eq!(fields(&e), ["instances"]);
    let e = reject(
        &format!(r#"{{"id":"{ID}","cmd":"x","env":{{"PORT":8080}}}}"#),
        Format::Json,
    );
    assert_eq!(fields(&e), ["env.PORT"]);
    // YAML scalars are read as strings where a string is expected.
    let spec = parse_job_spec(
        format!("id: {ID}\ncmd: x\nenv:\n  PORT: 8080\n").as_bytes(),
        Format::Yaml,
    )
    .expect("valid");
    assert_eq!(spec.env["PORT"], "8080");
    let e = reject(
        &format!("id: {ID}\ncmd: x\nenv:\n  PORT: [1]\n"),
        Format::Yaml,
    );
    assert_eq!(fields(&e), ["env.PORT"]);
    let e = reject(
        &format!(r#"{{"id":"{ID}","cmd":"x","ports":[{{"name":"a","port":70000}}]}}"#),
        Format::Json,
    );
    assert_eq!(fields(&e), ["ports[0].port"]);
    let e = reject(
        &format!(r#"{{"id":"{ID}","cmd":"x","ports":[{{"name":"a","protocol":"sctp"}}]}}"#),
        Format::Json,
    );
    assert_eq!(fields(&e), ["ports[0].protocol"]);
    let e = reject(
        &format!("id: {ID}\ncmd: x\nplacement_policy: random\n"),
        Format::Yaml,
    );
    assert_eq!(fields(&e), ["placement_policy"]);
}

#[test]
fn constraint_operator_errors_point_into_the_array() {
    let input = format!(
        r#"{{"id":"{ID}","cmd":"x","constraints":[["a","UNIQUE"],["b","IS","c"],["c","FOO"]]}}"#
    );
    let e = reject(&input, Format::Json);
    assert_eq!(fields(&e), ["constraints[2][1]"]);
    assert!(
        e.errors[0]
            .reason
            .starts_with("unknown operator 'FOO'; expected one of UNIQUE, CLUSTER, GROUP_BY, LIKE, UNLIKE, MAX_PER, IS"),
        "{e}"
    );
    let e = reject(
        &format!("id: {ID}\ncmd: x\nconstraints:\n  - [a, UNIQUE]\n  - [b, unique]\n"),
        Format::Yaml,
    );
    assert_eq!(fields(&e), ["constraints[1][1]"]);
    let e = reject(
        &format!("id: {ID}\ncmd: x\nconstraints:\n  - hostname\n"),
        Format::Yaml,
    );
    assert_eq!(fields(&e), ["constraints[0]"]);
}

#[test]
fn syntax_errors_name_a_place() {
    let e = reject(
        &format!(r#"{{"id":"{ID}","cmd":"x","resources":{{"mem":1,}}}}"#),
        Format::Json,
    );
    assert_eq!(fields(&e), ["resources"]);
    assert!(e.errors[0].reason.contains("line 1"), "{e}");
    let e = reject("{", Format::Json);
    assert_eq!(fields(&e), ["(root)"]);
    let e = reject("id: [unclosed\n", Format::Yaml);
    assert_eq!(e.errors.len(), 1);
    let e = reject(&format!("{} trailing", minimal_json()), Format::Json);
    assert_eq!(fields(&e), ["(root)"]);
    let e = reject("", Format::Auto);
    assert_eq!(e.errors[0].reason, "the spec is empty");
    let e = reject("- a\n- b\n", Format::Yaml);
    assert_eq!(fields(&e), ["(root)"]);
    let e = reject(&format!("id: {ID}\n---\nid: {ID}\n"), Format::Yaml);
    assert_eq!(fields(&e), ["(root)"]);
}

#[test]
fn duplicate_keys_are_rejected() {
    let e = reject(
        &format!(r#"{{"id":"{ID}","cmd":"x","cmd":"y"}}"#),
        Format::Json,
    );
    assert_eq!(fields(&e), ["cmd"]);
    let e = reject(&format!("id: {ID}\ncmd: x\ncmd: y\n"), Format::Yaml);
    assert_eq!(fields(&e), ["cmd"]);
}

#[test]
fn oversized_input_is_rejected_early() {
    let big = vec![b' '; ocean_spec::parse::MAX_SPEC_BYTES + 1];
    let e = parse_job_spec(&big, Format::Auto).expect_err("too big");
    assert!(e.errors[0].reason.contains("at most"), "{e}");
}

#[test]
fn errors_serialize_for_the_api() {
    let e = reject(r#"{"cmd":"x"}"#, Format::Json);
    let body = e.to_response_body();
    assert_eq!(body["error"], "invalid job spec");
    assert_eq!(body["errors"][0]["field"], "id");
    assert!(body["errors"][0]["reason"].is_string());
}

#[test]
fn format_names() {
    assert_eq!("JSON".parse::<Format>(), Ok(Format::Json));
    assert_eq!("yml".parse::<Format>(), Ok(Format::Yaml));
    assert!("toml".parse::<Format>().is_err());
    assert_eq!(Format::Auto.detect(b"\xEF\xBB\xBF{"), Format::Json);
    assert_eq!(Format::Auto.detect(b"id: x"), Format::Yaml);
    assert_eq!(Format::Yaml.detect(b"{"), Format::Yaml);
}
