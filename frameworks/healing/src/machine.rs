//! The state machine of one host: a pure step from (its ticket, what is
//! seen of it now, what the guards allow) to (its ticket, commands).
//!
//! ```text
//!  online ──fail──► suspect ──fail ≥ problem_after──► problem ──guards allow──► draining
//!    ▲                 │pass                            │pass   (dry-run/held: stays)  │ no live tasks
//!    └─────────────────┴────────────────────────────────┴──────────── pass ◄── repairing ◄┘
//!                                                        repair failed < max: next repair
//!                                                        repair failed = max ──► offline (ticket open)
//! ```
//!
//! Level-triggered: every step names the agent status the ticket's state
//! requires and asks for it when the master shows another, and repairs are
//! jobs created only if absent, so a step repeated (a new instance of the
//! framework after a leader change) does nothing twice.

use crate::config::{HealingConfig, RepairAction};
use crate::repair::repair_job_id;
use crate::ticket::{ticket_id, HostState, Ticket};

/// The host's checks as the master last received them.
#[derive(Debug, Clone, PartialEq)]
pub enum Checks {
    /// None, or too old to trust.
    Unknown,
    /// All pass (received at this leader-clock time).
    Pass { received_ms: u64 },
    /// These fail.
    Fail {
        received_ms: u64,
        failing: Vec<String>,
    },
}

/// The current repair's job as the master shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum RepairSeen {
    /// No task yet (or no job).
    Waiting,
    /// Its task is placed on the host and has not ended.
    Running,
    /// Its task finished (exit 0) at this time.
    Succeeded { ended_ms: u64 },
    /// Its task ended otherwise.
    Failed { why: String },
}

/// What is seen of one host in one round.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub agent_id: String,
    pub hostname: String,
    pub node: String,
    /// The agent's status as the master has it.
    pub status: String,
    pub checks: Checks,
    /// Live tasks on the host other than healing's own.
    pub live_tasks: usize,
    pub repair: RepairSeen,
    /// The agent's data dir (for the built-in cleanup).
    pub data_dir: String,
}

/// What the guards allow this round.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Allowed {
    /// `Some(why)` when healing must not act at all (a storm).
    pub storm: Option<String>,
    /// `Some(why)` when this host may not start draining.
    pub drain_held: Option<String>,
}

/// What the shell must do for a step.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Set the agent's status (the master's drain for `draining`).
    SetStatus {
        agent: String,
        status: &'static str,
        message: String,
    },
    /// Create the repair job if absent.
    StartRepair {
        job_id: String,
        hostname: String,
        action: RepairAction,
        data_dir: String,
    },
    /// Delete a repair job (ended, timed out, or no longer needed).
    DeleteRepair { job_id: String },
}

/// The status the master should show for a ticket's state, `None` when
/// healing does not set one (suspect, dry-run, closed by a person).
fn required_status(t: &Ticket, storm: bool) -> Option<&'static str> {
    if t.dry_run || t.closed_ms.is_some() && t.state != HostState::Online {
        return None;
    }
    match t.state {
        HostState::Online => Some("online"),
        HostState::Suspect => None,
        // In a storm healing changes nothing: even closing many hosts to
        // new tasks at once could starve the cluster.
        HostState::Problem if storm => None,
        HostState::Problem => Some("problem"),
        HostState::Draining => Some("draining"),
        // Closed to new tasks; the repair is a maintenance job, which the
        // master places on a closed host it is pinned to.
        HostState::Repairing => Some("problem"),
        HostState::Offline => Some("offline"),
    }
}

fn failing_text(f: &[String]) -> String {
    f.join("; ")
}

