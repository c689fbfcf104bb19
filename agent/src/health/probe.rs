//! Probes: one attempt of one check. [`Probe`] is the boundary the checker
//! sees; the real probes open sockets or run a command, tests use their own.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A boxed probe result.
pub type ProbeFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// One attempt of a check: `Ok` if healthy, else why not. The checker
/// bounds it with the check's timeout.
pub trait Probe: Send + Sync {
    /// Runs the check once.
    fn check(&self) -> ProbeFuture<'_>;
}

/// HTTP/1.1 GET of `path`; healthy if the status is in `min..=max`.
#[derive(Debug, Clone)]
pub struct HttpProbe {
    /// The task's host port.
    pub addr: SocketAddr,
    /// Path requested.
    pub path: String,
    /// Lowest healthy status.
    pub status_min: u16,
    /// Highest healthy status.
    pub status_max: u16,
}

impl Probe for HttpProbe {
    fn check(&self) -> ProbeFuture<'_> {
        Box::pin(async move {
            let mut s = TcpStream::connect(self.addr)
                .await
                .map_err(|e| format!("http GET {}: connect to {}: {e}", self.path, self.addr))?;
            let request = format!(
                "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: ocean-health-check\r\nConnection: close\r\n\r\n",
                self.path, self.addr
            );
            s.write_all(request.as_bytes())
                .await
                .map_err(|e| format!("http GET {}: send: {e}", self.path))?;
            let status = read_status(&mut s)
                .await
                .map_err(|e| format!("http GET {}: {e}", self.path))?;
            if (self.status_min..=self.status_max).contains(&status) {
                Ok(())
            } else {
                Err(format!(
                    "http GET {}: status {status}, expected {}..={}",
                    self.path, self.status_min, self.status_max
                ))
            }
        })
    }
}

/// Reads the status line of an HTTP response (`HTTP/1.x NNN ...`).
async fn read_status(s: &mut TcpStream) -> Result<u16, String> {
    let mut buf = Vec::with_capacity(128);
    let mut chunk = [0u8; 128];
    while !buf.contains(&b'\n') {
        if buf.len() > 4096 {
            return Err("status line longer than 4096 bytes".into());
        }
        let n = s.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("connection closed before a status line".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    parse_status_line(&buf)
}

/// The status code of a response's first line.
pub fn parse_status_line(buf: &[u8]) -> Result<u16, String> {
    let line = buf.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next().map(str::parse::<u16>)) {
        (Some(v), Some(Ok(code))) if v.starts_with("HTTP/") => Ok(code),
        _ => Err(format!("not an HTTP status line: {:?}", line.trim_end())),
    }
}

/// TCP connect: healthy if the port accepts.
#[derive(Debug, Clone)]
pub struct TcpProbe {
    /// The task's host port.
    pub addr: SocketAddr,
}

impl Probe for TcpProbe {
    fn check(&self) -> ProbeFuture<'_> {
        Box::pin(async move {
            TcpStream::connect(self.addr)
                .await
                .map(drop)
                .map_err(|e| format!("tcp connect to {}: {e}", self.addr))
        })
    }
}

/// `/bin/sh -c command` in the task's environment and sandbox; exit 0 is
/// healthy. Killed when the check times out (the future is dropped).
#[derive(Debug, Clone)]
pub struct CommandProbe {
    /// The shell command.
    pub command: String,
    /// The task's environment.
    pub env: BTreeMap<String, String>,
    /// The task's sandbox, its working directory.
    pub cwd: PathBuf,
}

impl Probe for CommandProbe {
    fn check(&self) -> ProbeFuture<'_> {
        Box::pin(async move {
            let status = tokio::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(&self.command)
                .env_clear()
                .envs(&self.env)
                .current_dir(&self.cwd)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .status()
                .await
                .map_err(|e| format!("command: cannot run /bin/sh: {e}"))?;
            if status.success() {
                Ok(())
            } else {
                Err(format!("command {:?} ended with {status}", self.command))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_parse() {
        assert_eq!(parse_status_line(b"HTTP/1.0 500 Oops\r\n"), Ok(500));
        assert_eq!(parse_status_line(b"HTTP/1.1 204\r\nx"), Ok(204));
        assert!(parse_status_line(b"SSH-2.0-OpenSSH\r\n").is_err());
        assert!(parse_status_line(b"HTTP/1.1 abc\r\n").is_err());
    }

    #[tokio::test]
    async fn real_probes_see_a_real_server() -> anyhow::Result<()> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            for status in [200, 503] {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let reply = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n");
                let _ = s.write_all(reply.as_bytes()).await;
            }
        });
        let http = HttpProbe {
            addr,
            path: "/health".into(),
            status_min: 200,
            status_max: 299,
        };
        assert_eq!(http.check().await, Ok(()));
        let err = http.check().await.err().unwrap_or_default();
        assert!(err.contains("status 503"), "{err}");
        server.await?;
        // Nothing listens any more.
        let tcp = TcpProbe { addr };
        assert!(tcp.check().await.is_err());
        let dir = tempfile::tempdir()?;
        let env = BTreeMap::from([("WANT".to_string(), "yes".to_string())]);
        let ok = CommandProbe {
            command: "test \"$WANT\" = yes && test -d .".into(),
            env: env.clone(),
            cwd: dir.path().to_path_buf(),
        };
        assert_eq!(ok.check().await, Ok(()));
        let bad = CommandProbe {
            command: "exit 3".into(),
            env,
            cwd: dir.path().to_path_buf(),
        };
        assert!(bad
            .check()
            .await
            .is_err_and(|e| e.contains("exit status: 3")));
        Ok(())
    }
}
