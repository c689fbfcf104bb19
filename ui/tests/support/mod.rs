//! A real master for the dashboard's tests: raft on RocksDB in a temp dir,
//! a cluster of one, the dashboard and the REST API (with the ELB and
//! databases routes) on one in-process router (no sockets). The leader's
//! controllers are not started: the tests play the reconciler and the
//! agents by committing the same commands they would (placements, status
//! reports), so what a page shows is exactly what the test put in the
//! replicated state.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use ocean_master::kernel::state::{plan_tasks_command, put_agent_command, task_updates_command};
use ocean_master::service::jobs::PutJob;
use ocean_master::startup::Started;
use ocean_master::{Master, MasterConfig, SchedulerSettings};
use ocean_proto::internal::{Agent, Task, TaskPort, TaskUpdate};
use ocean_ui::history::History;
use scraper::{Html, Selector};
use tower::ServiceExt;

/// A started master and the routes a browser would reach.
pub struct Cluster {
    pub master: Master,
    pub app: Router,
    /// The product-line history the pages read (no sampler runs: tests
    /// record samples themselves).
    pub history: Arc<History>,
    started: Option<Started>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// A master that leads a cluster of one, within 10 s.
    pub async fn start() -> Cluster {
        Self::start_with(SchedulerSettings::default()).await
    }

    /// The same, the dashboard given these scheduler settings.
    pub async fn start_with(scheduler: SchedulerSettings) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let any: std::net::SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let mut cfg = MasterConfig::single(1, dir.path().to_path_buf(), any, any);
        // Nothing here survives the test: no need to wait for the disk.
        cfg.raft.fsync = false;
        let started = ocean_master::start(&cfg).await.expect("start master");
        let master = started.master.clone();
        tokio::time::timeout(Duration::from_secs(10), async {
            while master.status().leader != 1 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the master leads within 10 s");
        let history = Arc::new(History::new(Duration::from_secs(15), 240));
        let app = ocean_ui::routes(ocean_ui::UiState {
            master: master.clone(),
            scheduler: Arc::new(scheduler),
            history: history.clone(),
            cache_backups: ocean_ui::state::CacheBackups(Arc::new(
                dir.path().join("redis-backups"),
            )),
        })
        .merge(ocean_master::api::http::router(master.clone()))
        // The ELB framework's REST routes, as `ocean server` mounts them:
        // its page must show what its API shows.
        .merge(ocean_elb::http::router(Arc::new(
            ocean_master::api::in_process::InProcess::new(master.clone()),
        )))
        // And the databases' (`/v1/databases`): the RDS pages must show
        // what it shows.
        .merge(ocean_mysql::api::router(Arc::new(
            ocean_master::api::in_process::InProcess::new(master.clone()),
        )));
        Cluster {
            master,
            app,
            history,
            started: Some(started),
            _dir: dir,
        }
    }

    /// `GET path`: status and body (with the tests' CSRF cookie).
    pub async fn get(&self, path: &str) -> (StatusCode, String) {
        let req = Request::get(path)
            .header(header::COOKIE, format!("ocean_csrf={CSRF}"))
            .body(Body::empty())
            .expect("request");
        self.send(req).await
    }

    /// `POST path` with a form body, as a browser that has the page's
    /// CSRF cookie and puts its token into the form: status, `Location`
    /// and body.
    pub async fn post_form(&self, path: &str, form: &str) -> (StatusCode, Option<String>, String) {
        let body = if form.is_empty() {
            format!("csrf={CSRF}")
        } else {
            format!("{form}&csrf={CSRF}")
        };
        self.post_form_as(path, &body, Some(CSRF)).await
    }

    /// `POST path` with the form as given and this CSRF cookie (if any).
    pub async fn post_form_as(
        &self,
        path: &str,
        form: &str,
        cookie: Option<&str>,
    ) -> (StatusCode, Option<String>, String) {
        let mut req =
            Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, format!("ocean_csrf={c}"));
        }
        let req = req.body(Body::from(form.to_string())).expect("request");
        let resp = self.app.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let location = resp
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        (status, location, body_text(resp.into_body()).await)
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, String) {
        let resp = self.app.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        (status, body_text(resp.into_body()).await)
    }

    /// `GET path` of the REST API as JSON.
    pub async fn api(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        serde_json::from_str(&body).expect("JSON")
    }

    /// The state version this master has applied.
    pub fn version(&self) -> u64 {
        self.master.read(|st| st.version)
    }

    /// Registers an agent as the agent service would.
    pub async fn add_agent(&self, id: &str, hostname: &str, cpus: f64, mem_mib: u64) {
        let agent = Agent {
            id: id.into(),
            hostname: hostname.into(),
            address: "127.0.0.1".into(),
            cpus,
            mem_mib,
            disk_mib: 10_000,
            port_low: 31000,
            port_high: 31999,
            attributes: [("idc".to_string(), "c3".to_string())].into(),
            ..Default::default()
        };
        self.master
            .propose(put_agent_command(agent))
            .await
            .expect("put agent");
    }

    /// Stores a job through the service, as `POST /v1/jobs`.
    pub async fn add_job(&self, spec: serde_json::Value) {
        self.master
            .service()
            .put_job(PutJob {
                spec: spec.to_string().into_bytes(),
                format: ocean_spec::Format::Json,
                expected_spec_version: None,
            })
            .await
            .expect("put job");
    }

    /// Places tasks (STAGING) as the reconciler would, with the jobs that
    /// wait and why.
    pub async fn place(&self, tasks: Vec<Task>, waiting: HashMap<String, String>) {
        self.master
            .propose(plan_tasks_command(tasks, Vec::new(), waiting))
            .await
            .expect("place");
    }

    /// Reports a task's state as its agent would.
    pub async fn report(&self, task: &str, agent: &str, state: &str) {
        let u = TaskUpdate {
            task_id: task.into(),
            agent_id: agent.into(),
            state: state.into(),
            timestamp_ms: 1,
            pid: 4242,
            ..Default::default()
        };
        self.master
            .propose(task_updates_command(vec![u]))
            .await
            .expect("report");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(s) = self.started.take() {
            s.stop();
        }
    }
}

