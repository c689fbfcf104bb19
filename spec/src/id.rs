//! The service-tree id: a job's identity and its place in the company's tree.
//!
//! ```text
//! cop.<c>_owt.<o>_pdl.<p>[_servicegroup.<g>]_service.<s>[_jobgroup.<jg>]_job.<j>_cluster.<cl>
//! ```
//!
//! Tags come in exactly this order; `servicegroup` and `jobgroup` are
//! optional. Every value is an RFC 1123 DNS label (lowercase letters, digits
//! and inner `-`, 1 to 63 characters) because DNS names are derived from
//! them. The canonical string form is what [`ServiceTreeId`]'s `Display`
//! prints, and parsing accepts only that form, so `parse(s).to_string() == s`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::FieldError;

/// The field name used in errors about the id.
const FIELD: &str = "id";

/// The tags of a service-tree id, in their required order.
pub const TAGS: [&str; 8] = [
    "cop",
    "owt",
    "pdl",
    "servicegroup",
    "service",
    "jobgroup",
    "job",
    "cluster",
];

/// Tags that may be left out.
const OPTIONAL_TAGS: [&str; 2] = ["servicegroup", "jobgroup"];

/// The longest allowed id string, a guard against absurd input.
const MAX_LEN: usize = 1024;

/// A parsed service-tree id such as
/// `cop.xiaomi_owt.inf_pdl.ocean_servicegroup.ocean_service.mesos-dns_job.mesos-dns_cluster.c3`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceTreeId {
    /// Company (`cop`).
    pub cop: String,
    /// Department (`owt`).
    pub owt: String,
    /// Product line (`pdl`).
    pub pdl: String,
    /// Optional group of services (`servicegroup`).
    pub servicegroup: Option<String>,
    /// Service (`service`).
    pub service: String,
    /// Optional group of jobs (`jobgroup`).
    pub jobgroup: Option<String>,
    /// Job (`job`).
    pub job: String,
    /// Cluster the job runs in (`cluster`).
    pub cluster: String,
}

impl ServiceTreeId {
    /// Parses the canonical string form; the error's field is `id` and its
    /// reason names the tag that is wrong.
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        parse_id(s).map_err(|reason| FieldError::new(FIELD, reason))
    }

    /// The tags that are present, in canonical order, as `(tag, value)`.
    pub fn tags(&self) -> Vec<(&'static str, &str)> {
        let mut tags = vec![
            ("cop", self.cop.as_str()),
            ("owt", self.owt.as_str()),
            ("pdl", self.pdl.as_str()),
        ];
        if let Some(group) = &self.servicegroup {
            tags.push(("servicegroup", group.as_str()));
        }
        tags.push(("service", self.service.as_str()));
        if let Some(group) = &self.jobgroup {
            tags.push(("jobgroup", group.as_str()));
        }
        tags.push(("job", self.job.as_str()));
        tags.push(("cluster", self.cluster.as_str()));
        tags
    }

    /// Best-effort split of a string that may not be a valid id: every tag
    /// found is kept, missing ones are empty. Never fails; used only where an
    /// id is needed for an unvalidated spec.
    pub(crate) fn lenient(s: &str) -> Self {
        let mut id = ServiceTreeId {
            cop: String::new(),
            owt: String::new(),
            pdl: String::new(),
            servicegroup: None,
            service: String::new(),
            jobgroup: None,
            job: String::new(),
            cluster: String::new(),
        };
        for (tag, value) in segments(s).into_iter().filter_map(|s| s.tagged) {
            id.set(tag, value.to_owned());
        }
        id
    }

    fn set(&mut self, tag: &str, value: String) {
        match tag {
            "cop" => self.cop = value,
            "owt" => self.owt = value,
            "pdl" => self.pdl = value,
            "servicegroup" => self.servicegroup = Some(value),
            "service" => self.service = value,
            "jobgroup" => self.jobgroup = Some(value),
            "job" => self.job = value,
            "cluster" => self.cluster = value,
            _ => {}
        }
    }
}

impl fmt::Display for ServiceTreeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (tag, value)) in self.tags().into_iter().enumerate() {
            if i > 0 {
                f.write_str("_")?;
            }
            write!(f, "{tag}.{value}")?;
        }
        Ok(())
    }
}

impl FromStr for ServiceTreeId {
    type Err = FieldError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ServiceTreeId::parse(s)
    }
}

