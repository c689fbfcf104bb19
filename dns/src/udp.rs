//! The UDP fast path: one OS thread per socket, several sockets on one
//! port (`SO_REUSEPORT`, the kernel spreads clients over them), each
//! thread receiving, answering (`Authority::handle`) and sending with
//! plain blocking calls: no task wake-ups, no allocation on a cache hit.
//! Out-of-zone queries go to the async forwarder and are answered from
//! there.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::error::{Error, Result};
use crate::query::{Action, Authority, Transport};

/// A query waiting for an upstream: its bytes, who asked, and the socket
/// to answer on.
pub type Forwarded = (Vec<u8>, SocketAddr, Arc<UdpSocket>);

/// How often a blocked worker looks at the stop flag.
const POLL: Duration = Duration::from_millis(200);

/// Binds one UDP socket on `addr` with `SO_REUSEPORT`, so that siblings
/// can share the port.
pub fn bind_reuseport(addr: SocketAddr) -> Result<UdpSocket> {
    let context = || format!("bind UDP {addr}");
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(Error::io(context()))?;
    socket.set_reuse_port(true).map_err(Error::io(context()))?;
    // Room for bursts while a worker is busy.
    let _ = socket.set_recv_buffer_size(4 << 20);
    let _ = socket.set_send_buffer_size(4 << 20);
    socket.bind(&addr.into()).map_err(Error::io(context()))?;
    let socket: UdpSocket = socket.into();
    socket
        .set_read_timeout(Some(POLL))
        .map_err(Error::io(context()))?;
    Ok(socket)
}

/// Binds `n` sockets on `addr`; with port 0 the first picks the port and
/// the others join it.
pub fn bind_all(addr: SocketAddr, n: usize) -> Result<Vec<UdpSocket>> {
    let first = bind_reuseport(addr)?;
    let port = first
        .local_addr()
        .map_err(Error::io("UDP local address"))?
        .port();
    let mut out = vec![first];
    for _ in 1..n.max(1) {
        out.push(bind_reuseport(SocketAddr::new(addr.ip(), port))?);
    }
    Ok(out)
}

/// Serves `socket` on the calling thread until `stop` is set.
pub fn worker(
    socket: Arc<UdpSocket>,
    authority: Arc<Authority>,
    forward: mpsc::Sender<Forwarded>,
    stop: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 65_536];
    let mut out = Vec::with_capacity(4096);
    while !stop.load(Ordering::Relaxed) {
        let (n, src) = match socket.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(error) => {
                // ICMP errors from earlier sends surface here; keep serving.
                debug!(%error, "UDP receive");
                continue;
            }
        };
        match authority.handle(&buf[..n], Transport::Udp, &mut out) {
            Action::Reply => {
                if let Err(error) = socket.send_to(&out, src) {
                    debug!(%error, %src, "UDP send");
                }
            }
            Action::Forward => {
                if forward
                    .try_send((buf[..n].to_vec(), src, socket.clone()))
                    .is_err()
                {
                    // Upstreams are saturated: the client will retry.
                    debug!(%src, "forwarding queue full; query dropped");
                }
            }
            Action::Drop => {}
        }
    }
}

/// Runs the forwarder: answers queued out-of-zone queries from upstream.
pub async fn forwarder(mut rx: mpsc::Receiver<Forwarded>, fwd: crate::forward::Forwarder) {
    while let Some((raw, src, socket)) = rx.recv().await {
        let fwd = fwd.clone();
        tokio::spawn(async move {
            if let Some(resp) = fwd.forward(&raw, false).await {
                if let Err(error) = socket.send_to(&resp, src) {
                    warn!(%error, %src, "UDP send of a forwarded answer");
                }
            }
        });
    }
}
