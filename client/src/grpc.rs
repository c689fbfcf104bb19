//! [`GrpcClient`]: the [`Client`] over gRPC, failing over across masters.
//!
//! Any master serves any call (followers forward writes to the leader), so
//! a call goes to the master that answered last and moves on to the next
//! one only when that master cannot be reached or has no leader. Those two
//! cases are safe to retry: nothing was proposed. A write whose commit the
//! master could not confirm (`Aborted`) is returned as it is, because
//! sending it again might apply it twice.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::api::ocean_api_client::OceanApiClient;
use crate::api::*;
use crate::{Client, Error, FieldError, Result};

/// How long a call keeps trying other masters unless told otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// A master that does not accept a connection in this long is skipped.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// HTTP/2 pings on every connection, idle or not: a watch on a master that
/// froze (stopped process, cut network) ends within interval + timeout,
/// and `follow` resumes it elsewhere, instead of waiting forever.
const DEFAULT_KEEP_ALIVE: Option<KeepAlive> = Some(KeepAlive {
    interval: Duration::from_secs(1),
    timeout: Duration::from_secs(2),
});
/// The pause once every master failed in turn, so a cluster electing a
/// leader is not hammered.
const ROUND_PAUSE: Duration = Duration::from_millis(20);

/// A client of several masters (see the module docs). Cloning is cheap
/// and the clones share which master answered last.
#[derive(Clone)]
pub struct GrpcClient {
    masters: Arc<[Master]>,
    current: Arc<AtomicUsize>,
    timeout: Duration,
    /// Sent as `authorization: Bearer ...` on every call when ACLs are on.
    token: Option<Arc<tonic::metadata::AsciiMetadataValue>>,
}

struct Master {
    addr: String,
    api: OceanApiClient<Channel>,
}

impl fmt::Debug for GrpcClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcClient")
            .field("addrs", &self.addrs())
            .field("current", &self.current_addr())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// HTTP/2 keep-alive pings of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepAlive {
    /// How often to ping.
    pub interval: Duration,
    /// How long a ping may go unanswered before the connection is dropped.
    pub timeout: Duration,
}

/// How a [`GrpcClient`] connects and how long its calls may take.
#[derive(Debug, Clone)]
pub struct GrpcOptions {
    /// How long a call may take, trying other masters included (default
    /// 5 s); a streaming call, until its stream is open.
    pub timeout: Duration,
    /// How long connecting to one master may take before the next one is
    /// tried (default 1 s).
    pub connect_timeout: Duration,
    /// Pings that find a frozen master (default every 1 s, 2 s to answer);
    /// `None` for none.
    pub keep_alive: Option<KeepAlive>,
    /// TLS to masters with certificates: trust their CA (and present a
    /// client certificate if the config has one). `None`: plain HTTP/2.
    pub tls: Option<tonic::transport::ClientTlsConfig>,
}

impl Default for GrpcOptions {
    fn default() -> Self {
        GrpcOptions {
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            keep_alive: DEFAULT_KEEP_ALIVE,
            tls: None,
        }
    }
}

impl GrpcClient {
    /// A client of the masters at `addrs` (`HOST:PORT`, `http://`
    /// optional), with default options. Nothing is connected until the
    /// first call; an empty list or a malformed address is
    /// [`Error::Invalid`] naming `addrs`. Call it inside a tokio runtime
    /// (each channel spawns its worker task).
    pub fn new(addrs: impl IntoIterator<Item = String>) -> Result<Self> {
        Self::with_options(addrs, GrpcOptions::default())
    }

    /// A client of the masters at `addrs` with `options`. One connection
    /// per master, made on first use and shared by every call and clone.
    pub fn with_options(
        addrs: impl IntoIterator<Item = String>,
        options: GrpcOptions,
    ) -> Result<Self> {
        let mut masters = Vec::new();
        let mut errors = Vec::new();
        for (i, addr) in addrs.into_iter().enumerate() {
            match endpoint(&addr, &options) {
                Ok((addr, ep)) => masters.push(Master {
                    addr,
                    api: OceanApiClient::new(ep.connect_lazy())
                        .max_decoding_message_size(usize::MAX),
                }),
                Err(reason) => errors.push(FieldError::new(format!("addrs[{i}]"), reason)),
            }
        }
        if masters.is_empty() && errors.is_empty() {
            errors.push(FieldError::new("addrs", "no master address given"));
        }
        if !errors.is_empty() {
            return Err(invalid_addrs(errors));
        }
        Ok(GrpcClient {
            masters: masters.into(),
            current: Arc::new(AtomicUsize::new(0)),
            timeout: options.timeout,
            token: None,
        })
    }

