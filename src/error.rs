//! The toolkit's error type.
//!
//! Every failure a user can cause (bad configuration, unwritable output, malformed file) becomes
//! an [`Error`] whose message names what was wrong and what would have been valid. The CLI prints
//! it and exits with status 2; nothing in the library panics on user input.

use std::fmt;
use std::path::{Path, PathBuf};

/// A failure with a message meant for the person running the toolkit.
#[derive(Debug)]
pub enum Error {
    /// A configuration field holds an invalid value.
    Config {
        /// Dotted path of the field, e.g. `target.w_star`.
        field: String,
        /// The offending value, as written.
        value: String,
        /// What would be valid, e.g. `a number in (0, 1)`.
        expected: String,
    },
    /// A file could not be parsed (TOML syntax, unknown keys, wrong types, ...).
    Parse {
        /// What was being parsed (a path or `--set`).
        source_name: String,
        /// The parser's message.
        message: String,
    },
    /// Reading or writing a path failed.
    Io {
        /// The path involved.
        path: PathBuf,
        /// The operation, e.g. `create directory`.
        action: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Anything else the user asked for that cannot be done, with an explanation.
    Invalid(String),
}

impl Error {
    /// A configuration error for `field` holding `value`, which should be `expected`.
    pub fn config(field: &str, value: impl fmt::Display, expected: &str) -> Self {
        Error::Config {
            field: field.to_string(),
            value: value.to_string(),
            expected: expected.to_string(),
        }
    }

    /// An I/O error on `path` while doing `action`.
    pub fn io(path: &Path, action: &'static str, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config {
                field,
                value,
                expected,
            } => write!(
                f,
                "invalid value for `{field}`: {value} (expected {expected})"
            ),
            Error::Parse {
                source_name,
                message,
            } => write!(f, "cannot parse {source_name}: {}", message.trim_end()),
            Error::Io {
                path,
                action,
                source,
            } => write!(f, "cannot {action} `{}`: {source}", path.display()),
            Error::Invalid(msg) => write!(f, "{msg}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The toolkit's result type.
pub type Result<T> = std::result::Result<T, Error>;
