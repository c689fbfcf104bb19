//! The faults a schedule injects, and how each is undone.

use nix::sys::signal::Signal;

use super::cluster::{NsCluster, AGENTS, AGENT_HTTP_PORT, MASTERS};
use super::{answering, get_within, Rng};
use crate::partition::addr;
use crate::tasks::reap_cgroups;

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// SIGKILL the leader (restarted at heal).
    KillLeader,
    /// SIGSTOP the leader (SIGCONT at heal).
    StopLeader,
    /// Cut the leader from both followers, both ways.
    IsolateLeader,
    /// Cut an agent from every master, both ways; its tasks' clients still
    /// reach it.
    CutAgent,
    /// Drop a share (30, 60 or 100 %) of the packets one way between the
    /// leader and a follower.
    OneWayLoss,
    /// Cut and restore the link between the leader and a follower every
    /// 200-600 ms.
    Flap,
    /// SIGKILL an agent and its tasks (the host died; restarted at heal).
    KillAgent,
    /// SIGKILL one task process.
    KillTask,
    /// SIGKILL every master (all restarted at heal).
    FullRestart,
}

/// Every kind, in the order the generator draws from.
pub const ALL: [Fault; 9] = [
    Fault::KillLeader,
    Fault::StopLeader,
    Fault::IsolateLeader,
    Fault::CutAgent,
    Fault::OneWayLoss,
    Fault::Flap,
    Fault::KillAgent,
    Fault::KillTask,
    Fault::FullRestart,
];

impl Fault {
    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Fault::KillLeader => "leader-kill",
            Fault::StopLeader => "leader-sigstop",
            Fault::IsolateLeader => "leader-isolated",
            Fault::CutAgent => "agent-cut-from-masters",
            Fault::OneWayLoss => "one-way-loss",
            Fault::Flap => "flapping-link",
            Fault::KillAgent => "agent-kill",
            Fault::KillTask => "task-kill",
            Fault::FullRestart => "full-restart",
        }
    }

    /// Whether it touches only the masters, so no task may be replaced
    /// because of it.
    pub fn masters_only(self) -> bool {
        !matches!(self, Fault::CutAgent | Fault::KillAgent | Fault::KillTask)
    }
}

/// What an applied fault left to undo.
#[derive(Debug)]
pub enum Applied {
    /// Nothing (the fault found no target, or needs no undoing).
    Nothing,
    /// Start master `id` again.
    Restart(u64),
    /// SIGCONT master `id`.
    Cont(u64),
    /// Remove every drop.
    Heal,
    /// Start agent `k` again.
    RestartAgent(usize),
    /// Start every master again.
    RestartAll,
    /// Flapping between nodes `a` and `b`: cut now or not.
    Flapping {
        /// One end.
        a: usize,
        /// The other.
        b: usize,
        /// Whether the link is cut now.
        cut: bool,
    },
}