    /// Sends `token` with every call (masters with ACLs on require one).
    /// A token that cannot be a header value is [`Error::Invalid`] naming
    /// `token` (the value itself is never printed).
    pub fn with_token(mut self, token: &crate::Secret) -> Result<Self> {
        if token.is_empty() {
            self.token = None;
            return Ok(self);
        }
        let value = format!("Bearer {}", token.expose())
            .parse()
            .map_err(|_| Error::Invalid {
                message: "token: must be printable ASCII".into(),
                errors: vec![FieldError::new("token", "must be printable ASCII")],
            })?;
        self.token = Some(Arc::new(value));
        Ok(self)
    }

    /// `msg` as a request carrying the token, if any.
    fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        if let Some(t) = &self.token {
            req.metadata_mut().insert("authorization", (**t).clone());
        }
        req
    }

    /// How long a call may take, trying other masters included (default
    /// 5 s). A call still unanswered then is [`Error::NotCommitted`], and
    /// the next call starts at another master. The clone shares the
    /// connections, so a short deadline for one kind of call is cheap.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The masters' addresses, as `http://HOST:PORT`.
    pub fn addrs(&self) -> Vec<&str> {
        self.masters.iter().map(|m| m.addr.as_str()).collect()
    }

    /// The master the next call goes to: the one that answered last.
    pub fn current_addr(&self) -> &str {
        let i = self.current.load(Ordering::Relaxed) % self.masters.len();
        &self.masters[i].addr
    }

    /// Runs `call` against the current master, moving to the next one while
    /// masters are unreachable or without a leader, until the deadline.
    async fn call<T, F, Fut>(&self, call: F) -> Result<T>
    where
        F: Fn(OceanApiClient<Channel>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, Status>>,
    {
        let deadline = Instant::now() + self.timeout;
        let n = self.masters.len();
        let mut tried = 0;
        loop {
            let i = self.current.load(Ordering::Relaxed) % n;
            let master = &self.masters[i];
            let status = match tokio::time::timeout_at(deadline, call(master.api.clone())).await {
                Ok(Ok(resp)) => {
                    self.current.store(i, Ordering::Relaxed);
                    return Ok(resp.into_inner());
                }
                Ok(Err(status)) if fails_over(&status) => status,
                Ok(Err(status)) => {
                    self.current.store(i, Ordering::Relaxed);
                    return Err(Error::from_status(status));
                }
                Err(_) => {
                    // A master that froze must not hold every later call:
                    // the next one starts at the next master.
                    self.move_on(i);
                    return Err(Error::NotCommitted(format!(
                        "{}: no answer within {:?}; a write may or may not have happened",
                        master.addr, self.timeout
                    )));
                }
            };
            tracing::debug!(master = %master.addr, code = ?status.code(), error = %status.message(), "trying the next master");
            self.move_on(i);
            tried += 1;
            if tried % n == 0 {
                if Instant::now() + ROUND_PAUSE >= deadline {
                    return Err(Error::Unavailable(format!(
                        "no master answered within {:?} (last, {}: {})",
                        self.timeout,
                        master.addr,
                        status.message()
                    )));
                }
                tokio::time::sleep(ROUND_PAUSE).await;
            }
        }
    }
}

