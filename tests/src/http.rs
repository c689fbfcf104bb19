//! The tests' REST client: `ocean-client`'s [`RestClient`] for one master,
//! answering with the status and body whatever the status, since tests
//! check error answers as closely as successes.

use std::time::Duration;

use anyhow::Context;
use ocean_client::rest::RestOptions;
use ocean_client::RestClient;
use serde_json::Value;

pub use ocean_client::rest::{Body, Method, Reply};

/// A REST client for one master.
#[derive(Debug, Clone)]
pub struct Api {
    rest: RestClient,
}

impl Api {
    /// A client for `http://addr`.
    pub fn new(addr: &str) -> Self {
        Api {
            rest: RestClient::with_options([addr.to_string()], Self::options())
                .expect("master address"),
        }
    }

    fn options() -> RestOptions {
        RestOptions {
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_millis(500),
            max_idle_per_master: Some(512),
            tls: None,
        }
    }

    /// A client for `https://addr` (a master with `--tls-http`) that
    /// trusts only the CA certificate at `ca` and presents `identity` (a
    /// `--tls-dir` of `ocean tls cert`), if given.
    pub fn https(
        addr: &str,
        ca: &std::path::Path,
        identity: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        let identity_pem = match identity {
            Some(dir) => {
                let mut pem = std::fs::read(dir.join(ocean_tls::CERT))?;
                pem.push(b'\n');
                pem.extend(std::fs::read(dir.join(ocean_tls::KEY))?);
                Some(pem)
            }
            None => None,
        };
        let options = RestOptions {
            tls: Some(ocean_client::RestTls {
                ca_pem: std::fs::read(ca).with_context(|| format!("read {}", ca.display()))?,
                identity_pem,
            }),
            ..Self::options()
        };
        Ok(Api {
            rest: RestClient::with_options([addr.to_string()], options)?,
        })
    }

    /// The same master (plain HTTP, no token), waiting up to `timeout` for
    /// an answer: for calls the API itself holds open until the work is
    /// done, such as a database backup (up to 120 s) or switchover (20 s).
    pub fn waiting(&self, timeout: Duration) -> Self {
        let options = RestOptions {
            timeout,
            ..Self::options()
        };
        Api {
            rest: RestClient::with_options(self.rest.addrs().to_vec(), options)
                .expect("addresses the client was built from"),
        }
    }

    /// The same client sending `token` (masters with ACLs on).
    pub fn with_token(&self, token: &str) -> Self {
        Api {
            rest: self
                .rest
                .clone()
                .with_token(ocean_client::Secret::new(token)),
        }
    }

    /// Any request; the answer whatever its status.
    pub async fn send(&self, method: Method, path: &str, body: Body) -> anyhow::Result<Reply> {
        self.rest
            .send(method.clone(), path, body)
            .await
            .with_context(|| format!("{method} {path}: request failed"))
    }

    /// GET a path.
    pub async fn get(&self, path: &str) -> anyhow::Result<Reply> {
        self.send(Method::GET, path, Body::None).await
    }

    /// GET the text of a path, whatever the status.
    pub async fn get_text(&self, path: &str) -> anyhow::Result<String> {
        let (_, text) = self
            .rest
            .get_raw(path)
            .await
            .with_context(|| format!("GET {path}: request failed"))?;
        Ok(text)
    }

    /// POST JSON.
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Reply> {
        self.send(Method::POST, path, Body::Json(body.clone()))
            .await
    }

    /// POST raw bytes with a content type.
    pub async fn post_raw(&self, path: &str, body: Vec<u8>, ctype: &str) -> anyhow::Result<Reply> {
        let body = Body::Raw {
            bytes: body,
            content_type: ctype.to_string(),
        };
        self.send(Method::POST, path, body).await
    }

    /// PUT raw bytes to a path.
    pub async fn put_raw(&self, path: &str, body: Vec<u8>, ctype: &str) -> anyhow::Result<Reply> {
        let body = Body::Raw {
            bytes: body,
            content_type: ctype.to_string(),
        };
        self.send(Method::PUT, path, body).await
    }

    /// DELETE a path.
    pub async fn delete(&self, path: &str) -> anyhow::Result<Reply> {
        self.send(Method::DELETE, path, Body::None).await
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

/// Makes an ACL policy `name` with one rule (`rights` on `node`) and a
/// token bound to it; the token's answer, whose `secret` is shown once.
pub async fn acl_token(admin: &Api, name: &str, node: &str, rights: &str) -> anyhow::Result<Value> {
    let r = admin
        .post(
            "/v1/acl/policies",
            &serde_json::json!({"name": name, "rules": [{"node": node, "rights": rights}]}),
        )
        .await?;
    anyhow::ensure!(r.status == 201, "policy {name}: {} {}", r.status, r.body);
    let r = admin
        .post(
            "/v1/acl/tokens",
            &serde_json::json!({"name": name, "policies": [name]}),
        )
        .await?;
    anyhow::ensure!(r.status == 201, "token {name}: {} {}", r.status, r.body);
    Ok(r.body)
}