/// Applies `f`, describing what it hit (or why it hit nothing).
pub async fn apply(
    c: &mut NsCluster,
    f: Fault,
    rng: &mut Rng,
) -> anyhow::Result<(Applied, String)> {
    let leader = if matches!(
        f,
        Fault::KillLeader
            | Fault::StopLeader
            | Fault::IsolateLeader
            | Fault::OneWayLoss
            | Fault::Flap
    ) {
        match c.leader().await {
            Some(l) => Some(l),
            None => return Ok((Applied::Nothing, "skipped: no leader".into())),
        }
    } else {
        None
    };
    let l = leader.unwrap_or(1);
    let li = (l - 1) as usize;
    let followers: Vec<usize> = (0..MASTERS).filter(|i| *i != li).collect();
    let follower = followers[rng.below(followers.len() as u64) as usize];
    Ok(match f {
        Fault::KillLeader => {
            c.master(l).kill();
            (Applied::Restart(l), format!("killed leader {l}"))
        }
        Fault::StopLeader => {
            c.master(l).signal(Signal::SIGSTOP);
            (Applied::Cont(l), format!("stopped leader {l}"))
        }
        Fault::IsolateLeader => {
            c.net.isolate(li, &followers)?;
            (Applied::Heal, format!("isolated leader {l}"))
        }
        Fault::CutAgent => {
            let k = rng.below(AGENTS as u64) as usize;
            let masters: Vec<usize> = (0..MASTERS).collect();
            c.net.isolate(MASTERS + k, &masters)?;
            // The cut must leave the agent reachable from the clients.
            let at = format!("{}:{AGENT_HTTP_PORT}", addr(MASTERS + k));
            let reach = tokio::time::timeout(
                std::time::Duration::from_secs(2),
                tokio::net::TcpStream::connect(&at),
            )
            .await;
            anyhow::ensure!(
                matches!(reach, Ok(Ok(_))),
                "the harness cut agent {k} from the clients too: {at} unreachable ({reach:?})"
            );
            (Applied::Heal, format!("cut agent {k} from the masters"))
        }
        Fault::OneWayLoss => {
            let f = follower;
            let percent = [30u8, 60, 100][rng.below(3) as usize];
            let (from, to) = if rng.below(2) == 0 { (li, f) } else { (f, li) };
            c.net.drop_share(from, to, percent)?;
            (
                Applied::Heal,
                format!("dropping {percent}% from master {} to {}", from + 1, to + 1),
            )
        }
        Fault::Flap => {
            let f = follower;
            c.net.isolate(li, &[f])?;
            (
                Applied::Flapping {
                    a: li,
                    b: f,
                    cut: true,
                },
                format!("flapping the link between masters {} and {}", l, f + 1),
            )
        }
        Fault::KillAgent => {
            let k = rng.below(AGENTS as u64) as usize;
            c.agents[k].kill();
            reap_cgroups(&c.agents[k].cgroup_parent());
            (
                Applied::RestartAgent(k),
                format!("killed agent {k} and its tasks"),
            )
        }
        Fault::KillTask => {
            let apis = c.apis();
            let Some(api) = answering(&apis).await else {
                return Ok((Applied::Nothing, "skipped: no master answers".into()));
            };
            let list = match get_within(&api, "/v1/tasks?state=RUNNING", 3).await {
                Some(r) => r.body["tasks"].as_array().cloned().unwrap_or_default(),
                None => Vec::new(),
            };
            if list.is_empty() {
                return Ok((Applied::Nothing, "skipped: no running task".into()));
            }
            let t = &list[rng.below(list.len() as u64) as usize];
            match t["pid"].as_i64() {
                Some(pid) => {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid as i32),
                        Signal::SIGKILL,
                    );
                    (Applied::Nothing, format!("killed task {}", t["id"]))
                }
                None => (Applied::Nothing, "skipped: the task has no pid".into()),
            }
        }
        Fault::FullRestart => {
            for m in &mut c.masters {
                m.kill();
            }
            (Applied::RestartAll, "killed every master".into())
        }
    })
}

/// Moves a flapping link on (the others have nothing to do while held).
pub fn tick(c: &mut NsCluster, a: &mut Applied) -> anyhow::Result<()> {
    if let Applied::Flapping { a: x, b: y, cut } = a {
        if *cut {
            c.net.heal_one(*x, *y)?;
            c.net.heal_one(*y, *x)?;
        } else {
            c.net.isolate(*x, &[*y])?;
        }
        *cut = !*cut;
    }
    Ok(())
}

/// Undoes what [`apply`] did.
pub fn heal(c: &mut NsCluster, a: Applied) -> anyhow::Result<()> {
    match a {
        Applied::Nothing => {}
        Applied::Restart(id) => c.master(id).start()?,
        Applied::Cont(id) => c.master(id).signal(Signal::SIGCONT),
        Applied::Heal | Applied::Flapping { .. } => c.net.heal()?,
        Applied::RestartAgent(k) => c.agents[k].start()?,
        Applied::RestartAll => {
            for m in &mut c.masters {
                m.start()?;
            }
        }
    }
    Ok(())
}
