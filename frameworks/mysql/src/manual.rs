//! What an operator's manual action on a database acts on, chosen from
//! the database's observed status (pure; the API acts on the answer):
//!
//! - **switchover**: the replica to hand the primary's role to (the one
//!   named, or the replicating one furthest ahead);
//! - **scale-in**: which tasks the masters will stop when the job's
//!   instances go down (they mirror the masters' own choice: tasks not
//!   running first, the newest first, then running ones by greatest id),
//!   so the API can hand the primary's role away before its task goes;
//! - **rebuild**: the instance to reseed (never the primary).

use crate::gtid::GtidPos;
use crate::status::{DatabaseStatus, NodeStatus};

pub use ocean_framework::Refused;

/// The node that is primary now.
pub fn primary_of(st: &DatabaseStatus) -> Option<&NodeStatus> {
    st.nodes.iter().find(|n| n.role == "primary")
}

/// The replicating replicas, furthest ahead first (then least lag, then
/// task id): the order a switchover or a seed prefers them in.
pub fn replicas_by_position(st: &DatabaseStatus) -> Vec<&NodeStatus> {
    let mut r: Vec<&NodeStatus> = st.nodes.iter().filter(|n| n.role == "replica").collect();
    r.sort_by(|a, b| {
        let (pa, pb) = (
            GtidPos::parse(&a.gtid).total(),
            GtidPos::parse(&b.gtid).total(),
        );
        pb.cmp(&pa)
            .then(a.lag_seconds.unwrap_or(0).cmp(&b.lag_seconds.unwrap_or(0)))
            .then(a.task.cmp(&b.task))
    });
    r
}

/// The replica a switchover hands the primary's role to (`to`: the one
/// asked for), with the primary it replaces. A switchover needs a settled
/// database: state `ok` (a writable primary, every standby replicating).
pub fn switchover_target<'a>(
    st: &'a DatabaseStatus,
    to: Option<&str>,
) -> Result<(&'a NodeStatus, &'a NodeStatus), Refused> {
    if st.state != "ok" {
        let why = if st.message.is_empty() {
            String::new()
        } else {
            format!(" ({})", st.message)
        };
        return Err(Refused::conflict(
            "id",
            format!(
                "the database is {}{why}: a switchover needs it settled (ok: a writable primary, every standby replicating)",
                st.state
            ),
        ));
    }
    let primary = primary_of(st)
        .ok_or_else(|| Refused::conflict("id", "no primary is serving: nothing to switch over"))?;
    let target = match to {
        Some(to) => {
            let n = st.nodes.iter().find(|n| n.task == to).ok_or_else(|| {
                Refused::missing("to", format!("no task '{to}' among the database's instances"))
            })?;
            if n.task == primary.task {
                return Err(Refused::conflict(
                    "to",
                    format!("'{to}' is the primary already"),
                ));
            }
            if n.role != "replica" {
                return Err(Refused::conflict(
                    "to",
                    format!(
                        "'{to}' is {}, not a replica replicating from the primary",
                        n.role
                    ),
                ));
            }
            n
        }
        None => replicas_by_position(st).into_iter().next().ok_or_else(|| {
            Refused::conflict(
                "to",
                "no healthy replica to hand the primary's role to (a one-instance database cannot switch over)",
            )
        })?,
    };
    Ok((target, primary))
}

/// One task of the database's job as the masters list it: its id and
/// whether it is running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobTask {
    /// The task id.
    pub id: String,
    /// State `RUNNING`.
    pub running: bool,
}

/// The tasks the masters stop when the job goes down to `instances`:
/// those not running first (newest first), then running ones by greatest
/// id. This mirrors the masters' scale-down for a job whose instances
/// each have a host of their own (`hostname UNIQUE`, every agent online);
/// if it ever differs, the primary's task may be stopped, which is a
/// failover (lossless) rather than a switchover.
pub fn scale_in_victims(tasks: &[JobTask], instances: u32) -> Vec<String> {
    let extra = tasks.len().saturating_sub(instances as usize);
    let mut order: Vec<&JobTask> = tasks.iter().collect();
    order.sort_by(|a, b| a.running.cmp(&b.running).then(b.id.cmp(&a.id)));
    order
        .into_iter()
        .take(extra)
        .map(|t| t.id.clone())
        .collect()
}

/// The replica to hand the primary's role to before a scale-in stops the
/// primary's task: the one furthest ahead among those that stay.
pub fn keeper<'a>(st: &'a DatabaseStatus, victims: &[String]) -> Option<&'a NodeStatus> {
    replicas_by_position(st)
        .into_iter()
        .find(|n| !victims.contains(&n.task))
}

