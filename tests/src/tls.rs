//! Certificates for tests, issued by the real `ocean tls` commands, and
//! clusters whose masters run with them (raft on its own mTLS listener).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::cluster::{free_addr, ocean_bin, Cluster};

/// A CA directory and the certificates it issued, under one temp dir.
#[derive(Debug)]
pub struct Pki {
    /// The CA's directory (ca.pem, ca-key.pem).
    pub ca: PathBuf,
    root: PathBuf,
}

fn ocean_tls(args: &[&str]) -> anyhow::Result<()> {
    let out = std::process::Command::new(ocean_bin())
        .arg("tls")
        .args(args)
        .output()
        .context("running ocean tls")?;
    if !out.status.success() {
        bail!(
            "ocean tls {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

impl Pki {
    /// A new CA named `name` in `root/name`.
    pub fn new(root: &Path, name: &str) -> anyhow::Result<Self> {
        let ca = root.join(name).join("ca");
        ocean_tls(&["ca", "--out", &ca.to_string_lossy(), "--name", name])?;
        Ok(Pki {
            ca,
            root: root.join(name),
        })
    }

    /// Issues a certificate for `role:name` and returns its directory
    /// (for `--tls-dir`).
    pub fn cert(&self, role: &str, name: &str) -> anyhow::Result<PathBuf> {
        let out = self.root.join(format!("{role}-{name}"));
        ocean_tls(&[
            "cert",
            "--ca",
            &self.ca.to_string_lossy(),
            "--name",
            name,
            "--role",
            role,
            "--out",
            &out.to_string_lossy(),
        ])?;
        Ok(out)
    }
}

/// A cluster of `n` masters with certificates from `pki` (master `i` is
/// `master:m<i>`), raft on listeners of their own.
#[derive(Debug)]
pub struct TlsCluster {
    /// The masters (REST stays plain HTTP; gRPC serves TLS).
    pub cluster: Cluster,
    /// Master `i`'s raft listener is `raft[i - 1]`.
    pub raft: Vec<SocketAddr>,
}

impl TlsCluster {
    /// Starts it, with `extra` flags for every master.
    pub fn start(n: u64, pki: &Pki, extra: &[&str]) -> anyhow::Result<Self> {
        let raft: Vec<SocketAddr> = (0..n).map(|_| free_addr()).collect();
        let raft_peers = raft
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{}={a}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let certs = (1..=n)
            .map(|id| pki.cert("master", &format!("m{id}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let cluster = Cluster::start_each(n, |id| {
            let mut args = vec![
                "--raft-addr".to_string(),
                raft[id as usize - 1].to_string(),
                "--raft-peers".to_string(),
                raft_peers.clone(),
                "--tls-dir".to_string(),
                certs[id as usize - 1].to_string_lossy().into_owned(),
            ];
            args.extend(extra.iter().map(|s| s.to_string()));
            args
        })?;
        Ok(TlsCluster { cluster, raft })
    }

    /// Master `id`'s raft listener.
    pub fn raft_addr(&self, id: u64) -> SocketAddr {
        self.raft[id as usize - 1]
    }
}

impl Pki {
    /// Issues a certificate in this process (no `ocean tls` spawn: the
    /// schedule benchmark needs one per simulated agent) and returns a
    /// channel setting that presents it and trusts the CA.
    pub fn client_tls(
        &self,
        role: ocean_tls::Role,
        name: &str,
    ) -> anyhow::Result<tonic::transport::ClientTlsConfig> {
        let identity = ocean_tls::Identity::new(role, name)?;
        let out = self.root.join(format!("{role}-{name}"));
        ocean_tls::issue(&self.ca, &identity, &[], &out)?;
        Ok(ocean_tls::TlsFiles::from_dir(&out).client()?)
    }
}

/// A lazily-connecting channel to `addr`, over TLS when `tls` is given.
pub fn channel(
    addr: &str,
    tls: Option<&tonic::transport::ClientTlsConfig>,
) -> anyhow::Result<tonic::transport::Channel> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut ep = tonic::transport::Endpoint::from_shared(format!("{scheme}://{addr}"))?
        .tcp_nodelay(true)
        .http2_adaptive_window(true);
    if let Some(tls) = tls {
        ep = ep.tls_config(tls.clone())?;
    }
    Ok(ep.connect_lazy())
}
