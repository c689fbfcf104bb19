//! Semantic validation of a parsed [`JobSpec`]: ranges, names, references
//! between fields. Every rule runs, so the user sees all problems at once.

use std::collections::{BTreeMap, HashMap};

use crate::container::check_docker;
use crate::error::{FieldError, SpecError};
use crate::health::check_health;
use crate::id::ServiceTreeId;
use crate::ports::{PortProtocol, PortSpec};
use crate::spec::{Backoff, Flapping, JobSpec, JobType, Resources, UpgradeStrategy};

/// Most instances of a batch job: the masters count a run's finished
/// tasks among the ended tasks they keep of each job (its newest 10), so
/// a larger run could not be told complete.
pub const MAX_BATCH_INSTANCES: u32 = 10;

/// Most instances a job may ask for.
pub const MAX_INSTANCES: u32 = 100_000;
/// Most CPUs per task.
pub const MAX_CPUS: f64 = 1024.0;
/// Least memory per task, MiB.
pub const MIN_MEM: u64 = 4;
/// Most memory per task, MiB (4 TiB).
pub const MAX_MEM: u64 = 4 * 1024 * 1024;
/// Fewest processes a task may be limited to (a shell and its child).
pub const MIN_PIDS: u32 = 2;
/// Most processes a task may be allowed.
pub const MAX_PIDS: u32 = 4_194_304;
/// Most disk per task, MiB (64 TiB).
pub const MAX_DISK: u64 = 64 * 1024 * 1024;
/// Longest kill grace period, seconds.
pub const MAX_KILL_GRACE_PERIOD_SECONDS: u32 = 600;
/// Longest `shutdown_delay_seconds`: a drain longer than this holds a
/// deployment's old capacity for too long to be meant.
pub const MAX_SHUTDOWN_DELAY_SECONDS: u32 = 3_600;
/// Longest `cmd`, health-check `command` or single argument, bytes.
pub const MAX_COMMAND_LEN: usize = 64 * 1024;
/// Longest env or label value, bytes.
pub const MAX_VALUE_LEN: usize = 64 * 1024;
/// Reserved prefix of environment variables set by Ocean itself.
pub const RESERVED_ENV_PREFIX: &str = "OCEAN_";

/// Gathers field errors in the order they are found.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    errors: Vec<FieldError>,
}

impl Collector {
    pub(crate) fn push(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(FieldError::new(field, reason));
    }

    pub(crate) fn into_vec(self) -> Vec<FieldError> {
        self.errors
    }
}

impl JobSpec {
    /// Checks every rule and returns all violations, each naming its field.
    pub fn validate(&self) -> Result<(), SpecError> {
        let mut errors = Collector::default();
        if let Err(e) = ServiceTreeId::parse(&self.id) {
            errors.errors.push(e);
        }
        check_program(self, &mut errors);
        check_env(&self.env, &mut errors);
        if self.instances > MAX_INSTANCES {
            errors.push(
                "instances",
                format!("must be at most {MAX_INSTANCES}; got {}", self.instances),
            );
        }
        if self.job_type == JobType::Batch && self.instances > MAX_BATCH_INSTANCES {
            errors.push(
                "instances",
                format!(
                    "must be at most {MAX_BATCH_INSTANCES} for a batch job (its finished tasks \
                     are counted among the {MAX_BATCH_INSTANCES} ended tasks the masters keep \
                     per job); got {}",
                    self.instances
                ),
            );
        }
        check_resources(&self.resources, &mut errors);
        check_ports(&self.ports, &mut errors);
        for (i, constraint) in self.constraints.iter().enumerate() {
            constraint.check(&format!("constraints[{i}]"), &mut errors);
        }
        for (i, check) in self.health_checks.iter().enumerate() {
            check_health(
                check,
                &format!("health_checks[{i}]"),
                &self.ports,
                &mut errors,
            );
        }
        if let Some(container) = &self.container {
            check_docker(&container.docker, &self.ports, &mut errors);
        }
        check_labels(&self.labels, &mut errors);
        check_backoff(&self.backoff, &mut errors);
        check_upgrade(&self.upgrade_strategy, &mut errors);
        if self.kill_grace_period_seconds > MAX_KILL_GRACE_PERIOD_SECONDS {
            errors.push(
                "kill_grace_period_seconds",
                format!(
                    "must be at most {MAX_KILL_GRACE_PERIOD_SECONDS}; got {}",
                    self.kill_grace_period_seconds
                ),
            );
        }
        if self.shutdown_delay_seconds > MAX_SHUTDOWN_DELAY_SECONDS {
            errors.push(
                "shutdown_delay_seconds",
                format!(
                    "must be at most {MAX_SHUTDOWN_DELAY_SECONDS}; got {}",
                    self.shutdown_delay_seconds
                ),
            );
        }
        check_flapping(&self.flapping, &mut errors);
        if let Some(u) = &self.unreachable_strategy {
            crate::unreachable::check_unreachable(u, &mut errors);
        }
        crate::artifact::check_artifacts(&self.artifacts, &mut errors);
        if self.container.is_some() {
            // The agent lays releases out for native tasks only so far.
            for (field, used) in [
                ("artifacts", !self.artifacts.is_empty()),
                ("templates", !self.templates.is_empty()),
                ("persistent_volume", self.persistent_volume),
            ] {
                if used {
                    errors.push(
                        field,
                        "not supported for container jobs yet: native tasks only",
                    );
                }
            }
        }
        crate::template::check_templates(&self.templates, &mut errors);
        if self.maintenance && !self.pinned_to_one_host() {
            errors.push(
                "maintenance",
                "needs a [\"hostname\", \"CLUSTER\", HOST] constraint: a maintenance task \
                 may enter an out-of-service host only when pinned to it",
            );
        }
        let errors = errors.into_vec();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(SpecError { errors })
        }
    }
}