/// The instance a rebuild acts on: a replica (or a diverged, fenced or
/// starting instance) that answers, in a database whose primary serves
/// (the seed's source). The primary is refused: it holds the
/// authoritative copy; an instance that does not answer is rebuilt by
/// itself once its next task waits for a seed.
pub fn rebuild_target<'a>(st: &'a DatabaseStatus, task: &str) -> Result<&'a NodeStatus, Refused> {
    let n = st.nodes.iter().find(|n| n.task == task).ok_or_else(|| {
        Refused::missing(
            "task",
            format!("no task '{task}' among the database's instances"),
        )
    })?;
    match n.role.as_str() {
        "primary" => Err(Refused::conflict(
            "task",
            format!("'{task}' is the primary: it holds the authoritative copy; switch over first"),
        )),
        "unreachable" | "rebuilding" => Err(Refused::conflict(
            "task",
            format!("'{task}' is {}: it does not answer (an instance without its data waits for a seed by itself)", n.role),
        )),
        _ if primary_of(st).is_none() => Err(Refused::conflict(
            "id",
            "no primary is serving: nothing to seed from",
        )),
        _ => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(task: &str, role: &str, gtid: &str) -> NodeStatus {
        NodeStatus {
            task: task.into(),
            role: role.into(),
            gtid: gtid.into(),
            addr: format!("10.0.0.1:{}", task.len()),
            ..Default::default()
        }
    }

    fn st() -> DatabaseStatus {
        DatabaseStatus {
            state: "ok".into(),
            primary: "j.1".into(),
            nodes: vec![
                node("j.1", "primary", "0-1-9"),
                node("j.2", "replica", "0-1-8"),
                node("j.3", "replica", "0-1-9"),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn a_switchover_goes_to_the_replica_furthest_ahead_or_the_one_named() {
        let s = st();
        let (t, p) = switchover_target(&s, None).unwrap();
        assert_eq!((t.task.as_str(), p.task.as_str()), ("j.3", "j.1"));
        let (t, _) = switchover_target(&s, Some("j.2")).unwrap();
        assert_eq!(t.task, "j.2");
    }

    #[test]
    fn a_switchover_is_refused_naming_the_field() {
        let s = st();
        let e = switchover_target(&s, Some("j.9")).unwrap_err();
        assert_eq!((e.field, e.missing), ("to", true));
        let e = switchover_target(&s, Some("j.1")).unwrap_err();
        assert_eq!((e.field, e.conflict), ("to", true));
        let mut d = st();
        d.nodes[1].role = "diverged".into();
        let e = switchover_target(&d, Some("j.2")).unwrap_err();
        assert!(e.conflict && e.reason.contains("diverged"), "{e}");
        let mut d = st();
        d.state = "degraded".into();
        d.message = "1 of 2 standbys replicating".into();
        let e = switchover_target(&d, None).unwrap_err();
        assert_eq!((e.field, e.conflict), ("id", true));
        assert!(e.reason.contains("degraded (1 of 2"), "{e}");
        let mut alone = st();
        alone.nodes.truncate(1);
        let e = switchover_target(&alone, None).unwrap_err();
        assert_eq!((e.field, e.conflict), ("to", true));
    }

    #[test]
    fn scale_in_stops_tasks_not_running_first_then_the_greatest_ids() {
        let t = |id: &str, running| JobTask {
            id: id.into(),
            running,
        };
        let tasks = [
            t("j.1", true),
            t("j.2", true),
            t("j.3", true),
            t("j.4", false),
        ];
        assert_eq!(scale_in_victims(&tasks, 3), ["j.4"]);
        assert_eq!(scale_in_victims(&tasks, 2), ["j.4", "j.3"]);
        assert_eq!(scale_in_victims(&tasks, 4), Vec::<String>::new());
        // Ids compare as strings, as the masters compare them.
        let tasks = [t("j.10", true), t("j.9", true)];
        assert_eq!(scale_in_victims(&tasks, 1), ["j.9"]);
        let s = st();
        assert_eq!(
            keeper(&s, &["j.3".into()]).map(|n| n.task.as_str()),
            Some("j.2")
        );
        assert_eq!(keeper(&s, &["j.2".into(), "j.3".into()]), None);
    }

    #[test]
    fn a_rebuild_takes_an_answering_non_primary_and_names_the_field_otherwise() {
        let mut s = st();
        assert_eq!(rebuild_target(&s, "j.2").unwrap().task, "j.2");
        let e = rebuild_target(&s, "j.1").unwrap_err();
        assert_eq!((e.field, e.conflict), ("task", true));
        let e = rebuild_target(&s, "j.9").unwrap_err();
        assert_eq!((e.field, e.missing), ("task", true));
        s.nodes[2].role = "unreachable".into();
        assert!(rebuild_target(&s, "j.3").unwrap_err().conflict);
        s.nodes[2].role = "diverged".into();
        assert_eq!(rebuild_target(&s, "j.3").unwrap().task, "j.3");
        s.nodes[0].role = "unreachable".into();
        assert_eq!(rebuild_target(&s, "j.3").unwrap_err().field, "id");
    }
}