impl GrpcClient {
    /// The next call starts at the master after `i`. Only the first caller
    /// to see master `i` fail moves everyone on; the others must not skip
    /// the next master as well.
    fn move_on(&self, i: usize) {
        let n = self.masters.len();
        let _ = self
            .current
            .compare_exchange(i, (i + 1) % n, Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// The error for bad master addresses, listing every one.
pub(crate) fn invalid_addrs(errors: Vec<FieldError>) -> Error {
    let list: Vec<String> = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.reason))
        .collect();
    Error::Invalid {
        message: format!("invalid master addresses: {}", list.join("; ")),
        errors,
    }
}

/// Unreachable, or reachable without a leader: another master may do.
fn fails_over(status: &Status) -> bool {
    match status.code() {
        Code::Unavailable => true,
        // A transport failure tonic could not classify. Statuses made from
        // a local error carry it as their source; a master's never do.
        Code::Unknown => std::error::Error::source(status).is_some(),
        _ => false,
    }
}

/// Checks one master address and turns it into its endpoint.
fn endpoint(addr: &str, options: &GrpcOptions) -> std::result::Result<(String, Endpoint), String> {
    let trimmed = addr.trim();
    let (scheme, prefix) = match options.tls {
        Some(_) => ("https", "https://"),
        None => ("http", "http://"),
    };
    let hostport = trimmed.strip_prefix(prefix).unwrap_or(trimmed);
    let hostport = hostport.strip_suffix('/').unwrap_or(hostport);
    if hostport.contains("://") {
        return Err(format!(
            "'{addr}': only {prefix} is supported{}",
            if options.tls.is_some() {
                " with TLS"
            } else {
                " without a CA"
            }
        ));
    }
    let bad = || format!("'{addr}' is not HOST:PORT");
    let (host, port) = hostport.rsplit_once(':').ok_or_else(bad)?;
    let bracketed = host.starts_with('[') && host.ends_with(']');
    if host.is_empty()
        || (host.contains(':') && !bracketed)
        || host.contains(|c: char| c == '/' || c.is_whitespace())
    {
        return Err(bad());
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => {}
        _ => return Err(format!("'{addr}': the port must be 1-65535")),
    }
    let url = format!("{scheme}://{hostport}");
    let mut ep = Endpoint::from_shared(url.clone())
        .map_err(|e| format!("'{addr}': {e}"))?
        .connect_timeout(options.connect_timeout)
        .tcp_nodelay(true);
    if let Some(tls) = &options.tls {
        ep = ep
            .tls_config(tls.clone())
            .map_err(|e| format!("'{addr}': {e}"))?;
    }
    if let Some(k) = options.keep_alive {
        ep = ep
            .http2_keep_alive_interval(k.interval)
            .keep_alive_timeout(k.timeout)
            .keep_alive_while_idle(true);
    }
    Ok((url, ep))
}

/// The unary calls, each the same few lines; the streaming ones follow
/// by hand. `async_trait` must see the expanded methods, so the macro
/// writes the whole impl.
macro_rules! client_impl {
    ($($name:ident($req:ty) -> $resp:ty;)* ; $($rest:item)*) => {
        #[async_trait::async_trait]
        impl Client for GrpcClient {
            $(
                async fn $name(&self, req: $req) -> Result<$resp> {
                    self.call(|mut api| {
                        let req = self.request(req.clone());
                        async move { api.$name(req).await }
                    })
                    .await
                }
            )*
            $($rest)*
        }
    };
}

crate::with_unary_calls! { client_impl {
    // The deadline covers opening the stream only; it then lasts as long
    // as the connection does.
    async fn watch(&self, req: WatchRequest) -> Result<BoxStream<'static, Result<Event>>> {
        let stream = self
            .call(|mut api| {
                let req = self.request(req.clone());
                async move { api.watch(req).await }
            })
            .await?;
        Ok(stream.map(|r| r.map_err(Error::from_status)).boxed())
    }

    async fn task_logs(
        &self,
        req: TaskLogsRequest,
    ) -> Result<BoxStream<'static, Result<LogChunk>>> {
        let stream = self
            .call(|mut api| {
                let req = self.request(req.clone());
                async move { api.task_logs(req).await }
            })
            .await?;
        Ok(stream.map(|r| r.map_err(Error::from_status)).boxed())
    }
} }

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(addrs: &[&str]) -> Vec<String> {
        match GrpcClient::new(addrs.iter().map(|a| a.to_string())) {
            Err(Error::Invalid { errors, .. }) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("expected Invalid for {addrs:?}, got {other:?}"),
        }
    }

    // connect_lazy spawns the channel's worker, hence a runtime.
    #[tokio::test]
    async fn addresses_are_host_and_port() {
        assert_eq!(field_of(&[]), ["addrs"]);
        assert_eq!(field_of(&["127.0.0.1:5000", "nonsense"]), ["addrs[1]"]);
        assert_eq!(field_of(&["host:0"]), ["addrs[0]"]);
        assert_eq!(field_of(&["https://host:5000"]), ["addrs[0]"]);
        assert_eq!(field_of(&["::1:5000", ""]), ["addrs[0]", "addrs[1]"]);
    }

    #[tokio::test]
    async fn http_prefix_is_optional() {
        let c = GrpcClient::new([
            "http://10.0.0.1:5000/".to_string(),
            "master-2:5000".to_string(),
            "[::1]:5000".to_string(),
        ])
        .unwrap();
        assert_eq!(
            c.addrs(),
            [
                "http://10.0.0.1:5000",
                "http://master-2:5000",
                "http://[::1]:5000"
            ]
        );
        assert_eq!(c.current_addr(), "http://10.0.0.1:5000");
    }
}