impl JobSpec {
    /// True when a constraint pins every task to one host by name.
    fn pinned_to_one_host(&self) -> bool {
        self.constraints.iter().any(|c| {
            c.attribute == "hostname"
                && c.operator == crate::constraint::ConstraintOperator::Cluster
                && c.value.as_deref().is_some_and(|v| !v.is_empty())
        })
    }
}

/// Checks a command line given to `/bin/sh -c`.
pub(crate) fn check_command(field: &str, cmd: &str, errors: &mut Collector) {
    if cmd.trim().is_empty() {
        errors.push(field, "must not be empty");
    } else if cmd.len() > MAX_COMMAND_LEN {
        errors.push(field, format!("must be at most {MAX_COMMAND_LEN} bytes"));
    } else if cmd.contains('\0') {
        errors.push(field, "must not contain NUL characters");
    }
}

fn check_program(spec: &JobSpec, errors: &mut Collector) {
    let has_image = spec.container.is_some();
    match (&spec.cmd, &spec.args) {
        (Some(_), Some(_)) => errors.push(
            "args",
            "cmd and args are exclusive: use cmd for a shell command line or args to exec directly",
        ),
        (None, None) if !has_image => errors.push(
            "cmd",
            "nothing to run: set cmd, args or container.docker.image",
        ),
        _ => {}
    }
    if let Some(cmd) = &spec.cmd {
        check_command("cmd", cmd, errors);
    }
    if let Some(args) = &spec.args {
        if args.is_empty() {
            errors.push(
                "args",
                "must not be empty; the first element is the program",
            );
        }
        for (i, arg) in args.iter().enumerate() {
            let field = format!("args[{i}]");
            if i == 0 && arg.trim().is_empty() {
                errors.push(field, "the program must not be empty");
            } else if arg.len() > MAX_COMMAND_LEN {
                errors.push(field, format!("must be at most {MAX_COMMAND_LEN} bytes"));
            } else if arg.contains('\0') {
                errors.push(field, "must not contain NUL characters");
            }
        }
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`
fn is_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn check_env(env: &BTreeMap<String, String>, errors: &mut Collector) {
    for (key, value) in env {
        let field = format!("env.{key}");
        if !is_env_name(key) {
            errors.push(
                field,
                "not a valid environment variable name: use [A-Za-z_][A-Za-z0-9_]*",
            );
        } else if key.starts_with(RESERVED_ENV_PREFIX) {
            errors.push(
                field,
                format!("names starting with {RESERVED_ENV_PREFIX} are reserved for Ocean"),
            );
        } else if value.contains('\0') {
            errors.push(field, "value must not contain NUL characters");
        } else if value.len() > MAX_VALUE_LEN {
            errors.push(
                field,
                format!("value must be at most {MAX_VALUE_LEN} bytes"),
            );
        }
    }
}

/// True if `x` is a finite number in `lo..=hi`.
fn within(x: f64, lo: f64, hi: f64) -> bool {
    x.is_finite() && x >= lo && x <= hi
}

fn check_resources(r: &Resources, errors: &mut Collector) {
    if !(within(r.cpus, 0.0, MAX_CPUS) && r.cpus > 0.0) {
        errors.push(
            "resources.cpus",
            format!(
                "must be greater than 0 and at most {MAX_CPUS}; got {}",
                r.cpus
            ),
        );
    }
    if r.mem < MIN_MEM || r.mem > MAX_MEM {
        errors.push(
            "resources.mem",
            format!("must be {MIN_MEM}..={MAX_MEM} MiB; got {}", r.mem),
        );
    }
    if r.disk > MAX_DISK {
        errors.push(
            "resources.disk",
            format!("must be at most {MAX_DISK} MiB; got {}", r.disk),
        );
    }
    if let Some(p) = r.pids {
        if !(MIN_PIDS..=MAX_PIDS).contains(&p) {
            errors.push(
                "resources.pids",
                format!("must be {MIN_PIDS}..={MAX_PIDS}; got {p}"),
            );
        }
    }
}

/// `[a-z][a-z0-9-]{0,14}`, not ending in `-`.
fn is_port_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    matches!(bytes.first(), Some(b) if b.is_ascii_lowercase())
        && bytes.len() <= 15
        && !name.ends_with('-')
        && bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn check_ports(ports: &[PortSpec], errors: &mut Collector) {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut fixed: HashMap<(u16, PortProtocol), usize> = HashMap::new();
    for (i, port) in ports.iter().enumerate() {
        if !is_port_name(&port.name) {
            errors.push(
                format!("ports[{i}].name"),
                format!(
                    "must be 1-15 of a-z, 0-9 and '-', starting with a letter and not ending in '-'; got '{}'",
                    port.name
                ),
            );
        } else if let Some(first) = names.insert(&port.name, i) {
            errors.push(
                format!("ports[{i}].name"),
                format!("duplicate port name '{}' (also ports[{first}])", port.name),
            );
        }
        if port.port != 0 {
            if let Some(first) = fixed.insert((port.port, port.protocol), i) {
                errors.push(
                    format!("ports[{i}].port"),
                    format!(
                        "fixed port {}/{} is already used by ports[{first}]",
                        port.port,
                        port.protocol.as_str()
                    ),
                );
            }
        }
    }
}

/// Checks that `name` names one of the job's ports; returns that port.
pub(crate) fn find_port<'a>(
    field: &str,
    name: &str,
    ports: &'a [PortSpec],
    errors: &mut Collector,
) -> Option<&'a PortSpec> {
    let found = ports.iter().find(|p| p.name == name);
    if found.is_none() {
        let known: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
        let known = if known.is_empty() {
            "the job has no ports".to_owned()
        } else {
            format!("job ports: {}", known.join(", "))
        };
        errors.push(field, format!("no port named '{name}' in ports; {known}"));
    }
    found
}

/// 1..=63 of `[A-Za-z0-9._/-]`.
fn is_label_key(key: &str) -> bool {
    (1..=63).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b'-'))
}

fn check_labels(labels: &BTreeMap<String, String>, errors: &mut Collector) {
    for (key, value) in labels {
        let field = format!("labels.{key}");
        if !is_label_key(key) {
            errors.push(
                field,
                "label keys must be 1-63 of A-Z, a-z, 0-9, '.', '_', '/', '-'",
            );
        } else if value.len() > MAX_VALUE_LEN {
            errors.push(
                field,
                format!("value must be at most {MAX_VALUE_LEN} bytes"),
            );
        }
    }
}

fn check_backoff(b: &Backoff, errors: &mut Collector) {
    if !(within(b.backoff_seconds, 0.0, 86_400.0) && b.backoff_seconds > 0.0) {
        errors.push(
            "backoff.backoff_seconds",
            format!(
                "must be greater than 0 and at most 86400; got {}",
                b.backoff_seconds
            ),
        );
    }
    if !within(b.backoff_factor, 1.0, 100.0) {
        errors.push(
            "backoff.backoff_factor",
            format!("must be 1.0..=100.0; got {}", b.backoff_factor),
        );
    }
    if !within(b.max_launch_delay_seconds, 0.0, 86_400.0)
        || b.max_launch_delay_seconds < b.backoff_seconds
    {
        errors.push(
            "backoff.max_launch_delay_seconds",
            format!(
                "must be at least backoff_seconds ({}) and at most 86400; got {}",
                b.backoff_seconds, b.max_launch_delay_seconds
            ),
        );
    }
    if b.reset_after_seconds == 0 || b.reset_after_seconds > 86_400 {
        errors.push(
            "backoff.reset_after_seconds",
            format!("must be 1..=86400; got {}", b.reset_after_seconds),
        );
    }
}

fn check_upgrade(u: &UpgradeStrategy, errors: &mut Collector) {
    for (name, value) in [
        ("minimum_health_capacity", u.minimum_health_capacity),
        ("maximum_over_capacity", u.maximum_over_capacity),
    ] {
        if !within(value, 0.0, 1.0) {
            errors.push(
                format!("upgrade_strategy.{name}"),
                format!("must be a fraction 0.0..=1.0; got {value}"),
            );
        }
    }
    if u.max_surge.is_some_and(|a| a.of(100, true) == 0)
        && u.max_unavailable.is_some_and(|a| a.of(100, false) == 0)
    {
        errors.push(
            "upgrade_strategy.max_surge",
            "max_surge and max_unavailable are both 0: no task could ever be replaced".to_string(),
        );
    }
    for (name, value, max) in [
        ("step", u.step, 100_000),
        ("sleep_seconds", u.sleep_seconds, 86_400),
        ("canary", u.canary, 1_000),
        ("min_healthy_seconds", u.min_healthy_seconds, 86_400),
    ] {
        if value > max {
            errors.push(
                format!("upgrade_strategy.{name}"),
                format!("must be 0..={max}; got {value}"),
            );
        }
    }
    for (name, value) in [
        ("healthy_deadline_seconds", u.healthy_deadline_seconds),
        ("progress_deadline_seconds", u.progress_deadline_seconds),
    ] {
        if let Some(v) = value.filter(|v| *v == 0 || *v > 7 * 86_400) {
            errors.push(
                format!("upgrade_strategy.{name}"),
                format!("must be 1..=604800 (a week); got {v}"),
            );
        }
    }
    if u.healthy_deadline() <= u.min_healthy_seconds {
        errors.push(
            "upgrade_strategy.healthy_deadline_seconds",
            format!(
                "must be more than min_healthy_seconds ({}); got {}",
                u.min_healthy_seconds,
                u.healthy_deadline()
            ),
        );
    }
    if u.auto_promote && u.canary == 0 {
        errors.push(
            "upgrade_strategy.auto_promote",
            "promotes canaries, but canary is 0".to_string(),
        );
    }
}

fn check_flapping(f: &Flapping, errors: &mut Collector) {
    if f.max_failures == 0 || f.max_failures > 1_000 {
        errors.push(
            "flapping.max_failures",
            format!("must be 1..=1000; got {}", f.max_failures),
        );
    }
    if f.window_seconds == 0 || f.window_seconds > 7 * 86_400 {
        errors.push(
            "flapping.window_seconds",
            format!("must be 1..=604800 (a week); got {}", f.window_seconds),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_env_name("MY_VAR1"));
        assert!(is_env_name("_x"));
        assert!(!is_env_name("1X"));
        assert!(!is_env_name("MY-VAR"));
        assert!(!is_env_name(""));
        assert!(is_port_name("http"));
        assert!(is_port_name("a-b2"));
        assert!(!is_port_name("2http"));
        assert!(!is_port_name("http-"));
        assert!(!is_port_name("Http"));
        assert!(!is_port_name(&"a".repeat(16)));
        assert!(is_label_key("team.example.com/owner"));
        assert!(!is_label_key("has space"));
        assert!(!is_label_key(&"k".repeat(64)));
    }
}
