//! The service tree as the dashboard shows it: a node's children, each
//! with its jobs, live tasks and the resources they hold, plus the quota
//! and fair-share weight the scheduler settings give it. Pure: it is
//! handed the jobs and their task counts, so a parent's numbers are the
//! sums of its children's by construction, and tested as such.

use ocean_master::SchedulerSettings;

use crate::summary::Counts;

/// What the tasks under a node hold.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    pub jobs: usize,
    /// Live tasks.
    pub tasks: usize,
    pub running: usize,
    pub cpus: f64,
    /// MiB.
    pub mem: u64,
}

impl Totals {
    fn add(&mut self, c: &Counts) {
        self.jobs += 1;
        self.tasks += c.live;
        self.running += c.running;
        self.cpus += c.cpus;
        self.mem += c.mem;
    }
}

/// A quota on a node, from the scheduler settings.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Quota {
    pub cpus: Option<f64>,
    pub mem: Option<u64>,
}

/// One child of the node shown.
#[derive(Debug, Clone, PartialEq)]
pub struct Child {
    /// The child's full path (`cop.a_owt.b`), or the job id.
    pub node: String,
    /// Its own piece (`owt.b`).
    pub piece: String,
    /// True when the child is a whole job id (links to the job page).
    pub is_job: bool,
    pub totals: Totals,
    pub quota: Option<Quota>,
    /// The product line's weight (pdl nodes and below).
    pub weight: Option<f64>,
}

/// A node, its own numbers and its children's.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeView {
    pub node: String,
    /// `(path, piece)` from the root down to the node.
    pub crumbs: Vec<(String, String)>,
    pub totals: Totals,
    pub quota: Option<Quota>,
    pub weight: Option<f64>,
    pub children: Vec<Child>,
}

/// The pieces of a node path (`""` is the root).
fn pieces(node: &str) -> Vec<&str> {
    if node.is_empty() {
        Vec::new()
    } else {
        node.split('_').collect()
    }
}

/// The quota set on exactly `node`.
pub fn quota(s: &SchedulerSettings, node: &str) -> Option<Quota> {
    s.quotas.iter().find(|q| q.node == node).map(|q| Quota {
        cpus: q.cpus,
        mem: q.mem,
    })
}

/// The fair-share weight of the product line `node` lies in (or is):
/// `None` above product lines; unnamed product lines weigh 1.
pub fn weight(s: &SchedulerSettings, node: &str) -> Option<f64> {
    let p = pieces(node);
    if p.len() < 3 || !p[2].starts_with("pdl.") {
        return None;
    }
    let pdl = p[..3].join("_");
    Some(s.pdl_weights.get(&pdl).copied().unwrap_or(1.0))
}

/// The product line (`cop.c_owt.o_pdl.p`) of a job id, if it has one.
pub fn pdl_of(job: &str) -> Option<String> {
    let p = pieces(job);
    (p.len() >= 3
        && p[0].starts_with("cop.")
        && p[1].starts_with("owt.")
        && p[2].starts_with("pdl."))
    .then(|| p[..3].join("_"))
}

