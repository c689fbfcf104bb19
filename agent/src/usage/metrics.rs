//! `GET /metrics` on the agent: the newest sample of every task in the
//! Prometheus text format, each series labelled with the task, its job,
//! the agent and the job's service-tree tags (`cop`, `owt`, `pdl`,
//! `servicegroup`, `service`, `jobgroup`, `cluster`), so a query can sum
//! by any node of the tree.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use ocean_proto::agent::{TaskUsage, UsageReport};

use super::{job_of, Latest};

/// The tags of a service-tree id that become labels (`job` is its own).
const TREE_LABELS: [&str; 6] = ["cop", "owt", "pdl", "servicegroup", "service", "cluster"];

/// One metric: name, type, help, and how to read it from a task's usage.
struct Metric {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    value: fn(&TaskUsage) -> Option<f64>,
}

const METRICS: &[Metric] = &[
    Metric {
        name: "ocean_task_cpu_cores",
        kind: "gauge",
        help: "Cores the task used on average over the last sample interval.",
        value: |u| u.cpu_cores,
    },
    Metric {
        name: "ocean_task_cpu_seconds_total",
        kind: "counter",
        help: "CPU time the task used.",
        value: |u| Some(u.cpu_usage_ns as f64 / 1e9),
    },
    Metric {
        name: "ocean_task_cpu_throttled_seconds_total",
        kind: "counter",
        help: "Time the task's cpu quota held it back.",
        value: |u| Some(u.cpu_throttled_ns as f64 / 1e9),
    },
    Metric {
        name: "ocean_task_cpu_throttled_periods_total",
        kind: "counter",
        help: "Periods in which the task's cpu quota held it back.",
        value: |u| Some(u.cpu_throttled_periods as f64),
    },
    Metric {
        name: "ocean_task_cpu_limit_cores",
        kind: "gauge",
        help: "The task's cpu quota in cores (0 = none).",
        value: |u| Some(u.cpus_limit),
    },
    Metric {
        name: "ocean_task_memory_rss_bytes",
        kind: "gauge",
        help: "Anonymous memory of the task's processes.",
        value: |u| Some(u.memory_rss_bytes as f64),
    },
    Metric {
        name: "ocean_task_memory_cache_bytes",
        kind: "gauge",
        help: "Page cache charged to the task.",
        value: |u| Some(u.memory_cache_bytes as f64),
    },
    Metric {
        name: "ocean_task_memory_peak_bytes",
        kind: "gauge",
        help: "The highest memory charge seen for the task.",
        value: |u| Some(u.memory_peak_bytes as f64),
    },
    Metric {
        name: "ocean_task_memory_limit_bytes",
        kind: "gauge",
        help: "The task's memory limit (0 = unlimited).",
        value: |u| Some(u.memory_limit_bytes as f64),
    },
    Metric {
        name: "ocean_task_oom_kills_total",
        kind: "counter",
        help: "Processes of the task killed by the OOM killer.",
        value: |u| Some(u.oom_kills as f64),
    },
    Metric {
        name: "ocean_task_pids",
        kind: "gauge",
        help: "Processes and threads of the task.",
        value: |u| Some(u.pids as f64),
    },
    Metric {
        name: "ocean_task_disk_bytes",
        kind: "gauge",
        help: "Bytes in the task's sandbox.",
        value: |u| Some(u.disk_bytes as f64),
    },
];

/// The router serving `/metrics` for `agent`.
pub fn router(latest: Arc<Latest>, agent: String) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state((latest, Arc::<str>::from(agent)))
}

async fn metrics(State((latest, agent)): State<(Arc<Latest>, Arc<str>)>) -> impl IntoResponse {
    let body = match latest.get() {
        Some(report) => render(&report, &agent),
        None => render(&UsageReport::default(), &agent),
    };
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        body,
    )
}

/// The text exposition of `report`.
pub fn render(report: &UsageReport, agent: &str) -> String {
    let labels: Vec<String> = report
        .tasks
        .iter()
        .map(|t| task_labels(&t.task_id, agent))
        .collect();
    let mut out = String::with_capacity(256 + report.tasks.len() * METRICS.len() * 200);
    for m in METRICS {
        let _ = writeln!(out, "# HELP {} {}", m.name, m.help);
        let _ = writeln!(out, "# TYPE {} {}", m.name, m.kind);
        for (task, labels) in report.tasks.iter().zip(&labels) {
            // No series rather than a made-up 0 (a task's first sample has no cpu rate).
            if let Some(v) = (m.value)(task) {
                let _ = writeln!(out, "{}{{{labels}}} {v}", m.name);
            }
        }
    }
    let _ = writeln!(
        out,
        "# HELP ocean_agent_usage_tasks Tasks in the agent's last usage sample.\n\
         # TYPE ocean_agent_usage_tasks gauge\n\
         ocean_agent_usage_tasks{{agent=\"{}\"}} {}",
        escape(agent),
        report.tasks.len()
    );
    out
}

/// `task="…",job="…",agent="…"` and one label per service-tree tag the
/// job id carries.
fn task_labels(task: &str, agent: &str) -> String {
    let job = job_of(task);
    let mut out = format!(
        "task=\"{}\",job=\"{}\",agent=\"{}\"",
        escape(task),
        escape(job),
        escape(agent)
    );
    for (tag, value) in tree_tags(job) {
        let _ = write!(out, ",{tag}=\"{}\"", escape(value));
    }
    out
}

/// The `tag.value` pieces of a service-tree id that are label-worthy.
fn tree_tags(job: &str) -> impl Iterator<Item = (&str, &str)> {
    job.split('_').filter_map(|piece| {
        let (tag, value) = piece.split_once('.')?;
        TREE_LABELS.contains(&tag).then_some((tag, value))
    })
}

/// Label values escape backslash, quote and newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_carry_task_job_agent_and_tree_labels() {
        let report = UsageReport {
            timestamp_ms: 1,
            interval_ms: 5000,
            tasks: vec![TaskUsage {
                task_id: "cop.c_owt.o_pdl.p_service.s_job.j_cluster.dev.00000000010000a".into(),
                cpu_cores: Some(0.5),
                memory_rss_bytes: 1 << 20,
                ..Default::default()
            }],
        };
        let text = render(&report, "agent-1");
        let labels = "task=\"cop.c_owt.o_pdl.p_service.s_job.j_cluster.dev.00000000010000a\",\
                      job=\"cop.c_owt.o_pdl.p_service.s_job.j_cluster.dev\",agent=\"agent-1\",\
                      cop=\"c\",owt=\"o\",pdl=\"p\",service=\"s\",cluster=\"dev\"";
        assert!(
            text.contains(&format!(
                "ocean_task_memory_rss_bytes{{{labels}}} 1048576\n"
            )),
            "{text}"
        );
        assert!(text.contains(&format!("ocean_task_cpu_cores{{{labels}}} 0.5\n")));
        assert!(text.contains("# TYPE ocean_task_oom_kills_total counter\n"));
        assert!(text.contains("ocean_agent_usage_tasks{agent=\"agent-1\"} 1\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
