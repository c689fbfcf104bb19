//! A certificate directory (or three files) turned into the TLS settings
//! of a gRPC server or channel. tonic builds them with the process's
//! default crypto provider, so each installs Ocean's first
//! ([`crate::provider`]).

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig, Identity as TonicIdentity, ServerTlsConfig};

use crate::{TlsError, CA_CERT, CERT, KEY};

/// Where a process's certificate, its key and the CA's certificate are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// This process's certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// The CA's certificate (PEM): peers must chain to it.
    pub ca: PathBuf,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !String::from_utf8_lossy(&bytes).contains("-----BEGIN ") {
        return Err(TlsError::BadFile {
            path: path.to_path_buf(),
            reason: "not PEM".into(),
        });
    }
    Ok(bytes)
}

impl TlsFiles {
    /// The files `ocean tls cert --out DIR` wrote.
    pub fn from_dir(dir: &Path) -> Self {
        TlsFiles {
            cert: dir.join(CERT),
            key: dir.join(KEY),
            ca: dir.join(CA_CERT),
        }
    }

    /// Checks the files are there and hold PEM, naming the first that
    /// does not.
    pub fn check(&self) -> Result<(), TlsError> {
        for p in [&self.cert, &self.key, &self.ca] {
            read(p)?;
        }
        Ok(())
    }

    fn identity(&self) -> Result<TonicIdentity, TlsError> {
        Ok(TonicIdentity::from_pem(read(&self.cert)?, read(&self.key)?))
    }

    fn ca(&self) -> Result<Certificate, TlsError> {
        Ok(Certificate::from_pem(read(&self.ca)?))
    }

    /// A server that presents this certificate and checks client
    /// certificates against the CA: required when `require_client_cert`,
    /// else optional (checked if presented; services decide what they need).
    pub fn server(&self, require_client_cert: bool) -> Result<ServerTlsConfig, TlsError> {
        crate::provider::install();
        Ok(ServerTlsConfig::new()
            .identity(self.identity()?)
            .client_ca_root(self.ca()?)
            .client_auth_optional(!require_client_cert))
    }

    /// A channel that trusts only the CA and presents this certificate.
    pub fn client(&self) -> Result<ClientTlsConfig, TlsError> {
        crate::provider::install();
        Ok(ClientTlsConfig::new()
            .ca_certificate(self.ca()?)
            .identity(self.identity()?))
    }

    /// A channel that trusts only the CA at `ca` and presents no
    /// certificate (an API client without one).
    pub fn client_without_cert(ca: &Path) -> Result<ClientTlsConfig, TlsError> {
        crate::provider::install();
        Ok(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca)?)))
    }
}
