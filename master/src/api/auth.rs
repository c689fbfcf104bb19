//! Authentication at the edge: the token a request presents becomes the
//! [`Caller`] the service layer checks (`service::acl`). This module only
//! finds the token and scopes the request; every decision (401, 403,
//! filtering) is the service's.
//!
//! A token travels as `Authorization: Bearer <secret>` (REST, SSE, gRPC
//! metadata) or, for the dashboard in a browser, the `ocean_token` cookie.
//! With ACLs off nothing is read and requests act as the cluster.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use ocean_client::Secret;

use crate::master::Master;
use crate::service::acl::{self, Caller};

/// The cookie the dashboard's pages carry the token in.
pub const COOKIE: &str = "ocean_token";

/// The token in `headers`, if any.
pub fn token_of(headers: &HeaderMap) -> Option<Secret> {
    if let Some(v) = headers.get(axum::http::header::AUTHORIZATION) {
        let v = v.to_str().ok()?.trim();
        let t = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))?;
        return Some(Secret::new(t.trim()));
    }
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .map(|t| Secret::new(t.trim()))
}

/// Who a request is, from its headers.
fn caller_of(m: &Master, headers: &HeaderMap) -> Caller {
    match token_of(headers) {
        None => Caller::Anonymous,
        Some(t) if t.is_empty() => Caller::Anonymous,
        Some(t) if m.is_local_secret(&t) => Caller::System,
        // Outside any scope: the lookup itself needs no rights.
        Some(t) => m.service().with_caller(Caller::System).authenticate(&t),
    }
}

/// axum middleware: serves the request as its token's caller.
pub async fn authenticate(State(m): State<Master>, req: Request, next: Next) -> Response {
    if !m.acl_enabled() {
        return next.run(req).await;
    }
    let caller = caller_of(&m, req.headers());
    acl::scope(caller, next.run(req)).await
}

/// The same for the gRPC server: a tower layer around every service
/// (the agents' stream and the masters' raft transport make no service
/// calls, so a token changes nothing for them).
#[derive(Debug, Clone)]
pub struct GrpcAuthLayer(Master);

impl GrpcAuthLayer {
    /// The layer for `master`.
    pub fn new(master: Master) -> Self {
        GrpcAuthLayer(master)
    }
}

impl<S> tower::Layer<S> for GrpcAuthLayer {
    type Service = GrpcAuth<S>;

    fn layer(&self, inner: S) -> GrpcAuth<S> {
        GrpcAuth {
            inner,
            master: self.0.clone(),
        }
    }
}

/// [`GrpcAuthLayer`]'s service.
#[derive(Debug, Clone)]
pub struct GrpcAuth<S> {
    inner: S,
    master: Master,
}

impl<S, B> tower::Service<axum::http::Request<B>> for GrpcAuth<S>
where
    S: tower::Service<axum::http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: axum::http::Request<B>) -> Self::Future {
        if !self.master.acl_enabled() {
            return Box::pin(self.inner.call(req));
        }
        let caller = caller_of(&self.master, req.headers());
        let fut = self.inner.call(req);
        Box::pin(acl::scope(caller, fut))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_comes_from_the_bearer_header_or_the_cookie() {
        let mut h = HeaderMap::new();
        assert!(token_of(&h).is_none());
        h.insert("cookie", "theme=dark; ocean_token=abc.def".parse().unwrap());
        assert_eq!(token_of(&h).unwrap().expose(), "abc.def");
        h.insert("authorization", "Bearer xyz.123".parse().unwrap());
        assert_eq!(token_of(&h).unwrap().expose(), "xyz.123");
        h.insert("authorization", "Basic dXNlcjpwYXNz".parse().unwrap());
        assert!(token_of(&h).is_none(), "only bearer tokens");
    }
}
