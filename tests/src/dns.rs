//! `ocean dns` processes and a small DNS client that sends real packets
//! over UDP and TCP (encoded and decoded with hickory-proto).

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::cluster::{free_addr, Process};

/// One `ocean dns` process.
#[derive(Debug)]
pub struct DnsProc {
    /// Where it serves UDP and TCP.
    pub addr: SocketAddr,
    /// Flags after `ocean dns`.
    pub args: Vec<String>,
    /// The process.
    pub process: Process,
}

impl DnsProc {
    /// A DNS server following `masters` (gRPC addresses), logging into
    /// `dir`, with extra flags (`--upstream`, `--domain`, ...). Not started.
    pub fn new(dir: &Path, name: &str, masters: &[SocketAddr], extra: &[&str]) -> Self {
        let masters = masters
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let mut args = vec!["--master".to_string(), masters];
        args.extend(extra.iter().map(|s| s.to_string()));
        DnsProc {
            addr: free_addr(),
            args,
            process: Process::new(dir.join(format!("dns-{name}.log"))),
        }
    }

    /// Starts it and waits until it accepts TCP connections.
    pub fn start(&mut self) -> anyhow::Result<()> {
        let mut args: Vec<std::ffi::OsString> = vec!["dns".into(), "--listen".into()];
        args.push(self.addr.to_string().into());
        args.extend(self.args.iter().map(Into::into));
        self.process.spawn(&args)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_err()
        {
            if self.process.exited() || Instant::now() > deadline {
                bail!(
                    "ocean dns is not listening on {}:\n{}",
                    self.addr,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// The tail of its log.
    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }
}

/// A query for `name` (absolute, e.g. `web.ocean.`) of type `t`.
pub fn query_bytes(name: &str, t: RecordType, edns: bool) -> anyhow::Result<Vec<u8>> {
    let mut m = Message::new(rand_id(), MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name)?, t));
    if edns {
        m.set_edns(Edns::new());
    }
    Ok(m.to_vec()?)
}

fn rand_id() -> u16 {
    use std::time::SystemTime;
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (nanos ^ (nanos >> 16)) as u16
}

/// Sends `bytes` over UDP and returns the first datagram back, or `None`
/// when nothing comes within `wait`.
pub async fn udp_raw(
    server: SocketAddr,
    bytes: &[u8],
    wait: Duration,
) -> anyhow::Result<Option<Vec<u8>>> {
    let sock = UdpSocket::bind("127.0.0.1:0").await?;
    sock.send_to(bytes, server).await?;
    let mut buf = vec![0u8; 65_535];
    match tokio::time::timeout(wait, sock.recv(&mut buf)).await {
        Ok(n) => {
            buf.truncate(n?);
            Ok(Some(buf))
        }
        Err(_) => Ok(None),
    }
}

/// Sends `bytes` as one TCP DNS message and reads one back (`None` when
/// the server closes the connection instead).
pub async fn tcp_raw(server: SocketAddr, bytes: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
    let work = async {
        let mut s = TcpStream::connect(server).await?;
        let len = u16::try_from(bytes.len()).context("message too long for TCP")?;
        s.write_all(&len.to_be_bytes()).await?;
        s.write_all(bytes).await?;
        let mut len = [0u8; 2];
        if s.read_exact(&mut len).await.is_err() {
            return Ok(None);
        }
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut buf).await?;
        anyhow::Ok(Some(buf))
    };
    tokio::time::timeout(Duration::from_secs(5), work)
        .await
        .context("TCP query timed out")?
}

