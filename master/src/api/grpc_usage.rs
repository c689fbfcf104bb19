//! `ocean.v1.OceanUsage`: usage, utilisation reports and alerts through
//! gRPC, the same answers as REST.
//!
//! Alerts are thin adapters over the service, as every `OceanApi` call is.
//! Usage and the utilisation report are the REST routes' answers, got by
//! calling the REST router in process (the caller's scope and token go
//! with it): their checks, their relay to the leader from a follower and
//! their builders live in one place, and the JSON is mapped field by field.

use serde_json::Value;
use tonic::{Request, Response, Status};
use tower::ServiceExt;

use super::convert::{self, read_options};
use super::error::to_status;
use crate::alerts::record::{AlertRecord, Rule, RuleRequest};
use crate::master::Master;
use crate::usage::lines::{to_csv, LineRow, LinesReport};
use ocean_proto::v1::ocean_usage_server::{OceanUsage, OceanUsageServer};
use ocean_proto::v1::{
    Alert, AlertRule, AlertRuleRef, AlertRuleRequest, ListAlertRulesRequest,
    ListAlertRulesResponse, ListAlertsRequest, ListAlertsResponse, UsageLine, UsagePoint,
    UsageReportRequest, UsageReportResponse, UsageRequest, UsageResponse, UsageRow, UsageSeries,
    WriteResponse,
};

type Answer<T> = Result<Response<T>, Status>;

/// The service, for the gRPC server.
#[derive(Debug, Clone)]
pub struct Usage(pub Master);

impl Usage {
    /// The tonic server of `master`'s usage and alerts.
    pub fn server(master: Master) -> OceanUsageServer<Usage> {
        OceanUsageServer::new(Usage(master)).max_encoding_message_size(usize::MAX)
    }

    /// `GET path?query` on the REST router, as the caller: the body of a
    /// 2xx answer, else a status carrying the REST error.
    async fn rest<T>(
        &self,
        req: &Request<T>,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<u8>, Status> {
        let query = serde_urlencoded::to_string(query)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let mut http = axum::http::Request::get(format!("{path}?{query}"));
        if let Some(v) = req.metadata().get("authorization") {
            http = http.header(axum::http::header::AUTHORIZATION, v.as_bytes());
        }
        let http = http
            .body(axum::body::Body::empty())
            .map_err(|e| Status::internal(e.to_string()))?;
        let answer = super::http::router(self.0.clone())
            .oneshot(http)
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        let status = answer.status();
        let body = axum::body::to_bytes(answer.into_body(), usize::MAX)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        if status.is_success() {
            return Ok(body.to_vec());
        }
        let message = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        Err(match status.as_u16() {
            400 | 422 => Status::invalid_argument(message),
            401 => Status::unauthenticated(message),
            403 => Status::permission_denied(message),
            404 => Status::not_found(message),
            503 => Status::unavailable(message),
            504 => Status::deadline_exceeded(message),
            _ => Status::internal(message),
        })
    }
}

fn json(body: &[u8]) -> Result<Value, Status> {
    serde_json::from_slice(body).map_err(|e| Status::internal(format!("usage answer: {e}")))
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn usage_row(r: &Value) -> UsageRow {
    let (a, used, series) = (&r["allocated"], &r["used"], &r["series"]);
    UsageRow {
        id: s(&r["id"]),
        parent: s(&r["parent"]),
        tasks: u(&r["tasks"]),
        allocated_cpus: f(&a["cpus"]),
        allocated_mem_mib: u(&a["mem_mib"]),
        allocated_disk_mib: u(&a["disk_mib"]),
        cpu_cores: f(&used["cpu_cores"]),
        cpu_cores_peak: f(&used["cpu_cores_peak"]),
        memory_rss_bytes: u(&used["memory_rss_bytes"]),
        memory_rss_peak_bytes: u(&used["memory_rss_peak_bytes"]),
        memory_cache_bytes: u(&used["memory_cache_bytes"]),
        memory_peak_bytes: u(&used["memory_peak_bytes"]),
        pids: u(&used["pids"]),
        disk_bytes: u(&used["disk_bytes"]),
        oom_kills: u(&used["oom_kills"]),
        cpu_throttled_ns: u(&used["cpu_throttled_ns"]),
        sampled_tasks: u(&used["sampled_tasks"]),
        series: series.is_object().then(|| UsageSeries {
            points: u(&series["points"]),
            cpu_cores: f(&series["cpu_cores"]),
            cpu_cores_peak: f(&series["cpu_cores_peak"]),
            memory_rss_bytes: u(&series["memory_rss_bytes"]),
            memory_rss_peak_bytes: u(&series["memory_rss_peak_bytes"]),
            memory_cache_bytes: u(&series["memory_cache_bytes"]),
            history: series["history"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| UsagePoint {
                    at_ms: u(&p["at_ms"]),
                    cpu_cores: f(&p["cpu_cores"]),
                    memory_rss_bytes: u(&p["memory_rss_bytes"]),
                    memory_cache_bytes: u(&p["memory_cache_bytes"]),
                })
                .collect(),
        }),
    }
}

fn rows(v: &Value) -> Vec<UsageRow> {
    v.as_array().into_iter().flatten().map(usage_row).collect()
}

fn usage_line(l: &LineRow) -> UsageLine {
    UsageLine {
        pdl: l.pdl.clone(),
        tasks: l.tasks,
        sampled_tasks: l.sampled_tasks,
        allocated_cpu_cores: l.allocated.cpu_cores,
        allocated_memory_mib: l.allocated.memory_mib,
        used_cpu_cores: l.used.cpu_cores,
        used_memory_mib: l.used.memory_mib,
        peak_cpu_cores: l.peak.cpu_cores,
        peak_memory_mib: l.peak.memory_mib,
        idle_cpu_share: l.idle_share.cpu,
        idle_memory_share: l.idle_share.memory,
        concurrent_peak_cpu_cores: l.concurrent_peak.map(|a| a.cpu_cores),
        concurrent_peak_memory_mib: l.concurrent_peak.map(|a| a.memory_mib),
        concurrent_peak_seconds: l.concurrent_peak_seconds,
    }
}

fn rule(r: Rule) -> AlertRule {
    AlertRule {
        id: r.id,
        node: r.node,
        kind: r.kind.as_str().to_string(),
        for_seconds: r.for_seconds,
        max_restarts: r.max_restarts,
        window_minutes: r.window_minutes,
        percent: r.percent,
        webhook: r.webhook,
        description: r.description,
        created_ms: r.created_ms,
    }
}

fn alert(a: AlertRecord) -> Alert {
    Alert {
        id: a.id,
        rule: a.rule,
        kind: a.kind.as_str().to_string(),
        node: a.node,
        subject: a.subject,
        state: a.state.as_str().to_string(),
        message: a.message,
        since_ms: a.since_ms,
        fired_ms: a.fired_ms,
        resolved_ms: a.resolved_ms,
        webhook: a.webhook,
        delivered: a.delivered,
    }
}

/// Empty strings are left out of a REST query (its defaults apply).
fn query<'a>(pairs: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .copied()
        .collect()
}

#[tonic::async_trait]
impl OceanUsage for Usage {
    async fn get_usage(&self, req: Request<UsageRequest>) -> Answer<UsageResponse> {
        let r = req.get_ref();
        let history = if r.history { "true" } else { "" };
        let q = query(&[
            ("node", r.node.as_str()),
            ("window", r.window.as_str()),
            ("history", history),
        ]);
        let v = json(&self.rest(&req, "/v1/usage", &q).await?)?;
        Ok(Response::new(UsageResponse {
            node: s(&v["node"]),
            window_seconds: u(&v["window_seconds"]),
            at_ms: u(&v["at_ms"]),
            leader: u(&v["leader"]),
            total: Some(usage_row(&v["total"])),
            nodes: rows(&v["nodes"]),
            jobs: rows(&v["jobs"]),
            tasks: rows(&v["tasks"]),
            agents: rows(&v["agents"]),
        }))
    }

