//! A thin REST client for tests.

use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

/// A REST client for one master.
#[derive(Debug, Clone)]
pub struct Api {
    base: String,
    http: reqwest::Client,
}

/// A response: status and JSON body.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body (JSON, or a JSON string holding the text).
    pub body: Value,
}

impl Api {
    /// A client for `http://addr`.
    pub fn new(addr: &str) -> Self {
        Api {
            base: format!("http://{addr}"),
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_millis(500))
                .timeout(Duration::from_secs(10))
                .pool_max_idle_per_host(512)
                .build()
                .expect("http client"),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Reply> {
        let resp = req.send().await.context("request failed")?;
        let status = resp.status().as_u16();
        let text = resp.text().await.context("reading body")?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Reply { status, body })
    }

    /// GET a path.
    pub async fn get(&self, path: &str) -> anyhow::Result<Reply> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    /// GET the text of a path.
    pub async fn get_text(&self, path: &str) -> anyhow::Result<String> {
        Ok(self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await?
            .text()
            .await?)
    }

    /// POST JSON.
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Reply> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    /// POST raw bytes with a content type.
    pub async fn post_raw(&self, path: &str, body: Vec<u8>, ctype: &str) -> anyhow::Result<Reply> {
        self.send(
            self.http
                .post(format!("{}{path}", self.base))
                .header("content-type", ctype)
                .body(body),
        )
        .await
    }

    /// PUT raw bytes to a path.
    pub async fn put_raw(&self, path: &str, body: Vec<u8>, ctype: &str) -> anyhow::Result<Reply> {
        self.send(
            self.http
                .put(format!("{}{path}", self.base))
                .header("content-type", ctype)
                .body(body),
        )
        .await
    }

    /// DELETE a path.
    pub async fn delete(&self, path: &str) -> anyhow::Result<Reply> {
        self.send(self.http.delete(format!("{}{path}", self.base)))
            .await
    }

    /// Submits a small job named `name` (a valid spec).
    pub async fn put_job(&self, name: &str) -> anyhow::Result<Reply> {
        self.post("/v1/jobs", &job_spec(name)).await
    }

    /// Reads one metric's value from `/metrics`.
    pub async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let text = self.get_text("/metrics").await?;
        text.lines()
            .find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix(' '))
                    .and_then(|v| v.trim().parse().ok())
            })
            .with_context(|| format!("metric {name} not found"))
    }
}

/// A valid job spec whose job name is `name` (a DNS label).
pub fn job_spec(name: &str) -> Value {
    serde_json::json!({
        "id": job_id(name),
        "cmd": "sleep 3600",
        "instances": 1,
        "resources": {"cpus": 0.01, "mem": 16},
    })
}

/// The service-tree id of the test job `name`.
pub fn job_id(name: &str) -> String {
    format!("cop.test_owt.qa_pdl.ocean_service.itest_job.{name}_cluster.local")
}
