//! What can go wrong reading, issuing or checking certificates.

use std::path::PathBuf;

/// An error about certificates or their files.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds no usable certificate or key.
    #[error("{path}: {reason}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A wrong argument, naming it.
    #[error("{field}: {reason}")]
    Invalid {
        /// The argument.
        field: String,
        /// Why.
        reason: String,
    },
    /// Generating or signing failed.
    #[error("issue certificate: {0}")]
    Issue(#[from] rcgen::Error),
    /// A peer's certificate does not carry an Ocean identity.
    #[error("certificate identity: {0}")]
    Identity(String),
}
