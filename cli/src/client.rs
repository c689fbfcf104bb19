//! A small REST client that tries each configured master in turn, so a
//! client keeps working while one master is down.

use anyhow::{anyhow, bail, Context};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// REST client over one or more master addresses.
#[derive(Debug)]
pub struct Client {
    addrs: Vec<String>,
    http: reqwest::Client,
    /// Print raw JSON.
    pub json: bool,
}

/// The body of a request.
pub enum Body {
    None,
    Json(Value),
    Raw {
        bytes: Vec<u8>,
        content_type: &'static str,
    },
}

impl Client {
    /// Parses `addr` (comma-separated, with or without `http://`).
    pub fn new(addr: &str, json: bool) -> anyhow::Result<Self> {
        let addrs: Vec<String> = addr
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| {
                if a.starts_with("http://") || a.starts_with("https://") {
                    a.trim_end_matches('/').to_string()
                } else {
                    format!("http://{}", a.trim_end_matches('/'))
                }
            })
            .collect();
        if addrs.is_empty() {
            bail!("--addr: no master address given");
        }
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(2))
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .context("building the HTTP client")?;
        Ok(Client { addrs, http, json })
    }

    /// Sends a request to the first master that answers; HTTP errors from
    /// the API become errors carrying its message and field errors.
    pub async fn request(&self, method: Method, path: &str, body: Body) -> anyhow::Result<Value> {
        let mut last_err = None;
        for base in &self.addrs {
            let mut req = self.http.request(method.clone(), format!("{base}{path}"));
            req = match &body {
                Body::None => req,
                Body::Json(v) => req.json(v),
                Body::Raw {
                    bytes,
                    content_type,
                } => req
                    .header("content-type", *content_type)
                    .body(bytes.clone()),
            };
            match req.send().await {
                Ok(resp) => return decode(resp).await,
                Err(e) if e.is_connect() || e.is_timeout() => {
                    last_err = Some(anyhow!("{base}: {e}"));
                }
                Err(e) => return Err(anyhow!("{base}: {e}")),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow!("no master address")))
            .context("no master answered (set --addr or OCEAN_ADDR)")
    }
}

impl Client {
    /// A GET whose body is read as it arrives (logs with `follow`): no
    /// overall timeout. Error statuses become errors as in [`Client::request`].
    pub async fn stream(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(2))
            .build()
            .context("building the HTTP client")?;
        let mut last_err = None;
        for base in &self.addrs {
            match http.get(format!("{base}{path}")).send().await {
                Ok(resp) if resp.status().is_success() => return Ok(resp),
                Ok(resp) => {
                    return Err(decode(resp)
                        .await
                        .err()
                        .unwrap_or_else(|| anyhow!("failed")))
                }
                Err(e) if e.is_connect() || e.is_timeout() => {
                    last_err = Some(anyhow!("{base}: {e}"));
                }
                Err(e) => return Err(anyhow!("{base}: {e}")),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow!("no master address")))
            .context("no master answered (set --addr or OCEAN_ADDR)")
    }
}

async fn decode(resp: reqwest::Response) -> anyhow::Result<Value> {
    let status = resp.status();
    let text = resp.text().await.context("reading the response")?;
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
    if status.is_success() {
        return Ok(value);
    }
    let mut msg = value
        .get("error")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| text.clone());
    if let Some(errors) = value.get("errors").and_then(Value::as_array) {
        if status == StatusCode::UNPROCESSABLE_ENTITY || errors.len() > 1 {
            for e in errors {
                let field = e.get("field").and_then(Value::as_str).unwrap_or("?");
                let reason = e.get("reason").and_then(Value::as_str).unwrap_or("?");
                msg.push_str(&format!("\n  {field}: {reason}"));
            }
        }
    }
    bail!("{} ({})", msg, status.as_u16())
}