/// Asks `server` over UDP (or TCP) and decodes the answer, which must
/// carry the query's id.
pub async fn ask(
    server: SocketAddr,
    name: &str,
    t: RecordType,
    tcp: bool,
) -> anyhow::Result<Message> {
    let q = query_bytes(name, t, false)?;
    let bytes = if tcp {
        tcp_raw(server, &q).await?
    } else {
        udp_raw(server, &q, Duration::from_secs(2)).await?
    };
    let bytes = bytes.with_context(|| format!("no answer from {server} for {name} {t}"))?;
    let m = Message::from_vec(&bytes)?;
    anyhow::ensure!(
        m.metadata.id == u16::from_be_bytes([q[0], q[1]]),
        "wrong id"
    );
    Ok(m)
}

/// Asks `server` from the local address `src` (a loopback address other
/// than 127.0.0.1 stands for another client network), over UDP or TCP,
/// with an EDNS client subnet option when `subnet` is given (as a resolver
/// would send it).
pub async fn ask_from(
    server: SocketAddr,
    src: std::net::IpAddr,
    name: &str,
    t: RecordType,
    tcp: bool,
    subnet: Option<ClientSubnet>,
) -> anyhow::Result<Message> {
    let mut m = Message::new(rand_id(), MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name)?, t));
    if let Some(s) = subnet {
        let mut e = Edns::new();
        e.options_mut().insert(EdnsOption::Subnet(s));
        m.set_edns(e);
    }
    let q = m.to_vec()?;
    let bytes = if tcp {
        let work = async {
            let sock = tokio::net::TcpSocket::new_v4()?;
            sock.bind(SocketAddr::new(src, 0))?;
            let mut s = sock.connect(server).await?;
            let len = u16::try_from(q.len())?;
            s.write_all(&len.to_be_bytes()).await?;
            s.write_all(&q).await?;
            let mut len = [0u8; 2];
            s.read_exact(&mut len).await?;
            let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
            s.read_exact(&mut buf).await?;
            anyhow::Ok(buf)
        };
        tokio::time::timeout(Duration::from_secs(5), work)
            .await
            .context("TCP query timed out")??
    } else {
        let sock = UdpSocket::bind(SocketAddr::new(src, 0)).await?;
        sock.send_to(&q, server).await?;
        let mut buf = vec![0u8; 65_535];
        let n = tokio::time::timeout(Duration::from_secs(2), sock.recv(&mut buf))
            .await
            .with_context(|| format!("no answer from {server} for {name} {t} from {src}"))??;
        buf.truncate(n);
        buf
    };
    let a = Message::from_vec(&bytes)?;
    anyhow::ensure!(a.metadata.id == m.metadata.id, "wrong id");
    Ok(a)
}

/// The EDNS client subnet option of an answer.
pub fn answer_subnet(m: &Message) -> Option<ClientSubnet> {
    match m.edns.as_ref()?.option(EdnsCode::Subnet)? {
        EdnsOption::Subnet(s) => Some(*s),
        _ => None,
    }
}

/// Asks until `check` holds for the answer (bounded), returning it.
pub async fn wait_answer(
    server: SocketAddr,
    name: &str,
    t: RecordType,
    what: &str,
    timeout: Duration,
    check: impl Fn(&Message) -> bool,
) -> anyhow::Result<Message> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = ask(server, name, t, false).await;
        if let Ok(m) = &last {
            if check(m) {
                return Ok(m.clone());
            }
        }
        if Instant::now() > deadline {
            bail!("{what}: {name} {t} did not come within {timeout:?}; last answer {last:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The IP addresses in the answer section.
pub fn addrs(m: &Message) -> Vec<std::net::IpAddr> {
    let mut v: Vec<std::net::IpAddr> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.into()),
            RData::AAAA(a) => Some(a.0.into()),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

/// The SRV records in the answer section as (port, target without the
/// final dot), sorted.
pub fn srvs(m: &Message) -> Vec<(u16, String)> {
    let mut v: Vec<(u16, String)> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(s) => Some((
                s.port,
                s.target.to_ascii().trim_end_matches('.').to_string(),
            )),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

/// The response code.
pub fn rcode(m: &Message) -> ResponseCode {
    m.metadata.response_code
}
