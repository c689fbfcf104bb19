//! [`RestClient`]: the masters' REST API (`/v1/...`) as JSON, failing over
//! across masters (cargo feature `rest`).
//!
//! The CLI prints what the REST API answers, byte for byte (`--json`), so
//! this client hands back the answer's JSON rather than typed messages; the
//! typed API is [`Client`](crate::Client). What a failure means is typed
//! all the same: [`RestError`] carries the HTTP status and the [`Error`] it
//! stands for, with every `{"errors":[{"field","reason"}]}` entry.
//!
//! Failover follows [`GrpcClient`](crate::GrpcClient): a call goes to the
//! master that answered last and moves on only when nothing can have been
//! written there: the master cannot be reached, it has no leader (503
//! `no_leader`, `shutting_down`), or a read ran out of time. A write that
//! ran out of time is returned as [`Error::NotCommitted`], because sending
//! it again might apply it twice.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
pub use reqwest::Method;
use serde_json::Value;
use tonic::Code;

use crate::{Error, FieldError};

/// How long a call may take unless told otherwise (the CLI's old limit).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// A master that does not accept a connection in this long is skipped.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A REST call's failure: the HTTP status the master answered with (`None`
/// when no master answered at all) and what it means.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct RestError {
    /// The HTTP status, if a master answered.
    pub status: Option<u16>,
    /// The typed error (field errors, versions of a conflict, ...).
    pub error: Error,
}

impl RestError {
    fn unanswered(error: Error) -> Self {
        RestError {
            status: None,
            error,
        }
    }
}

impl From<RestError> for Error {
    fn from(e: RestError) -> Self {
        e.error
    }
}

/// The body of a request.
#[derive(Debug, Clone)]
pub enum Body {
    /// No body.
    None,
    /// A JSON document.
    Json(Value),
    /// Bytes of a given content type (a job spec in YAML, say).
    Raw {
        /// The bytes.
        bytes: Vec<u8>,
        /// Their `content-type`.
        content_type: String,
    },
}

/// An answer of any status: the status and its JSON (a JSON string holding
/// the text when the body is not JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: Value,
}

impl Reply {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body of a success, or the typed error of anything else.
    pub fn into_result(self) -> Result<Value, RestError> {
        if self.is_success() {
            Ok(self.body)
        } else {
            Err(failure(self))
        }
    }
}

/// A REST client of several masters (see the module docs). Cloning is
/// cheap and the clones share their connections and which master answered
/// last.
#[derive(Clone)]
pub struct RestClient {
    masters: Arc<[String]>,
    current: Arc<AtomicUsize>,
    http: reqwest::Client,
    /// For bodies read as they arrive (followed logs): no overall timeout.
    streaming: reqwest::Client,
    timeout: Duration,
    /// Sent as `Authorization: Bearer ...` when ACLs are on.
    token: Option<crate::Secret>,
}

impl fmt::Debug for RestClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestClient")
            .field("masters", &self.masters)
            .field("current", &self.current_addr())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// How a [`RestClient`] connects.
#[derive(Debug, Clone)]
pub struct RestOptions {
    /// How long a call may take (default 30 s).
    pub timeout: Duration,
    /// How long connecting to one master may take (default 2 s).
    pub connect_timeout: Duration,
    /// Idle connections kept per master (default: reqwest's).
    pub max_idle_per_master: Option<usize>,
    /// HTTPS settings for masters that serve REST over TLS.
    pub tls: Option<RestTls>,
}

/// How a [`RestClient`] checks masters that serve HTTPS, and what it
/// presents to them.
#[derive(Clone, Default)]
pub struct RestTls {
    /// The CA's certificate (PEM): the only root trusted.
    pub ca_pem: Vec<u8>,
    /// A client certificate and its key (PEM, concatenated), if any.
    pub identity_pem: Option<Vec<u8>>,
}

impl fmt::Debug for RestTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key.
        f.debug_struct("RestTls")
            .field("ca_pem_bytes", &self.ca_pem.len())
            .field("identity", &self.identity_pem.is_some())
            .finish()
    }
}

impl Default for RestOptions {
    fn default() -> Self {
        RestOptions {
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_idle_per_master: None,
            tls: None,
        }
    }
}

