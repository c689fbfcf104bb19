//! `artifacts`: files an agent downloads, checks and lays out as the job's
//! release before a task starts (`releases/<version>/` with a `current`
//! link in the task's sandbox). The agent keeps the last few releases of a
//! job, so a rollback on the same host downloads nothing.

use serde::{Deserialize, Serialize};

use crate::validate::Collector;

/// Most artifacts a job may list.
pub const MAX_ARTIFACTS: usize = 32;
/// Longest artifact URL, bytes.
pub const MAX_URL_LEN: usize = 4096;
/// URL schemes an agent fetches.
pub const URL_SCHEMES: [&str; 3] = ["http://", "https://", "file://"];

/// One file of a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    /// Where to fetch it: `http://`, `https://` or `file:///absolute/path`.
    pub url: String,
    /// The SHA-256 of the fetched bytes, 64 hex digits; a mismatch fails
    /// the task.
    pub sha256: String,
    /// Unpack it (a `.tar` or gzip-compressed `.tar.gz`, told apart by its
    /// bytes) into `dest` instead of keeping the file.
    #[serde(default)]
    pub extract: bool,
    /// Path inside the release directory, relative: the file's name for a
    /// plain file, the directory to unpack into for an archive. Absent: the
    /// last segment of the URL's path, or the release directory itself
    /// when extracting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dest: Option<String>,
}

impl Artifact {
    /// Where the artifact goes inside the release directory (`""` = the
    /// release directory itself), or `None` when a plain file has no
    /// `dest` and its URL ends without a file name.
    pub fn dest_path(&self) -> Option<String> {
        if let Some(dest) = &self.dest {
            return Some(dest.trim_end_matches('/').to_string());
        }
        if self.extract {
            return Some(String::new());
        }
        url_file_name(&self.url).map(str::to_string)
    }
}

/// The last segment of a URL's path, without query or fragment; `None`
/// when it is empty.
pub fn url_file_name(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = rest.split(['?', '#']).next().unwrap_or_default();
    let path = path.split_once('/').map_or("", |(_, path)| path);
    path.rsplit('/')
        .next()
        .filter(|s| !s.is_empty() && *s != "." && *s != "..")
}

/// True when `path` stays inside the directory it is relative to: not
/// empty, not absolute, no `..` component, no NUL.
pub fn is_relative_inside(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\0')
        && path.split('/').all(|part| part != "..")
}

/// True for exactly 64 hex digits (either case).
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

pub(crate) fn check_artifacts(artifacts: &[Artifact], errors: &mut Collector) {
    if artifacts.len() > MAX_ARTIFACTS {
        errors.push(
            "artifacts",
            format!("at most {MAX_ARTIFACTS} artifacts; got {}", artifacts.len()),
        );
    }
    for (i, a) in artifacts.iter().enumerate() {
        let field = |name: &str| format!("artifacts[{i}].{name}");
        if !URL_SCHEMES.iter().any(|s| a.url.starts_with(s)) {
            errors.push(
                field("url"),
                format!("must start with one of {}", URL_SCHEMES.join(", ")),
            );
        } else if a.url.len() > MAX_URL_LEN {
            errors.push(field("url"), format!("must be at most {MAX_URL_LEN} bytes"));
        } else if a.url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            errors.push(
                field("url"),
                "must not contain spaces or control characters",
            );
        } else if let Some(path) = a.url.strip_prefix("file://") {
            if !path.starts_with('/') {
                errors.push(
                    field("url"),
                    "a file URL needs an absolute path: file:///path/to/file",
                );
            }
        }
        if !is_sha256_hex(&a.sha256) {
            errors.push(field("sha256"), "must be 64 hex digits");
        }
        match (&a.dest, a.dest_path()) {
            (Some(dest), _) if !is_relative_inside(dest.trim_end_matches('/')) => errors.push(
                field("dest"),
                "must be a relative path inside the release, without '..'",
            ),
            (None, None) => errors.push(
                field("dest"),
                "required: the url does not end with a file name",
            ),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact(url: &str) -> Artifact {
        Artifact {
            url: url.into(),
            sha256: "a".repeat(64),
            extract: false,
            dest: None,
        }
    }

    #[test]
    fn dest_defaults_to_the_file_name_or_the_release_itself() {
        assert_eq!(
            artifact("http://h/a/app.tar.gz?x=1").dest_path().as_deref(),
            Some("app.tar.gz")
        );
        assert_eq!(
            artifact("file:///srv/x.bin").dest_path().as_deref(),
            Some("x.bin")
        );
        assert_eq!(artifact("http://h/dir/").dest_path(), None);
        assert_eq!(artifact("http://h").dest_path(), None);
        let mut a = artifact("http://h/dir/");
        a.extract = true;
        assert_eq!(a.dest_path().as_deref(), Some(""));
        a.dest = Some("lib/".into());
        assert_eq!(a.dest_path().as_deref(), Some("lib"));
    }

    #[test]
    fn bad_artifacts_name_the_field() {
        let mut errors = Collector::default();
        let mut bad = artifact("ftp://h/x");
        bad.sha256 = "xyz".into();
        bad.dest = Some("../etc".into());
        check_artifacts(
            &[bad, artifact("file://relative/x"), artifact("http://h/")],
            &mut errors,
        );
        let fields: Vec<String> = errors.into_vec().into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "artifacts[0].url",
                "artifacts[0].sha256",
                "artifacts[0].dest",
                "artifacts[1].url",
                "artifacts[2].dest"
            ]
        );
    }
}