/// A form body, as a browser encodes it.
pub fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| serde_urlencoded::to_string([(k, v)]).expect("form"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The CSRF token the tests' browser holds (hex, as the dashboard's).
pub const CSRF: &str = "0123456789abcdef0123456789abcdef";

/// A task record as a placement carries it.
pub fn task(id: &str, job: &str, agent: &str, host: &str, port: u32) -> Task {
    Task {
        id: id.into(),
        job_id: job.into(),
        agent_id: agent.into(),
        host: host.into(),
        address: "127.0.0.1".into(),
        cpus: 0.25,
        mem_mib: 64,
        ports: vec![TaskPort {
            name: "http".into(),
            port,
        }],
        ..Default::default()
    }
}

async fn body_text(body: Body) -> String {
    let bytes = axum::body::to_bytes(body, 16 * 1024 * 1024)
        .await
        .expect("body");
    String::from_utf8(bytes.to_vec()).expect("UTF-8")
}

/// The trimmed, whitespace-collapsed texts of the elements `sel` matches.
pub fn texts(html: &str, sel: &str) -> Vec<String> {
    let doc = Html::parse_document(html);
    let s = Selector::parse(sel).expect("selector");
    doc.select(&s)
        .map(|e| e.text().collect::<Vec<_>>().join(" "))
        .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// The values of attribute `attr` of the elements `sel` matches.
pub fn attrs(html: &str, sel: &str, attr: &str) -> Vec<String> {
    let doc = Html::parse_document(html);
    let s = Selector::parse(sel).expect("selector");
    doc.select(&s)
        .filter_map(|e| e.value().attr(attr).map(str::to_string))
        .collect()
}

/// The one text `sel` matches.
pub fn text(html: &str, sel: &str) -> String {
    let t = texts(html, sel);
    assert_eq!(t.len(), 1, "{sel}: expected one element, got {t:?}");
    t.into_iter().next().unwrap_or_default()
}
