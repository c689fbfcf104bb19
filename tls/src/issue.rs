//! The built-in CA: a self-signed CA certificate, and leaf certificates
//! it signs for masters, agents and clients.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::{Identity, Role, TlsError};

/// The CA's certificate in a CA directory (also copied beside every leaf).
pub const CA_CERT: &str = "ca.pem";
/// The CA's private key in a CA directory.
pub const CA_KEY: &str = "ca-key.pem";
/// A leaf certificate in a certificate directory.
pub const CERT: &str = "cert.pem";
/// A leaf's private key in a certificate directory.
pub const KEY: &str = "key.pem";

const DAY: Duration = Duration::from_secs(24 * 3600);
/// The CA outlives every certificate it issues.
const CA_DAYS: u64 = 3650;
const LEAF_DAYS: u64 = 825;

fn validity(params: &mut CertificateParams, days: u64) {
    let now = SystemTime::now();
    // An hour back, so a peer whose clock is a little behind accepts it.
    params.not_before = (now - Duration::from_secs(3600)).into();
    params.not_after = (now + DAY * days as u32).into();
}

fn write(path: &Path, contents: &str, secret: bool) -> Result<(), TlsError> {
    let io = |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(path, contents).map_err(io)?;
    if secret {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    Ok(())
}

fn read(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn create_dir(dir: &Path) -> Result<(), TlsError> {
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

/// Makes a new CA in `dir` (`ca.pem`, `ca-key.pem`), refusing to replace
/// one: every certificate it issued would stop verifying.
pub fn new_ca(dir: &Path, name: &str) -> Result<PathBuf, TlsError> {
    create_dir(dir)?;
    let cert_path = dir.join(CA_CERT);
    if cert_path.exists() || dir.join(CA_KEY).exists() {
        return Err(TlsError::Invalid {
            field: "out".into(),
            reason: format!("{} already holds a CA; not replacing it", dir.display()),
        });
    }
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Ocean");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut params, CA_DAYS);
    let cert = params.self_signed(&key)?;
    write(&dir.join(CA_KEY), &key.serialize_pem(), true)?;
    write(&cert_path, &cert.pem(), false)?;
    Ok(cert_path)
}

/// Issues a certificate for `identity`, signed by the CA in `ca_dir`, into
/// `out` (`cert.pem`, `key.pem`, and the CA's `ca.pem`: one directory is
/// all a master, agent or client is given). `sans` are the DNS names and
/// IP addresses the holder serves on; a master without any gets
/// `localhost` and `127.0.0.1`.
pub fn issue(
    ca_dir: &Path,
    identity: &Identity,
    sans: &[String],
    out: &Path,
) -> Result<PathBuf, TlsError> {
    let ca_pem = read(&ca_dir.join(CA_CERT))?;
    let ca_key =
        KeyPair::from_pem(&read(&ca_dir.join(CA_KEY))?).map_err(|e| TlsError::BadFile {
            path: ca_dir.join(CA_KEY),
            reason: format!("not a private key: {e}"),
        })?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).map_err(|e| TlsError::BadFile {
        path: ca_dir.join(CA_CERT),
        reason: format!("not a CA certificate: {e}"),
    })?;
    let mut names: Vec<String> = sans.to_vec();
    if names.is_empty() && identity.role == Role::Master {
        names = vec!["localhost".into(), "127.0.0.1".into()];
    }
    let mut params = CertificateParams::new(names).map_err(|e| TlsError::Invalid {
        field: "san".into(),
        reason: format!("{e}"),
    })?;
    params
        .subject_alt_names
        .push(SanType::URI(identity.uri().try_into().map_err(|e| {
            TlsError::Invalid {
                field: "name".into(),
                reason: format!("{e}"),
            }
        })?));
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, identity.to_string());
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    // Masters serve and also call each other; agents and clients only call.
    params.extended_key_usages = match identity.role {
        Role::Master => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        Role::Agent | Role::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, LEAF_DAYS);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    create_dir(out)?;
    write(&out.join(KEY), &key.serialize_pem(), true)?;
    write(&out.join(CERT), &cert.pem(), false)?;
    write(&out.join(CA_CERT), &ca_pem, false)?;
    Ok(out.join(CERT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity_of;

    fn der(path: &Path) -> Vec<u8> {
        let pem = std::fs::read(path).unwrap();
        x509_parser::pem::parse_x509_pem(&pem).unwrap().1.contents
    }

    #[test]
    fn issued_certificates_carry_their_identity() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca");
        new_ca(&ca, "test CA").unwrap();
        let agent = Identity::new(Role::Agent, "a-1").unwrap();
        let path = issue(&ca, &agent, &[], &dir.path().join("a-1")).unwrap();
        assert_eq!(identity_of(&der(&path)).unwrap(), agent);
        let master = Identity::new(Role::Master, "m1").unwrap();
        let path = issue(&ca, &master, &["m1.example".into()], &dir.path().join("m1")).unwrap();
        assert_eq!(identity_of(&der(&path)).unwrap(), master);
        // The CA itself is nobody.
        let err = identity_of(&der(&ca.join(CA_CERT)))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no ocean://"), "{err}");
    }

    #[test]
    fn a_ca_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        new_ca(dir.path(), "one").unwrap();
        let err = new_ca(dir.path(), "two").unwrap_err().to_string();
        assert!(err.starts_with("out:"), "{err}");
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(identity_of(b"not a certificate").is_err());
    }
}
