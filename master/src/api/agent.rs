//! The agent protocol's master side: one bidirectional stream per agent,
//! served by the leader. Registration is committed through raft (so every
//! master knows the agent); liveness (connected, last heartbeat) is the
//! leader's own knowledge and is not replicated.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use ocean_proto::agent::agent_api_server::{AgentApi, AgentApiServer};
use ocean_proto::agent::{
    agent_message, master_message, AgentMessage, MasterMessage, NotLeader, Register, Registered,
};
use ocean_proto::internal::{Agent, AgentExecutor};
use tokio::sync::{mpsc, Notify};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{info, warn};

use super::error::to_status;
use crate::kernel::state::put_agent_command;
use crate::master::Master;
use crate::reconcile::{reports, Leading};

/// Tells an agent to reconnect to the leader this master knows of.
fn not_leader(master: &Master) -> MasterMessage {
    let leader = master.leader();
    MasterMessage {
        kind: Some(master_message::Kind::NotLeader(NotLeader {
            leader_id: leader.as_ref().map(|l| l.id).unwrap_or(0),
            leader_grpc_addr: leader.map(|l| l.grpc_addr).unwrap_or_default(),
        })),
    }
}

/// The gRPC service.
#[derive(Debug, Clone)]
pub struct AgentService(pub Leading);

impl AgentService {
    /// Wraps the service for tonic.
    pub fn server(master: Leading) -> AgentApiServer<Self> {
        AgentApiServer::new(AgentService(master))
    }
}

