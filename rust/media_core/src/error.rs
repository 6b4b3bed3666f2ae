//! The media core's one error type. It carries no pyo3: `py::errors` maps it to
//! Python exceptions in one place.

use std::fmt;

/// Everything that can go wrong in the media core.
///
/// Variants are grouped by what the caller can do about them; the Python layer maps each group to
/// one exception class (`tgsip.media.errors`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaError {
    /// A caller passed an argument outside its documented range (a bad sample rate, an unknown
    /// payload type, a frame of the wrong length).
    InvalidArgument(String),
    /// A codec could not be created or failed on a frame (libopus' error text included).
    Codec(String),
    /// Bytes from the network or a file did not form a valid packet.
    Parse(String),
    /// The line or engine was already closed.
    Closed(String),
    /// An operating-system I/O error (socket, file, eventfd).
    Io {
        /// What the core was doing.
        context: String,
        /// The error's kind, kept so Python can raise the matching `OSError` subclass.
        kind: std::io::ErrorKind,
        /// The operating system's message.
        message: String,
    },
}

impl MediaError {
    /// Builds an [`MediaError::InvalidArgument`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::InvalidArgument(msg.into())
    }

    /// Builds an [`MediaError::Io`] from an `io::Error` and what was being done.
    pub fn io(context: impl Into<String>, err: &std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            kind: err.kind(),
            message: err.to_string(),
        }
    }
}

impl fmt::Display for MediaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            Self::Codec(m) => write!(f, "codec error: {m}"),
            Self::Parse(m) => write!(f, "malformed packet: {m}"),
            Self::Closed(m) => write!(f, "closed: {m}"),
            Self::Io {
                context, message, ..
            } => write!(f, "{context}: {message}"),
        }
    }
}

impl std::error::Error for MediaError {}

/// The media core's result type.
pub type Result<T> = std::result::Result<T, MediaError>;