impl Serialize for ServiceTreeId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ServiceTreeId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        ServiceTreeId::parse(&s).map_err(|e| serde::de::Error::custom(e.reason))
    }
}

/// True if `s` is an RFC 1123 DNS label: `[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?`.
pub fn is_dns_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    let edge_ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    match (bytes.first(), bytes.last()) {
        (Some(&first), Some(&last)) => {
            bytes.len() <= 63
                && edge_ok(first)
                && edge_ok(last)
                && bytes.iter().all(|&b| edge_ok(b) || b == b'-')
        }
        _ => false,
    }
}

/// One `_`-separated piece of an id, with the pieces that do not start with
/// a known tag folded into the previous value (so `job.my_job` reads as tag
/// `job` with value `my_job`, and is then rejected for its `_`).
struct Segment<'a> {
    /// `(tag, value)` when the piece starts with a known `tag.`.
    tagged: Option<(&'static str, &'a str)>,
    /// The raw text of the piece.
    raw: &'a str,
}

fn known_tag(name: &str) -> Option<&'static str> {
    TAGS.iter().copied().find(|t| *t == name)
}

fn segments(s: &str) -> Vec<Segment<'_>> {
    // (start, end, tag) as byte offsets into `s`.
    let mut spans: Vec<(usize, usize, Option<&'static str>)> = Vec::new();
    let mut start = 0;
    for piece in s.split('_') {
        let end = start + piece.len();
        let tag = piece.split_once('.').and_then(|(t, _)| known_tag(t));
        match spans.last_mut() {
            // Part of the previous value, which contained a '_'.
            Some(prev) if tag.is_none() && !looks_like_unknown_tag(piece) => prev.1 = end,
            _ => spans.push((start, end, tag)),
        }
        start = end + 1;
    }
    spans
        .into_iter()
        .map(|(start, end, tag)| Segment {
            tagged: tag.map(|t| (t, s.get(start + t.len() + 1..end).unwrap_or(""))),
            raw: s.get(start..end).unwrap_or(""),
        })
        .collect()
}

/// A piece like `foo.bar` whose head is a plausible (but unknown) tag name.
fn looks_like_unknown_tag(piece: &str) -> bool {
    match piece.split_once('.') {
        Some((head, _)) => !head.is_empty() && head.bytes().all(|b| b.is_ascii_lowercase()),
        None => false,
    }
}

