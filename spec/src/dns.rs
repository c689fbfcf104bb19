//! DNS names derived from the service tree: one pure scheme shared by the
//! masters (which show a job's name in the API) and the DNS server (which
//! serves it), so both always agree.
//!
//! ```text
//! job       <job>.<service>.<pdl>.<cluster>.<domain>            A/AAAA of its serving tasks
//! task      <task>.<job>.<service>.<pdl>.<cluster>.<domain>     A/AAAA of one task
//! port      _<port>._<tcp|udp>.<job name>                       SRV: host port, task name
//! agent     <agent id>.agents.<domain>                          A/AAAA of the agent
//! masters   leader.<domain>, masters.<domain>                   A/AAAA
//! ```
//!
//! Every service-tree value is already an RFC 1123 label (the id's own
//! rules), so a job's name needs no escaping; only its length can fail (at
//! most 253 characters in all). `<task>` is the task id's own suffix (the
//! part after the job id). Two jobs that differ only in `cop`, `owt`,
//! `servicegroup` or `jobgroup` share a name: the job whose id sorts first
//! owns it ([`owner`]), the other gets no job name. See `docs/dns.md`.

use crate::id::ServiceTreeId;
use crate::ports::PortProtocol;

/// The default zone.
pub const DEFAULT_DOMAIN: &str = "ocean";

/// The longest name DNS allows, in presentation form without the final dot.
pub const MAX_NAME_LEN: usize = 253;

/// The longest label.
pub const MAX_LABEL_LEN: usize = 63;

/// Label under which agents are named.
pub const AGENTS_LABEL: &str = "agents";

/// A job's name relative to the zone: `<job>.<service>.<pdl>.<cluster>`.
pub fn job_relative_name(id: &ServiceTreeId) -> String {
    format!("{}.{}.{}.{}", id.job, id.service, id.pdl, id.cluster)
}

/// A job's full name in `domain`, or `None` when the id is not a valid
/// service-tree id or the name would exceed 253 characters.
pub fn job_name(job_id: &str, domain: &str) -> Option<String> {
    let id = ServiceTreeId::parse(job_id).ok()?;
    absolute(&job_relative_name(&id), domain)
}

/// `relative.domain` if it fits in 253 characters.
pub fn absolute(relative: &str, domain: &str) -> Option<String> {
    let name = format!("{relative}.{domain}");
    (name.len() <= MAX_NAME_LEN).then_some(name)
}

/// Which of the jobs claiming one name owns it: the smallest id, so the
/// answer depends on nothing but the set of jobs.
pub fn owner<'a>(claimants: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    claimants.into_iter().min()
}

/// A task's label: its id's suffix after `<job id>.`, lowercased, with
/// characters outside `[a-z0-9-]` replaced by `-`. `None` when the id does
/// not start with its job's id or the label would not be a valid one.
pub fn task_label(task_id: &str, job_id: &str) -> Option<String> {
    let suffix = task_id.strip_prefix(job_id)?.strip_prefix('.')?;
    sanitize_label(suffix)
}

/// An agent's label: its id, sanitized like a task's.
pub fn agent_label(agent_id: &str) -> Option<String> {
    sanitize_label(agent_id)
}

/// `_<port>._<proto>.<job name>`, or `None` when too long.
pub fn srv_name(port_name: &str, protocol: PortProtocol, job_name: &str) -> Option<String> {
    let name = format!("_{port_name}._{}.{job_name}", protocol.as_str());
    (name.len() <= MAX_NAME_LEN).then_some(name)
}

/// Lowercases and replaces characters outside `[a-z0-9-]`; refuses empty
/// labels, labels over 63 characters and labels starting or ending in `-`.
pub fn sanitize_label(s: &str) -> Option<String> {
    let label: String = s
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let ok = !label.is_empty()
        && label.len() <= MAX_LABEL_LEN
        && !label.starts_with('-')
        && !label.ends_with('-');
    ok.then_some(label)
}

/// Checks a zone name such as `ocean` or `svc.example.com`: RFC 1123
/// labels separated by dots, at most 200 characters so job names fit.
pub fn validate_domain(domain: &str) -> Result<(), String> {
    if domain.is_empty() {
        return Err("must not be empty".into());
    }
    if domain.len() > 200 {
        return Err(format!(
            "must be at most 200 characters so that names under it fit; got {}",
            domain.len()
        ));
    }
    for label in domain.split('.') {
        if sanitize_label(label).as_deref() != Some(label) {
            return Err(format!(
                "label '{label}' is not a lowercase RFC 1123 label ([a-z0-9-], 1 to 63 characters, no leading or trailing '-')"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "cop.example_owt.dev_pdl.demo_service.web_job.http_cluster.dev";

    #[test]
    fn job_names_follow_the_tree() {
        assert_eq!(
            job_name(ID, "ocean").as_deref(),
            Some("http.web.demo.dev.ocean")
        );
        let grouped =
            "cop.x_owt.y_pdl.demo_servicegroup.g_service.web_jobgroup.jg_job.http_cluster.dev";
        assert_eq!(
            job_name(grouped, "svc.example.com").as_deref(),
            Some("http.web.demo.dev.svc.example.com")
        );
        assert_eq!(job_name("not an id", "ocean"), None);
    }

    #[test]
    fn long_names_are_refused() {
        let l = "a".repeat(63);
        let id = format!("cop.c_owt.o_pdl.{l}_service.{l}_job.{l}_cluster.{l}");
        assert_eq!(job_name(&id, "ocean"), None);
        let short = format!("cop.c_owt.o_pdl.{l}_service.{l}_job.{l}_cluster.c");
        let name = job_name(&short, "ocean").unwrap();
        assert!(name.len() <= MAX_NAME_LEN);
    }

    #[test]
    fn the_smallest_id_owns_a_shared_name() {
        let a = "cop.a_owt.x_pdl.p_service.s_job.j_cluster.c";
        let b = "cop.b_owt.x_pdl.p_service.s_job.j_cluster.c";
        assert_eq!(job_name(a, "ocean"), job_name(b, "ocean"));
        assert_eq!(owner([b, a]), Some(a));
    }

    #[test]
    fn task_and_agent_labels() {
        let task = format!("{ID}.00000000120000a");
        assert_eq!(task_label(&task, ID).as_deref(), Some("00000000120000a"));
        assert_eq!(task_label("other.1", ID), None);
        assert_eq!(agent_label("agent-00ff").as_deref(), Some("agent-00ff"));
        assert_eq!(agent_label("Host_1").as_deref(), Some("host-1"));
        assert_eq!(agent_label("-x"), None);
        assert_eq!(agent_label(&"a".repeat(64)), None);
    }

    #[test]
    fn srv_names_and_domains() {
        assert_eq!(
            srv_name("http", PortProtocol::Tcp, "http.web.demo.dev.ocean").as_deref(),
            Some("_http._tcp.http.web.demo.dev.ocean")
        );
        assert!(validate_domain("ocean").is_ok());
        assert!(validate_domain("svc.example.com").is_ok());
        assert!(validate_domain("").is_err());
        assert!(validate_domain("Ocean").is_err());
        assert!(validate_domain("a..b").is_err());
        assert!(validate_domain("ocean.").is_err());
    }
}
