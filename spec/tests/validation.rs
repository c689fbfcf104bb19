//! Every validation rule rejects with the right field path, and all
//! problems are reported together.

use ocean_spec::{
    parse_job_spec, Constraint, ConstraintOperator, Container, DockerContainer, DockerNetwork,
    Format, HealthCheck, HealthCheckProtocol, JobSpec, PortMapping, PortProtocol, PortSpec, Volume,
};

const ID: &str = "cop.example_owt.dev_pdl.demo_service.web_job.http_cluster.dev";

fn base() -> JobSpec {
    JobSpec::new(ID, "sleep 1")
}

fn port(name: &str, number: u16) -> PortSpec {
    PortSpec {
        name: name.into(),
        port: number,
        protocol: PortProtocol::Tcp,
    }
}

fn check(protocol: HealthCheckProtocol) -> HealthCheck {
    let json = format!(r#"{{"protocol":"{}"}}"#, protocol.as_str());
    serde_json::from_str(&json).expect("health check")
}

fn docker(image: &str) -> Container {
    Container {
        docker: DockerContainer {
            image: image.into(),
            network: DockerNetwork::Bridge,
            port_mappings: Vec::new(),
            volumes: Vec::new(),
            privileged: false,
            force_pull: false,
            entrypoint: None,
        },
    }
}

/// The fields of all errors `spec.validate()` reports.
fn errors(spec: &JobSpec) -> Vec<String> {
    match spec.validate() {
        Ok(()) => Vec::new(),
        Err(e) => e.errors.into_iter().map(|e| e.field).collect(),
    }
}

fn assert_rejects(spec: &JobSpec, field: &str) {
    let got = errors(spec);
    assert_eq!(got, [field], "spec: {spec:?}");
}

#[test]
fn base_is_valid() {
    assert!(base().validate().is_ok());
}

#[test]
fn id_errors_name_the_tag() {
    let mut spec = base();
    spec.id = "cop.a_owt.b_service.d_job.e_cluster.f".into();
    let e = spec.validate().expect_err("invalid");
    assert_eq!(e.errors[0].field, "id");
    assert_eq!(e.to_string(), "id: tag 'pdl' missing");
    spec.id = "cop.a_owt.b_pdl.c_service.d_job.Web_cluster.f".into();
    let e = spec.validate().expect_err("invalid");
    assert!(
        e.to_string()
            .starts_with("id: value of 'job' must be a lowercase DNS label"),
        "{e}"
    );
}

#[test]
fn program_rules() {
    let mut spec = base();
    spec.args = Some(vec!["/bin/true".into()]);
    assert_rejects(&spec, "args");
    spec.cmd = None;
    assert!(spec.validate().is_ok());
    spec.args = Some(vec![]);
    assert_rejects(&spec, "args");
    spec.args = Some(vec!["".into()]);
    assert_rejects(&spec, "args[0]");
    spec.args = Some(vec!["/bin/echo".into(), "a\0b".into()]);
    assert_rejects(&spec, "args[1]");
    spec.args = None;
    assert_rejects(&spec, "cmd");
    spec.container = Some(docker("nginx"));
    assert!(spec.validate().is_ok(), "an image alone is enough");
    spec.cmd = Some("   ".into());
    assert_rejects(&spec, "cmd");
}

#[test]
fn env_rules() {
    let mut spec = base();
    spec.env.insert("GOOD_1".into(), "x".into());
    assert!(spec.validate().is_ok());
    spec.env.insert("MY-VAR".into(), "x".into());
    spec.env.insert("OCEAN_TASK".into(), "x".into());
    spec.env.insert("9LIVES".into(), "x".into());
    assert_eq!(
        errors(&spec),
        ["env.9LIVES", "env.MY-VAR", "env.OCEAN_TASK"]
    );
}

#[test]
fn instance_and_resource_ranges() {
    let mut spec = base();
    spec.instances = 0;
    assert!(spec.validate().is_ok(), "0 suspends");
    spec.instances = 100_000;
    assert!(spec.validate().is_ok());
    spec.instances = 100_001;
    assert_rejects(&spec, "instances");

    let mut spec = base();
    for bad in [0.0, -1.0, 1024.5, f64::NAN, f64::INFINITY] {
        spec.resources.cpus = bad;
        assert_rejects(&spec, "resources.cpus");
    }
    spec.resources.cpus = 1024.0;
    assert!(spec.validate().is_ok());
    spec.resources.mem = 3;
    assert_rejects(&spec, "resources.mem");
    spec.resources.mem = 4;
    assert!(spec.validate().is_ok());
    spec.resources.disk = u64::MAX;
    assert_rejects(&spec, "resources.disk");
}

#[test]
fn port_rules() {
    let mut spec = base();
    spec.ports = vec![port("http", 0), port("admin", 8080), port("dyn", 0)];
    assert!(spec.validate().is_ok());
    spec.ports.push(port("http", 0));
    spec.ports.push(port("Bad_Name", 0));
    spec.ports.push(port("other", 8080));
    let mut udp = port("dns", 8080);
    udp.protocol = PortProtocol::Udp;
    spec.ports.push(udp); // same number, other protocol: fine
    assert_eq!(
        errors(&spec),
        ["ports[3].name", "ports[4].name", "ports[5].port"]
    );
}

#[test]
fn constraint_rules() {
    let mut spec = base();
    let c = |attribute: &str, operator, value: Option<&str>| Constraint {
        attribute: attribute.into(),
        operator,
        value: value.map(Into::into),
    };
    spec.constraints = vec![
        c("hostname", ConstraintOperator::Unique, None),
        c("idc", ConstraintOperator::Cluster, Some("c3")),
        c("rack", ConstraintOperator::GroupBy, None),
        c("idc", ConstraintOperator::Like, Some("c[0-9]")),
        c("hostname", ConstraintOperator::MaxPer, Some("2")),
    ];
    assert!(spec.validate().is_ok());
    spec.constraints = vec![
        c("hostname", ConstraintOperator::Unique, Some("x")),
        c("idc", ConstraintOperator::Cluster, None),
        c("rack", ConstraintOperator::GroupBy, Some("-1")),
        c("idc", ConstraintOperator::Unlike, Some("(")),
        c("hostname", ConstraintOperator::MaxPer, Some("many")),
        c("status", ConstraintOperator::Is, None),
    ];
    assert_eq!(
        errors(&spec),
        [
            "constraints[0][2]",
            "constraints[1]",
            "constraints[2][2]",
            "constraints[3][2]",
            "constraints[4][2]",
            "constraints[5]"
        ]
    );
}

#[test]
fn health_check_rules() {
    let mut spec = base();
    spec.ports = vec![port("http", 0)];
    let mut http = check(HealthCheckProtocol::Http);
    http.port_name = Some("http".into());
    let mut cmd = check(HealthCheckProtocol::Command);
    cmd.command = Some("true".into());
    spec.health_checks = vec![http.clone(), cmd.clone()];
    assert!(spec.validate().is_ok());

    let mut no_port = check(HealthCheckProtocol::Tcp);
    no_port.port_name = Some("admin".into());
    let missing_port = check(HealthCheckProtocol::Http);
    let missing_cmd = check(HealthCheckProtocol::Command);
    let mut bad_http = http.clone();
    bad_http.path = "healthz".into();
    bad_http.status_min = 500;
    bad_http.status_max = 200;
    bad_http.interval_seconds = 0;
    bad_http.interval_ms = Some(50);
    bad_http.timeout_seconds = 0;
    let mut mixed = cmd.clone();
    mixed.port_name = Some("http".into());
    spec.health_checks = vec![no_port, missing_port, missing_cmd, bad_http, mixed];
    assert_eq!(
        errors(&spec),
        [
            "health_checks[0].port_name",
            "health_checks[1].port_name",
            "health_checks[2].command",
            "health_checks[3].path",
            "health_checks[3].status_max",
            "health_checks[3].interval_seconds",
            "health_checks[3].interval_ms",
            "health_checks[3].timeout_seconds",
            "health_checks[4].port_name",
        ]
    );

    // An http check on a udp port makes no sense.
    let mut spec = base();
    let mut udp = port("dns", 0);
    udp.protocol = PortProtocol::Udp;
    spec.ports = vec![udp];
    let mut http = check(HealthCheckProtocol::Http);
    http.port_name = Some("dns".into());
    spec.health_checks = vec![http];
    assert_rejects(&spec, "health_checks[0].port_name");
}

#[test]
fn docker_rules() {
    let mut spec = base();
    spec.ports = vec![port("http", 0)];
    let mut container = docker("registry.example.com:5000/team/web:1.0");
    container.docker.port_mappings = vec![PortMapping {
        container_port: 80,
        port_name: "http".into(),
    }];
    container.docker.volumes = vec![Volume {
        host_path: "/srv/data".into(),
        container_path: "/data".into(),
        read_only: true,
    }];
    spec.container = Some(container.clone());
    assert!(spec.validate().is_ok());

    let mut bad = container.clone();
    bad.docker.image = "Not A Reference".into();
    bad.docker.port_mappings.push(PortMapping {
        container_port: 0,
        port_name: "nope".into(),
    });
    bad.docker.port_mappings.push(PortMapping {
        container_port: 81,
        port_name: "http".into(),
    });
    bad.docker.volumes.push(Volume {
        host_path: "relative".into(),
        container_path: "/data".into(),
        read_only: false,
    });
    bad.docker.volumes.push(Volume {
        host_path: "/a/../etc".into(),
        container_path: "tmp".into(),
        read_only: false,
    });
    spec.container = Some(bad);
    assert_eq!(
        errors(&spec),
        [
            "container.docker.image",
            "container.docker.port_mappings[1].container_port",
            "container.docker.port_mappings[1].port_name",
            "container.docker.port_mappings[2].port_name",
            "container.docker.volumes[1].host_path",
            "container.docker.volumes[1].container_path",
            "container.docker.volumes[2].host_path",
            "container.docker.volumes[2].container_path",
        ]
    );

    let mut host = container;
    host.docker.network = DockerNetwork::Host;
    spec.container = Some(host);
    assert_rejects(&spec, "container.docker.port_mappings");

    spec.container = Some(docker(""));
    assert_rejects(&spec, "container.docker.image");

    let mut entry = docker("busybox");
    entry.docker.entrypoint = Some(vec![]);
    spec.container = Some(entry.clone());
    assert!(
        spec.validate().is_ok(),
        "an empty entrypoint clears the image's"
    );
    entry.docker.entrypoint = Some(vec![" ".into(), "a\0b".into()]);
    spec.container = Some(entry);
    assert_eq!(
        errors(&spec),
        [
            "container.docker.entrypoint[0]",
            "container.docker.entrypoint[1]"
        ]
    );
}

#[test]
fn label_rules() {
    let mut spec = base();
    spec.labels.insert("example.com/team".into(), "x".into());
    assert!(spec.validate().is_ok());
    spec.labels.insert("has space".into(), "x".into());
    spec.labels.insert("k".repeat(64), "x".into());
    spec.labels.insert(String::new(), "x".into());
    assert_eq!(
        errors(&spec),
        [
            "labels.".to_owned(),
            "labels.has space".to_owned(),
            format!("labels.{}", "k".repeat(64))
        ]
    );
}

#[test]
fn backoff_upgrade_kill_and_flapping_ranges() {
    let mut spec = base();
    spec.backoff.backoff_seconds = 0.0;
    spec.backoff.backoff_factor = 0.9;
    spec.upgrade_strategy.minimum_health_capacity = 1.5;
    spec.upgrade_strategy.maximum_over_capacity = -0.1;
    spec.kill_grace_period_seconds = 601;
    spec.flapping.max_failures = 0;
    spec.flapping.window_seconds = 0;
    assert_eq!(
        errors(&spec),
        [
            "backoff.backoff_seconds",
            "backoff.backoff_factor",
            "upgrade_strategy.minimum_health_capacity",
            "upgrade_strategy.maximum_over_capacity",
            "kill_grace_period_seconds",
            "flapping.max_failures",
            "flapping.window_seconds",
        ]
    );
    let mut spec = base();
    spec.backoff.backoff_seconds = 10.0;
    spec.backoff.max_launch_delay_seconds = 5.0;
    assert_rejects(&spec, "backoff.max_launch_delay_seconds");
    spec.kill_grace_period_seconds = 600;
    spec.backoff.max_launch_delay_seconds = 10.0;
    assert!(spec.validate().is_ok());
    spec.backoff.reset_after_seconds = 0;
    assert_rejects(&spec, "backoff.reset_after_seconds");
}

#[test]
fn backoff_delays_grow_by_the_factor_up_to_the_cap() {
    let b = ocean_spec::Backoff {
        backoff_seconds: 1.0,
        backoff_factor: 2.0,
        max_launch_delay_seconds: 5.0,
        reset_after_seconds: 60,
    };
    let delays: Vec<f64> = (0..6).map(|n| b.delay_seconds(n)).collect();
    assert_eq!(delays, vec![0.0, 1.0, 2.0, 4.0, 5.0, 5.0]);
    let d = ocean_spec::Backoff::default();
    assert!((d.delay_seconds(2) - 1.15).abs() < 1e-9);
    assert_eq!(d.delay_seconds(1_000), 300.0);
}

#[test]
fn all_errors_are_reported_at_once_through_parse() {
    let input = r#"
id: cop.a_owt.b_pdl.c_service.d_job.e
cmd: run
args: [run]
instances: 200000
resources: {cpus: 0, mem: 2}
ports: [{name: http}, {name: http}]
env: {MY-VAR: x}
"#;
    let e = parse_job_spec(input.as_bytes(), Format::Yaml).expect_err("invalid");
    let got: Vec<&str> = e.errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        got,
        [
            "id",
            "args",
            "env.MY-VAR",
            "instances",
            "resources.cpus",
            "resources.mem",
            "ports[1].name"
        ]
    );
    let text = e.to_string();
    assert!(
        text.starts_with("id: tag 'cluster' missing; args: "),
        "{text}"
    );
}