/// One step of one host (see the module docs). `ticket` is its open
/// ticket, if any. Returns the ticket as it should be stored (`None`: no
/// ticket, nothing to store) and the commands.
pub fn step(
    ticket: Option<&Ticket>,
    obs: &Observation,
    allowed: &Allowed,
    cfg: &HealingConfig,
    now_ms: u64,
) -> (Option<Ticket>, Vec<Command>) {
    let mut cmds = Vec::new();
    let Some(old) = ticket else {
        // Healing opens tickets only for hosts in service: a host a person
        // took out is theirs.
        if let Checks::Fail {
            received_ms,
            failing,
        } = &obs.checks
        {
            if obs.status == "online" {
                let mut t = Ticket {
                    id: ticket_id(&obs.agent_id, now_ms),
                    host: obs.agent_id.clone(),
                    hostname: obs.hostname.clone(),
                    node: obs.node.clone(),
                    opened_ms: now_ms,
                    state: HostState::Online,
                    failing_since_ms: *received_ms,
                    failing: failing.clone(),
                    transitions: Vec::new(),
                    actions: Vec::new(),
                    repairs_failed: 0,
                    repair_attempt: 0,
                    dry_run: cfg.dry_run,
                    closed_ms: None,
                    closed_reason: None,
                };
                t.go(
                    HostState::Suspect,
                    now_ms,
                    format!("checks fail: {}", failing_text(failing)),
                );
                return (Some(t), cmds);
            }
        }
        return (None, cmds);
    };
    let mut t = old.clone();
    if !t.is_open() {
        return (None, cmds);
    }
    if let Checks::Fail { failing, .. } = &obs.checks {
        // Kept when only the numbers in the messages move, so a ticket is
        // written on changes, not on every report.
        let names = |f: &[String]| -> Vec<String> {
            f.iter()
                .map(|s| s.split(':').next().unwrap_or("").to_string())
                .collect()
        };
        if names(failing) != names(&t.failing) {
            t.failing = failing.clone();
        }
    }
    let passes_again = |t: &Ticket| match &obs.checks {
        Checks::Pass { received_ms } => *received_ms > t.failing_since_ms,
        _ => false,
    };
    match t.state {
        HostState::Online => {}
        HostState::Suspect => {
            if passes_again(&t) {
                t.go(HostState::Online, now_ms, "checks pass again");
                t.close(now_ms, "the host passes its checks again");
            } else if matches!(obs.checks, Checks::Fail { .. })
                && now_ms.saturating_sub(t.failing_since_ms) >= cfg.problem_after_seconds * 1000
            {
                t.go(
                    HostState::Problem,
                    now_ms,
                    format!(
                        "checks failed for {} s: {}",
                        cfg.problem_after_seconds,
                        failing_text(&t.failing)
                    ),
                );
            }
        }
        HostState::Problem => {
            if passes_again(&t) {
                t.go(HostState::Online, now_ms, "checks pass again");
                t.close(now_ms, "the host passes its checks again");
            } else if t.dry_run {
                if t.last_action("dry_run").is_none() {
                    t.act(
                        "dry_run",
                        now_ms,
                        "would drain the host and repair it; dry-run acts on nothing",
                    );
                }
            } else if let Some(why) = allowed.storm.as_ref().or(allowed.drain_held.as_ref()) {
                if t.last_action("hold").is_none_or(|a| a.detail != *why) {
                    t.act("hold", now_ms, why.clone());
                }
            } else {
                t.go(
                    HostState::Draining,
                    now_ms,
                    "the guards allow a drain: moving its tasks off",
                );
                t.act(
                    "drain",
                    now_ms,
                    format!("{} live task(s) to move", obs.live_tasks),
                );
            }
        }
        HostState::Draining => {
            if passes_again(&t) {
                t.go(
                    HostState::Online,
                    now_ms,
                    "checks pass again while draining",
                );
                t.close(now_ms, "the host passes its checks again");
            } else if obs.live_tasks == 0 && obs.status == "draining" && allowed.storm.is_none() {
                start_repair(&mut t, obs, cfg, now_ms, "drained: no live tasks left");
            }
        }
        HostState::Repairing => repairing(&mut t, obs, allowed, cfg, now_ms, &mut cmds),
        HostState::Offline => {}
    }
    if let Some(status) = required_status(&t, allowed.storm.is_some()) {
        // A ticket that just closed puts its host back in service.
        if obs.status != status {
            cmds.push(Command::SetStatus {
                agent: t.host.clone(),
                status,
                message: format!("healing ticket {}: {}", t.id, t.state.as_str()),
            });
        }
    }
    if let Some(r) = t.current_repair() {
        if t.state == HostState::Repairing && obs.repair == RepairSeen::Waiting {
            let n = t.repair_attempt.saturating_sub(1) as usize;
            let action = cfg.actions[n % cfg.actions.len()].clone();
            cmds.insert(
                0,
                Command::StartRepair {
                    job_id: r.job_id.clone().unwrap_or_default(),
                    hostname: t.hostname.clone(),
                    action,
                    data_dir: obs.data_dir.clone(),
                },
            );
        }
    }
    let changed = t != *old;
    (changed.then_some(t), cmds)
}

