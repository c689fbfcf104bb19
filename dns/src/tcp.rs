//! DNS over TCP through hickory-server's `Server` (framing, idle timeouts,
//! one connection per client, FORMERR for messages it cannot parse), with
//! our own `RequestHandler` that answers through the same
//! [`Authority::handle`] as UDP, or forwards over TCP.

use std::sync::Arc;

use hickory_proto::op::{Header, HeaderCounts, Message};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tracing::debug;

use crate::forward::Forwarder;
use crate::query::{servfail, Action, Authority, Transport};

/// Answers TCP queries.
#[derive(Debug)]
pub struct TcpHandler {
    /// The zone and its cache.
    pub authority: Arc<Authority>,
    /// Where out-of-zone names go.
    pub forwarder: Forwarder,
}

#[async_trait::async_trait]
impl RequestHandler for TcpHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        let raw = request.as_slice();
        let mut out = Vec::new();
        let bytes =
            match self
                .authority
                .handle(raw, Transport::Tcp, Some(request.src().ip()), &mut out)
            {
                Action::Reply => Some(out),
                Action::Forward => self.forwarder.forward(raw, true).await,
                Action::Drop => None,
            };
        let msg = bytes
            .and_then(|b| Message::from_vec(&b).ok())
            .or_else(|| servfail(raw).and_then(|b| Message::from_vec(&b).ok()));
        let Some(msg) = msg else {
            return ResponseInfo::from(Header {
                metadata: request.metadata,
                counts: HeaderCounts::default(),
            });
        };
        send(request, msg, response_handle).await
    }
}

/// Sends `msg` (already a complete response) through hickory's response
/// handle, which encodes it for the TCP stream.
async fn send<R: ResponseHandler>(request: &Request, msg: Message, mut handle: R) -> ResponseInfo {
    let builder = MessageResponseBuilder::new(&request.queries, msg.edns.as_ref());
    let response = builder.build(
        msg.metadata,
        msg.answers.iter(),
        msg.authorities.iter(),
        std::iter::empty(),
        msg.additionals.iter(),
    );
    match handle.send_response(response).await {
        Ok(info) => info,
        Err(error) => {
            debug!(%error, "TCP send");
            ResponseInfo::from(Header {
                metadata: msg.metadata,
                counts: HeaderCounts::default(),
            })
        }
    }
}
