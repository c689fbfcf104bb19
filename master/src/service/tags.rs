//! Tag queries over agents and tasks (`GET /v1/agents?q=`,
//! `GET /v1/tasks?q=`; the language is `ocean_spec::tag_query`'s).
//!
//! An agent carries its own tags (`kernel::state::tree::agent_tags`: its
//! tag-named attributes, host name and status now); a task carries its
//! job id's tags plus its agent's, so `pdl.im idc.c3` selects the im
//! product line's tasks in c3.

use ocean_proto::internal::{Agent, Task};
use ocean_spec::tag_query::TagQuery;
use ocean_spec::tree::id_pieces;

use super::invalid;
use crate::error::Result;
use crate::kernel::state::tree::agent_tags;

/// Parses `q` (`None` or blank: no filter), the error naming `q`.
pub fn parse_query(q: Option<&str>) -> Result<Option<TagQuery>> {
    let Some(q) = q.filter(|q| !q.trim().is_empty()) else {
        return Ok(None);
    };
    TagQuery::parse(q)
        .map(Some)
        .map_err(|e| invalid(e.field, e.reason))
}

/// Whether `agent` satisfies `q`.
pub fn agent_matches(q: &TagQuery, agent: &Agent) -> bool {
    let tags = agent_tags(agent);
    q.matches(|t, v| tags.iter().any(|(k, x)| *k == t && *x == v))
}

/// Whether `task` (on `agent`, if the state still knows it) satisfies `q`.
pub fn task_matches(q: &TagQuery, task: &Task, agent: Option<&Agent>) -> bool {
    let tags = agent.map(agent_tags).unwrap_or_default();
    q.matches(|t, v| {
        id_pieces(&task.job_id).any(|p| p.split_once('.') == Some((t, v)))
            || tags.iter().any(|(k, x)| *k == t && *x == v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_matches_by_its_job_and_its_agent() {
        let agent = Agent {
            id: "h1".into(),
            attributes: [("idc".to_string(), "c3".to_string())].into(),
            ..Default::default()
        };
        let task = Task {
            id: "cop.x_owt.y_pdl.im_service.s_job.j_cluster.c3.0001".into(),
            job_id: "cop.x_owt.y_pdl.im_service.s_job.j_cluster.c3".into(),
            agent_id: "h1".into(),
            ..Default::default()
        };
        let q = |s: &str| parse_query(Some(s)).unwrap().unwrap();
        assert!(task_matches(
            &q("pdl.im idc.c3 cluster.c3"),
            &task,
            Some(&agent)
        ));
        assert!(!task_matches(&q("pdl.im idc.c4"), &task, Some(&agent)));
        assert!(task_matches(&q("!status.offline"), &task, Some(&agent)));
        assert!(!task_matches(&q("idc.c3"), &task, None));
        assert!(agent_matches(&q("idc.c3,c4 status.online"), &agent));
        assert!(parse_query(Some("  ")).unwrap().is_none());
        match parse_query(Some("idd.c3")) {
            Err(crate::error::Error::Invalid { field, .. }) => assert_eq!(field, "q"),
            other => panic!("{other:?}"),
        }
    }
}