/// `node` and its children over `jobs` (id and its tasks' counts); jobs
/// not under `node` are skipped. `node` is a rooted path (`cop...`).
pub fn view<'a>(
    node: &str,
    jobs: impl IntoIterator<Item = (&'a str, Counts)>,
    settings: &SchedulerSettings,
) -> NodeView {
    let own = pieces(node);
    let mut totals = Totals::default();
    let mut children: Vec<Child> = Vec::new();
    for (id, counts) in jobs {
        let p: Vec<&str> = id.split('_').collect();
        if p.len() < own.len() || p[..own.len()] != own[..] {
            continue;
        }
        totals.add(&counts);
        if p.len() == own.len() {
            // The node is this job itself: no children.
            continue;
        }
        let child = p[..=own.len()].join("_");
        let is_job = p.len() == own.len() + 1;
        match children.iter_mut().find(|c| c.node == child) {
            Some(c) => c.totals.add(&counts),
            None => {
                let mut t = Totals::default();
                t.add(&counts);
                children.push(Child {
                    quota: quota(settings, &child),
                    weight: weight(settings, &child),
                    piece: p[own.len()].to_string(),
                    node: child,
                    is_job,
                    totals: t,
                });
            }
        }
    }
    children.sort_by(|a, b| a.node.cmp(&b.node));
    let crumbs = (1..=own.len())
        .map(|n| (own[..n].join("_"), own[n - 1].to_string()))
        .collect();
    NodeView {
        node: node.to_string(),
        crumbs,
        totals,
        quota: quota(settings, node),
        weight: weight(settings, node),
        children,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocean_master::QuotaSetting;

    fn c(live: usize, cpus: f64, mem: u64) -> Counts {
        Counts {
            live,
            running: live,
            cpus,
            mem,
            disk: 0,
        }
    }

    const A: &str = "cop.x_owt.a_pdl.web_service.s1_job.j1_cluster.c3";
    const B: &str = "cop.x_owt.a_pdl.web_service.s2_job.j2_cluster.c3";
    const C: &str = "cop.x_owt.b_pdl.db_service.s3_job.j3_cluster.c3";

    fn settings() -> SchedulerSettings {
        SchedulerSettings {
            pdl_weights: [("cop.x_owt.a_pdl.web".to_string(), 3.0)].into(),
            quotas: vec![QuotaSetting {
                node: "cop.x_owt.a_pdl.web".into(),
                cpus: Some(8.0),
                mem: None,
            }],
        }
    }

    fn jobs() -> Vec<(&'static str, Counts)> {
        vec![(A, c(2, 0.5, 128)), (B, c(1, 1.0, 256)), (C, c(3, 3.0, 64))]
    }

    #[test]
    fn parents_are_the_sums_of_their_children() {
        let s = settings();
        for node in [
            "",
            "cop.x",
            "cop.x_owt.a",
            "cop.x_owt.a_pdl.web",
            "cop.x_owt.a_pdl.web_service.s1",
        ] {
            let v = view(node, jobs(), &s);
            let sum = v.children.iter().fold(Totals::default(), |mut t, ch| {
                t.jobs += ch.totals.jobs;
                t.tasks += ch.totals.tasks;
                t.running += ch.totals.running;
                t.cpus += ch.totals.cpus;
                t.mem += ch.totals.mem;
                t
            });
            assert_eq!(v.totals, sum, "{node}");
        }
        let root = view("", jobs(), &s);
        assert_eq!(root.totals.tasks, 6);
        assert_eq!(root.children.len(), 1);
    }

    #[test]
    fn children_are_the_next_piece_and_jobs_end_the_path() {
        let s = settings();
        let v = view("cop.x_owt.a", jobs(), &s);
        assert_eq!(v.children.len(), 1);
        assert_eq!(v.children[0].node, "cop.x_owt.a_pdl.web");
        assert_eq!(v.children[0].weight, Some(3.0));
        assert_eq!(v.children[0].quota.and_then(|q| q.cpus), Some(8.0));
        assert_eq!(v.crumbs.len(), 2);
        let j = view("cop.x_owt.a_pdl.web_service.s1_job.j1", jobs(), &s);
        assert_eq!(j.children.len(), 1);
        assert!(j.children[0].is_job);
        assert_eq!(j.children[0].node, A);
        assert_eq!(j.weight, Some(3.0));
        // `pdl.we` is not `pdl.web`.
        assert_eq!(view("cop.x_owt.a_pdl.we", jobs(), &s).totals.jobs, 0);
        assert_eq!(weight(&s, "cop.x_owt.b_pdl.db"), Some(1.0));
        assert_eq!(weight(&s, "cop.x"), None);
    }

    #[test]
    fn a_jobs_product_line() {
        assert_eq!(pdl_of(A).as_deref(), Some("cop.x_owt.a_pdl.web"));
        assert_eq!(pdl_of("cop.x"), None);
    }
}
