//! Fetching one artifact into the job's download cache: over HTTP(S) with
//! reqwest or from a `file://` path, hashed while it is written, kept only
//! when its SHA-256 is the expected one. Bounded: [`FETCH_TIMEOUT`] in
//! all, [`STALL_TIMEOUT`] between two pieces.

use std::path::Path;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::info;

use super::{ArtifactSpec, ReleaseError, FETCH_TIMEOUT, STALL_TIMEOUT};

/// Fetches `artifact` to `target` (replacing nothing unless verified).
pub(super) async fn fetch(
    index: usize,
    artifact: &ArtifactSpec,
    target: &Path,
) -> Result<(), ReleaseError> {
    let fail = |message: String| ReleaseError::Fetch {
        index,
        url: artifact.url.clone(),
        message,
    };
    let partial = target.with_extension(format!("part-{}", std::process::id()));
    let result = tokio::time::timeout(FETCH_TIMEOUT, copy_hashed(&artifact.url, &partial))
        .await
        .unwrap_or_else(|_| Err(format!("no complete answer within {FETCH_TIMEOUT:?}")));
    let actual = match result {
        Ok(digest) => digest,
        Err(message) => {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(fail(message));
        }
    };
    if !actual.eq_ignore_ascii_case(&artifact.sha256) {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(ReleaseError::Checksum {
            index,
            url: artifact.url.clone(),
            expected: artifact.sha256.to_ascii_lowercase(),
            actual,
        });
    }
    tokio::fs::rename(&partial, target)
        .await
        .map_err(ReleaseError::io("keep download", target))?;
    info!(url = %artifact.url, sha256 = %actual, "artifact fetched");
    Ok(())
}

/// Copies the URL's bytes to `to`, returning their SHA-256 in hex.
async fn copy_hashed(url: &str, to: &Path) -> Result<String, String> {
    let mut out = tokio::fs::File::create(to)
        .await
        .map_err(|e| format!("create {}: {e}", to.display()))?;
    let mut hasher = Sha256::new();
    if let Some(path) = url.strip_prefix("file://") {
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| format!("open {path}: {e}"))?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = file
                .read(&mut buf)
                .await
                .map_err(|e| format!("read {path}: {e}"))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .await
                .map_err(|e| format!("write {}: {e}", to.display()))?;
        }
    } else {
        let client = reqwest::Client::builder()
            .connect_timeout(STALL_TIMEOUT)
            .build()
            .map_err(|e| format!("http client: {e}"))?;
        let mut response = tokio::time::timeout(STALL_TIMEOUT, client.get(url).send())
            .await
            .map_err(|_| format!("no answer within {STALL_TIMEOUT:?}"))?
            .map_err(|e| error_chain(&e))?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        loop {
            let chunk = tokio::time::timeout(STALL_TIMEOUT, response.chunk())
                .await
                .map_err(|_| format!("download stalled for {STALL_TIMEOUT:?}"))?
                .map_err(|e| error_chain(&e))?;
            let Some(chunk) = chunk else { break };
            hasher.update(&chunk);
            out.write_all(&chunk)
                .await
                .map_err(|e| format!("write {}: {e}", to.display()))?;
        }
    }
    out.flush()
        .await
        .map_err(|e| format!("write {}: {e}", to.display()))?;
    Ok(hex(&hasher.finalize()))
}

/// reqwest's error with its causes (the top one alone says little).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Lowercase hex.
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(bytes: &[u8]) -> String {
        hex(&Sha256::digest(bytes))
    }

    #[tokio::test]
    async fn file_urls_are_verified() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let source = dir.path().join("app.bin");
        std::fs::write(&source, b"hello")?;
        let target = dir.path().join("cached");
        let mut artifact = ArtifactSpec {
            url: format!("file://{}", source.display()),
            sha256: sha(b"hello").to_uppercase(),
            extract: false,
            dest: "app.bin".into(),
        };
        fetch(0, &artifact, &target).await?;
        assert_eq!(std::fs::read(&target)?, b"hello");

        artifact.sha256 = sha(b"other");
        let other = dir.path().join("other");
        let error = fetch(3, &artifact, &other).await.unwrap_err().to_string();
        assert!(
            error.starts_with("artifacts[3]: sha256 mismatch"),
            "{error}"
        );
        assert!(error.contains(&artifact.url), "{error}");
        assert!(
            error.contains(&sha(b"other")) && error.contains(&sha(b"hello")),
            "{error}"
        );
        assert!(!other.exists(), "a mismatch keeps nothing");
        assert_eq!(
            std::fs::read_dir(dir.path())?.count(),
            2,
            "no partial file left"
        );

        artifact.url = "file:///nonexistent/x".into();
        let error = fetch(0, &artifact, &other).await.unwrap_err().to_string();
        assert!(
            error.contains("cannot fetch file:///nonexistent/x"),
            "{error}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn https_urls_are_fetched_over_tls() -> anyhow::Result<()> {
        // A server that is not TLS: the fetch connects, the handshake fails.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let server = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await?;
            conn.write_all(b"HTTP/1.1 200 OK\r\n\r\nnot tls").await?;
            anyhow::Ok(())
        });
        let dir = tempfile::tempdir()?;
        let artifact = ArtifactSpec {
            url: format!("https://127.0.0.1:{port}/app.tar"),
            sha256: "0".repeat(64),
            extract: false,
            dest: "app.tar".into(),
        };
        let error = fetch(0, &artifact, &dir.path().join("x"))
            .await
            .unwrap_err();
        tokio::time::timeout(STALL_TIMEOUT, server).await???;
        assert!(
            error.to_string().contains("cannot fetch https://"),
            "{error}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn unreachable_servers_fail_quickly_and_name_the_url() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        // A port that was just free: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let artifact = ArtifactSpec {
            url: format!("http://127.0.0.1:{port}/app.tar"),
            sha256: "0".repeat(64),
            extract: false,
            dest: "app.tar".into(),
        };
        let error = fetch(1, &artifact, &dir.path().join("x"))
            .await
            .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with(&format!("artifacts[1]: cannot fetch {}", artifact.url)),
            "{error}"
        );
        Ok(())
    }
}
