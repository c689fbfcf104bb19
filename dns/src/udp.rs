//! The UDP fast path: one OS thread per socket, several sockets on one
//! port (`SO_REUSEPORT`, the kernel spreads clients over them), each
//! thread receiving a batch of queries with one `recvmmsg`, answering them
//! (`Authority::handle`) and sending the answers with one `sendmmsg`:
//! plain blocking calls, no task wake-ups, two system calls per batch
//! instead of two per query, no allocation on a cache hit. Out-of-zone
//! queries go to the async forwarder and are answered from there.

use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    recvmmsg, sendmmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrLike, SockaddrStorage,
};
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

/// Queries taken per `recvmmsg`.
const BATCH: usize = 32;

/// Receive buffer per query: one byte more than the longest query we
/// accept, so a longer one is seen as too long (and gets FORMERR).
const QUERY_BUF: usize = crate::query::MAX_QUERY_LEN + 1;

fn std_addr(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
}

/// Serves `socket` on the calling thread until `stop` is set.
pub fn worker(
    socket: Arc<UdpSocket>,
    authority: Arc<Authority>,
    forward: mpsc::Sender<Forwarded>,
    stop: Arc<AtomicBool>,
) {
    let fd = socket.as_raw_fd();
    let mut bufs = vec![[0u8; QUERY_BUF]; BATCH];
    let mut outs: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(1024)).collect();
    let mut recv_headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut send_headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut got: Vec<(usize, Option<SockaddrStorage>)> = Vec::with_capacity(BATCH);
    let mut to: Vec<Option<SockaddrStorage>> = Vec::with_capacity(BATCH);
    let no_cmsgs: [ControlMessage<'_>; 0] = [];
    while !stop.load(Ordering::Relaxed) {
        got.clear();
        {
            let mut iovs: Vec<[IoSliceMut<'_>; 1]> = bufs
                .iter_mut()
                .map(|b| [IoSliceMut::new(&mut b[..])])
                .collect();
            // Blocks for the first query (up to the socket's read timeout,
            // so `stop` is seen), then takes whatever else is queued.
            match recvmmsg(
                fd,
                &mut recv_headers,
                iovs.iter_mut(),
                MsgFlags::MSG_WAITFORONE,
                None,
            ) {
                Ok(msgs) => got.extend(msgs.map(|m| (m.bytes, m.address))),
                Err(Errno::EAGAIN | Errno::EINTR) => continue,
                Err(error) => {
                    // ICMP errors from earlier sends surface here; keep serving.
                    debug!(%error, "UDP receive");
                    continue;
                }
            }
        }
        to.clear();
        for (i, (len, addr)) in got.iter().enumerate() {
            let Some(addr) = addr else { continue };
            let raw = &bufs[i][..*len];
            let out = &mut outs[to.len()];
            let src = std_addr(addr);
            match authority.handle(raw, Transport::Udp, src.map(|s| s.ip()), out) {
                Action::Reply => to.push(Some(*addr)),
                Action::Forward => {
                    let Some(src) = src else { continue };
                    if forward
                        .try_send((raw.to_vec(), src, socket.clone()))
                        .is_err()
                    {
                        // Upstreams are saturated: the client will retry.
                        debug!(%src, "forwarding queue full; query dropped");
                    }
                }
                Action::Drop => {}
            }
        }
        let mut sent = 0;
        while sent < to.len() {
            let slices: Vec<[IoSlice<'_>; 1]> = outs[sent..to.len()]
                .iter()
                .map(|o| [IoSlice::new(o)])
                .collect();
            match sendmmsg(
                fd,
                &mut send_headers,
                slices.iter(),
                &to[sent..],
                no_cmsgs,
                MsgFlags::empty(),
            ) {
                // A blocking socket sends them all unless one fails, which
                // the next call reports; the count is not read back (nix
                // would read the unused address slots to give it).
                Ok(_) => sent = to.len(),
                Err(Errno::EINTR) => {}
                Err(error) => {
                    // One bad destination: skip it, send the rest.
                    debug!(%error, to = ?to[sent].map(|a| a.family()), "UDP send");
                    sent += 1;
                }
            }
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