    async fn get_usage_report(
        &self,
        req: Request<UsageReportRequest>,
    ) -> Answer<UsageReportResponse> {
        let r = req.get_ref();
        let q = query(&[("node", r.node.as_str()), ("window", r.window.as_str())]);
        let body = self.rest(&req, "/v1/usage/report", &q).await?;
        let r: LinesReport = serde_json::from_slice(&body)
            .map_err(|e| Status::internal(format!("usage report answer: {e}")))?;
        // The CSV of these same rows, from the REST route's own writer.
        let csv = to_csv(&r);
        Ok(Response::new(UsageReportResponse {
            node: r.node,
            window_seconds: r.window_seconds,
            at_ms: r.at_ms,
            leader: r.leader,
            lines: r.lines.iter().map(usage_line).collect(),
            total: Some(usage_line(&r.total)),
            csv,
        }))
    }

    async fn create_alert_rule(&self, req: Request<AlertRuleRequest>) -> Answer<AlertRule> {
        let r = req.into_inner();
        let made = self
            .0
            .service()
            .alert_rule_create(RuleRequest {
                id: r.id,
                node: r.node,
                kind: r.kind,
                for_seconds: r.for_seconds,
                max_restarts: r.max_restarts,
                window_minutes: r.window_minutes,
                percent: r.percent,
                webhook: r.webhook,
                description: r.description,
            })
            .await
            .map_err(to_status)?;
        Ok(Response::new(rule(made)))
    }

    async fn list_alert_rules(
        &self,
        req: Request<ListAlertRulesRequest>,
    ) -> Answer<ListAlertRulesResponse> {
        let r = req.into_inner();
        let list = self
            .0
            .service()
            .alert_rules(&r.node, read_options(r.read))
            .await
            .map_err(to_status)?;
        Ok(Response::new(ListAlertRulesResponse {
            version: list.version,
            rules: list.rules.into_iter().map(rule).collect(),
        }))
    }

    async fn get_alert_rule(&self, req: Request<AlertRuleRef>) -> Answer<AlertRule> {
        let r = req.into_inner();
        let got = self
            .0
            .service()
            .alert_rule(&r.id, read_options(r.read))
            .await
            .map_err(to_status)?;
        Ok(Response::new(rule(got)))
    }

    async fn delete_alert_rule(&self, req: Request<AlertRuleRef>) -> Answer<WriteResponse> {
        let r = req.into_inner();
        let w = self
            .0
            .service()
            .alert_rule_delete(&r.id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(convert::write(w)))
    }

    async fn list_alerts(&self, req: Request<ListAlertsRequest>) -> Answer<ListAlertsResponse> {
        let r = req.into_inner();
        let state = (!r.state.is_empty()).then_some(r.state.as_str());
        let list = self
            .0
            .service()
            .alerts(state, read_options(r.read))
            .await
            .map_err(to_status)?;
        Ok(Response::new(ListAlertsResponse {
            version: list.version,
            alerts: list.alerts.into_iter().map(alert).collect(),
        }))
    }
}