impl RestClient {
    /// A client of the masters at `addrs` (`HOST:PORT`, `http://`
    /// optional), with default options.
    pub fn new(addrs: impl IntoIterator<Item = String>) -> crate::Result<Self> {
        Self::with_options(addrs, RestOptions::default())
    }

    /// A client of the masters at `addrs` with `options`. An empty list or
    /// an address with a path is [`Error::Invalid`] naming `addrs`.
    pub fn with_options(
        addrs: impl IntoIterator<Item = String>,
        options: RestOptions,
    ) -> crate::Result<Self> {
        let mut masters = Vec::new();
        let mut errors = Vec::new();
        // With a CA given, an address without a scheme means HTTPS.
        let scheme = if options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        for (i, addr) in addrs.into_iter().enumerate() {
            match base_url(&addr, scheme) {
                Ok(url) => masters.push(url),
                Err(reason) => errors.push(FieldError::new(format!("addrs[{i}]"), reason)),
            }
        }
        if masters.is_empty() && errors.is_empty() {
            errors.push(FieldError::new("addrs", "no master address given"));
        }
        if !errors.is_empty() {
            return Err(crate::grpc::invalid_addrs(errors));
        }
        let tls = match &options.tls {
            Some(tls) => Some(tls_parts(tls)?),
            None => None,
        };
        let builder = || {
            let mut b = reqwest::Client::builder().connect_timeout(options.connect_timeout);
            if let Some(n) = options.max_idle_per_master {
                b = b.pool_max_idle_per_host(n);
            }
            if let Some((ca, identity)) = &tls {
                b = b
                    .tls_built_in_root_certs(false)
                    .add_root_certificate(ca.clone());
                if let Some(identity) = identity {
                    b = b.identity(identity.clone());
                }
            }
            b
        };
        let built = |r: reqwest::Result<reqwest::Client>| {
            r.map_err(|e| Error::Other {
                code: Code::Internal,
                message: format!("building the HTTP client: {e}"),
            })
        };
        Ok(RestClient {
            masters: masters.into(),
            current: Arc::new(AtomicUsize::new(0)),
            http: built(builder().timeout(options.timeout).build())?,
            streaming: built(builder().build())?,
            timeout: options.timeout,
            token: None,
        })
    }

    /// Sends `token` with every request (masters with ACLs on require
    /// one); an empty token sends none.
    pub fn with_token(mut self, token: crate::Secret) -> Self {
        self.token = (!token.is_empty()).then_some(token);
        self
    }

    /// The masters' base URLs (`http://HOST:PORT`).
    pub fn addrs(&self) -> &[String] {
        &self.masters
    }

    /// The master the next call goes to: the one that answered last.
    pub fn current_addr(&self) -> &str {
        &self.masters[self.current.load(Ordering::Relaxed) % self.masters.len()]
    }

    /// Sends a request and returns the answer whatever its status (tests
    /// check error statuses this way). Fails only when no master answered.
    pub async fn send(&self, method: Method, path: &str, body: Body) -> Result<Reply, RestError> {
        match self.call(&self.http, &method, path, &body).await? {
            Answer::Open(resp) => read(resp).await,
            Answer::Read(reply) => Ok(reply),
        }
    }

