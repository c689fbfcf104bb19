//! A node's RDB snapshot, streamed over Redis' own replication protocol
//! (what `redis-cli --rdb` does): `REPLCONF capa eof`, `REPLCONF rdb-only
//! 1`, `SYNC`. The node forks and sends a point-in-time RDB of its whole
//! dataset, then closes the connection (rdb-only: no command stream
//! follows, and the node does not keep us as a replica).
//!
//! Asked of a synced replica, the fork and the transfer cost the replica
//! only: the primary's clients never wait on a backup. Nothing is read
//! from the node's disk, so this works wherever the task runs (its
//! sandbox may be on another host).
//!
//! The reply is either `$<len>\r\n` and `len` bytes (a disk-based
//! transfer) or, when the node streams without a file (`repl-diskless-sync
//! yes`, 7.0's default), `$EOF:<40 chars>\r\n`, the bytes, and those 40
//! characters again. Newlines alone before it are the node's keep-alives
//! while it forks.

use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::backup::BackupError;

/// The diskless transfer's end mark is this long.
const EOF_MARK_LEN: usize = 40;

/// What [`fetch`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Bytes of the RDB file.
    pub bytes: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
}

fn node_err(addr: &str, reason: impl std::fmt::Display) -> BackupError {
    BackupError::Node {
        addr: addr.to_string(),
        reason: reason.to_string(),
    }
}

/// Streams node `addr`'s RDB snapshot into `path` (through a temporary
/// name and a rename), within `timeout` in all.
pub async fn fetch(addr: &str, path: &Path, timeout: Duration) -> Result<Fetched, BackupError> {
    match tokio::time::timeout(timeout, fetch_unbounded(addr, path)).await {
        Ok(r) => r,
        Err(_) => Err(node_err(
            addr,
            format!("no whole RDB snapshot within {timeout:?}"),
        )),
    }
}

async fn fetch_unbounded(addr: &str, path: &Path) -> Result<Fetched, BackupError> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| node_err(addr, e))?;
    let mut con = BufReader::new(stream);
    for cmd in ["REPLCONF capa eof", "REPLCONF rdb-only 1"] {
        con.get_mut()
            .write_all(format!("{cmd}\r\n").as_bytes())
            .await
            .map_err(|e| node_err(addr, e))?;
        let line = read_line(&mut con, addr).await?;
        if line != "+OK" {
            return Err(node_err(addr, format!("{cmd}: {line}")));
        }
    }
    con.get_mut()
        .write_all(b"SYNC\r\n")
        .await
        .map_err(|e| node_err(addr, e))?;
    let header = loop {
        let line = read_line(&mut con, addr).await?;
        if !line.is_empty() {
            break line;
        }
    };
    let Some(size) = header.strip_prefix('$') else {
        // `-NOMASTERLINK ...` from a replica still syncing, for one.
        return Err(node_err(addr, format!("SYNC: {header}")));
    };
    let tmp = path.with_extension("part");
    let file = tokio::fs::File::create(&tmp)
        .await
        .map_err(|e| file_err(&tmp, e))?;
    let mut out = Sink {
        file: tokio::io::BufWriter::new(file),
        hash: Sha256::new(),
        bytes: 0,
        path: &tmp,
    };
    if let Some(mark) = size.strip_prefix("EOF:") {
        copy_until_mark(&mut con, mark.as_bytes(), &mut out, addr).await?;
    } else {
        let len: u64 = size
            .parse()
            .map_err(|_| node_err(addr, format!("SYNC: bad length line '{header}'")))?;
        copy_exact(&mut con, len, &mut out, addr).await?;
    }
    let Sink {
        mut file,
        hash,
        bytes,
        ..
    } = out;
    file.flush().await.map_err(|e| file_err(&tmp, e))?;
    file.get_mut()
        .sync_all()
        .await
        .map_err(|e| file_err(&tmp, e))?;
    drop(file);
    check_header(&tmp)?;
    tokio::fs::rename(&tmp, path)
        .await
        .map_err(|e| file_err(path, e))?;
    Ok(Fetched {
        bytes,
        sha256: format!("{:x}", hash.finalize()),
    })
}

struct Sink<'a> {
    file: tokio::io::BufWriter<tokio::fs::File>,
    hash: Sha256,
    bytes: u64,
    path: &'a Path,
}

