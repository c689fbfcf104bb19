//! The rustls settings of the REST listener (`--tls-http`): the master's
//! certificate, client certificates checked against the CA when presented
//! but not required (the REST API authenticates with tokens), HTTP/2 and
//! HTTP/1.1 by ALPN.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::{TlsError, TlsFiles};

fn bad(path: &std::path::Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::BadFile {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(path, e))?;
    if certs.is_empty() {
        return Err(bad(path, "no CERTIFICATE in the file"));
    }
    Ok(certs)
}

impl TlsFiles {
    /// The REST listener's TLS: this certificate, client certificates
    /// optional (verified against the CA when a client sends one).
    pub fn rest_server(&self) -> Result<Arc<ServerConfig>, TlsError> {
        // The gRPC servers' provider: one crypto backend in the binary.
        let provider = crate::provider::install();
        let mut roots = RootCertStore::empty();
        for ca in certs(&self.ca)? {
            roots.add(ca).map_err(|e| bad(&self.ca, e))?;
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|e| bad(&self.ca, e))?;
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|e| bad(&self.key, e))?;
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(&self.cert, e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs(&self.cert)?, key)
            .map_err(|e| bad(&self.cert, e))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

#[cfg(test)]
mod tests {
    use crate::{issue, new_ca, Identity, Role, TlsFiles};

    #[test]
    fn a_master_certificate_makes_a_rest_server_config() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let ca = dir.path().join("ca");
        new_ca(&ca, "test")?;
        let out = dir.path().join("m1");
        let who = Identity::new(Role::Master, "m1")?;
        issue(&ca, &who, &[], &out)?;
        let config = TlsFiles::from_dir(&out).rest_server()?;
        assert_eq!(config.alpn_protocols[0], b"h2".to_vec());
        Ok(())
    }

    #[test]
    fn a_file_without_a_key_is_named() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let ca = dir.path().join("ca");
        new_ca(&ca, "test")?;
        let out = dir.path().join("m1");
        issue(&ca, &Identity::new(Role::Master, "m1")?, &[], &out)?;
        let mut files = TlsFiles::from_dir(&out);
        files.key = files.cert.clone();
        let e = files.rest_server().expect_err("a certificate is no key");
        assert!(e.to_string().contains("cert.pem"), "{e}");
        Ok(())
    }
}
