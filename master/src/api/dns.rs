//! A job's DNS name as `ocean dns` serves it, for `GET /v1/jobs/{id}`. The
//! scheme is `ocean_spec::dns`, shared with the DNS server.

use serde_json::{json, Value};

use crate::state::ClusterState;

/// `{"dns_name": ...}` for job `id`: its name in `domain`, or null when it
/// has none (the name would be too long) or another job owns it (two ids
/// that differ only in tags the name leaves out; the smallest id wins, and
/// `dns_name_owner` names it).
pub fn job_dns_fields(st: &ClusterState, id: &str, domain: &str) -> Value {
    let Some(name) = ocean_spec::dns::job_name(id, domain) else {
        return json!({"dns_name": null});
    };
    // Only a job whose id sorts before this one can take its name.
    let rival = st
        .jobs
        .range::<str, _>((std::ops::Bound::Unbounded, std::ops::Bound::Excluded(id)))
        .map(|(other, _)| other.as_str())
        .find(|other| ocean_spec::dns::job_name(other, domain).as_deref() == Some(&name));
    match rival {
        Some(owner) => json!({"dns_name": null, "dns_name_owner": owner}),
        None => json!({"dns_name": name}),
    }
}
