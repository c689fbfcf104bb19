//! The client commands' TLS flags, for masters that serve REST over HTTPS
//! (`ocean master --tls-http`) and gRPC with certificates: the CA to
//! trust and, optionally, a client certificate. The names follow Nomad's
//! (`-ca-cert`, `-client-cert`, `-client-key`), and so do the variables.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use ocean_client::RestTls;

/// `--ca-cert`, `--client-cert`, `--client-key`.
#[derive(Debug, Clone, Default, Args)]
pub struct ClientTlsArgs {
    /// The cluster CA's certificate (PEM): talk HTTPS to the masters and
    /// trust only this CA (`ocean tls ca` made it).
    #[arg(long, global = true, env = "OCEAN_CACERT")]
    pub ca_cert: Option<PathBuf>,
    /// A client certificate to present (`ocean tls cert --role client`);
    /// with --client-key.
    #[arg(long, global = true, env = "OCEAN_CLIENT_CERT")]
    pub client_cert: Option<PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long, global = true, env = "OCEAN_CLIENT_KEY")]
    pub client_key: Option<PathBuf>,
}

/// The PEM files read: the CA, and a client certificate with its key.
struct Pems {
    ca: Vec<u8>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

fn read(flag: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("{flag}: cannot read {}", path.display()))
}

impl ClientTlsArgs {
    /// The CA and client identity, read and checked, if TLS was asked for.
    fn pems(&self) -> anyhow::Result<Option<Pems>> {
        let identity = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => {
                Some((read("--client-cert", cert)?, read("--client-key", key)?))
            }
            (None, None) => None,
            (Some(_), None) => anyhow::bail!("--client-key: needed with --client-cert"),
            (None, Some(_)) => anyhow::bail!("--client-cert: needed with --client-key"),
        };
        let Some(ca) = &self.ca_cert else {
            if identity.is_some() {
                anyhow::bail!("--ca-cert: needed with a client certificate (the masters' CA)");
            }
            return Ok(None);
        };
        let ca = read("--ca-cert", ca)?;
        if !String::from_utf8_lossy(&ca).contains("-----BEGIN CERTIFICATE-----") {
            anyhow::bail!(
                "--ca-cert: {} holds no PEM certificate",
                self.ca_cert
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            );
        }
        Ok(Some(Pems { ca, identity }))
    }

    /// The REST client's TLS settings.
    pub fn rest(&self) -> anyhow::Result<Option<RestTls>> {
        Ok(self.pems()?.map(|Pems { ca, identity }| RestTls {
            ca_pem: ca,
            identity_pem: identity.map(|(mut cert, key)| {
                cert.push(b'\n');
                cert.extend_from_slice(&key);
                cert
            }),
        }))
    }

    /// The gRPC client's TLS settings.
    pub fn grpc(&self) -> anyhow::Result<Option<tonic::transport::ClientTlsConfig>> {
        ocean_tls::install_provider();
        Ok(self.pems()?.map(|Pems { ca, identity }| {
            let config = tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(ca));
            match identity {
                Some((cert, key)) => {
                    config.identity(tonic::transport::Identity::from_pem(cert, key))
                }
                None => config,
            }
        }))
    }

    /// The flags as the environment gives them (a standalone framework
    /// or ELB agent has no global flags of its own).
    pub fn from_env() -> Self {
        let path = |var: &str| std::env::var_os(var).map(PathBuf::from);
        ClientTlsArgs {
            ca_cert: path("OCEAN_CACERT"),
            client_cert: path("OCEAN_CLIENT_CERT"),
            client_key: path("OCEAN_CLIENT_KEY"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_a_client_identity_is_named() {
        let args = ClientTlsArgs {
            ca_cert: None,
            client_cert: Some("/x/cert.pem".into()),
            client_key: None,
        };
        let e = args.rest().unwrap_err().to_string();
        assert!(e.contains("--client-key"), "{e}");
        let args = ClientTlsArgs {
            ca_cert: Some("/nonexistent/ca.pem".into()),
            ..ClientTlsArgs::default()
        };
        let e = args.rest().unwrap_err().to_string();
        assert!(
            e.contains("--ca-cert") && e.contains("/nonexistent/ca.pem"),
            "{e}"
        );
        assert!(ClientTlsArgs::default().rest().unwrap().is_none());
    }

    #[test]
    fn a_file_that_is_no_certificate_is_named() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "hello")?;
        let args = ClientTlsArgs {
            ca_cert: Some(path),
            ..ClientTlsArgs::default()
        };
        let e = args.rest().unwrap_err().to_string();
        assert!(
            e.contains("--ca-cert") && e.contains("no PEM certificate"),
            "{e}"
        );
        Ok(())
    }
}
