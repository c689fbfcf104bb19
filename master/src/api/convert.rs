//! The masters' records (`ocean_proto::internal`) and the service's typed
//! answers as the public gRPC messages (`ocean_proto::v1`). Written out
//! field by field on purpose: a new internal field reaches clients only
//! when it is added here.

use ocean_proto::internal as int;
use ocean_proto::v1 as api;

use crate::kernel::state::jobs::spec_version;
use crate::service::tasks::AgentLiveness;
use crate::service::types::{JobDetail, JobVersions, LeaseView, WriteResult};

pub fn job(j: &int::Job) -> api::Job {
    api::Job {
        id: j.id.clone(),
        spec_json: j.spec_json.to_vec(),
        created_version: j.created_version,
        updated_version: j.updated_version,
        waiting: j.waiting.clone(),
        backoff: j.backoff.as_ref().map(|b| api::JobBackoff {
            failures: b.failures,
            next_launch_ms: b.next_launch_ms,
            delay_ms: b.delay_ms,
            recent_failures_ms: b.recent_failures_ms.clone(),
            flapping: b.flapping,
            message: b.message.clone(),
        }),
        spec_version: spec_version(j),
    }
}

pub fn task(t: &int::Task) -> api::Task {
    api::Task {
        id: t.id.clone(),
        job_id: t.job_id.clone(),
        agent_id: t.agent_id.clone(),
        host: t.host.clone(),
        state: t.state.clone(),
        ports: t
            .ports
            .iter()
            .map(|p| api::TaskPort {
                name: p.name.clone(),
                port: p.port,
            })
            .collect(),
        config_hash: t.config_hash,
        cpus: t.cpus,
        mem_mib: t.mem_mib,
        disk_mib: t.disk_mib,
        kill_requested: t.kill_requested,
        created_version: t.created_version,
        updated_version: t.updated_version,
        created_ms: t.created_ms,
        started_ms: t.started_ms,
        ended_ms: t.ended_ms,
        exit_code: t.exit_code,
        signal: t.signal,
        reason: t.reason.clone(),
        message: t.message.clone(),
        pid: t.pid,
        address: t.address.clone(),
        healthy: t.healthy,
        health_message: t.health_message.clone(),
        health_failed: t.health_failed,
        unreachable_since_ms: t.unreachable_since_ms,
        draining_since_ms: t.draining_since_ms,
        // The leader's memory, not the record: set by the handlers that answer.
        usage: None,
    }
}

pub fn agent(a: &int::Agent) -> api::Agent {
    api::Agent {
        id: a.id.clone(),
        hostname: a.hostname.clone(),
        attributes: a.attributes.clone(),
        cpus: a.cpus,
        mem_mib: a.mem_mib,
        disk_mib: a.disk_mib,
        port_low: a.port_low,
        port_high: a.port_high,
        address: a.address.clone(),
        registered_version: a.registered_version,
        http_addr: a.http_addr.clone(),
        executors: a
            .executors
            .iter()
            .map(|e| api::AgentExecutor {
                name: e.name.clone(),
                available: e.available,
                reason: e.reason.clone(),
                version: e.version.clone(),
                features: e.features.clone(),
            })
            .collect(),
        status: a.status.clone(),
        status_message: a.status_message.clone(),
        status_version: a.status_version,
    }
}

pub fn agent_info(a: &int::Agent, l: Option<AgentLiveness>) -> api::AgentInfo {
    api::AgentInfo {
        agent: Some(agent(a)),
        status: crate::kernel::state::agent_status(a).to_string(),
        connected: l.map(|l| l.connected),
        last_heartbeat_ms: l.and_then(|l| l.last_heartbeat_ms),
        unreachable: l.map(|l| l.unreachable),
        usage: None,
        host_checks: None,
    }
}

/// A task's newest usage sample.
pub fn task_usage(u: &crate::usage::report::TaskUsageView) -> api::UsageSample {
    api::UsageSample {
        received_ms: u.received_ms,
        cpu_cores: u.cpu_cores,
        cpu_usage_ns: u.cpu_usage_ns,
        cpu_throttled_ns: u.cpu_throttled_ns,
        memory_rss_bytes: u.memory_rss_bytes,
        memory_cache_bytes: u.memory_cache_bytes,
        memory_peak_bytes: u.memory_peak_bytes,
        memory_limit_bytes: u.memory_limit_bytes,
        oom_kills: u.oom_kills,
        pids: u.pids,
        disk_bytes: u.disk_bytes,
        cpu_throttled_periods: u.cpu_throttled_periods,
    }
}

