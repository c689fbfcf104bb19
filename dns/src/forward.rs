//! Forwarding names outside the zone to the upstream resolvers, so a task
//! can use Ocean's DNS as its only resolver.
//!
//! The query's bytes go upstream unchanged except for a fresh random id
//! (and a fresh socket per query over UDP, so the source port is random
//! too); the upstream's answer comes back with the client's id. Upstreams
//! are tried in order; when none answers the client gets SERVFAIL.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tracing::debug;

use crate::query::servfail;

/// How long one upstream gets to answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// The upstream resolvers.
#[derive(Debug, Clone)]
pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
}

fn with_id(raw: &[u8], id: u16) -> Vec<u8> {
    let mut q = raw.to_vec();
    q[0..2].copy_from_slice(&id.to_be_bytes());
    q
}

fn answers(resp: &[u8], id: u16) -> bool {
    resp.len() >= 12 && resp[0..2] == id.to_be_bytes() && resp[2] & 0x80 != 0
}

impl Forwarder {
    /// Forwards to `upstreams`, in order.
    pub fn new(upstreams: Vec<SocketAddr>) -> Self {
        Forwarder { upstreams }
    }

    /// The answer to `raw` (a query that passed our checks, at least 12
    /// bytes) from the first upstream that gives one, else SERVFAIL.
    pub async fn forward(&self, raw: &[u8], tcp: bool) -> Option<Vec<u8>> {
        let client_id = [raw[0], raw[1]];
        for upstream in &self.upstreams {
            let id: u16 = rand::random();
            let q = with_id(raw, id);
            let result = if tcp {
                tokio::time::timeout(UPSTREAM_TIMEOUT, over_tcp(*upstream, &q, id)).await
            } else {
                tokio::time::timeout(UPSTREAM_TIMEOUT, over_udp(*upstream, &q, id)).await
            };
            match result {
                Ok(Ok(mut resp)) => {
                    resp[0..2].copy_from_slice(&client_id);
                    return Some(resp);
                }
                Ok(Err(error)) => debug!(%upstream, %error, "upstream failed"),
                Err(_) => debug!(%upstream, "upstream timed out"),
            }
        }
        servfail(raw)
    }
}

async fn over_udp(upstream: SocketAddr, q: &[u8], id: u16) -> std::io::Result<Vec<u8>> {
    let any: IpAddr = match upstream {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let sock = UdpSocket::bind((any, 0)).await?;
    sock.connect(upstream).await?;
    sock.send(q).await?;
    let mut buf = vec![0u8; 65_535];
    loop {
        let n = sock.recv(&mut buf).await?;
        // A connected socket only hears from the upstream; still, an
        // answer must carry our id.
        if answers(&buf[..n], id) {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

async fn over_tcp(upstream: SocketAddr, q: &[u8], id: u16) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(upstream).await?;
    s.set_nodelay(true)?;
    let len = u16::try_from(q.len()).map_err(std::io::Error::other)?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(q);
    s.write_all(&framed).await?;
    loop {
        let len = s.read_u16().await?;
        let mut buf = vec![0u8; usize::from(len)];
        s.read_exact(&mut buf).await?;
        if answers(&buf, id) {
            return Ok(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn relays_the_upstream_answer_with_the_client_id() {
        // A tiny upstream that answers every query with its own id and QR set.
        let up = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = up.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            if let Ok((n, src)) = up.recv_from(&mut buf) {
                buf[2] |= 0x80;
                let _ = up.send_to(&buf[..n], src);
            }
        });
        let f = Forwarder::new(vec![addr]);
        let q = [0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1];
        let resp = f.forward(&q, false).await.unwrap();
        assert_eq!(&resp[0..2], &[0xab, 0xcd]);
        assert_eq!(resp[2] & 0x80, 0x80);
        assert_eq!(&resp[3..], &q[3..]);
    }

    #[tokio::test]
    async fn servfail_when_no_upstream_answers() {
        // Bound but never answering.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let f = Forwarder::new(vec![silent.local_addr().unwrap()]);
        let q = [0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1];
        tokio::time::pause();
        let resp = f.forward(&q, false).await.unwrap();
        assert_eq!(resp[3] & 0x0f, 2, "SERVFAIL");
        assert_eq!(&resp[0..2], &[0, 7]);
    }
}
