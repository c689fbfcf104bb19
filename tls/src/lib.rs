//! Ocean's certificates: a small built-in CA (`ocean tls ca|cert`) that
//! issues master, agent and client certificates, the identity a
//! certificate carries (its role and name), and the TLS settings of
//! servers and channels built from a certificate directory.
//!
//! The identity of a certificate is its URI subject alternative name
//! `ocean://<role>/<name>` (e.g. `ocean://agent/web-17`); the common name
//! `<role>:<name>` is only for people reading the certificate.

mod error;
mod files;
mod identity;
mod issue;
mod provider;
mod rest;

pub use error::TlsError;
pub use files::TlsFiles;
pub use identity::{identity_of, identity_of_pem, peer_identity, Identity, Role};
pub use issue::{issue, new_ca, CA_CERT, CA_KEY, CERT, KEY};
pub use provider::{install as install_provider, provider};