fn start_repair(t: &mut Ticket, obs: &Observation, cfg: &HealingConfig, now_ms: u64, cause: &str) {
    t.repair_attempt += 1;
    let n = (t.repair_attempt - 1) as usize;
    let action = &cfg.actions[n % cfg.actions.len()];
    let job_id = repair_job_id(&t.id, t.repair_attempt);
    t.go(
        HostState::Repairing,
        now_ms,
        format!("{cause}: repair {} ({})", t.repair_attempt, action.name),
    );
    t.act(
        format!("repair:{}", action.name),
        now_ms,
        format!(
            "attempt {} on {} (timeout {} s)",
            t.repair_attempt, obs.hostname, action.timeout_seconds
        ),
    );
    if let Some(last) = t.actions.last_mut() {
        last.job_id = Some(job_id);
    }
}

fn repairing(
    t: &mut Ticket,
    obs: &Observation,
    allowed: &Allowed,
    cfg: &HealingConfig,
    now_ms: u64,
    cmds: &mut Vec<Command>,
) {
    let Some(current) = t.current_repair().cloned() else {
        let last = t
            .actions
            .iter()
            .rev()
            .find(|a| a.kind.starts_with("repair:"))
            .cloned();
        let ended = last.as_ref().and_then(|a| a.finished_ms).unwrap_or(0);
        let succeeded = last.as_ref().and_then(|a| a.verdict.as_deref()) == Some("succeeded");
        if !succeeded {
            // A failed repair whose successor a storm held back.
            if allowed.storm.is_none() {
                start_repair(t, obs, cfg, now_ms, "the storm is over");
            }
            return;
        }
        match &obs.checks {
            Checks::Pass { received_ms } if *received_ms > ended => {
                t.go(HostState::Online, now_ms, "checks pass after the repair");
                t.close(now_ms, "the host passes its checks again");
            }
            _ if allowed.storm.is_none()
                && now_ms.saturating_sub(ended) >= cfg.verify_seconds * 1000 =>
            {
                if let Some(a) = t
                    .actions
                    .iter_mut()
                    .rev()
                    .find(|a| a.kind.starts_with("repair:"))
                {
                    a.verdict = Some(format!(
                        "ran, but checks still fail {} s later",
                        cfg.verify_seconds
                    ));
                }
                let cause = format!(
                    "checks still fail {} s after the repair: {}",
                    cfg.verify_seconds,
                    failing_text(&t.failing)
                );
                failed_repair(t, cfg, now_ms, allowed, obs, cause);
            }
            _ => {}
        }
        return;
    };
    let job_id = current.job_id.clone().unwrap_or_default();
    let timeout_ms = cfg.actions[(t.repair_attempt.saturating_sub(1) as usize) % cfg.actions.len()]
        .timeout_seconds
        * 1000;
    let verdict = match &obs.repair {
        RepairSeen::Succeeded { ended_ms } => Some((Ok(()), *ended_ms)),
        RepairSeen::Failed { why } => Some((Err(why.clone()), now_ms)),
        _ if now_ms.saturating_sub(current.at_ms) >= timeout_ms => Some((
            Err(format!("timed out after {} s", timeout_ms / 1000)),
            now_ms,
        )),
        _ => None,
    };
    let Some((verdict, ended)) = verdict else {
        return;
    };
    if let Some(a) = t
        .actions
        .iter_mut()
        .rev()
        .find(|a| a.job_id.as_deref() == Some(job_id.as_str()))
    {
        a.verdict = Some(match &verdict {
            Ok(()) => "succeeded".into(),
            Err(why) => format!("failed: {why}"),
        });
        a.finished_ms = Some(ended);
    }
    cmds.push(Command::DeleteRepair { job_id });
    if let Err(why) = verdict {
        failed_repair(
            t,
            cfg,
            now_ms,
            allowed,
            obs,
            format!("the repair failed: {why}"),
        );
    }
}

fn failed_repair(
    t: &mut Ticket,
    cfg: &HealingConfig,
    now_ms: u64,
    allowed: &Allowed,
    obs: &Observation,
    cause: String,
) {
    t.repairs_failed += 1;
    if t.repairs_failed >= cfg.max_repairs {
        t.go(
            HostState::Offline,
            now_ms,
            format!(
                "{cause}; {} repair(s) failed: out of service, the ticket stays open for a person",
                t.repairs_failed
            ),
        );
    } else if allowed.storm.is_none() {
        start_repair(t, obs, cfg, now_ms, &cause);
    }
}
