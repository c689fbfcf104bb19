//! A job's `waiting` text, as the scheduler writes it (see
//! `ocean-scheduler-policies`' `explain.rs`), read back into parts the job
//! page can show as a table: how many agents fit of how many, and which
//! check (status, executor, constraint, resource, ports) turned how many
//! away; or which quota it would exceed. Text in any other shape is shown
//! as it is: the scheduler is not changed for the dashboard.

/// What kind of check turned agents away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Status,
    Executor,
    Constraint,
    Resource,
    Ports,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Status => "status",
            Kind::Executor => "executor",
            Kind::Constraint => "constraint",
            Kind::Resource => "resource",
            Kind::Ports => "ports",
        }
    }
}

/// One reason and how many agents it blocked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    pub kind: Kind,
    pub reason: String,
    pub hosts: u64,
}

/// The waiting text in parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waiting {
    /// No agent could take a task.
    NoFit {
        fit: u64,
        total: u64,
        blocked: Vec<Blocked>,
        preemption_failed: bool,
    },
    /// A quota would be exceeded.
    OverQuota {
        node: String,
        resource: String,
        used: String,
        requested: String,
        limit: String,
    },
    /// Anything else (back-off holds, invalid requests), as written.
    Text(String),
}

fn kind_of(reason: &str) -> Kind {
    match reason {
        "not online" => Kind::Status,
        "insufficient cpus" | "insufficient mem" | "insufficient disk" => Kind::Resource,
        "fixed port unavailable" | "insufficient ports" => Kind::Ports,
        r if r.ends_with(" unavailable") => Kind::Executor,
        _ => Kind::Constraint,
    }
}

/// `0 of 10 agents fit: 9 insufficient mem, 1 hostname:UNIQUE[; no lower-priority tasks to preempt]`.
fn no_fit(text: &str) -> Option<Waiting> {
    let (head, preemption_failed) = match text.strip_suffix("; no lower-priority tasks to preempt")
    {
        Some(h) => (h, true),
        None => (text, false),
    };
    let (counts, rest) = match head.split_once(": ") {
        Some((c, r)) => (c, Some(r)),
        None => (head, None),
    };
    let counts = counts.strip_suffix(" agents fit")?;
    let (fit, total) = counts.split_once(" of ")?;
    let (fit, total) = (fit.parse().ok()?, total.parse().ok()?);
    let mut blocked = Vec::new();
    for part in rest.into_iter().flat_map(|r| r.split(", ")) {
        let (n, reason) = part.split_once(' ')?;
        blocked.push(Blocked {
            kind: kind_of(reason),
            reason: reason.to_string(),
            hosts: n.parse().ok()?,
        });
    }
    Some(Waiting::NoFit {
        fit,
        total,
        blocked,
        preemption_failed,
    })
}

/// `over quota NODE: cpus used 1.5 + requested 1 > limit 2`.
fn over_quota(text: &str) -> Option<Waiting> {
    let rest = text.strip_prefix("over quota ")?;
    let (node, rest) = rest.split_once(": ")?;
    let (resource, rest) = rest.split_once(" used ")?;
    let (used, rest) = rest.split_once(" + requested ")?;
    let (requested, limit) = rest.split_once(" > limit ")?;
    Some(Waiting::OverQuota {
        node: node.to_string(),
        resource: resource.to_string(),
        used: used.to_string(),
        requested: requested.to_string(),
        limit: limit.to_string(),
    })
}

/// The reconciler's `N task(s) waiting: ` before the scheduler's
/// explanation; the count is shown with the whole text beside the state.
fn explanation(text: &str) -> &str {
    text.split_once(" task(s) waiting: ")
        .filter(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .map_or(text, |(_, why)| why)
}

/// Reads the waiting text; falls back to the text itself.
pub fn parse(text: &str) -> Waiting {
    let why = explanation(text);
    no_fit(why)
        .or_else(|| over_quota(why))
        .unwrap_or_else(|| Waiting::Text(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reconcilers_count_before_the_explanation_is_read_past() {
        let w = parse("3 task(s) waiting: 0 of 1 agents fit: 1 insufficient mem");
        let Waiting::NoFit { total, blocked, .. } = w else {
            panic!("not parsed: {w:?}");
        };
        assert_eq!(total, 1);
        assert_eq!(blocked[0].kind, Kind::Resource);
        assert!(matches!(
            parse("1 task(s) waiting: over quota pdl.x: cpus used 1 + requested 1 > limit 1"),
            Waiting::OverQuota { .. }
        ));
        // Only a count is read past; other text stays whole.
        assert_eq!(
            parse("some task(s) waiting: back-off"),
            Waiting::Text("some task(s) waiting: back-off".into())
        );
    }

    #[test]
    fn a_no_fit_explanation_in_parts() {
        let w = parse("0 of 10000 agents fit: 9000 insufficient mem, 800 hostname:UNIQUE, 150 docker unavailable, 50 not online; no lower-priority tasks to preempt");
        let Waiting::NoFit {
            fit,
            total,
            blocked,
            preemption_failed,
        } = w
        else {
            panic!("not parsed: {w:?}");
        };
        assert_eq!((fit, total, preemption_failed), (0, 10000, true));
        let got: Vec<_> = blocked
            .iter()
            .map(|b| (b.kind, b.reason.as_str(), b.hosts))
            .collect();
        assert_eq!(
            got,
            [
                (Kind::Resource, "insufficient mem", 9000),
                (Kind::Constraint, "hostname:UNIQUE", 800),
                (Kind::Executor, "docker unavailable", 150),
                (Kind::Status, "not online", 50),
            ]
        );
        assert_eq!(
            parse("0 of 0 agents fit"),
            Waiting::NoFit {
                fit: 0,
                total: 0,
                blocked: vec![],
                preemption_failed: false
            }
        );
    }

    #[test]
    fn a_quota_and_other_text() {
        assert_eq!(
            parse("over quota cop.x_owt.y_pdl.z: cpus used 119.5 + requested 1 > limit 120"),
            Waiting::OverQuota {
                node: "cop.x_owt.y_pdl.z".into(),
                resource: "cpus".into(),
                used: "119.5".into(),
                requested: "1".into(),
                limit: "120".into(),
            }
        );
        let t = "no agent has 64 free cpus (2 agents checked)";
        assert_eq!(parse(t), Waiting::Text(t.into()));
        assert_eq!(
            parse("3 of x agents fit"),
            Waiting::Text("3 of x agents fit".into())
        );
    }
}
