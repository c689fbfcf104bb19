//! [`DatabaseSpec`]: what a DBA or developer asks for (`POST /v1/databases`,
//! `ocean db create`), and its `validate()`, every error naming its field.

use serde::{Deserialize, Serialize};

/// Most instances a database may have (one primary, the rest standbys).
pub const MAX_INSTANCES: u32 = 9;
/// The longest database name: a DNS label inside `primary.<name>.<pdl>...`.
pub const MAX_NAME: usize = 40;
/// Most segments of a full name (`/miui/browser/key` has three).
pub const MAX_FULL_NAME_SEGMENTS: usize = 6;

/// A database: `instances` mariadbd tasks of one job, one primary and
/// semi-synchronous standbys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSpec {
    /// The database's id: a lowercase DNS label of at most 40 characters.
    pub name: String,
    /// The cluster tag of its job (`staging`, `production`, ...).
    pub cluster: String,
    /// The owning product line (`pdl`).
    pub product_line: String,
    /// The owning department (`owt`).
    pub department: String,
    /// The name people know it by, e.g. `/miui/browser/key`.
    pub full_name: String,
    /// A template of `GET /v1/database-templates`, e.g. `mysql-general`.
    pub template: String,
    /// Instances, `1..=9`: one primary, the rest standbys.
    pub instances: u32,
    /// The jobs (service-tree ids) allowed to use it: each gets a MySQL
    /// user of its own, granted at the hosts where its tasks run (see
    /// [`crate::grants`]). Changed later with `PUT /v1/databases/{id}/grants`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_jobs: Vec<String>,
}

/// A spec that cannot be run: the field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidDatabase {
    /// The field, as named in the JSON.
    pub field: &'static str,
    /// What is wrong and what is allowed.
    pub reason: String,
}

/// An [`InvalidDatabase`].
pub fn invalid(field: &'static str, reason: impl Into<String>) -> InvalidDatabase {
    InvalidDatabase {
        field,
        reason: reason.into(),
    }
}

/// Whether `s` is a lowercase RFC 1123 label (the service tree's values).
pub fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Whether `s` is a full name: `/` then 1 to 6 segments of `a-z`, `0-9`,
/// `-` and `_`, separated by `/`.
pub fn is_full_name(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('/') else {
        return false;
    };
    let segments: Vec<&str> = rest.split('/').collect();
    segments.len() <= MAX_FULL_NAME_SEGMENTS
        && segments.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 63
                && p.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
        })
}

fn label(field: &'static str, value: &str) -> Result<(), InvalidDatabase> {
    if is_label(value) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("must be a lowercase DNS label (a-z, 0-9, '-', at most 63 characters, not starting or ending with '-'); got '{value}'"),
        ))
    }
}

impl DatabaseSpec {
    /// Checks every field but the template's existence (the API checks it
    /// against the stored templates); the first error names its field.
    pub fn validate(&self) -> Result<(), InvalidDatabase> {
        if !is_label(&self.name) || self.name.len() > MAX_NAME {
            return Err(invalid(
                "name",
                format!(
                    "must be 1 to {MAX_NAME} characters of a-z, 0-9 and '-', not starting or ending with '-'; got '{}'",
                    self.name
                ),
            ));
        }
        label("cluster", &self.cluster)?;
        label("product_line", &self.product_line)?;
        label("department", &self.department)?;
        if !is_full_name(&self.full_name) {
            return Err(invalid(
                "full_name",
                format!(
                    "must be '/' then 1 to {MAX_FULL_NAME_SEGMENTS} segments of a-z, 0-9, '-' and '_' separated by '/', like '/miui/browser/key'; got '{}'",
                    self.full_name
                ),
            ));
        }
        if !is_label(&self.template) {
            return Err(invalid(
                "template",
                format!("must name a database template; got '{}'", self.template),
            ));
        }
        if !(1..=MAX_INSTANCES).contains(&self.instances) {
            return Err(invalid(
                "instances",
                format!("must be 1..={MAX_INSTANCES}; got {}", self.instances),
            ));
        }
        validate_allowed_jobs(&self.allowed_jobs)
    }
}

/// Checks a list of allowed jobs: at most
/// [`crate::grants::MAX_ALLOWED_JOBS`] service-tree job ids, none twice.
pub fn validate_allowed_jobs(jobs: &[String]) -> Result<(), InvalidDatabase> {
    const MAX: usize = crate::grants::MAX_ALLOWED_JOBS;
    if jobs.len() > MAX {
        return Err(invalid(
            "allowed_jobs",
            format!("at most {MAX} jobs; got {}", jobs.len()),
        ));
    }
    for (i, job) in jobs.iter().enumerate() {
        if let Err(e) = ocean_spec::ServiceTreeId::parse(job) {
            return Err(invalid(
                "allowed_jobs",
                format!("[{i}] '{job}' is not a job id: {}", e.reason),
            ));
        }
        if jobs[..i].contains(job) {
            return Err(invalid(
                "allowed_jobs",
                format!("[{i}] '{job}' is listed twice"),
            ));
        }
    }
    Ok(())
}