    /// Sends a request: the JSON of a 2xx answer, or the typed error.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<Value, RestError> {
        self.send(method, path, body).await?.into_result()
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Value, RestError> {
        self.request(Method::GET, path, Body::None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> Result<Value, RestError> {
        self.request(Method::POST, path, Body::Json(body)).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Result<Value, RestError> {
        self.request(Method::DELETE, path, Body::None).await
    }

    /// The text of `GET path` (`/metrics`, a task's log), or the typed
    /// error.
    pub async fn get_text(&self, path: &str) -> Result<String, RestError> {
        let (status, text) = self.get_raw(path).await?;
        if (200..300).contains(&status) {
            return Ok(text);
        }
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Err(failure(Reply { status, body }))
    }

    /// The status and text of `GET path`, whatever the status (text that
    /// happens to parse as JSON is kept as it was sent).
    pub async fn get_raw(&self, path: &str) -> Result<(u16, String), RestError> {
        let resp = match self
            .call(&self.http, &Method::GET, path, &Body::None)
            .await?
        {
            Answer::Open(resp) => resp,
            Answer::Read(reply) => {
                let text = match reply.body {
                    Value::String(text) => text,
                    json => json.to_string(),
                };
                return Ok((reply.status, text));
            }
        };
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| {
            RestError::unanswered(Error::Unavailable(format!("reading the response: {e}")))
        })?;
        Ok((status, text))
    }

    /// `GET path`, its body read as it arrives (a followed log): no overall
    /// timeout. An error status is the typed error, as for [`Self::request`].
    pub async fn stream(
        &self,
        path: &str,
    ) -> Result<BoxStream<'static, Result<Bytes, RestError>>, RestError> {
        let resp = match self
            .call(&self.streaming, &Method::GET, path, &Body::None)
            .await?
        {
            Answer::Open(resp) if resp.status().is_success() => resp,
            Answer::Open(resp) => return Err(failure(read(resp).await?)),
            Answer::Read(reply) => return Err(failure(reply)),
        };
        Ok(resp
            .bytes_stream()
            .map(|chunk| {
                chunk.map_err(|e| {
                    RestError::unanswered(Error::Unavailable(format!("reading the body: {e}")))
                })
            })
            .boxed())
    }

    /// Sends to the current master, moving on while nothing can have been
    /// written (see the module docs). Each master is tried once per call;
    /// when every one of them has no leader, the last answer says so.
    async fn call(
        &self,
        http: &reqwest::Client,
        method: &Method,
        path: &str,
        body: &Body,
    ) -> Result<Answer, RestError> {
        let n = self.masters.len();
        let first = self.current.load(Ordering::Relaxed) % n;
        let mut last = None;
        let mut leaderless = None;
        for k in 0..n {
            let i = (first + k) % n;
            let base = &self.masters[i];
            let mut req = http.request(method.clone(), format!("{base}{path}"));
            if let Some(t) = &self.token {
                req = req.bearer_auth(t.expose());
            }
            req = match body {
                Body::None => req,
                Body::Json(v) => req.json(v),
                Body::Raw {
                    bytes,
                    content_type,
                } => req
                    .header(reqwest::header::CONTENT_TYPE, content_type.as_str())
                    .body(bytes.clone()),
            };
            let reason = match req.send().await {
                Ok(resp) if resp.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                    // The body says whether anything was proposed.
                    let reply = read(resp).await?;
                    let code = reply.body.get("code").and_then(Value::as_str);
                    if !matches!(code, Some("no_leader" | "shutting_down")) {
                        self.current.store(i, Ordering::Relaxed);
                        return Ok(Answer::Read(reply));
                    }
                    leaderless = Some(reply);
                    format!("{base}: no leader")
                }
                Ok(resp) => {
                    self.current.store(i, Ordering::Relaxed);
                    return Ok(Answer::Open(resp));
                }
                Err(e) if e.is_connect() => format!("{base}: {e}"),
                Err(e) if e.is_timeout() && *method == Method::GET => format!("{base}: {e}"),
                Err(e) if e.is_timeout() => {
                    self.move_on(i);
                    return Err(RestError::unanswered(Error::NotCommitted(format!(
                        "{base}: no answer within {:?}; a write may or may not have happened",
                        self.timeout
                    ))));
                }
                Err(e) => {
                    self.move_on(i);
                    return Err(RestError::unanswered(Error::Unavailable(format!(
                        "{base}: {e}"
                    ))));
                }
            };
            tracing::debug!(master = %base, error = %reason, "trying the next master");
            self.move_on(i);
            last = Some(reason);
        }
        if let Some(reply) = leaderless {
            return Ok(Answer::Read(reply));
        }
        // The last master's failure says it all (each was tried once).
        Err(RestError::unanswered(Error::Unavailable(
            last.unwrap_or_else(|| "no master address".into()),
        )))
    }

