//! The client commands' connection to the masters: `ocean-client`'s
//! [`RestClient`] (one address after another, as `--addr` lists them),
//! with its errors worded for the terminal. The commands print the REST
//! API's JSON as it is, so `--json` output is the API's answer.

use anyhow::anyhow;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use ocean_client::rest::RestError;
use ocean_client::{Error, RestClient};
use serde_json::Value;

pub use ocean_client::rest::{Body, Method};

/// The masters of `--addr`, and whether to print raw JSON.
#[derive(Debug)]
pub struct Client {
    rest: RestClient,
    /// Print raw JSON.
    pub json: bool,
    /// The token it sends (`--token`): a client for another master
    /// (the leader) sends the same.
    pub token: ocean_client::Secret,
    /// Its TLS flags, which a client for another master keeps too.
    pub tls: crate::client_tls::ClientTlsArgs,
}

impl Client {
    /// Parses `addr` (comma-separated, with or without `http://`).
    pub fn new(
        addr: &str,
        json: bool,
        token: ocean_client::Secret,
        tls: &crate::client_tls::ClientTlsArgs,
    ) -> anyhow::Result<Self> {
        let addrs = addr
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string);
        let options = ocean_client::RestOptions {
            tls: tls.rest()?,
            ..ocean_client::RestOptions::default()
        };
        let rest = RestClient::with_options(addrs, options)
            .map_err(|e| match e {
                Error::Invalid { errors, .. } if errors.iter().any(|f| f.field == "addrs") => {
                    anyhow!("--addr: no master address given")
                }
                e => anyhow!("--addr: {}", e.message()),
            })?
            .with_token(token.clone());
        Ok(Client {
            rest,
            json,
            token,
            tls: tls.clone(),
        })
    }

    /// Sends a request to the first master that answers; an error answer
    /// becomes an error carrying the API's message and field errors.
    pub async fn request(&self, method: Method, path: &str, body: Body) -> anyhow::Result<Value> {
        self.rest
            .request(method, path, body)
            .await
            .map_err(describe)
    }

    /// A GET whose body is read as it arrives (logs with `follow`): no
    /// overall timeout. Error answers become errors as in [`Client::request`].
    pub async fn stream(
        &self,
        path: &str,
    ) -> anyhow::Result<BoxStream<'static, anyhow::Result<Bytes>>> {
        let body = self.rest.stream(path).await.map_err(describe)?;
        Ok(body
            .map(|chunk| chunk.map_err(|e| anyhow!("{}", e.error.message())))
            .boxed())
    }
}

/// The error as the terminal shows it: the API's message and status, and
/// each field error on a line of its own when there is more to say than
/// the message (an invalid spec lists every field).
fn describe(e: RestError) -> anyhow::Error {
    let Some(status) = e.status else {
        return match e.error {
            Error::Unavailable(msg) => {
                anyhow!(msg).context("no master answered (set --addr or OCEAN_ADDR)")
            }
            other => anyhow!("{}", other.message()),
        };
    };
    let mut msg = e.error.message().to_string();
    if let Error::Invalid { errors, message } = &e.error {
        // A body without field errors gets one naming `request`; it says
        // nothing the message does not.
        let synthetic =
            errors.len() == 1 && errors[0].field == "request" && errors[0].reason == *message;
        if !synthetic && (status == 422 || errors.len() > 1) {
            for f in errors {
                msg.push_str(&format!("\n  {}: {}", f.field, f.reason));
            }
        }
    }
    anyhow!("{msg} ({status})")
}