/// Parses and validates a spec from JSON, naming the field of a bad value
/// or of an unknown field.
pub fn parse(bytes: &[u8]) -> Result<DatabaseSpec, InvalidDatabase> {
    let spec: DatabaseSpec =
        serde_json::from_slice(bytes).map_err(|e| invalid("body", e.to_string()))?;
    spec.validate()?;
    Ok(spec)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn ok() -> DatabaseSpec {
        DatabaseSpec {
            name: "browser-key".into(),
            cluster: "staging".into(),
            product_line: "browser".into(),
            department: "miui".into(),
            full_name: "/miui/browser/key".into(),
            template: "mysql-general".into(),
            instances: 3,
            allowed_jobs: vec![APP_JOB.into()],
        }
    }

    pub(crate) const APP_JOB: &str =
        "cop.miui_owt.miui_pdl.browser_service.api_job.web_cluster.staging";

    #[test]
    fn every_bad_field_is_named() {
        assert_eq!(ok().validate(), Ok(()));
        let cases: Vec<(DatabaseSpec, &str)> = vec![
            (
                DatabaseSpec {
                    name: "Bad_Name".into(),
                    ..ok()
                },
                "name",
            ),
            (
                DatabaseSpec {
                    name: "a".repeat(41),
                    ..ok()
                },
                "name",
            ),
            (
                DatabaseSpec {
                    cluster: "".into(),
                    ..ok()
                },
                "cluster",
            ),
            (
                DatabaseSpec {
                    product_line: "P".into(),
                    ..ok()
                },
                "product_line",
            ),
            (
                DatabaseSpec {
                    department: "-x".into(),
                    ..ok()
                },
                "department",
            ),
            (
                DatabaseSpec {
                    full_name: "miui/browser".into(),
                    ..ok()
                },
                "full_name",
            ),
            (
                DatabaseSpec {
                    full_name: "/miui//key".into(),
                    ..ok()
                },
                "full_name",
            ),
            (
                DatabaseSpec {
                    full_name: "/Miui".into(),
                    ..ok()
                },
                "full_name",
            ),
            (
                DatabaseSpec {
                    template: "".into(),
                    ..ok()
                },
                "template",
            ),
            (
                DatabaseSpec {
                    instances: 0,
                    ..ok()
                },
                "instances",
            ),
            (
                DatabaseSpec {
                    instances: 10,
                    ..ok()
                },
                "instances",
            ),
            (
                DatabaseSpec {
                    allowed_jobs: vec!["pdl.browser".into()],
                    ..ok()
                },
                "allowed_jobs",
            ),
            (
                DatabaseSpec {
                    allowed_jobs: vec![APP_JOB.into(), APP_JOB.into()],
                    ..ok()
                },
                "allowed_jobs",
            ),
            (
                DatabaseSpec {
                    allowed_jobs: vec![APP_JOB.into(); 65],
                    ..ok()
                },
                "allowed_jobs",
            ),
        ];
        for (spec, field) in cases {
            assert_eq!(spec.validate().unwrap_err().field, field, "{spec:?}");
        }
    }

    #[test]
    fn allowed_jobs_are_optional_and_their_errors_say_which_entry() {
        let mut v = serde_json::to_value(ok()).unwrap();
        v.as_object_mut().unwrap().remove("allowed_jobs");
        assert_eq!(
            parse(v.to_string().as_bytes()).unwrap().allowed_jobs,
            Vec::<String>::new()
        );
        v["allowed_jobs"] = serde_json::json!([APP_JOB, "job.x"]);
        let e = parse(v.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.field, "allowed_jobs");
        assert!(e.reason.starts_with("[1] 'job.x' is not a job id"), "{e}");
    }

    #[test]
    fn unknown_and_missing_fields_are_body_errors() {
        let e = parse(br#"{"name":"a"}"#).unwrap_err();
        assert_eq!(e.field, "body");
        assert!(e.reason.contains("missing field"), "{e}");
        let mut v = serde_json::to_value(ok()).unwrap();
        v["replicas"] = 2.into();
        let e = parse(v.to_string().as_bytes()).unwrap_err();
        assert!(e.reason.contains("unknown field `replicas`"), "{e}");
    }
}
