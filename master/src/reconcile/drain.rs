//! Moving a job's tasks off agents whose operators set them `draining` or
//! `offline`, without taking the job below its instance count. Pure.
//!
//! ```text
//!  tasks ─┬─ on agents that stay ─────────── count towards `instances`
//!         └─ on leaving agents ─┬─ not serving (not RUNNING, or unhealthy): stop now
//!                               └─ serving: stop one for each serving task
//!                                  the job has beyond `instances`
//!  missing on the agents that stay ─► start (placement never picks a leaving agent)
//! ```
//! So replacements start first, and each old task stops only once a
//! replacement serves in its place. A job whose replacements cannot be
//! placed keeps its tasks where they are and waits, saying why.

use std::collections::HashSet;

use ocean_proto::internal::Task;

use super::desired::Decision;
use super::job::JobView;
use crate::kernel::state::{is_live, RUNNING};

/// Whether a task serves: it runs and its health checks (if any) have not
/// found it unhealthy.
fn serving(t: &Task) -> bool {
    t.state == RUNNING && t.healthy != Some(false)
}

/// The decision for `job` when some of its tasks are on `leaving` agents;
/// `None` when none are (the ordinary decision applies).
pub fn decide(job: &JobView, tasks: &[&Task], leaving: &HashSet<String>) -> Option<Decision> {
    let want = job.spec.instances as usize;
    let live: Vec<&Task> = tasks.iter().copied().filter(|t| is_live(t)).collect();
    let (moving, staying): (Vec<&Task>, Vec<&Task>) =
        live.iter().partition(|t| leaving.contains(&t.agent_id));
    if moving.is_empty() {
        return None;
    }
    let mut d = Decision {
        start: want.saturating_sub(staying.len()),
        stop: Vec::new(),
    };
    let (busy, idle): (Vec<&Task>, Vec<&Task>) = moving.iter().partition(|t| serving(t));
    d.stop.extend(idle.iter().map(|t| t.id.clone()));
    let serving_total = staying.iter().filter(|t| serving(t)).count() + busy.len();
    let spare = serving_total.saturating_sub(want);
    let mut busy = busy;
    // The newest first: the oldest have been serving longest and are the
    // last to go (ids sort by age).
    busy.sort_by(|a, b| b.id.cmp(&a.id));
    d.stop.extend(busy.iter().take(spare).map(|t| t.id.clone()));
    Some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "cop.c_owt.o_pdl.p_service.s_job.j_cluster.c";

    fn view(instances: u32) -> JobView {
        crate::reconcile::job::test_view(ID, instances, "x")
    }

    fn task(id: &str, agent: &str, state: &str) -> Task {
        Task {
            id: id.into(),
            job_id: ID.into(),
            agent_id: agent.into(),
            state: state.into(),
            ..Default::default()
        }
    }

    fn leaving() -> HashSet<String> {
        ["old".to_string()].into()
    }

    #[test]
    fn nothing_on_leaving_agents_is_not_a_drain() {
        let t = task("t1", "a", RUNNING);
        assert_eq!(decide(&view(1), &[&t], &leaving()), None);
    }

    #[test]
    fn replacements_start_before_anything_stops() {
        let v = view(3);
        let t1 = task("t1", "old", RUNNING);
        let t2 = task("t2", "old", RUNNING);
        let t3 = task("t3", "a", RUNNING);
        // Two of three must move: start two, stop none yet.
        assert_eq!(
            decide(&v, &[&t1, &t2, &t3], &leaving()),
            Some(Decision {
                start: 2,
                stop: vec![]
            })
        );
        // One replacement placed, still starting: nothing more to do.
        let n1 = task("n1", "b", "STAGING");
        let n2 = task("n2", "b", "STAGING");
        assert_eq!(
            decide(&v, &[&t1, &t2, &t3, &n1, &n2], &leaving()),
            Some(Decision::default())
        );
        // One replacement serves: exactly one old task may go.
        let n1 = task("n1", "b", RUNNING);
        let d = decide(&v, &[&t1, &t2, &t3, &n1, &n2], &leaving()).unwrap();
        assert_eq!((d.start, d.stop.len()), (0, 1));
        // Both serve: the rest go.
        let n2 = task("n2", "b", RUNNING);
        let d = decide(&v, &[&t1, &t2, &t3, &n1, &n2], &leaving()).unwrap();
        assert_eq!(d.stop, vec!["t2".to_string(), "t1".into()]);
    }

    #[test]
    fn unhealthy_replacements_do_not_count_and_idle_tasks_go_at_once() {
        let v = view(1);
        let old = task("t1", "old", RUNNING);
        let mut new = task("n1", "b", RUNNING);
        new.healthy = Some(false);
        assert_eq!(
            decide(&v, &[&old, &new], &leaving()),
            Some(Decision::default())
        );
        let staging = task("t2", "old", "STAGING");
        let d = decide(&view(2), &[&old, &staging], &leaving()).unwrap();
        assert_eq!((d.start, d.stop), (2, vec!["t2".to_string()]));
    }

    #[test]
    fn a_job_scaled_to_zero_leaves_at_once() {
        let t = task("t1", "old", RUNNING);
        assert_eq!(
            decide(&view(0), &[&t], &leaving()),
            Some(Decision {
                start: 0,
                stop: vec!["t1".into()]
            })
        );
    }
}