impl Sink<'_> {
    async fn put(&mut self, b: &[u8]) -> Result<(), BackupError> {
        self.hash.update(b);
        self.bytes += b.len() as u64;
        self.file
            .write_all(b)
            .await
            .map_err(|e| file_err(self.path, e))
    }
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> BackupError {
    BackupError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// One `\r\n`- (or, for keep-alives, `\n`-) terminated line, without it.
async fn read_line<R: AsyncBufReadExt + Unpin>(
    con: &mut R,
    addr: &str,
) -> Result<String, BackupError> {
    let mut line = Vec::new();
    let n = con
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| node_err(addr, e))?;
    if n == 0 {
        return Err(node_err(addr, "closed the connection"));
    }
    while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        line.pop();
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

async fn copy_exact<R: AsyncReadExt + Unpin>(
    con: &mut R,
    mut left: u64,
    out: &mut Sink<'_>,
    addr: &str,
) -> Result<(), BackupError> {
    let mut buf = vec![0u8; 64 * 1024];
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = con
            .read(&mut buf[..want])
            .await
            .map_err(|e| node_err(addr, e))?;
        if n == 0 {
            return Err(node_err(addr, format!("closed with {left} bytes to go")));
        }
        out.put(&buf[..n]).await?;
        left -= n as u64;
    }
    Ok(())
}

/// Copies until the stream ends with `mark`; the mark is not copied. The
/// last [`EOF_MARK_LEN`] bytes are held back until more arrive, since
/// they may be the mark.
async fn copy_until_mark<R: AsyncReadExt + Unpin>(
    con: &mut R,
    mark: &[u8],
    out: &mut Sink<'_>,
    addr: &str,
) -> Result<(), BackupError> {
    if mark.len() != EOF_MARK_LEN {
        return Err(node_err(addr, "SYNC: an end mark of the wrong length"));
    }
    let mut held: Vec<u8> = Vec::with_capacity(128 * 1024);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = con.read(&mut buf).await.map_err(|e| node_err(addr, e))?;
        if n == 0 {
            return Err(node_err(addr, "closed before the end of the RDB"));
        }
        held.extend_from_slice(&buf[..n]);
        if held.ends_with(mark) {
            held.truncate(held.len() - mark.len());
            return out.put(&held).await;
        }
        if held.len() > EOF_MARK_LEN {
            let keep = held.split_off(held.len() - EOF_MARK_LEN);
            out.put(&held).await?;
            held = keep;
        }
    }
}

/// An RDB file starts `REDIS` and a four-digit version.
fn check_header(path: &Path) -> Result<(), BackupError> {
    let mut head = [0u8; 9];
    let ok = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok();
    if ok && head.starts_with(b"REDIS") && head[5..].iter().all(u8::is_ascii_digit) {
        Ok(())
    } else {
        Err(file_err(path, "not an RDB file (no REDIS header)"))
    }
}

/// The SHA-256 of a file, hex.
pub fn sha256_of(path: &Path) -> Result<String, BackupError> {
    let mut f = std::fs::File::open(path).map_err(|e| file_err(path, e))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| file_err(path, e))?;
    Ok(format!("{:x}", h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("ocean-rdb-test-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn sink(dir: &Path) -> (Sink<'static>, std::path::PathBuf) {
        let p = dir.join("out");
        let leaked: &'static Path = Box::leak(p.clone().into_boxed_path());
        let f = std::fs::File::create(&p).unwrap();
        (
            Sink {
                file: tokio::io::BufWriter::new(tokio::fs::File::from_std(f)),
                hash: Sha256::new(),
                bytes: 0,
                path: leaked,
            },
            p,
        )
    }

    #[tokio::test]
    async fn a_diskless_transfer_ends_at_its_mark_split_anywhere() {
        let dir = scratch("mark");
        let mark = [b'm'; EOF_MARK_LEN];
        let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut wire = body.clone();
        wire.extend_from_slice(&mark);
        // A reader that hands out odd-sized pieces, so the mark arrives
        // split across reads.
        let (mut tx, mut rx) = tokio::io::duplex(977);
        let writer = tokio::spawn(async move { tx.write_all(&wire).await });
        let (mut out, p) = sink(&dir);
        copy_until_mark(&mut rx, &mark, &mut out, "n")
            .await
            .unwrap();
        out.file.flush().await.unwrap();
        writer.await.unwrap().unwrap();
        assert_eq!(out.bytes, body.len() as u64);
        assert_eq!(std::fs::read(p).unwrap(), body);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_cut_transfer_is_an_error() {
        let dir = scratch("cut");
        let (mut out, _) = sink(&dir);
        let mut short: &[u8] = b"REDIS0010 and then nothing";
        let e = copy_exact(&mut short, 100, &mut out, "n")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("bytes to go"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
