//! The crate's errors.

/// What can go wrong starting or running the DNS server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is invalid; `field` names the flag or config field.
    #[error("{field}: {reason}")]
    Config {
        /// The flag or field.
        field: &'static str,
        /// Why it is wrong.
        reason: String,
    },
    /// An operating-system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
