//! Containers: running a task from a Docker image instead of as a plain
//! process on the agent. Holds the types and their checks (image reference
//! syntax, port mappings against the job's ports, volume paths).

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::ports::PortSpec;
use crate::validate::{find_port, Collector};

/// How the task is containerised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Container {
    /// Run the task in Docker.
    pub docker: DockerContainer,
}

/// A Docker container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerContainer {
    /// Image reference, e.g. `registry.example.com:5000/team/web:1.4.2`.
    pub image: String,
    /// Network mode.
    #[serde(default)]
    pub network: DockerNetwork,
    /// Container ports published on job ports (bridge network only).
    #[serde(default)]
    pub port_mappings: Vec<PortMapping>,
    /// Host directories mounted into the container.
    #[serde(default)]
    pub volumes: Vec<Volume>,
    /// Give the container extended privileges (use sparingly).
    #[serde(default = "default_false")]
    pub privileged: bool,
    /// Pull the image before every launch even if it is present.
    #[serde(default = "default_false")]
    pub force_pull: bool,
    /// Replaces the image's `ENTRYPOINT` (`[]` clears it); absent keeps
    /// the image's. The job's `cmd`/`args` replace the image's `CMD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
}

/// Default for the boolean switches: off.
pub fn default_false() -> bool {
    false
}

/// Docker network mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DockerNetwork {
    /// Own network namespace; ports published through `port_mappings`.
    #[default]
    Bridge,
    /// Share the agent's network namespace.
    Host,
}

/// Publishes a container port on one of the job's ports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortMapping {
    /// Port the program listens on inside the container; 1..=65535.
    pub container_port: u16,
    /// Name of the job port (in `ports`) it is published on.
    pub port_name: String,
}

/// A host directory mounted into the container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    /// Absolute path on the agent.
    pub host_path: String,
    /// Absolute path inside the container.
    pub container_path: String,
    /// Mount read-only.
    #[serde(default = "default_false")]
    pub read_only: bool,
}

/// `[registry[:port]/]path[:tag][@algorithm:hex]`, Docker's reference
/// grammar in one expression.
static IMAGE_REFERENCE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    let host_part = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?";
    let domain = format!(r"{host_part}(?:\.{host_part})*(?::[0-9]+)?");
    let component = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*";
    let tag = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}";
    let digest = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";
    Regex::new(&format!(
        r"^(?:{domain}/)?{component}(?:/{component})*(?::{tag})?(?:@{digest})?$"
    ))
    .ok()
});

/// True if `image` looks like a Docker image reference.
pub fn is_image_reference(image: &str) -> bool {
    image.len() <= 512
        && IMAGE_REFERENCE
            .as_ref()
            .is_some_and(|re| re.is_match(image))
}

/// An absolute path without `..` components or NUL bytes.
fn is_clean_absolute_path(path: &str) -> bool {
    path.starts_with('/')
        && path.len() <= 4096
        && !path.contains('\0')
        && !path.split('/').any(|part| part == "..")
}

/// Checks the Docker section against the job's `ports`.
pub(crate) fn check_docker(docker: &DockerContainer, ports: &[PortSpec], errors: &mut Collector) {
    if docker.image.is_empty() {
        errors.push("container.docker.image", "must not be empty");
    } else if !is_image_reference(&docker.image) {
        errors.push(
            "container.docker.image",
            format!(
                "'{}' is not a valid image reference; expected [registry[:port]/]name[:tag][@digest] with a lowercase name",
                docker.image
            ),
        );
    }
    if docker.network == DockerNetwork::Host && !docker.port_mappings.is_empty() {
        errors.push(
            "container.docker.port_mappings",
            "port mappings need the bridge network; with host networking the program listens on the job ports directly",
        );
    }
    let mut mapped: HashMap<&str, usize> = HashMap::new();
    for (i, mapping) in docker.port_mappings.iter().enumerate() {
        let path = format!("container.docker.port_mappings[{i}]");
        if mapping.container_port == 0 {
            errors.push(format!("{path}.container_port"), "must be 1..=65535");
        }
        let field = format!("{path}.port_name");
        if find_port(&field, &mapping.port_name, ports, errors).is_some() {
            if let Some(first) = mapped.insert(&mapping.port_name, i) {
                errors.push(
                    field,
                    format!(
                        "port '{}' is already mapped by port_mappings[{first}]",
                        mapping.port_name
                    ),
                );
            }
        }
    }
    for (i, part) in docker.entrypoint.iter().flatten().enumerate() {
        let field = format!("container.docker.entrypoint[{i}]");
        if part.len() > crate::validate::MAX_COMMAND_LEN {
            errors.push(field, "must be at most 64 KiB");
        } else if part.contains('\0') {
            errors.push(field, "must not contain NUL bytes");
        } else if i == 0 && part.trim().is_empty() {
            errors.push(field, "the program must not be blank");
        }
    }
    let mut targets: HashMap<&str, usize> = HashMap::new();
    for (i, volume) in docker.volumes.iter().enumerate() {
        let path = format!("container.docker.volumes[{i}]");
        if !is_clean_absolute_path(&volume.host_path) {
            errors.push(
                format!("{path}.host_path"),
                "must be an absolute path without '..' components",
            );
        }
        if !is_clean_absolute_path(&volume.container_path) || volume.container_path == "/" {
            errors.push(
                format!("{path}.container_path"),
                "must be an absolute path other than '/' without '..' components",
            );
        } else if let Some(first) = targets.insert(volume.container_path.trim_end_matches('/'), i) {
            errors.push(
                format!("{path}.container_path"),
                format!(
                    "'{}' is already mounted by volumes[{first}]",
                    volume.container_path
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references() {
        for ok in [
            "nginx",
            "nginx:1.25",
            "library/nginx:latest",
            "registry.example.com:5000/team/web:1.4.2",
            "localhost:5000/a_b/c--d",
            "busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(is_image_reference(ok), "{ok}");
        }
        for bad in [
            "",
            "Nginx",
            "nginx:",
            "nginx:tag with space",
            "-nginx",
            "nginx//x",
            "nginx@sha256:short",
            "http://x/y",
        ] {
            assert!(!is_image_reference(bad), "{bad}");
        }
    }

    #[test]
    fn paths() {
        assert!(is_clean_absolute_path("/var/log"));
        assert!(!is_clean_absolute_path("var/log"));
        assert!(!is_clean_absolute_path("/var/../etc"));
    }
}