fn parse_id(s: &str) -> Result<ServiceTreeId, String> {
    if s.is_empty() {
        return Err(format!(
            "must not be empty; expected {}",
            "cop.<c>_owt.<o>_pdl.<p>[_servicegroup.<g>]_service.<s>[_jobgroup.<jg>]_job.<j>_cluster.<cl>"
        ));
    }
    if s.len() > MAX_LEN {
        return Err(format!(
            "is {} bytes long; at most {MAX_LEN} allowed",
            s.len()
        ));
    }
    let mut id = ServiceTreeId::lenient("");
    let mut seen: Vec<&'static str> = Vec::new();
    let mut values: Vec<(&'static str, &str)> = Vec::new();
    for segment in segments(s) {
        let Some((tag, value)) = segment.tagged else {
            return Err(match segment.raw.split_once('.') {
                Some((head, _)) => format!(
                    "unknown tag '{}'; expected one of {}",
                    head,
                    TAGS.join(", ")
                ),
                None => format!(
                    "'{}' is not of the form <tag>.<value> (tags are separated by '_')",
                    segment.raw
                ),
            });
        };
        if seen.contains(&tag) {
            return Err(format!("tag '{tag}' appears more than once"));
        }
        let rank = |t: &str| TAGS.iter().position(|x| *x == t).unwrap_or(0);
        if let Some(&last) = seen.last() {
            if rank(tag) < rank(last) {
                return Err(format!(
                    "tag '{tag}' is out of order: it must come before '{last}' (order: {})",
                    TAGS.join(", ")
                ));
            }
        }
        seen.push(tag);
        values.push((tag, value));
    }
    if let Some(missing) = TAGS
        .iter()
        .find(|t| !OPTIONAL_TAGS.contains(t) && !seen.contains(t))
    {
        return Err(format!("tag '{missing}' missing"));
    }
    for (tag, value) in values {
        if !is_dns_label(value) {
            return Err(format!(
                "value of '{tag}' must be a lowercase DNS label (1-63 of a-z, 0-9 and '-', \
                 starting and ending with a letter or digit); got '{value}'"
            ));
        }
        id.set(tag, value.to_owned());
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str =
        "cop.xiaomi_owt.inf_pdl.ocean_servicegroup.ocean_service.mesos-dns_job.mesos-dns_cluster.c3";

    fn reason(s: &str) -> String {
        match ServiceTreeId::parse(s) {
            Ok(id) => panic!("{s} parsed as {id:?}"),
            Err(e) => {
                assert_eq!(e.field, "id");
                e.reason
            }
        }
    }

    #[test]
    fn parses_full_id() {
        let id = ServiceTreeId::parse(FULL).expect("valid");
        assert_eq!(id.cop, "xiaomi");
        assert_eq!(id.owt, "inf");
        assert_eq!(id.pdl, "ocean");
        assert_eq!(id.servicegroup.as_deref(), Some("ocean"));
        assert_eq!(id.service, "mesos-dns");
        assert_eq!(id.jobgroup, None);
        assert_eq!(id.job, "mesos-dns");
        assert_eq!(id.cluster, "c3");
        assert_eq!(id.to_string(), FULL);
    }

    #[test]
    fn optional_groups() {
        let s = "cop.a_owt.b_pdl.c_service.d_job.e_cluster.f";
        let id: ServiceTreeId = s.parse().expect("valid");
        assert_eq!(id.servicegroup, None);
        assert_eq!(id.to_string(), s);
        let s = "cop.a_owt.b_pdl.c_service.d_jobgroup.g_job.e_cluster.f";
        let id: ServiceTreeId = s.parse().expect("valid");
        assert_eq!(id.jobgroup.as_deref(), Some("g"));
        assert_eq!(id.to_string(), s);
    }

    #[test]
    fn missing_tag_is_named() {
        assert_eq!(
            reason("cop.a_owt.b_service.d_job.e_cluster.f"),
            "tag 'pdl' missing"
        );
        assert_eq!(
            reason("cop.a_owt.b_pdl.c_service.d_job.e"),
            "tag 'cluster' missing"
        );
    }

    #[test]
    fn bad_values_are_named() {
        let r = reason("cop.a_owt.b_pdl.c_service.d_job.My-Job_cluster.f");
        assert!(
            r.starts_with("value of 'job' must be a lowercase DNS label"),
            "{r}"
        );
        let r = reason("cop.a_owt.b_pdl.c_service.d_job.my_job_cluster.f");
        assert!(
            r.contains("value of 'job'") && r.contains("'my_job'"),
            "{r}"
        );
        let r = reason("cop.a_owt.b_pdl.c_service.d_job.e_cluster.-f");
        assert!(r.contains("value of 'cluster'"), "{r}");
        let r = reason("cop._owt.b_pdl.c_service.d_job.e_cluster.f");
        assert!(r.contains("value of 'cop'"), "{r}");
        let long = "a".repeat(64);
        let r = reason(&format!("cop.a_owt.b_pdl.c_service.{long}_job.e_cluster.f"));
        assert!(r.contains("value of 'service'"), "{r}");
    }

    #[test]
    fn order_duplicates_and_unknown_tags() {
        let r = reason("owt.b_cop.a_pdl.c_service.d_job.e_cluster.f");
        assert!(r.starts_with("tag 'cop' is out of order"), "{r}");
        let r = reason("cop.a_owt.b_pdl.c_service.d_job.e_job.x_cluster.f");
        assert_eq!(r, "tag 'job' appears more than once");
        let r = reason("cop.a_owt.b_pdl.c_idc.x_service.d_job.e_cluster.f");
        assert!(r.starts_with("unknown tag 'idc'"), "{r}");
        let r = reason("hello");
        assert!(r.contains("not of the form"), "{r}");
        assert!(reason("").starts_with("must not be empty"));
    }

    #[test]
    fn dns_labels() {
        for ok in ["a", "0", "a-b", "abc123", &"x".repeat(63)] {
            assert!(is_dns_label(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", "é", &"x".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad}");
        }
    }

    #[test]
    fn lenient_never_fails() {
        let id = ServiceTreeId::lenient("garbage_job.x");
        assert_eq!(id.job, "x");
        assert_eq!(id.cop, "");
    }
}