    /// The next call starts at the master after `i` (unless another caller
    /// already moved everyone on).
    fn move_on(&self, i: usize) {
        let n = self.masters.len();
        let _ = self
            .current
            .compare_exchange(i, (i + 1) % n, Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// What [`RestClient::call`] got: a response whose body is still to be
/// read, or one it had to read to decide.
enum Answer {
    Open(reqwest::Response),
    Read(Reply),
}

/// The typed error of an answer that is not a success.
fn failure(reply: Reply) -> RestError {
    RestError {
        status: Some(reply.status),
        error: error_of(reply.status, &reply.body),
    }
}

/// Reads a whole answer.
async fn read(resp: reqwest::Response) -> Result<Reply, RestError> {
    let status = resp.status().as_u16();
    let text = resp.text().await.map_err(|e| {
        RestError::unanswered(Error::Unavailable(format!("reading the response: {e}")))
    })?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok(Reply { status, body })
}

/// `http://HOST:PORT` of one master address (`http://` optional; `https://`
/// kept as given).
/// The CA and client identity of `tls` as reqwest takes them; a file that
/// holds no certificate is [`Error::Invalid`] naming `tls.ca_pem` or
/// `tls.identity_pem`.
fn tls_parts(tls: &RestTls) -> crate::Result<(reqwest::Certificate, Option<reqwest::Identity>)> {
    let invalid = |field: &str, reason: String| Error::Invalid {
        message: format!("{field}: {reason}"),
        errors: vec![FieldError::new(field, reason)],
    };
    // reqwest reads the PEM only when the client is built, and skips what
    // is not a certificate: check here so a wrong file is named.
    if !String::from_utf8_lossy(&tls.ca_pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(invalid("tls.ca_pem", "not a PEM certificate".into()));
    }
    let ca = reqwest::Certificate::from_pem(&tls.ca_pem)
        .map_err(|e| invalid("tls.ca_pem", format!("not a PEM certificate: {e}")))?;
    let identity = match &tls.identity_pem {
        Some(pem) => Some(reqwest::Identity::from_pem(pem).map_err(|e| {
            invalid(
                "tls.identity_pem",
                format!("not a PEM certificate and key: {e}"),
            )
        })?),
        None => None,
    };
    Ok((ca, identity))
}

fn base_url(addr: &str, scheme: &str) -> Result<String, String> {
    let a = addr.trim().trim_end_matches('/');
    if a.is_empty() {
        return Err(format!("'{addr}' is not HOST:PORT"));
    }
    let url = if a.starts_with("http://") || a.starts_with("https://") {
        a.to_string()
    } else if a.contains("://") {
        return Err(format!("'{addr}': only http:// and https:// are supported"));
    } else {
        format!("{scheme}://{a}")
    };
    let rest = url.split_once("://").map_or("", |(_, r)| r);
    if rest.is_empty() || rest.contains('/') || rest.contains(char::is_whitespace) {
        return Err(format!("'{addr}' is not HOST:PORT"));
    }
    Ok(url)
}

/// The error an API answer of `status` with `body` stands for.
pub fn error_of(status: u16, body: &Value) -> Error {
    let message = match body {
        Value::String(text) => text.clone(),
        _ => body
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| body.to_string()),
    };
    let code = body.get("code").and_then(Value::as_str).unwrap_or("");
    let u64_of = |k: &str| body.get(k).and_then(Value::as_u64).unwrap_or(0);
    match status {
        400 | 422 => {
            let errors: Vec<FieldError> = body
                .get("errors")
                .and_then(|e| serde_json::from_value(e.clone()).ok())
                .filter(|e: &Vec<FieldError>| !e.is_empty())
                .unwrap_or_else(|| vec![FieldError::new("request", message.clone())]);
            Error::Invalid { message, errors }
        }
        404 => Error::NotFound(message),
        409 if code == "version_conflict" => Error::VersionConflict {
            expected: u64_of("expected_version"),
            actual: u64_of("actual_version"),
            message,
        },
        409 if code == "lease_held" => Error::LeaseHeld {
            holder: body
                .get("holder")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            expires_ms: u64_of("expires_ms"),
            message,
        },
        409 | 412 => Error::Conflict(message),
        503 if code == "not_committed" => Error::NotCommitted(message),
        503 => Error::Unavailable(message),
        504 => Error::NotCommitted(message),
        status => Error::Other {
            code: match status {
                401 => Code::Unauthenticated,
                403 => Code::PermissionDenied,
                405 | 501 => Code::Unimplemented,
                429 => Code::ResourceExhausted,
                500..=599 => Code::Internal,
                _ => Code::Unknown,
            },
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_errors_are_carried_through() {
        let body = json!({
            "error": "invalid job spec",
            "code": "invalid_job_spec",
            "errors": [{"field": "ports[1].name", "reason": "must be unique"},
                       {"field": "cpus", "reason": "must be > 0"}],
        });
        assert_eq!(
            error_of(422, &body),
            Error::Invalid {
                message: "invalid job spec".into(),
                errors: vec![
                    FieldError::new("ports[1].name", "must be unique"),
                    FieldError::new("cpus", "must be > 0"),
                ],
            }
        );
        // A 400 without details still names something.
        assert_eq!(
            error_of(400, &Value::String("bad query".into())),
            Error::Invalid {
                message: "bad query".into(),
                errors: vec![FieldError::new("request", "bad query")],
            }
        );
    }

    #[test]
    fn conflicts_keep_their_details() {
        let body = json!({"error": "job x changed", "code": "version_conflict",
                          "expected_version": 3, "actual_version": 5});
        assert_eq!(
            error_of(409, &body),
            Error::VersionConflict {
                message: "job x changed".into(),
                expected: 3,
                actual: 5
            }
        );
        let body = json!({"error": "held", "code": "lease_held",
                          "holder": "cron-7", "expires_ms": 17});
        assert_eq!(
            error_of(409, &body),
            Error::LeaseHeld {
                message: "held".into(),
                holder: "cron-7".into(),
                expires_ms: 17
            }
        );
        assert_eq!(
            error_of(409, &json!({"error": "exists", "code": "conflict"})),
            Error::Conflict("exists".into())
        );
    }

    #[test]
    fn statuses_map_to_variants() {
        let e = |code: &str| json!({"error": "e", "code": code});
        assert_eq!(error_of(404, &e("not_found")), Error::NotFound("e".into()));
        assert_eq!(
            error_of(503, &e("not_committed")),
            Error::NotCommitted("e".into())
        );
        assert_eq!(
            error_of(503, &e("no_leader")),
            Error::Unavailable("e".into())
        );
        assert_eq!(
            error_of(502, &e("peer_error")),
            Error::Other {
                code: Code::Internal,
                message: "e".into()
            }
        );
    }

    #[test]
    fn addresses_are_checked() {
        let fields = |addrs: &[&str]| match RestClient::new(addrs.iter().map(|a| a.to_string())) {
            Err(Error::Invalid { errors, .. }) => {
                errors.into_iter().map(|e| e.field).collect::<Vec<_>>()
            }
            other => panic!("expected Invalid for {addrs:?}, got {other:?}"),
        };
        assert_eq!(fields(&[]), ["addrs"]);
        assert_eq!(fields(&["127.0.0.1:7700", "ftp://x:1"]), ["addrs[1]"]);
        assert_eq!(fields(&["host:1/v1"]), ["addrs[0]"]);
        let c = RestClient::new(["127.0.0.1:7700/".into(), "http://m2:7700".into()]).unwrap();
        assert_eq!(c.addrs(), ["http://127.0.0.1:7700", "http://m2:7700"]);
        assert_eq!(c.current_addr(), "http://127.0.0.1:7700");
    }

    #[test]
    fn tls_settings_are_checked_and_default_to_https() {
        let bad = RestOptions {
            tls: Some(RestTls {
                ca_pem: b"not a certificate".to_vec(),
                identity_pem: None,
            }),
            ..RestOptions::default()
        };
        match RestClient::with_options(["127.0.0.1:7700".to_string()], bad) {
            Err(Error::Invalid { errors, .. }) => assert_eq!(errors[0].field, "tls.ca_pem"),
            other => panic!("expected Invalid, got {other:?}"),
        }
        assert_eq!(base_url("m1:7700", "https").unwrap(), "https://m1:7700");
        assert_eq!(
            base_url("http://m1:7700", "https").unwrap(),
            "http://m1:7700"
        );
    }
}