/// The sums of an agent's newest usage report.
pub fn agent_usage(u: &crate::usage::report::AgentUsageView) -> api::AgentUsage {
    api::AgentUsage {
        received_ms: u.received_ms,
        tasks: u.tasks as u64,
        cpu_cores: u.cpu_cores,
        memory_rss_bytes: u.memory_rss_bytes,
        memory_cache_bytes: u.memory_cache_bytes,
    }
}

pub fn kv(e: &int::KvEntry) -> api::KvEntry {
    api::KvEntry {
        namespace: e.namespace.clone(),
        key: e.key.clone(),
        value: e.value.clone(),
        revision: e.revision,
        created_revision: e.created_revision,
    }
}

/// A deployment: its main fields, and the REST view as JSON.
pub fn deployment(d: &crate::service::deployments::DeploymentView) -> api::Deployment {
    api::Deployment {
        id: d.id.clone(),
        job_id: d.job_id.clone(),
        spec_version: d.spec_version,
        state: d.state.clone(),
        reason: d.reason.clone(),
        instances: d.instances,
        replaced: d.replaced as u64,
        healthy: d.healthy,
        view_json: serde_json::to_vec(d).unwrap_or_default(),
    }
}

pub fn write(r: WriteResult) -> api::WriteResponse {
    api::WriteResponse {
        id: r.id,
        version: r.version,
        outcome: r.outcome,
        spec_version: r.spec_version.unwrap_or(0),
        instances: r.instances.unwrap_or(0),
        revision: r.revision.unwrap_or(0),
    }
}

pub fn job_detail(version: u64, d: JobDetail, j: &int::Job) -> api::JobDetail {
    api::JobDetail {
        job: Some(job(j)),
        tasks: d.tasks.into_iter().collect(),
        running: d.running as u64,
        dns_name: d.dns_name.unwrap_or_default(),
        dns_name_owner: d.dns_name_owner.unwrap_or_default(),
        version,
    }
}

pub fn job_versions(v: JobVersions) -> api::JobVersionsResponse {
    api::JobVersionsResponse {
        id: v.id,
        version: v.version,
        versions: v
            .versions
            .into_iter()
            .map(|s| api::JobSpecVersion {
                spec_version: s.spec_version,
                spec_json: serde_json::to_vec(&s.spec).unwrap_or_default(),
                version: s.version,
                current: s.current,
            })
            .collect(),
    }
}

pub fn lease(l: LeaseView) -> api::LeaseInfo {
    api::LeaseInfo {
        namespace: l.namespace,
        name: l.name,
        holder: l.holder,
        expires_ms: l.expires_ms,
        epoch: l.epoch,
        ttl_ms: l.ttl_ms,
        acquired_ms: l.acquired_ms,
        revision: l.revision,
    }
}

/// REST's `?min_version=&consistent=` from gRPC's optional message.
pub fn read_options(r: Option<api::ReadOptions>) -> crate::service::ReadOptions {
    let r = r.unwrap_or_default();
    crate::service::ReadOptions {
        min_version: (r.min_version > 0).then_some(r.min_version),
        consistent: r.consistent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    /// The public messages keep the internal field numbers, so bytes of one
    /// read as the other: clients built before the split keep working.
    #[test]
    fn public_messages_read_the_internal_bytes_alike() {
        let t = int::Task {
            id: "j.1".into(),
            job_id: "j".into(),
            state: "RUNNING".into(),
            ports: vec![int::TaskPort {
                name: "http".into(),
                port: 31000,
            }],
            healthy: Some(true),
            exit_code: Some(3),
            unreachable_since_ms: 9,
            draining_since_ms: 11,
            ..Default::default()
        };
        let decoded = api::Task::decode(t.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded, task(&t));
        let j = int::Job {
            id: "j".into(),
            spec_json: b"{}".to_vec().into(),
            spec_version: 4,
            history: vec![int::JobSpecVersion::default()],
            spec_since: 7,
            ..Default::default()
        };
        let decoded = api::Job::decode(j.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded, job(&j), "history and spec_since stay internal");
        let a = int::Agent {
            id: "h1".into(),
            status: "draining".into(),
            executors: vec![int::AgentExecutor {
                name: "docker".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let decoded = api::Agent::decode(a.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded, agent(&a));
    }
}