fn is_label(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Most CPUs an agent may offer. Far above any machine; what matters is
/// that a million agents' totals stay far from overflowing a u64 (the
/// cluster summary adds them up in millicores).
const MAX_CPUS: f64 = 65_536.0;
/// Most memory or disk an agent may offer, in MiB (1 EiB), for the same
/// reason.
const MAX_MIB: u64 = 1 << 40;

/// Checks a registration, naming the first wrong field.
pub fn validate(r: &Register) -> Result<(), Status> {
    let bad = |field: &str, reason: &str| {
        Err(Status::invalid_argument(format!(
            "register.{field}: {reason}"
        )))
    };
    if !is_label(&r.agent_id, 64) {
        return bad(
            "agent_id",
            "must be 1-64 characters of letters, digits, '-', '_', '.'",
        );
    }
    if !is_label(&r.hostname, 253) {
        return bad("hostname", "must be a host name");
    }
    let Some(res) = &r.resources else {
        return bad("resources", "missing");
    };
    if !(res.cpus.is_finite() && res.cpus > 0.0 && res.cpus <= MAX_CPUS) {
        return bad("resources.cpus", "must be a positive number at most 65536");
    }
    if res.mem_mib == 0 || res.mem_mib > MAX_MIB {
        return bad(
            "resources.mem_mib",
            "must be positive, at most 2^40 (1 EiB)",
        );
    }
    if res.disk_mib > MAX_MIB {
        return bad("resources.disk_mib", "must be at most 2^40 (1 EiB)");
    }
    if r.port_low == 0 || r.port_high > 65_535 || r.port_low > r.port_high {
        return bad("port_low", "ports must be a range LOW-HIGH within 1-65535");
    }
    for (k, v) in &r.attributes {
        if k.is_empty() || k.len() > 63 || v.len() > 253 {
            return bad(
                &format!("attributes.{k}"),
                "keys must be 1-63 characters, values at most 253",
            );
        }
    }
    if r.executors.len() > 16 {
        return bad("executors", "at most 16 executors");
    }
    for (i, e) in r.executors.iter().enumerate() {
        if !is_label(&e.name, 63) {
            return bad(
                &format!("executors[{i}].name"),
                "must be 1-63 characters of letters, digits, '-', '_', '.'",
            );
        }
        if e.features.iter().any(|f| !is_label(f, 63)) || e.features.len() > 16 {
            return bad(
                &format!("executors[{i}].features"),
                "at most 16, each 1-63 characters of letters, digits, '-', '_', '.'",
            );
        }
        if e.reason.len() > 1024 || e.version.len() > 253 {
            return bad(
                &format!("executors[{i}]"),
                "reason at most 1024 bytes, version at most 253",
            );
        }
    }
    Ok(())
}

/// The replicated form of the executors an agent registered with.
fn executors(r: &Register) -> Vec<AgentExecutor> {
    r.executors
        .iter()
        .map(|e| AgentExecutor {
            name: e.name.clone(),
            available: e.available,
            reason: e.reason.clone(),
            version: e.version.clone(),
            features: e.features.clone(),
        })
        .collect()
}

/// The agent record a (validated) registration commits.
pub fn agent_of(reg: &Register) -> Agent {
    let res = reg.resources.unwrap_or_default();
    Agent {
        id: reg.agent_id.clone(),
        hostname: reg.hostname.clone(),
        attributes: reg.attributes.clone(),
        cpus: res.cpus,
        mem_mib: res.mem_mib,
        disk_mib: res.disk_mib,
        port_low: reg.port_low,
        port_high: reg.port_high,
        address: reg.address.clone(),
        registered_version: 0,
        http_addr: reg.http_addr.clone(),
        executors: executors(reg),
        // The operator's status is the masters' record, never the agent's.
        ..Default::default()
    }
}

type SessionStream = Pin<Box<dyn Stream<Item = Result<MasterMessage, Status>> + Send>>;

#[tonic::async_trait]
impl AgentApi for AgentService {
    type SessionStream = SessionStream;

    async fn session(
        &self,
        req: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<SessionStream>, Status> {
        let master = self.0.clone();
        let cert = if master.agent_certs() {
            Some(agent_certificate(&req)?)
        } else {
            None
        };
        let (tx, rx) = mpsc::channel::<Result<MasterMessage, Status>>(1024);
        if master.status().leader != master.id() {
            let _ = tx.send(Ok(not_leader(&master))).await;
            return Ok(Response::new(Box::pin(ReceiverStream::new(rx))));
        }
        let mut inbound = req.into_inner();
        let first = inbound
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("stream ended before register"))?;
        let Some(agent_message::Kind::Register(reg)) = first.kind else {
            return Err(Status::invalid_argument(
                "kind: the first message must be register",
            ));
        };
        validate(&reg)?;
        if let Some(cert) = &cert {
            bound_to(cert, &reg.agent_id)?;
        }
        let agent = agent_of(&reg);
        // A re-registration with the same facts (every agent, after every
        // leader change) would commit nothing: skip the raft round trip.
        let known = master.read(|st| {
            st.agents.get(&agent.id).is_some_and(|a| {
                let mut same = agent.clone();
                same.registered_version = a.registered_version;
                same.status = a.status.clone();
                same.status_message = a.status_message.clone();
                same.status_version = a.status_version;
                **a == same
            })
        });
        if !known {
            master
                .propose(put_agent_command(agent))
                .await
                .map_err(to_status)?;
        }
        let id = reg.agent_id;
        info!(agent = %id, hostname = %reg.hostname, tasks = reg.tasks.len(), "agent registered");
        let _ = tx
            .send(Ok(MasterMessage {
                kind: Some(master_message::Kind::Registered(Registered {
                    agent_id: id.clone(),
                    leader_id: master.id(),
                    heartbeat_interval_ms: master
                        .scheduler()
                        .agent_settings()
                        .heartbeat_interval_ms,
                })),
            }))
            .await;
        // Open only now, so the reconciler's launches follow Registered.
        let (generation, kick) = master.sessions().open(&id, tx.clone());
        let has_tasks = !reg.tasks.is_empty() || master.read(|st| st.agent_tasks.contains_key(&id));
        // A registration is a full report of the agent's tasks.
        tokio::spawn(reports::full_report(master.clone(), id.clone(), reg.tasks));
        master.scheduler().wake_for_agent(has_tasks);
        let bound = cert.is_some();
        tokio::spawn(follow(master, id, generation, inbound, tx, kick, bound));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// The agent identity in the certificate an agent's stream presented.
fn agent_certificate<T>(req: &Request<T>) -> Result<ocean_tls::Identity, Status> {
    let id = ocean_tls::peer_identity(req)
        .map_err(|e| Status::unauthenticated(format!("agent session: {e}")))?;
    if id.role != ocean_tls::Role::Agent {
        return Err(Status::permission_denied(format!(
            "agent session: the certificate identity is {id}, not an agent"
        )));
    }
    Ok(id)
}

/// Refuses a registration as an agent other than the certificate's.
fn bound_to(cert: &ocean_tls::Identity, agent_id: &str) -> Result<(), Status> {
    if cert.name == agent_id {
        return Ok(());
    }
    warn!(agent_id, certificate = %cert, "agent refused: it registered as another agent");
    Err(Status::permission_denied(format!(
        "agent_id: '{agent_id}' is not the certificate identity {cert}"
    )))
}

/// Reads an agent's stream until it ends or this master stops leading.
/// When the session is `bound` to a certificate, a message that names
/// another agent ends it.
async fn follow(
    master: Leading,
    id: String,
    generation: u64,
    mut inbound: Streaming<AgentMessage>,
    tx: mpsc::Sender<Result<MasterMessage, Status>>,
    kick: Arc<Notify>,
    bound: bool,
) {
    let mut leader = master.sessions().leader_watch(&master.status_watch());
    loop {
        tokio::select! {
            msg = inbound.message() => match msg {
                Ok(Some(m)) => {
                    master.sessions().beat(&id);
                    match m.kind {
                        Some(agent_message::Kind::Report(r)) if r.full => {
                            tokio::spawn(reports::full_report(master.clone(), id.clone(), r.tasks));
                        }
                        Some(agent_message::Kind::Report(r)) => {
                            for u in reports::checked(&id, &r.tasks) {
                                master.scheduler().record(u);
                            }
                        }
                        Some(agent_message::Kind::Register(r)) if bound && r.agent_id != id => {
                            let _ = tx
                                .send(Err(Status::permission_denied(format!(
                                    "agent_id: '{}' is not the certificate identity agent:{id} this session is bound to",
                                    r.agent_id
                                ))))
                                .await;
                            break;
                        }
                        Some(agent_message::Kind::Register(_)) => {
                            warn!(agent = %id, "kind: register is only valid as the first message; ignored");
                        }
                        Some(agent_message::Kind::Usage(u)) => {
                            master.usage().record(&id, &u, crate::usage::now_ms());
                        }
                        Some(agent_message::Kind::HostChecks(c)) => master.sessions().host_checks.put(&id, &c),
                        Some(agent_message::Kind::Heartbeat(_)) | None => {}
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    warn!(agent = %id, error = %e.message(), "agent stream failed");
                    break;
                }
            },
            () = kick.notified() => {
                info!(agent = %id, "closing the stream of an unreachable agent");
                break;
            }
            changed = leader.changed() => {
                if changed.is_err() || *leader.borrow() != master.id() {
                    let _ = tx.send(Ok(not_leader(&master))).await;
                    break;
                }
            }
        }
    }
    master.sessions().close(&id, generation);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocean_proto::agent::Resources;

    fn register(cpus: f64, mem_mib: u64, disk_mib: u64) -> Register {
        Register {
            agent_id: "agent-1".into(),
            hostname: "host-1".into(),
            resources: Some(Resources {
                cpus,
                mem_mib,
                disk_mib,
            }),
            port_low: 31_000,
            port_high: 32_000,
            ..Default::default()
        }
    }

    fn refusal(r: &Register) -> String {
        validate(r).unwrap_err().message().to_string()
    }

    /// Found by `cargo fuzz run agent_message`: `cpus` 1.6e39 was
    /// accepted, and the cluster summary's capacity total overflowed when
    /// the registration was applied.
    #[test]
    fn absurd_resources_are_refused_naming_the_field() {
        assert!(validate(&register(8.0, 16_384, 100_000)).is_ok());
        assert!(validate(&register(65_536.0, 1 << 40, 1 << 40)).is_ok());
        assert!(refusal(&register(1.6e39, 16_384, 0)).starts_with("register.resources.cpus:"));
        assert!(refusal(&register(f64::NAN, 16_384, 0)).starts_with("register.resources.cpus:"));
        assert!(refusal(&register(8.0, u64::MAX, 0)).starts_with("register.resources.mem_mib:"));
        assert!(refusal(&register(8.0, 0, 0)).starts_with("register.resources.mem_mib:"));
        assert!(refusal(&register(8.0, 1024, (1 << 40) + 1))
            .starts_with("register.resources.disk_mib:"));
    }
}
