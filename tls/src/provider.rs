//! The one crypto provider of every Ocean process: ring (as tonic's
//! `tls-ring`), with X25519 key exchange and AES-128-GCM preferred.
//!
//! rustls 0.23's ring provider lists secp384r1 first among its key
//! exchange groups, and a client sends its key share for the first one, so
//! every handshake between Ocean processes did two P-384 scalar
//! multiplications a side in ring's generic (non-assembly) field code:
//! about 1 ms of CPU each. Profiled on the schedule benchmark (1,000
//! certified agents registering), P-384 arithmetic (`bn_mul_mont_nohw`,
//! `p384_point_mul`) was over a quarter of all the CPU of the masters and
//! the agents. X25519 is a few tens of microseconds, and at the same
//! 128-bit security level as the P-256 certificates and AES-128; P-256
//! and P-384 stay offered after it.
//!
//! rustls's ring provider offers AES-256-GCM first, and a server follows
//! the client's order, so every connection between Ocean processes used
//! AES-256 (14 rounds a block) where AES-128 (10 rounds) is as safe for
//! session keys that live one connection. Both are AES-NI on the masters'
//! hardware; the order only saves work, the set of suites is ring's own.
//! tonic builds its rustls configurations from the process default, so
//! installing this one at start is how the gRPC servers and channels get
//! it.

use std::sync::Arc;

use rustls::crypto::{ring, CryptoProvider};

/// ring with X25519 first among key exchange groups, TLS 1.3
/// AES-128-GCM first among suites, then the rest of ring's in ring's
/// order.
// rustls deprecates ring's provider for its lack of post-quantum key
// exchange, which needs aws-lc-rs (a C/CMake build) instead.
#[allow(deprecated)]
pub fn provider() -> CryptoProvider {
    let mut p = ring::default_provider();
    let first = ring::cipher_suite::TLS13_AES_128_GCM_SHA256;
    p.cipher_suites.retain(|s| s.suite() != first.suite());
    p.cipher_suites.insert(0, first);
    let x25519 = ring::kx_group::X25519;
    p.kx_groups.retain(|g| g.name() != x25519.name());
    p.kx_groups.insert(0, x25519);
    p
}

/// Makes [`provider`] the process default (what tonic's servers and
/// channels use). Idempotent; the first provider installed stays.
pub fn install() -> Arc<CryptoProvider> {
    let _ = provider().install_default();
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(provider()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_128_gcm_comes_first_and_nothing_is_lost() {
        #[allow(deprecated)]
        let ring = ring::default_provider();
        let ours = provider();
        assert_eq!(
            ours.cipher_suites[0].suite(),
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
        );
        let mut a: Vec<_> = ring.cipher_suites.iter().map(|s| s.suite()).collect();
        let mut b: Vec<_> = ours.cipher_suites.iter().map(|s| s.suite()).collect();
        a.sort_by_key(|s| u16::from(*s));
        b.sort_by_key(|s| u16::from(*s));
        assert_eq!(a, b);
        assert_eq!(ours.kx_groups[0].name(), rustls::NamedGroup::X25519);
        let mut a: Vec<_> = ring.kx_groups.iter().map(|g| u16::from(g.name())).collect();
        let mut b: Vec<_> = ours.kx_groups.iter().map(|g| u16::from(g.name())).collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);
    }
    /// tonic's channels take the process default and its servers
    /// `ServerConfig::builder()`: a handshake between two such configs,
    /// after `install`, settles on X25519 and AES-128-GCM.
    #[test]
    fn installed_configs_negotiate_aes_128_gcm() -> anyhow::Result<()> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        install();
        let dir = tempfile::tempdir()?;
        let ca = dir.path().join("ca");
        crate::new_ca(&ca, "test")?;
        let out = dir.path().join("m1");
        crate::issue(
            &ca,
            &crate::Identity::new(crate::Role::Master, "m1")?,
            &[],
            &out,
        )?;
        let cert = CertificateDer::from_pem_file(out.join(crate::CERT))?;
        let key = PrivateKeyDer::from_pem_file(out.join(crate::KEY))?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_file(out.join(crate::CA_CERT))?)?;
        let server = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)?;
        let default = CryptoProvider::get_default().expect("installed").clone();
        let client = rustls::ClientConfig::builder_with_provider(default)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut c = rustls::ClientConnection::new(Arc::new(client), "localhost".try_into()?)?;
        let mut s = rustls::ServerConnection::new(Arc::new(server))?;
        while c.is_handshaking() || s.is_handshaking() {
            let mut buf = Vec::new();
            c.write_tls(&mut buf)?;
            s.read_tls(&mut buf.as_slice())?;
            s.process_new_packets()?;
            buf.clear();
            s.write_tls(&mut buf)?;
            c.read_tls(&mut buf.as_slice())?;
            c.process_new_packets()?;
        }
        let suite = c.negotiated_cipher_suite().expect("negotiated").suite();
        assert_eq!(suite, rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
        let group = c
            .negotiated_key_exchange_group()
            .expect("negotiated")
            .name();
        assert_eq!(group, rustls::NamedGroup::X25519);
        Ok(())
    }
}
