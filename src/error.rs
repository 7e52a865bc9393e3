//! The crate's error type, split by who is to blame.

use std::fmt;

/// Every fallible operation in diffc returns this error.
///
/// Variants are split by blame, so a caller can tell a truncated download (retry when more
/// bytes arrive) from a corrupt or hostile file (give up) from its own misuse of the API.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file or stream failed.
    Io(std::io::Error),
    /// The stream ended before the named structure was complete.
    Truncated {
        /// What was being read when the bytes ran out.
        what: &'static str,
    },
    /// The stream is not a valid diffc stream: the named field has an impossible value.
    Format {
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// The stream or input asks for more than the configured [`crate::Limits`] allow.
    Limits {
        /// The limited quantity.
        what: &'static str,
        /// The value that was asked for.
        value: u64,
        /// The configured maximum.
        max: u64,
    },
    /// The stream was made with a model this decoder does not have.
    WrongModel {
        /// Model id written in the stream header.
        stream: u64,
        /// Model id of the decoder's model.
        decoder: u64,
    },
    /// No model with this name is embedded or loadable.
    UnknownModel(String),
    /// The caller passed an invalid option or used the API out of order.
    InvalidArgument(String),
    /// The input image could not be read or the output image could not be written.
    Image(String),
    /// The neural network failed (shape mismatch, bad weights file, device error).
    Model(String),
    /// The decoder hit a fatal error earlier and refuses further input.
    Poisoned(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::Truncated { what } => write!(f, "truncated stream: ran out of bytes in {what}"),
            Error::Format { field, detail } => write!(f, "corrupt stream: {field}: {detail}"),
            Error::Limits { what, value, max } => {
                write!(f, "limit exceeded: {what} = {value}, maximum is {max}")
            }
            Error::WrongModel { stream, decoder } => write!(
                f,
                "wrong model: stream needs model {stream:016x}, decoder has {decoder:016x}"
            ),
            Error::UnknownModel(name) => write!(f, "unknown model: {name}"),
            Error::InvalidArgument(msg) => write!(f, "invalid argument: {msg}"),
            Error::Image(msg) => write!(f, "image error: {msg}"),
            Error::Model(msg) => write!(f, "model error: {msg}"),
            Error::Poisoned(msg) => write!(f, "decoder failed earlier and stays failed: {msg}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Model(e.to_string())
    }
}

impl Error {
    pub(crate) fn format(field: &'static str, detail: impl Into<String>) -> Self {
        Error::Format {
            field,
            detail: detail.into(),
        }
    }
}

/// Shorthand for `Result<T, diffc::Error>`.
pub type Result<T> = std::result::Result<T, Error>;