#[test]
fn unreachable_strategy_is_bounded() {
    let mut s = base();
    s.unreachable_strategy = Some(ocean_spec::UnreachableStrategy {
        replace_after_seconds: 8 * 86_400,
    });
    let e = s.validate().expect_err("a wait over a week");
    assert_eq!(
        e.errors[0].field,
        "unreachable_strategy.replace_after_seconds"
    );
    s.unreachable_strategy = Some(ocean_spec::UnreachableStrategy {
        replace_after_seconds: 300,
    });
    assert!(s.validate().is_ok());
    let typo = format!(r#"{{"id":"{ID}","cmd":"x","unreachable_strategy":{{"replace_after":3}}}}"#);
    let e = parse_job_spec(typo.as_bytes(), Format::Json).expect_err("unknown field");
    assert!(
        e.errors[0].field.starts_with("unreachable_strategy"),
        "{:?}",
        e.errors
    );
}

#[test]
fn job_type_is_service_or_batch_and_batches_are_small() {
    let ok = format!(r#"{{"id":"{ID}","cmd":"true","type":"batch","instances":10}}"#);
    let spec = parse_job_spec(ok.as_bytes(), Format::Json).expect("a batch of 10");
    assert_eq!(spec.job_type, ocean_spec::JobType::Batch);
    // A batch job validates like any other.
    let bad_mem = format!(r#"{{"id":"{ID}","cmd":"true","type":"batch","resources":{{"mem":1}}}}"#);
    let e = parse_job_spec(bad_mem.as_bytes(), Format::Json).expect_err("too little memory");
    assert_eq!(e.errors[0].field, "resources.mem", "{e}");
    // Anything else is an error naming the field and the allowed values,
    // in JSON and in YAML.
    for (input, format) in [
        (
            format!(r#"{{"id":"{ID}","cmd":"true","type":"cron"}}"#),
            Format::Json,
        ),
        (
            format!("id: {ID}\ncmd: 'true'\ntype: Batch\n"),
            Format::Yaml,
        ),
    ] {
        let e = parse_job_spec(input.as_bytes(), format).expect_err("not a type");
        assert_eq!(e.errors[0].field, "type", "{e}");
        let reason = &e.errors[0].reason;
        assert!(
            reason.contains("service") && reason.contains("batch"),
            "{reason}"
        );
    }
    // A service may have many instances; a batch job at most 10.
    let many = format!(r#"{{"id":"{ID}","cmd":"true","instances":11}}"#);
    assert!(parse_job_spec(many.as_bytes(), Format::Json).is_ok());
    let big = format!(r#"{{"id":"{ID}","cmd":"true","type":"batch","instances":11}}"#);
    let e = parse_job_spec(big.as_bytes(), Format::Json).expect_err("a batch of 11");
    assert_eq!(e.errors[0].field, "instances", "{e}");
    assert!(e.errors[0].reason.contains("batch"), "{e}");
}

#[test]
fn artifact_and_template_rules() {
    let sha = "ab".repeat(32);
    let spec = format!(
        r#"{{"id": "{ID}", "cmd": "x",
            "artifacts": [{{"url": "http://h/app.tar.gz", "sha256": "{sha}", "extract": true}},
                          {{"url": "http://h/x", "sha256": "12"}}],
            "templates": [{{"source": "config.template.yml", "dest": "config.yml",
                            "values": {{"base": {{"a": 1}}, "production": {{"a": 2}}}}}},
                          {{"inline": "x", "dest": "current/x"}}]}}"#
    );
    let err = parse_job_spec(spec.as_bytes(), Format::Json).unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.contains("artifacts[1].sha256: must be 64 hex digits"),
        "{shown}"
    );
    assert!(err.has_field("templates[1].dest"), "{shown}");
    assert_eq!(err.errors.len(), 2, "{shown}");

    let ok = spec
        .replace(r#""12""#, &format!(r#""{sha}""#))
        .replace("current/x", "x.conf");
    let parsed = parse_job_spec(ok.as_bytes(), Format::Json).expect("valid");
    assert_eq!(parsed.artifacts.len(), 2);
    assert_eq!(parsed.templates[0].values["production"]["a"], 2);
    // Both are embodied by tasks: changing them replaces tasks.
    assert_ne!(parsed.config_hash(), base().config_hash());
    let mut changed = parsed.clone();
    changed.templates[0].values.clear();
    assert_ne!(parsed.config_hash(), changed.config_hash());
    // And an empty list leaves the canonical form as it was.
    let canonical = String::from_utf8(base().to_canonical_json()).expect("utf-8");
    assert!(!canonical.contains("artifacts") && !canonical.contains("templates"));

    let mut container = base();
    container.cmd = None;
    container.container = Some(docker("nginx"));
    container.artifacts = parsed.artifacts.clone();
    let err = container.validate().unwrap_err();
    assert!(err.has_field("artifacts"), "{err}");
}

#[test]
fn maintenance_needs_a_pin_to_one_host() {
    let mut spec = base();
    spec.maintenance = true;
    assert_rejects(&spec, "maintenance");
    spec.constraints = vec![Constraint {
        attribute: "hostname".into(),
        operator: ConstraintOperator::Like,
        value: Some("h.*".into()),
    }];
    assert_rejects(&spec, "maintenance");
    spec.constraints = vec![Constraint {
        attribute: "hostname".into(),
        operator: ConstraintOperator::Cluster,
        value: Some("h1".into()),
    }];
    assert!(spec.validate().is_ok());
}
